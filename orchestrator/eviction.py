"""Node-pressure eviction, as kubelet does it for memory: pure ranking.

When a host's available memory is below its threshold (inventory
podctl_memory_available_min, default 100Mi like kubelet's hard threshold
memory.available<100Mi), pods are evicted until the memory they use covers the
shortfall: BestEffort pods first (they asked for nothing), then Burstable pods using
more than they requested, most over first. Guaranteed pods and Burstable pods within
their requests are never evicted for pressure: they are what the host promised.
DaemonSet pods are left alone (they would come straight back). The controller
re-places what is evicted, like any pod that leaves its host.
"""

from __future__ import annotations

from dataclasses import dataclass

DEFAULT_MEMORY_AVAILABLE_MIN = 100 * 2**20


@dataclass(frozen=True)
class Candidate:
    uid: str
    key: str  # namespace/name
    qos: str  # BestEffort | Burstable | Guaranteed
    memory_request: int  # bytes (0: none)
    usage: int  # bytes the pod's cgroup uses now
    daemon: bool = False  # a DaemonSet's pod


def choose(available: int, threshold: int, pods: list[Candidate]) -> list[Candidate]:
    """The pods to evict, in order; [] when the host is not under pressure."""
    if available >= threshold:
        return []
    need = threshold - available
    best_effort = sorted((p for p in pods if p.qos == "BestEffort" and not p.daemon),
                         key=lambda p: (-p.usage, p.key))
    over = sorted((p for p in pods if p.qos == "Burstable" and not p.daemon and p.usage > p.memory_request),
                  key=lambda p: (-(p.usage - p.memory_request), p.key))
    out, freed = [], 0
    for p in best_effort + over:
        if freed >= need:
            break
        out.append(p)
        freed += p.usage
    return out


def message(available: int, threshold: int) -> str:
    return (f"The node was low on resource: memory. Threshold quantity: {threshold // 2**20}Mi, "
            f"available: {available // 2**20}Mi.")
