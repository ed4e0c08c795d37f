"""The StatefulSet controller: Kubernetes' stateful_set_control, one step per call.

Pods are `<name>-0 .. <name>-(replicas-1)`, each its own hostname. OrderedReady (the
default) creates ordinal i only once 0..i-1 are Running and Ready (and available for
minReadySeconds), and deletes surplus pods highest ordinal first, one at a time;
Parallel creates and deletes them all at once. RollingUpdate replaces pods from the
highest ordinal down, one at a time, each after the one above is Running and Ready
again; ordinals below `partition` keep the current revision (status.currentRevision,
which becomes the update revision once every pod runs it). OnDelete leaves running pods
alone: a pod gets the new template when someone deletes it.

Claims: each volumeClaimTemplate is, per ordinal, the directory
/var/lib/podctl/claims/<namespace>/<template>-<name>-<ordinal> on the pod's host, mounted
as a hostPath volume (DirectoryOrCreate) named after the template. The host a claim's
first pod was bound to is kept in the controller's private state (`state`, stored with
the status) and every later pod of that ordinal gets `nodeName` = that host. The data
is never removed (Kubernetes' default retention, Retain): not on scale down, not when
the StatefulSet is deleted.

At most one copy of an ordinal, across host failure. A pod whose host is lost
(HostInfo.lost) may still be running there; it is replaced only once the host is also
fenced (HostInfo.fenced: confirmed down, or its pods killed). Until then the ordinal
waits, with a note naming `podctl fence HOST`. On a lost and fenced host the pod is
deleted, and once the store has it as deleted its successor (same name) is created
elsewhere, with a fresh claim: the old claim's data stays on the lost host, and an
event says so. A pod being deleted counts as existing until its host is fenced (or it
is gone from the store), so a successor never starts beside a copy that may still run.
A host missing from `hosts` counts as lost and not fenced.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass, field
from typing import Mapping, Sequence

from .common import (
    TERMINAL,
    HostInfo,
    OwnedPod,
    PodToCreate,
    WorkloadDecision,
    _Builder,
    pod_manifest,
    record_revision,
    template_hash,
    trim_history,
)
from .deployment import _template_of
from .specs import StatefulSet, claim_path

HASH_LABEL = "controller-revision-hash"
POD_NAME_LABEL = "statefulset.kubernetes.io/pod-name"
POD_INDEX_LABEL = "apps.kubernetes.io/pod-index"
_OWN_LABELS = (HASH_LABEL, POD_NAME_LABEL, POD_INDEX_LABEL)
_ORDINAL = re.compile(r"0|[1-9][0-9]*")


def revision_name(sts: StatefulSet) -> str:
    """The update revision, as Kubernetes names ControllerRevisions: <name>-<hash>."""
    return f"{sts.name}-{template_hash(sts.template, ignore_labels=_OWN_LABELS)}"


def ordinal_of(sts: StatefulSet, pod_name: str) -> int | None:
    prefix = sts.name + "-"
    rest = pod_name[len(prefix):] if pod_name.startswith(prefix) else ""
    return int(rest) if _ORDINAL.fullmatch(rest) else None


class _Hosts:
    """Where a pod's copies may run. With no host list at all nothing counts as lost."""

    def __init__(self, hosts: Sequence[HostInfo]):
        self.info = {h.name: h for h in hosts}

    def lost(self, host: str | None) -> bool:
        if host is None or not self.info:
            return False
        h = self.info.get(host)
        return h is None or h.lost

    def fenced(self, host: str | None) -> bool:
        h = self.info.get(host or "")
        return h is not None and h.lost and h.fenced

    def wait_note(self, host: str) -> str:
        if self.info and host not in self.info:
            return (f"waiting for host {host} to be fenced: it is not in the inventory; put it "
                    f"back and run `podctl fence {host}`")
        return f"waiting for host {host} to be fenced: `podctl fence {host}`"


