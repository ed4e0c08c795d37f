"""What `get`, `describe` and `-o json` show: Kubernetes-shaped objects. Pure functions."""

from __future__ import annotations

import time
from datetime import datetime, timezone

from .manifests import pod_to_k8s
from .model import Pod
from .ephemeral import statuses as ephemeral_statuses
from .emptydir_limit import disruption_condition, evicted
from .probe import HostSnapshot
from .qos import qos_class
from .status import (PodLayout, display_status, initialized, pod_conditions, pod_phase, statuses,
                     summarize_ready)
from .store import PodRow


def as_output(items: list[dict], single: bool, output: str) -> str:
    """`-o json|yaml`: the one object asked for by name, else a kind List of them all."""
    import json

    import yaml

    doc = items[0] if single else {"apiVersion": "v1", "kind": "List", "items": items, "metadata": {}}
    return json.dumps(doc, indent=2) if output == "json" else yaml.safe_dump(doc, sort_keys=False)


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
               image_missing: bool = False, pending_message: str = "",
               image_waiting: dict[str, tuple[str, str]] | None = None,
               config_error: tuple[str, str] | None = None) -> dict:
    """A pod as the Kubernetes API would return it (kind Pod, metadata, spec, status).
    `image_waiting`: container -> (reason, message) while its image cannot be had
    (image_puller.image_waiting); it replaces the older `image_missing` flag.
    `config_error`: (reason, message) when a ConfigMap/Secret the pod needs is missing
    (podconfig.problem): its containers wait, as the kubelet shows them."""
    body = pod_to_k8s(pod)
    body["spec"] = dict(body.get("spec") or {})
    if row.node:
        body["spec"]["nodeName"] = row.node
    observed = snap.pods.get(row.uid) if snap and snap.reachable else None
    reachable = None if snap is None else snap.reachable
    layout = PodLayout.of(pod.spec)
    phase, reason = pod_phase(observed, pod.spec.restart_policy, row.node is not None, reachable, layout)
    init_statuses, container_statuses = statuses(observed, layout)
    # Before anything runs, the first container to start (the first init container, or
    # every app container) shows why it waits, as the kubelet reports it.
    first = init_statuses[:1] + (container_statuses if not init_statuses else [])
    if image_waiting and observed is None:
        for s in init_statuses + container_statuses:
            if s["name"] in image_waiting:
                why, message = image_waiting[s["name"]]
                s["state"] = {"waiting": {"reason": why, "message": message}}
                reason = why
    elif image_missing and observed is None:
        for s in first:
            s["state"] = {"waiting": {"reason": "ErrImageNeverPull",
                                      "message": f'image "{s["image"]}" is not in the podctl image store '
                                                 f"(podctl image import)"}}
        reason = "ErrImageNeverPull"
    elif config_error and observed is None and row.node:
        why, message = config_error
        # env: CreateContainerConfigError; a volume: still ContainerCreating (FailedMount)
        waiting = "CreateContainerConfigError" if why != "FailedMount" else "ContainerCreating"
        for s in first:
            s["state"] = {"waiting": {"reason": waiting, "message": message}}
        reason = waiting
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
    ephemeral = getattr(row, "ephemeral", None) or []
    if ephemeral:
        body["spec"]["ephemeralContainers"] = [dict(e) for e in ephemeral]
        seen = None if observed is None else list(observed.status.get("ephemeral") or [])
        status["ephemeralContainerStatuses"] = ephemeral_statuses(ephemeral, seen, {})
    if init_statuses:
        status["initContainerStatuses"] = init_statuses
    if reason:
        status["reason"] = reason
    eviction = evicted(observed)
    if eviction is not None:
        status["message"] = eviction[1]
        conditions.append(disruption_condition(eviction[1]))
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
