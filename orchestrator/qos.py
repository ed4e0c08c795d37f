"""Kubernetes QoS classes and what follows from them on a host: pure functions.

qos_class is pkg/apis/core/v1/helper/qos.GetPodQOS (requests default to limits, zero
quantities count as unset); oom_score_adj is pkg/kubelet/qos.GetContainerOOMScoreAdjust.
"""

from __future__ import annotations

from .model import Container, Pod

GUARANTEED_OOM_SCORE_ADJ = -997
BEST_EFFORT_OOM_SCORE_ADJ = 1000


def qos_class(pod: Pod) -> str:
    requests: dict[str, int] = {}
    limits: dict[str, int] = {}
    guaranteed = True
    for c in pod.spec.all_containers():
        req = c.effective_requests()
        for name, value in (("cpu", req.cpu_m), ("memory", req.memory)):
            if value:
                requests[name] = requests.get(name, 0) + value
        found = set()
        for name, value in (("cpu", c.limits.cpu_m), ("memory", c.limits.memory)):
            if value:
                found.add(name)
                limits[name] = limits.get(name, 0) + value
        if found != {"cpu", "memory"}:
            guaranteed = False
    if not requests and not limits:
        return "BestEffort"
    if guaranteed and requests == limits:
        return "Guaranteed"
    return "Burstable"


def oom_score_adj(pod: Pod, c: Container, memory_capacity: int) -> int:
    """The container's oom_score_adj: Guaranteed -997, BestEffort 1000, Burstable
    1000 - 1000*request/capacity kept within [3, 999] (above any Guaranteed process,
    below BestEffort ones)."""
    qos = qos_class(pod)
    if qos == "Guaranteed":
        return GUARANTEED_OOM_SCORE_ADJ
    if qos == "BestEffort":
        return BEST_EFFORT_OOM_SCORE_ADJ
    request = c.effective_requests().memory or 0
    adj = 1000 - (1000 * request) // memory_capacity if memory_capacity > 0 else 1000
    if adj < 1000 + GUARANTEED_OOM_SCORE_ADJ:
        return 1000 + GUARANTEED_OOM_SCORE_ADJ
    if adj == BEST_EFFORT_OOM_SCORE_ADJ:
        return adj - 1
    return adj
