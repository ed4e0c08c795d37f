"""The Deployment controller: pure, Kubernetes' rules without ReplicaSet objects.

A ReplicaSet is "the pods of one template hash" (label pod-template-hash); its name
`<deployment>-<hash>` appears in messages and pod names (`<deployment>-<hash>-<5>`).
Revisions (hash -> template, number) live in a history the caller stores with the
object and passes back each run; `rollout_undo` reads it.

One call decides one step, like one sync of kube-controller-manager: creates and
deletes are requested, and the next run (with the pods' new states) goes on.
RollingUpdate never lets non-terminating pods exceed replicas + maxSurge and never
deletes an available pod while that would leave fewer than replicas - maxUnavailable
available; Recreate deletes every old pod and creates new ones once the old are gone;
a paused Deployment only scales.
"""

from __future__ import annotations

import copy
import random
from typing import Mapping, Sequence

from ..model import PodSpec
from .common import (
    OwnedPod,
    PodToCreate,
    WorkloadDecision,
    _Builder,
    conditions_of,
    deletion_order,
    parse_time,
    pod_manifest,
    record_revision,
    rfc3339,
    set_condition,
    template_hash,
    trim_history,
)
from .specs import Deployment, PodTemplate

HASH_LABEL = "pod-template-hash"
REVISION_ANNOTATION = "deployment.kubernetes.io/revision"


class RolloutError(Exception):
    """kubectl rollout would fail: no such revision, or the progress deadline passed."""


def deployment_hash(dep: Deployment) -> str:
    return template_hash(dep.template, ignore_labels=(HASH_LABEL,))


def replica_set_name(dep: Deployment, hash_: str) -> str:
    return f"{dep.name}-{hash_}"


def reconcile_deployment(dep: Deployment, pods: Sequence[OwnedPod], now: float, *,
                         history: Sequence[Mapping] = (), prev_status: Mapping | None = None,
                         generation: int | None = None,
                         rng: random.Random | None = None) -> WorkloadDecision:
    """One step towards `dep` given the pods it owns (all of them, being deleted too).

    `history`: the revision records returned last time ([] at first); `prev_status`:
    the status returned last time (conditions keep their times, progress is measured
    against it); `generation`: the object's generation, echoed as observedGeneration."""
    b = _Builder(pods, rng)
    current = deployment_hash(dep)
    history, _, created_rs = record_revision(history, current, dep.template.raw, now,
                                             create=not dep.paused)
    templates = {r["hash"]: r["template"] for r in history}
    templates[current] = dep.template.raw
    revisions = {r["hash"]: int(r.get("revision", 0)) for r in history}

    for p in pods:  # restartPolicy Always pods end only when something went wrong
        if not p.deleting and not p.active:
            b.remove(p, f"pod is {p.phase}; the Deployment replaces it")
    active = [p for p in pods if p.active]
    before = _counts(active)
    if dep.paused:
        _scale_paused(dep, b, active, templates, revisions, current)
    elif dep.strategy == "Recreate":
        _recreate(dep, b, pods, active, current)
    else:
        _rolling(dep, b, active, current, now)

    alive = b.alive(active)
    after = _counts(alive)
    for p in b.create:
        after[p.revision_hash] = after.get(p.revision_hash, 0) + 1
    for h in sorted(set(before) | set(after), key=lambda h: (revisions.get(h, 0), h)):
        n0, n1 = before.get(h, 0), after.get(h, 0)
        if n0 != n1:
            verb = "up" if n1 > n0 else "down"
            b.event("Normal", "ScalingReplicaSet",
                    f"Scaled {verb} replica set {replica_set_name(dep, h)} from {n0} to {n1}")

    # a revision with pods (even terminating ones) stays in the history
    in_use = {p.hash_label(HASH_LABEL) for p in pods} | {p.revision_hash for p in b.create}
    history = trim_history(history, current, in_use, dep.revision_history_limit)
    status = _status(dep, alive, b, current, now, prev_status or {}, generation, created_rs)
    for p in alive:  # a ready pod becomes available after minReadySeconds
        if p.ready and not p.available(dep.min_ready_seconds, now) and p.ready_since is not None:
            b.wait(p.ready_since + dep.min_ready_seconds - now + 0.001)
    return WorkloadDecision(b.create, b.delete, status, history, b.events, b.requeue_after())


def _counts(pods: Sequence[OwnedPod]) -> dict[str, int]:
    out: dict[str, int] = {}
    for p in pods:
        h = p.hash_label(HASH_LABEL)
        out[h] = out.get(h, 0) + 1
    return out


