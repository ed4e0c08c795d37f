"""reconcile_statefulset: ordinals in order (OrderedReady) or at once (Parallel), scale down
highest first, rolling update with partition, OnDelete, claims pinned to their host, and
at most one copy of an ordinal across host failure (lost: wait for fencing; lost and
fenced: move, leaving the claim behind). Table-driven, time and rng injected."""

from __future__ import annotations

import dataclasses
import itertools
import random

import pytest
import yaml

from orchestrator.manifests import parse_documents, validate_pod
from orchestrator.workloads.common import HostInfo, OwnedPod, from_store, to_store
from orchestrator.workloads.run import reconcile_workload
from orchestrator.workloads.statefulset import (
    HASH_LABEL,
    POD_INDEX_LABEL,
    POD_NAME_LABEL,
    ordinal_of,
    reconcile_statefulset,
    revision_name,
)
from orchestrator.workloads.views import headers, statefulset_row, workload_object

T0 = 1_700_000_000.0


def sts(replicas=3, image="app:1", policy=None, strategy=None, claims=("data",), **spec):
    container = {"name": "app", "image": image,
                 "volumeMounts": [{"name": c, "mountPath": f"/{c}"} for c in claims]}
    body = {"serviceName": "web", "replicas": replicas,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}},
                         "spec": {"containers": [container], **spec.pop("pod", {})}},
            "volumeClaimTemplates": [{"metadata": {"name": c},
                                      "spec": {"accessModes": ["ReadWriteOnce"],
                                               "resources": {"requests": {"storage": "1Gi"}}}}
                                     for c in claims]}
    if policy:
        body["podManagementPolicy"] = policy
    if strategy:
        body["updateStrategy"] = strategy
    body.update(spec)
    text = yaml.safe_dump({"apiVersion": "apps/v1", "kind": "StatefulSet",
                           "metadata": {"name": "web", "namespace": "db"}, "spec": body})
    return parse_documents(text, "web.yaml")[0].obj


def partitioned(n, **kw):
    return sts(strategy={"type": "RollingUpdate", "rollingUpdate": {"partition": n}}, **kw)


class Sim:
    """The store and the hosts around the controller: creates become Pending pods, a
    scheduler binds unpinned ones (to the host with fewest pods, not lost), pods become
    Running and Ready a tick later, deleted pods go away a tick later unless their host
    is lost (then they stay, being deleted, as in the store)."""

    def __init__(self, hosts=("h1", "h2", "h3")):
        self.t = T0
        self.rng = random.Random(0)
        self.hosts = {h: HostInfo(h) for h in hosts}
        self.pods: dict[str, OwnedPod] = {}
        self.stored: dict | None = None
        self.log: list[tuple[str, str]] = []
        self.uids = (f"uid-{i}" for i in itertools.count())

    def step(self, obj):
        prev, history = from_store(self.stored)
        d = reconcile_statefulset(obj, list(self.pods.values()), list(self.hosts.values()),
                                  self.t, history=history, prev_status=prev,
                                  state=(self.stored or {}).get("podctlControllerState"),
                                  rng=self.rng)
        for c in d.create:  # never beside a copy that may still run
            for p in self.pods.values():
                if p.name == c.name:
                    h = self.hosts.get(p.host)
                    assert p.deleting and h is not None and h.lost and h.fenced, (c.name, p)
        for x in d.delete:
            self.pods[x.uid] = dataclasses.replace(self.pods[x.uid], deleting=True)
            self.log.append(("delete", x.name))
        for c in d.create:
            validate_pod(c.manifest, "sim")
            uid = next(self.uids)
            self.pods[uid] = OwnedPod(uid, c.name, c.manifest["metadata"]["labels"],
                                      created_at=self.t, host=c.manifest["spec"].get("nodeName"))
            self.log.append(("create", c.name))
        self.stored = to_store(d)
        return d

    def tick(self, dt=1.0):
        self.t += dt
        for uid, p in list(self.pods.items()):
            h = self.hosts.get(p.host)
            if p.deleting:
                if h is None or not h.lost:
                    del self.pods[uid]
            elif p.host is None:
                free = [n for n, h in sorted(self.hosts.items()) if not h.lost]
                load = {n: sum(q.host == n for q in self.pods.values()) for n in free}
                self.pods[uid] = dataclasses.replace(p, host=min(free, key=lambda n: load[n]))
            elif p.phase == "Pending" and h is not None and not h.lost:
                self.pods[uid] = dataclasses.replace(p, phase="Running", ready=True,
                                                     ready_since=self.t)

    def converge(self, obj, steps=60):
        for _ in range(steps):
            settled = all(p.ready and not p.deleting for p in self.pods.values()
                          if not (p.deleting and self.hosts.get(p.host, HostInfo("")).lost))
            d = self.step(obj)
            if d.empty and settled:
                return d
            self.tick()
        raise AssertionError(f"did not converge: {self.pods}")

    def live(self):
        return {p.name: p for p in self.pods.values() if not p.deleting}

    def set(self, name, **changes):
        uid = next(u for u, p in self.pods.items() if p.name == name and not p.deleting)
        self.pods[uid] = dataclasses.replace(self.pods[uid], **changes)

    def host(self, name, **flags):
        self.hosts[name] = dataclasses.replace(self.hosts[name], **flags)

    @property
    def claims(self):
        return self.stored["podctlControllerState"]["claims"]


