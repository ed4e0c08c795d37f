"""The Job controller (batch/v1, completionMode NonIndexed): pure, Kubernetes' rules.

Keeps min(parallelism, completions - succeeded) pods active until `completions` pods
have succeeded (completions unset: until one has, then the others finish). A Job
fails with BackoffLimitExceeded once failed pods exceed backoffLimit (restartPolicy
OnFailure: also once the restarts of its running pods reach it), or with
DeadlineExceeded once it has been active activeDeadlineSeconds; its active pods are
deleted then. A failed pod is replaced after Kubernetes' backoff (10s, doubling per
consecutive failure, at most 10 minutes). Finished pods are kept (for logs) until
the Job goes; ttlSecondsAfterFinished asks the caller to delete the Job.

Counts never go down: succeeded/failed are the larger of the previous status and the
pods still present, so pods forgotten by the store keep counting.
"""

from __future__ import annotations

import random
from typing import Mapping, Sequence

from .common import (
    OwnedPod,
    PodToCreate,
    WorkloadDecision,
    _Builder,
    conditions_of,
    deletion_order,
    parse_time,
    pod_manifest,
    rfc3339,
)
from .specs import Job

POD_FAILURE_BACKOFF = 10.0  # Kubernetes' DefaultJobPodFailureBackOff
MAX_POD_FAILURE_BACKOFF = 600.0  # MaxJobPodFailureBackOff

CONTROLLER_UID = "controller-uid"
JOB_NAME = "job-name"
BATCH_CONTROLLER_UID = "batch.kubernetes.io/controller-uid"
BATCH_JOB_NAME = "batch.kubernetes.io/job-name"


def job_labels(job: Job, uid: str) -> dict[str, str]:
    """The labels Kubernetes adds to a Job's pods (old and new spellings)."""
    return {BATCH_CONTROLLER_UID: uid, BATCH_JOB_NAME: job.name,
            CONTROLLER_UID: uid, JOB_NAME: job.name}


def job_selector(job: Job, uid: str) -> dict:
    """spec.selector as the API server generates it (unless manualSelector)."""
    if job.selector is not None:
        return job.selector.to_k8s()
    return {"matchLabels": {BATCH_CONTROLLER_UID: uid}}


def finished(status: Mapping | None) -> str | None:
    """"Complete" or "Failed" once the Job has finished, else None."""
    conds = conditions_of(status)
    for kind in ("Complete", "Failed"):
        if conds.get(kind, {}).get("status") == "True":
            return kind
    return None


def reconcile_job(job: Job, pods: Sequence[OwnedPod], now: float, *, uid: str,
                  prev_status: Mapping | None = None, generation: int | None = None,
                  rng: random.Random | None = None) -> WorkloadDecision:
    """One step of `job` (whose object uid is `uid`) given every pod it owns.
    `prev_status`: the status returned last time (startTime and counts come from it)."""
    prev = dict(prev_status or {})
    b = _Builder(pods, rng)
    start = parse_time(prev.get("startTime"))
    start = now if start is None else start
    conds = conditions_of(prev)
    active = sorted((p for p in pods if p.active), key=lambda p: (p.created_at, p.name))
    succeeded = max(int(prev.get("succeeded") or 0), sum(p.phase == "Succeeded" for p in pods))
    failed = max(int(prev.get("failed") or 0), sum(p.phase == "Failed" for p in pods))
    done = finished(prev)
    completion = parse_time(prev.get("completionTime"))
    delete_object = False

    if done:
        for p in active:  # nothing of a finished Job runs on
            b.remove(p, f"job is {done}")
        delete_object = _ttl(job, b, conds, done, completion, now)
    else:
        failure = _failure(job, active, failed, start, now)
        if failure:
            reason, message = failure
            for p in active:
                b.remove(p, f"job failed: {reason}")
            conds["Failed"] = _condition("Failed", reason, message, now)
            b.event("Warning", reason, message)
            done = "Failed"
        else:
            _manage(job, b, uid, active, pods, succeeded, failed, now)
            if job.active_deadline_seconds is not None:
                b.wait(start + job.active_deadline_seconds - now)
            still = len(b.alive(active)) + len(b.create)
            if still == 0 and (succeeded >= job.completions if job.completions is not None
                               else succeeded > 0):
                conds["Complete"] = _condition("Complete", "CompletionsReached",
                                               "Reached expected number of succeeded pods", now)
                b.event("Normal", "Completed", "Job completed")
                completion = now
                done = "Complete"
        if done:
            delete_object = _ttl(job, b, conds, done, completion, now)

    alive = b.alive(active)
    status: dict = {}
    if generation is not None:
        status["observedGeneration"] = generation
    if conds:
        status["conditions"] = [conds[t] for t in ("Complete", "Failed") if t in conds]
    status["startTime"] = rfc3339(start)
    if done == "Complete" and completion is not None:
        status["completionTime"] = rfc3339(completion)
    for key, value in (("active", len(alive) + len(b.create)), ("succeeded", succeeded),
                       ("failed", failed)):
        if value:
            status[key] = value  # omitempty, as Kubernetes writes them
    status["ready"] = sum(1 for p in alive if p.ready)
    return WorkloadDecision(b.create, b.delete, status, None, b.events, b.requeue_after(),
                            delete_object)


