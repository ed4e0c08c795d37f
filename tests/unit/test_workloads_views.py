"""`get deployments|jobs|daemonsets` rows and -o json objects: kubectl's columns."""

from __future__ import annotations

import pytest
import yaml

from orchestrator.manifests import parse_documents
from orchestrator.workloads.common import HISTORY_KEY
from orchestrator.workloads.views import (
    DAEMONSET_HEADERS,
    DEPLOYMENT_HEADERS,
    JOB_HEADERS,
    daemonset_row,
    deployment_row,
    headers,
    human_duration,
    job_row,
    workload_object,
)

T0 = 1_700_000_000.0
UID = "0b5e5c7e-1111-2222-3333-444455556666"


def obj(kind, api, spec, name="web"):
    text = yaml.safe_dump({"apiVersion": api, "kind": kind, "metadata": {"name": name}, "spec": spec})
    return parse_documents(text, "x.yaml")[0]


def template(restart=None, **pod):
    spec = {"containers": [{"name": "app", "image": "nginx:1.27"}, {"name": "log", "image": "busybox:1"}],
            **pod}
    if restart:
        spec["restartPolicy"] = restart
    return {"metadata": {"labels": {"app": "web"}}, "spec": spec}


SELECTOR = {"matchLabels": {"app": "web"}}


@pytest.mark.parametrize("seconds, text", [
    (-5, "<invalid>"), (-1, "0s"), (0, "0s"), (45, "45s"), (119, "119s"), (120, "2m"),
    (200, "3m20s"), (600, "10m"), (179 * 60, "179m"), (3 * 3600, "3h"), (5 * 3600 + 180, "5h3m"),
    (20 * 3600, "20h"), (3 * 86400 + 4 * 3600, "3d4h"), (40 * 86400, "40d"),
    (3 * 365 * 86400, "3y"), (3 * 365 * 86400 + 5 * 86400, "3y5d"), (9 * 365 * 86400, "9y"),
])
def test_human_duration_is_kubectls(seconds, text):
    assert human_duration(seconds) == text


def test_headers():
    assert DEPLOYMENT_HEADERS == ["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"]
    assert JOB_HEADERS == ["NAME", "STATUS", "COMPLETIONS", "DURATION", "AGE"]
    assert DAEMONSET_HEADERS == ["NAME", "DESIRED", "CURRENT", "READY", "UP-TO-DATE", "AVAILABLE",
                                 "NODE SELECTOR", "AGE"]
    assert headers("Job", wide=True)[-3:] == ["CONTAINERS", "IMAGES", "SELECTOR"]


def test_deployment_row():
    dep = obj("Deployment", "apps/v1", {"replicas": 3, "selector": SELECTOR, "template": template()}).obj
    status = {"replicas": 4, "updatedReplicas": 2, "readyReplicas": 3, "availableReplicas": 3}
    assert deployment_row(dep, status, created_at=T0, now=T0 + 200) == ["web", "3/3", "2", "3", "3m20s"]
    assert deployment_row(dep, {}, created_at=None) == ["web", "0/3", "0", "0", "<unknown>"]
    assert deployment_row(dep, status, created_at=T0, now=T0, wide=True)[-3:] == \
        ["app,log", "nginx:1.27,busybox:1", "app=web"]


@pytest.mark.parametrize("spec, status, now, expected", [
    ({"completions": 3}, {"startTime": "2023-11-14T22:13:20Z", "succeeded": 1, "active": 2}, T0 + 30,
     ["Running", "1/3", "30s"]),
    ({"completions": 3}, {"startTime": "2023-11-14T22:13:20Z", "completionTime": "2023-11-14T22:15:30Z",
                          "succeeded": 3, "conditions": [{"type": "Complete", "status": "True"}]},
     T0 + 999, ["Complete", "3/3", "2m10s"]),
    ({}, {"startTime": "2023-11-14T22:13:20Z", "failed": 7,
          "conditions": [{"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded"}]},
     T0 + 5, ["Failed", "0/1", "5s"]),
    ({"parallelism": 4}, {}, T0, ["Running", "0/1 of 4", ""]),
    ({"parallelism": 1, "completions": None}, {"succeeded": 1}, T0, ["Running", "1/1", ""]),
])
def test_job_row(spec, status, now, expected):
    job = obj("Job", "batch/v1", {**{k: v for k, v in spec.items() if v is not None},
                                  "template": template("Never")}, name="pi").obj
    row = job_row(job, status, created_at=T0 - 60, now=now)
    assert row[0] == "pi" and row[1:4] == expected
    assert row[4] == human_duration(now - (T0 - 60))


def test_job_row_wide_shows_the_generated_selector():
    job = obj("Job", "batch/v1", {"template": template("Never")}, name="pi").obj
    assert job_row(job, {}, created_at=T0, now=T0, wide=True, uid=UID)[-1] == \
        f"batch.kubernetes.io/controller-uid={UID}"


def test_daemonset_row():
    ds = obj("DaemonSet", "apps/v1", {"selector": SELECTOR, "template": template(
        nodeSelector={"role": "edge", "disk": "ssd"})}, name="agent").obj
    status = {"desiredNumberScheduled": 3, "currentNumberScheduled": 3, "numberMisscheduled": 0,
              "numberReady": 2, "updatedNumberScheduled": 1, "numberAvailable": 2}
    assert daemonset_row(ds, status, created_at=T0, now=T0 + 3 * 86400) == \
        ["agent", "3", "3", "2", "1", "2", "disk=ssd,role=edge", "3d"]
    plain = obj("DaemonSet", "apps/v1", {"selector": SELECTOR, "template": template()}, name="agent").obj
    assert daemonset_row(plain, {}, created_at=T0, now=T0)[6] == "<none>"


def test_workload_object_for_get_o_json():
    m = obj("Deployment", "apps/v1", {"replicas": 2, "selector": SELECTOR, "template": template()})
    out = workload_object(m.raw, uid=UID, created_at=T0, generation=3,
                          status={"replicas": 2, HISTORY_KEY: [{"revision": 4}]}, revision=4)
    assert out["metadata"] == {"name": "web", "namespace": "default", "uid": UID,
                               "creationTimestamp": "2023-11-14T22:13:20Z", "generation": 3,
                               "annotations": {"deployment.kubernetes.io/revision": "4"}}
    assert out["spec"] == m.raw["spec"] and out["status"] == {"replicas": 2}
    assert "annotations" not in m.raw["metadata"]  # the stored document is not touched
    job = obj("Job", "batch/v1", {"template": template("Never")}, name="pi")
    out = workload_object(job.raw, uid=UID, created_at=T0, generation=1, status=None)
    assert out["spec"]["selector"] == {"matchLabels": {"batch.kubernetes.io/controller-uid": UID}}
    assert out["status"] == {}
