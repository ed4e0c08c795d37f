"""Pods end to end: the real CLI, real sshd on lab hosts, real namespaces and cgroups."""

from __future__ import annotations

import json
import textwrap
import time

import pytest


pytestmark = pytest.mark.e2e


def manifest(text: str) -> str:
    return textwrap.dedent(text).strip() + "\n"


def pod_json(podctl, name: str) -> dict:
    return json.loads(podctl("get", "pods", name, "-o", "json").stdout)


def wait_for(podctl, name: str, predicate, timeout: float = 30.0) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        obj = pod_json(podctl, name)
        if predicate(obj):
            return obj
        if time.monotonic() > deadline:
            raise AssertionError(f"pod {name} never got there: {json.dumps(obj['status'], indent=1)}")
        time.sleep(0.3)


def in_pod(podctl, pod: str, container: str, script: str) -> str:
    return podctl("exec", pod, "-c", container, "--", "sh", "-c", script).stdout


def host_of(obj: dict) -> str:
    return obj["spec"]["nodeName"]


def host_traces(lab, host: str, uid: str) -> str:
    """Everything on a host that still carries the pod's uid (dirs, cgroups, mounts, links)."""
    short = uid.replace("-", "")[:12]
    r = lab.ssh(host, f"""
        ls -d /var/lib/podctl/pods/{uid} /run/podctl/pods/{uid} 2>/dev/null
        find /sys/fs/cgroup -maxdepth 3 -name {uid} 2>/dev/null
        grep {uid} /proc/self/mountinfo
        ip -o link | grep {short}
        ps -eo args | grep {uid} | grep -v grep
        true""", check=True)
    return r.stdout.strip()


TWO_CONTAINERS = manifest("""
    apiVersion: v1
    kind: Pod
    metadata:
      name: duo
      labels: {app: duo}
    spec:
      terminationGracePeriodSeconds: 2
      volumes:
      - name: shared
        emptyDir: {}
      containers:
      - name: server
        image: busybox
        command: [sh, -c, 'echo served-by-server > /www/index.html; exec httpd -f -p 8080 -h /www']
        volumeMounts: [{name: shared, mountPath: /www}]
        resources: {limits: {memory: 64Mi, cpu: 500m}}
      - name: client
        image: busybox
        command: [sh, -c, 'echo from-client > /data/note; exec sleep 3600']
        volumeMounts: [{name: shared, mountPath: /data}]
""")


def test_multi_container_pod_shares_network_ipc_uts_and_volumes(lab, podctl):
    podctl("apply", "-f", "-", input=TWO_CONTAINERS)
    obj = wait_for(podctl, "duo", lambda o: o["status"]["phase"] == "Running"
                   and all(s["ready"] for s in o["status"]["containerStatuses"]))
    try:
        assert obj["status"]["podIP"].startswith("10.244.")
        # One network namespace: the client reaches the server on 127.0.0.1.
        out = in_pod(podctl, "duo", "client", "wget -qO- http://127.0.0.1:8080/index.html")
        assert out.strip() == "served-by-server"
        # One emptyDir: the server sees what the client wrote.
        assert in_pod(podctl, "duo", "server", "cat /www/note").strip() == "from-client"
        # UTS: hostname is the pod name; /etc/hosts names the pod's IP.
        assert in_pod(podctl, "duo", "client", "hostname").strip() == "duo"
        assert f"{obj['status']['podIP']}\tduo" in in_pod(podctl, "duo", "client", "cat /etc/hosts")
        ns = {}
        for c in ("server", "client"):
            ns[c] = dict(line.split(" ", 1) for line in in_pod(
                podctl, "duo", c, "for n in net ipc uts mnt pid; do echo $n $(readlink /proc/self/ns/$n); done"
            ).strip().splitlines())
        assert ns["server"]["net"] == ns["client"]["net"]
        assert ns["server"]["ipc"] == ns["client"]["ipc"]
        assert ns["server"]["uts"] == ns["client"]["uts"]
        assert ns["server"]["mnt"] != ns["client"]["mnt"]
        # POSIX shared memory (/dev/shm) is one tmpfs per pod.
        in_pod(podctl, "duo", "server", "echo shm-ok > /dev/shm/probe")
        assert in_pod(podctl, "duo", "client", "cat /dev/shm/probe").strip() == "shm-ok"
        # The container's memory limit is in its cgroup on the host.
        uid = obj["metadata"]["uid"]
        limit = lab.ssh(host_of(obj), f"cat /sys/fs/cgroup/memory/podctl/{uid}/server/memory.limit_in_bytes",
                        check=True).stdout.strip()
        assert int(limit) == 64 * 2**20
    finally:
        podctl("delete", "pod", "duo")


def test_pod_keeps_running_when_the_controller_disconnects(lab, podctl):
    podctl("apply", "-f", "-", input=TWO_CONTAINERS)
    obj = wait_for(podctl, "duo", lambda o: o["status"]["phase"] == "Running")
    try:
        host, uid = host_of(obj), obj["metadata"]["uid"]
        # Cut every SSH session on the host (the controller's included), then look again.
        lab.ssh(host, "true")
        r = lab.ssh(host, f"""
            sup=$(cat /run/podctl/pods/{uid}/supervisor.pid)
            # The supervisor has its own session: no sshd is its ancestor.
            p=$sup; while [ "$p" -gt 1 ]; do
              case "$(cat /proc/$p/comm)" in sshd) echo "under sshd"; exit 1;; esac
              p=$(awk '{{print $4}}' /proc/$p/stat)
            done
            echo ok""")
        assert r.returncode == 0, r.stdout + r.stderr
        time.sleep(1.0)
        after = pod_json(podctl, "duo")
        assert after["status"]["phase"] == "Running"
        assert all(s["restartCount"] == 0 for s in after["status"]["containerStatuses"])
    finally:
        podctl("delete", "pod", "duo")


