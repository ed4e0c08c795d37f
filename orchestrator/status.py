"""Kubernetes-shaped pod status from what a host reported. Pure functions.

The supervisor records facts (each container's state, exit code, restarts); the phase
and conditions are derived here, so the rules live in one testable place.
"""

from __future__ import annotations

from .probe import ObservedPod


def _state_name(entry: dict) -> str:
    state = entry.get("state") or {}
    return next(iter(state), "waiting")


def pod_phase(observed: ObservedPod | None, restart_policy: str, bound: bool,
              host_reachable: bool | None) -> tuple[str, str]:
    """(phase, reason) as Kubernetes would report them."""
    if not bound:
        return "Pending", "Unschedulable"
    if host_reachable is False:
        # We cannot see the host: the pod may well be running. Never claim Failed.
        return "Unknown", "NodeUnreachable"
    if observed is None:
        return "Pending", "ContainerCreating"
    containers = observed.containers
    states = [_state_name(c) for c in containers]
    expected = len(observed.meta.get("containers") or containers)
    if not containers or len(containers) < expected:
        return "Pending", "ContainerCreating"
    if observed.state == "dead" and "terminated" not in states:
        return "Unknown", "SupervisorLost"
    if all(s == "terminated" for s in states) and (observed.state != "alive" or restart_policy != "Always"):
        codes = [c["state"]["terminated"].get("exitCode", 1) for c in containers]
        if observed.state == "finished" or restart_policy == "Never" or all(x == 0 for x in codes):
            return ("Succeeded", "") if all(x == 0 for x in codes) else ("Failed", "")
    if any(s == "running" for s in states) or any(c.get("restartCount") for c in containers):
        return "Running", ""
    return "Pending", "ContainerCreating"


def container_statuses(observed: ObservedPod | None, images: dict[str, str]) -> list[dict]:
    """containerStatuses[] as `kubectl get pod -o json` shows them."""
    if observed is None:
        return [{"name": name, "ready": False, "restartCount": 0, "image": image,
                 "state": {"waiting": {"reason": "ContainerCreating"}}, "lastState": {}}
                for name, image in images.items()]
    out = []
    for c in observed.containers:
        name = c.get("name", "")
        state = c.get("state") or {"waiting": {"reason": "ContainerCreating"}}
        out.append({
            "name": name,
            "image": images.get(name, ""),
            "imageID": "sha256:" + str((observed.meta.get("images") or {}).get(name, "")),
            "ready": "running" in state,
            "started": "running" in state,
            "restartCount": int(c.get("restartCount") or 0),
            "state": state,
            "lastState": c.get("lastState") or {},
        })
    return out


def summarize_ready(statuses: list[dict]) -> str:
    ready = sum(1 for s in statuses if s.get("ready"))
    return f"{ready}/{len(statuses)}"


def display_status(phase: str, reason: str, statuses: list[dict]) -> str:
    """The STATUS column of `kubectl get pods`: the most telling container reason."""
    for s in statuses:
        waiting = (s.get("state") or {}).get("waiting")
        if waiting and waiting.get("reason") not in (None, "ContainerCreating"):
            return waiting["reason"]
    for s in statuses:
        term = (s.get("state") or {}).get("terminated")
        if term and phase not in ("Succeeded",) and term.get("reason") not in ("Completed",):
            return term.get("reason") or "Error"
    if phase == "Succeeded":
        return "Completed"
    if phase == "Pending" and reason:
        return reason
    return phase
