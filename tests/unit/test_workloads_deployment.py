"""reconcile_deployment, rollout status/undo: table-driven, time and randomness injected.

A small pure simulator plays the rest of the system: created pods start Pending and
become ready `ready_delay` seconds later; deleted pods are gone one tick later (or,
with `linger`, stay terminating until told).
"""

from __future__ import annotations

import itertools
import random
import re

import pytest
import yaml

from orchestrator.manifests import parse_documents, validate_pod
from orchestrator.workloads.common import OwnedPod, deletion_order, template_hash
from orchestrator.workloads.deployment import (
    HASH_LABEL,
    RolloutError,
    current_revision,
    deployment_hash,
    reconcile_deployment,
    rollout_history,
    rollout_status,
    rollout_undo,
)

NAME_CHARS = "[bcdfghjklmnpqrstvwxz2456789]"
T0 = 1_700_000_000.0


def deployment(replicas=3, image="nginx:1.27", strategy=None, **spec):
    body = {"replicas": replicas, "selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}},
                         "spec": {"containers": [{"name": "app", "image": image}]}}}
    if strategy is not None:
        body["strategy"] = strategy
    body.update(spec)
    text = yaml.safe_dump({"apiVersion": "apps/v1", "kind": "Deployment",
                           "metadata": {"name": "web"}, "spec": body})
    return parse_documents(text, "web.yaml")[0].obj


def rolling(replicas, surge, unavailable, image="nginx:1.27", **spec):
    return deployment(replicas, image, strategy={"type": "RollingUpdate", "rollingUpdate":
                                                 {"maxSurge": surge, "maxUnavailable": unavailable}},
                      **spec)


class Sim:
    def __init__(self, seed=0, ready_delay=1.0, linger=False):
        self.t = T0
        self.rng = random.Random(seed)
        self.pods: dict[str, OwnedPod] = {}
        self.history: list = []
        self.status: dict | None = None
        self.ready_delay = ready_delay
        self.linger = linger
        self.uids = (f"uid-{i}" for i in itertools.count())
        self.never_ready: set[str] = set()

    def step(self, dep, **kw):
        d = reconcile_deployment(dep, list(self.pods.values()), self.t, history=self.history,
                                 prev_status=self.status, rng=self.rng, **kw)
        for x in d.delete:
            p = self.pods[x.uid]
            self.pods[x.uid] = OwnedPod(**{**p.__dict__, "deleting": True})
        for c in d.create:
            validate_pod(c.manifest, "sim")
            uid = next(self.uids)
            self.pods[uid] = OwnedPod(uid, c.name, c.manifest["metadata"]["labels"],
                                      phase="Pending", created_at=self.t, host="h1")
        self.history, self.status = d.history, d.status
        return d

    def tick(self, dt=1.0):
        self.t += dt
        for uid, p in list(self.pods.items()):
            if p.deleting and not self.linger:
                del self.pods[uid]
            elif (p.phase == "Pending" and p.created_at + self.ready_delay <= self.t
                  and p.template_hash not in self.never_ready
                  and p.hash_label(HASH_LABEL) not in self.never_ready):
                self.pods[uid] = OwnedPod(**{**p.__dict__, "phase": "Running", "ready": True,
                                             "ready_since": p.created_at + self.ready_delay})

    def forget_deleting(self):
        self.pods = {u: p for u, p in self.pods.items() if not p.deleting}

    def live(self):
        return [p for p in self.pods.values() if not p.deleting]

    def hashes(self):
        return sorted(p.hash_label(HASH_LABEL) for p in self.live())

    def converge(self, dep, steps=60):
        for _ in range(steps):
            d = self.step(dep)
            self.tick()
            if d.empty and all(p.ready for p in self.live()) and \
                    len(self.live()) == dep.replicas and \
                    set(self.hashes()) <= {deployment_hash(dep)}:
                return
        raise AssertionError("did not converge")


# ---------------------------------------------------------------- create and names


