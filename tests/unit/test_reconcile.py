"""reconcile(desired, observed) -> Plan, and the pod phase rules: table-driven, no I/O."""

from __future__ import annotations

import pytest

from orchestrator.plan import Action
from orchestrator.probe import HostSnapshot, ObservedPod, parse_probe, parse_results
from orchestrator.reconcile import DesiredPod, reconcile
from orchestrator.status import pod_phase

U1, U2, U3 = ("11111111-1111-4111-8111-111111111111", "22222222-2222-4222-8222-222222222222",
              "33333333-3333-4333-8333-333333333333")
IMG = "ab" * 32


def snap(host, pods=(), images=(IMG,), status="ok"):
    return HostSnapshot(host, status, {}, frozenset(images),
                        {uid: ObservedPod(uid, state, {}, {}) for uid, state in pods})


def verbs(plan):
    return [(a.verb, a.host, a.uid or a.digest) for a in plan.actions]


CASES = [
    ("new pod is created",
     [DesiredPod(U1, "default/a", "n1", digests=(IMG,))], {"n1": snap("n1")},
     [("create", "n1", U1)]),
    ("running pod: nothing to do",
     [DesiredPod(U1, "default/a", "n1", digests=(IMG,))], {"n1": snap("n1", [(U1, "alive")])},
     []),
    ("finished pod is left alone",
     [DesiredPod(U1, "default/a", "n1", digests=(IMG,))], {"n1": snap("n1", [(U1, "finished")])},
     []),
    ("dead supervisor: recreate",
     [DesiredPod(U1, "default/a", "n1", digests=(IMG,))], {"n1": snap("n1", [(U1, "dead")])},
     [("create", "n1", U1)]),
    ("image missing on host: push first, once for two pods",
     [DesiredPod(U1, "default/a", "n1", digests=(IMG,)), DesiredPod(U2, "default/b", "n1", digests=(IMG,))],
     {"n1": snap("n1", images=())},
     [("push-image", "n1", IMG), ("create", "n1", U1), ("create", "n1", U2)]),
    ("image missing in the store: nothing (pod shows ErrImageNeverPull)",
     [DesiredPod(U1, "default/a", "n1", digests=None)], {"n1": snap("n1")},
     []),
    ("unscheduled pod: nothing",
     [DesiredPod(U1, "default/a", None, digests=(IMG,))], {"n1": snap("n1")},
     []),
    ("unreachable host: its pods are left as they are",
     [DesiredPod(U1, "default/a", "n1", digests=(IMG,))], {"n1": snap("n1", status="unreachable")},
     []),
    ("deleted pod still on its host: delete",
     [DesiredPod(U1, "default/a", "n1", deleting=True)], {"n1": snap("n1", [(U1, "alive")])},
     [("delete", "n1", U1)]),
    ("deleted pod gone from its host: forget",
     [DesiredPod(U1, "default/a", "n1", deleting=True)], {"n1": snap("n1")},
     [("forget", None, U1)]),
    ("deleted pod on an unreachable host: wait",
     [DesiredPod(U1, "default/a", "n1", deleting=True)], {"n1": snap("n1", status="unreachable")},
     []),
    ("orphans are deleted, and come first in the plan",
     [DesiredPod(U1, "default/a", "n1", digests=(IMG,))],
     {"n1": snap("n1"), "n2": snap("n2", [(U3, "alive")])},
     [("delete", "n2", U3), ("create", "n1", U1)]),
    ("a copy on a host the pod is no longer bound to is deleted",
     [DesiredPod(U1, "default/a", "n2", digests=(IMG,))],
     {"n1": snap("n1", [(U1, "alive")]), "n2": snap("n2")},
     [("delete", "n1", U1), ("create", "n2", U1)]),
]


@pytest.mark.parametrize("name,desired,observed,expected", CASES, ids=[c[0] for c in CASES])
def test_reconcile_buckets(name, desired, observed, expected):
    plan = reconcile(desired, observed)
    assert verbs(plan) == expected
    assert plan.empty == (not [e for e in expected if e[0] != "forget"])


