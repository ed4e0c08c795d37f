"""Init containers, sidecars, probes and hooks: validation, status derivation, rendering,
events from transitions. Pure logic; the e2e side is tests/e2e/test_lifecycle.py."""

from __future__ import annotations

import copy
import subprocess

import pytest

from orchestrator.errors import ManifestError
from orchestrator.manifests import pod_to_k8s, validate_pod
from orchestrator.model import ImageConfig
from orchestrator.pod_events import summarize, transitions
from orchestrator.probe import ObservedPod
from orchestrator.runtime import Network, pod_context
from orchestrator.status import PodLayout, display_status, pod_conditions, pod_phase, statuses, summarize_ready

UID = "12345678-1234-1234-1234-123456789abc"
BASE = {
    "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
    "spec": {
        "initContainers": [
            {"name": "setup", "image": "busybox", "command": ["true"]},
            {"name": "side", "image": "busybox", "restartPolicy": "Always",
             "startupProbe": {"exec": {"command": ["test", "-f", "/x"]}, "periodSeconds": 1}},
        ],
        "containers": [{
            "name": "app", "image": "busybox", "ports": [{"name": "http", "containerPort": 8080}],
            "livenessProbe": {"httpGet": {"port": "http", "path": "/healthz",
                                          "httpHeaders": [{"name": "X-Probe", "value": "a b"}]}},
            "readinessProbe": {"tcpSocket": {"port": 8080}, "periodSeconds": 2},
            "lifecycle": {"postStart": {"exec": {"command": ["sh", "-c", "echo hi"]}},
                          "preStop": {"sleep": {"seconds": 3}}},
        }],
    },
}


def doc(**changes) -> dict:
    d = copy.deepcopy(BASE)
    for path, value in changes.items():
        node = d
        keys = path.split(".")
        for k in keys[:-1]:
            node = node[int(k)] if k.isdigit() else node[k]
        last = keys[-1]
        if value is None:
            del node[last]
        else:
            node[int(last) if last.isdigit() else last] = value
    return d


def error_of(d: dict) -> str:
    with pytest.raises(ManifestError) as info:
        validate_pod(d, "pod.yaml")
    return str(info.value)


def test_valid_pod_round_trips_with_kubernetes_defaults():
    pod = validate_pod(doc(), "pod.yaml")
    assert [c.name for c in pod.spec.init_containers] == ["setup", "side"]
    assert pod.spec.init_containers[1].is_sidecar and not pod.spec.init_containers[0].is_sidecar
    live = pod.spec.containers[0].liveness_probe
    assert (live.initial_delay_seconds, live.period_seconds, live.timeout_seconds,
            live.success_threshold, live.failure_threshold) == (0, 10, 1, 1, 3)
    assert live.handler.port == "http" and live.handler.headers == (("X-Probe", "a b"),)
    assert validate_pod(pod_to_k8s(pod), pod.source) == pod


