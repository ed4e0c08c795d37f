"""Kubernetes pod spec (the manifest's dict, camelCase) -> SchedPod.

For the controller: `sched_pod(namespace, name, labels, spec)` reads exactly the fields
kube-scheduler reads. It expects a spec the manifest layer has validated; what it cannot
map raises ValueError naming the field.

Requests follow Kubernetes' PodRequests: per resource, the larger of the sum over
containers and the largest init container, plus spec.overhead; a container with a
limit but no request requests its limit. The scoring requests count 100m / 200Mi for
each container that has no request at all (NonMissingContainerRequests).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..model import pairs
from ..quantity import parse_cpu, parse_memory
from .types import (
    DEFAULT_CPU_REQUEST_M,
    DEFAULT_MEMORY_REQUEST,
    LabelSelector,
    NodeSelectorTerm,
    PodAffinityTerm,
    PreferredSchedulingTerm,
    Requirement,
    SchedPod,
    Toleration,
    TopologySpreadConstraint,
    WeightedPodAffinityTerm,
)


def sched_pod(namespace: str, name: str, labels: Mapping[str, str] | None, spec: Mapping[str, Any], *,
              image_digests: Mapping[str, str] | None = None, current_host: str | None = None) -> SchedPod:
    """`image_digests` maps an image reference to the digest hosts report, so
    ImageLocality can match; without it the references themselves are used."""
    cpu, mem, nz_cpu, nz_mem = requests(spec)
    affinity = spec.get("affinity") or {}
    node_aff = affinity.get("nodeAffinity") or {}
    pod_aff = affinity.get("podAffinity") or {}
    anti_aff = affinity.get("podAntiAffinity") or {}
    containers = list(spec.get("containers") or ())
    digests = image_digests or {}
    every = list(spec.get("initContainers") or ()) + containers  # repeats count, as in Kubernetes
    images = tuple(digests.get(c["image"], c["image"]) for c in every if c.get("image"))
    return SchedPod(
        key=f"{namespace}/{name}", namespace=namespace, labels=_labels(labels), cpu_m=cpu, memory=mem,
        nonzero_cpu_m=nz_cpu, nonzero_memory=nz_mem, node_name=spec.get("nodeName") or None,
        node_selector=_labels(spec.get("nodeSelector")),
        required_node_affinity=required_node_terms(spec),
        preferred_node_affinity=tuple(
            PreferredSchedulingTerm(int(t["weight"]), _node_term(t.get("preference") or {}, "preference"))
            for t in node_aff.get("preferredDuringSchedulingIgnoredDuringExecution") or ()),
        tolerations=tuple(Toleration.from_k8s(t) for t in spec.get("tolerations") or ()),
        pod_affinity=_terms(pod_aff.get("requiredDuringSchedulingIgnoredDuringExecution")),
        pod_anti_affinity=_terms(anti_aff.get("requiredDuringSchedulingIgnoredDuringExecution")),
        preferred_pod_affinity=_weighted(pod_aff.get("preferredDuringSchedulingIgnoredDuringExecution")),
        preferred_pod_anti_affinity=_weighted(anti_aff.get("preferredDuringSchedulingIgnoredDuringExecution")),
        topology_spread=tuple(_spread(c) for c in spec.get("topologySpreadConstraints") or ()),
        host_ports=tuple(dict.fromkeys((int(p["hostPort"]), p.get("protocol") or "TCP")
                                       for c in containers for p in c.get("ports") or () if p.get("hostPort"))),
        images=images, current_host=current_host)


def requests(spec: Mapping[str, Any]) -> tuple[int, int, int, int]:
    """(cpu_m, memory, nonzero cpu_m, nonzero memory) of a pod spec."""
    def container(c) -> tuple[int, int, int, int]:
        res = c.get("resources") or {}
        req, lim = res.get("requests") or {}, res.get("limits") or {}
        cpu = req.get("cpu", lim.get("cpu"))
        mem = req.get("memory", lim.get("memory"))
        cpu_m = 0 if cpu is None else parse_cpu(cpu)
        memory = 0 if mem is None else parse_memory(mem)
        return (cpu_m, memory, DEFAULT_CPU_REQUEST_M if cpu is None else cpu_m,
                DEFAULT_MEMORY_REQUEST if mem is None else memory)

    apps = [container(c) for c in spec.get("containers") or ()]
    inits = [container(c) for c in spec.get("initContainers") or ()]
    total = [sum(c[i] for c in apps) for i in range(4)]
    for i in range(4):
        total[i] = max([total[i]] + [c[i] for c in inits])
    overhead = spec.get("overhead") or {}
    extra_cpu = parse_cpu(overhead["cpu"]) if "cpu" in overhead else 0
    extra_mem = parse_memory(overhead["memory"]) if "memory" in overhead else 0
    return total[0] + extra_cpu, total[1] + extra_mem, total[2] + extra_cpu, total[3] + extra_mem


def required_node_terms(spec: Mapping[str, Any]) -> tuple[NodeSelectorTerm, ...] | None:
    """spec.affinity.nodeAffinity's required terms (ORed); None when it has none. Also
    what the DaemonSet controller checks a host against (NodeShouldRunDaemonPod)."""
    node_aff = (spec.get("affinity") or {}).get("nodeAffinity") or {}
    required = node_aff.get("requiredDuringSchedulingIgnoredDuringExecution")
    if required is None:
        return None
    return tuple(_node_term(t, f"affinity.nodeAffinity.required...nodeSelectorTerms[{i}]")
                 for i, t in enumerate(required.get("nodeSelectorTerms") or ()))


def _requirement(r: Mapping[str, Any]) -> Requirement:
    return Requirement(r["key"], r["operator"], tuple(r.get("values") or ()))


def _node_term(t: Mapping[str, Any], where: str) -> NodeSelectorTerm:
    try:
        return NodeSelectorTerm(tuple(_requirement(r) for r in t.get("matchExpressions") or ()),
                                tuple(_requirement(r) for r in t.get("matchFields") or ()))
    except (KeyError, ValueError) as exc:
        raise ValueError(f"{where}: {exc}") from exc


def label_selector(s: Mapping[str, Any] | None) -> LabelSelector | None:
    if s is None:
        return None
    return LabelSelector(_labels(s.get("matchLabels")), tuple(_requirement(r) for r in s.get("matchExpressions") or ()))


def _term(t: Mapping[str, Any]) -> PodAffinityTerm:
    ns_selector = t.get("namespaceSelector")  # an empty selector: every namespace
    if ns_selector is not None and (ns_selector.get("matchLabels") or ns_selector.get("matchExpressions")):
        raise ValueError("podAffinityTerm.namespaceSelector: only {} (all namespaces) is supported")
    return PodAffinityTerm(label_selector(t.get("labelSelector")), t["topologyKey"],
                           tuple(t.get("namespaces") or ()), all_namespaces=ns_selector is not None)


def _terms(items) -> tuple[PodAffinityTerm, ...]:
    return tuple(_term(t) for t in items or ())


def _weighted(items) -> tuple[WeightedPodAffinityTerm, ...]:
    return tuple(WeightedPodAffinityTerm(int(t["weight"]), _term(t["podAffinityTerm"])) for t in items or ())


def _labels(m: Mapping[str, Any] | None):
    """A label map (labels, nodeSelector, matchLabels) as pairs; null is "", as Go decodes it."""
    return pairs({k: "" if v is None else v for k, v in m.items()}) if m else ()


def _spread(c: Mapping[str, Any]) -> TopologySpreadConstraint:
    return TopologySpreadConstraint(
        int(c["maxSkew"]), c["topologyKey"], c.get("whenUnsatisfiable") or "DoNotSchedule",
        label_selector(c.get("labelSelector")), c.get("minDomains"),
        c.get("nodeAffinityPolicy") or "Honor", c.get("nodeTaintsPolicy") or "Ignore")
