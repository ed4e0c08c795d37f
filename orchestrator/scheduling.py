"""The controller's side of the scheduler: its inputs from inventory, probes and store.

Pure functions. `cluster_snapshot` turns the inventory's hosts (with what each probe saw)
and the pods already bound into the scheduler's frozen Snapshot; `sched_pods` maps the
stored pods to SchedPods, adding Kubernetes' system-default spreading to pods a
Deployment (or, later, a StatefulSet) owns; `place` runs `scheduler.schedule` over them.

Why the default spreading matters: replicas of one template have equal requests, so
without it LeastAllocated barely separates the hosts and the name tie-break would put
a 4-replica Deployment on the first hosts. kube-scheduler adds, to pods that a
ReplicaSet / StatefulSet / Service selects and that say nothing themselves,
`{maxSkew: 3, topologyKey: kubernetes.io/hostname}` and `{maxSkew: 5, topologyKey:
topology.kubernetes.io/zone}`, both ScheduleAnyway, over the owner's selector.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from .model import Capacity, Host
from .probe import HostSnapshot

DEFAULT_MAX_PODS = 110
SYSTEM_RESERVED_MEMORY = 256 * 2**20  # kept for the host itself, like kubelet's reserve
ZONE_LABEL = "topology.kubernetes.io/zone"
SPREAD_BY_DEFAULT = ("Deployment", "StatefulSet")  # owners whose pods kube-scheduler spreads
POD_TEMPLATE_HASH = "pod-template-hash"
MEMORY_PRESSURE = "node.kubernetes.io/memory-pressure"  # Kubernetes' taint for the condition


@dataclass(frozen=True)
class PodInput:
    """A stored pod as scheduling needs it (plain data; see controller.sched_inputs)."""

    uid: str
    namespace: str
    name: str
    doc: Mapping[str, Any]  # the pod manifest (metadata, spec)
    node: str | None  # bound host; None: to be placed
    owner_kind: str | None = None
    owner_selector: Mapping[str, Any] | None = None  # the owner's spec.selector, raw

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"


def host_capacity(host: Host, snap: HostSnapshot | None) -> Capacity:
    """The inventory's overrides, else what the probe saw (less a reserve for the host)."""
    probed_cpu = snap.cpu_m() if snap else 0
    probed_mem = max(0, snap.memory() - SYSTEM_RESERVED_MEMORY) if snap else 0
    cap = host.capacity
    return Capacity(
        cpu_m=cap.cpu_m if cap and cap.cpu_m else probed_cpu,
        memory=cap.memory if cap and cap.memory else probed_mem,
        pods=cap.pods if cap and cap.pods else DEFAULT_MAX_PODS,
    )


def sched_host(host: Host, snap: HostSnapshot | None, cordoned: bool = False, healthy: bool = True,
               pressure: bool = False):
    """`healthy`: Ready by the health rules (a Suspect host just failed a probe; a
    NotReady one is still proving itself): only such hosts take new pods. `pressure`:
    low on memory: tainted memory-pressure:NoSchedule, which only pods with requests
    or limits tolerate (see sched_pod), so no BestEffort pod lands there."""
    from .model import Taint
    from .scheduler.types import SchedHost

    cap = host_capacity(host, snap)
    taints = host.taints + ((Taint(MEMORY_PRESSURE, "", "NoSchedule"),) if pressure else ())
    return SchedHost(host.name, labels=host.labels, taints=taints, ready=bool(snap and snap.reachable and healthy),
                     cordoned=cordoned, cpu_m=cap.cpu_m, memory=cap.memory, pods=cap.pods,
                     images=snap.images if snap else frozenset())