@dataclass
class _Slot:
    """One ordinal: its live pod, and copies being deleted that may still run."""

    pod: OwnedPod | None = None
    terminating: list[OwnedPod] = field(default_factory=list)


class _Step:
    """One reconcile step of one StatefulSet: the builder plus what the rules read."""

    def __init__(self, sts: StatefulSet, pods: Sequence[OwnedPod], hosts: Sequence[HostInfo],
                 now: float, history: Sequence[Mapping], prev: Mapping, state: Mapping,
                 rng: random.Random | None):
        self.sts, self.now, self.hosts = sts, now, _Hosts(hosts)
        self.b = _Builder(pods, rng)
        self.update = revision_name(sts)
        self.history, _, _ = record_revision(history, self.update, sts.template.raw, now)
        self.templates = {r["hash"]: r["template"] for r in self.history}
        current = prev.get("currentRevision")
        self.current = current if current in self.templates else self.update
        self.claims: dict[str, str] = {k: v for k, v in dict(state.get("claims") or {}).items()
                                       if isinstance(k, str) and isinstance(v, str)}
        self.announced = dict(state.get("waiting") or {})
        self.waiting: dict[str, str] = {}
        self.notes: list[str] = []
        self.slots: dict[int, _Slot] = {}
        self.pods = list(pods)

    # ------------------------------------------------------------ observation

    def sort_pods(self) -> None:
        for p in sorted(self.pods, key=lambda p: (p.created_at, p.name)):
            i = ordinal_of(self.sts, p.name)
            if i is None:
                self.b.remove(p, "its name has no ordinal of this StatefulSet")
                continue
            slot = self.slots.setdefault(i, _Slot())
            if p.deleting:
                if not self.hosts.fenced(p.host):  # a fenced host's copies are dead
                    slot.terminating.append(p)
            elif slot.pod is None:
                slot.pod = p
            else:
                self.b.remove(p, f"a second live pod for ordinal {i}")

    def pin_claims(self) -> None:
        """A claim lives where its ordinal's pod was first bound."""
        for i, slot in sorted(self.slots.items()):
            pod = slot.pod
            if pod is None or pod.host is None:
                continue
            for claim in self.sts.claims_of(i):
                if claim not in self.claims:
                    self.claims[claim] = pod.host
                    self.b.event("Normal", "SuccessfulCreate",
                                 f"create Claim {claim} Pod {pod.name} in StatefulSet "
                                 f"{self.sts.name} success (directory "
                                 f"{claim_path(self.sts.namespace, claim)} on host {pod.host})")

    def evict_fenced(self) -> None:
        """Pods on lost and fenced hosts are deleted (their successors come once the store
        has them as deleted); pods on lost hosts not fenced wait, with a note."""
        for i, slot in sorted(self.slots.items()):
            pod = slot.pod
            if pod is not None and self.hosts.fenced(pod.host):
                self.b.remove(pod, f"host {pod.host} is lost and fenced: {pod.name} is "
                                   "re-created on another host")
                slot.terminating.append(pod)
                slot.pod = None
                continue
            if i >= self.sts.replicas:
                continue
            for p in ([pod] if pod is not None else []) + slot.terminating:
                if self.hosts.lost(p.host):
                    self.wait(p.name, p.host, f"pod {p.name} is on lost host {p.host}")
                    break

    def wait(self, name: str, host: str, what: str) -> None:
        self.waiting[name] = host
        self.notes.append(f"statefulset {self.sts.namespace}/{self.sts.name}: {what}; "
                          f"{self.hosts.wait_note(host)} (it is not replaced before: two "
                          "copies of one ordinal must never run)")
        if self.announced.get(name) != host:
            self.b.event("Warning", "WaitingForFence", f"{what}; {self.hosts.wait_note(host)}")

    def healthy(self, pod: OwnedPod | None) -> bool:
        """Running and Ready (available for minReadySeconds) on a host that is not lost."""
        if pod is None or pod.uid in self.b.deleted or self.hosts.lost(pod.host):
            return False
        if pod.phase != "Running" or not pod.ready:
            return False
        if not pod.available(self.sts.min_ready_seconds, self.now):
            if pod.ready_since is not None:
                self.b.wait(pod.ready_since + self.sts.min_ready_seconds - self.now + 0.001)
            return False
        return True

    # ------------------------------------------------------------ actions

    def create(self, i: int) -> None:
        sts, name = self.sts, self.sts.pod_name(i)
        claims = sts.claims_of(i)
        pinned = sorted({self.claims[c] for c in claims if c in self.claims})
        node = None
        if pinned:
            host = pinned[0]
            if self.hosts.fenced(host):
                for c in claims:
                    if self.claims.get(c) == host:
                        del self.claims[c]
                        what = (f"claim {c} on host {host} is left behind (lost unless {host} "
                                f"returns): pod {name} starts on another host with a new, "
                                "empty claim")
                        self.notes.append(f"statefulset {sts.namespace}/{sts.name}: {what}")
                        self.b.event("Warning", "ClaimLeftBehind", what)
            elif self.hosts.lost(host):
                self.wait(name, host, f"pod {name}: its claim {claims[0]} is on lost host {host}")
                return
            else:
                node = host
        rolling_old = sts.update_strategy == "RollingUpdate" and i < sts.partition
        revision = self.current if rolling_old else self.update
        template = sts.template if revision == self.update else _template_of(
            self.templates[revision])
        labels = {HASH_LABEL: revision, POD_NAME_LABEL: name, POD_INDEX_LABEL: str(i)}
        manifest = pod_manifest(template, name, sts.namespace, labels, node_name=node)
        _add_claim_volumes(manifest, sts, i)
        self.b.add(PodToCreate(name, manifest, revision_hash=revision, host=node))
        self.b.event("Normal", "SuccessfulCreate",
                     f"create Pod {name} in StatefulSet {sts.name} successful")

    def scale_up(self, monotonic: bool) -> bool:
        """The replicas loop; False when OrderedReady must stop this step."""
        for i in range(self.sts.replicas):
            slot = self.slots.setdefault(i, _Slot())
            pod = slot.pod
            if pod is not None and pod.phase in TERMINAL and not self.hosts.lost(pod.host):
                self.b.remove(pod, f"pod {pod.phase}: the StatefulSet re-creates it")
                slot.terminating.append(pod)
                slot.pod = None
                if monotonic:
                    return False
                continue
            if pod is None:
                if not slot.terminating:
                    self.create(i)
                if monotonic:
                    return False
                continue
            if monotonic and not self.healthy(pod):
                return False
        return True

    def scale_down(self, monotonic: bool) -> bool:
        """Surplus ordinals, highest first; False when OrderedReady must stop."""
        condemned = sorted(i for i in self.slots if i >= self.sts.replicas)
        ordered = [i for i in range(self.sts.replicas) if i in self.slots] + condemned
        first_unhealthy = next((i for i in ordered if self.slots[i].pod is not None
                                and not self.healthy(self.slots[i].pod)), None)
        for i in reversed(condemned):
            pod = self.slots[i].pod
            if pod is None:  # being deleted
                if monotonic:
                    return False
                continue
            if monotonic and not self.healthy(pod) and i != first_unhealthy:
                return False
            self.b.remove(pod, f"scale down to {self.sts.replicas} replicas")
            if monotonic:
                return False
        return True

    def rolling_update(self) -> None:
        """Highest ordinal first, down to the partition, one pod at a time."""
        for i in range(self.sts.replicas - 1, self.sts.partition - 1, -1):
            pod = self.slots[i].pod if i in self.slots else None
            if pod is None or pod.uid in self.b.deleted:
                return
            if pod.hash_label(HASH_LABEL) != self.update:
                self.b.remove(pod, f"rolling update to revision {self.update}")
                return
            if not self.healthy(pod):
                return