def _create(dep: Deployment, b: _Builder, template: Mapping | PodTemplate, hash_: str,
            count: int) -> None:
    if not isinstance(template, PodTemplate):
        template = _template_of(template)
    for _ in range(max(0, count)):
        name = b.name(f"{replica_set_name(dep, hash_)}-")
        manifest = pod_manifest(template, name, dep.namespace, {HASH_LABEL: hash_})
        b.add(PodToCreate(name, manifest, revision_hash=hash_))


def _template_of(raw: Mapping) -> PodTemplate:
    """A history template (validated when it was applied) as a PodTemplate to build
    pods from (only its labels, annotations and raw spec are used)."""
    meta = raw.get("metadata") or {}
    labels = tuple(sorted((k, "" if v is None else v) for k, v in (meta.get("labels") or {}).items()))
    annotations = tuple(sorted((k, "" if v is None else v)
                               for k, v in (meta.get("annotations") or {}).items()))
    return PodTemplate(labels, annotations, PodSpec(containers=()), (), raw)


def _delete(b: _Builder, pods: Sequence[OwnedPod], count: int, related: Sequence[OwnedPod],
            reason: str) -> int:
    chosen = [p for p in deletion_order(pods, related) if p.uid not in b.deleted][:max(0, count)]
    for p in chosen:
        b.remove(p, reason)
    return len(chosen)


def _rolling(dep: Deployment, b: _Builder, active: list[OwnedPod], current: str,
             now: float) -> None:
    """Kubernetes' rolloutRolling: reconcileNewReplicaSet, then reconcileOldReplicaSets."""
    surge, unavailable = dep.rolling_limits()
    new = [p for p in active if p.hash_label(HASH_LABEL) == current]
    old = [p for p in active if p.hash_label(HASH_LABEL) != current]
    replicas = dep.replicas
    new_count = len(new)
    if new_count > replicas:
        new_count -= _delete(b, new, new_count - replicas, active, "scaled down")
    elif new_count < replicas:
        max_total = replicas + surge
        total = len(active)
        if total < max_total:
            up = min(max_total - total, replicas - new_count)
            _create(dep, b, dep.template, current, up)
            new_count += up
    if not old:
        return
    all_count = len(old) + new_count
    min_available = replicas - min(unavailable, replicas)
    new_available = sum(1 for p in new if p.uid not in b.deleted and
                        p.available(dep.min_ready_seconds, now))
    new_unavailable = new_count - new_available
    max_scaled_down = all_count - min_available - new_unavailable
    if max_scaled_down <= 0:
        return
    # cleanupUnhealthyReplicas: old pods that are not available go first, oldest revision first
    unhealthy = [p for p in old if not p.available(dep.min_ready_seconds, now)]
    cleaned = 0
    for group in _by_age(unhealthy):
        cleaned += _delete(b, group, max_scaled_down - cleaned, active,
                           "rolling update: old revision, not available")
    # scaleDownOldReplicaSetsForRollingUpdate: available pods down to minAvailable
    available = sum(1 for p in b.alive(active) if p.available(dep.min_ready_seconds, now))
    if available <= min_available:
        return
    budget = available - min_available
    for group in _by_age([p for p in old if p.uid not in b.deleted]):
        if budget <= 0:
            break
        budget -= _delete(b, group, budget, active, "rolling update: old revision")


def _by_age(pods: Sequence[OwnedPod]) -> list[list[OwnedPod]]:
    """Pods grouped by template hash, the group of the oldest pod first (Kubernetes
    scales the oldest ReplicaSet down first)."""
    groups: dict[str, list[OwnedPod]] = {}
    for p in sorted(pods, key=lambda p: (p.created_at, p.name)):
        groups.setdefault(p.hash_label(HASH_LABEL), []).append(p)
    return list(groups.values())


def _recreate(dep: Deployment, b: _Builder, pods: Sequence[OwnedPod], active: list[OwnedPod],
              current: str) -> None:
    """Kubernetes' rolloutRecreate: scale old to 0; wait until no old pod runs; scale new up."""
    old = [p for p in active if p.hash_label(HASH_LABEL) != current]
    if old:
        for p in old:
            b.remove(p, "recreate: old revision")
        return
    if any(p.hash_label(HASH_LABEL) != current and p.phase not in ("Succeeded", "Failed")
           for p in pods):
        return  # old pods are still terminating
    new = [p for p in active if p.hash_label(HASH_LABEL) == current]
    if len(new) < dep.replicas:
        _create(dep, b, dep.template, current, dep.replicas - len(new))
    elif len(new) > dep.replicas:
        _delete(b, new, len(new) - dep.replicas, active, "scaled down")


