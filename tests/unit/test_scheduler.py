"""The scheduler, plugin by plugin: table-driven filters and scorers, normalisation,
explanations, determinism and small affinity/anti-affinity/spread scenarios.

Property tests against a naive reference are in test_scheduler_reference.py."""

from __future__ import annotations

import math
import os
import random
import subprocess
import sys

import pytest

from orchestrator.model import Taint
from orchestrator.scheduler import (
    BoundPod,
    LabelSelector,
    NodeSelectorTerm,
    PodAffinityTerm,
    PreferredSchedulingTerm,
    Requirement,
    SchedHost,
    SchedPod,
    SchedulerConfig,
    Snapshot,
    Toleration,
    TopologySpreadConstraint,
    WeightedPodAffinityTerm,
    describe,
    schedule,
    select,
    verdicts,
)
from orchestrator.scheduler.framework import ScoreCard
from orchestrator.scheduler.registry import build

GI, MI = 2**30, 2**20
HOSTNAME = "kubernetes.io/hostname"
FULL = SchedulerConfig(explain="full")


def host(name: str, cpu_m: int = 4000, memory: int = 8 * GI, **kw) -> SchedHost:
    return SchedHost(name, cpu_m=cpu_m, memory=memory, **kw)


def pod(key: str = "default/p", **kw) -> SchedPod:
    return SchedPod(key, **kw)


def place(p: SchedPod, hosts, bound=(), config=FULL):
    return schedule([p], Snapshot(tuple(hosts), tuple(bound)), config)[0]


def rejected(placement) -> dict[str, tuple[str, tuple[str, ...]]]:
    return {r.host: (r.plugin, r.reasons) for r in placement.rejections()}


def feasible(p: SchedPod, hosts, bound=()) -> list[str]:
    pl = place(p, hosts, bound)
    names = sorted(h.name for h in hosts)
    return [n for n in names if n not in rejected(pl)]


def score_of(placement, plugin: str) -> dict[str, int]:
    """plugin's score on every feasible host (explain=full)."""
    return {c.host: dict((n, s) for n, s, _ in c.scores)[plugin] for c in placement.candidates}


def bound(host_name: str, key: str, **kw) -> BoundPod:
    return BoundPod(host_name, SchedPod(key, **kw))


APP = LabelSelector({"app": "web"})
WEB = {"app": "web"}


# ---------------------------------------------------------------- filters: host state, name


def test_not_ready_and_cordoned_hosts_are_rejected_with_their_reason():
    hosts = [host("a", ready=False), host("b", cordoned=True), host("c")]
    pl = place(pod(), hosts)
    assert pl.host == "c"
    assert rejected(pl) == {"a": ("HostReady", ("host(s) were not ready",)),
                            "b": ("NodeUnschedulable", ("host(s) were unschedulable",))}


def test_a_pod_tolerating_unschedulable_may_go_to_a_cordoned_host():
    tol = (Toleration("node.kubernetes.io/unschedulable", "Exists", effect="NoSchedule"),)
    assert feasible(pod(tolerations=tol), [host("a", cordoned=True)]) == ["a"]


@pytest.mark.parametrize("node_name, expected", [
    (None, ["a", "b", "c"]),
    ("b", ["b"]),
    ("zz", []),
])
def test_node_name(node_name, expected):
    assert feasible(pod(node_name=node_name), [host("a"), host("b"), host("c")]) == expected


# ---------------------------------------------------------------- filters: node affinity


LABELED = [host("a", labels={"disk": "ssd", "gen": "3"}), host("b", labels={"disk": "hdd", "gen": "x"}),
           host("c", labels={})]


@pytest.mark.parametrize("value, matches", [
    ("3", True), ("+3", True), ("-1", False), ("1_0", False), (" 3", False), ("3.0", False),
    ("9223372036854775807", True), ("9223372036854775808", False),  # int64 only, like Go's ParseInt
])
def test_gt_parses_label_values_like_kubernetes(value, matches):
    p = pod(required_node_affinity=(NodeSelectorTerm((Requirement("gen", "Gt", ("2",)),)),))
    assert feasible(p, [host("a", labels={"gen": value})]) == (["a"] if matches else [])
    assert Requirement("gen", "Gt", ("2",)).matches({"gen": value}) is matches


@pytest.mark.parametrize("req, expected", [
    (Requirement("disk", "In", ("ssd",)), ["a"]),
    (Requirement("disk", "In", ("ssd", "hdd")), ["a", "b"]),
    (Requirement("disk", "In", ("nvme",)), []),
    (Requirement("disk", "NotIn", ("ssd",)), ["b", "c"]),  # NotIn matches a missing label
    (Requirement("disk", "Exists"), ["a", "b"]),
    (Requirement("disk", "DoesNotExist"), ["c"]),
    (Requirement("gen", "Gt", ("2",)), ["a"]),  # "x" is not an integer: no match
    (Requirement("gen", "Lt", ("3",)), []),
    (Requirement("gen", "Lt", ("4",)), ["a"]),
])
def test_required_node_affinity_operators(req, expected):
    p = pod(required_node_affinity=(NodeSelectorTerm((req,)),))
    assert feasible(p, LABELED) == expected


