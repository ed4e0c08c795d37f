"""reconcile_daemonset: eligibility (nodeSelector, taints vs tolerations, not-ready and
cordoned hosts), inventory changes, rolling update. Table-driven, time and rng injected."""

from __future__ import annotations

import itertools
import random
import re

import pytest
import yaml

from orchestrator.manifests import parse_documents, validate_pod
from orchestrator.model import Taint
from orchestrator.workloads.common import HostInfo, OwnedPod
from orchestrator.workloads.daemonset import (
    DAEMON_TOLERATIONS,
    HASH_LABEL,
    daemonset_hash,
    eligibility,
    reconcile_daemonset,
)

T0 = 1_700_000_000.0


def daemonset(image="agent:1", node_selector=None, tolerations=None, strategy=None, **spec):
    pod_spec = {"containers": [{"name": "agent", "image": image}]}
    if node_selector:
        pod_spec["nodeSelector"] = node_selector
    if tolerations:
        pod_spec["tolerations"] = tolerations
    body = {"selector": {"matchLabels": {"app": "agent"}},
            "template": {"metadata": {"labels": {"app": "agent"}}, "spec": pod_spec}}
    if strategy:
        body["updateStrategy"] = strategy
    body.update(spec)
    text = yaml.safe_dump({"apiVersion": "apps/v1", "kind": "DaemonSet",
                           "metadata": {"name": "agent", "namespace": "infra"}, "spec": body})
    return parse_documents(text, "agent.yaml")[0].obj


def host(name, labels=None, taints=(), ready=True, unschedulable=False):
    return HostInfo(name, labels or {}, tuple(taints), ready, unschedulable)


NO_SCHEDULE = Taint("dedicated", "gpu", "NoSchedule")
NO_EXECUTE = Taint("maintenance", "", "NoExecute")
PREFER = Taint("spot", "", "PreferNoSchedule")
GPU_TOLERATION = [{"key": "dedicated", "operator": "Equal", "value": "gpu", "effect": "NoSchedule"}]

ELIGIBILITY = [
    # id, daemonset kwargs, host, (should run, should continue running)
    ("plain host", {}, host("h"), (True, True)),
    ("selector matches", {"node_selector": {"role": "edge"}}, host("h", {"role": "edge"}), (True, True)),
    ("selector does not match", {"node_selector": {"role": "edge"}}, host("h", {"role": "core"}),
     (False, False)),
    ("selector, label missing", {"node_selector": {"role": "edge"}}, host("h"), (False, False)),
    ("untolerated NoSchedule: keep, do not add", {}, host("h", taints=[NO_SCHEDULE]), (False, True)),
    ("tolerated NoSchedule", {"tolerations": GPU_TOLERATION}, host("h", taints=[NO_SCHEDULE]),
     (True, True)),
    ("toleration with another value", {"tolerations": [{**GPU_TOLERATION[0], "value": "tpu"}]},
     host("h", taints=[NO_SCHEDULE]), (False, True)),
    ("untolerated NoExecute: evict", {}, host("h", taints=[NO_EXECUTE]), (False, False)),
    ("tolerate everything", {"tolerations": [{"operator": "Exists"}]},
     host("h", taints=[NO_SCHEDULE, NO_EXECUTE]), (True, True)),
    ("PreferNoSchedule does not matter", {}, host("h", taints=[PREFER]), (True, True)),
    ("not-ready host: keep, do not add", {}, host("h", ready=False), (False, True)),
    ("not-ready host, tolerated", {"tolerations": [{"key": "node.kubernetes.io/not-ready",
                                                    "operator": "Exists"}]},
     host("h", ready=False), (True, True)),
    ("cordoned host: DaemonSets tolerate it", {}, host("h", unschedulable=True), (True, True)),
    ("the automatic tolerations cover unreachable NoExecute", {},
     host("h", taints=[Taint("node.kubernetes.io/unreachable", "", "NoExecute")]), (True, True)),
]


@pytest.mark.parametrize("kwargs, h, expected", [c[1:] for c in ELIGIBILITY],
                         ids=[c[0] for c in ELIGIBILITY])
def test_eligibility_follows_kubernetes(kwargs, h, expected):
    run, keep, why = eligibility(daemonset(**kwargs), h)
    assert (run, keep) == expected
    assert bool(why) == (not run)


def test_why_names_the_taint():
    assert eligibility(daemonset(), host("h", taints=[NO_SCHEDULE]))[2] == \
        "untolerated taint {dedicated=gpu: NoSchedule}"