BAD = [
    ("liveness successThreshold", {"spec.containers.0.livenessProbe.successThreshold": 2},
     "spec.containers[0].livenessProbe.successThreshold: must be 1 for a liveness probe"),
    ("startup successThreshold", {"spec.initContainers.1.startupProbe.successThreshold": 3},
     "startupProbe.successThreshold: must be 1 for a startup probe"),
    ("two handlers", {"spec.containers.0.readinessProbe.exec": {"command": ["true"]}},
     "readinessProbe: more than one handler given"),
    ("no handler", {"spec.containers.0.readinessProbe": {"periodSeconds": 1}},
     "readinessProbe: no handler given"),
    ("empty exec", {"spec.containers.0.lifecycle.postStart": {"exec": {"command": []}}},
     "postStart.exec.command: required"),
    ("unknown port name", {"spec.containers.0.livenessProbe.httpGet.port": "web"},
     "no container port named 'web'"),
    ("port out of range", {"spec.containers.0.readinessProbe.tcpSocket.port": 70000},
     "70000 is out of range"),
    ("https", {"spec.containers.0.livenessProbe.httpGet.scheme": "HTTPS"},
     "'HTTPS' is not supported by podctl yet"),
    ("negative period", {"spec.containers.0.readinessProbe.periodSeconds": -1},
     "periodSeconds: -1 is out of range"),
    ("probe on init container", {"spec.initContainers.0.readinessProbe": {"exec": {"command": ["true"]}}},
     "initContainers[0].readinessProbe: may not be set for init containers"),
    ("restartPolicy on app container", {"spec.containers.0.restartPolicy": "Always"},
     "containers[0].restartPolicy: may not be set for non-init containers"),
    ("init restartPolicy Never", {"spec.initContainers.0.restartPolicy": "Never"},
     "initContainers[0].restartPolicy: 'Never' is not allowed"),
    ("name shared by init and app", {"spec.initContainers.0.name": "app"},
     "duplicate container name 'app'"),
    ("sleep longer than grace", {"spec.terminationGracePeriodSeconds": 2},
     "preStop.sleep.seconds: 3 is out of range (allowed: 1..2)"),
    ("header with newline", {"spec.containers.0.livenessProbe.httpGet.httpHeaders": [{"name": "X", "value": "a\nb"}]},
     "contains control characters"),
    ("tcpSocket hook", {"spec.containers.0.lifecycle.preStop": {"tcpSocket": {"port": 1}}},
     "not supported by podctl yet"),
]


@pytest.mark.parametrize("name, changes, message", BAD, ids=[b[0] for b in BAD])
def test_bad_specs_are_refused_naming_the_field(name, changes, message):
    assert message in error_of(doc(**changes))


# ---------------------------------------------------------------- status

LAYOUT = PodLayout(("app",), ("setup", "side"), frozenset({"side"}), {"app": "busybox", "setup": "busybox",
                                                                    "side": "busybox"})
RUN = {"running": {"startedAt": "2026-01-01T00:00:01Z"}}
DONE = {"terminated": {"exitCode": 0, "reason": "Completed", "finishedAt": "2026-01-01T00:00:00Z"}}
FAIL = {"terminated": {"exitCode": 1, "reason": "Error"}}
LOOP = {"waiting": {"reason": "CrashLoopBackOff"}}


def c(name, state, ready=False, started=False, restarts=0):
    return {"name": name, "state": state, "ready": ready, "started": started, "restartCount": restarts,
            "lastState": {}}


def obs(*containers, state="alive"):
    return ObservedPod(UID, state, {"containers": list(containers)}, {})


STATUS = [
    # name, observed, policy -> phase, STATUS, READY
    ("first init running", obs(c("setup", RUN)), "Always", "Pending", "Init:0/2", "0/2"),
    ("sidecar starting", obs(c("setup", DONE), c("side", RUN)), "Always", "Pending", "Init:1/2", "0/2"),
    ("init crash looping", obs(c("setup", LOOP, restarts=2)), "Always", "Pending", "Init:CrashLoopBackOff", "0/2"),
    ("init failed under Never", obs(c("setup", FAIL), state="finished"), "Never", "Failed", "Init:Error", "0/2"),
    ("app starting", obs(c("setup", DONE), c("side", RUN, True, True)), "Always", "Pending", "ContainerCreating",
     "1/2"),
    ("all ready", obs(c("setup", DONE), c("side", RUN, True, True), c("app", RUN, True, True)), "Always",
     "Running", "Running", "2/2"),
    ("app not ready", obs(c("setup", DONE), c("side", RUN, True, True), c("app", RUN, False, True)), "Always",
     "Running", "Running", "1/2"),
    ("job done, sidecar stopped", obs(c("setup", DONE), c("side", FAIL), c("app", DONE), state="finished"),
     "Never", "Succeeded", "Completed", "0/2"),
    ("app crash looping", obs(c("setup", DONE), c("side", RUN, True, True), c("app", LOOP, restarts=3)), "Always",
     "Running", "CrashLoopBackOff", "1/2"),
]