def test_reconcile_is_deterministic_and_notes_unreachable_hosts():
    desired = [DesiredPod(U2, "default/b", "n2", digests=(IMG,)), DesiredPod(U1, "default/a", "n1", digests=(IMG,))]
    observed = {"n2": snap("n2"), "n1": snap("n1"), "n3": snap("n3", status="unknown")}
    a = reconcile(desired, observed)
    b = reconcile(list(reversed(desired)), dict(reversed(list(observed.items()))))
    assert a == b
    assert any("n3" in n for n in a.notes)
    assert a.summary() == "2 to create"


def test_empty_plan_says_so():
    plan = reconcile([], {"n1": snap("n1")})
    assert plan.empty and plan.summary() == "nothing to do"
    assert Action("create", "n1", U1, "default/a", "new").describe() == "create default/a on n1 (new)"


def c(name, state, restarts=0):
    return {"name": name, "restartCount": restarts, "state": state, "lastState": {}}


RUN = {"running": {"startedAt": "t"}}
OK = {"terminated": {"exitCode": 0, "reason": "Completed"}}
BAD = {"terminated": {"exitCode": 2, "reason": "Error"}}
BACKOFF = {"waiting": {"reason": "CrashLoopBackOff"}}


def observed(state, *containers, names=None):
    meta = {"containers": names or [x["name"] for x in containers]}
    return ObservedPod(U1, state, {"containers": list(containers)}, meta)


PHASES = [
    ("not bound", None, "Always", False, None, ("Pending", "Unschedulable")),
    ("host unreachable", None, "Always", True, False, ("Unknown", "NodeUnreachable")),
    ("not seen yet", None, "Always", True, True, ("Pending", "ContainerCreating")),
    ("one of two containers reported", observed("alive", c("a", RUN), names=["a", "b"]), "Always", True, True,
     ("Pending", "ContainerCreating")),
    ("all running", observed("alive", c("a", RUN), c("b", RUN)), "Always", True, True, ("Running", "")),
    ("crash looping is still Running", observed("alive", c("a", BACKOFF, 3)), "Always", True, True, ("Running", "")),
    ("Never: all done, one failed", observed("finished", c("a", OK), c("b", BAD)), "Never", True, True, ("Failed", "")),
    ("Never: all succeeded", observed("finished", c("a", OK)), "Never", True, True, ("Succeeded", "")),
    ("OnFailure: succeeded", observed("finished", c("a", OK)), "OnFailure", True, True, ("Succeeded", "")),
    ("supervisor lost", observed("dead", c("a", RUN)), "Always", True, True, ("Unknown", "SupervisorLost")),
]


@pytest.mark.parametrize("name,obs,policy,bound,reachable,expected", PHASES, ids=[p[0] for p in PHASES])
def test_pod_phase(name, obs, policy, bound, reachable, expected):
    assert pod_phase(obs, policy, bound, reachable) == expected


def test_probe_parsing_ignores_noise_and_requires_the_end_marker():
    out = (b"Welcome to the host!\n@@podctl fact cpus 4\n@@podctl image " + IMG.encode() + b"\n"
           b'@@podctl pod ' + U1.encode() + b' alive {"containers":[]} {"name":"a b"}\n@@podctl end\n')
    s = parse_probe("n1", out)
    assert s.reachable and s.facts["cpus"] == "4" and IMG in s.images
    assert s.pods[U1].meta == {"name": "a b"}
    cut = parse_probe("n1", out.replace(b"@@podctl end\n", b""))
    assert cut.status == "unknown" and not cut.pods


def test_batch_results_parsing():
    out = (f"@@podctl error {U1} line 3: mount\n@@podctl result {U1} 1\n"
           f"@@podctl created {U2}\n@@podctl result {U2} 0\n").encode()
    r = parse_results(out)
    assert not r[U1].ok and r[U1].rc == 1 and r[U1].events == ("error line 3: mount",)
    assert r[U2].ok and U3 not in r
