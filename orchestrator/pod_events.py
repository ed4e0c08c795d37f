"""Container events (Started, Killing, Unhealthy, BackOff...) from observed transitions.

Hosts report states, not events: each run compares what a pod's containers look like
now (a small summary of each state.json) with the summary recorded at the previous
run, and only a change makes an event, so a cron run over an unchanged pod adds none.
Pure functions; the controller stores the summary (pods.observed) and the events.
"""

from __future__ import annotations

from .probe import ObservedPod

# podctl's counters in state.json ("podctl": {key: {count, message}}) -> (type, reason)
_COUNTERS = {
    "Killing": ("Normal", "Killing"),
    "Liveness": ("Warning", "Unhealthy"),
    "Readiness": ("Warning", "Unhealthy"),
    "Startup": ("Warning", "Unhealthy"),
    "FailedPostStartHook": ("Warning", "FailedPostStartHook"),
}


def summarize(observed: ObservedPod) -> dict:
    """What events are derived from, per container: when it last started, why it
    waits, and podctl's failure counters."""
    out = {}
    for c in observed.containers:
        name = str(c.get("name") or "")
        state = c.get("state") or {}
        extra = c.get("podctl") or {}
        out[name] = {
            "startedAt": (state.get("running") or {}).get("startedAt"),
            "waiting": (state.get("waiting") or {}).get("reason"),
            "restarts": int(c.get("restartCount") or 0),
            "counts": {k: int((v or {}).get("count") or 0) for k, v in extra.items() if isinstance(v, dict)},
            "messages": {k: str((v or {}).get("message") or "") for k, v in extra.items() if isinstance(v, dict)},
        }
    return out


def transitions(before: dict | None, now: dict, pod_name: str) -> list[tuple[str, str, str]]:
    """(type, reason, message) for what changed between two summaries."""
    before = before or {}
    events = []
    for name, cur in sorted(now.items()):
        old = before.get(name) or {}
        started = cur.get("startedAt")
        if started and (started != old.get("startedAt") or cur.get("restarts") != old.get("restarts")):
            events.append(("Normal", "Started", f"Started container {name}"))
        if cur.get("waiting") == "CrashLoopBackOff" and (old.get("waiting") != "CrashLoopBackOff"
                                                         or cur.get("restarts") != old.get("restarts")):
            events.append(("Warning", "BackOff", f"Back-off restarting failed container {name} in pod {pod_name}"))
        old_counts = old.get("counts") or {}
        for key, count in sorted((cur.get("counts") or {}).items()):
            new = count - int(old_counts.get(key) or 0)
            if key not in _COUNTERS or new <= 0:
                continue
            kind, reason = _COUNTERS[key]
            message = (cur.get("messages") or {}).get(key) or reason
            events.append((kind, reason, message + (f" (x{new})" if new > 1 else "")))
    return events
