"""Frozen inputs of the scheduler: pods, hosts, the cluster snapshot and the config.

Field names and semantics follow the Kubernetes PodSpec (affinity, tolerations,
topologySpreadConstraints) so the controller maps a manifest field for field (see
kube.py). Mappings are sorted tuples of pairs and lists are tuples, so every value is
hashable: pods made from one template share one cache entry in the scheduler. Hashes
are cached on the instance (the framework hashes a pod's spec once per placement).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, fields
from operator import attrgetter
from typing import ClassVar

from ..model import TAINT_EFFECTS, Pairs, Taint, Toleration, pairs

HOSTNAME_LABEL = "kubernetes.io/hostname"  # every host has it (its name) unless set
UNSCHEDULABLE_TAINT = Taint("node.kubernetes.io/unschedulable", "", "NoSchedule")
DEFAULT_CPU_REQUEST_M = 100  # Kubernetes' non-zero defaults, used for scoring only
DEFAULT_MEMORY_REQUEST = 200 * 1024 * 1024
EFFECTS = TAINT_EFFECTS
SELECTOR_OPS = ("In", "NotIn", "Exists", "DoesNotExist")
NODE_OPS = SELECTOR_OPS + ("Gt", "Lt")


def _frozen(cls):
    """A frozen dataclass whose hash is computed once and kept on the instance."""
    cls = dataclass(frozen=True)(cls)
    values = attrgetter(*(f.name for f in fields(cls)), "__class__")  # always a tuple

    def __hash__(self):
        try:
            return self.__dict__["_hash"]
        except KeyError:
            h = self.__dict__["_hash"] = hash(values(self))
            return h

    cls.__hash__ = __hash__
    return cls


def _set(obj, name: str, value) -> None:
    object.__setattr__(obj, name, value)


def _tuple(obj, *names: str) -> None:
    for name in names:
        value = getattr(obj, name)
        if value is not None and not isinstance(value, tuple):
            _set(obj, name, tuple(value))


_INT = re.compile(r"[+-]?[0-9]+")


def parse_int64(text: str) -> int | None:
    """Go's strconv.ParseInt(text, 10, 64): optional sign, decimal digits, int64 range."""
    if not _INT.fullmatch(text):
        return None
    n = int(text)
    return n if -2**63 <= n < 2**63 else None


# ---------------------------------------------------------------- selectors


@_frozen
class Requirement:
    """One matchExpressions entry. Gt/Lt (node labels only) compare as integers."""

    key: str
    operator: str
    values: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        _set(self, "values", tuple(str(v) for v in self.values))
        op, n = self.operator, len(self.values)
        if op not in NODE_OPS:
            raise ValueError(f"{self.key}: unknown operator {op!r} (expected one of {', '.join(NODE_OPS)})")
        if op in ("In", "NotIn") and n == 0:
            raise ValueError(f"{self.key}: operator {op} needs values")
        if op in ("Exists", "DoesNotExist") and n:
            raise ValueError(f"{self.key}: operator {op} takes no values")
        if op in ("Gt", "Lt") and (n != 1 or parse_int64(self.values[0]) is None):
            raise ValueError(f"{self.key}: operator {op} needs exactly one integer value")

    def matches(self, labels: Mapping[str, str]) -> bool:
        op, value = self.operator, labels.get(self.key)
        if op == "In":
            return value is not None and value in self.values
        if op == "NotIn":
            return value is None or value not in self.values
        if op == "Exists":
            return value is not None
        if op == "DoesNotExist":
            return value is None
        number = None if value is None else parse_int64(value)
        if number is None:
            return False
        bound = int(self.values[0])
        return number > bound if op == "Gt" else number < bound


@_frozen
class LabelSelector:
    """metav1.LabelSelector: matchLabels and matchExpressions ANDed; empty matches all.

    Where Kubernetes allows a nil selector (affinity terms, spread constraints) the
    field here is `LabelSelector | None`, and None matches nothing, as in Kubernetes.
    """

    match_labels: Pairs = ()
    match_expressions: tuple[Requirement, ...] = ()

    def __post_init__(self) -> None:
        _set(self, "match_labels", pairs(self.match_labels))
        _tuple(self, "match_expressions")
        for r in self.match_expressions:
            if r.operator not in SELECTOR_OPS:
                raise ValueError(f"{r.key}: operator {r.operator} is not allowed in a label selector")

    def matches(self, labels: Mapping[str, str]) -> bool:
        for k, v in self.match_labels:
            if labels.get(k) != v:
                return False
        return all(r.matches(labels) for r in self.match_expressions)