def default_spread(pod: PodInput, hosts: Iterable[Host]) -> tuple:
    """Kubernetes' system-default topology spread constraints for `pod`, or () when it
    has its own, or no owner kube-scheduler would spread for. The zone constraint is
    kept only when every host has a zone label: the scheduler (like Kubernetes for
    constraints a pod states) scores hosts without the key 0, which would turn a
    partly-labelled inventory's spreading upside down."""
    from .scheduler.kube import label_selector
    from .scheduler.types import HOSTNAME_LABEL, LabelSelector, TopologySpreadConstraint

    spec = pod.doc.get("spec") or {}
    if spec.get("topologySpreadConstraints") or pod.owner_kind not in SPREAD_BY_DEFAULT:
        return ()
    if pod.owner_selector is None:
        return ()
    selector = label_selector(pod.owner_selector)
    labels = (pod.doc.get("metadata") or {}).get("labels") or {}
    if pod.owner_kind == "Deployment" and POD_TEMPLATE_HASH in labels:
        # the ReplicaSet's selector: the Deployment's plus the template hash
        selector = LabelSelector({**dict(selector.match_labels), POD_TEMPLATE_HASH: labels[POD_TEMPLATE_HASH]},
                                 selector.match_expressions)
    out = [TopologySpreadConstraint(3, HOSTNAME_LABEL, "ScheduleAnyway", selector)]
    if all(ZONE_LABEL in dict(h.labels) for h in hosts):
        out.append(TopologySpreadConstraint(5, ZONE_LABEL, "ScheduleAnyway", selector))
    return tuple(out)


def sched_pod(pod: PodInput, hosts: Iterable[Host], image_digests: Mapping[str, str]):
    """The SchedPod of a stored pod. Raises ValueError for a spec the scheduler cannot
    read (the manifest layer validates first, so this is a store written by hand)."""
    from dataclasses import replace

    from .scheduler import kube

    meta = pod.doc.get("metadata") or {}
    p = kube.sched_pod(pod.namespace, pod.name, meta.get("labels"), pod.doc.get("spec") or {},
                       image_digests=image_digests, current_host=pod.node)
    spread = default_spread(pod, hosts)
    if spread:
        p = replace(p, topology_spread=spread)
    if not best_effort(pod.doc.get("spec") or {}):
        from .model import Toleration

        p = replace(p, tolerations=p.tolerations + (Toleration(MEMORY_PRESSURE, "Exists", "", "NoSchedule"),))
    return p


def best_effort(spec: Mapping[str, Any]) -> bool:
    """Kubernetes' BestEffort QoS class: no container requests or limits anything."""
    return not any((c.get("resources") or {}).get(k) for c in list(spec.get("containers") or ())
                   + list(spec.get("initContainers") or ()) for k in ("requests", "limits"))


@dataclass(frozen=True)
class Outcome:
    """Placements of this run (scheduler.Placement, in order) and pods whose stored
    spec the scheduler could not read (key -> message)."""

    placements: tuple
    invalid: tuple[tuple[str, str], ...] = ()


def place(hosts: list[Host], snaps: Mapping[str, HostSnapshot], pods: list[PodInput],
          image_digests: Mapping[str, str], image_sizes: Mapping[str, int],
          settings: Mapping[str, Any] | None = None, cordoned: frozenset[str] = frozenset(),
          not_ready: frozenset[str] = frozenset(), pressure: frozenset[str] = frozenset()) -> Outcome:
    """Place every unbound pod of `pods` (in the order given), the bound ones counted
    where they are. `settings`: SchedulerConfig's keyword arguments. Nothing is
    imported from the scheduler (NumPy) when nothing waits."""
    waiting = [p for p in pods if p.node is None]
    if not waiting:
        return Outcome(())
    from .scheduler import BoundPod, SchedulerConfig, Snapshot, schedule

    invalid, to_place, bound = [], [], []
    for p in pods:
        try:
            sp = sched_pod(p, hosts, image_digests)
        except (ValueError, KeyError, TypeError) as exc:
            if p.node is None:
                invalid.append((p.key, f"cannot schedule: {exc}"))
            continue
        (bound.append(BoundPod(p.node, sp)) if p.node is not None else to_place.append(sp))
    snapshot = Snapshot(tuple(sched_host(h, snaps.get(h.name), h.name in cordoned, h.name not in not_ready,
                                         h.name in pressure) for h in hosts),
                        tuple(bound), image_sizes)
    placements = schedule(to_place, snapshot, SchedulerConfig(**(settings or {})))
    return Outcome(tuple(placements), tuple(invalid))