@pytest.mark.parametrize("terms, expected", [
    # terms are ORed
    ((NodeSelectorTerm((Requirement("disk", "In", ("ssd",)),)),
      NodeSelectorTerm((Requirement("disk", "In", ("hdd",)),))), ["a", "b"]),
    # expressions within a term are ANDed
    ((NodeSelectorTerm((Requirement("disk", "Exists"), Requirement("gen", "Gt", ("1",)))),), ["a"]),
    # an empty term matches nothing; no terms at all matches nothing
    ((NodeSelectorTerm(),), []),
    ((), []),
    # matchFields on metadata.name
    ((NodeSelectorTerm(match_fields=(Requirement("metadata.name", "In", ("b", "c")),)),), ["b", "c"]),
    ((NodeSelectorTerm(match_fields=(Requirement("metadata.name", "NotIn", ("b",)),)),), ["a", "c"]),
])
def test_required_node_affinity_terms(terms, expected):
    assert feasible(pod(required_node_affinity=terms), LABELED) == expected


def test_node_selector_and_affinity_must_both_match():
    p = pod(node_selector={"disk": "ssd"},
            required_node_affinity=(NodeSelectorTerm((Requirement("gen", "In", ("3",)),)),))
    assert feasible(p, LABELED) == ["a"]
    pl = place(pod(node_selector={"disk": "nvme"}), LABELED)
    assert pl.host is None
    assert pl.message == "0/3 hosts are available: 3 host(s) didn't match Pod's node affinity/selector."


def test_every_host_has_the_hostname_label():
    p = pod(node_selector={HOSTNAME: "b"})
    assert feasible(p, LABELED) == ["b"]


# ---------------------------------------------------------------- filters: taints


GPU = Taint("dedicated", "gpu", "NoSchedule")


@pytest.mark.parametrize("taint, tolerations, ok", [
    (GPU, (), False),
    (Taint("dedicated", "gpu", "NoExecute"), (), False),
    (Taint("dedicated", "gpu", "PreferNoSchedule"), (), True),  # scored, not filtered
    (GPU, (Toleration("dedicated", "Equal", "gpu", "NoSchedule"),), True),
    (GPU, (Toleration("dedicated", "Equal", "cpu", "NoSchedule"),), False),  # value differs
    (GPU, (Toleration("dedicated", "Equal", "gpu"),), True),  # empty effect: all effects
    (GPU, (Toleration("dedicated", "Equal", "gpu", "NoExecute"),), False),  # effect differs
    (GPU, (Toleration("dedicated", "Exists"),), True),
    (GPU, (Toleration("other", "Exists"),), False),
    (GPU, (Toleration(operator="Exists"),), True),  # empty key + Exists: everything
    (Taint("flag", "", "NoSchedule"), (Toleration("flag", "Equal", ""),), True),
])
def test_taints_and_tolerations(taint, tolerations, ok):
    pl = place(pod(tolerations=tolerations), [host("a", taints=(taint,))])
    assert (pl.host == "a") is ok
    if not ok:
        assert rejected(pl)["a"] == ("TaintToleration", (
            f"host(s) had untolerated taint {{{taint.key}{'=' + taint.value if taint.value else ''}: {taint.effect}}}",))


def test_the_first_untolerated_taint_is_reported():
    taints = (Taint("a", "1", "PreferNoSchedule"), Taint("b", "", "NoSchedule"), Taint("c", "2", "NoExecute"))
    pl = place(pod(), [host("h", taints=taints)])
    assert pl.message == "0/1 hosts are available: 1 host(s) had untolerated taint {b: NoSchedule}."


# ---------------------------------------------------------------- filters: resources, ports


@pytest.mark.parametrize("req, used, reasons", [
    (dict(cpu_m=1000, memory=GI), [], ()),
    (dict(cpu_m=4000, memory=8 * GI), [], ()),  # an exact fit fits
    (dict(cpu_m=4001), [], ("Insufficient cpu",)),
    (dict(memory=8 * GI + 1), [], ("Insufficient memory",)),
    (dict(cpu_m=5000, memory=9 * GI), [], ("Insufficient cpu", "Insufficient memory")),
    (dict(cpu_m=1000), [dict(cpu_m=3500)], ("Insufficient cpu",)),
    (dict(memory=GI), [dict(memory=7 * GI + 1)], ("Insufficient memory",)),
    (dict(), [dict(cpu_m=4000, memory=8 * GI)], ()),  # requesting nothing always fits
    (dict(), [dict()] * 3, ("Too many pods",)),
    (dict(cpu_m=5000), [dict()] * 3, ("Too many pods", "Insufficient cpu")),
])
def test_resources_fit(req, used, reasons):
    hosts = [host("a", pods=3)]
    b = [bound("a", f"default/u{i}", **u) for i, u in enumerate(used)]
    pl = place(pod(**req), hosts, b)
    assert rejected(pl).get("a", (None, ()))[1] == reasons


