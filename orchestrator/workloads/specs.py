"""Validated workload objects (Deployment, Job, DaemonSet, StatefulSet) and the values
they share.

Frozen dataclasses, like model.py; `orchestrator.manifests` builds them (via
workloads/validation.py) and keeps them as `Manifest.obj`. Every workload has `.meta`
(an ObjectMeta) and `.template` (a PodTemplate whose `raw` is the template exactly as
written: pods are created from it, so fields the model does not hold yet, such as
tolerations, reach the pod unchanged).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Mapping

from ..model import (  # noqa: F401 (re-exported: Toleration and its values live in model)
    TAINT_EFFECTS,
    TOLERATION_OPERATORS,
    ObjectMeta,
    Pairs,
    PodSpec,
    Taint,
    Toleration,
)

IntOrPercent = int | str  # 3 or "25%" (validated: a percent string is digits and '%')

# ---------------------------------------------------------------- label selectors

SELECTOR_OPERATORS = ("In", "NotIn", "Exists", "DoesNotExist")


@dataclass(frozen=True)
class Requirement:
    """One matchExpressions entry."""

    key: str
    operator: str  # In | NotIn | Exists | DoesNotExist
    values: tuple[str, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        if self.operator == "In":
            return self.key in labels and labels[self.key] in self.values
        if self.operator == "NotIn":
            return self.key not in labels or labels[self.key] not in self.values
        if self.operator == "Exists":
            return self.key in labels
        return self.key not in labels  # DoesNotExist


@dataclass(frozen=True)
class LabelSelector:
    """Kubernetes' LabelSelector: every matchLabels pair and every expression must hold.
    An empty selector matches everything (workloads reject it at validation)."""

    match_labels: Pairs = ()
    match_expressions: tuple[Requirement, ...] = ()

    @property
    def empty(self) -> bool:
        return not self.match_labels and not self.match_expressions

    def matches(self, labels: Mapping[str, str] | Pairs) -> bool:
        labels = dict(labels)
        return (all(labels.get(k) == v for k, v in self.match_labels)
                and all(r.matches(labels) for r in self.match_expressions))

    def to_k8s(self) -> dict:
        out: dict = {}
        if self.match_labels:
            out["matchLabels"] = dict(self.match_labels)
        if self.match_expressions:
            out["matchExpressions"] = [
                {"key": r.key, "operator": r.operator, **({"values": list(r.values)} if r.values else {})}
                for r in self.match_expressions]
        return out

    def __str__(self) -> str:
        """kubectl's SELECTOR column: app=web,tier in (a,b),!gone."""
        parts = [f"{k}={v}" for k, v in self.match_labels]
        for r in self.match_expressions:
            if r.operator == "In":
                parts.append(f"{r.key} in ({','.join(sorted(r.values))})")
            elif r.operator == "NotIn":
                parts.append(f"{r.key} notin ({','.join(sorted(r.values))})")
            elif r.operator == "Exists":
                parts.append(r.key)
            else:
                parts.append(f"!{r.key}")
        return ",".join(parts) or "<none>"


# ---------------------------------------------------------------- tolerations
# Toleration (and its operators and effects) is model.Toleration, re-exported here.


def parse_tolerations(raw: object) -> tuple[Toleration, ...]:
    """The tolerations of a validated pod document's spec.tolerations (a list of
    mappings; anything else counts as none), for placement to honour. An entry the
    manifest layer would have refused (a hand-edited store) is left out: a pod then
    tolerates less, never more."""
    out = []
    for t in raw if isinstance(raw, list) else ():
        if isinstance(t, Mapping):
            try:
                out.append(Toleration.from_k8s(t))
            except (ValueError, TypeError):
                continue
    return tuple(out)


def untolerated(taints: tuple[Taint, ...], tolerations: tuple[Toleration, ...],
                effects: tuple[str, ...] = ("NoSchedule", "NoExecute")) -> Taint | None:
    """The first taint with one of `effects` that no toleration tolerates (None: all fine)."""
    for taint in taints:
        if taint.effect in effects and not any(t.tolerates(taint) for t in tolerations):
            return taint
    return None


# ---------------------------------------------------------------- pod templates


@dataclass(frozen=True)
class PodTemplate:
    """spec.template of a workload: labels and annotations for its pods, and the pod spec.
    `raw` is the template mapping as written (JSON values), the source of created pods."""

    labels: Pairs
    annotations: Pairs
    spec: PodSpec
    tolerations: tuple[Toleration, ...] = ()
    raw: Mapping = field(default_factory=dict, hash=False, compare=True)

    @property
    def label_map(self) -> dict[str, str]:
        return dict(self.labels)


# ---------------------------------------------------------------- int or percent

_PERCENT = re.compile(r"[0-9]+%")


def is_percent(value: IntOrPercent) -> bool:
    return isinstance(value, str) and _PERCENT.fullmatch(value) is not None


