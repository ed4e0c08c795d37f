"""Deployments, Jobs and DaemonSets end to end on a 4-host lab, through the real CLI."""

from __future__ import annotations

import json
import textwrap
import threading
import time

import pytest
import yaml


pytestmark = pytest.mark.e2e


@pytest.fixture(autouse=True)
def _four_hosts(lab):
    assert len(lab.hosts) >= 4, "these tests need a lab of at least 4 hosts"


def inventory(lab, tmp_path, hosts=None, taints=None) -> str:
    """A copy of the lab's inventory with only `hosts`, and taints added to some."""
    doc = yaml.safe_load(lab.inventory.read_text())
    entries = doc["all"]["hosts"]
    if hosts is not None:
        doc["all"]["hosts"] = {h: entries[h] for h in hosts}
    for host, taint in (taints or {}).items():
        doc["all"]["hosts"][host]["taints"] = [taint]
    path = tmp_path / f"inventory-{len(list(tmp_path.iterdir()))}.yaml"
    path.write_text(yaml.safe_dump(doc))
    return str(path)


def deployment(name: str, replicas: int, value: str = "v1", surge: int = 1, unavailable: int = 1) -> str:
    return textwrap.dedent(f"""
        apiVersion: apps/v1
        kind: Deployment
        metadata: {{name: {name}}}
        spec:
          replicas: {replicas}
          selector: {{matchLabels: {{app: {name}}}}}
          strategy:
            type: RollingUpdate
            rollingUpdate: {{maxSurge: {surge}, maxUnavailable: {unavailable}}}
          template:
            metadata: {{labels: {{app: {name}}}}}
            spec:
              terminationGracePeriodSeconds: 0
              containers:
              - name: app
                image: busybox
                command: [sleep, "3600"]
                env: [{{name: VERSION, value: "{value}"}}]
                resources: {{requests: {{cpu: 10m, memory: 16Mi}}}}
        """)


def pods(podctl, prefix: str, *args: str) -> list[dict]:
    items = json.loads(podctl(*args, "get", "pods", "-o", "json").stdout)["items"]
    return [p for p in items if p["metadata"]["name"].startswith(prefix + "-")]


def running(items: list[dict]) -> list[dict]:
    return [p for p in items if p["status"]["phase"] == "Running" and "deletionTimestamp" not in p["metadata"]
            and all(c["ready"] for c in p["status"]["containerStatuses"])]


def settle(podctl, *args: str, rounds: int = 5) -> None:
    for _ in range(rounds):
        if "nothing to do" in podctl(*args, "reconcile", check=False).stdout:
            return


def test_deployment_spreads_scales_and_rolls_out(lab, podctl):
    podctl("apply", "-f", "-", input=deployment("web", 4))
    try:
        settle(podctl)
        live = running(pods(podctl, "web"))
        assert len(live) == 4
        assert len({p["spec"]["nodeName"] for p in live}) == 4, "one replica per host"
        for p in live:
            name = p["metadata"]["name"]
            assert name.count("-") == 2 and len(name.split("-")[1]) == 10, name  # web-<hash>-<suffix>
        table = podctl("get", "deployments").stdout
        assert "web" in table and "4/4" in table

        podctl("apply", "-f", "-", input=deployment("web", 6))
        settle(podctl)
        assert len(running(pods(podctl, "web"))) == 6
        podctl("apply", "-f", "-", input=deployment("web", 2))
        settle(podctl)
        assert len(running(pods(podctl, "web"))) == 2
        assert len(pods(podctl, "web")) == 2

        # A template change rolls out; watch that running pods never drop below
        # replicas - maxUnavailable = 3 while it does.
        podctl("apply", "-f", "-", input=deployment("web", 4))
        settle(podctl)
        old_hash = {p["metadata"]["labels"]["pod-template-hash"] for p in running(pods(podctl, "web"))}
        seen: list[int] = []
        stop = threading.Event()

        def watch():
            while not stop.is_set():
                seen.append(len(running(pods(podctl, "web"))))
                time.sleep(0.05)

        t = threading.Thread(target=watch)
        t.start()
        try:
            podctl("apply", "-f", "-", "--no-reconcile", input=deployment("web", 4, value="v2"))
            r = podctl("rollout", "status", "deployment/web", "--timeout", "120")
            assert "successfully rolled out" in r.stdout
        finally:
            stop.set()
            t.join()
        assert seen and min(seen) >= 3, seen
        after = running(pods(podctl, "web"))
        assert len(after) == 4
        assert {p["metadata"]["labels"]["pod-template-hash"] for p in after}.isdisjoint(old_hash)

        # Undo goes back to the previous template.
        podctl("rollout", "undo", "deployment/web")
        podctl("rollout", "status", "deployment/web", "--timeout", "120")
        assert {p["metadata"]["labels"]["pod-template-hash"] for p in running(pods(podctl, "web"))} == old_hash
    finally:
        podctl("delete", "deployment", "web")
    settle(podctl)
    assert pods(podctl, "web") == []