def test_insufficient_resources_count_under_each_reason():
    hosts = [host("a", cpu_m=1000, memory=GI), host("b", cpu_m=1000, memory=8 * GI), host("c", memory=GI)]
    pl = place(pod(cpu_m=2000, memory=2 * GI), hosts)
    assert pl.message == "0/3 hosts are available: 2 Insufficient cpu, 2 Insufficient memory."
    assert pl.reason_counts() == {"Insufficient cpu": 2, "Insufficient memory": 2}


@pytest.mark.parametrize("ports, used, ok", [
    (((80, "TCP"),), [((80, "TCP"),)], False),
    (((80, "TCP"),), [((80, "UDP"),)], True),
    (((80, "TCP"),), [((81, "TCP"),)], True),
    (((80, "TCP"), (443, "TCP")), [((443, "TCP"),)], False),
    ((), [((80, "TCP"),)], True),
])
def test_host_ports(ports, used, ok):
    b = [bound("a", f"default/u{i}", host_ports=u) for i, u in enumerate(used)]
    pl = place(pod(host_ports=ports), [host("a")], b)
    assert (pl.host == "a") is ok
    if not ok:
        assert rejected(pl)["a"] == ("NodePorts", ("host(s) didn't have free ports for the requested pod ports",))


def test_ports_taken_earlier_in_the_same_run_conflict():
    p = [pod(f"default/p{i}", host_ports=((8080, "TCP"),)) for i in range(3)]
    out = schedule(p, Snapshot((host("a"), host("b"))))
    assert [x.host for x in out[:2]] == ["a", "b"]
    assert out[2].message == "0/2 hosts are available: 2 host(s) didn't have free ports for the requested pod ports."


# ---------------------------------------------------------------- filters: topology spread


ZONED = [host("a1", labels={"zone": "a"}), host("a2", labels={"zone": "a"}),
         host("b1", labels={"zone": "b"}), host("b2", labels={"zone": "b"})]


def spread(max_skew=1, key="zone", when="DoNotSchedule", selector=APP, **kw):
    return (TopologySpreadConstraint(max_skew, key, when, selector, **kw),)


def test_four_hosts_two_zones_max_skew_one_alternates_zones():
    pods = [pod(f"default/web-{i}", labels=WEB, topology_spread=spread()) for i in range(6)]
    out = schedule(pods, Snapshot(tuple(ZONED)))
    zones = [x.host[0] for x in out]
    for i in range(1, 7):  # after every placement the zones differ by at most 1
        assert abs(zones[:i].count("a") - zones[:i].count("b")) <= 1


@pytest.mark.parametrize("existing, max_skew, expected", [
    ({}, 1, ["a1", "a2", "b1", "b2"]),
    ({"a1": 1}, 1, ["b1", "b2"]),
    ({"a1": 1}, 2, ["a1", "a2", "b1", "b2"]),
    ({"a1": 1, "b1": 1}, 1, ["a1", "a2", "b1", "b2"]),
    ({"a1": 2, "b1": 1}, 1, ["b1", "b2"]),
])
def test_spread_do_not_schedule(existing, max_skew, expected):
    b = [bound(h, f"default/e-{h}-{i}", labels=WEB) for h, n in existing.items() for i in range(n)]
    assert feasible(pod(labels=WEB, topology_spread=spread(max_skew)), ZONED, b) == expected


def test_spread_counts_only_matching_pods_of_the_same_namespace():
    b = [bound("a1", "default/other", labels={"app": "db"}), bound("a2", "prod/web", namespace="prod", labels=WEB)]
    assert feasible(pod(labels=WEB, topology_spread=spread()), ZONED, b) == ["a1", "a2", "b1", "b2"]


def test_spread_rejects_hosts_without_the_key_and_says_so():
    hosts = ZONED + [host("x")]
    pl = place(pod(labels=WEB, topology_spread=spread()), hosts)
    assert rejected(pl) == {"x": ("PodTopologySpread",
                                  ("host(s) didn't match pod topology spread constraints (missing required label)",))}


def test_spread_self_match_only_counts_if_the_pod_matches_the_selector():
    b = [bound("a1", "default/e", labels=WEB)]
    # the incoming pod does not match app=web: skew = 1 + 0 - 0 <= 1 everywhere
    assert feasible(pod(labels={"app": "other"}, topology_spread=spread()), ZONED, b) == ["a1", "a2", "b1", "b2"]


def test_spread_min_domains_treats_the_global_minimum_as_zero():
    b = [bound("a1", "default/e1", labels=WEB), bound("b1", "default/e2", labels=WEB)]
    # two domains, min 1: every zone is allowed; with minDomains 3 (only 2 exist) the minimum is 0
    assert feasible(pod(labels=WEB, topology_spread=spread()), ZONED, b) == ["a1", "a2", "b1", "b2"]
    assert feasible(pod(labels=WEB, topology_spread=spread(min_domains=3)), ZONED, b) == []


