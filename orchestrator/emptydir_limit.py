"""emptyDir sizeLimit, enforced as the kubelet's eviction manager does. Pure functions.

A disk-backed emptyDir (medium "") with a sizeLimit is watched on its host by a small
process (templates/emptydir_watch.sh.j2, started by the pod's create script): every
CHECK_INTERVAL_S it measures the volumes with `du`, and when one holds more than its
limit it writes the eviction marker (one line of JSON, the pod's state dir) and sends
SIGTERM to the pod's supervisor, which stops the containers as any pod stop does
(grace period, then SIGKILL). A medium Memory emptyDir needs no watcher: its tmpfs has
the limit as its size.

The probe reports the marker inside the pod's status; from it the pod is Failed with
reason Evicted and the kubelet's message, and a bare pod is never re-created (it stays
Failed until deleted, as in Kubernetes). Workload controllers see a Failed pod and
treat it by their own rules (a Deployment replaces it, a Job counts it as failed).
"""

from __future__ import annotations

import json

from .model import PodSpec
from .quantity import format_memory
from .render import render

# Seconds between two measurements. The kubelet measures volumes every ~10 s
# (housekeeping); a `du` of a small emptyDir costs a few milliseconds.
CHECK_INTERVAL_S = 5
REASON = "Evicted"


def message(volume: str, limit: int) -> str:
    """The kubelet's emptyDirMessageFmt (without its trailing space), with the limit in
    canonical form ("1Mi", "512Ki", or bytes)."""
    return f'Usage of EmptyDir volume "{volume}" exceeds the limit "{format_memory(limit)}".'


def marker(volume: str, limit: int) -> str:
    """The marker the watcher writes: one line of JSON without a space (the probe
    reports a pod's status as one space-free word)."""
    text = json.dumps({"reason": REASON, "message": message(volume, limit), "volume": volume},
                      separators=(",", ":"), ensure_ascii=True, sort_keys=True)
    return text.replace(" ", "\\u0020")


def watched(spec: PodSpec, state_dir: str) -> list[tuple[str, int, str, str]]:
    """(volume name, limit in bytes, directory on the host, marker) for every emptyDir
    the watcher must measure: on disk, with a positive sizeLimit (the kubelet ignores a
    zero limit). `state_dir`: the pod's directory (runtime.pod_dir)."""
    return [(v.name, v.size_limit, f"{state_dir}/volumes/{v.name}", marker(v.name, v.size_limit))
            for v in spec.volumes
            if v.kind == "emptyDir" and v.medium == "" and v.size_limit and v.size_limit > 0]


def eviction(status: dict | None) -> tuple[str, str] | None:
    """(reason, message) when the pod's status (probe.ObservedPod.status) carries the
    watcher's marker, else None."""
    ev = (status or {}).get("evicted")
    if not isinstance(ev, dict):
        return None
    return str(ev.get("reason") or REASON), str(ev.get("message") or "")


def evicted(observed) -> tuple[str, str] | None:
    """eviction() of an ObservedPod (or None)."""
    return None if observed is None else eviction(observed.status)


def disruption_condition(msg: str, at: str | None = None) -> dict:
    """The DisruptionTarget condition the kubelet adds to a pod it evicts (1.26+)."""
    cond = {"type": "DisruptionTarget", "status": "True", "reason": "TerminationByKubelet", "message": msg}
    if at:
        cond["lastTransitionTime"] = at
    return cond


def watch_script(spec: PodSpec, uid: str, state_dir: str) -> str:
    """The watcher for a pod ("" when it has nothing to watch)."""
    volumes = watched(spec, state_dir)
    if not volumes:
        return ""
    return render("emptydir_watch.sh.j2", uid=uid, interval=CHECK_INTERVAL_S,
                  volumes=[str(x) for v in volumes for x in v])