def created(log):
    return [n for verb, n in log if verb == "create"]


def deleted(log):
    return [n for verb, n in log if verb == "delete"]


# ---------------------------------------------------------------- names and pods


def test_pods_are_named_by_ordinal_with_kubernetes_labels_and_claim_volumes():
    obj = sts()
    d = reconcile_statefulset(obj, [], [HostInfo("h1")], T0)
    (c,) = d.create
    assert c.name == "web-0" and c.host is None and "nodeName" not in c.manifest["spec"]
    rev = revision_name(obj)
    assert rev.startswith("web-") and len(rev) == len("web-") + 10
    assert c.manifest["metadata"]["labels"] == {"app": "web", HASH_LABEL: rev,
                                                POD_NAME_LABEL: "web-0", POD_INDEX_LABEL: "0"}
    assert c.manifest["spec"]["volumes"] == [
        {"name": "data", "hostPath": {"path": "/var/lib/podctl/claims/db/data-web-0",
                                      "type": "DirectoryOrCreate"}}]
    pod = validate_pod(c.manifest, "x")
    assert pod.namespace == "db" and pod.spec.volumes[0].kind == "hostPath"
    assert [e.message for e in d.events] == ["create Pod web-0 in StatefulSet web successful"]


def test_a_claim_replaces_the_template_volume_of_the_same_name():
    obj = sts(pod={"volumes": [{"name": "data", "emptyDir": {}}, {"name": "tmp", "emptyDir": {}}]})
    (c,) = reconcile_statefulset(obj, [], [], T0).create
    assert [v["name"] for v in c.manifest["spec"]["volumes"]] == ["data", "tmp"]
    assert "hostPath" in c.manifest["spec"]["volumes"][0]


@pytest.mark.parametrize("name, ordinal", [("web-0", 0), ("web-12", 12), ("web-012", None),
                                           ("web-", None), ("web-x", None), ("webx-1", None),
                                           ("web-1-2", None), ("web-٣", None)])
def test_ordinal_of(name, ordinal):
    assert ordinal_of(sts(), name) == ordinal


def test_a_pod_without_an_ordinal_is_deleted():
    stray = OwnedPod("u", "web-x", host="h1", phase="Running", ready=True)
    d = reconcile_statefulset(sts(replicas=0), [stray], [HostInfo("h1")], T0)
    assert [x.name for x in d.delete] == ["web-x"]


# ---------------------------------------------------------------- ordering and scaling

SCALING = [
    # id, policy, replicas before, after, the creates/deletes in order, max at once
    ("OrderedReady up", None, 0, 3, ["+web-0", "+web-1", "+web-2"], 1),
    ("Parallel up", "Parallel", 0, 3, ["+web-0", "+web-1", "+web-2"], 3),
    ("OrderedReady down", None, 4, 1, ["-web-3", "-web-2", "-web-1"], 1),
    ("Parallel down", "Parallel", 4, 1, ["-web-3", "-web-2", "-web-1"], 3),
]


@pytest.mark.parametrize("policy, before, after, expected, most", [c[1:] for c in SCALING],
                         ids=[c[0] for c in SCALING])
