"""Images from a registry, end to end: Debian's docker-registry on loopback (without and
with htpasswd basic auth), filled with skopeo from OCI layouts built from the lab's
busybox rootfs; pods on the lab pull by tag and by digest, pick their platform from an
image index, honour imagePullPolicy, report ErrImagePull with the registry's message,
refuse a layer whose bytes do not match its digest, and unused images leave the hosts.
"""

from __future__ import annotations

import base64
import json
import textwrap
import time
from pathlib import Path

import pytest

from registry_fixture import (htpasswd_file, image_manifest, manifest_digest, start_registry,
                              write_layout)

pytestmark = pytest.mark.e2e

USER, PASSWORD = "puller", "s3cret-pw"


def pod_yaml(name: str, image: str, policy: str | None = None, script: str = "cat /etc/flavour; sleep 3600") -> str:
    pol = f", imagePullPolicy: {policy}" if policy else ""
    return textwrap.dedent(f"""\
        apiVersion: v1
        kind: Pod
        metadata: {{name: {name}}}
        spec:
          terminationGracePeriodSeconds: 1
          containers:
            - {{name: c, image: "{image}", command: [sh, -c, "{script}"]{pol}}}
        """)


def status(podctl, name: str) -> dict:
    return json.loads(podctl("get", "pods", name, "-o", "json").stdout)["status"]


def waiting(podctl, name: str) -> dict:
    return (status(podctl, name)["containerStatuses"][0]["state"]).get("waiting") or {}


def wait_running(podctl, name: str, timeout: float = 20) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        st = status(podctl, name)
        if st["phase"] == "Running":
            return st
        if time.monotonic() > deadline:
            raise AssertionError(f"{name} not Running: {json.dumps(st, indent=1)}")
        time.sleep(0.3)


def delete(podctl, *names: str) -> None:
    for name in names:
        podctl("delete", "pod", name, check=False)


def flavour(podctl, name: str) -> str:
    return podctl("exec", name, "--", "cat", "/etc/flavour").stdout.strip()


@pytest.fixture(scope="module")
def registries(lab, podctl, tmp_path_factory):
    """(open registry, auth registry, layout dir); both stopped by PID at the end."""
    from orchestrator.images import ImageStore

    tmp = tmp_path_factory.mktemp("registry")
    store = ImageStore(lab.home / "images")
    base = store.blob_path(store.get("busybox:latest").digest)
    layout = tmp / "layout"
    amd = image_manifest(layout, base, {"etc/flavour": b"amd64\n"}, "amd64")
    arm = image_manifest(layout, base, {"etc/flavour": b"arm64\n"}, "arm64")
    v1 = image_manifest(layout, base, {"etc/flavour": b"v1\n"}, "amd64")
    v2 = image_manifest(layout, base, {"etc/flavour": b"v2\n"}, "amd64")
    bad = image_manifest(layout, base, {"etc/flavour": b"corrupt-me\n"}, "amd64")
    write_layout(layout, "multi", [arm, amd], as_index=True)
    write_layout(layout, "v1", [v1], as_index=False)
    write_layout(layout, "v2", [v2], as_index=False)
    write_layout(layout, "bad", [bad], as_index=False)
    open_reg = start_registry(tmp)
    auth_reg = None
    try:
        auth_reg = start_registry(tmp, htpasswd_file(tmp, USER, PASSWORD))
        open_reg.push(layout, "multi", "demo/multi:1.0", all_platforms=True)
        open_reg.push(layout, "v1", "demo/app:1.0")
        open_reg.push(layout, "bad", "demo/corrupt:1.0")
        auth_reg.push(layout, "v1", "private/app:1.0", creds=f"{USER}:{PASSWORD}")
        auth_reg.push(layout, "v1", "private/app:bad", creds=f"{USER}:{PASSWORD}")
        yield open_reg, auth_reg, layout, bad
    finally:
        open_reg.stop()
        if auth_reg:
            auth_reg.stop()
        (lab.home / "config.yaml").unlink(missing_ok=True)