@_frozen
class NodeSelectorTerm:
    """Expressions (and fields: metadata.name In/NotIn) ANDed; an empty term matches nothing."""

    match_expressions: tuple[Requirement, ...] = ()
    match_fields: tuple[Requirement, ...] = ()

    def __post_init__(self) -> None:
        _tuple(self, "match_expressions", "match_fields")
        for r in self.match_fields:
            if r.key != "metadata.name" or r.operator not in ("In", "NotIn"):
                raise ValueError(f"matchFields supports metadata.name In/NotIn only, not {r.key} {r.operator}")

    def matches(self, labels: Mapping[str, str], name: str) -> bool:
        if not self.match_expressions and not self.match_fields:
            return False
        field_labels = {"metadata.name": name}
        return (all(r.matches(labels) for r in self.match_expressions)
                and all(r.matches(field_labels) for r in self.match_fields))


@_frozen
class PreferredSchedulingTerm:
    weight: int
    preference: NodeSelectorTerm

    def __post_init__(self) -> None:
        if not 1 <= self.weight <= 100:
            raise ValueError(f"preferred node affinity weight {self.weight} is not in 1..100")


# ---------------------------------------------------------------- tolerations, affinity, spread


# Toleration is model.Toleration (one type for manifests, workloads and the scheduler;
# re-exported here and by the package).


def tolerated(taint: Taint, tolerations: tuple[Toleration, ...]) -> bool:
    return any(t.tolerates(taint) for t in tolerations)


@_frozen
class PodAffinityTerm:
    """Pods matching `label_selector` in `namespaces` (empty: the term owner's namespace;
    all_namespaces: namespaceSelector {}), co-located by `topology_key`."""

    label_selector: LabelSelector | None
    topology_key: str
    namespaces: tuple[str, ...] = ()
    all_namespaces: bool = False

    def __post_init__(self) -> None:
        _tuple(self, "namespaces")
        if not self.topology_key:
            raise ValueError("a pod affinity term needs a topologyKey")


@_frozen
class WeightedPodAffinityTerm:
    weight: int
    term: PodAffinityTerm

    def __post_init__(self) -> None:
        if not 1 <= self.weight <= 100:
            raise ValueError(f"preferred pod affinity weight {self.weight} is not in 1..100")


@_frozen
class TopologySpreadConstraint:
    max_skew: int
    topology_key: str
    when_unsatisfiable: str = "DoNotSchedule"  # | ScheduleAnyway
    label_selector: LabelSelector | None = None  # None counts nothing, as in Kubernetes
    min_domains: int | None = None  # DoNotSchedule only
    node_affinity_policy: str = "Honor"  # | Ignore: count only hosts the pod may go to
    node_taints_policy: str = "Ignore"  # | Honor

    def __post_init__(self) -> None:
        if self.max_skew < 1:
            raise ValueError(f"maxSkew {self.max_skew} must be at least 1")
        if self.when_unsatisfiable not in ("DoNotSchedule", "ScheduleAnyway"):
            raise ValueError(f"whenUnsatisfiable {self.when_unsatisfiable!r} is not DoNotSchedule or ScheduleAnyway")
        if self.min_domains is not None and (self.min_domains < 1 or self.when_unsatisfiable != "DoNotSchedule"):
            raise ValueError("minDomains must be >= 1 and needs whenUnsatisfiable DoNotSchedule")
        for policy in (self.node_affinity_policy, self.node_taints_policy):
            if policy not in ("Honor", "Ignore"):
                raise ValueError(f"node inclusion policy {policy!r} is not Honor or Ignore")


# ---------------------------------------------------------------- pods, hosts, snapshot


@_frozen
class SchedPod:
    """What the scheduler needs of one pod. Requests are the pod's effective requests
    (Kubernetes: max(sum of app containers, largest init container) + overhead);
    nonzero_* are the scoring requests (a container without a request counts 100m /
    200Mi) and default to the requests, or 100m / 200Mi where those are 0."""

    key: str  # namespace/name
    namespace: str = "default"
    labels: Pairs = ()
    cpu_m: int = 0
    memory: int = 0
    nonzero_cpu_m: int | None = None
    nonzero_memory: int | None = None
    node_name: str | None = None
    node_selector: Pairs = ()
    required_node_affinity: tuple[NodeSelectorTerm, ...] | None = None  # terms ORed; None: none
    preferred_node_affinity: tuple[PreferredSchedulingTerm, ...] = ()
    tolerations: tuple[Toleration, ...] = ()
    pod_affinity: tuple[PodAffinityTerm, ...] = ()  # required
    pod_anti_affinity: tuple[PodAffinityTerm, ...] = ()  # required
    preferred_pod_affinity: tuple[WeightedPodAffinityTerm, ...] = ()
    preferred_pod_anti_affinity: tuple[WeightedPodAffinityTerm, ...] = ()
    topology_spread: tuple[TopologySpreadConstraint, ...] = ()
    host_ports: tuple[tuple[int, str], ...] = ()  # (port, protocol)
    images: tuple[str, ...] = ()  # one per container (init and app, repeats kept): digests
                                  # (or normalised refs: whatever hosts report)
    current_host: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.labels, tuple):
            _set(self, "labels", pairs(self.labels))
        if not isinstance(self.node_selector, tuple):
            _set(self, "node_selector", pairs(self.node_selector))
        _tuple(self, "required_node_affinity", "preferred_node_affinity", "tolerations",
               "pod_affinity", "pod_anti_affinity", "preferred_pod_affinity",
               "preferred_pod_anti_affinity", "topology_spread", "images")
        if not isinstance(self.host_ports, tuple) or any(not isinstance(p, tuple) for p in self.host_ports):
            _set(self, "host_ports", tuple((int(p), str(proto)) for p, proto in self.host_ports))
        if self.cpu_m < 0 or self.memory < 0:
            raise ValueError(f"{self.key}: negative resource request")
        d = self.__dict__
        d["label_map"] = dict(self.labels)
        d["score_cpu_m"] = self.nonzero_cpu_m if self.nonzero_cpu_m is not None else (self.cpu_m or DEFAULT_CPU_REQUEST_M)
        d["score_memory"] = (self.nonzero_memory if self.nonzero_memory is not None
                             else (self.memory or DEFAULT_MEMORY_REQUEST))

    # Derived values, set once in __post_init__ (not fields: not compared, not hashed):
    # label_map (labels as a dict); score_cpu_m / score_memory (the scoring requests).
    label_map: ClassVar[dict]
    score_cpu_m: ClassVar[int]
    score_memory: ClassVar[int]