def test_scaling(policy, before, after, expected, most):
    sim = Sim()
    if before:
        sim.converge(sts(before, policy=policy))
    sim.log.clear()
    widest = 0
    for _ in range(60):
        d = sim.step(sts(after, policy=policy))
        widest = max(widest, len(d.create) + len(d.delete))
        sim.tick()
        if d.empty and len(sim.pods) == after and all(p.ready for p in sim.pods.values()):
            break
    assert [("+" if v == "create" else "-") + n for v, n in sim.log] == expected
    assert widest == most
    assert sorted(sim.live()) == [f"web-{i}" for i in range(after)]


def test_ordered_ready_waits_for_running_and_ready():
    sim = Sim()
    obj = sts(3)
    assert [c.name for c in sim.step(obj).create] == ["web-0"]
    assert sim.step(obj).empty  # web-0 Pending
    sim.tick()  # bound, still Pending
    assert sim.step(obj).empty
    sim.set("web-0", phase="Running")  # not ready
    assert sim.step(obj).empty
    sim.set("web-0", ready=True, ready_since=sim.t)
    assert [c.name for c in sim.step(obj).create] == ["web-1"]


def test_min_ready_seconds_delays_the_next_ordinal_and_requeues():
    sim = Sim()
    obj = sts(2, minReadySeconds=10)
    sim.step(obj)
    sim.tick()
    sim.tick()  # web-0 bound, then ready at T0+2
    d = sim.step(obj)
    assert d.empty and d.requeue_after == pytest.approx(10.001)
    sim.t += 10.5
    assert [c.name for c in sim.step(obj).create] == ["web-1"]


def test_scale_down_waits_while_a_lower_ordinal_is_unhealthy():
    sim = Sim()
    sim.converge(sts(3))
    sim.set("web-0", ready=False)
    assert sim.step(sts(1)).empty  # OrderedReady: nothing while web-0 is not ready
    assert not sim.step(sts(1, policy="Parallel")).empty


def test_a_failed_pod_is_deleted_then_recreated_under_its_name():
    sim = Sim()
    sim.converge(sts(2))
    sim.set("web-0", phase="Failed", ready=False)
    d = sim.step(sts(2))
    assert [x.name for x in d.delete] == ["web-0"] and not d.create
    sim.tick()
    assert [c.name for c in sim.step(sts(2)).create] == ["web-0"]


# ---------------------------------------------------------------- updates


def test_rolling_update_goes_from_the_highest_ordinal_down_one_at_a_time():
    sim = Sim()
    sim.converge(sts(3))
    old = revision_name(sts(3))
    sim.log.clear()
    new = sts(3, image="app:2")
    d = sim.step(new)
    assert [x.name for x in d.delete] == ["web-2"] and not d.create
    assert d.status["currentRevision"] == old and d.status["updateRevision"] == revision_name(new)
    sim.tick()
    sim.step(new)  # web-2 re-created: wait for it
    assert sim.step(new).empty
    sim.converge(new)
    assert sim.log == [("delete", "web-2"), ("create", "web-2"), ("delete", "web-1"),
                       ("create", "web-1"), ("delete", "web-0"), ("create", "web-0")]
    d = sim.step(new)
    assert d.status["currentRevision"] == revision_name(new)
    assert d.status["updatedReplicas"] == d.status["currentReplicas"] == 3
    assert all(p.labels and dict(p.labels)[HASH_LABEL] == revision_name(new)
               for p in sim.pods.values())


def test_partition_keeps_lower_ordinals_on_the_current_revision():
    sim = Sim()
    sim.converge(partitioned(2))
    old = revision_name(sts())
    sim.log.clear()
    new = partitioned(2, image="app:2")
    d = sim.converge(new)
    assert sim.log == [("delete", "web-2"), ("create", "web-2")]
    assert d.status["currentRevision"] == old and d.status["updatedReplicas"] == 1
    # web-0 lost and re-created: it comes back at the current (old) revision
    sim.set("web-0", phase="Failed")
    sim.converge(new)
    assert dict(sim.live()["web-0"].labels)[HASH_LABEL] == old
    sim.log.clear()
    sim.converge(partitioned(0, image="app:2"))
    assert deleted(sim.log) == ["web-1", "web-0"]
    assert sim.step(partitioned(0, image="app:2")).status["currentRevision"] == revision_name(new)