def _add_claim_volumes(manifest: dict, sts: StatefulSet, ordinal: int) -> None:
    """The ordinal's claims as hostPath volumes named after their templates (a template
    volume of the same name is replaced in place, as Kubernetes' updateStorage does)."""
    if not sts.claim_templates:
        return
    spec = manifest["spec"]
    volumes = list(spec.get("volumes") or [])
    index = {v.get("name"): i for i, v in enumerate(volumes) if isinstance(v, Mapping)}
    for t, claim in zip(sts.claim_templates, sts.claims_of(ordinal)):
        volume = {"name": t.name, "hostPath": {"path": claim_path(sts.namespace, claim),
                                               "type": "DirectoryOrCreate"}}
        if t.name in index:
            volumes[index[t.name]] = volume
        else:
            volumes.append(volume)
    spec["volumes"] = volumes


def reconcile_statefulset(sts: StatefulSet, pods: Sequence[OwnedPod], hosts: Sequence[HostInfo],
                          now: float, *, history: Sequence[Mapping] = (),
                          prev_status: Mapping | None = None, state: Mapping | None = None,
                          generation: int | None = None,
                          rng: random.Random | None = None) -> WorkloadDecision:
    """One step of `sts` given every pod it owns (being deleted too; a pod's host is
    where it is bound or pinned), the inventory `hosts` with their lost/fenced flags,
    and what the last step returned: `history`, `prev_status` and `state` (the claim
    pins and the fence waits already announced)."""
    s = _Step(sts, pods, hosts, now, history, prev_status or {}, state or {}, rng)
    s.sort_pods()
    s.pin_claims()
    s.evict_fenced()
    monotonic = sts.pod_management_policy == "OrderedReady"
    if s.scale_up(monotonic) and s.scale_down(monotonic) and sts.update_strategy == "RollingUpdate":
        s.rolling_update()
    in_use = {p.hash_label(HASH_LABEL) for p in pods} | {s.current, s.update}
    history = trim_history(s.history, s.update, in_use, sts.revision_history_limit)
    status = _status(s, generation)
    new_state = {"claims": dict(sorted(s.claims.items())), "waiting": s.waiting}
    return WorkloadDecision(s.b.create, s.b.delete, status, history, s.b.events,
                            s.b.requeue_after(), notes=s.notes, state=new_state)


