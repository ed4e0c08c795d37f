"""emptyDir sizeLimit: what is watched, the marker, Failed/Evicted status, no re-creation."""

from __future__ import annotations

import json
import shutil
import subprocess

import pytest

from orchestrator import emptydir_limit as edl
from orchestrator.manifests import parse_documents
from orchestrator.probe import HostSnapshot, ObservedPod, parse_probe
from orchestrator.reconcile import DesiredPod, reconcile
from orchestrator.status import PodLayout, display_status, pod_phase

UID = "0d6f2a4e-1b7c-4c2d-9e3f-5a6b7c8d9e0f"
P = f"/var/lib/podctl/pods/{UID}"
POD = """
apiVersion: v1
kind: Pod
metadata: {name: filler}
spec:
  volumes:
  - {name: scratch, emptyDir: {sizeLimit: 1Mi}}
  - {name: plain, emptyDir: {}}
  - {name: ram, emptyDir: {medium: Memory, sizeLimit: 16Mi}}
  - {name: zero, emptyDir: {sizeLimit: "0"}}
  - {name: big, emptyDir: {sizeLimit: 1500M}}
  containers:
  - {name: app, image: busybox, command: [sleep, "3600"]}
"""


def spec(text: str = POD):
    return parse_documents(text, "t.yaml")[0].obj.spec


def test_only_disk_emptydirs_with_a_positive_limit_are_watched():
    got = [(name, limit, d) for name, limit, d, _ in edl.watched(spec(), P)]
    assert got == [("scratch", 2**20, f"{P}/volumes/scratch"), ("big", 1_500_000_000, f"{P}/volumes/big")]


def test_message_is_the_kubelets():
    assert edl.message("scratch", 2**20) == 'Usage of EmptyDir volume "scratch" exceeds the limit "1Mi".'
    assert edl.message("big", 1_500_000_000) == 'Usage of EmptyDir volume "big" exceeds the limit "1500000000".'


def test_marker_is_one_space_free_json_line():
    m = edl.marker("scratch", 2**20)
    assert " " not in m and "\n" not in m
    assert json.loads(m) == {"reason": "Evicted", "volume": "scratch",
                             "message": 'Usage of EmptyDir volume "scratch" exceeds the limit "1Mi".'}


def test_no_watcher_without_a_limited_disk_emptydir():
    assert edl.watch_script(spec(POD.replace("sizeLimit: 1Mi", "").replace("sizeLimit: 1500M", "")), UID, P) == ""


def test_watcher_script_is_valid_bash_and_carries_its_volumes_as_words():
    script = edl.watch_script(spec(), UID, P)
    assert f"VOLS=(scratch 1048576 {P}/volumes/scratch " in script
    subprocess.run(["bash", "-n"], input=script.encode(), check=True)
    if shutil.which("shellcheck"):
        r = subprocess.run(["shellcheck", "-s", "bash", "-S", "warning", "-"], input=script.encode(),
                           capture_output=True)
        assert r.returncode == 0, r.stdout.decode()


def observed(state: str, containers: list[dict], evicted: bool = True) -> ObservedPod:
    status = {"containers": containers, "ephemeral": []}
    if evicted:
        status["evicted"] = json.loads(edl.marker("scratch", 2**20))
    return ObservedPod(UID, state, status, {"containers": ["app"]})


RUNNING = {"name": "app", "state": {"running": {"startedAt": "2024-01-01T00:00:00Z"}}, "ready": True}
STOPPED = {"name": "app", "state": {"terminated": {"exitCode": 143, "reason": "Error"}}}
LAYOUT = PodLayout(("app",))


@pytest.mark.parametrize("state,entry", [("alive", RUNNING), ("alive", STOPPED), ("finished", STOPPED),
                                         ("dead", RUNNING)])
@pytest.mark.parametrize("policy", ["Always", "OnFailure", "Never"])
def test_an_evicted_pod_is_failed_evicted(state, entry, policy):
    assert pod_phase(observed(state, [entry]), policy, True, True, LAYOUT) == ("Failed", "Evicted")


def test_an_unreachable_host_still_says_unknown():
    assert pod_phase(observed("finished", [STOPPED]), "Always", True, False, LAYOUT) == ("Unknown", "NodeUnreachable")


def test_without_marker_the_phase_is_unchanged():
    assert pod_phase(observed("finished", [STOPPED], evicted=False), "Always", True, True, LAYOUT)[0] == "Failed"
    assert pod_phase(observed("alive", [RUNNING], evicted=False), "Always", True, True, LAYOUT) == ("Running", "")


def test_kubectl_status_column_says_evicted():
    assert display_status("Failed", "Evicted", [{"name": "app", "state": STOPPED["state"]}]) == "Evicted"


