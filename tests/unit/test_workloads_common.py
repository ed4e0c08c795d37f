"""The shared pieces: OwnedPod from a stored pod + probe, history records, host taints."""

from __future__ import annotations

import pytest

from orchestrator.manifests import validate_pod
from orchestrator.model import Taint
from orchestrator.probe import HostSnapshot, ObservedPod
from orchestrator.store import PodRow
from orchestrator.views import pod_object
from orchestrator.workloads.common import (
    HISTORY_KEY,
    HostInfo,
    OwnedPod,
    WorkloadDecision,
    from_store,
    owned_pod_from_k8s,
    parse_time,
    record_revision,
    rfc3339,
    to_store,
    trim_history,
)
from orchestrator.workloads.specs import Toleration, parse_tolerations, untolerated

T0 = 1_700_000_000.0
DOC = {"apiVersion": "v1", "kind": "Pod",
       "metadata": {"name": "web-4895c9bb95-abcde", "labels": {"app": "web", "pod-template-hash": "4895c9bb95"}},
       "spec": {"restartPolicy": "Never",
                "containers": [{"name": "a", "image": "i:1"}, {"name": "b", "image": "i:1"}]}}


def row(node="h1", deleting=None):
    return PodRow("u1", "default", DOC["metadata"]["name"], DOC, "Deployment", "web", "d-uid", node,
                  "10.244.0.2", T0, deleting, None, None)


def snap(containers, state="alive"):
    return HostSnapshot("h1", "ok", pods={"u1": ObservedPod("u1", state, {"containers": containers},
                                                              {"containers": ["a", "b"]})})


RUNNING = {"running": {"startedAt": "2023-11-14T22:13:25Z"}}
LATER = {"running": {"startedAt": "2023-11-14T22:13:30Z"}}


def test_owned_pod_from_a_running_pod():
    containers = [{"name": "a", "restartCount": 2, "state": RUNNING},
                  {"name": "b", "restartCount": 0, "state": LATER}]
    obj = pod_object(row(), validate_pod(DOC, "x"), snap(containers), "192.0.2.1")
    p = owned_pod_from_k8s(obj, uid="u1", created_at=T0, host="h1", deleting=False)
    assert (p.phase, p.ready, p.ready_since, p.restart_count) == ("Running", True, T0 + 10, 2)
    assert p.hash_label("pod-template-hash") == "4895c9bb95" and p.active


def test_owned_pod_from_a_failed_pod_and_from_nothing_observed():
    done = {"terminated": {"exitCode": 0, "reason": "Completed", "finishedAt": "2023-11-14T22:14:00Z"}}
    crash = {"terminated": {"exitCode": 3, "reason": "Error", "finishedAt": "2023-11-14T22:14:05Z"}}
    obj = pod_object(row(), validate_pod(DOC, "x"),
                     snap([{"name": "a", "state": done}, {"name": "b", "state": crash}], "finished"), None)
    p = owned_pod_from_k8s(obj, uid="u1", created_at=T0, host="h1", deleting=False)
    assert (p.phase, p.ready, p.exit_codes, p.reasons, p.finished_at) == \
        ("Failed", False, (0, 3), ("Completed", "Error"), T0 + 45)
    pending = pod_object(row(node=None), validate_pod(DOC, "x"), None, None)
    p = owned_pod_from_k8s(pending, uid="u1", created_at=T0, host=None, deleting=False)
    assert (p.phase, p.ready, p.host) == ("Pending", False, None)
    unreachable = pod_object(row(), validate_pod(DOC, "x"), HostSnapshot("h1", "unreachable"), None)
    p = owned_pod_from_k8s(unreachable, uid="u1", created_at=T0, host="h1", deleting=True)
    assert (p.phase, p.ready, p.active) == ("Unknown", False, False)


def test_owned_pod_checks_its_phase():
    with pytest.raises(ValueError):
        OwnedPod("u", "n", phase="Crashing")


