"""The controller's side of the scheduler (orchestrator/scheduling.py): the snapshot it
builds from inventory and probes, Kubernetes' default spreading for owned pods, and
the scheduler settings file. Pure: no hosts, no store."""

from __future__ import annotations

import pytest

from orchestrator import scheduling
from orchestrator.config import Config, scheduler_settings
from orchestrator.errors import UsageError
from orchestrator.model import Capacity, Host, Taint
from orchestrator.probe import HostSnapshot
from orchestrator.scheduler.types import HOSTNAME_LABEL

GI = 2**30
MB = 2**20


def host(name, labels=None, taints=(), capacity=None):
    return Host(name, "10.213.0.1", labels=tuple(sorted((labels or {}).items())), taints=taints,
                capacity=capacity)


def snap(name, status="ok", cpus=2, mem_gb=24, images=()):
    return HostSnapshot(name, status, {"cpus": cpus, "mem_total_kb": mem_gb * 1024 * 1024}, frozenset(images))


def pod(name, node=None, labels=None, spec=None, owner=None, selector=None, uid=None):
    labels = {"app": "web"} if labels is None else labels
    spec = spec or {"containers": [{"name": "c", "image": "busybox:latest"}]}
    return scheduling.PodInput(uid or f"uid-{name}", "default", name,
                               {"metadata": {"name": name, "labels": labels}, "spec": spec},
                               node, owner, selector)


def replicas(n, hash_="abc", start=0):
    labels = {"app": "web", "pod-template-hash": hash_}
    return [pod(f"web-{hash_}-{i}", labels=labels, owner="Deployment", selector={"matchLabels": {"app": "web"}})
            for i in range(start, start + n)]


HOSTS = [host(f"node{i}") for i in range(1, 5)]
SNAPS = {h.name: snap(h.name) for h in HOSTS}


def test_deployment_replicas_spread_one_per_host_even_where_the_image_is():
    # node1 and node2 already hold the image (an earlier pod pushed it): a small image
    # must not pull the replicas together, and the default spreading must separate them
    snaps = dict(SNAPS, node1=snap("node1", images={"sha-bb"}), node2=snap("node2", images={"sha-bb"}))
    out = scheduling.place(HOSTS, snaps, replicas(4), {"busybox:latest": "sha-bb"}, {"sha-bb": 2 * MB})
    assert sorted(p.host for p in out.placements) == ["node1", "node2", "node3", "node4"]
    # and 8 replicas: two per host
    out = scheduling.place(HOSTS, snaps, replicas(8), {"busybox:latest": "sha-bb"}, {"sha-bb": 2 * MB})
    hosts = [p.host for p in out.placements]
    assert sorted(hosts.count(h.name) for h in HOSTS) == [2, 2, 2, 2]


def test_replicas_already_bound_count_for_the_spreading():
    bound = [pod(f"web-abc-{i}", node=n, labels={"app": "web", "pod-template-hash": "abc"}, owner="Deployment",
                 selector={"matchLabels": {"app": "web"}}) for i, n in enumerate(["node1", "node1", "node2"])]
    out = scheduling.place(HOSTS, SNAPS, bound + replicas(2, start=3), {}, {})
    assert sorted(p.host for p in out.placements) == ["node3", "node4"]


def test_default_spread_is_kubernetes_system_default():
    cons = scheduling.default_spread(replicas(1)[0], HOSTS)
    assert [(c.max_skew, c.topology_key, c.when_unsatisfiable) for c in cons] == [(3, HOSTNAME_LABEL, "ScheduleAnyway")]
    # the ReplicaSet's selector: the Deployment's plus the template hash
    assert dict(cons[0].label_selector.match_labels) == {"app": "web", "pod-template-hash": "abc"}
    zoned = [host(f"n{i}", {"topology.kubernetes.io/zone": f"z{i % 2}"}) for i in range(3)]
    cons = scheduling.default_spread(replicas(1)[0], zoned)
    assert [(c.max_skew, c.topology_key) for c in cons] == [(3, HOSTNAME_LABEL), (5, "topology.kubernetes.io/zone")]
    # one host without a zone: no zone constraint (it would score that host 0)
    assert len(scheduling.default_spread(replicas(1)[0], zoned + [host("bare")])) == 1


@pytest.mark.parametrize("p", [
    pod("bare"),  # no owner
    pod("job-x", owner="Job", selector={"matchLabels": {"app": "web"}}),  # Kubernetes does not spread Jobs
    pod("ds-x", owner="DaemonSet", selector={"matchLabels": {"app": "web"}}),
    pod("own", owner="Deployment", selector={"matchLabels": {"app": "web"}},
        spec={"containers": [{"name": "c", "image": "i"}],
              "topologySpreadConstraints": [{"maxSkew": 1, "topologyKey": "kubernetes.io/hostname",
                                             "whenUnsatisfiable": "DoNotSchedule",
                                             "labelSelector": {"matchLabels": {"app": "web"}}}]}),
])
def test_no_default_spread(p):
    assert scheduling.default_spread(p, HOSTS) == ()


def test_own_constraints_are_used_as_written():
    spec = {"containers": [{"name": "c", "image": "i"}],
            "topologySpreadConstraints": [{"maxSkew": 1, "topologyKey": "kubernetes.io/hostname",
                                           "whenUnsatisfiable": "DoNotSchedule",
                                           "labelSelector": {"matchLabels": {"app": "web"}}}]}
    pods = [pod(f"p{i}", spec=spec) for i in range(6)]
    out = scheduling.place(HOSTS[:2], SNAPS, pods, {}, {})
    assert [p.host for p in out.placements].count("node1") == 3