def test_on_delete_replaces_only_pods_someone_deleted():
    ondelete = {"type": "OnDelete"}
    sim = Sim()
    sim.converge(sts(2, strategy=ondelete))
    new = sts(2, image="app:2", strategy=ondelete)
    assert sim.step(new).empty
    sim.set("web-0", deleting=True)  # kubectl delete pod web-0
    sim.tick()
    d = sim.step(new)
    assert [c.name for c in d.create] == ["web-0"]
    assert d.create[0].revision_hash == revision_name(new)
    assert dict(sim.live()["web-1"].labels)[HASH_LABEL] == revision_name(sts(2))


# ---------------------------------------------------------------- claims


def test_a_claim_pins_its_ordinal_to_the_host_its_first_pod_was_bound_to():
    sim = Sim()
    sim.converge(sts(3))
    hosts = {n: p.host for n, p in sim.live().items()}
    assert sim.claims == {f"data-web-{i}": hosts[f"web-{i}"] for i in range(3)}
    d = sim.step(sts(3))
    assert not [e for e in d.events if "Claim" in e.message]  # announced once
    sim.set("web-1", deleting=True)
    sim.tick()
    (c,) = sim.step(sts(3)).create
    assert c.manifest["spec"]["nodeName"] == hosts["web-1"] == c.host
    # scaled down and up again: the same host, the same directory
    sim.converge(sts(1))
    assert set(sim.claims) == {"data-web-0", "data-web-1", "data-web-2"}  # Retain
    sim.log.clear()
    sim.converge(sts(3))
    assert {n: p.host for n, p in sim.live().items()} == hosts


def test_claims_are_announced_with_their_directory():
    sim = Sim(["h1"])
    sim.step(sts(1))
    sim.tick()
    d = sim.step(sts(1))
    assert [e.message for e in d.events] == [
        ("create Claim data-web-0 Pod web-0 in StatefulSet web success "
        "(directory /var/lib/podctl/claims/db/data-web-0 on host h1)")]


# ---------------------------------------------------------------- host failure

FENCE_NOTE = "waiting for host {h} to be fenced: `podctl fence {h}`"


@pytest.mark.parametrize("deleting", [False, True], ids=["pod kept", "pod being deleted"])
def test_a_pod_on_a_lost_host_is_not_replaced_until_the_host_is_fenced(deleting):
    sim = Sim()
    sim.converge(sts(3))
    h = sim.live()["web-1"].host
    sim.host(h, lost=True, ready=False)
    sim.set("web-1", phase="Unknown", ready=False, deleting=deleting)
    for _ in range(3):
        d = sim.step(sts(3))
        sim.tick()
        assert d.empty
        assert any(FENCE_NOTE.format(h=h) in n and "web-1" in n for n in d.notes)
    assert d.status["readyReplicas"] == 2
    sim.host(h, fenced=True)
    d = sim.step(sts(3))
    if not deleting:  # deleted in the store first, re-created the step after
        assert [x.name for x in d.delete] == ["web-1"] and not d.create
        sim.tick()
        d = sim.step(sts(3))
    assert [c.name for c in d.create] == ["web-1"]


def test_the_fence_wait_is_announced_once():
    sim = Sim()
    sim.converge(sts(2))
    h = sim.live()["web-0"].host
    sim.host(h, lost=True)
    first = sim.step(sts(2))
    again = sim.step(sts(2))
    assert [e.reason for e in first.events] == ["WaitingForFence"]
    assert FENCE_NOTE.format(h=h) in first.events[0].message
    assert again.events == [] and again.notes


def test_ordered_ready_does_not_go_past_an_ordinal_on_a_lost_host():
    sim = Sim()
    sim.converge(sts(2))
    sim.host(sim.live()["web-1"].host, lost=True)
    d = sim.step(sts(3))
    assert d.empty and d.notes


def test_a_lost_and_fenced_host_moves_the_pod_and_leaves_its_claim_behind():
    sim = Sim()
    sim.converge(sts(3))
    h = sim.live()["web-1"].host
    sim.host(h, lost=True, fenced=True, ready=False)
    d = sim.step(sts(3))
    assert [x.name for x in d.delete] == ["web-1"] and not d.create  # first deleted in the store
    assert "lost and fenced" in d.delete[0].reason
    sim.tick()  # on a lost host the deleted pod stays in the store
    d = sim.step(sts(3))
    (c,) = d.create
    assert c.name == "web-1" and "nodeName" not in c.manifest["spec"]
    message = f"claim data-web-1 on host {h} is left behind (lost unless {h} returns)"
    assert any(message in e.message and e.reason == "ClaimLeftBehind" for e in d.events)
    assert any(message in n for n in d.notes)
    assert "data-web-1" not in sim.claims
    sim.converge(sts(3))
    moved = sim.live()["web-1"].host
    assert moved != h and sim.claims["data-web-1"] == moved