def test_job_runs_to_completion_with_bounded_parallelism(lab, podctl):
    podctl("apply", "-f", "-", input=textwrap.dedent("""
        apiVersion: batch/v1
        kind: Job
        metadata: {name: crunch}
        spec:
          completions: 3
          parallelism: 2
          template:
            spec:
              restartPolicy: Never
              containers:
              - {name: work, image: busybox, command: [sh, -c, 'sleep 1; echo done']}
        """))
    try:
        most = 0
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            podctl("reconcile", check=False)
            items = pods(podctl, "crunch")
            active = [p for p in items if p["status"]["phase"] in ("Pending", "Running")
                      and "deletionTimestamp" not in p["metadata"]]
            most = max(most, len(active))
            job = json.loads(podctl("get", "jobs", "crunch", "-o", "json").stdout)
            conds = {c["type"]: c["status"] for c in job["status"].get("conditions", [])}
            if conds.get("Complete") == "True":
                break
            time.sleep(0.5)
        assert conds.get("Complete") == "True", job["status"]
        assert job["status"]["succeeded"] == 3
        assert most <= 2
        assert "3/3" in podctl("get", "jobs").stdout
    finally:
        podctl("delete", "job", "crunch")


def test_daemonset_follows_the_inventory_and_taints(lab, podctl, tmp_path):
    names = [h for h, _ in lab.hosts]
    three = inventory(lab, tmp_path, hosts=names[:3])
    podctl("apply", "-f", "-", "--no-reconcile", input=textwrap.dedent("""
        apiVersion: apps/v1
        kind: DaemonSet
        metadata: {name: agent}
        spec:
          selector: {matchLabels: {app: agent}}
          template:
            metadata: {labels: {app: agent}}
            spec:
              terminationGracePeriodSeconds: 0
              containers:
              - {name: agent, image: busybox, command: [sleep, "3600"]}
        """))
    try:
        settle(podctl, "-i", three)
        assert sorted(p["spec"]["nodeName"] for p in running(pods(podctl, "agent", "-i", three))) == names[:3]
        # A host joins the inventory: it gets its pod.
        full = inventory(lab, tmp_path)
        settle(podctl, "-i", full)
        assert sorted(p["spec"]["nodeName"] for p in running(pods(podctl, "agent", "-i", full))) == names
        # A NoExecute taint the DaemonSet does not tolerate: that host's pod goes (a
        # NoSchedule taint would only keep new pods off, as in Kubernetes).
        tainted = inventory(lab, tmp_path, taints={names[3]: "dedicated=db:NoExecute"})
        settle(podctl, "-i", tainted)
        assert names[3] not in {p["spec"]["nodeName"] for p in pods(podctl, "agent", "-i", tainted)}
    finally:
        podctl("delete", "daemonset", "agent")
        settle(podctl)


def test_host_with_noschedule_taint_gets_nothing(lab, podctl, tmp_path):
    names = [h for h, _ in lab.hosts]
    tainted = inventory(lab, tmp_path, taints={names[0]: "maintenance=yes:NoSchedule"})
    podctl("-i", tainted, "apply", "-f", "-", input=deployment("spread", 6))
    try:
        settle(podctl, "-i", tainted)
        live = running(pods(podctl, "spread", "-i", tainted))
        assert len(live) == 6
        assert names[0] not in {p["spec"]["nodeName"] for p in live}
    finally:
        podctl("-i", tainted, "delete", "deployment", "spread")
        settle(podctl)
