"""reconcile_job: parallelism, completions, backoffLimit, activeDeadlineSeconds, conditions.
Table-driven; time and randomness injected; a small simulator runs the pods."""

from __future__ import annotations

import random
import re

import pytest
import yaml

from orchestrator.manifests import parse_documents, validate_pod
from orchestrator.workloads.common import OwnedPod
from orchestrator.workloads.job import finished, job_selector, reconcile_job

UID = "0b5e5c7e-1111-2222-3333-444455556666"
T0 = 1_700_000_000.0


def job(restart="Never", **spec):
    body = {"template": {"metadata": {"labels": {"app": "pi"}},
                         "spec": {"restartPolicy": restart,
                                  "containers": [{"name": "pi", "image": "perl:5"}]}}}
    body.update(spec)
    text = yaml.safe_dump({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "pi"},
                           "spec": body})
    return parse_documents(text, "pi.yaml")[0].obj


class Sim:
    """Pods run for `run_for` seconds, then end as `outcome(n)` says for the n-th pod."""

    def __init__(self, outcome=lambda n: "Succeeded", run_for=1.0):
        self.t = T0
        self.rng = random.Random(0)
        self.pods: dict[str, OwnedPod] = {}
        self.status: dict | None = None
        self.outcome = outcome
        self.run_for = run_for
        self.created = 0  # pods created so far; the n-th has uid "uid-n"
        self.max_active = 0

    def step(self, obj):
        d = reconcile_job(obj, list(self.pods.values()), self.t, uid=UID, prev_status=self.status,
                          rng=self.rng)
        for x in d.delete:
            p = self.pods[x.uid]
            self.pods[x.uid] = OwnedPod(**{**p.__dict__, "deleting": True})
        for c in d.create:
            validate_pod(c.manifest, "sim")
            uid = f"uid-{self.created}"
            self.pods[uid] = OwnedPod(uid, c.name, c.manifest["metadata"]["labels"],
                                      phase="Running", ready=True, created_at=self.t, host="h1")
            self.created += 1
        self.status = d.status
        self.max_active = max(self.max_active, sum(p.active for p in self.pods.values()))
        return d

    def tick(self, dt=1.0):
        self.t += dt
        for uid, p in list(self.pods.items()):
            if p.deleting:
                del self.pods[uid]
            elif p.phase == "Running" and p.created_at + self.run_for <= self.t:
                phase = self.outcome(int(uid.removeprefix("uid-")))
                self.pods[uid] = OwnedPod(**{**p.__dict__, "phase": phase, "ready": False,
                                             "finished_at": p.created_at + self.run_for})

    def run(self, obj, steps=200, dt=1.0):
        for _ in range(steps):
            d = self.step(obj)
            if finished(self.status):
                return d
            self.tick(dt)
        raise AssertionError("job did not finish")


def conditions(status):
    return {c["type"]: (c["status"], c["reason"]) for c in status.get("conditions", [])}


# ---------------------------------------------------------------- the first step


def test_first_step_creates_pods_with_job_labels():
    d = reconcile_job(job(parallelism=2, completions=4), [], T0, uid=UID, rng=random.Random(3))
    assert len(d.create) == 2
    for c in d.create:
        assert re.fullmatch(r"pi-[bcdfghjklmnpqrstvwxz2456789]{5}", c.name)
        pod = validate_pod(c.manifest, "x")
        assert dict(pod.meta.labels) == {"app": "pi", "controller-uid": UID, "job-name": "pi",
                                         "batch.kubernetes.io/controller-uid": UID,
                                         "batch.kubernetes.io/job-name": "pi"}
        assert pod.spec.restart_policy == "Never"
    assert d.status == {"startTime": "2023-11-14T22:13:20Z", "active": 2, "ready": 0}
    assert [e.message for e in d.events] == [f"Created pod: {c.name}" for c in d.create]
    assert job_selector(job(), UID) == {"matchLabels": {"batch.kubernetes.io/controller-uid": UID}}


# ---------------------------------------------------------------- parallelism / completions

RUNS = [
    # completions, parallelism, pods created in all, most active at once
    (1, 1, 1, 1),
    (5, 2, 5, 2),
    (3, 5, 3, 3),  # never more active than completions still needed
    (4, 4, 4, 4),
    (0, 1, 0, 0),  # nothing to do: Complete at once
]


@pytest.mark.parametrize("completions, parallelism, created, most", RUNS)
def test_parallelism_and_completions(completions, parallelism, created, most):
    sim = Sim()
    sim.run(job(completions=completions, parallelism=parallelism))
    assert (sim.created, sim.max_active) == (created, most)
    assert conditions(sim.status) == {"Complete": ("True", "CompletionsReached")}
    assert sim.status.get("succeeded", 0) == completions and "active" not in sim.status
    assert sim.status["completionTime"] >= sim.status["startTime"]


def test_work_queue_completes_after_the_first_success_once_all_stopped():
    # completions unset, parallelism 3: pod 0 succeeds first; no pod is started after it
    sim = Sim(outcome=lambda n: "Succeeded", run_for=1.0)
    obj = job(parallelism=3)
    d = sim.step(obj)
    assert len(d.create) == 3
    uids = list(sim.pods)
    sim.t += 1
    first = sim.pods[uids[0]]
    sim.pods[uids[0]] = OwnedPod(**{**first.__dict__, "phase": "Succeeded", "ready": False})
    d = sim.step(obj)
    assert d.empty and not finished(d.status) and d.status["active"] == 2
    sim.tick()
    d = sim.step(obj)
    assert conditions(d.status) == {"Complete": ("True", "CompletionsReached")}
    assert d.status["succeeded"] == 3


