"""What the workload controllers share: their inputs (OwnedPod, HostInfo), their output
(WorkloadDecision), pod naming and manifests, template hashes, pod ranking, Kubernetes
conditions and timestamps, revision history. Pure functions; time and randomness are
parameters.
"""

from __future__ import annotations

import copy
import json
import random
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Iterable, Mapping, Sequence

from ..model import Pairs, Taint, pairs
from .specs import PodTemplate, Toleration

# Kubernetes' alphabet for generated names and hashes (no vowels, no 0/1/3: no words)
ALPHABET = "bcdfghjklmnpqrstvwxz2456789"
SUFFIX_LENGTH = 5
MAX_GENERATED_PREFIX = 63 - SUFFIX_LENGTH  # Kubernetes' maxGeneratedNameLength
TERMINAL = ("Succeeded", "Failed")
PHASES = ("Pending", "Running", "Succeeded", "Failed", "Unknown")

# ---------------------------------------------------------------- inputs


@dataclass(frozen=True)
class OwnedPod:
    """What a controller needs to know about a pod it owns (a store row plus what its
    host last reported). `template_hash` empty: read from the labels."""

    uid: str
    name: str
    labels: Pairs = ()
    template_hash: str = ""
    phase: str = "Pending"  # Pending | Running | Succeeded | Failed | Unknown
    ready: bool = False
    ready_since: float | None = None  # when it became ready (None: unknown or not ready)
    created_at: float = 0.0
    host: str | None = None  # bound or pinned host; None while unscheduled
    deleting: bool = False
    restart_count: int = 0  # summed over containers
    exit_codes: tuple[int, ...] = ()  # of terminated containers
    reasons: tuple[str, ...] = ()  # of terminated containers (Completed, Error, OOMKilled...)
    finished_at: float | None = None  # when it became Succeeded/Failed, if known

    def __post_init__(self) -> None:
        if not isinstance(self.labels, tuple):
            object.__setattr__(self, "labels", pairs(self.labels))
        if self.phase not in PHASES:
            raise ValueError(f"pod {self.name}: phase {self.phase!r} is not one of {PHASES}")

    def hash_label(self, key: str) -> str:
        return self.template_hash or dict(self.labels).get(key, "")

    @property
    def active(self) -> bool:
        """Kubernetes' FilterActivePods: not being deleted and not finished."""
        return not self.deleting and self.phase not in TERMINAL

    def available(self, min_ready_seconds: int, now: float) -> bool:
        """Kubernetes' IsPodAvailable: ready, and for minReadySeconds already."""
        if not self.ready:
            return False
        if min_ready_seconds <= 0:
            return True
        return self.ready_since is not None and self.ready_since + min_ready_seconds < now


@dataclass(frozen=True)
class HostInfo:
    """A host as the controllers see it. `ready` False adds Kubernetes' not-ready taints,
    `unschedulable` (cordoned) its unschedulable taint. `lost`: NotReady by podctl's
    health rules; `fenced`: an operator or a fence command confirmed it down (or its
    pods killed). StatefulSets replace a pod on a lost host only once it is fenced."""

    name: str
    labels: Pairs = ()
    taints: tuple[Taint, ...] = ()
    ready: bool = True
    unschedulable: bool = False
    lost: bool = False
    fenced: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.labels, tuple):
            object.__setattr__(self, "labels", pairs(self.labels))
        object.__setattr__(self, "taints", tuple(self.taints))

    def effective_taints(self) -> tuple[Taint, ...]:
        """The host's taints plus those Kubernetes' node controllers would add."""
        extra = []
        if not self.ready:
            extra += [Taint("node.kubernetes.io/not-ready", "", "NoSchedule"),
                      Taint("node.kubernetes.io/not-ready", "", "NoExecute")]
        if self.unschedulable:
            extra.append(Taint("node.kubernetes.io/unschedulable", "", "NoSchedule"))
        return self.taints + tuple(t for t in extra if t not in self.taints)


