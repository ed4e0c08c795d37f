"""What `get`, `describe` and `-o json` show: Kubernetes-shaped objects. Pure functions."""

from __future__ import annotations

import time
from datetime import datetime, timezone

from .manifests import pod_to_k8s
from .model import Pod
from .probe import HostSnapshot
from .status import (PodLayout, display_status, initialized, pod_conditions, pod_phase, statuses,
                     summarize_ready)
from .store import PodRow


def rfc3339(ts: float | None) -> str | None:
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def age(ts: float | None, now: float | None = None) -> str:
    """kubectl's AGE column: 45s, 12m, 3h, 5d."""
    if ts is None:
        return "<unknown>"
    s = max(0, int((now or time.time()) - ts))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if s >= size * (2 if unit != "m" else 1):
            return f"{s // size}{unit}"
    return f"{s}s"


def pod_object(row: PodRow, pod: Pod, snap: HostSnapshot | None, host_ip: str | None,
               image_missing: bool = False, pending_message: str = "") -> dict:
    """A pod as the Kubernetes API would return it (kind Pod, metadata, spec, status)."""
    body = pod_to_k8s(pod)
    body["spec"] = dict(body.get("spec") or {})
    if row.node:
        body["spec"]["nodeName"] = row.node
    observed = snap.pods.get(row.uid) if snap and snap.reachable else None
    reachable = None if snap is None else snap.reachable
    layout = PodLayout.of(pod.spec)
    phase, reason = pod_phase(observed, pod.spec.restart_policy, row.node is not None, reachable, layout)
    init_statuses, container_statuses = statuses(observed, layout)
    if image_missing and observed is None:
        for s in init_statuses[:1] + (container_statuses if not init_statuses else []):
            s["state"] = {"waiting": {"reason": "ErrImageNeverPull",
                                      "message": f'image "{s["image"]}" is not in the podctl image store '
                                                 f"(podctl image import)"}}
        reason = "ErrImageNeverPull"
    init_done = initialized(observed, layout)
    conditions = pod_conditions(phase, row.node is not None, init_done, container_statuses, init_statuses,
                                layout.sidecars, condition_times(row, observed, layout, init_done),
                                pending_message)
    metadata = dict(body.get("metadata") or {})
    metadata.update({"uid": row.uid, "creationTimestamp": rfc3339(row.created_at)})
    if row.deleting:
        metadata["deletionTimestamp"] = rfc3339(row.deletion_requested_at)
    if row.owner_kind:
        metadata["ownerReferences"] = [{"kind": row.owner_kind, "name": row.owner_name,
                                        "uid": row.owner_uid, "controller": True}]
    status = {"phase": phase, "conditions": conditions, "containerStatuses": container_statuses,
              "qosClass": qos_class(pod)}
    if init_statuses:
        status["initContainerStatuses"] = init_statuses
    if reason:
        status["reason"] = reason
    if row.pod_ip:
        status["podIP"] = row.pod_ip
        status["podIPs"] = [{"ip": row.pod_ip}]
    if host_ip:
        status["hostIP"] = host_ip
    return {"apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": body["spec"], "status": status}


def condition_times(row: PodRow, observed, layout: PodLayout, init_done: bool) -> dict:
    """lastTransitionTime of each condition, from what the supervisor recorded: when
    the pod was scheduled (created), when its init containers were done, when its
    containers' readiness last changed (or they started)."""
    created = rfc3339(row.created_at)
    times = {"PodScheduled": created if row.node else None, "Initialized": created}
    entries = {c.get("name"): c for c in (observed.containers if observed else [])}
    if layout.init_containers and init_done:
        ends = [((entries.get(n) or {}).get("state") or {}).get("terminated", {}).get("finishedAt")
                for n in layout.init_containers if n not in layout.sidecars]
        times["Initialized"] = max([t for t in ends if t] or [created])
    marks = []
    for name in list(layout.containers) + sorted(layout.sidecars):
        e = entries.get(name) or {}
        state = e.get("state") or {}
        for t in (e.get("readyChangedAt"), (state.get("running") or {}).get("startedAt"),
                  (state.get("terminated") or {}).get("finishedAt")):
            if t:
                marks.append(t)
    if marks:
        times["ContainersReady"] = times["Ready"] = max(marks)
    return times


def qos_class(pod: Pod) -> str:
    cs = pod.spec.containers
    if all(c.limits.cpu_m and c.limits.memory and c.effective_requests() == c.limits for c in cs):
        return "Guaranteed"
    if any(c.requests.cpu_m or c.requests.memory or c.limits.cpu_m or c.limits.memory for c in cs):
        return "Burstable"
    return "BestEffort"


def pod_row_columns(obj: dict, wide: bool, now: float | None = None) -> list[str]:
    st = obj["status"]
    statuses = st.get("containerStatuses") or []
    inits = st.get("initContainerStatuses") or []
    sidecars = frozenset(c.get("name") for c in obj["spec"].get("initContainers") or []
                         if c.get("restartPolicy") == "Always")
    init_done = any(c.get("type") == "Initialized" and c.get("status") == "True" for c in st.get("conditions") or [])
    shown = "Terminating" if obj["metadata"].get("deletionTimestamp") else display_status(
        st["phase"], st.get("reason", ""), statuses, inits, sidecars, init_done)
    restarts = sum(s.get("restartCount", 0) for s in statuses + inits)
    created = obj["metadata"].get("creationTimestamp")
    ts = datetime.strptime(created, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc).timestamp() if created else None
    cols = [obj["metadata"]["name"], summarize_ready(statuses, inits, sidecars), shown, str(restarts), age(ts, now)]
    if wide:
        cols += [st.get("podIP") or "<none>", obj["spec"].get("nodeName") or "<none>"]
    return cols


POD_HEADERS = ["NAME", "READY", "STATUS", "RESTARTS", "AGE"]
POD_WIDE_HEADERS = POD_HEADERS + ["IP", "NODE"]