def _status(s: _Step, generation: int | None) -> dict:
    """computeReplicaStatus over the pods as this step leaves them (a copy being deleted
    still counts in replicas until it is gone)."""
    replicas = ready = available = current = updated = 0
    for slot in s.slots.values():
        for p in slot.terminating:
            replicas += 1
        p = slot.pod
        if p is None:
            continue
        replicas += 1
        if p.uid in s.b.deleted:  # being deleted from now on
            continue
        if p.phase == "Running" and p.ready and not s.hosts.lost(p.host):
            ready += 1
            available += p.available(s.sts.min_ready_seconds, s.now)
        current += p.hash_label(HASH_LABEL) == s.current
        updated += p.hash_label(HASH_LABEL) == s.update
    for c in s.b.create:
        replicas += 1
        current += c.revision_hash == s.current
        updated += c.revision_hash == s.update
    current_revision = s.current
    if updated == replicas and ready == replicas:  # completeRollingUpdate
        current_revision, current = s.update, updated
    status: dict = {}
    if generation is not None:
        status["observedGeneration"] = generation
    status["replicas"] = replicas
    for key, value in (("readyReplicas", ready), ("currentReplicas", current),
                       ("updatedReplicas", updated)):
        if value:
            status[key] = value  # omitempty, as Kubernetes writes them
    status.update({"currentRevision": current_revision, "updateRevision": s.update,
                   "collisionCount": 0, "availableReplicas": available})
    return status
