"""A StatefulSet end to end on the lab, through the real CLI: pods come up in ordinal
order with their names as hostnames, a claim's data survives its pod (re-created on the
same host), scale down goes highest first, and a template change rolls 2, 1, 0."""

from __future__ import annotations

import json
import sqlite3
import textwrap
import time

import pytest

from orchestrator.manifests import parse_documents
from orchestrator.workloads.statefulset import revision_name

pytestmark = pytest.mark.e2e

CLAIMS = "/var/lib/podctl/claims/default"


def statefulset(replicas: int, value: str = "v1") -> str:
    return textwrap.dedent(f"""
        apiVersion: apps/v1
        kind: StatefulSet
        metadata: {{name: db}}
        spec:
          serviceName: db
          replicas: {replicas}
          selector: {{matchLabels: {{app: db}}}}
          template:
            metadata: {{labels: {{app: db}}}}
            spec:
              terminationGracePeriodSeconds: 0
              containers:
              - name: app
                image: busybox
                command: [sh, -c, 'hostname > /data/hostname; exec sleep 3600']
                env: [{{name: VERSION, value: "{value}"}}]
                volumeMounts: [{{name: data, mountPath: /data}}]
                resources: {{requests: {{cpu: 10m, memory: 16Mi}}}}
          volumeClaimTemplates:
          - metadata: {{name: data}}
            spec:
              accessModes: [ReadWriteOnce]
              resources: {{requests: {{storage: 10Mi}}}}
        """)


def pods(podctl) -> dict[str, dict]:
    items = json.loads(podctl("get", "pods", "-o", "json").stdout)["items"]
    return {p["metadata"]["name"]: p for p in items if p["metadata"]["name"].startswith("db-")}


def ready(p: dict) -> bool:
    return (p["status"]["phase"] == "Running" and "deletionTimestamp" not in p["metadata"]
            and all(c["ready"] for c in p["status"]["containerStatuses"]))


def converge(podctl, want: list[str], timeout: float = 150, revision: str | None = None,
             lab=None) -> dict:
    """Reconcile until exactly the pods `want` exist, all Running and Ready (at
    `revision` if given). OrderedReady waits for each pod, so a run may stop early."""
    deadline = time.monotonic() + timeout
    while True:
        run = podctl("reconcile", check=False)
        now = pods(podctl)
        if sorted(now) == sorted(want) and all(ready(p) for p in now.values()) and (
                revision is None or all(p["metadata"]["labels"]["controller-revision-hash"]
                                        == revision for p in now.values())):
            return now
        if time.monotonic() > deadline:
            raise AssertionError(f"pods did not converge to {want}: "
                                 f"{ {n: p['status']['phase'] for n, p in now.items()} }\n"
                                 f"last reconcile: {run.stdout}\n{run.stderr}\n"
                                 f"last events: {events(lab)[-15:] if lab else '?'}")
        time.sleep(0.5)


def events(lab) -> list[tuple[str, str, str]]:
    """(reason, object name, message) of every event so far, oldest first."""
    path = lab.home / "state.db"
    if not path.exists():
        return []
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return db.execute("SELECT reason, name, message FROM events ORDER BY id").fetchall()
    finally:
        db.close()


def since(lab, mark: int) -> list[tuple[str, str, str]]:
    return events(lab)[mark:]


def order(evs, reason: str, prefix: str) -> list[str]:
    """The pod names in events of `reason` whose message starts with `prefix`."""
    return [m[len(prefix):].split()[0].rstrip(":") for r, _, m in evs
            if r == reason and m.startswith(prefix)]