def test_create_names_labels_and_status():
    dep = deployment(3)
    d = reconcile_deployment(dep, [], T0, rng=random.Random(7))
    h = deployment_hash(dep)
    assert re.fullmatch(f"{NAME_CHARS}{{10}}", h)
    assert len(d.create) == 3 and not d.delete
    for c in d.create:
        assert re.fullmatch(f"web-{h}-{NAME_CHARS}{{5}}", c.name)
        assert c.revision_hash == h
        pod = validate_pod(c.manifest, "x")
        assert pod.name == c.name and dict(pod.meta.labels) == {"app": "web", HASH_LABEL: h}
        assert c.manifest["spec"] == {"containers": [{"name": "app", "image": "nginx:1.27"}]}
    assert len({c.name for c in d.create}) == 3
    assert d.history == [{"revision": 1, "hash": h, "template": dep.template.raw,
                          "createdAt": "2023-11-14T22:13:20Z"}]
    assert {k: v for k, v in d.status.items() if k != "conditions"} == \
        {"replicas": 3, "updatedReplicas": 3, "unavailableReplicas": 3}
    conds = {c["type"]: (c["status"], c["reason"]) for c in d.status["conditions"]}
    assert conds == {"Available": ("False", "MinimumReplicasUnavailable"),
                     "Progressing": ("True", "NewReplicaSetCreated")}
    assert [e.message for e in d.events] == [f"Scaled up replica set web-{h} from 0 to 3"]


def test_same_inputs_same_decision_and_hash_follows_the_template():
    a = reconcile_deployment(deployment(2), [], T0, rng=random.Random(1))
    b = reconcile_deployment(deployment(2), [], T0, rng=random.Random(1))
    assert a == b
    assert deployment_hash(deployment(2)) == deployment_hash(deployment(5))  # replicas aside
    assert deployment_hash(deployment(2, image="nginx:1.28")) != deployment_hash(deployment(2))
    raw = {"spec": {"b": 1, "a": [1, 2]}, "metadata": {"labels": {"y": "1", "x": "2"}}}
    same = {"metadata": {"labels": {"x": "2", "y": "1"}}, "spec": {"a": [1, 2], "b": 1}}
    assert template_hash(raw) == template_hash(same)


def test_long_names_are_cut_like_generate_name():
    text = yaml.safe_dump({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "a" * 60},
                           "spec": {"selector": {"matchLabels": {"x": "y"}}, "template": {
                               "metadata": {"labels": {"x": "y"}},
                               "spec": {"containers": [{"name": "c", "image": "i:1"}]}}}})
    dep = parse_documents(text, "x")[0].obj
    (c,) = reconcile_deployment(dep, [], T0, rng=random.Random(0)).create
    assert len(c.name) == 63
    validate_pod(c.manifest, "x")


# ---------------------------------------------------------------- scaling


def test_scale_up_and_down():
    sim = Sim()
    sim.converge(deployment(3))
    d = sim.step(deployment(5))
    assert len(d.create) == 2 and not d.delete
    sim.tick()
    sim.converge(deployment(5))
    d = sim.step(deployment(2))
    assert len(d.delete) == 3 and not d.create
    assert all(x.reason == "scaled down" for x in d.delete)
    assert d.events[0].message.endswith("from 5 to 2")
    sim.tick()
    sim.converge(deployment(2))
    assert len(sim.live()) == 2
    d = sim.step(deployment(0))
    assert len(d.delete) == 2
    sim.tick()
    assert sim.step(deployment(0)).empty and sim.live() == []


def pod(name, phase="Running", ready=True, ready_since=None, created=0.0, host="h1",
        restarts=0, hash_="x"):
    return OwnedPod(f"uid-{name}", name, {HASH_LABEL: hash_}, phase=phase, ready=ready,
                    ready_since=ready_since, created_at=T0 + created, host=host,
                    restart_count=restarts)


