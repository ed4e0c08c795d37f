"""Pod lifecycle end to end: init containers, sidecars, probes, hooks, status and events.

All pods are applied at once (one reconcile) and checked side by side, so the module's
time is the slowest scenario's, not their sum: probes use periodSeconds 1.
"""

from __future__ import annotations

import json
import textwrap
import time
import uuid

import pytest

pytestmark = pytest.mark.e2e

MARK = f"/tmp/podctl-lifecycle-{uuid.uuid4().hex[:8]}"  # a hostPath the preStop hook writes

PODS = textwrap.dedent(f"""
    apiVersion: v1
    kind: Pod
    metadata: {{name: lc-init}}
    spec:
      terminationGracePeriodSeconds: 1
      volumes: [{{name: work, emptyDir: {{}}}}]
      initContainers:
      - {{name: first, image: busybox, command: [sh, -c, 'echo one >> /w/order'],
         volumeMounts: [{{name: work, mountPath: /w}}]}}
      - {{name: second, image: busybox, command: [sh, -c, 'sleep 4; echo two >> /w/order'],
         volumeMounts: [{{name: work, mountPath: /w}}]}}
      containers:
      - {{name: app, image: busybox, command: [sh, -c, 'cat /w/order; exec sleep 3600'],
         volumeMounts: [{{name: work, mountPath: /w}}]}}
    ---
    apiVersion: v1
    kind: Pod
    metadata: {{name: lc-live}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: app
        image: busybox
        command: [sh, -c, 'touch /tmp/alive; echo started; exec sleep 3600']
        livenessProbe:
          exec: {{command: [test, -f, /tmp/alive]}}
          periodSeconds: 1
          failureThreshold: 2
    ---
    apiVersion: v1
    kind: Pod
    metadata: {{name: lc-ready}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: app
        image: busybox
        command: [sleep, '3600']
        readinessProbe:
          exec: {{command: [test, -f, /tmp/ready]}}
          periodSeconds: 1
    ---
    apiVersion: v1
    kind: Pod
    metadata: {{name: lc-startup}}
    spec:
      terminationGracePeriodSeconds: 1
      initContainers:
      - name: config-sidecar
        image: busybox
        restartPolicy: Always
        command: [sh, -c, 'sleep 2; echo "greeting=hello" > /config/app.conf; while true; do sleep 3600; done']
        startupProbe:
          exec:
            command: [test, -f, /config/app.conf]
          periodSeconds: 1
        volumeMounts: [{{name: config, mountPath: /config}}]
      containers:
      - name: main-app
        image: busybox
        command: [sh, -c, 'cat /config/app.conf; while true; do sleep 3600; done']
        volumeMounts: [{{name: config, mountPath: /config}}]
      volumes: [{{name: config, emptyDir: {{}}}}]
    ---
    apiVersion: v1
    kind: Pod
    metadata: {{name: lc-hooks}}
    spec:
      terminationGracePeriodSeconds: 2
      volumes: [{{name: mark, hostPath: {{path: {MARK}, type: DirectoryOrCreate}}}}]
      containers:
      - name: web
        image: busybox
        command: [sh, -c, 'mkdir -p /www; exec httpd -f -p 8080 -h /www']
        ports: [{{name: http, containerPort: 8080}}]
        volumeMounts: [{{name: mark, mountPath: /mark}}]
        readinessProbe:
          httpGet: {{path: /ok.html, port: http}}
          periodSeconds: 1
        livenessProbe:
          tcpSocket: {{port: 8080}}
          periodSeconds: 1
        lifecycle:
          postStart:
            exec: {{command: [sh, -c, 'sleep 1; mkdir -p /www; echo ok > /www/ok.html']}}
          preStop:
            exec: {{command: [sh, -c, 'echo stopping > /mark/prestop']}}
    ---
    apiVersion: batch/v1
    kind: Job
    metadata: {{name: lc-job}}
    spec:
      backoffLimit: 0
      template:
        spec:
          restartPolicy: Never
          terminationGracePeriodSeconds: 2
          initContainers:
          - {{name: helper, image: busybox, restartPolicy: Always, command: [sh, -c, 'while true; do sleep 1; done']}}
          containers:
          - {{name: main, image: busybox, command: [sh, -c, 'sleep 2; echo done']}}
""")


def pod(podctl, name: str) -> dict:
    return json.loads(podctl("get", "pods", name, "-o", "json").stdout)


def wait_for(podctl, name: str, predicate, timeout: float = 30.0, reconcile: bool = False) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        if reconcile:
            podctl("reconcile", check=False)
        obj = pod(podctl, name)
        if predicate(obj):
            return obj
        if time.monotonic() > deadline:
            raise AssertionError(f"pod {name} never got there: {json.dumps(obj['status'], indent=1)}\n"
                                 + host_view(obj))
        time.sleep(0.3)


LAB = []


def host_view(obj: dict) -> str:
    """The supervisor's log and the containers' files on the pod's host (for failures)."""
    if not LAB or not obj["spec"].get("nodeName"):
        return ""
    d = f"/var/lib/podctl/pods/{obj['metadata']['uid']}"
    return LAB[0].ssh(obj["spec"]["nodeName"], f"tail -n 40 {d}/supervisor.log; "
                      f"for f in {d}/containers/*/*; do echo \"== $f\"; tail -c 600 $f; done").stdout


def cond(obj: dict, kind: str) -> str:
    return next(c["status"] for c in obj["status"]["conditions"] if c["type"] == kind)


def status_column(podctl, name: str) -> str:
    line = podctl("get", "pods", name).stdout.splitlines()[1].split()
    return f"{line[1]} {line[2]}"  # READY STATUS