class Sim:
    def __init__(self, hosts, seed=0, ready_delay=1.0):
        self.t = T0
        self.rng = random.Random(seed)
        self.hosts = list(hosts)
        self.pods: dict[str, OwnedPod] = {}
        self.history: list = []
        self.status: dict | None = None
        self.ready_delay = ready_delay
        self.uids = (f"uid-{i}" for i in itertools.count())

    def step(self, ds):
        d = reconcile_daemonset(ds, list(self.pods.values()), self.hosts, self.t,
                                history=self.history, rng=self.rng)
        for x in d.delete:
            p = self.pods[x.uid]
            self.pods[x.uid] = OwnedPod(**{**p.__dict__, "deleting": True})
        for c in d.create:
            validate_pod(c.manifest, "sim")
            assert c.manifest["spec"]["nodeName"] == c.host
            uid = next(self.uids)
            self.pods[uid] = OwnedPod(uid, c.name, c.manifest["metadata"]["labels"],
                                      phase="Pending", created_at=self.t, host=c.host)
        self.history, self.status = d.history, d.status
        return d

    def tick(self, dt=1.0):
        self.t += dt
        for uid, p in list(self.pods.items()):
            if p.deleting:
                del self.pods[uid]
            elif p.phase == "Pending" and p.created_at + self.ready_delay <= self.t:
                self.pods[uid] = OwnedPod(**{**p.__dict__, "phase": "Running", "ready": True,
                                             "ready_since": p.created_at + self.ready_delay})

    def converge(self, ds, steps=50):
        for _ in range(steps):
            d = self.step(ds)
            self.tick()
            if d.empty and all(p.ready for p in self.pods.values()):
                return
        raise AssertionError("did not converge")

    def placed(self):
        return sorted(p.host for p in self.pods.values() if not p.deleting)


# ---------------------------------------------------------------- placement


def test_one_pinned_pod_per_eligible_host():
    ds = daemonset()
    hosts = [host("h1"), host("h2"), host("h3", taints=[NO_SCHEDULE])]
    d = reconcile_daemonset(ds, [], hosts, T0, rng=random.Random(5))
    assert sorted(c.host for c in d.create) == ["h1", "h2"]
    h = daemonset_hash(ds)
    for c in d.create:
        assert re.fullmatch(r"agent-[bcdfghjklmnpqrstvwxz2456789]{5}", c.name)
        pod = validate_pod(c.manifest, "x")
        assert pod.spec.node_name == c.host and pod.namespace == "infra"
        assert dict(pod.meta.labels) == {"app": "agent", HASH_LABEL: h}
        assert c.manifest["spec"]["tolerations"] == [t.to_k8s() for t in DAEMON_TOLERATIONS]
    assert d.status == {"desiredNumberScheduled": 2, "currentNumberScheduled": 2,
                        "numberMisscheduled": 0, "numberReady": 0, "updatedNumberScheduled": 2,
                        "numberUnavailable": 2}
    assert [r["revision"] for r in d.history] == [1]


def test_template_tolerations_reach_the_pods():
    ds = daemonset(tolerations=GPU_TOLERATION)
    d = reconcile_daemonset(ds, [], [host("gpu", taints=[NO_SCHEDULE])], T0, rng=random.Random(0))
    (c,) = d.create
    assert c.manifest["spec"]["tolerations"][0] == GPU_TOLERATION[0]
    assert len(c.manifest["spec"]["tolerations"]) == 1 + len(DAEMON_TOLERATIONS)


def test_hosts_added_and_removed_from_the_inventory():
    sim = Sim([host("h1"), host("h2")])
    ds = daemonset()
    sim.converge(ds)
    assert sim.placed() == ["h1", "h2"]
    sim.hosts.append(host("h3"))
    d = sim.step(ds)
    assert [c.host for c in d.create] == ["h3"] and not d.delete
    sim.tick()
    sim.hosts = [h for h in sim.hosts if h.name != "h1"]
    d = sim.step(ds)
    assert [x.reason for x in d.delete] == ["host h1 is not in the inventory"]
    sim.tick()
    sim.converge(ds)
    assert sim.placed() == ["h2", "h3"]


CHANGES = [
    # id, host after the change, kept?, misscheduled?
    ("labels stop matching", host("h1", {"role": "core"}), False, 0),
    ("NoSchedule taint added: kept", host("h1", {"role": "edge"}, [NO_SCHEDULE]), True, 1),
    ("NoExecute taint added: evicted", host("h1", {"role": "edge"}, [NO_EXECUTE]), False, 0),
    ("host not ready: kept", host("h1", {"role": "edge"}, ready=False), True, 1),
    ("host cordoned: kept", host("h1", {"role": "edge"}, unschedulable=True), True, 0),
]


