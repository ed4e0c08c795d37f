"""Ephemeral containers: the API server's checks, names, statuses, the host script."""

from __future__ import annotations

import random
import re
import subprocess

import pytest

from orchestrator.ephemeral import (FORBIDDEN, UNKNOWN_STATE, build_spec, check, container_names, debug_script,
                                    debugger_name, describe_lines, statuses, validate)
from orchestrator.errors import UsageError
from orchestrator.manifests import validate_pod
from orchestrator.model import ImageConfig
from orchestrator.store import Store

UID = "0b7c8f3e-2f4b-4d6e-9a1c-3e5f7a9b1c2d"
POD = validate_pod({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web"},
                    "spec": {"containers": [{"name": "app", "image": "busybox"},
                                            {"name": "side", "image": "busybox"}]}}, "test")
IMAGE = ImageConfig("busybox:latest", "ab" * 32, cmd=("sh",))


def test_default_names_look_like_kubectls():
    names = {debugger_name(random.Random(i)) for i in range(50)}
    assert all(re.fullmatch(r"debugger-[a-z0-9]{5}", n) for n in names)
    assert len(names) > 45
    assert debugger_name(random.Random(1)) == debugger_name(random.Random(1))


def test_kubectl_debug_spec():
    doc = build_spec("dbg", "busybox:1.36", ["sh"], "app", True, True, None)
    assert doc == {"name": "dbg", "image": "busybox:1.36", "command": ["sh"], "imagePullPolicy": "IfNotPresent",
                   "terminationMessagePolicy": "File", "targetContainerName": "app", "stdin": True, "tty": True}
    assert build_spec("d", "busybox", [], None, False, False, None)["imagePullPolicy"] == "Always"
    assert "command" not in build_spec("d", "busybox", [], None, False, False, "Never")


def test_valid_spec_passes():
    assert validate(build_spec("dbg", "busybox", ["ps"], "side", False, False, None), POD, [], 0) == []


@pytest.mark.parametrize("field", FORBIDDEN)
def test_fields_an_ephemeral_container_cannot_have(field):
    doc = {**build_spec("dbg", "busybox", [], None, False, False, None), field: {}}
    assert validate(doc, POD, [], 2) == [f"spec.ephemeralContainers[2].{field}: Forbidden: "
                                         "cannot be set for an Ephemeral Container"]


def test_names_are_unique_within_the_pod_and_dns_labels():
    existing = [{"name": "dbg", "image": "busybox"}]
    for name in ("app", "side", "dbg"):
        errors = validate(build_spec(name, "busybox", [], None, False, False, None), POD, existing, 1)
        assert errors == [f'spec.ephemeralContainers[1].name: Duplicate value: "{name}"']
    for name in ("Bad", "a_b", "x" * 64, "-a"):
        assert "DNS-1123" in validate(build_spec(name, "busybox", [], None, False, False, None), POD, [], 0)[0]


def test_target_pull_policy_image_and_unknown_fields():
    doc = {**build_spec("d", "bad image", [], "nope", False, False, None), "imagePullPolicy": "Sometimes",
           "volumeDevices": []}
    errors = "\n".join(validate(doc, POD, [{"name": "x"}], 0))
    assert 'targetContainerName: Not found: "nope"' in errors
    assert 'imagePullPolicy: Unsupported value: "Sometimes"' in errors
    assert "image: Required value" in errors
    assert "volumeDevices: Unsupported field" in errors
    # an ephemeral container cannot be a target
    assert "Not found" in validate(build_spec("d", "busybox", [], "x", False, False, None), POD,
                                   [{"name": "x"}], 1)[0]
    with pytest.raises(UsageError, match='The Pod "web" is invalid'):
        check(doc, POD, [])


def test_container_names_list_init_app_and_ephemeral():
    assert container_names(POD, [{"name": "dbg"}]) == [("app", ""), ("side", ""), ("dbg", "ephem")]


def test_statuses_from_what_the_host_reports():
    specs = [{"name": "a", "image": "busybox"}, {"name": "b", "image": "busybox"}]
    seen = [{"name": "a", "state": {"running": {"startedAt": "T"}}, "restartCount": 0}]
    out = statuses(specs, seen, {})
    assert out[0]["state"] == {"running": {"startedAt": "T"}} and out[0]["restartCount"] == 0
    assert out[1]["state"] == UNKNOWN_STATE  # not on its host: never restarted, so gone
    assert statuses(specs, None, {})[1]["state"] == {"waiting": {"reason": "ContainerCreating"}}
    lines = describe_lines([{**specs[0], "targetContainerName": "app", "command": ["sh"]}], out)
    assert lines[:2] == ["Ephemeral Containers:", "  a:"] and "    Target:         app" in lines


def test_debug_script_quotes_everything_and_parses():
    hostile = ["sh", "-c", "echo '$(touch /pwned)' `id` ; rm -rf / #"]
    doc = build_spec("dbg", "busybox", hostile, "app", False, False, None)
    script = debug_script(POD, UID, doc, IMAGE, interactive=False)
    subprocess.run(["bash", "-n"], input=script.encode(), check=True)
    assert f"/var/lib/podctl/pods/{UID}/ephemeral/dbg" in script
    assert f"/var/lib/podctl/pods/{UID}/containers/app/pid" in script
    # The command survives two levels of quoting byte for byte: unpack the start script
    # the way the host does (printf), then read its ARGV the way bash does.
    end = script.index(' >"$E/start.sh"')
    begin = script.rindex("\nprintf '%s' ", 0, end)
    start = subprocess.run(["bash", "-c", script[begin:end]], capture_output=True, check=True).stdout.decode()
    argv_line = next(x for x in start.splitlines() if x.startswith("ARGV=("))
    argv = subprocess.run(["bash", "-c", argv_line + '; printf "%s\\0" "${ARGV[@]}"'], capture_output=True,
                          check=True).stdout.decode().split("\0")[:-1]
    assert argv == hostile
    interactive = debug_script(POD, UID, build_spec("dbg", "busybox", [], None, True, False, None), IMAGE, True)
    assert "INTERACTIVE=yes" in interactive and "TARGET=''" in interactive


def test_store_keeps_ephemeral_containers_apart_from_the_spec(tmp_path):
    with Store.open(tmp_path / "state.db") as db:
        row = db.add_pod("default", "web", {"kind": "Pod"}, 1.0)
        assert row.ephemeral is None
        db.add_ephemeral(row.uid, {"name": "a"}, lambda r: None)
        row = db.add_ephemeral(row.uid, {"name": "b"}, lambda r: None)
        assert row.ephemeral == [{"name": "a"}, {"name": "b"}] and row.spec == {"kind": "Pod"}

        def refuse(r):
            raise UsageError("no")

        with pytest.raises(UsageError):
            db.add_ephemeral(row.uid, {"name": "c"}, refuse)
        assert db.get_pod_by_uid(row.uid).ephemeral == [{"name": "a"}, {"name": "b"}]
