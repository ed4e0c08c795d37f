"""Kubernetes-shaped pod status from what a host reported. Pure functions.

The supervisor records facts (each container's state, exit code, restarts, ready and
started as its probes decide, counters of probe and hook failures); the phase, the
container statuses, the conditions and kubectl's STATUS and READY columns are derived
here, so the rules live in one testable place.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .emptydir_limit import evicted
from .probe import ObservedPod

# Fields of a state.json entry that are Kubernetes' containerStatuses[] fields.
_STATUS_KEYS = ("name", "state", "lastState", "ready", "started", "restartCount")


@dataclass(frozen=True)
class PodLayout:
    """The containers of a pod spec as status needs them: init containers in order (with
    which are sidecars), app containers, images by container name."""

    containers: tuple[str, ...]
    init_containers: tuple[str, ...] = ()
    sidecars: frozenset[str] = frozenset()
    images: dict = field(default_factory=dict, compare=False, hash=False)

    @classmethod
    def of(cls, spec) -> PodLayout:
        """From a model.PodSpec."""
        return cls(tuple(c.name for c in spec.containers), tuple(c.name for c in spec.init_containers),
                   frozenset(c.name for c in spec.init_containers if c.is_sidecar),
                   {c.name: c.image for c in spec.all_containers()})


def _state_name(entry: dict) -> str:
    state = entry.get("state") or {}
    return next(iter(state), "waiting")


def _exit_code(entry: dict) -> int:
    return int(((entry.get("state") or {}).get("terminated") or {}).get("exitCode", 1))


def _entries(observed: ObservedPod | None) -> dict[str, dict]:
    return {c.get("name", ""): c for c in (observed.containers if observed else [])}


def initialized(observed: ObservedPod | None, layout: PodLayout) -> bool:
    """Kubernetes' Initialized: every init container completed (sidecars started). The
    supervisor starts app containers only then, so an app container's state says it too."""
    if not layout.init_containers:
        return True
    entries = _entries(observed)
    if any(name in entries for name in layout.containers):
        return True
    for name in layout.init_containers:
        e = entries.get(name)
        if e is None:
            return False
        if name in layout.sidecars:
            if not e.get("started"):
                return False
        elif _state_name(e) != "terminated" or _exit_code(e) != 0:
            return False
    return True


def _init_failed(observed: ObservedPod, layout: PodLayout, restart_policy: str) -> bool:
    """A regular init container failed for good (restartPolicy Never, or the supervisor
    is done): the pod is Failed."""
    for name in layout.init_containers:
        e = _entries(observed).get(name)
        if name in layout.sidecars or e is None or _state_name(e) != "terminated":
            continue
        if _exit_code(e) != 0 and (restart_policy == "Never" or observed.state == "finished"):
            return True
    return False


def pod_phase(observed: ObservedPod | None, restart_policy: str, bound: bool,
              host_reachable: bool | None, layout: PodLayout | None = None) -> tuple[str, str]:
    """(phase, reason) as Kubernetes would report them. The phase follows the app
    containers only (sidecars never decide it: a Job with a sidecar completes)."""
    if not bound:
        return "Pending", "Unschedulable"
    if host_reachable is False:
        # We cannot see the host: the pod may well be running. Never claim Failed.
        return "Unknown", "NodeUnreachable"
    if observed is None:
        return "Pending", "ContainerCreating"
    eviction = evicted(observed)
    if eviction is not None:
        # Evicted (emptyDir over its sizeLimit): Failed from the decision on, as the
        # kubelet reports it, whatever the containers' exit codes.
        return "Failed", eviction[0]
    if layout is None:
        names = tuple(observed.meta.get("containers") or [c.get("name", "") for c in observed.containers])
        layout = PodLayout(names, tuple(observed.meta.get("initContainers") or ()))
    if _init_failed(observed, layout, restart_policy):
        return "Failed", ""
    if not initialized(observed, layout):
        if observed.state == "dead":
            return "Unknown", "SupervisorLost"
        return "Pending", ""
    entries = _entries(observed)
    containers = [entries[n] for n in layout.containers if n in entries]
    states = [_state_name(c) for c in containers]
    if not containers or len(containers) < len(layout.containers):
        if observed.state == "dead":
            return "Unknown", "SupervisorLost"
        return "Pending", "ContainerCreating"
    if observed.state == "dead" and "terminated" not in states:
        return "Unknown", "SupervisorLost"
    if all(s == "terminated" for s in states) and (observed.state != "alive" or restart_policy != "Always"):
        codes = [_exit_code(c) for c in containers]
        if observed.state == "finished" or restart_policy == "Never" or all(x == 0 for x in codes):
            return ("Succeeded", "") if all(x == 0 for x in codes) else ("Failed", "")
    if any(s == "running" for s in states) or any(c.get("restartCount") for c in containers):
        return "Running", ""
    return "Pending", "ContainerCreating"