def test_a_claimless_pod_moves_without_a_claim_note():
    sim = Sim()
    sim.converge(sts(2, claims=()))
    h = sim.live()["web-0"].host
    sim.host(h, lost=True, fenced=True)
    sim.step(sts(2, claims=()))
    sim.tick()
    d = sim.step(sts(2, claims=()))
    assert [c.name for c in d.create] == ["web-0"] and not d.notes


def test_a_claim_on_a_lost_host_holds_back_its_pod_even_when_the_pod_is_gone():
    sim = Sim()
    sim.converge(sts(2))
    h = sim.live()["web-1"].host
    uid = next(u for u, p in sim.pods.items() if p.name == "web-1")
    del sim.pods[uid]  # forgotten from the store (e.g. deleted by force)
    sim.host(h, lost=True)
    d = sim.step(sts(2))
    assert d.empty and any("its claim data-web-1 is on lost host" in n for n in d.notes)
    sim.host(h, lost=False)  # it came back: the pod returns to its data
    (c,) = sim.step(sts(2)).create
    assert c.manifest["spec"]["nodeName"] == h


def test_a_host_missing_from_the_inventory_counts_as_lost_and_not_fenced():
    sim = Sim()
    sim.converge(sts(2))
    h = sim.live()["web-0"].host
    del sim.hosts[h]
    d = sim.step(sts(2))
    assert d.empty
    assert any(f"host {h} to be fenced: it is not in the inventory" in n for n in d.notes)


def test_without_a_host_list_nothing_counts_as_lost():
    pods = [OwnedPod("u0", "web-0", host="gone", phase="Running", ready=True)]
    d = reconcile_statefulset(sts(2), pods, [], T0)
    assert [c.name for c in d.create] == ["web-1"] and not d.notes


# ---------------------------------------------------------------- status, store, views


def test_status_is_shaped_like_kubernetes():
    sim = Sim()
    sim.converge(sts(3))
    d = sim.step(sts(3))
    rev = revision_name(sts(3))
    assert d.status == {"replicas": 3, "readyReplicas": 3, "currentReplicas": 3,
                        "updatedReplicas": 3, "currentRevision": rev, "updateRevision": rev,
                        "collisionCount": 0, "availableReplicas": 3}


def test_the_private_state_round_trips_through_the_store_and_is_never_shown():
    obj = sts(1)
    pod = OwnedPod("u0", "web-0", host="h1", phase="Running", ready=True,
                   labels={HASH_LABEL: revision_name(obj)})
    d = reconcile_workload(obj, [pod], T0, uid="x", generation=4, hosts=[HostInfo("h1")])
    stored = to_store(d)
    assert stored["podctlControllerState"]["claims"] == {"data-web-0": "h1"}
    again = reconcile_workload(obj, [pod], T0 + 1, uid="x", stored_status=stored,
                               generation=4, hosts=[HostInfo("h1")])
    assert again.state["claims"] == {"data-web-0": "h1"} and again.events == []
    shown = workload_object({"apiVersion": "apps/v1", "kind": "StatefulSet",
                             "metadata": {"name": "web"}, "spec": {}},
                            uid="x", created_at=T0, generation=4, status=stored)
    assert shown["status"]["observedGeneration"] == 4
    assert not [k for k in shown["status"] if k.startswith("podctl")]


def test_get_statefulsets_row():
    obj = sts(3)
    assert headers("StatefulSet") == ["NAME", "READY", "AGE"]
    assert headers("StatefulSet", wide=True) == ["NAME", "READY", "AGE", "CONTAINERS", "IMAGES"]
    assert statefulset_row(obj, {"readyReplicas": 2}, created_at=T0, now=T0 + 30) == \
        ["web", "2/3", "30s"]
    assert statefulset_row(obj, {}, created_at=T0, now=T0 + 30, wide=True) == \
        ["web", "0/3", "30s", "app", "app:1"]