SCALE_DOWN_ORDER = [
    ("unscheduled before scheduled",
     [pod("a", created=1), pod("b", "Pending", False, host=None)], ["b", "a"]),
    ("pending, unknown, running",
     [pod("run"), pod("unk", "Unknown", False), pod("pend", "Pending", False)],
     ["pend", "unk", "run"]),
    ("not ready before ready",
     [pod("ready"), pod("notready", ready=False)], ["notready", "ready"]),
    ("doubled-up host first",
     [pod("alone", host="h2", created=9), pod("dup1", host="h1"), pod("dup2", host="h1", created=1)],
     ["dup2", "dup1", "alone"]),
    ("ready more recently first",
     [pod("old", ready_since=T0 + 10, host="h1"), pod("new", ready_since=T0 + 50, host="h2")],
     ["new", "old"]),
    ("more restarts first",
     [pod("calm", ready_since=1, host="h1"), pod("crashy", ready_since=1, restarts=4, host="h2")],
     ["crashy", "calm"]),
    ("newer first",
     [pod("older", ready_since=1, host="h1", created=1), pod("newer", ready_since=1, host="h2", created=5)],
     ["newer", "older"]),
]


@pytest.mark.parametrize("pods, expected", [c[1:] for c in SCALE_DOWN_ORDER],
                         ids=[c[0] for c in SCALE_DOWN_ORDER])
def test_scale_down_order_is_kubernetes(pods, expected):
    assert [p.name for p in deletion_order(pods)] == expected
    dep = deployment(len(pods) - 1)
    h = deployment_hash(dep)
    pods = [OwnedPod(**{**p.__dict__, "labels": ((HASH_LABEL, h),)}) for p in pods]
    d = reconcile_deployment(dep, pods, T0 + 100, rng=random.Random(0))
    assert [x.name for x in d.delete] == expected[:1] and not d.create


def test_terminal_and_terminating_pods():
    dep = deployment(2)
    h = deployment_hash(dep)
    pods = [OwnedPod("u1", "web-1", {HASH_LABEL: h}, phase="Failed", host="h1"),
            OwnedPod("u2", "web-2", {HASH_LABEL: h}, phase="Running", ready=True, host="h1"),
            OwnedPod("u3", "web-3", {HASH_LABEL: h}, phase="Running", deleting=True, host="h1")]
    d = reconcile_deployment(dep, pods, T0, rng=random.Random(0))
    assert [(x.uid, x.reason) for x in d.delete] == [("u1", "pod is Failed; the Deployment replaces it")]
    assert len(d.create) == 1  # the terminating pod does not count
    assert {c.name for c in d.create}.isdisjoint({"web-1", "web-2", "web-3"})


# ---------------------------------------------------------------- rolling update

ROLLING = [
    # replicas, maxSurge, maxUnavailable, minReadySeconds, readiness delay
    (3, 1, 0, 0, 1.0),
    (3, 0, 1, 0, 1.0),
    (10, "25%", "25%", 0, 1.0),
    (4, "50%", "50%", 0, 3.0),
    (5, 2, 0, 2, 1.0),
    (1, 1, 0, 0, 2.0),
    (1, "25%", "25%", 0, 1.0),  # resolves to surge 1, unavailable 0
    (6, 0, "50%", 1, 2.0),
    (2, 3, 2, 0, 1.0),
]


@pytest.mark.parametrize("replicas, surge, unavailable, min_ready, delay", ROLLING)
def test_rolling_update_stays_within_surge_and_unavailability(replicas, surge, unavailable,
                                                              min_ready, delay):
    v1 = rolling(replicas, surge, unavailable, minReadySeconds=min_ready)
    v2 = rolling(replicas, surge, unavailable, minReadySeconds=min_ready, image="nginx:1.28")
    assert v1.template.raw != v2.template.raw
    max_surge, max_unavailable = v2.rolling_limits()
    sim = Sim(seed=replicas, ready_delay=delay)
    sim.converge(v1, steps=200)
    sim.t += min_ready + 1  # everything available
    new = deployment_hash(v2)
    for _ in range(400):
        sim.step(v2)
        live = sim.live()
        assert len(live) <= replicas + max_surge, [p.name for p in live]
        available = [p for p in live if p.available(min_ready, sim.t)]
        assert len(available) >= replicas - max_unavailable
        if sim.hashes() == [new] * replicas and all(p.available(min_ready, sim.t) for p in live):
            break
        sim.tick(0.5)
        live = sim.live()  # deleted pods vanished: check again at this instant
        assert len([p for p in live if p.available(min_ready, sim.t)]) >= replicas - max_unavailable
    else:
        raise AssertionError("rollout did not finish")
    done, message = rollout_status(v2, sim.status)
    assert (done, message) == (True, 'deployment "web" successfully rolled out')
    cond = {c["type"]: c for c in sim.status["conditions"]}
    assert cond["Progressing"]["reason"] == "NewReplicaSetAvailable"
    assert cond["Available"]["status"] == "True"