def test_pull_by_tag_and_by_digest_with_platform_choice(lab, podctl, registries):
    reg, _, _, _ = registries
    index_digest = manifest_digest(reg, "demo/multi", "1.0")
    podctl("apply", "-f", "-", check=False, input=pod_yaml("by-tag", f"{reg.host}/demo/app:1.0")
           + "---\n" + pod_yaml("by-digest", f"{reg.host}/demo/multi@{index_digest}"))
    try:
        st = wait_running(podctl, "by-tag")
        assert flavour(podctl, "by-tag") == "v1"
        wait_running(podctl, "by-digest")
        assert flavour(podctl, "by-digest") == "amd64"  # the lab hosts are x86_64: amd64 from the index
        env = podctl("exec", "by-tag", "--", "sh", "-c", "echo $FROM_REGISTRY").stdout.strip()
        assert env == "yes"  # the image config's Env reached the container
        assert st["containerStatuses"][0]["image"] == f"{reg.host}/demo/app:1.0"
        ls = podctl("image", "ls").stdout
        assert f"{reg.host}/demo/app:1.0" in ls and f"pulled {reg.host} linux/amd64" in ls
        assert "busybox:latest" in ls and "imported" in ls
        described = podctl("describe", "pod", "by-tag").stdout
        assert "Pulling" in described and "Successfully pulled" in described
        # A no-op reconcile does not go back to the registry (no new Pulling event).
        podctl("reconcile")
        assert podctl("describe", "pod", "by-tag").stdout.count("Pulling") == described.count("Pulling")
        # The pinned rule: busybox:latest (policy Always) was imported, never pulled.
        podctl("apply", "-f", "-", check=False, input=pod_yaml("local", "busybox:latest", "Always", "sleep 3600"))
        wait_running(podctl, "local")
        assert "Pulling" not in podctl("describe", "pod", "local").stdout
    finally:
        delete(podctl, "by-tag", "by-digest", "local")


def test_pull_policies(lab, podctl, registries):
    reg, _, layout, _ = registries
    ref = f"{reg.host}/demo/app:1.0"
    try:
        podctl("apply", "-f", "-", check=False, input=pod_yaml("never", f"{reg.host}/demo/app:absent", "Never"))
        w = waiting(podctl, "never")
        assert w["reason"] == "ErrImageNeverPull", w
        assert status(podctl, "never")["phase"] == "Pending"
        podctl("image", "pull", ref)  # pre-pull: v1
        reg.push(layout, "v2", "demo/app:1.0")  # the tag moves on at the registry
        podctl("apply", "-f", "-", check=False, input=pod_yaml("ifnp", ref, "IfNotPresent"))
        wait_running(podctl, "ifnp")
        assert flavour(podctl, "ifnp") == "v1"  # present: not pulled again
        podctl("apply", "-f", "-", check=False, input=pod_yaml("always", ref, "Always"))
        wait_running(podctl, "always")
        assert flavour(podctl, "always") == "v2"  # re-resolved at the registry when created
        assert flavour(podctl, "ifnp") == "v1"  # the running pod keeps its image
    finally:
        delete(podctl, "never", "ifnp", "always")


