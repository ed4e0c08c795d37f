"""Host failure on the lab: a crash under `reconcile --watch` (replacements Running
elsewhere within seconds, stale copies stopped when the host returns), a bare pod
re-placed, and hosts that all drop off at once (nothing re-placed)."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time

import pytest

from orchestrator import lab as labmod

pytestmark = pytest.mark.e2e


def deployment(name: str, replicas: int) -> str:
    return textwrap.dedent(f"""
        apiVersion: apps/v1
        kind: Deployment
        metadata: {{name: {name}}}
        spec:
          replicas: {replicas}
          selector: {{matchLabels: {{app: {name}}}}}
          template:
            metadata: {{labels: {{app: {name}}}}}
            spec:
              terminationGracePeriodSeconds: 0
              containers:
              - {{name: app, image: busybox, command: [sleep, "3600"]}}
        """)


def bare_pod(name: str, node: str | None = None) -> str:
    pin = f"\n  nodeName: {node}" if node else ""
    return textwrap.dedent(f"""
        apiVersion: v1
        kind: Pod
        metadata: {{name: {name}}}
        spec:
          terminationGracePeriodSeconds: 0
          containers:
          - {{name: app, image: busybox, command: [sleep, "3600"]}}""") + pin + "\n"


def items(podctl, prefix: str) -> list[dict]:
    out = json.loads(podctl("get", "pods", "-o", "json", check=False).stdout)["items"]
    return [p for p in out if p["metadata"]["name"].startswith(prefix)]


def live(pods: list[dict]) -> list[dict]:
    return [p for p in pods if p["status"]["phase"] == "Running" and "deletionTimestamp" not in p["metadata"]]


def settle(podctl, rounds: int = 6) -> None:
    for _ in range(rounds):
        if "nothing to do" in podctl("reconcile", check=False).stdout:
            return


def wait_for(check, timeout: float, step: float = 0.2):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = check()
        if value:
            return value
        time.sleep(step)
    return None


def test_crash_under_watch_replaces_pods_within_seconds(lab, podctl):
    podctl("apply", "-f", "-", input=deployment("fo", 3))
    watcher = None
    victim = None
    try:
        settle(podctl)
        before = live(items(podctl, "fo-"))
        assert len(before) == 3
        victim = before[0]["spec"]["nodeName"]
        lost = {p["metadata"]["name"] for p in before if p["spec"]["nodeName"] == victim}
        watcher = subprocess.Popen([sys.executable, "-m", "orchestrator.cli", "reconcile", "--watch",
                                    "--interval", "1", "--for", "60"], env=podctl.env,
                                   stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        time.sleep(2)  # the watch is up, its connections made
        crashed = time.monotonic()
        labmod.host_crash(lab.home, victim)

        def replaced():
            now = live(items(podctl, "fo-"))
            elsewhere = [p for p in now if p["spec"]["nodeName"] != victim]
            return len(elsewhere) == 3 and not lost & {p["metadata"]["name"] for p in elsewhere}

        assert wait_for(replaced, 30), items(podctl, "fo-")
        took = time.monotonic() - crashed
        print(f"crash -> all replacements Running elsewhere: {took:.1f}s")
        assert took < 20
        # exactly 3 live pods: nothing was replaced twice
        assert len(live(items(podctl, "fo-"))) == 3

        labmod.host_start(lab.home, victim)  # the host returns, its pod dirs still there
        print("DBG", podctl("lab", "status", check=False).stdout, time.strftime("%H:%M:%S"))

        def stale_gone():
            names = {p["metadata"]["name"] for p in items(podctl, "fo-")}
            return not names & lost

        assert wait_for(stale_gone, 30), items(podctl, "fo-")
    finally:
        if watcher is not None:
            watcher.terminate()
            out, _ = watcher.communicate(timeout=30)
            print(out[-8000:])
            assert watcher.returncode is not None
        if victim:
            labmod.host_start(lab.home, victim)
        podctl("delete", "deployment", "fo", check=False)
        settle(podctl)
    # the returned host has no pod of this deployment left on it
    assert not [p for p in items(podctl, "fo-")]


def test_bare_pod_is_re_placed_and_all_hosts_down_moves_nothing(lab, podctl, tmp_path):
    import yaml

    podctl("apply", "-f", "-", input=bare_pod("lonely"))
    victim = None
    try:
        settle(podctl)
        (pod,) = items(podctl, "lonely")
        victim = pod["spec"]["nodeName"]
        old_uid = pod["metadata"]["uid"]
        labmod.host_crash(lab.home, victim)
        # cron's grace is 40 s; the watch's (3 s) gets there in a few runs
        podctl("reconcile", "--watch", "--interval", "1", "--runs", "8", check=False)
        now = [p for p in items(podctl, "lonely") if "deletionTimestamp" not in p["metadata"]]
        assert len(now) == 1 and now[0]["metadata"]["uid"] != old_uid
        assert now[0]["spec"]["nodeName"] != victim
        settle(podctl)
        assert live(items(podctl, "lonely"))

        # every host but one cut off at once (a copy of the inventory where the others
        # point at an address nothing answers on): the controller blames itself
        doc = yaml.safe_load(lab.inventory.read_text())
        home = now[0]["spec"]["nodeName"]
        for name, entry in doc["all"]["hosts"].items():
            if name != home:
                entry["ansible_port"] = 1  # refused at once
        broken = tmp_path / "cutoff.yaml"
        broken.write_text(yaml.safe_dump(doc))
        out = podctl("-i", str(broken), "reconcile", "--watch", "--interval", "1", "--runs", "6", check=False)
        assert "probably the one cut off" in out.stdout, out.stdout + out.stderr
        assert [p["metadata"]["uid"] for p in items(podctl, "lonely") if "deletionTimestamp" not in p["metadata"]] \
            == [now[0]["metadata"]["uid"]]
    finally:
        if victim:
            labmod.host_start(lab.home, victim)
        podctl("delete", "pod", "lonely", check=False)
        settle(podctl)


def test_a_host_refuses_a_batch_from_an_older_epoch(lab, podctl):
    """The fencing token: once a host has acted for epoch N, a batch of an older run
    (a controller that was paused, a delayed session) changes nothing there."""
    from orchestrator.runtime import batch_script, delete_context

    podctl("apply", "-f", "-", input=bare_pod("epoch-pin", "node2"))
    try:
        settle(podctl)
        seen = int(lab.ssh("node2", "cat /var/lib/podctl/epoch", check=True).stdout)
        assert seen >= 1
        (pod,) = items(podctl, "epoch-pin")
        uid = pod["metadata"]["uid"]
        old = batch_script([{"verb": "delete", "pod": delete_context(uid, 0)}], epoch=seen - 1)
        out = lab.ssh("node2", "bash -s", input=old, check=True).stdout
        assert f"@@podctl stale-epoch {seen}" in out
        assert f"@@podctl result {uid}" not in out
        assert live(items(podctl, "epoch-pin")), "the old batch deleted nothing"
        assert lab.ssh("node2", "cat /var/lib/podctl/epoch", check=True).stdout.strip() == str(seen)
        # the same epoch (a retry of the current run) and newer ones are accepted
        same = batch_script([], epoch=seen)
        assert "stale-epoch" not in lab.ssh("node2", "bash -s", input=same, check=True).stdout
    finally:
        podctl("delete", "pod", "epoch-pin", check=False)
        settle(podctl)


def test_cordon_drain_and_fence(lab, podctl):
    victim = None
    try:
        podctl("cordon", "node3")
        podctl("apply", "-f", "-", input=deployment("dr", 4), check=False)
        podctl("apply", "-f", "-", input=bare_pod("dr-bare"), check=False)
        settle(podctl)
        assert "node3" not in {p["spec"]["nodeName"] for p in live(items(podctl, "dr-"))}
        table = podctl("hosts", check=False).stdout
        assert any(line.startswith("node3") and "SchedulingDisabled" in line for line in table.splitlines()), table
        podctl("uncordon", "node3")

        # drain the host that holds the bare pod: everything leaves it, nothing is lost
        (bare,) = live(items(podctl, "dr-bare"))
        host = bare["spec"]["nodeName"]
        podctl("drain", host, check=False)
        settle(podctl)
        now = live(items(podctl, "dr-"))
        assert host not in {p["spec"]["nodeName"] for p in now}, now
        assert len([p for p in now if p["metadata"]["name"].startswith("dr-bare")]) == 1
        assert len(now) == 5  # 4 replicas + the bare pod
        podctl("uncordon", host)

        # fence: refused while the host answers; accepted once it is down; cleared when back
        r = podctl("fence", "node4", check=False)
        assert r.returncode == 3 and "answers its probe" in r.stderr
        victim = "node4"
        labmod.host_crash(lab.home, victim)
        podctl("fence", victim, "--reason", "test: init killed")
        table = podctl("hosts", check=False).stdout
        assert any(line.startswith(victim) and "Fenced" in line for line in table.splitlines()), table
        labmod.host_start(lab.home, victim)
        victim = None
        for _ in range(4):  # back to Ready (hysteresis), then the fence is cleared
            podctl("reconcile", check=False)
        assert "Fenced" not in podctl("hosts", check=False).stdout
    finally:
        if victim:
            labmod.host_start(lab.home, victim)
        for h in ("node2", "node3", "node4", "node1"):
            podctl("uncordon", h, check=False)
        podctl("delete", "deployment", "dr", check=False)
        podctl("delete", "pod", "dr-bare", check=False)
        settle(podctl)


def test_memory_pressure_evicts_best_effort_first_and_re_places_it(lab, podctl, tmp_path):
    import yaml

    burstable = bare_pod("ev-bu").replace('command: [sleep, "3600"]}',
                                          'command: [sleep, "3600"], resources: {requests: {memory: 64Mi}}}')
    try:
        for h in ("node1", "node3", "node4"):
            podctl("cordon", h)
        podctl("apply", "-f", "-", input=bare_pod("ev-be"), check=False)
        podctl("apply", "-f", "-", input=burstable, check=False)
        settle(podctl)
        assert {p["spec"]["nodeName"] for p in live(items(podctl, "ev-"))} == {"node2"}
        for h in ("node1", "node3", "node4"):
            podctl("uncordon", h)
        # node2 "low on memory": a threshold above what any host has
        doc = yaml.safe_load(lab.inventory.read_text())
        doc["all"]["hosts"]["node2"]["podctl_memory_available_min"] = "100Ti"
        pressed = tmp_path / "pressure.yaml"
        pressed.write_text(yaml.safe_dump(doc))
        out = podctl("-i", str(pressed), "reconcile", check=False).stdout
        assert "pod default/ev-be (BestEffort) evicted from node2" in out, out
        assert "ev-bu" not in out.split("evicted")[-1].split("\n")[0]
        for _ in range(3):
            podctl("-i", str(pressed), "reconcile", check=False)
        now = {p["metadata"]["name"]: p["spec"]["nodeName"] for p in live(items(podctl, "ev-"))}
        assert now["ev-bu"] == "node2"  # within its request: stays
        assert now["ev-be"] != "node2"  # evicted, re-placed where there is memory
        described = podctl("describe", "pod", "ev-be").stdout
        assert "Evicted" in described or "Scheduled" in described
    finally:
        for h in ("node1", "node3", "node4"):
            podctl("uncordon", h, check=False)
        podctl("delete", "pod", "ev-be", check=False)
        podctl("delete", "pod", "ev-bu", check=False)
        settle(podctl)