def test_rolling_update_steps_for_three_replicas_surge_one():
    sim = Sim()
    sim.converge(deployment(3))
    old = deployment_hash(deployment(3))
    v2 = deployment(3, image="nginx:1.28", strategy={"rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}})
    new = deployment_hash(v2)
    d = sim.step(v2)  # one surge pod, nothing deleted: no new pod is available yet
    assert [c.revision_hash for c in d.create] == [new] and not d.delete
    assert rollout_status(v2, d.status) == (
        False, 'Waiting for deployment "web" rollout to finish: 1 out of 3 new replicas have been updated...')
    sim.tick()
    d = sim.step(v2)  # the new pod is available: one old pod goes (4 pods = the surge limit)
    assert len(d.delete) == 1 and sim.pods[d.delete[0].uid].hash_label(HASH_LABEL) == old
    assert not d.create
    assert [e.message for e in d.events] == [f"Scaled down replica set web-{old} from 3 to 2"]
    sim.tick()
    d = sim.step(v2)  # room again: the next new pod
    assert [c.revision_hash for c in d.create] == [new] and not d.delete
    assert [e.message for e in d.events] == [f"Scaled up replica set web-{new} from 1 to 2"]
    assert sim.history[-1]["revision"] == 2 and [r["revision"] for r in sim.history] == [1, 2]


def test_rollout_status_messages_follow_kubectl():
    dep = deployment(3)
    cases = [
        ({"observedGeneration": 1}, 2, "Waiting for deployment spec update to be observed..."),
        ({"replicas": 4, "updatedReplicas": 1}, None,
         'Waiting for deployment "web" rollout to finish: 1 out of 3 new replicas have been updated...'),
        ({"replicas": 4, "updatedReplicas": 3, "availableReplicas": 3}, None,
         'Waiting for deployment "web" rollout to finish: 1 old replicas are pending termination...'),
        ({"replicas": 3, "updatedReplicas": 3, "availableReplicas": 1}, None,
         'Waiting for deployment "web" rollout to finish: 1 of 3 updated replicas are available...'),
        ({"replicas": 3, "updatedReplicas": 3, "availableReplicas": 3, "observedGeneration": 2}, 2,
         'deployment "web" successfully rolled out'),
    ]
    for status, generation, message in cases:
        assert rollout_status(dep, status, generation)[1] == message
    with pytest.raises(RolloutError, match='deployment "web" exceeded its progress deadline'):
        rollout_status(dep, {"conditions": [{"type": "Progressing", "status": "False",
                                             "reason": "ProgressDeadlineExceeded"}]})


def test_progress_deadline_exceeded_when_new_pods_never_become_ready():
    v1 = deployment(2, progressDeadlineSeconds=30)
    sim = Sim()
    sim.converge(v1)
    v2 = deployment(2, image="broken:1", progressDeadlineSeconds=30)
    sim.never_ready.add(deployment_hash(v2))
    reasons = []
    for _ in range(40):
        d = sim.step(v2)
        reasons.append({c["type"]: c["reason"] for c in d.status["conditions"]}["Progressing"])
        sim.tick(2)
    assert reasons[0] == "NewReplicaSetCreated" and reasons[-1] == "ProgressDeadlineExceeded"
    assert len(sim.live()) == 3  # 2 old (never removed: no new pod is available) + 1 surge
    with pytest.raises(RolloutError):
        rollout_status(v2, sim.status)


def test_min_ready_seconds_delays_availability_and_asks_to_come_back():
    dep = deployment(1, minReadySeconds=10)
    h = deployment_hash(dep)
    p = OwnedPod("u1", "web-x", {HASH_LABEL: h}, phase="Running", ready=True,
                 ready_since=T0, created_at=T0 - 5, host="h1")
    d = reconcile_deployment(dep, [p], T0 + 4, rng=random.Random(0))
    assert d.status.get("availableReplicas", 0) == 0 and d.status["readyReplicas"] == 1
    assert d.requeue_after == pytest.approx(6, abs=0.01)
    d = reconcile_deployment(dep, [p], T0 + 11, rng=random.Random(0))
    assert d.status["availableReplicas"] == 1


# ---------------------------------------------------------------- Recreate and paused


def test_recreate_deletes_all_old_then_creates_once_they_are_gone():
    recreate = {"type": "Recreate"}
    sim = Sim(linger=True)
    v1 = deployment(3, strategy=recreate)
    sim.converge(v1)
    sim.forget_deleting()
    v2 = deployment(3, image="nginx:1.28", strategy=recreate)
    d = sim.step(v2)
    assert len(d.delete) == 3 and not d.create
    assert all(x.reason == "recreate: old revision" for x in d.delete)
    sim.tick()
    assert sim.step(v2).empty  # the old pods are still terminating
    sim.forget_deleting()
    d = sim.step(v2)
    assert len(d.create) == 3 and {c.revision_hash for c in d.create} == {deployment_hash(v2)}


def test_paused_deployment_scales_but_does_not_roll_out():
    sim = Sim()
    v1 = deployment(2)
    sim.converge(v1)
    old = deployment_hash(v1)
    paused = deployment(2, image="nginx:1.28", paused=True)
    d = sim.step(paused)
    assert d.empty
    assert {c["type"]: (c["status"], c["reason"]) for c in d.status["conditions"]}["Progressing"] == \
        ("Unknown", "DeploymentPaused")
    assert [r["hash"] for r in d.history] == [old]  # no new revision while paused
    d = sim.step(deployment(3, image="nginx:1.28", paused=True))
    assert [c.revision_hash for c in d.create] == [old]  # scaling uses the running revision
    sim.tick()
    resumed = deployment(3, image="nginx:1.28")
    d = sim.step(resumed)
    assert {c.revision_hash for c in d.create} == {deployment_hash(resumed)}
    sim.tick()
    sim.converge(resumed)
    assert sim.hashes() == [deployment_hash(resumed)] * 3


def test_created_paused_makes_no_pods():
    assert reconcile_deployment(deployment(2, paused=True), [], T0).empty


# ---------------------------------------------------------------- history and undo


def test_rollout_undo_returns_the_previous_template_and_renumbers_it():
    sim = Sim()
    v1, v2 = deployment(2), deployment(2, image="nginx:1.28")
    sim.converge(v1)
    sim.converge(v2)
    assert [r["revision"] for r in sim.history] == [1, 2]
    template = rollout_undo(sim.history)
    assert template == v1.template.raw
    assert rollout_undo(sim.history, 2) == v2.template.raw
    undone = deployment(2)  # the lead writes `template` into spec.template
    assert undone.template.raw == template
    sim.converge(undone)
    assert [(r["revision"], r["hash"]) for r in sim.history] == \
        [(2, deployment_hash(v2)), (3, deployment_hash(v1))]
    assert current_revision(sim.history, undone) == 3
    assert rollout_history(sim.history) == [(2, "<none>"), (3, "<none>")]
    with pytest.raises(RolloutError, match="unable to find specified revision 1 in history"):
        rollout_undo(sim.history, 1)
    with pytest.raises(RolloutError, match='no rollout history found for deployment "web"'):
        rollout_undo(sim.history[:1], name="web")


def test_revision_history_limit_drops_the_oldest_unused_revisions():
    sim = Sim()
    images = ["a:1", "a:2", "a:3", "a:4"]
    for image in images:
        sim.converge(deployment(1, image=image, revisionHistoryLimit=1))
    sim.step(deployment(1, image="a:4", revisionHistoryLimit=1))
    assert [r["revision"] for r in sim.history] == [3, 4]
    assert [r["template"]["spec"]["containers"][0]["image"] for r in sim.history] == ["a:3", "a:4"]
