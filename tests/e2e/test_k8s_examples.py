"""The Kubernetes documentation's example manifests, applied unchanged, behave as their
pages say (tests/e2e/k8s_examples/, copied from kubernetes/website: see SOURCES.md).

Their images are the busybox-static stand-ins (orchestrator/standins.py): `lab up`
imports them, and `podctl image standins` does on any controller.

Every manifest in the folder must have a check here: a new example without one fails.
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e

EXAMPLES = Path(__file__).with_name("k8s_examples")


def _pods(podctl) -> list[dict]:
    return json.loads(podctl("get", "pods", "-o", "json").stdout)["items"]


def _pod(podctl, name: str) -> dict:
    return json.loads(podctl("get", "pods", name, "-o", "json").stdout)


def _wait(what: str, probe, timeout: float = 40.0):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = probe()
        if last:
            return last
        time.sleep(0.4)
    raise AssertionError(f"never saw {what}; last: {json.dumps(last, indent=1) if last else last}")


def _status(pod: dict, container: str) -> dict:
    status = pod.get("status") or {}
    for s in (status.get("containerStatuses") or []) + (status.get("initContainerStatuses") or []):
        if s.get("name") == container:
            return s
    return {}


def _running(pod: dict, container: str) -> bool:
    return "running" in (_status(pod, container).get("state") or {})


def _logs(podctl, *args: str) -> str:
    return podctl("logs", *args).stdout


def check_two_container_pod(podctl) -> None:
    """pods/two-container-pod (concepts: "Communicate Between Containers in the Same Pod
    Using a Shared Volume"): the debian container writes index.html into the shared
    volume and exits; nginx keeps serving it; the pod stays Running (restartPolicy Never)."""
    def settled():
        pod = _pod(podctl, "two-containers")
        term = (_status(pod, "debian-container").get("state") or {}).get("terminated")
        return pod if term and _running(pod, "nginx-container") else None

    pod = _wait("debian-container terminated and nginx-container running", settled)
    term = _status(pod, "debian-container")["state"]["terminated"]
    assert (term["exitCode"], term["reason"]) == (0, "Completed")
    assert pod["status"]["phase"] == "Running"
    page = podctl("exec", "two-containers", "-c", "nginx-container", "--",
                  "wget", "-qO-", "http://localhost/").stdout
    assert page.strip() == "Hello from the debian container"


def check_counter_pod(podctl) -> None:
    """debug/counter-pod (concepts: "Logging Architecture"): `kubectl logs counter`
    prints "0: <date>", "1: <date>", ... one a second."""
    _wait("counter Running", lambda: _pod(podctl, "counter")["status"]["phase"] == "Running")

    def lines():
        out = _logs(podctl, "counter").splitlines()
        return out if len(out) >= 3 else None

    out = _wait("three log lines", lines, timeout=15)
    for i, line in enumerate(out[:3]):
        assert re.fullmatch(rf"{i}: \S.*", line), out


def check_deployment_sidecar(podctl) -> None:
    """application/deployment-sidecar (concepts: "Sidecar Containers"): the app writes
    logs.txt into an emptyDir, the logshipper sidecar (an init container with
    restartPolicy Always) keeps running beside it and tails the file."""
    def ready():
        pods = [p for p in _pods(podctl)
                if (p["metadata"].get("labels") or {}).get("app.kubernetes.io/name") == "myapp"]
        if len(pods) == 1 and _running(pods[0], "myapp") and _running(pods[0], "logshipper"):
            return pods[0]
        return None

    pod = _wait("myapp and its logshipper sidecar running", ready)
    name = pod["metadata"]["name"]
    sidecar = _status(pod, "logshipper")
    assert sidecar.get("started") is True, sidecar
    assert [s["name"] for s in pod["status"]["initContainerStatuses"]] == ["logshipper"]
    assert _wait("the sidecar shipping the app's lines",
                 lambda: "logging" in _logs(podctl, name, "-c", "logshipper"), timeout=15)
    # A Deployment's status is what the last reconcile saw (cron or --watch runs them).
    seen = {}

    def deployment_ready():
        seen["reconcile"] = podctl("reconcile", check=False).stdout
        seen["status"] = json.loads(podctl("get", "deployments", "myapp", "-o", "json").stdout)["status"]
        seen["pod"] = _pod(podctl, name)["status"]
        return seen["status"].get("readyReplicas") == 1

    try:
        _wait("the Deployment counting its pod ready", deployment_ready, timeout=20)
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n{json.dumps(seen, indent=1)}") from None


def check_startup_coordination(podctl) -> None:
    """pods/multi-container/startup-coordination (concepts: "Sidecar Containers",
    startup probes): main-app starts only once the config sidecar's startupProbe sees
    /config/app.conf, so its first line is the greeting."""
    def started():
        pod = _pod(podctl, "startup-coordination-example")
        return pod if _running(pod, "main-app") else None

    pod = _wait("main-app running", started)
    assert _status(pod, "config-sidecar").get("started") is True
    assert _running(pod, "config-sidecar")
    out = _wait("main-app's greeting",
                lambda: _logs(podctl, "startup-coordination-example", "-c", "main-app"))
    assert out.splitlines()[0] == "greeting=hello", out


CHECKS = {
    "pods__two-container-pod.yaml": check_two_container_pod,
    "debug__counter-pod.yaml": check_counter_pod,
    "application__deployment-sidecar.yaml": check_deployment_sidecar,
    "pods__multi-container__startup-coordination.yaml": check_startup_coordination,
}


def test_every_example_has_a_check():
    assert sorted(p.name for p in EXAMPLES.glob("*.yaml")) == sorted(CHECKS)


@pytest.fixture(scope="module")
def examples(lab, podctl):
    """Every example applied at once, as a user would (`apply -f DIR`), removed at the end:
    their containers ignore SIGTERM as PID 1 (sleep, tail, httpd), so each delete takes
    the full grace period; one delete of them all waits it once."""
    podctl("image", "standins")
    podctl("apply", "-f", str(EXAMPLES))
    yield podctl
    podctl("delete", "-f", str(EXAMPLES), check=False)
    podctl("reconcile", check=False)
    _wait("every pod of the examples gone", lambda: not _pods(podctl), timeout=60)


@pytest.mark.parametrize("name", sorted(CHECKS))
def test_example(examples, name):
    CHECKS[name](examples)
