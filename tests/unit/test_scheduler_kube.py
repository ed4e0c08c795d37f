"""Kubernetes pod spec dicts -> SchedPod: every field kube-scheduler reads."""

from __future__ import annotations

import pytest
import yaml

from orchestrator.scheduler import (
    LabelSelector,
    NodeSelectorTerm,
    PodAffinityTerm,
    Requirement,
    SchedHost,
    Snapshot,
    Toleration,
    TopologySpreadConstraint,
    schedule,
)
from orchestrator.scheduler.kube import requests, sched_pod
from orchestrator.scheduler.types import DEFAULT_CPU_REQUEST_M, DEFAULT_MEMORY_REQUEST

MI = 2**20

SPEC = yaml.safe_load("""
nodeName: null
nodeSelector: {disktype: ssd}
containers:
- name: app
  image: nginx:1.25
  resources: {requests: {cpu: 250m, memory: 64Mi}, limits: {cpu: "1"}}
  ports: [{containerPort: 80, hostPort: 8080}, {containerPort: 53, hostPort: 53, protocol: UDP}]
- name: side
  image: busybox:1.36
tolerations:
- {key: dedicated, operator: Equal, value: gpu, effect: NoSchedule}
- {operator: Exists}
affinity:
  nodeAffinity:
    requiredDuringSchedulingIgnoredDuringExecution:
      nodeSelectorTerms:
      - matchExpressions: [{key: zone, operator: In, values: [a, b]}]
      - matchFields: [{key: metadata.name, operator: In, values: [h1]}]
    preferredDuringSchedulingIgnoredDuringExecution:
    - weight: 30
      preference: {matchExpressions: [{key: gen, operator: Gt, values: ["2"]}]}
  podAffinity:
    requiredDuringSchedulingIgnoredDuringExecution:
    - labelSelector: {matchLabels: {app: db}}
      topologyKey: zone
  podAntiAffinity:
    requiredDuringSchedulingIgnoredDuringExecution:
    - labelSelector: {matchExpressions: [{key: app, operator: In, values: [web]}]}
      topologyKey: kubernetes.io/hostname
      namespaces: [prod]
    preferredDuringSchedulingIgnoredDuringExecution:
    - weight: 100
      podAffinityTerm:
        labelSelector: {matchLabels: {app: web}}
        topologyKey: zone
        namespaceSelector: {}
topologySpreadConstraints:
- {maxSkew: 1, topologyKey: zone, whenUnsatisfiable: ScheduleAnyway, labelSelector: {matchLabels: {app: web}}}
- {maxSkew: 2, topologyKey: kubernetes.io/hostname, labelSelector: {matchLabels: {app: web}}, minDomains: 3}
""")


def test_every_scheduling_field_is_mapped():
    p = sched_pod("default", "web-1", {"app": "web"}, SPEC, image_digests={"nginx:1.25": "sha-n"}, current_host="h2")
    assert p.key == "default/web-1" and p.label_map == {"app": "web"} and p.current_host == "h2"
    assert (p.cpu_m, p.memory) == (250, 64 * MI)  # busybox requests nothing
    assert (p.score_cpu_m, p.score_memory) == (250 + DEFAULT_CPU_REQUEST_M, 64 * MI + DEFAULT_MEMORY_REQUEST)
    assert p.node_name is None and p.node_selector == (("disktype", "ssd"),)
    assert p.required_node_affinity == (
        NodeSelectorTerm((Requirement("zone", "In", ("a", "b")),)),
        NodeSelectorTerm(match_fields=(Requirement("metadata.name", "In", ("h1",)),)))
    assert [(t.weight, t.preference.match_expressions[0].operator) for t in p.preferred_node_affinity] == [(30, "Gt")]
    assert p.tolerations == (Toleration("dedicated", "Equal", "gpu", "NoSchedule"), Toleration(operator="Exists"))
    assert p.pod_affinity == (PodAffinityTerm(LabelSelector({"app": "db"}), "zone"),)
    assert p.pod_anti_affinity == (PodAffinityTerm(
        LabelSelector(match_expressions=(Requirement("app", "In", ("web",)),)), "kubernetes.io/hostname", ("prod",)),)
    assert p.preferred_pod_anti_affinity[0].weight == 100
    assert p.preferred_pod_anti_affinity[0].term.all_namespaces
    assert p.topology_spread == (
        TopologySpreadConstraint(1, "zone", "ScheduleAnyway", LabelSelector({"app": "web"})),
        TopologySpreadConstraint(2, "kubernetes.io/hostname", "DoNotSchedule", LabelSelector({"app": "web"}), 3))
    assert p.host_ports == ((8080, "TCP"), (53, "UDP"))
    assert p.images == ("sha-n", "busybox:1.36")


@pytest.mark.parametrize("spec, expected", [
    ({"containers": [{"name": "a"}]}, (0, 0, 100, 200 * MI)),
    ({"containers": [{"resources": {"limits": {"cpu": "2", "memory": "1Gi"}}}]}, (2000, 1024 * MI, 2000, 1024 * MI)),
    ({"containers": [{"resources": {"requests": {"cpu": "0"}}}]}, (0, 0, 0, 200 * MI)),  # explicit 0 stays 0
    # init containers: the largest one, if larger than the sum of the app containers
    ({"containers": [{"resources": {"requests": {"cpu": "100m"}}}, {"resources": {"requests": {"cpu": "100m"}}}],
      "initContainers": [{"resources": {"requests": {"cpu": "500m", "memory": "10Mi"}}}]},
     (500, 10 * MI, 500, 400 * MI)),
    ({"containers": [{"resources": {"requests": {"cpu": "1", "memory": "1Gi"}}}],
      "overhead": {"cpu": "250m", "memory": "120Mi"}}, (1250, 1144 * MI, 1250, 1144 * MI)),
])
def test_requests(spec, expected):
    assert requests(spec) == expected


def test_unsupported_namespace_selector_is_refused():
    spec = {"containers": [{"image": "x"}], "affinity": {"podAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
        {"labelSelector": {}, "topologyKey": "zone", "namespaceSelector": {"matchLabels": {"team": "a"}}}]}}}
    with pytest.raises(ValueError, match="namespaceSelector"):
        sched_pod("default", "p", {}, spec)


def test_a_mapped_pod_schedules():
    hosts = (SchedHost("h1", labels={"zone": "a", "disktype": "ssd"}, cpu_m=1000, memory=2**30),
             SchedHost("h2", labels={"zone": "b", "disktype": "ssd"}, cpu_m=1000, memory=2**30))
    spec = {"containers": [{"image": "x", "resources": {"requests": {"cpu": "600m"}}}],
            "nodeSelector": {"disktype": "ssd"},
            "topologySpreadConstraints": [{"maxSkew": 1, "topologyKey": "zone",
                                           "labelSelector": {"matchLabels": {"app": "web"}}}]}
    pods = [sched_pod("default", f"web-{i}", {"app": "web"}, spec) for i in range(3)]
    out = schedule(pods, Snapshot(hosts))
    assert [p.host for p in out] == ["h1", "h2", None]
    assert out[2].message == "0/2 hosts are available: 2 Insufficient cpu."