def owned_pod_from_k8s(pod: Mapping, *, uid: str, created_at: float, host: str | None,
                       deleting: bool) -> OwnedPod:
    """An OwnedPod from a Kubernetes-shaped pod object (what orchestrator.views.pod_object
    returns: metadata, status.phase, status.conditions, status.containerStatuses) and
    the store row's facts. ready_since is the latest container start of a ready pod
    (the Ready condition's lastTransitionTime, else the latest container start);
    finished_at the latest container finish of a Succeeded/Failed pod."""
    meta = pod.get("metadata") or {}
    status = pod.get("status") or {}
    phase = status.get("phase") if status.get("phase") in PHASES else "Unknown"
    ready_cond = [c for c in status.get("conditions") or [] if c.get("type") == "Ready"]
    ready = any(c.get("status") == "True" for c in ready_cond)
    # Readiness probes decide Ready: it became ready at the condition's transition.
    ready_at = parse_time(ready_cond[0].get("lastTransitionTime")) if ready and ready_cond else None
    starts, finishes, codes, reasons, restarts = [], [], [], [], 0
    for c in status.get("containerStatuses") or []:
        restarts += int(c.get("restartCount") or 0)
        state = c.get("state") or {}
        running = state.get("running") or {}
        if parse_time(running.get("startedAt")) is not None:
            starts.append(parse_time(running.get("startedAt")))
        term = state.get("terminated")
        if term:
            codes.append(int(term.get("exitCode", 1)))
            reasons.append(str(term.get("reason") or ("Completed" if codes[-1] == 0 else "Error")))
            if parse_time(term.get("finishedAt")) is not None:
                finishes.append(parse_time(term.get("finishedAt")))
    return OwnedPod(
        uid=uid, name=str(meta.get("name") or ""), labels=meta.get("labels") or {},
        phase=phase, ready=ready and phase == "Running",
        ready_since=ready_at if ready_at is not None else (max(starts) if ready and starts else None),
        created_at=created_at,
        host=host, deleting=deleting, restart_count=restarts, exit_codes=tuple(codes),
        reasons=tuple(reasons),
        finished_at=max(finishes) if finishes and phase in TERMINAL else None)


# ---------------------------------------------------------------- output


@dataclass(frozen=True)
class PodToCreate:
    name: str
    manifest: dict  # a complete kind Pod document (validate_pod accepts it)
    revision_hash: str = ""  # pod-template-hash / controller-revision-hash ("" for Jobs)
    host: str | None = None  # DaemonSet: the host it is pinned to (also spec.nodeName)


@dataclass(frozen=True)
class PodToDelete:
    uid: str
    name: str
    reason: str


@dataclass(frozen=True)
class Event:
    type: str  # Normal | Warning
    reason: str  # ScalingReplicaSet, SuccessfulCreate, SuccessfulDelete, Completed...
    message: str


@dataclass(frozen=True)
class WorkloadDecision:
    create: list[PodToCreate] = field(default_factory=list)
    delete: list[PodToDelete] = field(default_factory=list)
    status: dict = field(default_factory=dict)  # Kubernetes-shaped .status of the object
    history: list[dict] | None = None  # revision records to keep (Deployment, DaemonSet)
    events: list[Event] = field(default_factory=list)
    requeue_after: float | None = None  # seconds until time alone changes the decision
    delete_object: bool = False  # Job: ttlSecondsAfterFinished has passed
    notes: list[str] = field(default_factory=list)  # for the plan, every step (not stored)
    state: dict | None = None  # private controller state kept with the status (StatefulSet)

    @property
    def empty(self) -> bool:
        return not self.create and not self.delete


# The store keeps one JSON per object (objects.status): the Kubernetes status plus,
# under these keys, the revision history and the controller's private state (a
# StatefulSet's claim -> host pins). Never shown: workload_object drops them.
HISTORY_KEY = "podctlRevisionHistory"
STATE_KEY = "podctlControllerState"


def to_store(decision: WorkloadDecision) -> dict:
    """What to write with Store.set_object_status after a decision."""
    out = dict(decision.status)
    if decision.history is not None:
        out[HISTORY_KEY] = decision.history
    if decision.state is not None:
        out[STATE_KEY] = decision.state
    return out


def from_store(stored: Mapping | None) -> tuple[dict, list[dict]]:
    """(prev_status, history) to pass to the next reconcile from ObjectRow.status."""
    stored = dict(stored or {})
    history = stored.pop(HISTORY_KEY, None)
    stored.pop(STATE_KEY, None)
    return stored, list(history) if isinstance(history, list) else []