def container(obj: dict, name: str) -> dict:
    every = obj["status"].get("initContainerStatuses", []) + obj["status"]["containerStatuses"]
    return next(s for s in every if s["name"] == name)


def events(podctl, name: str) -> str:
    return podctl("describe", "pod", name).stdout.split("Events:")[1]


@pytest.fixture(scope="module")
def applied(lab, podctl):
    LAB[:] = [lab]
    podctl("apply", "-f", "-", input=PODS, timeout=120)
    yield
    podctl("delete", "job", "lc-job", check=False)
    for name in ("lc-init", "lc-live", "lc-ready", "lc-startup", "lc-hooks"):
        podctl("delete", "pod", name, check=False)
    for host, _ in lab.hosts:
        lab.ssh(host, f"rm -rf {MARK}")


def test_init_containers_run_in_order_before_the_app(podctl, applied):
    # the second init container sleeps: the pod shows it is initializing
    shown = status_column(podctl, "lc-init")
    assert shown in ("0/1 Init:1/2", "0/1 Init:0/2"), shown
    obj = pod(podctl, "lc-init")
    assert obj["status"]["phase"] == "Pending" and cond(obj, "Initialized") == "False"
    assert container(obj, "app")["state"] == {"waiting": {"reason": "PodInitializing"}}
    obj = wait_for(podctl, "lc-init", lambda o: o["status"]["phase"] == "Running")
    for name in ("first", "second"):
        s = container(obj, name)
        assert s["state"]["terminated"]["reason"] == "Completed" and s["ready"], s
    assert cond(obj, "Initialized") == "True" and cond(obj, "Ready") == "True"
    assert podctl("logs", "lc-init").stdout == "one\ntwo\n"
    assert status_column(podctl, "lc-init") == "1/1 Running"


def test_readiness_probe_flips_the_pod_ready(podctl, applied):
    obj = wait_for(podctl, "lc-ready", lambda o: o["status"]["phase"] == "Running")
    assert cond(obj, "Ready") == "False" and not container(obj, "app")["ready"]
    assert container(obj, "app")["started"]
    assert status_column(podctl, "lc-ready") == "0/1 Running"
    podctl("exec", "lc-ready", "--", "touch", "/tmp/ready")
    obj = wait_for(podctl, "lc-ready", lambda o: cond(o, "Ready") == "True", timeout=10)
    assert cond(obj, "ContainersReady") == "True" and container(obj, "app")["ready"]
    assert next(c for c in obj["status"]["conditions"] if c["type"] == "Ready").get("lastTransitionTime")
    podctl("exec", "lc-ready", "--", "rm", "/tmp/ready")
    wait_for(podctl, "lc-ready", lambda o: cond(o, "Ready") == "False", timeout=10)
    podctl("reconcile", check=False)  # events come from what a run observes
    assert "Readiness probe failed" in events(podctl, "lc-ready")


def test_liveness_probe_restarts_the_container(podctl, applied):
    wait_for(podctl, "lc-live", lambda o: o["status"]["phase"] == "Running")
    podctl("exec", "lc-live", "--", "rm", "/tmp/alive")
    obj = wait_for(podctl, "lc-live", lambda o: container(o, "app")["restartCount"] >= 1, timeout=15)
    s = container(obj, "app")
    assert s["lastState"]["terminated"]["reason"] == "Error", s
    obj = wait_for(podctl, "lc-live", lambda o: "running" in container(o, "app")["state"], timeout=10)
    # (util-linux's unshare adds a line when its child dies of a signal)
    assert podctl("logs", "lc-live", "--previous").stdout.startswith("started\n")
    podctl("reconcile", check=False)
    text = events(podctl, "lc-live")
    assert "Container app failed liveness probe, will be restarted" in text, text
    assert "Liveness probe failed" in text


def test_startup_probe_gates_the_app_behind_the_sidecar(podctl, applied):
    obj = wait_for(podctl, "lc-startup", lambda o: o["status"]["phase"] == "Running")
    side = container(obj, "config-sidecar")
    assert side["started"] and "running" in side["state"], side
    wait_for(podctl, "lc-startup", lambda o: cond(o, "Ready") == "True")
    assert podctl("logs", "lc-startup", "-c", "main-app").stdout == "greeting=hello\n"
    assert status_column(podctl, "lc-startup") == "2/2 Running"  # the sidecar counts (1.29+)


def test_post_start_and_pre_stop_hooks_and_http_probes(lab, podctl, applied):
    obj = wait_for(podctl, "lc-hooks", lambda o: cond(o, "Ready") == "True", timeout=20)
    assert podctl("exec", "lc-hooks", "--", "cat", "/www/ok.html").stdout == "ok\n"
    host = obj["spec"]["nodeName"]
    podctl("delete", "pod", "lc-hooks")
    assert lab.ssh(host, f"cat {MARK}/prestop").stdout == "stopping\n"


def test_job_with_a_sidecar_completes(podctl, applied):
    deadline = time.monotonic() + 30
    while True:
        podctl("reconcile", check=False)
        job = json.loads(podctl("get", "jobs", "lc-job", "-o", "json").stdout)
        conds = {c["type"]: c["status"] for c in job["status"].get("conditions", [])}
        if conds.get("Complete") == "True" or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert conds.get("Complete") == "True", job["status"]
    items = json.loads(podctl("get", "pods", "-o", "json").stdout)["items"]
    (p,) = [i for i in items if i["metadata"]["name"].startswith("lc-job-")]
    assert p["status"]["phase"] == "Succeeded"
    assert "terminated" in container(p, "helper")["state"]
    assert container(p, "main")["state"]["terminated"]["reason"] == "Completed"