@_frozen
class SchedHost:
    """A host as the scheduler sees it: labels, taints, health and allocatable resources."""

    name: str
    labels: Pairs = ()
    taints: tuple[Taint, ...] = ()
    ready: bool = True
    cordoned: bool = False
    cpu_m: int = 0  # allocatable millicores
    memory: int = 0  # allocatable bytes
    pods: int = 110
    images: frozenset[str] = frozenset()

    # Derived, set in __post_init__ (not a field): the labels as a dict, with the
    # hostname label (the host's name) unless the labels set it.
    label_map: ClassVar[dict]

    def __post_init__(self) -> None:
        if not isinstance(self.labels, tuple):
            _set(self, "labels", pairs(self.labels))
        _tuple(self, "taints")
        if not isinstance(self.images, frozenset):
            _set(self, "images", frozenset(self.images))
        self.__dict__["label_map"] = {HOSTNAME_LABEL: self.name, **dict(self.labels)}


@_frozen
class BoundPod:
    """A pod already bound to a host (running, or placed earlier in this run)."""

    host: str
    pod: SchedPod


@_frozen
class Snapshot:
    """`image_sizes`: (image, bytes) for ImageLocality, which, as in Kubernetes, gives
    nothing for an image it knows no size of or one smaller than 23 MB."""

    hosts: tuple[SchedHost, ...]
    bound: tuple[BoundPod, ...] = ()
    image_sizes: Pairs = ()

    def __post_init__(self) -> None:
        _tuple(self, "hosts", "bound")
        if not isinstance(self.image_sizes, tuple):
            _set(self, "image_sizes", tuple(sorted(dict(self.image_sizes).items())))

    def bind(self, placements) -> Snapshot:
        """The snapshot with each placed pod of `placements` bound to its host."""
        extra = tuple(BoundPod(p.host, p.sched_pod) for p in placements if p.host)
        return Snapshot(self.hosts, self.bound + extra, self.image_sizes)


@_frozen
class SchedulerConfig:
    """scoring_strategy: LeastAllocated spreads load (default), MostAllocated bin-packs.
    weights: (plugin name, weight) overriding registry.DEFAULT_WEIGHTS (0 turns a scorer off).
    explain: "chosen" keeps every host's rejection and the chosen host's score card;
    "full" also keeps a score card for every feasible host (slower; for `plan -v`)."""

    scoring_strategy: str = "LeastAllocated"
    weights: Pairs = ()
    cpu_weight: int = 1  # resource weights of the allocation scorers
    memory_weight: int = 1
    hard_pod_affinity_weight: int = 1  # Kubernetes' hardPodAffinityWeight (0..100)
    explain: str = "chosen"

    def __post_init__(self) -> None:
        if self.scoring_strategy not in ("LeastAllocated", "MostAllocated"):
            raise ValueError(f"scoring strategy {self.scoring_strategy!r} is not LeastAllocated or MostAllocated")
        if self.explain not in ("chosen", "full"):
            raise ValueError(f"explain {self.explain!r} is not chosen or full")
        if not isinstance(self.weights, tuple):
            _set(self, "weights", tuple(sorted(dict(self.weights).items())))
        if self.cpu_weight < 0 or self.memory_weight < 0 or not 0 <= self.hard_pod_affinity_weight <= 100:
            raise ValueError("resource weights must be >= 0 and hard_pod_affinity_weight in 0..100")
