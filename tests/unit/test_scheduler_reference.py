"""The scheduler against a naive reference: one host at a time, every formula written
out as kube-scheduler's source states it, no caches, no vectors. Random clusters and
workloads (hypothesis) must get the same placements, the same score cards and the same
reasons; and no placement may break a filter.

This is what keeps the fast paths honest (templates refreshed per charged host, domain
and histogram shortcuts, one-host and vector forms of the local plugins)."""

from __future__ import annotations

import math
from collections import Counter

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

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
    affinity,
    schedule,
    template,
)
from orchestrator.scheduler import filters as F
from orchestrator.scheduler.framework import Engine
from orchestrator.scheduler.index import Index
from orchestrator.scheduler.registry import build
from orchestrator.scheduler.template import ALL
from orchestrator.scheduler.types import HOSTNAME_LABEL, UNSCHEDULABLE_TAINT, tolerated

GI = 2**30


# ---------------------------------------------------------------- the reference


def term_ns(term, owner_ns):
    return None if term.all_namespaces else set(term.namespaces or (owner_ns,))


def term_matches(term, owner_ns, p: SchedPod) -> bool:
    ns = term_ns(term, owner_ns)
    return (term.label_selector is not None and (ns is None or p.namespace in ns)
            and term.label_selector.matches(p.label_map))