def _status_item(name: str, entry: dict | None, image: str, digest: str, waiting: str) -> dict:
    if entry is None:
        return {"name": name, "image": image, "imageID": "", "ready": False, "started": False,
                "restartCount": 0, "state": {"waiting": {"reason": waiting}}, "lastState": {}}
    state = entry.get("state") or {"waiting": {"reason": waiting}}
    running = "running" in state
    # state.json from before probes: ready and started mean running.
    started = bool(entry.get("started", running)) and running
    return {
        "name": name,
        "image": image,
        "imageID": "sha256:" + digest if digest else "",
        "ready": bool(entry.get("ready", running)) and (running or "terminated" in state),
        "started": started,
        "restartCount": int(entry.get("restartCount") or 0),
        "state": state,
        "lastState": entry.get("lastState") or {},
    }


def statuses(observed: ObservedPod | None, layout: PodLayout) -> tuple[list[dict], list[dict]]:
    """(initContainerStatuses, containerStatuses) as `kubectl get pod -o json` shows
    them. Not started yet: waiting PodInitializing (app containers while the init
    containers run) or ContainerCreating."""
    entries = _entries(observed)
    digests = (observed.meta.get("images") or {}) if observed else {}
    init_done = initialized(observed, layout)
    inits = [_status_item(n, entries.get(n), layout.images.get(n, ""), str(digests.get(n, "")),
                          "PodInitializing") for n in layout.init_containers]
    apps = [_status_item(n, entries.get(n), layout.images.get(n, ""), str(digests.get(n, "")),
                         "ContainerCreating" if init_done else "PodInitializing") for n in layout.containers]
    for item in inits:
        if item["name"] not in layout.sidecars and "terminated" in item["state"]:
            item["ready"] = _exit_code(item) == 0
    return inits, apps


def container_statuses(observed: ObservedPod | None, images: dict[str, str]) -> list[dict]:
    """containerStatuses[] of a pod without init containers (kept for callers that
    know only the images)."""
    return statuses(observed, PodLayout(tuple(images), images=dict(images)))[1]


def ready_counts(statuses_: list[dict], init_statuses: list[dict] = (), sidecars=frozenset()) -> tuple[int, int]:
    """kubectl's READY column (1.29+): app containers plus sidecars, ready of them."""
    counted = list(statuses_) + [s for s in init_statuses if s["name"] in sidecars]
    return sum(1 for s in counted if s.get("ready")), len(counted)


def summarize_ready(statuses_: list[dict], init_statuses: list[dict] = (), sidecars=frozenset()) -> str:
    ready, total = ready_counts(statuses_, init_statuses, sidecars)
    return f"{ready}/{total}"


def _terminated_reason(term: dict, prefix: str = "") -> str:
    if term.get("reason"):
        return prefix + term["reason"]
    if term.get("signal"):
        return f"{prefix}Signal:{term['signal']}"
    return f"{prefix}ExitCode:{term.get('exitCode', 0)}"


