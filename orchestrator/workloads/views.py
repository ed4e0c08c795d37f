"""`podctl get deployments|jobs|daemonsets|statefulsets`: kubectl's columns, and -o json
objects.
Pure functions over the validated object and the status its controller returned."""

from __future__ import annotations

import copy
import time
from typing import Mapping

from .common import conditions_of, from_store, parse_time, rfc3339
from .deployment import REVISION_ANNOTATION
from .job import BATCH_CONTROLLER_UID, job_selector
from .specs import DaemonSet, Deployment, Job, PodTemplate, StatefulSet

DEPLOYMENT_HEADERS = ["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"]
JOB_HEADERS = ["NAME", "STATUS", "COMPLETIONS", "DURATION", "AGE"]
DAEMONSET_HEADERS = ["NAME", "DESIRED", "CURRENT", "READY", "UP-TO-DATE", "AVAILABLE",
                     "NODE SELECTOR", "AGE"]
STATEFULSET_HEADERS = ["NAME", "READY", "AGE"]
WIDE_EXTRA = ["CONTAINERS", "IMAGES", "SELECTOR"]


def headers(kind: str, wide: bool = False) -> list[str]:
    """The table headers for kind Deployment, Job, DaemonSet or StatefulSet."""
    base = {"Deployment": DEPLOYMENT_HEADERS, "Job": JOB_HEADERS,
            "DaemonSet": DAEMONSET_HEADERS, "StatefulSet": STATEFULSET_HEADERS}[kind]
    if wide and kind == "StatefulSet":
        return base + WIDE_EXTRA[:2]  # kubectl shows no SELECTOR for StatefulSets
    return base + WIDE_EXTRA if wide else list(base)