def test_container_over_its_memory_limit_is_oomkilled_and_restarted(lab, podctl):
    podctl("apply", "-f", "-", input=manifest("""
        apiVersion: v1
        kind: Pod
        metadata: {name: hog}
        spec:
          terminationGracePeriodSeconds: 1
          containers:
          - name: hog
            image: busybox
            # tail keeps the last lines of a stream with no newline: it grows until killed.
            command: [tail, /dev/zero]
            resources: {limits: {memory: 16Mi}}
    """))
    try:
        obj = wait_for(podctl, "hog", lambda o: any(
            (s.get("lastState") or {}).get("terminated", {}).get("reason") == "OOMKilled"
            for s in o["status"]["containerStatuses"]), timeout=40)
        status = obj["status"]["containerStatuses"][0]
        assert status["restartCount"] >= 1
        assert status["lastState"]["terminated"]["exitCode"] == 137
        table = podctl("get", "pods").stdout
        assert "hog" in table
    finally:
        podctl("delete", "pod", "hog")


def test_delete_leaves_nothing_on_the_host(lab, podctl):
    podctl("apply", "-f", "-", input=TWO_CONTAINERS)
    obj = wait_for(podctl, "duo", lambda o: o["status"]["phase"] == "Running")
    host, uid = host_of(obj), obj["metadata"]["uid"]
    assert uid in host_traces(lab, host, uid)
    r = podctl("delete", "pod", "duo")
    assert 'pod "duo" deleted' in r.stdout
    assert host_traces(lab, host, uid) == ""
    assert "duo" not in podctl("get", "pods").stdout + podctl("get", "pods").stderr


def test_restart_policy_never_pod_completes(lab, podctl):
    podctl("apply", "-f", "-", input=manifest("""
        apiVersion: v1
        kind: Pod
        metadata: {name: once}
        spec:
          restartPolicy: Never
          containers:
          - {name: ok, image: busybox, command: [sh, -c, 'echo done']}
          - {name: bad, image: busybox, command: [sh, -c, 'exit 3']}
    """))
    try:
        obj = wait_for(podctl, "once", lambda o: o["status"]["phase"] in ("Succeeded", "Failed"))
        assert obj["status"]["phase"] == "Failed"
        by_name = {s["name"]: s for s in obj["status"]["containerStatuses"]}
        assert by_name["ok"]["state"]["terminated"]["reason"] == "Completed"
        assert by_name["bad"]["state"]["terminated"]["exitCode"] == 3
        assert by_name["bad"]["state"]["terminated"]["reason"] == "Error"
        assert podctl("logs", "once", "-c", "ok").stdout == "done\n"
        # A finished pod is left alone by the next reconcile: nothing to do.
        r = podctl("reconcile", check=False)
        assert "nothing to do" in r.stdout, r.stdout
    finally:
        podctl("delete", "pod", "once")


def test_missing_image_is_a_pod_status_not_a_crash(lab, podctl):
    r = podctl("apply", "-f", "-", check=False, input=manifest("""
        apiVersion: v1
        kind: Pod
        metadata: {name: noimage}
        spec:
          containers: [{name: c, image: "nosuch/image:1.0", imagePullPolicy: Never}]
    """))
    try:
        assert r.returncode == 1, r.stdout + r.stderr
        obj = pod_json(podctl, "noimage")
        waiting = obj["status"]["containerStatuses"][0]["state"]["waiting"]
        assert waiting["reason"] == "ErrImageNeverPull"
        assert "ErrImageNeverPull" in podctl("get", "pods").stdout
    finally:
        podctl("delete", "pod", "noimage")


def test_invalid_manifest_is_rejected_and_changes_nothing(lab, podctl):
    before = podctl("get", "pods", "-o", "json").stdout
    r = podctl("apply", "-f", "-", check=False, input=manifest("""
        apiVersion: v1
        kind: Pod
        metadata: {name: good}
        spec:
          containers: [{name: c, image: busybox}]
        ---
        apiVersion: v1
        kind: Pod
        metadata: {name: Bad_Name}
        spec:
          containers: [{name: c, image: busybox, livenessProbe: {exec: {command: [true]}}, colour: red}]
    """))
    assert r.returncode == 3
    assert "metadata.name" in r.stderr
    assert "colour" in r.stderr
    assert "document 2" in r.stderr
    assert podctl("get", "pods", "-o", "json").stdout == before


def test_get_json_is_shaped_like_the_kubernetes_api(lab, podctl):
    podctl("apply", "-f", "-", input=TWO_CONTAINERS)
    try:
        wait_for(podctl, "duo", lambda o: o["status"]["phase"] == "Running")
        doc = json.loads(podctl("get", "pods", "-o", "json").stdout)
        assert doc["kind"] == "List"
        item = next(i for i in doc["items"] if i["metadata"]["name"] == "duo")
        assert item["kind"] == "Pod" and item["apiVersion"] == "v1"
        assert item["metadata"]["labels"] == {"app": "duo"}
        assert item["spec"]["nodeName"].startswith("node")
        assert item["status"]["hostIP"].startswith("10.213.")
        cs = item["status"]["containerStatuses"]
        assert {c["name"] for c in cs} == {"server", "client"}
        for c in cs:
            assert set(c) >= {"name", "ready", "restartCount", "state", "lastState"}
            assert "running" in c["state"]
        # A second reconcile right after finds nothing to do and exits 0.
        r = podctl("reconcile", check=False)
        assert r.returncode == 0 and "nothing to do" in r.stdout
    finally:
        podctl("delete", "pod", "duo")
