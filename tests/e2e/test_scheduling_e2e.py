"""The scheduler through the real CLI on the lab: explanations in `plan -v`, `describe`
and `get -o json`, a Pending pod's Kubernetes-style message, and placement rules a
manifest states (node affinity, pod anti-affinity, spread constraints)."""

from __future__ import annotations

import json
import textwrap

import pytest

pytestmark = pytest.mark.e2e


def pod(name: str, extra_spec: str = "", labels: str = "{app: sched}") -> str:
    return textwrap.dedent(f"""
        apiVersion: v1
        kind: Pod
        metadata: {{name: {name}, labels: {labels}}}
        spec:
          terminationGracePeriodSeconds: 0
          containers:
          - name: app
            image: busybox
            command: [sleep, "3600"]
        """) + textwrap.indent(textwrap.dedent(extra_spec), "  ")


def pod_json(podctl, name: str) -> dict:
    return json.loads(podctl("get", "pods", name, "-o", "json").stdout)


def test_unschedulable_pod_explains_itself_once(lab, podctl):
    n = len(lab.hosts)
    huge = """
    nodeSelector: {podctl.io/lab: "true"}
    """
    manifest = pod("too-big", huge).replace("command: [sleep, \"3600\"]",
                                            "command: [sleep, \"3600\"]\n    resources: {requests: {memory: 100Ti}}")
    r = podctl("apply", "-f", "-", input=manifest, check=False)
    try:
        assert r.returncode == 1, r.stdout + r.stderr  # pending
        expected = f"0/{n} hosts are available: {n} Insufficient memory."
        assert expected in r.stdout + r.stderr
        podctl("reconcile", check=False)  # the same reason again: no second event
        body = pod_json(podctl, "too-big")
        assert body["status"]["phase"] == "Pending"
        cond = {c["type"]: c for c in body["status"]["conditions"]}["PodScheduled"]
        assert cond["status"] == "False" and cond["reason"] == "Unschedulable" and cond["message"] == expected
        described = podctl("describe", "pod", "too-big").stdout
        assert described.count("FailedScheduling") == 1, described
        plan = podctl("plan", "-v", check=False).stdout
        assert "default/too-big: Pending: " + expected in plan
        assert plan.count("rejected by NodeResourcesFit: Insufficient memory") == n, plan
        report = json.loads(podctl("reconcile", "--json", check=False).stdout)
        (placement,) = [p for p in report["placements"] if p["pod"] == "default/too-big"]
        assert placement["host"] is None and placement["message"] == expected
    finally:
        podctl("delete", "pod", "too-big", check=False)


def test_plan_verbose_shows_every_hosts_score(lab, podctl):
    podctl("apply", "--no-reconcile", "-f", "-", input=pod("scored"))
    try:
        plan = podctl("plan", "-v", check=False).stdout
        lines = [line for line in plan.splitlines() if line.startswith("  node")]
        assert len(lines) == len(lab.hosts), plan
        # every scorer's score x weight on every feasible host, the chosen one marked
        assert all("NodeResourcesLeastAllocated=" in line and "TaintToleration=100x3" in line for line in lines)
        assert sum(" * " in line for line in lines) == 1
        podctl("reconcile")
        described = podctl("describe", "pod", "scored").stdout
        assert "Scheduled" in described and "feasible host(s)" in described
    finally:
        podctl("delete", "pod", "scored", check=False)


def affinity_deployment(replicas: int) -> str:
    return textwrap.dedent(f"""
        apiVersion: apps/v1
        kind: Deployment
        metadata: {{name: aff}}
        spec:
          replicas: {replicas}
          selector: {{matchLabels: {{app: aff}}}}
          template:
            metadata: {{labels: {{app: aff}}}}
            spec:
              terminationGracePeriodSeconds: 0
              affinity:
                nodeAffinity:
                  requiredDuringSchedulingIgnoredDuringExecution:
                    nodeSelectorTerms:
                    - matchExpressions:
                      - {{key: topology.kubernetes.io/zone, operator: In, values: [zone-a]}}
                podAntiAffinity:
                  requiredDuringSchedulingIgnoredDuringExecution:
                  - labelSelector: {{matchLabels: {{app: aff}}}}
                    topologyKey: kubernetes.io/hostname
              containers:
              - {{name: app, image: busybox, command: [sleep, "3600"]}}
        """)


def test_node_affinity_and_pod_anti_affinity_from_a_manifest(lab, podctl):
    import yaml

    doc = yaml.safe_load(lab.inventory.read_text())
    zone_a = sorted(n for n, h in doc["all"]["hosts"].items()
                    if (h.get("labels") or {}).get("topology.kubernetes.io/zone") == "zone-a")
    assert len(zone_a) >= 2, "the lab's zones: node1 and node4 are zone-a"
    podctl("apply", "-f", "-", input=affinity_deployment(len(zone_a)), check=False)
    try:
        for _ in range(4):
            podctl("reconcile", check=False)
        items = json.loads(podctl("get", "pods", "-o", "json").stdout)["items"]
        mine = [p for p in items if p["metadata"]["name"].startswith("aff-")]
        assert sorted(p["spec"]["nodeName"] for p in mine) == zone_a  # one per zone-a host
        assert all(p["status"]["phase"] == "Running" for p in mine)
        # one more replica has nowhere to go: Pending, and says why
        r = podctl("apply", "-f", "-", input=affinity_deployment(len(zone_a) + 1), check=False)
        n = len(lab.hosts)
        out = r.stdout + r.stderr
        assert f"0/{n} hosts are available" in out, out
        assert "didn't match Pod's node affinity/selector" in out
        assert "didn't match pod anti-affinity rules" in out
    finally:
        podctl("delete", "deployment", "aff", check=False)
        podctl("reconcile", check=False)


def test_invalid_affinity_is_refused_before_any_host_is_touched(lab, podctl):
    bad = affinity_deployment(1).replace("operator: In", "operator: Near")
    r = podctl("apply", "-f", "-", input=bad, check=False)
    assert r.returncode == 3, r.stdout + r.stderr
    assert "spec.template.spec.affinity.nodeAffinity" in r.stderr and "Near" in r.stderr
    assert "aff-" not in podctl("get", "pods").stdout