def state_from_store(stored: Mapping | None) -> dict:
    """The controller's private state from ObjectRow.status ({} when none)."""
    state = (stored or {}).get(STATE_KEY)
    return dict(state) if isinstance(state, Mapping) else {}


class _Builder:
    """Collects a controller's creates, deletes and events; hands out unique names."""

    def __init__(self, pods: Sequence[OwnedPod], rng: random.Random | None):
        self.rng = rng if rng is not None else random.Random()
        self.taken = {p.name for p in pods}
        self.create: list[PodToCreate] = []
        self.delete: list[PodToDelete] = []
        self.deleted: set[str] = set()
        self.events: list[Event] = []
        self.waits: list[float] = []

    def name(self, prefix: str) -> str:
        prefix = prefix[:MAX_GENERATED_PREFIX]
        while True:
            name = prefix + "".join(self.rng.choice(ALPHABET) for _ in range(SUFFIX_LENGTH))
            if name not in self.taken:
                self.taken.add(name)
                return name

    def add(self, pod: PodToCreate) -> None:
        self.create.append(pod)

    def remove(self, pod: OwnedPod, reason: str) -> None:
        if pod.uid not in self.deleted and not pod.deleting:
            self.deleted.add(pod.uid)
            self.delete.append(PodToDelete(pod.uid, pod.name, reason))

    def event(self, type_: str, reason: str, message: str) -> None:
        self.events.append(Event(type_, reason, message))

    def wait(self, seconds: float) -> None:
        if seconds > 0:
            self.waits.append(seconds)

    @property
    def empty(self) -> bool:
        return not self.create and not self.delete

    def requeue_after(self) -> float | None:
        return min(self.waits) if self.waits else None

    def alive(self, pods: Iterable[OwnedPod]) -> list[OwnedPod]:
        """The active pods that this decision does not delete."""
        return [p for p in pods if p.active and p.uid not in self.deleted]


# ---------------------------------------------------------------- pods from templates


def pod_manifest(template: PodTemplate, name: str, namespace: str, labels: Mapping[str, str],
                 node_name: str | None = None,
                 tolerations: Iterable[Toleration] = ()) -> dict:
    """A kind Pod document from a workload template: the template's labels plus
    `labels`, its annotations, its spec as written (deep-copied), `node_name` pinned,
    and `tolerations` added where the template has no equal one."""
    meta: dict = {"name": name, "namespace": namespace,
                  "labels": {**dict(template.labels), **dict(labels)}}
    if template.annotations:
        meta["annotations"] = dict(template.annotations)
    raw_spec = template.raw.get("spec") if isinstance(template.raw, Mapping) else None
    spec = copy.deepcopy(dict(raw_spec or {}))
    if node_name is not None:
        spec["nodeName"] = node_name
    extra = [t.to_k8s() for t in tolerations]
    if extra:
        have = list(spec.get("tolerations") or [])
        spec["tolerations"] = have + [t for t in extra if t not in have]
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": spec}


def _fnv32a(data: bytes) -> int:
    h = 0x811C9DC5
    for byte in data:
        h = ((h ^ byte) * 0x01000193) & 0xFFFFFFFF
    return h


