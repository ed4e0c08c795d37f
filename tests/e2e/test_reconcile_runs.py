"""Reconcile runs end to end: the lock, orphans, pods whose processes were killed."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import uuid

import pytest


pytestmark = pytest.mark.e2e


def pod(name: str, grace: int = 1, command: str = "exec sleep 3600") -> str:
    return textwrap.dedent(f"""
        apiVersion: v1
        kind: Pod
        metadata: {{name: {name}}}
        spec:
          terminationGracePeriodSeconds: {grace}
          containers:
          - {{name: main, image: busybox, command: [sh, -c, '{command}']}}
        """)


def get(podctl, name: str) -> dict:
    return json.loads(podctl("get", "pods", name, "-o", "json").stdout)


def test_two_reconciles_at_once_exactly_one_acts(lab, podctl):
    # A pod whose main process ignores SIGTERM takes its whole grace period to delete,
    # so the reconcile that deletes it holds the lock for ~3 s.
    podctl("apply", "-f", "-", input=pod("stubborn", grace=3, command="trap \"\" TERM; while :; do sleep 1; done"))
    podctl("delete", "pod", "stubborn", "--no-reconcile")
    procs = [subprocess.Popen([sys.executable, "-m", "orchestrator.cli", "reconcile"], env=podctl.env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    results = [(p.wait(timeout=60), *p.communicate()) for p in procs]
    codes = sorted(r[0] for r in results)
    assert codes[1] == 4, results
    assert codes[0] in (0, 1), results
    loser = next(r for r in results if r[0] == 4)
    assert "lock" in loser[2].lower()
    r = podctl("get", "pods")
    assert "stubborn" not in r.stdout


def test_orphan_left_on_a_host_is_planned_first_and_removed(lab, podctl):
    podctl("apply", "-f", "-", input=pod("keeper"))
    orphan = str(uuid.uuid4())
    host = "node2"
    lab.ssh(host, f"""set -e
        mkdir -p /var/lib/podctl/pods/{orphan} /run/podctl/pods/{orphan}/ns
        touch /run/podctl/pods/{orphan}/ns/net
        unshare --net=/run/podctl/pods/{orphan}/ns/net true
        mkdir -p /sys/fs/cgroup/memory/podctl/{orphan}""", check=True)
    try:
        plan = podctl("plan", check=False)
        assert plan.returncode == 1, plan.stdout + plan.stderr
        lines = [line.strip() for line in plan.stdout.splitlines() if line.startswith("  ")]
        assert lines[0].startswith(f"delete {orphan} on {host} (orphan"), plan.stdout
        podctl("reconcile")
        left = lab.ssh(host, f"ls -d /var/lib/podctl/pods/{orphan} /run/podctl/pods/{orphan} "
                             f"/sys/fs/cgroup/memory/podctl/{orphan} 2>/dev/null; grep -c {orphan} /proc/self/mountinfo")
        assert left.stdout.strip() == "0", left.stdout
        assert "nothing to do" in podctl("reconcile").stdout
        assert get(podctl, "keeper")["status"]["phase"] == "Running"
    finally:
        podctl("delete", "pod", "keeper")


def test_pod_whose_processes_were_killed_is_restarted_by_the_next_reconcile(lab, podctl):
    podctl("apply", "-f", "-", input=pod("phoenix"))
    obj = get(podctl, "phoenix")
    host, uid = obj["spec"]["nodeName"], obj["metadata"]["uid"]
    try:
        # Kill the supervisor and the container by hand, as a crash or an admin would.
        lab.ssh(host, f"""
            kill -9 $(cat /run/podctl/pods/{uid}/supervisor.pid)
            for p in $(cat /sys/fs/cgroup/pids/podctl/{uid}/main/cgroup.procs); do kill -9 $p; done
            sleep 0.3""", check=True)
        assert podctl("get", "pods", "phoenix").stdout.split("\n")[1].split()[2] in ("Unknown", "Running")
        r = podctl("reconcile", check=False)
        assert "create default/phoenix" in r.stdout, r.stdout + r.stderr
        after = get(podctl, "phoenix")
        assert after["status"]["phase"] == "Running"
        assert after["metadata"]["uid"] == uid
        assert "nothing to do" in podctl("reconcile").stdout
    finally:
        podctl("delete", "pod", "phoenix")


def test_unreachable_host_does_not_stop_the_others(lab, podctl, tmp_path):
    # An inventory with one host that does not exist (a lab address nobody answers on).
    inv = tmp_path / "inventory.yaml"
    text = lab.inventory.read_text()
    inv.write_text(text.replace("  hosts:\n", "  hosts:\n    ghost:\n      ansible_host: 10.213.0.250\n", 1))
    podctl("apply", "-f", "-", input=pod("survivor") + "  nodeName: node1\n")
    try:
        r = podctl("-i", str(inv), "reconcile", check=False)
        assert r.returncode == 2, r.stdout + r.stderr
        assert "ghost" in r.stderr
        assert get(podctl, "survivor")["status"]["phase"] == "Running"
    finally:
        podctl("delete", "pod", "survivor")