class Ref:
    def __init__(self, snapshot: Snapshot, config: SchedulerConfig, skip=frozenset()):
        self.hosts = sorted(snapshot.hosts, key=lambda h: h.name)
        self.labels = {h.name: {HOSTNAME_LABEL: h.name, **dict(h.labels)} for h in self.hosts}
        names = set(self.labels)
        self.bound = [(b.host, b.pod) for b in snapshot.bound if b.host in names and b.pod.key not in skip]
        self.config = config
        self.weights = {p.name: w for p, w in build(config).scorers}
        self.image_sizes = dict(snapshot.image_sizes)

    def on(self, name):
        return [p for h, p in self.bound if h == name]

    # ---- filters: (plugin, reasons) or None

    def node_affinity_ok(self, p, h) -> bool:
        labels = self.labels[h.name]
        if any(labels.get(k) != v for k, v in p.node_selector):
            return False
        if p.required_node_affinity is not None:
            return any(t.matches(labels, h.name) for t in p.required_node_affinity)
        return True

    def taints_ok(self, p, h) -> bool:
        return all(tolerated(t, p.tolerations) for t in h.taints if t.effect in ("NoSchedule", "NoExecute"))

    def reject(self, p, h):
        labels = self.labels[h.name]
        if not h.ready:
            return "HostReady", (F.NOT_READY,)
        if h.cordoned and not tolerated(UNSCHEDULABLE_TAINT, p.tolerations):
            return "NodeUnschedulable", (F.UNSCHEDULABLE,)
        if p.node_name is not None and p.node_name != h.name:
            return "NodeName", (F.NODE_NAME,)
        for t in h.taints:
            if t.effect in ("NoSchedule", "NoExecute") and not tolerated(t, p.tolerations):
                return "TaintToleration", (F.untolerated(t),)
        if not self.node_affinity_ok(p, h):
            return "NodeAffinity", (F.NODE_AFFINITY,)
        used_ports = {port for q in self.on(h.name) for port in q.host_ports}
        if any(port in used_ports for port in p.host_ports):
            return "NodePorts", (F.NODE_PORTS,)
        on = self.on(h.name)
        reasons = []
        if len(on) + 1 > h.pods:
            reasons.append(F.TOO_MANY_PODS)
        if p.cpu_m and p.cpu_m > h.cpu_m - sum(q.cpu_m for q in on):
            reasons.append(F.NO_CPU)
        if p.memory and p.memory > h.memory - sum(q.memory for q in on):
            reasons.append(F.NO_MEMORY)
        if reasons:
            return "NodeResourcesFit", tuple(reasons)
        r = self.spread_reject(p, h)
        if r:
            return "PodTopologySpread", (r,)
        r = self.affinity_reject(p, h, labels)
        if r:
            return "InterPodAffinity", (r,)
        return None

    def spread_domains(self, p, cons, c):
        """{domain value: matching pods} over eligible hosts, for constraint c."""
        counts = {}
        for n in self.hosts:
            nl = self.labels[n.name]
            if not all(x.topology_key in nl for x in cons):
                continue
            if c.node_affinity_policy == "Honor" and not self.node_affinity_ok(p, n):
                continue
            if c.node_taints_policy == "Honor" and not self.taints_ok(p, n):
                continue
            v = nl[c.topology_key]
            counts.setdefault(v, 0)
            counts[v] += sum(1 for q in self.on(n.name) if q.namespace == p.namespace
                             and c.label_selector is not None and c.label_selector.matches(q.label_map))
        return counts

    def spread_reject(self, p, h):
        cons = [c for c in p.topology_spread if c.when_unsatisfiable == "DoNotSchedule"]
        labels = self.labels[h.name]
        for c in cons:
            if c.topology_key not in labels:
                return F.SPREAD_LABEL
            counts = self.spread_domains(p, cons, c)
            low = min(counts.values()) if counts else 0
            if c.min_domains is not None and len(counts) < c.min_domains:
                low = 0
            me = 1 if c.label_selector is not None and c.label_selector.matches(p.label_map) else 0
            if counts.get(labels[c.topology_key], 0) + me - low > c.max_skew:
                return F.SPREAD
        return None

    def affinity_reject(self, p, h, labels):
        if p.pod_affinity:
            counts = Counter()
            for hn, q in self.bound:
                if all(term_matches(t, p.namespace, q) for t in p.pod_affinity):
                    for t in p.pod_affinity:
                        if t.topology_key in self.labels[hn]:
                            counts[(t.topology_key, self.labels[hn][t.topology_key])] += 1
            if not all(t.topology_key in labels for t in p.pod_affinity):
                return F.AFFINITY
            exist = all(counts[(t.topology_key, labels[t.topology_key])] > 0 for t in p.pod_affinity)
            if not exist and not (not counts and all(term_matches(t, p.namespace, p) for t in p.pod_affinity)):
                return F.AFFINITY
        for t in p.pod_anti_affinity:
            k = t.topology_key
            if k in labels and any(term_matches(t, p.namespace, q) and self.labels[hn].get(k) == labels[k]
                                   for hn, q in self.bound):
                return F.ANTI_AFFINITY
        for hn, q in self.bound:
            for t in q.pod_anti_affinity:
                k = t.topology_key
                if term_matches(t, q.namespace, p) and k in self.labels[hn] and labels.get(k) == self.labels[hn][k]:
                    return F.EXISTING_ANTI
        return None

    # ---- scores: {host: score} over feasible hosts

    def alloc(self, p, feas, most):
        cfg, out = self.config, {}
        for h in feas:
            on = self.on(h.name)
            num = den = 0
            for cap, req, w in ((h.cpu_m, sum(q.score_cpu_m for q in on) + p.score_cpu_m, cfg.cpu_weight),
                                (h.memory, sum(q.score_memory for q in on) + p.score_memory, cfg.memory_weight)):
                if cap == 0:
                    continue
                s = (min(req, cap) * 100 // cap) if most else (0 if req > cap else (cap - req) * 100 // cap)
                num, den = num + s * w, den + w
            out[h.name] = num // den if den else 0
        return out

    def balanced(self, p, feas):
        if not (p.cpu_m or p.memory):
            return {h.name: 0 for h in feas}
        out = {}
        for h in feas:
            on = self.on(h.name)
            fr = [min((sum(q.cpu_m for q in on) + p.cpu_m) / h.cpu_m, 1.0)] if h.cpu_m else []
            fr += [min((sum(q.memory for q in on) + p.memory) / h.memory, 1.0)] if h.memory else []
            std = abs(fr[0] - fr[1]) / 2 if len(fr) == 2 else 0.0
            out[h.name] = int((1 - std) * 100)
        return out

    def node_pref(self, p, feas):
        raw = {h.name: sum(t.weight for t in p.preferred_node_affinity
                           if t.preference.matches(self.labels[h.name], h.name)) for h in feas}
        top = max(raw.values())
        return {n: (r * 100 // top if top else 0) for n, r in raw.items()}

    def taint_score(self, p, feas):
        tols = tuple(t for t in p.tolerations if t.effect in ("", "PreferNoSchedule"))
        raw = {h.name: sum(1 for t in h.taints if t.effect == "PreferNoSchedule" and not tolerated(t, tols)) for h in feas}
        top = max(raw.values())
        return {n: (100 - r * 100 // top if top else 100) for n, r in raw.items()}

    def spread_score(self, p, feas):
        cons = [c for c in p.topology_spread if c.when_unsatisfiable == "ScheduleAnyway"]
        if not cons:
            return {h.name: 0 for h in feas}
        ignored = {h.name for h in feas if not all(c.topology_key in self.labels[h.name] for c in cons)}
        weights = []
        for c in cons:
            if c.topology_key == HOSTNAME_LABEL:
                size = len(feas) - len(ignored)
            else:
                size = len({self.labels[h.name][c.topology_key] for h in feas if h.name not in ignored})
            weights.append(math.log(size + 2))
        raw = {}
        for h in feas:
            if h.name in ignored:
                continue
            s = 0.0
            for c, w in zip(cons, weights):
                counts = self.spread_domains(p, cons, c)
                s += counts.get(self.labels[h.name][c.topology_key], 0) * w + (c.max_skew - 1)
            raw[h.name] = math.floor(s + 0.5)
        out = {h.name: 0 for h in feas}
        if raw:
            top, low = max(raw.values()), min(raw.values())
            for n, s in raw.items():
                out[n] = 100 if top == 0 else (100 * (top + low - s)) // top
        return out

    def interpod_score(self, p, feas):
        topo = Counter()
        hard = self.config.hard_pod_affinity_weight
        for hn, q in self.bound:
            ql = self.labels[hn]
            terms = [(t.term, t.weight, p.namespace, q) for t in p.preferred_pod_affinity]
            terms += [(t.term, -t.weight, p.namespace, q) for t in p.preferred_pod_anti_affinity]
            for term, w, ns, who in terms:  # the incoming pod's terms against bound pods
                if term_matches(term, ns, who) and term.topology_key in ql:
                    topo[(term.topology_key, ql[term.topology_key])] += w
            back = [(t, hard) for t in q.pod_affinity] if hard else []
            back += [(t.term, t.weight) for t in q.preferred_pod_affinity]
            back += [(t.term, -t.weight) for t in q.preferred_pod_anti_affinity]
            for term, w in back:  # bound pods' terms against the incoming pod
                if term_matches(term, q.namespace, p) and term.topology_key in ql:
                    topo[(term.topology_key, ql[term.topology_key])] += w
        raw = {h.name: sum(v for (k, val), v in topo.items() if self.labels[h.name].get(k) == val) for h in feas}
        top, low = max(raw.values()), min(raw.values())
        return {n: (int(100 * ((r - low) / (top - low))) if top > low else 0) for n, r in raw.items()}

    def images(self, p, feas):
        # Kubernetes' imagelocality.go, written out plainly
        if not p.images:
            return {h.name: 0 for h in feas}
        low, high = 23 * 2**20 * len(p.images), 1000 * 2**20 * len(p.images)
        out = {}
        for h in feas:
            total = 0
            for image in p.images:
                having = sum(1 for x in self.hosts if image in x.images)
                if image in h.images:
                    total += int(self.image_sizes.get(image, 0) * (having / len(self.hosts)))
            out[h.name] = 100 * (min(max(total, low), high) - low) // (high - low)
        return out

    def place(self, p):
        rejections = {}
        feas = []
        for h in self.hosts:
            r = self.reject(p, h)
            if r:
                rejections[h.name] = r
            else:
                feas.append(h)
        if not feas:
            return None, rejections, {}
        most = self.config.scoring_strategy == "MostAllocated"
        per = {"TaintToleration": self.taint_score(p, feas), "NodeAffinity": self.node_pref(p, feas),
               "PodTopologySpread": self.spread_score(p, feas), "InterPodAffinity": self.interpod_score(p, feas),
               "NodeResourcesMostAllocated" if most else "NodeResourcesLeastAllocated": self.alloc(p, feas, most),
               "NodeResourcesBalancedAllocation": self.balanced(p, feas), "ImageLocality": self.images(p, feas),
               "CurrentHost": {h.name: 100 if h.name == p.current_host else 0 for h in feas}}
        cards = {h.name: {n: per[n][h.name] for n in self.weights} for h in feas}
        totals = {n: sum(c[k] * self.weights[k] for k in c) for n, c in cards.items()}
        best = min(totals, key=lambda n: (-totals[n], n))
        self.bound.append((best, p))
        return best, rejections, cards


def ref_schedule(pods, snapshot, config=SchedulerConfig()):
    ref = Ref(snapshot, config, frozenset(p.key for p in pods))
    return [ref.place(p) for p in pods]


# ---------------------------------------------------------------- random clusters and pods


ZONES = ["za", "zb", "zc"]
IMAGE_SIZES = {"i1": 30 * 2**20, "i2": 400 * 2**20, "i3": 3000 * 2**20}  # under, inside, over the clamp
APPS = ["web", "api", "db"]
names = st.sampled_from


@st.composite
def hosts_st(draw):
    n = draw(st.integers(1, 9))
    hosts = []
    for i in range(n):
        labels = {}
        if draw(st.booleans()) or i < 2:
            labels["zone"] = draw(names(ZONES))
        if draw(st.booleans()):
            labels["disk"] = draw(names(["ssd", "hdd"]))
        if draw(st.integers(0, 3)) == 0:
            labels["gen"] = draw(names(["1", "2", "3", "x"]))
        taints = []
        if draw(st.integers(0, 4)) == 0:
            taints.append(Taint("dedicated", draw(names(["gpu", "db"])), draw(names(["NoSchedule", "NoExecute"]))))
        if draw(st.integers(0, 3)) == 0:
            taints.append(Taint("soft", "", "PreferNoSchedule"))
        hosts.append(SchedHost(
            f"h{i}", labels=labels, taints=tuple(taints), ready=draw(st.integers(0, 9)) > 0,
            cordoned=draw(st.integers(0, 9)) == 0, cpu_m=draw(names([0, 1000, 2000, 4000])),
            memory=draw(names([0, GI, 2 * GI, 4 * GI])), pods=draw(names([2, 3, 110])),
            images=frozenset(draw(st.lists(names(["i1", "i2", "i3"]), max_size=2)))))
    return hosts


selectors = st.one_of(st.none(), st.builds(lambda a: LabelSelector({"app": a}), names(APPS)),
                      st.just(LabelSelector()),
                      st.builds(lambda a: LabelSelector(match_expressions=(Requirement("app", "NotIn", (a,)),)), names(APPS)))
keys = names(["zone", HOSTNAME_LABEL, "disk"])
aff_terms = st.builds(PodAffinityTerm, selectors, keys, st.sampled_from([(), ("prod",), ("default", "prod")]),
                      st.booleans())
node_terms = st.builds(lambda reqs: NodeSelectorTerm(tuple(reqs)), st.lists(st.one_of(
    st.builds(Requirement, names(["zone", "disk"]), names(["In", "NotIn"]), st.lists(names(ZONES + ["ssd"]), min_size=1, max_size=2).map(tuple)),
    st.builds(Requirement, names(["zone", "disk", "gen"]), names(["Exists", "DoesNotExist"])),
    st.builds(Requirement, st.just("gen"), names(["Gt", "Lt"]), names([("1",), ("2",)]))), max_size=2))


@st.composite
def spec_st(draw):
    app = draw(names(APPS))
    kw = dict(namespace=draw(names(["default", "prod"])), labels={"app": app})
    if draw(st.booleans()):
        kw["cpu_m"] = draw(names([0, 300, 1000]))
        kw["memory"] = draw(names([0, GI // 2, GI]))
    if draw(st.integers(0, 3)) == 0:
        kw["node_selector"] = {"zone": draw(names(ZONES))}
    if draw(st.integers(0, 3)) == 0:
        kw["required_node_affinity"] = tuple(draw(st.lists(node_terms, max_size=2)))
    if draw(st.integers(0, 3)) == 0:
        kw["preferred_node_affinity"] = tuple(PreferredSchedulingTerm(w, t) for w, t in
                                              draw(st.lists(st.tuples(st.integers(1, 100), node_terms), max_size=2)))
    if draw(st.booleans()):
        kw["tolerations"] = tuple(draw(st.lists(st.one_of(
            st.builds(Toleration, st.just("dedicated"), st.just("Equal"), names(["gpu", "db"]), names(["", "NoSchedule"])),
            st.builds(Toleration, names(["soft", "dedicated", ""]), st.just("Exists"), st.just(""),
                      names(["", "PreferNoSchedule"]))), max_size=2)))
    if draw(st.integers(0, 2)) == 0:
        kw["pod_anti_affinity"] = tuple(draw(st.lists(aff_terms, max_size=1)))
    if draw(st.integers(0, 3)) == 0:
        kw["pod_affinity"] = tuple(draw(st.lists(aff_terms, max_size=2)))
    if draw(st.integers(0, 2)) == 0:
        kw["preferred_pod_affinity"] = tuple(WeightedPodAffinityTerm(w, t) for w, t in
                                             draw(st.lists(st.tuples(st.integers(1, 100), aff_terms), max_size=2)))
    if draw(st.integers(0, 2)) == 0:
        kw["preferred_pod_anti_affinity"] = tuple(WeightedPodAffinityTerm(w, t) for w, t in
                                                  draw(st.lists(st.tuples(st.integers(1, 100), aff_terms), max_size=2)))
    if draw(st.booleans()):
        cons = draw(st.lists(st.tuples(st.integers(1, 3), keys, names(["DoNotSchedule", "ScheduleAnyway"]), selectors,
                                       names([None, 2, 4]), names(["Honor", "Ignore"]), names(["Honor", "Ignore"])),
                             max_size=2, unique_by=lambda c: (c[1], c[2])))
        kw["topology_spread"] = tuple(TopologySpreadConstraint(s, k, w, sel, md if w == "DoNotSchedule" else None, ap, tp)
                                      for s, k, w, sel, md, ap, tp in cons)
    if draw(st.integers(0, 4)) == 0:
        kw["host_ports"] = ((draw(names([80, 443])), "TCP"),)
    if draw(st.booleans()):
        kw["images"] = tuple(draw(st.lists(names(["i1", "i2", "i3"]), min_size=1, max_size=2)))
    return kw


@st.composite
def workload_st(draw):
    hosts = draw(hosts_st())
    specs = draw(st.lists(spec_st(), min_size=1, max_size=4))
    seq = draw(st.lists(st.integers(0, len(specs) - 1), min_size=1, max_size=14))
    pods = []
    for i, s in enumerate(seq):
        extra = {}
        if draw(st.integers(0, 5)) == 0:
            extra["current_host"] = draw(names([h.name for h in hosts]))
        if draw(st.integers(0, 7)) == 0:
            extra["node_name"] = draw(names([h.name for h in hosts] + ["nope"]))
        pods.append(SchedPod(f"{specs[s]['namespace']}/p{i}", **specs[s], **extra))
    nb = draw(st.integers(0, 6))
    bound = tuple(BoundPod(draw(names([h.name for h in hosts] + ["gone"])),
                           SchedPod(f"{sp['namespace']}/b{i}", **sp))
                  for i, sp in enumerate(draw(st.lists(spec_st(), min_size=nb, max_size=nb))))
    strategy = draw(names(["LeastAllocated", "MostAllocated"]))
    return hosts, bound, pods, strategy


@st.composite
def crowded_st(draw):
    """Few hosts, many pods of one or two specs: counts per host and per zone grow, which
    is where the histogram and per-domain shortcuts of the global scorers work."""
    n = draw(st.integers(2, 6))
    hosts = [SchedHost(f"h{i}", labels={"zone": ZONES[i % draw(st.integers(1, 3))]}, cpu_m=8000, memory=16 * GI,
                       taints=(Taint("soft", "", "PreferNoSchedule"),) if i % 3 == 2 else ())
             for i in range(n)]
    specs = []
    for _ in range(draw(st.integers(1, 2))):
        app = draw(names(APPS))
        sel = LabelSelector({"app": app})
        kw = dict(labels={"app": app}, cpu_m=draw(names([0, 100, 700])), memory=draw(names([0, GI // 4])))
        key = draw(keys.filter(lambda k: k != "disk"))
        kind = draw(names(["spread", "anti", "affinity", "both", "required"]))
        if kind in ("spread", "both"):
            kw["topology_spread"] = (TopologySpreadConstraint(draw(st.integers(1, 4)), key, "ScheduleAnyway", sel),)
        if kind in ("anti", "both"):
            kw["preferred_pod_anti_affinity"] = (WeightedPodAffinityTerm(draw(st.integers(1, 100)), PodAffinityTerm(sel, key)),)
        if kind == "affinity":
            kw["preferred_pod_affinity"] = (WeightedPodAffinityTerm(draw(st.integers(1, 100)), PodAffinityTerm(sel, key)),)
        if kind == "required":
            kw["topology_spread"] = (TopologySpreadConstraint(draw(st.integers(1, 2)), key, "DoNotSchedule", sel),)
            kw["preferred_node_affinity"] = (PreferredSchedulingTerm(10, NodeSelectorTerm((Requirement("zone", "In", ("za",)),))),)
        specs.append(kw)
    seq = draw(st.lists(st.integers(0, len(specs) - 1), min_size=5, max_size=40))
    pods = [SchedPod(f"default/p{i}", **specs[s]) for i, s in enumerate(seq)]
    return hosts, (), pods, draw(names(["LeastAllocated", "MostAllocated"]))



def run_both(hosts, bound, pods, strategy):
    config = SchedulerConfig(scoring_strategy=strategy, explain="full")
    snap = Snapshot(tuple(hosts), bound, IMAGE_SIZES)
    return schedule(pods, snap, config), ref_schedule(pods, snap, config)


SETTINGS = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(workload_st())
def test_same_placements_scores_and_reasons_as_the_reference(w):
    got, want = run_both(*w)
    for g, (host, rejections, cards) in zip(got, want):
        assert g.host == host, g.key
        assert {r.host: (r.plugin, r.reasons) for r in g.rejections()} == rejections, g.key
        assert {c.host: {n: s for n, s, _ in c.scores} for c in g.candidates} == cards, g.key
        # the chosen card, assembled only now, after every later pod was charged
        assert (g.score is None) == (host is None)
        if host is not None:
            assert {n: s for n, s, _ in g.score.scores} == cards[host], g.key
        if host is None:
            counts = Counter(text for _, texts in rejections.values() for text in texts)
            assert g.reason_counts() == dict(counts)


@SETTINGS
@given(st.one_of(workload_st(), crowded_st()))
def test_the_bulk_paths_agree_too(w):
    """The same with every incremental shortcut forced to its bulk (vector) form."""
    saved = template.BULK, template.HIST_BULK, affinity.COMBO_BULK
    template.BULK = template.HIST_BULK = affinity.COMBO_BULK = 0
    try:
        got, want = run_both(*w)
    finally:
        template.BULK, template.HIST_BULK, affinity.COMBO_BULK = saved
    for g, (host, rejections, cards) in zip(got, want):
        assert g.host == host, g.key
        assert {r.host: (r.plugin, r.reasons) for r in g.rejections()} == rejections, g.key
        assert {c.host: {n: s for n, s, _ in c.scores} for c in g.candidates} == cards, g.key


@SETTINGS
@given(workload_st())
def test_no_placement_breaks_a_filter(w):
    hosts, bound, pods, strategy = w
    snap = Snapshot(tuple(hosts), bound)
    got = schedule(pods, snap, SchedulerConfig(scoring_strategy=strategy))
    ref = Ref(snap, SchedulerConfig(), frozenset(p.key for p in pods))
    by_name = {h.name: h for h in hosts}
    for p in got:
        if p.host is not None:
            assert ref.reject(p.pod, by_name[p.host]) is None, (p.key, p.host)
            ref.bound.append((p.host, p.pod))
        else:
            assert all(ref.reject(p.pod, h) for h in hosts)


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 5000), st.integers(0, 8 * GI), st.integers(0, 6000),
                          st.integers(0, 9 * GI), st.integers(0, 3000), st.integers(0, GI)), min_size=1, max_size=12),
       names(["LeastAllocated", "MostAllocated"]), st.integers(0, 3), st.integers(0, 3), st.booleans())
def test_local_plugins_one_host_form_equals_vector_form(rows, strategy, wc, wm, huge):
    """Each local plugin's one-host (refresh) form must give exactly its vector form
    (`huge`: a 2**47-byte host turns the float shortcut of the vector form off)."""
    hosts = [SchedHost(f"h{i}", cpu_m=c, memory=m, pods=3) for i, (c, m, *_r) in enumerate(rows)]
    if huge:
        hosts[0] = SchedHost("h0", cpu_m=rows[0][0], memory=2**47 + rows[0][1], pods=3)
    bound = tuple(BoundPod(f"h{i}", SchedPod(f"default/b{i}", cpu_m=uc, memory=um))
                  for i, (_c, _m, uc, um, _pc, _pm) in enumerate(rows))
    config = SchedulerConfig(scoring_strategy=strategy, cpu_weight=wc, memory_weight=wm)
    ix = Index(Snapshot(tuple(hosts), bound), config)
    assert ix.float_ok is not huge
    engine = Engine(ix, build(config))
    for _, _, _, _, pc, pm in rows:
        p = SchedPod("default/p", cpu_m=pc, memory=pm, host_ports=((80, "TCP"),))
        for idx in (np.arange(ix.n), ALL):
            for plugin in engine.lfilters:
                vec = plugin.codes(p, ix, idx).tolist()
                assert vec == [plugin.code_one(p, ix, h) for h in range(ix.n)], plugin.name
            for plugin, _ in engine.lscorers:
                if not plugin.static and plugin.applies(p):
                    vec = plugin.scores(p, ix, idx).tolist()
                    assert vec == [plugin.score_one(p, ix, h) for h in range(ix.n)], plugin.name




@SETTINGS
@given(crowded_st())
def test_crowded_hosts_match_the_reference(w):
    got, want = run_both(*w)
    for g, (host, _, cards) in zip(got, want):
        assert g.host == host, g.key
        assert {c.host: {n: s for n, s, _ in c.scores} for c in g.candidates} == cards, g.key