def test_spread_counts_only_hosts_the_pod_may_go_to_unless_policy_ignore():
    hosts = ZONED + [host("c1", labels={"zone": "c", "pool": "x"})]
    sel = {"zone": "a"}
    p = dict(labels=WEB, required_node_affinity=(NodeSelectorTerm((Requirement("pool", "DoesNotExist"),)),))
    b = [bound("a1", "default/e", labels=WEB)]
    # Honor: zone c is not a domain (its only host is excluded), so the minimum is b's 0
    assert feasible(pod(topology_spread=spread(), **p), hosts, b) == ["b1", "b2"]
    # Ignore: zone c counts too; still min 0
    assert feasible(pod(topology_spread=spread(node_affinity_policy="Ignore"), **p), hosts, b) == ["b1", "b2"]
    del sel


def test_spread_with_a_nil_selector_counts_nothing():
    b = [bound("a1", "default/e", labels=WEB)] * 1
    assert feasible(pod(labels=WEB, topology_spread=spread(selector=None)), ZONED, b) == ["a1", "a2", "b1", "b2"]


# ---------------------------------------------------------------- filters: inter-pod affinity


def anti(selector=APP, key=HOSTNAME, **kw):
    return (PodAffinityTerm(selector, key, **kw),)


def test_required_anti_affinity_by_hostname_one_per_host():
    pods = [pod(f"default/web-{i}", labels=WEB, pod_anti_affinity=anti()) for i in range(5)]
    out = schedule(pods, Snapshot(tuple(ZONED)))
    assert sorted(x.host for x in out[:4]) == ["a1", "a2", "b1", "b2"]
    assert out[4].host is None
    assert out[4].message == "0/4 hosts are available: 4 host(s) didn't match pod anti-affinity rules."


def test_required_anti_affinity_by_zone():
    b = [bound("a1", "default/e", labels=WEB)]
    assert feasible(pod(labels=WEB, pod_anti_affinity=anti(key="zone")), ZONED, b) == ["b1", "b2"]


def test_existing_pods_anti_affinity_is_symmetric():
    b = [bound("a1", "default/db", labels={"app": "db"}, pod_anti_affinity=anti(selector=APP, key="zone"))]
    pl = place(pod(labels=WEB), ZONED, b)
    assert rejected(pl) == {h: ("InterPodAffinity", ("host(s) didn't satisfy existing pods anti-affinity rules",))
                            for h in ("a1", "a2")}
    # a pod the term does not select is not affected
    assert feasible(pod(labels={"app": "api"}), ZONED, b) == ["a1", "a2", "b1", "b2"]


@pytest.mark.parametrize("term_ns, pod_ns, blocked", [
    ((), "default", True),  # empty: the term owner's namespace
    ((), "prod", False),
    (("prod",), "prod", True),
    (("prod",), "default", False),
])
def test_affinity_term_namespaces(term_ns, pod_ns, blocked):
    b = [bound("a1", "default/db", labels={"app": "db"}, pod_anti_affinity=anti(key="zone", namespaces=term_ns))]
    ok = feasible(pod(f"{pod_ns}/p", namespace=pod_ns, labels=WEB), ZONED, b)
    assert ("a1" not in ok) is blocked


def test_required_pod_affinity():
    b = [bound("b2", "default/db", labels={"app": "db"})]
    p = pod(labels=WEB, pod_affinity=(PodAffinityTerm(LabelSelector({"app": "db"}), "zone"),))
    assert feasible(p, ZONED, b) == ["b1", "b2"]
    pl = place(p, ZONED, ())
    assert pl.message == "0/4 hosts are available: 4 host(s) didn't match pod affinity rules."


def test_the_first_pod_of_a_self_affine_group_may_go_anywhere_with_the_key():
    p = pod(labels=WEB, pod_affinity=(PodAffinityTerm(APP, "zone"),))
    hosts = ZONED + [host("x")]
    assert feasible(p, hosts) == ["a1", "a2", "b1", "b2"]
    out = schedule([p, pod("default/p2", labels=WEB, pod_affinity=p.pod_affinity)], Snapshot(tuple(hosts)))
    assert out[0].host[0] == out[1].host[0]  # the second follows the first's zone


def test_a_nil_selector_in_an_affinity_term_matches_nothing():
    b = [bound("a1", "default/e", labels=WEB)]
    assert feasible(pod(labels=WEB, pod_anti_affinity=anti(selector=None)), ZONED, b) == ["a1", "a2", "b1", "b2"]


# ---------------------------------------------------------------- scorers


def card(placement) -> dict[str, int]:
    return {n: s for n, s, _ in placement.score.scores}