def test_lowering_parallelism_deletes_the_extra_active_pods():
    sim = Sim(run_for=100)
    sim.step(job(parallelism=3, completions=10))
    sim.t += 1
    d = sim.step(job(parallelism=1, completions=10))
    assert len(d.delete) == 2 and all(x.reason == "too many active pods" for x in d.delete)


# ---------------------------------------------------------------- failures


@pytest.mark.parametrize("limit", [0, 1, 3])
def test_backoff_limit_with_restart_policy_never(limit):
    sim = Sim(outcome=lambda n: "Failed")
    d = sim.run(job(backoffLimit=limit), dt=5.0)
    assert sim.created == limit + 1  # failures > backoffLimit ends it
    assert conditions(sim.status) == {"Failed": ("True", "BackoffLimitExceeded")}
    assert sim.status["failed"] == limit + 1 and "completionTime" not in sim.status
    assert any(e.reason == "BackoffLimitExceeded" and e.type == "Warning" for e in d.events)


def test_failed_pods_are_replaced_after_kubernetes_backoff():
    fail_first_two = Sim(outcome=lambda n: "Failed" if n < 2 else "Succeeded")
    obj = job(backoffLimit=6)
    created_at = []
    for _ in range(100):
        d = fail_first_two.step(obj)
        created_at += [fail_first_two.t - T0] * len(d.create)
        if finished(fail_first_two.status):
            break
        fail_first_two.tick(1.0)
    # pod 0 at 0s fails at 1s; +10s -> pod 1 at 11s fails at 12s; +20s -> pod 2 at 32s
    assert created_at == [0.0, 11.0, 32.0]
    assert conditions(fail_first_two.status) == {"Complete": ("True", "CompletionsReached")}
    assert fail_first_two.status["failed"] == 2 and fail_first_two.status["succeeded"] == 1


def test_backoff_delay_is_reported_as_requeue():
    failed = OwnedPod("u1", "pi-aaaaa", phase="Failed", created_at=T0, finished_at=T0 + 1)
    d = reconcile_job(job(), [failed], T0 + 4, uid=UID, prev_status={"startTime": "2023-11-14T22:13:20Z"})
    assert d.empty and d.requeue_after == pytest.approx(7)


@pytest.mark.parametrize("limit, restarts, fails", [
    (0, 1, True),   # backoffLimit 0: any restart fails the Job
    (0, 0, False),
    (3, 2, False),
    (3, 3, True),   # OnFailure: restarts >= backoffLimit
])
def test_backoff_limit_with_restart_policy_on_failure_counts_restarts(limit, restarts, fails):
    obj = job("OnFailure", backoffLimit=limit)
    running = OwnedPod("u1", "pi-aaaaa", phase="Running", ready=True, created_at=T0, host="h1",
                       restart_count=restarts)
    d = reconcile_job(obj, [running], T0 + 30, uid=UID, prev_status={"startTime": "2023-11-14T22:13:20Z"})
    if fails:
        assert conditions(d.status) == {"Failed": ("True", "BackoffLimitExceeded")}
        assert [x.uid for x in d.delete] == ["u1"]
        assert d.status["conditions"][0]["message"] == "Job has reached the specified backoff limit"
    else:
        assert d.empty and not finished(d.status) and d.status["active"] == 1


def test_active_deadline_fails_the_job_and_deletes_active_pods():
    sim = Sim(run_for=1000)
    obj = job(activeDeadlineSeconds=30, parallelism=2, completions=2)
    d = sim.step(obj)
    assert d.requeue_after == pytest.approx(30)
    sim.t += 29
    d = sim.step(obj)
    assert d.empty and d.requeue_after == pytest.approx(1)
    sim.t += 1  # now - startTime >= activeDeadlineSeconds, as Kubernetes compares
    d = sim.step(obj)
    assert conditions(d.status) == {"Failed": ("True", "DeadlineExceeded")}
    assert d.status["conditions"][0]["message"] == "Job was active longer than specified deadline"
    assert len(d.delete) == 2 and "active" not in d.status
    assert d.status["startTime"] == "2023-11-14T22:13:20Z"


# ---------------------------------------------------------------- after the end


def test_a_finished_job_stays_finished_and_keeps_counts():
    sim = Sim()
    obj = job(completions=2, parallelism=2)
    sim.run(obj)
    status = sim.status
    sim.pods.clear()  # the store forgot the pods: counts must not go down
    sim.t += 100
    d = sim.step(obj)
    assert d.empty and d.status["succeeded"] == 2
    assert d.status["conditions"] == status["conditions"]
    assert d.status["completionTime"] == status["completionTime"]


def test_ttl_after_finished_asks_to_delete_the_job():
    sim = Sim()
    obj = job(ttlSecondsAfterFinished=60)
    d = sim.run(obj)
    assert not d.delete_object and d.requeue_after == pytest.approx(60)
    sim.t += 59
    assert not sim.step(obj).delete_object
    sim.t += 1
    assert sim.step(obj).delete_object


def test_status_shape_matches_kubernetes():
    sim = Sim()
    sim.run(job())
    cond = sim.status["conditions"][0]
    assert set(cond) == {"type", "status", "lastProbeTime", "lastTransitionTime", "reason", "message"}
    assert set(sim.status) == {"conditions", "startTime", "completionTime", "succeeded", "ready"}