def _scale_paused(dep: Deployment, b: _Builder, active: list[OwnedPod], templates: dict,
                  revisions: dict, current: str) -> None:
    """Paused: no rollout, only scaling. More pods go to the newest revision present,
    fewer come from the old revisions first."""
    total = len(active)
    if total > dep.replicas:
        newest = max((revisions.get(p.hash_label(HASH_LABEL), 0) for p in active), default=0)
        ranked = sorted(deletion_order(active),
                        key=lambda p: revisions.get(p.hash_label(HASH_LABEL), 0) == newest)
        for p in ranked[: total - dep.replicas]:
            b.remove(p, "scaled down")
    elif total < dep.replicas:
        present = {p.hash_label(HASH_LABEL) for p in active}
        if not present:
            if current not in revisions:
                return  # created paused: Kubernetes makes no ReplicaSet until resumed
            present = {current}
        target = max(present, key=lambda h: (revisions.get(h, 0), h == current))
        if target in templates:
            _create(dep, b, templates[target], target, dep.replicas - total)


# ---------------------------------------------------------------- status


def _status(dep: Deployment, alive: list[OwnedPod], b: _Builder, current: str, now: float,
            prev: Mapping, generation: int | None, created_rs: bool) -> dict:
    """calculateStatus + syncRolloutStatus, over the pods as this decision leaves them
    (pods it creates count, not ready; pods it deletes are gone)."""
    created = [p for p in b.create]
    replicas = len(alive) + len(created)
    updated = sum(1 for p in alive if p.hash_label(HASH_LABEL) == current) + \
        sum(1 for p in created if p.revision_hash == current)
    ready = sum(1 for p in alive if p.ready)
    available = sum(1 for p in alive if p.available(dep.min_ready_seconds, now))
    status: dict = {}
    if generation is not None:
        status["observedGeneration"] = generation
    for key, value in (("replicas", replicas), ("updatedReplicas", updated),
                       ("readyReplicas", ready), ("availableReplicas", available),
                       ("unavailableReplicas", max(0, replicas - available))):
        if value:
            status[key] = value  # omitempty, as Kubernetes writes them
    conds = conditions_of(prev)
    _, unavailable = dep.rolling_limits()
    if available >= dep.replicas - min(unavailable, dep.replicas):
        set_condition(conds, "Available", "True", "MinimumReplicasAvailable",
                      "Deployment has minimum availability.", now)
    else:
        set_condition(conds, "Available", "False", "MinimumReplicasUnavailable",
                      "Deployment does not have minimum availability.", now)
    _progressing(dep, conds, status, prev, current, now, created_rs, generation, b)
    status["conditions"] = [conds[t] for t in ("Available", "Progressing") if t in conds]
    return status


def _progressing(dep: Deployment, conds: dict, status: dict, prev: Mapping, current: str,
                 now: float, created_rs: bool, generation: int | None, b: _Builder) -> None:
    rs = replica_set_name(dep, current)
    cond = conds.get("Progressing")
    if dep.paused:
        if not cond or cond.get("reason") not in ("DeploymentPaused", "ProgressDeadlineExceeded"):
            set_condition(conds, "Progressing", "Unknown", "DeploymentPaused",
                          "Deployment is paused", now)
        return
    if cond and cond.get("reason") == "DeploymentPaused":
        set_condition(conds, "Progressing", "Unknown", "DeploymentResumed",
                      "Deployment is resumed", now)
        cond = conds["Progressing"]
    if created_rs:  # progress is measured from the next step on
        conds.pop("Progressing", None)
        set_condition(conds, "Progressing", "True", "NewReplicaSetCreated",
                      f'Created new replica set "{rs}"', now)
        b.wait(dep.progress_deadline_seconds + 0.001)
        return
    if cond is None:
        set_condition(conds, "Progressing", "True", "FoundNewReplicaSet",
                      f'Found new replica set "{rs}"', now)
        cond = conds["Progressing"]
    get = status.get
    complete_before = (get("replicas", 0) == get("updatedReplicas", 0)
                       and cond.get("reason") == "NewReplicaSetAvailable")
    if complete_before:
        return
    if (get("updatedReplicas", 0) == dep.replicas and get("replicas", 0) == dep.replicas
            and get("availableReplicas", 0) == dep.replicas):
        set_condition(conds, "Progressing", "True", "NewReplicaSetAvailable",
                      f'ReplicaSet "{rs}" has successfully progressed.', now)
    elif _made_progress(prev, status):
        progressing = {"type": "Progressing", "status": "True", "lastUpdateTime": _stamp(now),
                       "lastTransitionTime": _stamp(now), "reason": "ReplicaSetUpdated",
                       "message": f'ReplicaSet "{rs}" is progressing.'}
        if cond.get("status") == "True" and cond.get("lastTransitionTime"):
            progressing["lastTransitionTime"] = cond["lastTransitionTime"]
        conds["Progressing"] = progressing
        b.wait(dep.progress_deadline_seconds + 0.001)
    elif cond.get("reason") != "ProgressDeadlineExceeded":
        since = parse_time(cond.get("lastUpdateTime"))
        if since is not None and since + dep.progress_deadline_seconds < now:
            set_condition(conds, "Progressing", "False", "ProgressDeadlineExceeded",
                          f'ReplicaSet "{rs}" has timed out progressing.', now)
        elif since is not None:
            b.wait(since + dep.progress_deadline_seconds - now + 0.001)


