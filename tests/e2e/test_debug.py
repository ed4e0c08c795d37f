"""Ephemeral containers (`podctl debug`), shareProcessNamespace and `podctl logs`
(--previous, -l across hosts) end to end: the real CLI, real sshd, real namespaces."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time

import pytest

from test_pods import host_of, host_traces, manifest, pod_json, wait_for

pytestmark = pytest.mark.e2e

TARGETED = manifest("""
    apiVersion: v1
    kind: Pod
    metadata: {name: dbg}
    spec:
      terminationGracePeriodSeconds: 1
      nodeName: node1
      containers:
      - name: app
        image: busybox
        command: [sh, -c, 'echo app-up; exec sleep 3601']
      - name: side
        image: busybox
        command: [sh, -c, 'exec tail -f /dev/null']
""")


def _running(obj: dict) -> bool:
    return obj["status"]["phase"] == "Running" and all(
        "running" in s["state"] for s in obj["status"]["containerStatuses"])


def _ephemeral(obj: dict, name: str) -> dict:
    return next(s for s in obj["status"].get("ephemeralContainerStatuses", []) if s["name"] == name)


def _pids(lab, host: str, uid: str) -> str:
    return lab.ssh(host, f"cat /var/lib/podctl/pods/{uid}/containers/*/pid", check=True).stdout


def test_debug_container_joins_the_pod_without_restarting_it(lab, podctl):
    podctl("apply", "-f", "-", input=TARGETED)
    before = wait_for(podctl, "dbg", _running)
    uid, host = before["metadata"]["uid"], host_of(before)
    pids = _pids(lab, host, uid)
    try:
        # --target: the target container's PID namespace (its sleep, not side's tail).
        r = podctl("debug", "dbg", "--image", "busybox", "--target", "app", "-c", "peek", "--",
                   "sh", "-c", "ps -o pid,args; hostname; grep -q eth0 /proc/net/dev && echo net-shared")
        after = wait_for(podctl, "dbg", lambda o: "terminated" in _ephemeral(o, "peek")["state"])
        assert _ephemeral(after, "peek")["state"]["terminated"]["exitCode"] == 0
        out = podctl("logs", "dbg", "-c", "peek").stdout
        assert "sleep 3601" in out and "tail -f" not in out, out
        assert "\ndbg\n" in out and "net-shared" in out, out  # the pod's UTS and network namespaces
        # Without --target (and no shareProcessNamespace): its own PID namespace, attached with -i.
        r = podctl("debug", "dbg", "--image", "busybox", "-i", "--", "sh",
                   input="echo hi-from-debug; ps -o pid,args | grep -c [s]leep; exit 4\n", check=False)
        assert r.returncode == 4, r.stderr
        assert "hi-from-debug" in r.stdout and re.search(r"^0$", r.stdout, re.M), r.stdout
        assert re.search(r"Defaulting debug container name to debugger-[a-z0-9]{5}\.", r.stderr), r.stderr
        # The API server's rules: a name unique within the pod; nothing touched on refusal.
        bad = podctl("debug", "dbg", "--image", "busybox", "-c", "app", "--", "true", check=False)
        assert bad.returncode == 3 and "Duplicate value" in bad.stderr, bad.stderr
        # A long-running one: running as the host reports it, then gone with the pod.
        podctl("debug", "dbg", "--image", "busybox", "-c", "lingers", "--", "sleep", "3602")
        obj = wait_for(podctl, "dbg", lambda o: "running" in _ephemeral(o, "lingers")["state"])
        spec_names = [e["name"] for e in obj["spec"]["ephemeralContainers"]]
        assert spec_names[0] == "peek" and spec_names[2] == "lingers" and len(spec_names) == 3
        debugger = _ephemeral(obj, spec_names[1])
        assert debugger["state"]["terminated"]["exitCode"] == 4
        # Nothing of the pod restarted: same restart counts, same processes.
        assert [s["restartCount"] for s in obj["status"]["containerStatuses"]] == [0, 0]
        assert _pids(lab, host, uid) == pids
        assert podctl("plan").stdout.strip().startswith("nothing to do"), "a debug container is not drift"
        described = podctl("describe", "pod", "dbg").stdout
        assert "Ephemeral Containers:" in described and "lingers:" in described, described
    finally:
        podctl("delete", "pod", "dbg")
    assert host_traces(lab, host, uid) == ""
    assert "sleep 3602" not in lab.ssh(host, "ps -eo args", check=True).stdout


SHARED = manifest("""
    apiVersion: v1
    kind: Pod
    metadata: {name: shared-pid}
    spec:
      terminationGracePeriodSeconds: 1
      shareProcessNamespace: true
      containers:
      - name: a
        image: busybox
        command: [sleep, "3603"]
      - name: b
        image: busybox
        command: [sleep, "3604"]