@pytest.mark.parametrize("changed, kept, misscheduled", [c[1:] for c in CHANGES],
                         ids=[c[0] for c in CHANGES])
def test_host_changes(changed, kept, misscheduled):
    ds = daemonset(node_selector={"role": "edge"})
    sim = Sim([host("h1", {"role": "edge"}), host("h2", {"role": "edge"})])
    sim.converge(ds)
    sim.hosts[0] = changed
    d = sim.step(ds)
    assert not d.create
    assert (not d.delete) == kept
    if not kept:
        assert d.delete[0].reason.startswith("host h1 is not eligible: ")
    assert d.status["numberMisscheduled"] == misscheduled
    assert d.status["desiredNumberScheduled"] == (2 if changed.unschedulable else 1)


def test_not_ready_host_gets_no_new_pod():
    d = reconcile_daemonset(daemonset(), [], [host("h1", ready=False), host("h2")], T0)
    assert [c.host for c in d.create] == ["h2"]


def test_failed_pod_is_replaced_once_gone_and_duplicates_removed():
    ds = daemonset()
    h = daemonset_hash(ds)
    labels = {"app": "agent", HASH_LABEL: h}
    failed = OwnedPod("u1", "agent-a", labels, phase="Failed", host="h1", created_at=T0)
    d = reconcile_daemonset(ds, [failed], [host("h1")], T0 + 1)
    assert [x.uid for x in d.delete] == ["u1"] and not d.create  # created next step
    gone = reconcile_daemonset(ds, [], [host("h1")], T0 + 2)
    assert [c.host for c in gone.create] == ["h1"]
    older = OwnedPod("u2", "agent-b", labels, phase="Running", ready=True, host="h1", created_at=T0)
    newer = OwnedPod("u3", "agent-c", labels, phase="Running", ready=True, host="h1", created_at=T0 + 5)
    d = reconcile_daemonset(ds, [newer, older], [host("h1")], T0 + 9)
    assert [x.uid for x in d.delete] == ["u3"]


def test_a_terminating_pod_blocks_its_successor():
    ds = daemonset()
    leaving = OwnedPod("u1", "agent-a", {HASH_LABEL: "old"}, phase="Running", host="h1",
                       deleting=True)
    assert reconcile_daemonset(ds, [leaving], [host("h1")], T0).empty


# ---------------------------------------------------------------- updates


@pytest.mark.parametrize("hosts, max_unavailable, min_ready", [
    (4, 1, 0), (5, 2, 0), (4, "50%", 0), (3, 1, 3), (1, 1, 0),
])
def test_rolling_update_keeps_at_most_max_unavailable_hosts_down(hosts, max_unavailable, min_ready):
    strategy = {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": max_unavailable}}
    v1 = daemonset(strategy=strategy, minReadySeconds=min_ready)
    v2 = daemonset(image="agent:2", strategy=strategy, minReadySeconds=min_ready)
    limit = v2.max_unavailable_for(hosts)
    sim = Sim([host(f"h{i}") for i in range(hosts)])
    sim.converge(v1)
    sim.t += min_ready + 1
    new = daemonset_hash(v2)
    worst = 0
    for _ in range(200):
        sim.step(v2)
        for _phase in range(2):  # right after the decision, and after time passed
            down = sum(1 for h in sim.hosts if not any(
                not p.deleting and p.available(min_ready, sim.t)
                for p in sim.pods.values() if p.host == h.name))
            assert down <= limit
            worst = max(worst, down)
            if _phase == 0:
                sim.tick(0.5)
        if all(p.hash_label(HASH_LABEL) == new and p.available(min_ready, sim.t)
               for p in sim.pods.values()) and len(sim.pods) == hosts:
            break
    else:
        raise AssertionError("update did not finish")
    assert worst == limit  # the limit is what paces the update
    assert sim.status["updatedNumberScheduled"] == hosts
    assert [r["revision"] for r in sim.history] == [1, 2]


def test_on_delete_replaces_only_pods_that_were_deleted():
    on_delete = {"type": "OnDelete"}
    sim = Sim([host("h1"), host("h2")])
    sim.converge(daemonset(strategy=on_delete))
    v2 = daemonset(image="agent:2", strategy=on_delete)
    d = sim.step(v2)
    assert d.empty and d.status.get("updatedNumberScheduled", 0) == 0
    victim = next(uid for uid, p in sim.pods.items() if p.host == "h1")
    del sim.pods[victim]  # the user deleted it and the host confirmed
    d = sim.step(v2)
    assert [(c.host, c.revision_hash) for c in d.create] == [("h1", daemonset_hash(v2))]
    assert d.status["updatedNumberScheduled"] == 1
