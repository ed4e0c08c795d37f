"""Simple placement: filter hosts a pod cannot go to, then prefer the least allocated.

A pure function over plain data. The full filter/score framework (affinity, spread,
tolerations...) is its own module (scheduler/); this covers what a bare Pod can say
today: nodeName, nodeSelector, taints, and resource requests.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from .model import Pod, Taint


@dataclass(frozen=True)
class HostView:
    """A host as placement sees it: what it offers and what is already bound to it."""

    name: str
    ready: bool
    labels: tuple[tuple[str, str], ...]
    taints: tuple[Taint, ...]
    cpu_m: int
    memory: int
    max_pods: int
    used_cpu_m: int = 0
    used_memory: int = 0
    used_pods: int = 0


@dataclass(frozen=True)
class Placement:
    pod: str
    host: str | None
    message: str  # why not, Kubernetes-style, when host is None
    rejected: tuple[tuple[str, str], ...] = ()  # (host, reason)
    scores: tuple[tuple[str, float], ...] = ()


def _reject(pod: Pod, h: HostView, tolerations: tuple = ()) -> str | None:
    spec = pod.spec
    if spec.node_name and spec.node_name != h.name:
        return "didn't match Pod's node name"
    if not h.ready:
        return "node(s) were not ready"
    labels = dict(h.labels)
    if any(labels.get(k) != v for k, v in spec.node_selector):
        return "didn't match Pod's node affinity/selector"
    for t in h.taints:
        if t.effect in ("NoSchedule", "NoExecute") and not any(x.tolerates(t) for x in tolerations):
            value = f"={t.value}" if t.value else ""
            return f"had untolerated taint {{{t.key}{value}: {t.effect}}}"
    req = spec.requests()
    if h.used_pods + 1 > h.max_pods:
        return "Too many pods"
    if (req.cpu_m or 0) > h.cpu_m - h.used_cpu_m:
        return "Insufficient cpu"
    if (req.memory or 0) > h.memory - h.used_memory:
        return "Insufficient memory"
    return None


def _score(pod: Pod, h: HostView) -> float:
    """LeastAllocated: the mean free fraction of cpu and memory after placing the pod."""
    req = pod.spec.requests()
    cpu_free = (h.cpu_m - h.used_cpu_m - (req.cpu_m or 0)) / h.cpu_m if h.cpu_m else 0.0
    mem_free = (h.memory - h.used_memory - (req.memory or 0)) / h.memory if h.memory else 0.0
    return round(50.0 * (cpu_free + mem_free), 6)


def place(pod: Pod, hosts: list[HostView], tolerations: tuple = ()) -> Placement:
    """`tolerations`: objects with .tolerates(taint) (workloads.specs.Toleration)."""
    rejected = []
    feasible = []
    for h in hosts:
        reason = _reject(pod, h, tolerations)
        if reason:
            rejected.append((h.name, reason))
        else:
            feasible.append(h)
    if not feasible:
        counts = Counter(reason for _, reason in rejected)
        detail = ", ".join(f"{n} {r}" for r, n in sorted(counts.items()))
        message = f"0/{len(hosts)} hosts are available" + (f": {detail}." if detail else ".")
        return Placement(pod.key, None, message, tuple(rejected))
    scores = sorted(((h.name, _score(pod, h)) for h in feasible), key=lambda s: (-s[1], s[0]))
    return Placement(pod.key, scores[0][0], "", tuple(rejected), tuple(scores))


def charge(h: HostView, pod: Pod) -> HostView:
    """The host after binding `pod` to it (so the next placement sees the use)."""
    req = pod.spec.requests()
    return HostView(h.name, h.ready, h.labels, h.taints, h.cpu_m, h.memory, h.max_pods,
                    h.used_cpu_m + (req.cpu_m or 0), h.used_memory + (req.memory or 0),
                    h.used_pods + 1)