def test_unschedulable_message_and_unreachable_hosts():
    snaps = dict(SNAPS, node1=HostSnapshot("node1", "unreachable"), node2=HostSnapshot("node2", "unknown"))
    big = {"containers": [{"name": "c", "image": "i", "resources": {"requests": {"memory": "100Gi"}}}]}
    out = scheduling.place(HOSTS, snaps, [pod("big", spec=big)], {}, {})
    p = out.placements[0]
    assert p.host is None
    assert p.message.startswith("0/4 hosts are available: 2 ")
    assert "Insufficient memory" in p.message and "not ready" in p.message


def test_taints_tolerations_and_node_name():
    hosts = [host("a", taints=(Taint("gpu", "yes", "NoSchedule"),)), host("b")]
    snaps = {h.name: snap(h.name) for h in hosts}
    out = scheduling.place(hosts, snaps, [pod("p", spec={"containers": [{"name": "c", "image": "i"}],
                                                         "nodeName": "a"})], {}, {})
    assert out.placements[0].host is None and "untolerated taint" in out.placements[0].message
    tol = {"containers": [{"name": "c", "image": "i"}], "nodeName": "a",
           "tolerations": [{"key": "gpu", "operator": "Exists"}]}
    assert scheduling.place(hosts, snaps, [pod("p", spec=tol)], {}, {}).placements[0].host == "a"


def test_inventory_capacity_overrides_the_probe():
    hosts = [host("a", capacity=Capacity(cpu_m=500)), host("b")]
    snaps = {h.name: snap(h.name, cpus=1) for h in hosts}
    spec = {"containers": [{"name": "c", "image": "i", "resources": {"requests": {"cpu": "600m"}}}]}
    assert scheduling.place(hosts, snaps, [pod("p", spec=spec)], {}, {}).placements[0].host == "b"
    assert scheduling.host_capacity(hosts[0], snaps["a"]).cpu_m == 500
    assert scheduling.host_capacity(hosts[1], snaps["b"]).memory == 24 * GI - scheduling.SYSTEM_RESERVED_MEMORY


def test_nothing_waiting_places_nothing():
    assert scheduling.place(HOSTS, SNAPS, [pod("p", node="node1")], {}, {}).placements == ()


def test_a_spec_the_scheduler_cannot_read_is_reported_not_raised():
    bad = {"containers": [{"name": "c", "image": "i"}],
           "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
               "nodeSelectorTerms": [{"matchExpressions": [{"key": "k", "operator": "Bogus"}]}]}}}}
    out = scheduling.place(HOSTS, SNAPS, [pod("bad", spec=bad), pod("good")], {}, {})
    assert [p.key for p in out.placements] == ["default/good"]
    assert out.invalid[0][0] == "default/bad" and "Bogus" in out.invalid[0][1]


def test_most_allocated_packs():
    pods = [pod(f"p{i}") for i in range(3)]
    out = scheduling.place(HOSTS, SNAPS, pods, {}, {}, {"scoring_strategy": "MostAllocated"})
    assert {p.host for p in out.placements} == {"node1"}
    out = scheduling.place(HOSTS, SNAPS, pods, {}, {})
    assert len({p.host for p in out.placements}) == 3


# ---------------------------------------------------------------- settings file


def settings(tmp_path, text):
    (tmp_path / "config.yaml").write_text(text)
    return scheduler_settings(Config(home=tmp_path))


def test_settings_defaults_without_a_file(tmp_path):
    assert scheduler_settings(Config(home=tmp_path)) == {}


def test_settings_read(tmp_path):
    got = settings(tmp_path, "scheduler:\n  scoringStrategy: MostAllocated\n  weights: {ImageLocality: 0}\n")
    assert got == {"scoring_strategy": "MostAllocated", "weights": (("ImageLocality", 0),)}


@pytest.mark.parametrize("text, field", [
    ("scheduler: {scoringStrategy: Binpack}\n", "scheduler.scoringStrategy"),
    ("scheduler: {weights: {ImageLocality: -1}}\n", "scheduler.weights.ImageLocality"),
    ("scheduler: {weights: {NoSuchScorer: 1}}\n", "scheduler.weights"),
    ("scheduler: {strategy: MostAllocated}\n", "scheduler.strategy"),
    ("schedular: {}\n", "schedular"),
    ("[1, 2]\n", "(top level)"),
])
def test_settings_errors_name_file_and_field(tmp_path, text, field):
    with pytest.raises(UsageError) as e:
        settings(tmp_path, text)
    assert str(tmp_path / "config.yaml") in str(e.value) and f": {field}:" in str(e.value)


def test_memory_pressure_keeps_best_effort_pods_away():
    be = pod("be")
    bu = pod("bu", spec={"containers": [{"name": "c", "image": "i", "resources": {"requests": {"memory": "1Mi"}}}]})
    assert scheduling.best_effort(be.doc["spec"]) and not scheduling.best_effort(bu.doc["spec"])
    hosts = HOSTS[:2]
    out = scheduling.place(hosts, SNAPS, [be], {}, {}, pressure=frozenset({"node1"}))
    assert out.placements[0].host == "node2"
    out = scheduling.place(hosts[:1], SNAPS, [be], {}, {}, pressure=frozenset({"node1"}))
    assert out.placements[0].host is None and "memory-pressure" in out.placements[0].message
    out = scheduling.place(hosts[:1], SNAPS, [bu], {}, {}, pressure=frozenset({"node1"}))
    assert out.placements[0].host == "node1"