def display_status(phase: str, reason: str, statuses_: list[dict], init_statuses: list[dict] = (),
                   sidecars=frozenset(), initialized_: bool = True) -> str:
    """The STATUS column of `kubectl get pods` (kubectl's printPod): the first init
    container not done (Init:N/M, Init:Error, Init:CrashLoopBackOff...), else the most
    telling app container reason, else the phase."""
    shown = reason if phase == "Pending" and reason else phase
    if phase == "Failed" and reason == "Evicted":
        return reason  # kubectl shows the pod's reason; its containers' say less
    initializing = False
    for i, s in enumerate(init_statuses):
        state = s.get("state") or {}
        term, waiting = state.get("terminated"), state.get("waiting")
        if term and term.get("exitCode") == 0:
            continue
        if s["name"] in sidecars and s.get("started"):
            continue
        if term:
            shown = _terminated_reason(term, "Init:")
        elif waiting and waiting.get("reason") and waiting["reason"] != "PodInitializing":
            shown = "Init:" + waiting["reason"]
        else:
            shown = f"Init:{i}/{len(init_statuses)}"
        initializing = True
        break
    if initializing and not initialized_:
        return shown
    has_running = False
    for s in reversed(statuses_):
        state = s.get("state") or {}
        waiting, term = state.get("waiting"), state.get("terminated")
        if waiting and waiting.get("reason") and not (waiting["reason"] == "ContainerCreating" and reason):
            shown = waiting["reason"]
        elif term:
            shown = _terminated_reason(term)
        elif "running" in state and s.get("ready"):
            has_running = True
    if shown == "Completed" and has_running:
        shown = "Running"
    if phase == "Succeeded" and not any("running" in (s.get("state") or {}) for s in statuses_):
        shown = "Completed"
    return shown


def pod_conditions(phase: str, bound: bool, init_done: bool, statuses_: list[dict],
                   init_statuses: list[dict], sidecars=frozenset(), times: dict | None = None,
                   pending_message: str = "") -> list[dict]:
    """PodScheduled, Initialized, ContainersReady, Ready (Kubernetes' order), with
    lastTransitionTime from `times` (condition type -> RFC 3339) where known."""
    times = times or {}
    ready_n, total = ready_counts(statuses_, init_statuses, sidecars)
    ready = phase == "Running" and ready_n == total
    if phase == "Succeeded":
        ready = False
    not_ready = [s["name"] for s in list(init_statuses) + list(statuses_)
                 if (s["name"] in sidecars or s in statuses_) and not s.get("ready")]

    def cond(kind: str, ok: bool, reason: str = "", message: str = "") -> dict:
        out = {"type": kind, "status": "True" if ok else "False"}
        if times.get(kind):
            out["lastTransitionTime"] = times[kind]
        if not ok and reason:
            out["reason"] = reason
            if message:
                out["message"] = message
        return out

    names = ", ".join(not_ready)
    unready = f"containers with unready status: [{names}]" if names else ""
    if phase in ("Succeeded", "Failed"):
        reason = "PodCompleted"
    else:
        reason = "ContainersNotReady"
    pending_init = [s["name"] for s in init_statuses
                    if not ((s.get("state") or {}).get("terminated") or {}).get("exitCode") == 0
                    and not (s["name"] in sidecars and s.get("started"))]
    return [
        cond("PodScheduled", bound, "Unschedulable", pending_message),
        cond("Initialized", init_done or phase in ("Succeeded",), "ContainersNotInitialized",
             f"containers with incomplete status: [{', '.join(pending_init)}]"),
        cond("ContainersReady", ready, reason, unready),
        cond("Ready", ready, reason, unready),
    ]


def public_status(entry: dict) -> dict:
    """A state.json entry without podctl's own fields."""
    return {k: v for k, v in entry.items() if k in _STATUS_KEYS}