def test_times_round_trip():
    assert rfc3339(T0) == "2023-11-14T22:13:20Z" and parse_time(rfc3339(T0)) == T0
    assert parse_time("2023-11-14T22:13:20.5+00:00") == T0 + 0.5
    assert parse_time(None) is None and parse_time("yesterday") is None


def test_revisions_are_numbered_like_replica_sets():
    h, r, added = record_revision([], "aaa", {"t": 1}, T0)
    assert (r, added, [x["revision"] for x in h]) == (1, True, [1])
    h, r, added = record_revision(h, "bbb", {"t": 2}, T0)
    assert (r, added) == (2, True)
    assert record_revision(h, "bbb", {"t": 2}, T0)[1:] == (2, False)  # unchanged
    h, r, added = record_revision(h, "aaa", {"t": 1}, T0)  # back to the first: renumbered
    assert (r, added, [(x["hash"], x["revision"]) for x in h]) == (3, False, [("bbb", 2), ("aaa", 3)])
    assert record_revision(h, "ccc", {}, T0, create=False)[1:] == (None, False)


@pytest.mark.parametrize("limit, in_use, kept", [
    (10, set(), ["a", "b", "c", "d"]),
    (1, set(), ["c", "d"]),
    (0, set(), ["d"]),
    (0, {"a"}, ["a", "d"]),  # a revision with pods stays
    (1, {"b"}, ["b", "d"]),
])
def test_history_trimming(limit, in_use, kept):
    history = [{"revision": i + 1, "hash": h, "template": {}} for i, h in enumerate("abcd")]
    assert [r["hash"] for r in trim_history(history, "d", in_use, limit)] == kept


def test_host_info_taints_and_parsed_tolerations():
    h = HostInfo("h", {"a": "b"}, (Taint("x", "", "NoSchedule"),), ready=False, unschedulable=True)
    assert h.labels == (("a", "b"),)
    assert [(t.key, t.effect) for t in h.effective_taints()] == [
        ("x", "NoSchedule"), ("node.kubernetes.io/not-ready", "NoSchedule"),
        ("node.kubernetes.io/not-ready", "NoExecute"), ("node.kubernetes.io/unschedulable", "NoSchedule")]
    tolerations = parse_tolerations([{"key": "x", "operator": "Exists"}, "junk",
                                     {"key": "node.kubernetes.io/not-ready", "operator": "Exists"}])
    assert tolerations[0] == Toleration("x", "Exists")
    assert untolerated(h.effective_taints(), tolerations) == \
        Taint("node.kubernetes.io/unschedulable", "", "NoSchedule")
    assert parse_tolerations(None) == ()


def test_status_and_history_share_the_store_column():
    d = WorkloadDecision(status={"replicas": 2}, history=[{"revision": 1, "hash": "h"}])
    stored = to_store(d)
    assert stored == {"replicas": 2, HISTORY_KEY: [{"revision": 1, "hash": "h"}]}
    assert from_store(stored) == ({"replicas": 2}, [{"revision": 1, "hash": "h"}])
    assert from_store(None) == ({}, [])
    assert to_store(WorkloadDecision(status={"active": 1})) == {"active": 1}


def test_one_entry_point_per_stored_object():
    import random

    from orchestrator.workloads.run import reconcile_workload, workload_from_doc

    doc = {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "pi"},
           "spec": {"template": {"spec": {"restartPolicy": "Never",
                                          "containers": [{"name": "pi", "image": "perl:5"}]}}}}
    job = workload_from_doc(doc, "state.db Job default/pi")
    d = reconcile_workload(job, [], T0, uid="u", stored_status=None, generation=1,
                           rng=random.Random(0))
    assert len(d.create) == 1 and d.status["observedGeneration"] == 1
    stored = to_store(d)
    again = reconcile_workload(job, [], T0 + 5, uid="u", stored_status=stored, generation=1)
    assert again.status["startTime"] == d.status["startTime"]
    with pytest.raises(TypeError):
        workload_from_doc({**DOC}, "x")