def _failure(job: Job, active: list[OwnedPod], failed: int, start: float,
             now: float) -> tuple[str, str] | None:
    if failed > job.backoff_limit or _restarts_past_limit(job, active):
        return "BackoffLimitExceeded", "Job has reached the specified backoff limit"
    if job.active_deadline_seconds is not None and now - start >= job.active_deadline_seconds:
        return "DeadlineExceeded", "Job was active longer than specified deadline"
    return None


def _restarts_past_limit(job: Job, active: list[OwnedPod]) -> bool:
    """Kubernetes' pastBackoffLimitOnFailure: with OnFailure the containers restart in
    place, so their restarts (in Pending/Running pods) count against backoffLimit."""
    if job.template.spec.restart_policy != "OnFailure":
        return False
    restarts = sum(p.restart_count for p in active if p.phase in ("Pending", "Running"))
    return restarts > 0 if job.backoff_limit == 0 else restarts >= job.backoff_limit


def _manage(job: Job, b: _Builder, uid: str, active: list[OwnedPod], pods: Sequence[OwnedPod],
            succeeded: int, failed: int, now: float) -> None:
    """Kubernetes' manageJob for NonIndexed Jobs."""
    if job.completions is None:
        want = len(active) if succeeded > 0 else job.parallelism
    else:
        want = max(0, min(job.completions - succeeded, job.parallelism))
    if len(active) > want:
        for p in deletion_order(active)[: len(active) - want]:
            b.remove(p, "too many active pods")
            b.event("Normal", "SuccessfulDelete", f"Deleted pod: {p.name}")
        return
    missing = want - len(active)
    if missing <= 0:
        return
    delay = _backoff_remaining(pods, now)
    if delay > 0:
        b.wait(delay)
        return
    labels = job_labels(job, uid)
    for _ in range(missing):
        name = b.name(f"{job.name}-")
        b.add(PodToCreate(name, pod_manifest(job.template, name, job.namespace, labels)))
        b.event("Normal", "SuccessfulCreate", f"Created pod: {name}")


def _backoff_remaining(pods: Sequence[OwnedPod], now: float) -> float:
    """Seconds until a replacement may start: 10s * 2^(failures since the last success - 1)
    after the last failure, at most 10 minutes (Kubernetes' pod failure backoff)."""
    finished = sorted((p for p in pods if p.phase in ("Succeeded", "Failed")),
                      key=lambda p: (p.finished_at if p.finished_at is not None else p.created_at))
    streak = 0
    last = None
    for p in finished:
        if p.phase == "Succeeded":
            streak, last = 0, None
        else:
            streak += 1
            last = p.finished_at if p.finished_at is not None else p.created_at
    if not streak or last is None:
        return 0.0
    delay = min(POD_FAILURE_BACKOFF * 2 ** (streak - 1), MAX_POD_FAILURE_BACKOFF)
    return last + delay - now


def _ttl(job: Job, b: _Builder, conds: dict, done: str, completion: float | None,
         now: float) -> bool:
    if job.ttl_seconds_after_finished is None:
        return False
    since = completion if done == "Complete" else parse_time(
        conds.get(done, {}).get("lastTransitionTime"))
    since = now if since is None else since
    left = since + job.ttl_seconds_after_finished - now
    if left <= 0:
        return True
    b.wait(left)
    return False


def _condition(kind: str, reason: str, message: str, now: float) -> dict:
    stamp = rfc3339(now)
    return {"type": kind, "status": "True", "lastProbeTime": stamp, "lastTransitionTime": stamp,
            "reason": reason, "message": message}