@pytest.mark.parametrize("cap, used, req, least, most", [
    # (allocatable cpu, memory), already requested, pod request -> score per strategy
    ((4000, 8 * GI), (0, 0), (1000, 2 * GI), 75, 25),
    ((4000, 8 * GI), (2000, 4 * GI), (1000, 2 * GI), 25, 75),
    ((4000, 8 * GI), (1000, 2 * GI), (1000, 2 * GI), 50, 50),
    ((4000, 8 * GI), (1000, 0), (1000, 4 * GI), 48, 51),  # the bound pod counts 200Mi of memory
    ((3000, 8 * GI), (0, 0), (1000, 8 * GI), 33, 66),  # cpu 66 / 33, memory 0 / 100
    ((4000, 0), (0, 0), (1000, 0), 75, 25),  # no memory on the host: cpu alone
])
def test_allocation_scores(cap, used, req, least, most):
    h = [host("a", cpu_m=cap[0], memory=cap[1])]
    b = [bound("a", "default/u", cpu_m=used[0], memory=used[1])] if any(used) else []
    p = pod(cpu_m=req[0], memory=req[1])
    assert card(place(p, h, b))["NodeResourcesLeastAllocated"] == least
    assert card(place(p, h, b, SchedulerConfig(scoring_strategy="MostAllocated")))["NodeResourcesMostAllocated"] == most


def test_allocation_uses_non_zero_defaults_for_pods_without_requests():
    h = [host("a", cpu_m=1000, memory=1000 * MI)]
    # 100m of 1000m -> 90; 200Mi of 1000Mi -> 80; mean 85
    assert card(place(pod(), h))["NodeResourcesLeastAllocated"] == 85
    b = [bound("a", "default/u")]  # another best-effort pod counts 100m/200Mi too
    assert card(place(pod(), h, b))["NodeResourcesLeastAllocated"] == 70


@pytest.mark.parametrize("req, expected", [
    ((2000, 4 * GI), 100),  # cpu 50%, memory 50%
    ((4000, 0 * GI), 50),  # 100% vs 0%: std 0.5
    ((1000, 6 * GI), 75),  # 25% vs 75%
    ((0, 0), 0),  # best-effort: skipped
])
def test_balanced_allocation(req, expected):
    pl = place(pod(cpu_m=req[0], memory=req[1]), [host("a", cpu_m=4000, memory=8 * GI)])
    assert card(pl)["NodeResourcesBalancedAllocation"] == expected


def test_least_allocated_spreads_and_most_allocated_packs():
    hosts = [host("a"), host("b")]
    pods = [pod(f"default/p{i}", cpu_m=500, memory=GI) for i in range(4)]
    assert [x.host for x in schedule(pods, Snapshot(tuple(hosts)))] == ["a", "b", "a", "b"]
    packed = schedule(pods, Snapshot(tuple(hosts)), SchedulerConfig(scoring_strategy="MostAllocated"))
    assert [x.host for x in packed] == ["a", "a", "a", "a"]


def test_preferred_node_affinity_sums_weights_and_scales_to_100():
    terms = (PreferredSchedulingTerm(80, NodeSelectorTerm((Requirement("disk", "In", ("ssd",)),))),
             PreferredSchedulingTerm(20, NodeSelectorTerm((Requirement("gen", "Exists"),))))
    pl = place(pod(preferred_node_affinity=terms), LABELED)
    assert score_of(pl, "NodeAffinity") == {"a": 100, "b": 20, "c": 0}
    assert pl.host == "a"
    # the maximum is taken over feasible hosts only
    pl = place(pod(preferred_node_affinity=terms, node_selector={"disk": "hdd"}), LABELED)
    assert score_of(pl, "NodeAffinity") == {"b": 100}


def test_prefer_no_schedule_taints_score_reversed():
    soft = Taint("maint", "", "PreferNoSchedule")
    hosts = [host("a"), host("b", taints=(soft,)), host("c", taints=(soft, Taint("x", "1", "PreferNoSchedule")))]
    pl = place(pod(), hosts)
    assert score_of(pl, "TaintToleration") == {"a": 100, "b": 50, "c": 0}
    tol = (Toleration("maint", "Exists", effect="PreferNoSchedule"),)
    assert score_of(place(pod(tolerations=tol), hosts), "TaintToleration") == {"a": 100, "b": 100, "c": 0}
    # a toleration for another effect does not count
    tol = (Toleration("maint", "Exists", effect="NoSchedule"),)
    assert score_of(place(pod(tolerations=tol), hosts), "TaintToleration") == {"a": 100, "b": 50, "c": 0}
    assert score_of(place(pod(), [host("a"), host("b")]), "TaintToleration") == {"a": 100, "b": 100}


