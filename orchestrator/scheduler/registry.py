"""The plugin set, in order, with weights: the one place to read what the scheduler does.

Filter order decides which reason a host is reported under (the first filter that
rejects it, as in kube-scheduler) and it is also the cost order the framework relies
on: static filters (memoised per pod spec) before local ones (memoised per template,
refreshed per charged host) before global ones (recomputed per pod). Scorer order is
only the order of the score card; the weights are kube-scheduler's defaults.
"""

from __future__ import annotations

from dataclasses import dataclass

from . import affinity as a
from . import filters as f
from . import scorers as s
from .plugin import Plugin
from .types import SchedulerConfig

FILTERS: tuple[Plugin, ...] = (
    # Down hosts first: whatever else is true of them, "not ready" is what to fix.
    f.HostReady(),
    # Cordoned next, like Kubernetes' NodeUnschedulable: an operator's explicit "no".
    f.NodeUnschedulable(),
    # spec.nodeName pins the pod: every other host is out for that reason alone.
    f.NodeName(),
    # Taints before affinity, as in kube-scheduler: the host refuses before the pod does.
    f.TaintToleration(),
    # nodeSelector and required node affinity: the last static (spec-only) filter.
    f.NodeAffinity(),
    # Host ports: local (ports in use on the host), cheap, and a hard conflict.
    f.NodePorts(),
    # Resources: local; after the spec-only filters so "Insufficient cpu" is reported
    # only for hosts the pod could otherwise use.
    f.NodeResourcesFit(),
    # Topology spread: global (counts across a domain), so after everything per-host.
    f.PodTopologySpread(),
    # Inter-pod affinity last: global and the most expensive, as in kube-scheduler.
    f.InterPodAffinity(),
)

# (scorer, default weight). A weight of 0 in the config turns a scorer off.
SCORERS: tuple[tuple[Plugin, int], ...] = (
    # Taints the pod prefers to avoid: kube-scheduler's heaviest default (3), because
    # an operator set PreferNoSchedule on purpose.
    (s.TaintTolerationScore(), 3),
    # Preferred node affinity: the user's stated preference (2).
    (s.NodeAffinityScore(), 2),
    # Spreading replicas across domains (ScheduleAnyway): availability (2).
    (a.PodTopologySpreadScore(), 2),
    # Preferred pod (anti-)affinity, both ways (2).
    (a.InterPodAffinityScore(), 2),
    # Allocation: LeastAllocated or MostAllocated, chosen in the config (1).
    (None, 1),
    # Keep cpu and memory use in proportion, so neither strands the other (1).
    (s.BalancedAllocation(), 1),
    # Images already on the host start faster and save a push (1).
    (s.ImageLocality(), 1),
    # Stay where the pod runs: weight None is "1 + the sum of the others" (13 with the
    # defaults), so a feasible current host always wins and pods move only when forced.
    (s.CurrentHost(), None),
)

DEFAULT_WEIGHTS = {p.name if p else "NodeResourcesFit": w for p, w in SCORERS}


@dataclass(frozen=True)
class Registry:
    filters: tuple[Plugin, ...]
    scorers: tuple[tuple[Plugin, int], ...]  # weight > 0 only


def build(config: SchedulerConfig = SchedulerConfig()) -> Registry:
    overrides = dict(config.weights)
    allocation = s.MostAllocated() if config.scoring_strategy == "MostAllocated" else s.LeastAllocated()
    known = {p.name for p, _ in SCORERS if p} | {allocation.name, "NodeResourcesFit"}
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise ValueError(f"unknown scorer(s) in weights: {', '.join(unknown)} (known: {', '.join(sorted(known))})")
    chosen = []
    for plugin, weight in SCORERS:
        plugin = plugin or allocation
        weight = overrides.get(plugin.name, overrides.get("NodeResourcesFit", weight) if plugin is allocation else weight)
        chosen.append((plugin, weight))
    rest = sum(w for _, w in chosen if w is not None)
    chosen = [(p, rest + 1 if w is None else w) for p, w in chosen]
    if any(w < 0 for _, w in chosen):
        raise ValueError("scorer weights must be >= 0")
    _check_order(FILTERS)
    return Registry(FILTERS, tuple((p, w) for p, w in chosen if w > 0))


def _check_order(plugins) -> None:
    rank = {"static": 0, "local": 1, "global": 2}
    kinds = [rank[p.kind] for p in plugins]
    if kinds != sorted(kinds):
        raise AssertionError("filters must be ordered static, then local, then global")