def scaled(value: IntOrPercent, total: int, round_up: bool) -> int:
    """Kubernetes' GetScaledValueFromIntOrPercent: an int as is, a percent of `total`."""
    if isinstance(value, int):
        return value
    percent = int(value[:-1])
    whole, rest = divmod(percent * total, 100)
    return whole + (1 if round_up and rest else 0)


# ---------------------------------------------------------------- the workloads


class _Named:
    meta: ObjectMeta

    @property
    def name(self) -> str:
        return self.meta.name

    @property
    def namespace(self) -> str:
        return self.meta.namespace

    @property
    def key(self) -> str:
        return f"{self.meta.namespace}/{self.meta.name}"


@dataclass(frozen=True)
class Deployment(_Named):
    meta: ObjectMeta
    selector: LabelSelector
    template: PodTemplate
    replicas: int = 1
    strategy: str = "RollingUpdate"  # | Recreate
    max_surge: IntOrPercent = "25%"  # RollingUpdate only
    max_unavailable: IntOrPercent = "25%"
    min_ready_seconds: int = 0
    revision_history_limit: int = 10
    paused: bool = False
    progress_deadline_seconds: int = 600
    source: str = ""

    def rolling_limits(self) -> tuple[int, int]:
        """(maxSurge, maxUnavailable) in pods, as Kubernetes resolves them
        (ResolveFenceposts): surge rounds up, unavailable down; never both 0."""
        if self.strategy != "RollingUpdate":
            return 0, 0
        surge = scaled(self.max_surge, self.replicas, round_up=True)
        unavailable = scaled(self.max_unavailable, self.replicas, round_up=False)
        if surge == 0 and unavailable == 0:
            unavailable = 1
        return surge, unavailable


@dataclass(frozen=True)
class Job(_Named):
    meta: ObjectMeta
    template: PodTemplate
    completions: int | None = 1  # None: a work queue (done once one pod succeeded)
    parallelism: int = 1
    backoff_limit: int = 6
    active_deadline_seconds: int | None = None
    ttl_seconds_after_finished: int | None = None
    completion_mode: str = "NonIndexed"
    selector: LabelSelector | None = None  # None: generated from the Job's uid
    manual_selector: bool = False
    source: str = ""


@dataclass(frozen=True)
class DaemonSet(_Named):
    meta: ObjectMeta
    selector: LabelSelector
    template: PodTemplate
    update_strategy: str = "RollingUpdate"  # | OnDelete
    max_unavailable: IntOrPercent = 1
    min_ready_seconds: int = 0
    revision_history_limit: int = 10
    source: str = ""

    def max_unavailable_for(self, desired: int) -> int:
        """maxUnavailable in pods for `desired` scheduled hosts (percent rounds up; >= 1)."""
        return max(1, scaled(self.max_unavailable, desired, round_up=True))


# podctl keeps every claim of a StatefulSet as a directory on its pod's host, like a
# local PersistentVolume: CLAIMS_ROOT/<namespace>/<claim>, claim = <template>-<set>-<ordinal>
CLAIMS_ROOT = "/var/lib/podctl/claims"


@dataclass(frozen=True)
class ClaimTemplate:
    """One volumeClaimTemplates entry: its name is the volume name containers mount."""

    name: str
    access_modes: tuple[str, ...] = ("ReadWriteOnce",)
    storage: int | None = None  # requests.storage in bytes (recorded, not enforced)
    storage_class: str | None = None


def claim_name(template: str, statefulset: str, ordinal: int) -> str:
    """Kubernetes' PVC name for a StatefulSet pod: <template>-<statefulset>-<ordinal>."""
    return f"{template}-{statefulset}-{ordinal}"


def claim_path(namespace: str, claim: str) -> str:
    """The claim's directory on its host. Both parts are validated DNS-1123 labels
    (no '/', no '..'), so the path cannot leave CLAIMS_ROOT."""
    return f"{CLAIMS_ROOT}/{namespace}/{claim}"


@dataclass(frozen=True)
class StatefulSet(_Named):
    meta: ObjectMeta
    selector: LabelSelector
    template: PodTemplate
    replicas: int = 1
    service_name: str = ""  # recorded only: podctl has no DNS
    pod_management_policy: str = "OrderedReady"  # | Parallel
    update_strategy: str = "RollingUpdate"  # | OnDelete
    partition: int = 0  # RollingUpdate: ordinals below it keep the current revision
    claim_templates: tuple[ClaimTemplate, ...] = ()
    min_ready_seconds: int = 0
    revision_history_limit: int = 10
    source: str = ""

    def pod_name(self, ordinal: int) -> str:
        return f"{self.meta.name}-{ordinal}"

    def claims_of(self, ordinal: int) -> list[str]:
        return [claim_name(t.name, self.meta.name, ordinal) for t in self.claim_templates]