def test_statefulset_order_claims_scale_down_and_rolling_update(lab, podctl):
    mark, hosts = len(events(lab)), {}
    podctl("apply", "-f", "-", input=statefulset(3))
    try:
        live = converge(podctl, ["db-0", "db-1", "db-2"], lab=lab)
        # OrderedReady: each pod is created only once the one below has started
        steps = [("create", m.split()[2]) if r == "SuccessfulCreate" else ("start", n)
                 for r, n, m in since(lab, mark)
                 if (r == "SuccessfulCreate" and m.startswith("create Pod ")) or
                 (r == "Started" and n.startswith("db-") and m.startswith("started on "))]
        assert steps == [("create", "db-0"), ("start", "db-0"), ("create", "db-1"),
                         ("start", "db-1"), ("create", "db-2"), ("start", "db-2")]
        for name, p in live.items():
            assert podctl("exec", name, "--", "hostname").stdout.strip() == name
            host = p["spec"]["nodeName"]
            r = lab.ssh(host, f"cat {CLAIMS}/data-{name}/hostname")
            assert r.stdout.strip() == name, r.stderr
        table = podctl("get", "statefulsets").stdout
        assert table.split()[:3] == ["NAME", "READY", "AGE"] and "3/3" in table
        assert "3/3" in podctl("get", "sts", "db").stdout
        obj = json.loads(podctl("get", "statefulset", "db", "-o", "json").stdout)
        assert obj["kind"] == "StatefulSet" and obj["status"]["readyReplicas"] == 3
        assert obj["status"]["currentRevision"] == obj["status"]["updateRevision"]
        assert not [k for k in obj["status"] if k.startswith("podctl")]

        # a file in the claim survives deleting the pod: re-created on the same host
        hosts = {n: p["spec"]["nodeName"] for n, p in live.items()}
        podctl("exec", "db-1", "--", "sh", "-c", "echo kept > /data/keep")
        old_uid = live["db-1"]["metadata"]["uid"]
        podctl("delete", "pod", "db-1")
        live = converge(podctl, ["db-0", "db-1", "db-2"], lab=lab)
        assert live["db-1"]["metadata"]["uid"] != old_uid
        assert live["db-1"]["spec"]["nodeName"] == hosts["db-1"]
        assert podctl("exec", "db-1", "--", "cat", "/data/keep").stdout.strip() == "kept"

        # scale to 1: db-2 goes first, db-1 only once db-2 is gone
        mark = len(events(lab))
        podctl("apply", "-f", "-", "--no-reconcile", input=statefulset(1))
        converge(podctl, ["db-0"], lab=lab)
        evs = since(lab, mark)
        assert order(evs, "SuccessfulDelete", "deleted pod ") == ["db-2", "db-1"]
        killed_2 = next(i for i, (r, n, _) in enumerate(evs) if r == "Killing" and n == "db-2")
        deleted_1 = next(i for i, (r, _, m) in enumerate(evs)
                         if r == "SuccessfulDelete" and m.startswith("deleted pod db-1"))
        assert killed_2 < deleted_1
        for name in ("db-1", "db-2"):  # Retain: the data stays on its host
            assert lab.ssh(hosts[name], f"cat {CLAIMS}/data-{name}/hostname").stdout.strip() == name

        # back to 3: each ordinal returns to its claim's host
        podctl("apply", "-f", "-", "--no-reconcile", input=statefulset(3))
        live = converge(podctl, ["db-0", "db-1", "db-2"], lab=lab)
        assert {n: p["spec"]["nodeName"] for n, p in live.items()} == hosts
        assert podctl("exec", "db-1", "--", "cat", "/data/keep").stdout.strip() == "kept"

        # a template change rolls from the highest ordinal down, one at a time
        mark = len(events(lab))
        podctl("apply", "-f", "-", "--no-reconcile", input=statefulset(3, value="v2"))
        revision = revision_name(parse_documents(statefulset(3, value="v2"), "v2")[0].obj)
        live = converge(podctl, ["db-0", "db-1", "db-2"], revision=revision, lab=lab)
        evs = since(lab, mark)
        assert order(evs, "SuccessfulDelete", "deleted pod ") == ["db-2", "db-1", "db-0"]
        assert all(p["spec"]["containers"][0]["env"][0]["value"] == "v2" for p in live.values())
        podctl("reconcile", "-q", check=False)
        status = json.loads(podctl("get", "sts", "db", "-o", "json").stdout)["status"]
        assert status["currentRevision"] == status["updateRevision"] == revision
    finally:
        podctl("delete", "statefulset", "db")
    deadline = time.monotonic() + 60
    while pods(podctl) and time.monotonic() < deadline:
        podctl("reconcile", "-q", check=False)
        time.sleep(0.5)
    assert pods(podctl) == {}
    for name, host in hosts.items():  # Retain, then tidy up the lab by hand
        assert lab.ssh(host, f"test -d {CLAIMS}/data-{name}").returncode == 0
        lab.ssh(host, f"rm -rf {CLAIMS}")