@pytest.mark.parametrize("name, observed, policy, phase, shown, ready", STATUS, ids=[s[0] for s in STATUS])
def test_status_derivation(name, observed, policy, phase, shown, ready):
    got_phase, reason = pod_phase(observed, policy, True, True, LAYOUT)
    assert got_phase == phase
    inits, apps = statuses(observed, LAYOUT)
    init_done = any(s["name"] == "app" for s in observed.containers)
    assert display_status(got_phase, reason, apps, inits, LAYOUT.sidecars, init_done) == shown
    assert summarize_ready(apps, inits, LAYOUT.sidecars) == ready


def test_waiting_reasons_and_conditions_while_initializing():
    observed = obs(c("setup", RUN))
    inits, apps = statuses(observed, LAYOUT)
    assert apps[0]["state"] == {"waiting": {"reason": "PodInitializing"}}
    assert inits[1]["state"] == {"waiting": {"reason": "PodInitializing"}}
    conds = {x["type"]: x for x in pod_conditions("Pending", True, False, apps, inits, LAYOUT.sidecars,
                                                   {"PodScheduled": "t0"})}
    assert conds["PodScheduled"] == {"type": "PodScheduled", "status": "True", "lastTransitionTime": "t0"}
    assert conds["Initialized"]["status"] == "False"
    assert conds["Initialized"]["reason"] == "ContainersNotInitialized"
    assert conds["Ready"]["message"] == "containers with unready status: [side, app]"
    # a completed init container is ready, podctl's own state fields never show
    inits, _ = statuses(obs(dict(c("setup", DONE, True), podctl={"Killing": {"count": 1}})), LAYOUT)
    assert inits[0]["ready"] and "podctl" not in inits[0]


# ---------------------------------------------------------------- events


def test_events_come_from_transitions_only():
    first = summarize(obs(c("app", RUN, restarts=0)))
    assert transitions(None, first, "p") == [("Normal", "Started", "Started container app")]
    assert transitions(first, first, "p") == []
    killed = dict(c("app", LOOP, restarts=1), podctl={
        "Liveness": {"count": 2, "message": "Liveness probe failed: nope"},
        "Killing": {"count": 1, "message": "Container app failed liveness probe, will be restarted"}})
    later = summarize(obs(killed))
    assert transitions(first, later, "p") == [
        ("Warning", "BackOff", "Back-off restarting failed container app in pod p"),
        ("Normal", "Killing", "Container app failed liveness probe, will be restarted"),
        ("Warning", "Unhealthy", "Liveness probe failed: nope (x2)"),
    ]


# ---------------------------------------------------------------- rendering


def test_supervisor_carries_every_probe_and_hook_as_data():
    pod = validate_pod(doc(), "pod.yaml")
    img = ImageConfig("busybox:latest", "a" * 64, cmd=("sh",))
    ctx = pod_context(pod, UID, {"busybox": img}, Network("10.244.1.5", "10.244.1.0/24"))
    script = ctx["supervisor"]
    assert "def_handler 1 startup exec 5 0 1 1 1 3 test -f /x\n" in script
    assert ("def_handler 2 liveness httpGet 5 0 10 1 1 3 10.244.1.5 8080 /healthz "
            "'Host: 10.244.1.5:8080' 'X-Probe: a b'\n") in script
    assert "def_handler 2 readiness tcpSocket 5 0 2 1 1 3 10.244.1.5 8080\n" in script
    assert "def_handler 2 prestop sleep 0  3\n" in script  # no params: an empty word list
    assert "def_container setup 0 init\n" in script and "def_container side 1 sidecar\n" in script
    assert ctx["wait_names"] == ["setup"]  # the create script waits for the first container only
    assert [c["name"] for c in ctx["containers"]] == ["setup", "side", "app"]
    app = ctx["containers"][2]
    assert (app["started_initially"], app["ready_initially"], app["hold_running"]) == ("true", "false", "yes")
    subprocess.run(["bash", "-n"], input=script.encode(), check=True)