""")


def test_share_process_namespace(lab, podctl):
    podctl("apply", "-f", "-", input=SHARED)
    obj = wait_for(podctl, "shared-pid", _running)
    uid, host = obj["metadata"]["uid"], host_of(obj)
    try:
        assert pod_json(podctl, "shared-pid")["spec"]["shareProcessNamespace"] is True
        ps = podctl("exec", "shared-pid", "-c", "b", "--", "ps", "-o", "pid,args").stdout
        assert "sleep 3603" in ps and "sleep 3604" in ps, ps
        # PID 1 is the pod's pause process, not a container's command (as in Kubernetes).
        init = podctl("exec", "shared-pid", "-c", "a", "--", "cat", "/proc/1/cmdline").stdout
        assert "podctl-pause" in init, init
    finally:
        podctl("delete", "pod", "shared-pid")
    assert host_traces(lab, host, uid) == ""
    left = lab.ssh(host, "ps -eo args", check=True).stdout
    assert "sleep 3603" not in left and "podctl-pause" not in left


CRASHER = manifest("""
    apiVersion: v1
    kind: Pod
    metadata: {name: crasher}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: main
        image: busybox
        command: [sh, -c, 'echo "run at $(date +%s)"; sleep 1; exit 3']
""")


def test_logs_previous(lab, podctl):
    podctl("apply", "-f", "-", input=CRASHER)
    try:
        wait_for(podctl, "crasher", lambda o: o["status"]["containerStatuses"][0]["restartCount"] >= 1)
        prev = podctl("logs", "crasher", "--previous")
        assert re.fullmatch(r"run at \d+\n", prev.stdout), prev.stdout
        ts = podctl("logs", "crasher", "--previous", "--timestamps").stdout
        assert "run at" in ts
        gone = podctl("logs", "crasher", "-c", "nope", check=False)
        assert gone.returncode == 3 and "container nope is not valid" in gone.stderr
    finally:
        podctl("delete", "pod", "crasher")


def _chat(name: str, node: str, offset: int) -> str:
    # Three numbered lines, 3 s apart; pod b starts 1 s after pod a, so their lines
    # alternate a1 b1 a2 b2 a3 b3 in time. Each line carries its own CRI time stamp too
    # (second precision), so the order shows also where the host keeps raw lines.
    return manifest(f"""
        apiVersion: v1
        kind: Pod
        metadata: {{name: chat-{name}, labels: {{app: chat}}}}
        spec:
          terminationGracePeriodSeconds: 1
          restartPolicy: Never
          nodeName: {node}
          containers:
          - name: main
            image: busybox
            command: [sh, -c, 'sleep {offset}; for i in 1 2 3; do echo "$(date -u +%Y-%m-%dT%H:%M:%SZ) stdout F {name}$i"; [ $i = 3 ] || sleep 3; done']
    """)


def test_logs_selector_merges_pods_on_two_hosts_in_time_order(lab, podctl):
    podctl("apply", "-f", "-", input=_chat("a", "node1", 0) + "---\n" + _chat("b", "node2", 1))
    follow = subprocess.Popen([sys.executable, "-m", "orchestrator.cli", "logs", "-l", "app=chat", "-f"],
                              env=podctl.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_for(podctl, "chat-b", lambda o: o["status"]["phase"] == "Succeeded", timeout=30)
        wait_for(podctl, "chat-a", lambda o: o["status"]["phase"] == "Succeeded", timeout=10)
        out = podctl("logs", "-l", "app=chat").stdout.splitlines()
        markers = [m.group(1) if (m := re.search(r"([ab][123])$", line)) else line for line in out]
        files = lab.ssh("node1", "cat -A /var/lib/podctl/pods/*/containers/main/log").stdout
        assert markers == ["a1", "b1", "a2", "b2", "a3", "b3"], (out, files)
        assert all(line.startswith(f"[pod/chat-{m[0]}/main] ") for line, m in zip(out, markers)), out
        assert podctl("logs", "chat-a", "--tail", "1").stdout.rstrip().endswith("a3")
        never = podctl("logs", "chat-a", "--previous", check=False)
        assert never.returncode == 1, never
        assert 'previous terminated container "main" in pod "chat-a" not found' in never.stderr
        # -f streams from both hosts: every line shows up, prefixed.
        time.sleep(1.0)
    finally:
        follow.terminate()
        streamed, err = follow.communicate(timeout=10)
        podctl("delete", "pod", "chat-a")
        podctl("delete", "pod", "chat-b")
    got = sorted(re.search(r"^\[pod/chat-([ab])/main\] .*([ab][123])$", line).group(2)
                 for line in streamed.splitlines())
    assert got == ["a1", "a2", "a3", "b1", "b2", "b3"], (streamed, err)
    bad = podctl("logs", "-l", "app in (chat", check=False)
    assert bad.returncode == 3 and "cannot parse" in bad.stderr, bad.stderr