def _stamp(now: float) -> str:
    return rfc3339(now) or ""


def _made_progress(prev: Mapping, new: Mapping) -> bool:
    """Kubernetes' DeploymentProgressing: more updated, fewer old, more ready or available."""
    def g(status: Mapping, key: str) -> int:
        return int(status.get(key) or 0)
    old_before = g(prev, "replicas") - g(prev, "updatedReplicas")
    old_now = g(new, "replicas") - g(new, "updatedReplicas")
    return (g(new, "updatedReplicas") > g(prev, "updatedReplicas") or old_now < old_before
            or g(new, "readyReplicas") > g(prev, "readyReplicas")
            or g(new, "availableReplicas") > g(prev, "availableReplicas"))


# ---------------------------------------------------------------- kubectl rollout


def rollout_status(dep: Deployment, status: Mapping,
                   generation: int | None = None) -> tuple[bool, str]:
    """(done, message) as `kubectl rollout status deployment/NAME` prints them;
    RolloutError when the progress deadline has passed (kubectl exits 1)."""
    if generation is not None and int(status.get("observedGeneration") or 0) < generation:
        return False, "Waiting for deployment spec update to be observed..."
    cond = conditions_of(status).get("Progressing")
    if cond and cond.get("reason") == "ProgressDeadlineExceeded":
        raise RolloutError(f'deployment "{dep.name}" exceeded its progress deadline')
    updated = int(status.get("updatedReplicas") or 0)
    replicas = int(status.get("replicas") or 0)
    available = int(status.get("availableReplicas") or 0)
    prefix = f'Waiting for deployment "{dep.name}" rollout to finish: '
    if updated < dep.replicas:
        return False, f"{prefix}{updated} out of {dep.replicas} new replicas have been updated..."
    if replicas > updated:
        return False, f"{prefix}{replicas - updated} old replicas are pending termination..."
    if available < updated:
        return False, f"{prefix}{available} of {updated} updated replicas are available..."
    return True, f'deployment "{dep.name}" successfully rolled out'


def rollout_undo(history: Sequence[Mapping], to_revision: int | None = None,
                 name: str = "") -> dict:
    """The pod template of revision `to_revision` (None or 0: the one before the
    newest), to write into the Deployment's spec.template. RolloutError as kubectl's."""
    records = sorted((r for r in history if isinstance(r, Mapping)),
                     key=lambda r: int(r.get("revision", 0)))
    if to_revision:
        for r in records:
            if int(r.get("revision", 0)) == to_revision:
                return copy.deepcopy(dict(r["template"]))
        raise RolloutError(f"unable to find specified revision {to_revision} in history")
    if len(records) < 2:
        raise RolloutError(f'no rollout history found for deployment "{name}"')
    return copy.deepcopy(dict(records[-2]["template"]))


def rollout_history(history: Sequence[Mapping]) -> list[tuple[int, str]]:
    """(REVISION, CHANGE-CAUSE) rows of `kubectl rollout history`; the cause is the
    template's kubernetes.io/change-cause annotation, else "<none>"."""
    rows = []
    for r in sorted(history, key=lambda r: int(r.get("revision", 0))):
        notes = ((r.get("template") or {}).get("metadata") or {}).get("annotations") or {}
        rows.append((int(r.get("revision", 0)), notes.get("kubernetes.io/change-cause") or "<none>"))
    return rows


def current_revision(history: Sequence[Mapping], dep: Deployment) -> int | None:
    """The revision number of the Deployment's template (the revision annotation)."""
    h = deployment_hash(dep)
    return next((int(r["revision"]) for r in history if r.get("hash") == h), None)