def test_image_locality_kubernetes_formula():
    mb = 2**20
    hosts = [host("a", images={"big", "mid", "tiny"}), host("b", images={"big"}), host("c"), host("d", images={"mid"})]
    sizes = {"big": 3000 * mb, "mid": 500 * mb, "tiny": 1 * mb}

    def scores(images):
        p = schedule([pod(images=images)], Snapshot(tuple(hosts), (), sizes), FULL)[0]
        return score_of(p, "ImageLocality"), p.host

    # big: on 2 of 4 hosts -> 1500 MB, clamped to 1000 MB -> 100
    assert scores(("big",)) == ({"a": 100, "b": 100, "c": 0, "d": 0}, "a")
    # mid: 500 MB * 2/4 = 250 MB -> 100 * (250 - 23) / (1000 - 23) = 23 (integer)
    assert scores(("mid",))[0] == {"a": 23, "b": 0, "c": 0, "d": 23}
    # a tiny image (busybox) never scores: it must not pull replicas together
    assert scores(("tiny",))[0] == {"a": 0, "b": 0, "c": 0, "d": 0}
    # two containers: thresholds double; a: 1500 (big, clamped later) + 250 MB
    two = scores(("big", "mid"))[0]
    assert two == {"a": 100 * (1750 - 46) // (2000 - 46), "b": 100 * (1500 - 46) // (2000 - 46), "c": 0,
                   "d": 100 * (250 - 46) // (2000 - 46)}
    # no size known: nothing
    p = schedule([pod(images=("big",))], Snapshot(tuple(hosts)), FULL)[0]
    assert score_of(p, "ImageLocality") == {"a": 0, "b": 0, "c": 0, "d": 0}


def test_spread_schedule_anyway_kubernetes_formula():
    # zone a holds 2 matching pods, zone b none. 2 domains: weight log(4);
    # a: round(2 * 1.386 + 0) = 3, b: 0 -> normalised 100 * (3 + 0 - s) / 3
    b = [bound("a1", "default/e1", labels=WEB), bound("a2", "default/e2", labels=WEB)]
    pl = place(pod(labels=WEB, topology_spread=spread(when="ScheduleAnyway")), ZONED, b)
    assert score_of(pl, "PodTopologySpread") == {"a1": 0, "a2": 0, "b1": 100, "b2": 100}
    assert round(2 * math.log(4)) == 3
    # hosts without the key score 0 but stay feasible
    pl = place(pod(labels=WEB, topology_spread=spread(when="ScheduleAnyway")), ZONED + [host("x")], b)
    assert score_of(pl, "PodTopologySpread")["x"] == 0
    # no matching pods anywhere: every host with the key scores 100
    pl = place(pod(labels=WEB, topology_spread=spread(when="ScheduleAnyway")), ZONED)
    assert set(score_of(pl, "PodTopologySpread").values()) == {100}


def test_spread_schedule_anyway_by_hostname():
    b = [bound("a1", "default/e1", labels=WEB), bound("a1", "default/e2", labels=WEB), bound("b1", "default/e3", labels=WEB)]
    pl = place(pod(labels=WEB, topology_spread=spread(max_skew=2, key=HOSTNAME, when="ScheduleAnyway")), ZONED, b)
    # weight log(4 + 2); raw = round(count * 1.79 + 1): a1 5, b1 3, others 1 -> 100 * (6 - s) / 5
    assert score_of(pl, "PodTopologySpread") == {"a1": 20, "a2": 100, "b1": 60, "b2": 100}


def test_spread_schedule_anyway_hostname_weight_is_log_of_feasible_hosts_plus_two():
    hosts = [host("a"), host("b"), host("c")]
    b = [bound("a", f"default/e{i}", labels=WEB) for i in range(4)] + [bound("b", "default/e9", labels=WEB)]
    pl = place(pod(labels=WEB, topology_spread=spread(key=HOSTNAME, when="ScheduleAnyway")), hosts, b)
    # log(3 + 2): a round(4 * 1.609) = 6, b 2, c 0 -> 100 * (6 + 0 - s) / 6
    assert score_of(pl, "PodTopologySpread") == {"a": 0, "b": 66, "c": 100}


def test_normalisation_is_over_the_hosts_this_pod_may_use():
    # the best preferred host is taken by a global filter (anti-affinity): the maximum is
    # then the best of the rest, which scores 100
    hosts = [host("a1", labels={"disk": "ssd", "gen": "1"}), host("a2", labels={"gen": "1"}), host("b1")]
    terms = (PreferredSchedulingTerm(50, NodeSelectorTerm((Requirement("disk", "In", ("ssd",)),))),
             PreferredSchedulingTerm(10, NodeSelectorTerm((Requirement("gen", "Exists"),))))
    b = [bound("a1", "default/e", labels=WEB)]
    first = pod("default/q", preferred_node_affinity=terms)
    second = pod("default/r", labels=WEB, preferred_node_affinity=terms, pod_anti_affinity=anti())
    out = schedule([first, second], Snapshot(tuple(hosts), tuple(b)), FULL)
    assert score_of(out[0], "NodeAffinity") == {"a1": 100, "a2": 16, "b1": 0}
    assert score_of(out[1], "NodeAffinity") == {"a2": 100, "b1": 0}


def test_preferred_pod_anti_affinity_and_affinity():
    b = [bound("a1", "default/e1", labels=WEB)]
    term = WeightedPodAffinityTerm(100, PodAffinityTerm(APP, HOSTNAME))
    pl = place(pod(labels={"app": "x"}, preferred_pod_anti_affinity=(term,)), ZONED, b)
    assert score_of(pl, "InterPodAffinity") == {"a1": 0, "a2": 100, "b1": 100, "b2": 100}
    pl = place(pod(labels={"app": "x"}, preferred_pod_affinity=(WeightedPodAffinityTerm(50, PodAffinityTerm(APP, "zone")),)),
               ZONED, b)
    assert score_of(pl, "InterPodAffinity") == {"a1": 100, "a2": 100, "b1": 0, "b2": 0}
    assert pl.host == "a2"  # zone a; a2 is the less loaded of its hosts


def test_bound_pods_preferred_terms_score_the_incoming_pod():
    # the bound pod prefers to be away from app=web: the incoming web pod is scored away from it
    term = WeightedPodAffinityTerm(100, PodAffinityTerm(APP, "zone"))
    b = [bound("a1", "default/db", labels={"app": "db"}, preferred_pod_anti_affinity=(term,))]
    pl = place(pod(labels=WEB), ZONED, b)
    assert score_of(pl, "InterPodAffinity") == {"a1": 0, "a2": 0, "b1": 100, "b2": 100}
    # a bound pod's required affinity counts at hardPodAffinityWeight
    b = [bound("a1", "default/db", labels={"app": "db"}, pod_affinity=(PodAffinityTerm(APP, "zone"),))]
    pl = place(pod(labels=WEB), ZONED, b)
    assert score_of(pl, "InterPodAffinity") == {"a1": 100, "a2": 100, "b1": 0, "b2": 0}
    pl = place(pod(labels=WEB), ZONED, b, SchedulerConfig(explain="full", hard_pod_affinity_weight=0))
    assert set(score_of(pl, "InterPodAffinity").values()) == {0}


def test_current_host_wins_while_feasible():
    hosts = [host("a", cpu_m=1000), host("b", cpu_m=8000)]
    assert place(pod(cpu_m=500), hosts).host == "b"
    assert place(pod(cpu_m=500, current_host="a"), hosts).host == "a"
    assert place(pod(cpu_m=2000, current_host="a"), hosts).host == "b"  # forced to move
    weights = dict((p.name, w) for p, w in build().scorers)
    assert weights["CurrentHost"] == sum(w for n, w in weights.items() if n != "CurrentHost") + 1


@pytest.mark.parametrize("p", [
    pod(cpu_m=700, memory=3 * GI, labels=WEB, topology_spread=spread(when="ScheduleAnyway")),
    pod(labels=WEB, preferred_pod_anti_affinity=(WeightedPodAffinityTerm(7, PodAffinityTerm(APP, "zone")),)),
    pod(preferred_node_affinity=(PreferredSchedulingTerm(3, NodeSelectorTerm((Requirement("zone", "In", ("a",)),))),)),
    pod(images=("i1",), tolerations=(Toleration(operator="Exists"),)),
])
def test_every_score_is_within_0_and_100_and_totals_add_up(p):
    hosts = [host(f"h{i}", cpu_m=1000 * (i + 1), memory=GI * (i + 2), labels={"zone": "ab"[i % 2]},
                  images={"i1"} if i % 3 else set(), taints=(Taint("t", "", "PreferNoSchedule"),) if i % 4 == 0 else ())
             for i in range(6)]
    b = [bound(f"h{i}", f"default/e{i}", labels=WEB, cpu_m=100 * i) for i in range(0, 6, 2)]
    pl = place(p, hosts, b)
    assert pl.candidates
    for c in pl.candidates:
        assert all(0 <= s <= 100 for _, s, _ in c.scores)
        assert c.total == sum(s * w for _, s, w in c.scores)
    assert pl.score == pl.candidates[0] == select(pl.candidates)


def test_weights_from_the_config_and_unknown_names():
    reg = build(SchedulerConfig(weights={"ImageLocality": 0, "NodeResourcesFit": 5}))
    names = {p.name: w for p, w in reg.scorers}
    assert "ImageLocality" not in names and names["NodeResourcesLeastAllocated"] == 5
    with pytest.raises(ValueError, match="unknown scorer"):
        build(SchedulerConfig(weights={"Nope": 1}))


# ---------------------------------------------------------------- selection, explanation, determinism


def test_select_breaks_ties_on_the_host_name():
    cards = [ScoreCard("b", 10, ()), ScoreCard("a", 10, ()), ScoreCard("c", 9, ())]
    assert select(cards).host == "a"
    assert select([]) is None
    assert [x.host for x in schedule([pod()], Snapshot((host("b"), host("a"))))] == ["a"]


def test_unschedulable_message_is_kubernetes_style():
    hosts = [host("a", memory=GI), host("b", memory=GI), host("c", memory=GI),
             host("d", taints=(GPU,)), host("e", taints=(GPU,))]
    pl = place(pod(memory=2 * GI), hosts)
    assert pl.host is None
    assert pl.message == ("0/5 hosts are available: 3 Insufficient memory, "
                          "2 host(s) had untolerated taint {dedicated=gpu: NoSchedule}.")
    assert place(pod(), []).message == "0/0 hosts are available."


def test_explanation_per_host():
    hosts = [host("a"), host("b", ready=False), host("c", memory=GI)]
    pl = place(pod(memory=2 * GI), hosts)
    vs = {v.host: v for v in verdicts(pl)}
    assert vs["a"].feasible and vs["a"].score.host == "a"
    assert vs["b"].rejection.plugin == "HostReady"
    assert vs["c"].rejection.reasons == ("Insufficient memory",)
    text = describe(pl)
    assert text.splitlines()[0] == f"default/p: -> a (score {pl.score.total}, 1 feasible host(s))"
    assert "  c: rejected by NodeResourcesFit: Insufficient memory" in text
    assert "NodeResourcesLeastAllocated=" in text
    pending = place(pod(memory=20 * GI), hosts)
    assert describe(pending).startswith("default/p: Pending: 0/3 hosts are available: ")


def test_explanations_are_kept_per_placement():
    # a later placement filling a host must not change an earlier placement's story
    pods = [pod(f"default/p{i}", memory=3 * GI) for i in range(3)]
    out = schedule(pods, Snapshot((host("a", memory=4 * GI), host("b", memory=4 * GI))), SchedulerConfig())
    assert [x.host for x in out] == ["a", "b", None]
    assert out[0].rejections() == ()
    assert [(r.host, r.reasons) for r in out[1].rejections()] == [("a", ("Insufficient memory",))]
    assert out[2].reason_counts() == {"Insufficient memory": 2}
    assert out[0].score is not None and out[0].candidates == ()


def cluster(seed: int):
    rng = random.Random(seed)
    hosts = [host(f"h{i:02d}", cpu_m=rng.choice([2000, 4000]), memory=rng.choice([4, 8]) * GI,
                  labels={"zone": f"z{i % 3}"}, taints=(GPU,) if i % 7 == 6 else ())
             for i in range(12)]
    pods = []
    for i in range(30):
        app = f"app{i % 4}"
        pods.append(pod(f"default/{app}-{i}", labels={"app": app}, cpu_m=rng.choice([100, 500, 900]),
                        memory=rng.choice([256, 512, 1024]) * MI,
                        topology_spread=spread(1, "zone", "ScheduleAnyway", LabelSelector({"app": app})),
                        preferred_pod_anti_affinity=(WeightedPodAffinityTerm(50, PodAffinityTerm(LabelSelector({"app": app}), HOSTNAME)),)))
    return hosts, pods


def test_same_input_same_placements_whatever_the_host_order():
    hosts, pods = cluster(7)
    first = schedule(pods, Snapshot(tuple(hosts)))
    assert first == schedule(pods, Snapshot(tuple(hosts)))
    for seed in range(3):
        shuffled = hosts[:]
        random.Random(seed).shuffle(shuffled)
        again = schedule(pods, Snapshot(tuple(shuffled)))
        assert [(p.key, p.host, p.score) for p in again] == [(p.key, p.host, p.score) for p in first]


def test_same_placements_in_another_process_whatever_the_hash_seed():
    script = (
        f"import json, sys; sys.path.insert(0, {os.path.dirname(os.path.abspath(__file__))!r})\n"
        "import test_scheduler as t\n"
        "from orchestrator.scheduler import Snapshot, schedule\n"
        "hosts, pods = t.cluster(3)\n"
        "out = schedule(pods, Snapshot(tuple(hosts)))\n"
        "print(json.dumps([(p.key, p.host, p.message, p.score and list(p.score)) for p in out]))\n")
    runs = {seed: subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True,
                                 env={**os.environ, "PYTHONHASHSEED": seed}).stdout for seed in ("1", "2")}
    assert runs["1"] == runs["2"] and runs["1"].startswith("[[")