def test_probe_output_carries_the_marker_into_the_status():
    status = ('{"containers":[' + json.dumps(STOPPED, separators=(",", ":")) + '],"ephemeral":[],"evicted":'
              + edl.marker("scratch", 2**20) + "}")
    snap = parse_probe("h", f"@@podctl pod {UID} finished {status} {{}}\n@@podctl end\n")
    pod = snap.pods[UID]
    assert edl.evicted(pod) == ("Evicted", 'Usage of EmptyDir volume "scratch" exceeds the limit "1Mi".')
    assert edl.evicted(ObservedPod(UID, "alive", {"containers": []}, {})) is None
    assert edl.eviction({"evicted": "garbage"}) is None


@pytest.mark.parametrize("state", ["alive", "finished", "dead"])
def test_an_evicted_bare_pod_is_never_recreated(state):
    snap = HostSnapshot("h", "ok", images=frozenset({"d"}), pods={UID: observed(state, [STOPPED])})
    plan = reconcile([DesiredPod(UID, "default/filler", "h", digests=("d",))], {"h": snap})
    assert not [a for a in plan.actions if a.verb == "create"]


def test_a_dead_pod_that_was_not_evicted_is_restarted():
    snap = HostSnapshot("h", "ok", images=frozenset({"d"}), pods={UID: observed("dead", [RUNNING], evicted=False)})
    plan = reconcile([DesiredPod(UID, "default/filler", "h", digests=("d",))], {"h": snap})
    assert [a.verb for a in plan.actions] == ["create"]


def test_an_evicted_pod_is_still_deleted_when_asked():
    snap = HostSnapshot("h", "ok", pods={UID: observed("finished", [STOPPED])})
    plan = reconcile([DesiredPod(UID, "default/filler", "h", deleting=True)], {"h": snap})
    assert [a.verb for a in plan.actions] == ["delete"]


def test_pod_object_reports_reason_message_and_disruption_target():
    from orchestrator.store import PodRow
    from orchestrator.views import pod_object

    pod = parse_documents(POD, "t.yaml")[0].obj
    row = PodRow(UID, "default", "filler", {}, None, None, None, "h", "10.244.1.5", 0.0, None, None, None)
    snap = HostSnapshot("h", "ok", pods={UID: observed("finished", [STOPPED])})
    st = pod_object(row, pod, snap, "10.213.0.2")["status"]
    assert (st["phase"], st["reason"]) == ("Failed", "Evicted")
    assert st["message"] == 'Usage of EmptyDir volume "scratch" exceeds the limit "1Mi".'
    target = [c for c in st["conditions"] if c["type"] == "DisruptionTarget"]
    assert target == [{"type": "DisruptionTarget", "status": "True", "reason": "TerminationByKubelet",
                       "message": st["message"]}]


# ---------------------------------------------------------------- workloads see it Failed

WORKLOADS = """
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 1
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      volumes: [{name: scratch, emptyDir: {sizeLimit: 1Mi}}]
      containers: [{name: app, image: busybox}]
---
apiVersion: batch/v1
kind: Job
metadata: {name: batch}
spec:
  backoffLimit: 3
  template:
    spec:
      restartPolicy: Never
      volumes: [{name: scratch, emptyDir: {sizeLimit: 1Mi}}]
      containers: [{name: app, image: busybox}]
"""


def _owned_evicted(pod_spec_manifest: dict, name: str):
    """An owned pod as the controller sees it once its host reports the eviction."""
    import yaml

    from orchestrator.store import PodRow
    from orchestrator.views import pod_object
    from orchestrator.workloads.common import owned_pod_from_k8s

    doc = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, **pod_spec_manifest["metadata"]},
           "spec": pod_spec_manifest["spec"]}
    pod = parse_documents(yaml.safe_dump(doc), "p.yaml")[0].obj
    row = PodRow(UID, "default", name, doc, None, None, None, "h", "10.244.1.5", 0.0, None, None, None)
    body = pod_object(row, pod, HostSnapshot("h", "ok", pods={UID: observed("finished", [STOPPED])}), None)
    return owned_pod_from_k8s(body, uid=UID, created_at=0.0, host="h", deleting=False)


def test_workload_controllers_treat_an_evicted_pod_as_failed():
    from orchestrator.workloads.run import reconcile_workload

    dep, job = (m.obj for m in parse_documents(WORKLOADS, "w.yaml"))
    template = {"metadata": {"labels": {"app": "web"}}, "spec": dep.template.raw["spec"]}
    owned = _owned_evicted(template, "web-abc")
    assert owned.phase == "Failed" and not owned.active
    d = reconcile_workload(dep, [owned], 100.0, uid="dep-uid")
    assert [x.uid for x in d.delete] == [UID] and len(d.create) == 1  # replaced

    owned = _owned_evicted({"metadata": {}, "spec": job.template.raw["spec"]}, "batch-xyz")
    d = reconcile_workload(job, [owned], 100.0, uid="job-uid")
    assert d.status.get("failed") == 1 and len(d.create) == 1  # counted failed, retried
