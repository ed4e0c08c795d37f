"""emptyDir sizeLimit end to end: a pod writing past its limit is evicted (Failed,
Evicted, the kubelet's message, one event), stays Failed across reconciles and leaves
nothing on its host once deleted; a pod within its limit keeps running."""

from __future__ import annotations

import time

import pytest

from test_pods import host_traces, manifest, pod_json, wait_for

pytestmark = pytest.mark.e2e

PODS = manifest("""
    apiVersion: v1
    kind: Pod
    metadata: {name: filler}
    spec:
      nodeName: node1
      terminationGracePeriodSeconds: 1
      volumes:
      - {name: scratch, emptyDir: {sizeLimit: 1Mi}}
      containers:
      - name: app
        image: busybox:latest
        command: [sh, -c, 'sleep 1; head -c 2097152 /dev/zero > /scratch/blob; exec sleep 3600']
        volumeMounts: [{name: scratch, mountPath: /scratch}]
    ---
    apiVersion: v1
    kind: Pod
    metadata: {name: modest}
    spec:
      nodeName: node1
      terminationGracePeriodSeconds: 1
      volumes:
      - {name: scratch, emptyDir: {sizeLimit: 1Mi}}
      containers:
      - name: app
        image: busybox:latest
        command: [sh, -c, 'head -c 262144 /dev/zero > /scratch/blob; exec sleep 3600']
        volumeMounts: [{name: scratch, mountPath: /scratch}]
""")
MESSAGE = 'Usage of EmptyDir volume "scratch" exceeds the limit "1Mi".'


def test_emptydir_over_its_size_limit_evicts_the_pod(lab, podctl):
    started = time.monotonic()
    try:
        podctl("apply", "-f", "-", input=PODS, check=False)
        uid = wait_for(podctl, "filler", lambda o: o["status"]["phase"] == "Running")["metadata"]["uid"]
        obj = wait_for(podctl, "filler", lambda o: o["status"]["phase"] == "Failed", timeout=20)
        evicted_after = time.monotonic() - started
        st = obj["status"]
        assert (st.get("reason"), st.get("message")) == ("Evicted", MESSAGE), st
        assert any(c["type"] == "DisruptionTarget" and c["status"] == "True" for c in st["conditions"])
        assert "Evicted" in podctl("get", "pods", "filler").stdout
        # The containers were stopped (a pod stop), the watcher has ended with them.
        wait_for(podctl, "filler", lambda o: all("terminated" in s["state"]
                                                 for s in o["status"]["containerStatuses"]), timeout=10)
        # Nothing of it runs any more: no container process, no supervisor, no watcher.
        left = lab.ssh("node1", f"""for _ in $(seq 50); do
            p=$(ps -eo args | grep {uid} | grep -v grep; find /sys/fs/cgroup -path '*/{uid}/*' -name cgroup.procs \
                -exec cat {{}} +)
            [ -z "$p" ] && break; sleep 0.1; done; echo "$p"; true""", check=True).stdout.strip()
        assert left == "", left

        # Another reconcile (or two) neither restarts nor re-creates it; the event is there once.
        for _ in range(2):
            podctl("reconcile", check=False)
        obj = pod_json(podctl, "filler")
        assert (obj["metadata"]["uid"], obj["status"]["phase"], obj["status"]["reason"]) == (uid, "Failed", "Evicted")
        described = podctl("describe", "pod", "filler").stdout
        assert "Status:       Failed (Evicted)" in described and f"Message:      {MESSAGE}" in described
        events = [line for line in described.splitlines() if "Evicted" in line and "Warning" in line]
        assert len(events) == 1, described

        # Under its limit: still running, after a check interval or two.
        modest = pod_json(podctl, "modest")
        assert modest["status"]["phase"] == "Running" and "reason" not in modest["status"], modest["status"]
        watcher = lab.ssh("node1", f"ps -eo args | grep {modest['metadata']['uid']}/emptydir_watch.sh | grep -v grep",
                          check=True).stdout
        assert "emptydir_watch.sh" in watcher  # it is watched, and within its limit

        podctl("delete", "-f", "-", input=PODS)
        assert host_traces(lab, "node1", uid) == ""
        assert host_traces(lab, "node1", modest["metadata"]["uid"]) == ""  # its watcher too
    finally:
        podctl("delete", "-f", "-", input=PODS, check=False)
    print(f"\nemptyDir sizeLimit: evicted {evicted_after:.1f}s after apply; test {time.monotonic() - started:.1f}s")