def test_basic_auth_and_bad_credentials(lab, podctl, registries):
    _, areg, _, _ = registries
    config = lab.home / "config.yaml"
    config.write_text(f"registries:\n  credentials:\n    '{areg.host}': {{username: {USER}, password: wrong}}\n")
    try:
        r = podctl("apply", "-f", "-", check=False, input=pod_yaml("denied", f"{areg.host}/private/app:bad"))
        assert r.returncode == 1
        w = waiting(podctl, "denied")
        assert w["reason"] in ("ErrImagePull", "ImagePullBackOff"), w
        assert "401" in w["message"] and "UNAUTHORIZED" in w["message"], w
        assert PASSWORD not in r.stdout + r.stderr and "wrong" not in w["message"]
        # Credentials from a docker-style auths file (config.json), kept out of argv.
        auths = lab.home / "auths.json"
        auths.write_text(json.dumps({"auths": {areg.host: {
            "auth": base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()}}}))
        config.write_text("registries:\n  authFile: auths.json\n")
        podctl("apply", "-f", "-", check=False, input=pod_yaml("allowed", f"{areg.host}/private/app:1.0"))
        wait_running(podctl, "allowed")
        assert flavour(podctl, "allowed") == "v1"
        # Bad settings are refused before anything happens, naming file and field.
        config.write_text("registries:\n  mirrors:\n    docker.io: [http://bad/]\n")
        r = podctl("reconcile", check=False)
        assert r.returncode == 3 and "config.yaml: registries.mirrors.docker.io[0]" in r.stderr, r.stderr
    finally:
        config.unlink(missing_ok=True)
        delete(podctl, "denied", "allowed")


def test_corrupt_layer_is_refused(lab, podctl, registries):
    reg, _, layout, bad = registries
    manifest = json.loads((layout / "blobs/sha256" / bad["digest"][7:]).read_bytes())
    layer = manifest["layers"][1]["digest"]  # the layer only this image has
    blob = reg.blob_file(layer)
    data = bytearray(blob.read_bytes())
    data[len(data) // 2] ^= 0xFF  # same size, other bytes
    blob.write_bytes(bytes(data))
    try:
        podctl("apply", "-f", "-", check=False, input=pod_yaml("corrupt", f"{reg.host}/demo/corrupt:1.0"))
        w = waiting(podctl, "corrupt")
        assert w["reason"] in ("ErrImagePull", "ImagePullBackOff") and "digest mismatch" in w["message"], w
        cache = lab.home / "registry"
        assert not (cache / "blobs/sha256" / layer[7:]).exists()
        assert not list((cache / "partial").glob(layer[7:] + "*"))  # nothing half-written left behind
        shown = podctl("get", "pods", "corrupt").stdout
        assert "ErrImagePull" in shown or "ImagePullBackOff" in shown, shown
    finally:
        delete(podctl, "corrupt")


def test_unused_images_are_collected_on_hosts(lab, podctl, registries):
    reg, _, _, _ = registries
    env_gc = {**podctl.env, "PODCTL_IMAGE_GC_MIN_AGE": "2"}
    import subprocess
    import sys

    def gc_podctl(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "orchestrator.cli", *args], env=env_gc,
                              capture_output=True, text=True, timeout=120)

    podctl("apply", "-f", "-", check=False, input=pod_yaml("gc", f"{reg.host}/demo/app:1.0", "IfNotPresent"))
    st = wait_running(podctl, "gc")
    host = json.loads(podctl("get", "pods", "gc", "-o", "json").stdout)["spec"]["nodeName"]
    from orchestrator.images import ImageStore

    digest = ImageStore(lab.home / "images").get(f"{reg.host}/demo/app:1.0").digest
    on_host = f"test -d /var/lib/podctl/images/{digest}/rootfs"
    assert lab.ssh(host, on_host).returncode == 0
    gc_podctl("reconcile")  # in use: its clock does not start
    assert lab.ssh(host, on_host).returncode == 0
    podctl("delete", "pod", "gc")
    gc_podctl("reconcile")  # unused from now on
    time.sleep(2.2)
    plan = gc_podctl("plan").stdout
    assert f"delete-image {digest[:12]} on {host}" in plan, plan
    r = gc_podctl("reconcile")
    assert r.returncode == 0, r.stdout + r.stderr
    assert lab.ssh(host, on_host).returncode == 1
    assert lab.ssh(host, f"ls -a /var/lib/podctl/images | grep -c {digest[:12]} || true").stdout.strip() == "0"
    assert "nothing to do" in gc_podctl("reconcile").stdout  # idempotent: gone is gone
    assert st["phase"] == "Running"