def template_hash(template: PodTemplate | Mapping, ignore_labels: Iterable[str] = ()) -> str:
    """A stable 10-character hash of a pod template, like Kubernetes' pod-template-hash
    (FNV-32a, digits spelled in the generated-name alphabet). Computed over the labels,
    annotations and spec as written (`ignore_labels` left out), so applying the same
    manifest again gives the same hash, and any change to the template a new one."""
    raw = template.raw if isinstance(template, PodTemplate) else template
    meta = raw.get("metadata") or {}
    ignored = set(ignore_labels)
    labels = {k: "" if v is None else v for k, v in (meta.get("labels") or {}).items()
              if k not in ignored}
    annotations = {k: "" if v is None else v for k, v in (meta.get("annotations") or {}).items()}
    canonical = json.dumps({"labels": labels, "annotations": annotations,
                            "spec": raw.get("spec") or {}},
                           sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    digits = f"{_fnv32a(canonical.encode()):010d}"
    return "".join(ALPHABET[ord(c) % len(ALPHABET)] for c in digits)


# ---------------------------------------------------------------- which pod goes first

_PHASE_ORDER = {"Pending": 0, "Unknown": 1, "Running": 2}


def deletion_order(pods: Sequence[OwnedPod], related: Sequence[OwnedPod] = ()) -> list[OwnedPod]:
    """`pods` in the order Kubernetes deletes them when scaling down (ActivePodsWithRanks):
    unscheduled first; Pending, then Unknown, then Running; not ready before ready; pods
    doubled up on a host (counting `related` pods too) first; ready more recently first;
    more restarts first; newer first."""
    on_host: dict[str, int] = {}
    for p in {q.uid: q for q in list(related) + list(pods)}.values():
        if p.host is not None and p.active:
            on_host[p.host] = on_host.get(p.host, 0) + 1

    def key(p: OwnedPod):
        ready_time = -(p.ready_since if p.ready_since is not None else float("inf")) if p.ready else 0.0
        return (p.host is not None, _PHASE_ORDER.get(p.phase, 0), p.ready,
                -on_host.get(p.host or "", 0), ready_time, -p.restart_count, -p.created_at,
                p.name)

    return sorted(pods, key=key)


# ---------------------------------------------------------------- time and conditions


def rfc3339(ts: float | None) -> str | None:
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(text: object) -> float | None:
    """An RFC 3339 time as written in a status (None if absent or unreadable)."""
    if not isinstance(text, str) or not text:
        return None
    try:
        value = datetime.fromisoformat(text)  # Python 3.11 reads a trailing Z
    except ValueError:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    return value.timestamp()


def conditions_of(status: Mapping | None) -> dict[str, dict]:
    out = {}
    for c in (status or {}).get("conditions") or []:
        if isinstance(c, Mapping) and isinstance(c.get("type"), str):
            out[c["type"]] = dict(c)
    return out


def set_condition(conditions: dict[str, dict], type_: str, status: str, reason: str,
                  message: str, now: float, *, times: tuple[str, ...] = ("lastUpdateTime",
                                                                         "lastTransitionTime")) -> None:
    """Kubernetes' SetDeploymentCondition: the same status and reason changes nothing;
    the same status keeps lastTransitionTime."""
    current = conditions.get(type_)
    if current and current.get("status") == status and current.get("reason") == reason:
        return
    stamp = rfc3339(now)
    cond = {"type": type_, "status": status, **{t: stamp for t in times}, "reason": reason,
            "message": message}
    if current and current.get("status") == status and "lastTransitionTime" in current:
        cond["lastTransitionTime"] = current["lastTransitionTime"]
    conditions[type_] = cond


# ---------------------------------------------------------------- revision history


def record_revision(history: Sequence[Mapping], hash_: str, template: Mapping, now: float,
                    create: bool = True) -> tuple[list[dict], int | None, bool]:
    """History with `hash_` as the newest revision, as Kubernetes numbers ReplicaSets: a
    new template gets max+1; an older template coming back (undo) moves to max+1.
    Returns (history, its revision or None, whether it was added). With `create` False
    (a paused Deployment) a missing template is not added."""
    records = [dict(r) for r in history]
    top = max((int(r.get("revision", 0)) for r in records), default=0)
    for r in records:
        if r.get("hash") == hash_:
            if int(r.get("revision", 0)) != top:
                r["revision"] = top + 1
            return _by_revision(records), r["revision"], False
    if not create:
        return _by_revision(records), None, False
    records.append({"revision": top + 1, "hash": hash_, "template": copy.deepcopy(dict(template)),
                    "createdAt": rfc3339(now)})
    return _by_revision(records), top + 1, True


def trim_history(history: list[dict], current: str, in_use: set[str], limit: int) -> list[dict]:
    """Kubernetes' cleanupDeployment: keep at most `limit` old revisions, dropping the
    oldest first, never one that still has pods, never the current one."""
    old = [r for r in history if r.get("hash") != current]
    excess = len(old) - limit
    drop = set()
    for r in sorted(old, key=lambda r: r.get("revision", 0)):
        if excess <= 0:
            break
        if r.get("hash") not in in_use:
            drop.add(r.get("hash"))
            excess -= 1
    return [r for r in history if r.get("hash") not in drop]


def _by_revision(records: list[dict]) -> list[dict]:
    return sorted(records, key=lambda r: r.get("revision", 0))