def test_a_pods_own_binding_in_the_snapshot_is_ignored():
    b = [bound("a", "default/p", cpu_m=4000)]
    assert place(pod(cpu_m=4000), [host("a")], b).host == "a"


def test_snapshot_bind_carries_placements_forward():
    snap = Snapshot((host("a", cpu_m=1000),))
    out = schedule([pod("default/p1", cpu_m=800)], snap)
    after = snap.bind(out)
    assert schedule([pod("default/p2", cpu_m=800)], after)[0].message == "0/1 hosts are available: 1 Insufficient cpu."


@pytest.mark.parametrize("make, match", [
    (lambda: Requirement("k", "Foo"), "unknown operator"),
    (lambda: Requirement("k", "In"), "needs values"),
    (lambda: Requirement("k", "Gt", ("x",)), "integer"),
    (lambda: LabelSelector(match_expressions=(Requirement("k", "Gt", ("1",)),)), "not allowed"),
    (lambda: Toleration("", "Equal", "v"), "empty key"),
    (lambda: TopologySpreadConstraint(0, "zone"), "maxSkew"),
    (lambda: TopologySpreadConstraint(1, "zone", "ScheduleAnyway", min_domains=2), "minDomains"),
    (lambda: PreferredSchedulingTerm(0, NodeSelectorTerm()), "weight"),
    (lambda: SchedulerConfig(scoring_strategy="Random"), "strategy"),
    (lambda: schedule([], Snapshot((host("a"), host("a")))), "duplicate host"),
])
def test_invalid_inputs_are_refused(make, match):
    with pytest.raises(ValueError, match=match):
        make()