def human_duration(seconds: float) -> str:
    """kubectl's HumanDuration (AGE, DURATION): 45s, 3m20s, 12m, 5h3m, 20h, 3d4h, 40d, 2y."""
    s = int(seconds)
    if s < -1:
        return "<invalid>"
    if s < 0:
        return "0s"
    if s < 120:
        return f"{s}s"
    minutes = s // 60
    if minutes < 10:
        return f"{minutes}m{s % 60}s" if s % 60 else f"{minutes}m"
    if minutes < 180:
        return f"{minutes}m"
    hours = minutes // 60
    if hours < 8:
        return f"{hours}h{minutes % 60}m" if minutes % 60 else f"{hours}h"
    if hours < 48:
        return f"{hours}h"
    if hours < 24 * 8:
        return f"{hours // 24}d{hours % 24}h" if hours % 24 else f"{hours // 24}d"
    if hours < 24 * 365 * 2:
        return f"{hours // 24}d"
    if hours < 24 * 365 * 8:
        days = (hours // 24) % 365
        return f"{hours // 24 // 365}y{days}d" if days else f"{hours // 24 // 365}y"
    return f"{hours // 24 // 365}y"


def _age(created_at: float | None, now: float | None) -> str:
    if created_at is None:
        return "<unknown>"
    return human_duration((time.time() if now is None else now) - created_at)


def _n(status: Mapping, key: str) -> int:
    return int(status.get(key) or 0)


def _wide(template: PodTemplate, selector: str) -> list[str]:
    containers = template.spec.containers
    return [",".join(c.name for c in containers) or "<none>",
            ",".join(c.image for c in containers) or "<none>", selector]


def deployment_row(obj: Deployment, status: Mapping, *, created_at: float | None = None,
                   now: float | None = None, wide: bool = False) -> list[str]:
    """NAME READY UP-TO-DATE AVAILABLE AGE (wide: CONTAINERS IMAGES SELECTOR)."""
    row = [obj.name, f"{_n(status, 'readyReplicas')}/{obj.replicas}",
           str(_n(status, "updatedReplicas")), str(_n(status, "availableReplicas")),
           _age(created_at, now)]
    return row + _wide(obj.template, str(obj.selector)) if wide else row


def job_state(status: Mapping, deleting: bool = False) -> str:
    """kubectl's STATUS column for Jobs."""
    conds = conditions_of(status)
    for kind in ("Complete", "Failed"):
        if conds.get(kind, {}).get("status") == "True":
            return kind
    return "Terminating" if deleting else "Running"


def job_completions(obj: Job, status: Mapping) -> str:
    succeeded = _n(status, "succeeded")
    if obj.completions is not None:
        return f"{succeeded}/{obj.completions}"
    if obj.parallelism > 1:
        return f"{succeeded}/1 of {obj.parallelism}"
    return f"{succeeded}/1"


def job_duration(status: Mapping, now: float | None = None) -> str:
    start = parse_time(status.get("startTime"))
    if start is None:
        return ""
    end = parse_time(status.get("completionTime"))
    if end is None:
        end = time.time() if now is None else now
    return human_duration(end - start)


def job_row(obj: Job, status: Mapping, *, created_at: float | None = None,
            now: float | None = None, wide: bool = False, uid: str = "") -> list[str]:
    """NAME STATUS COMPLETIONS DURATION AGE (wide: CONTAINERS IMAGES SELECTOR)."""
    row = [obj.name, job_state(status), job_completions(obj, status), job_duration(status, now),
           _age(created_at, now)]
    if not wide:
        return row
    if obj.selector is not None:
        selector = str(obj.selector)
    else:
        labels = job_selector(obj, uid)["matchLabels"] if uid else {}
        selector = ",".join(f"{k}={v}" for k, v in sorted(labels.items())) or "<none>"
    return row + _wide(obj.template, selector)


def daemonset_row(obj: DaemonSet, status: Mapping, *, created_at: float | None = None,
                  now: float | None = None, wide: bool = False) -> list[str]:
    """NAME DESIRED CURRENT READY UP-TO-DATE AVAILABLE NODE SELECTOR AGE (wide: CONTAINERS
    IMAGES SELECTOR)."""
    node_selector = ",".join(f"{k}={v}" for k, v in obj.template.spec.node_selector) or "<none>"
    row = [obj.name, str(_n(status, "desiredNumberScheduled")),
           str(_n(status, "currentNumberScheduled")), str(_n(status, "numberReady")),
           str(_n(status, "updatedNumberScheduled")), str(_n(status, "numberAvailable")),
           node_selector, _age(created_at, now)]
    return row + _wide(obj.template, str(obj.selector)) if wide else row


def statefulset_row(obj: StatefulSet, status: Mapping, *, created_at: float | None = None,
                    now: float | None = None, wide: bool = False) -> list[str]:
    """NAME READY AGE (wide: CONTAINERS IMAGES); READY is readyReplicas/spec.replicas."""
    row = [obj.name, f"{_n(status, 'readyReplicas')}/{obj.replicas}", _age(created_at, now)]
    return row + _wide(obj.template, "")[:2] if wide else row


def workload_object(raw: Mapping, *, uid: str, created_at: float, generation: int,
                    status: Mapping | None, revision: int | None = None) -> dict:
    """The object as `kubectl get KIND NAME -o json` shows it: the applied document with
    server-set metadata (uid, creationTimestamp, generation, the Deployment revision
    annotation) and the status its controller last returned (ObjectRow.status; the
    revision history stored with it is left out)."""
    doc = copy.deepcopy(dict(raw))
    doc.pop("status", None)
    meta = dict(doc.get("metadata") or {})
    meta.setdefault("namespace", "default")
    meta.update({"uid": uid, "creationTimestamp": rfc3339(created_at), "generation": generation})
    if revision is not None and doc.get("kind") == "Deployment":
        meta["annotations"] = {**(meta.get("annotations") or {}),
                               REVISION_ANNOTATION: str(revision)}
    doc["metadata"] = meta
    if doc.get("kind") == "Job" and isinstance(doc.get("spec"), dict) \
            and doc["spec"].get("selector") is None:
        doc["spec"] = {**doc["spec"], "selector": {"matchLabels": {BATCH_CONTROLLER_UID: uid}}}
    doc["status"] = copy.deepcopy(from_store(status)[0])
    return doc
