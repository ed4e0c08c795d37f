"""Bearer token auth end to end: Debian's docker-registry with `auth: token` trusting a
token server run here (token_server.py: the Docker token protocol, RS256 JWTs whose
`kid` is the libtrust ID of the key in the registry's rootcertbundle). skopeo fills the
registry through the same protocol; pods on the lab pull through it with the
credentials of config.yaml; a wrong password is the token server's 401 and a token for
another repository is the registry's 401 insufficient_scope, both as ErrImagePull.
"""

from __future__ import annotations

import pytest
from registry_fixture import image_manifest, start_registry, write_layout
from test_registry import delete, flavour, pod_yaml, wait_running, waiting
from token_server import SERVICE, TokenServer

pytestmark = pytest.mark.e2e

PUSHER, PULLER, NARROW = "pusher", "puller", "narrow"
PASSWORDS = {PUSHER: "push-pw-1", PULLER: "pull-pw-2", NARROW: "narrow-pw-3"}


@pytest.fixture(scope="module")
def token_registry(lab, tmp_path_factory):
    """(registry, token server); both stopped at the end (the registry by its PID)."""
    from orchestrator.images import ImageStore

    tmp = tmp_path_factory.mktemp("registry-token")
    store = ImageStore(lab.home / "images")
    layout = tmp / "layout"
    write_layout(layout, "v1", [image_manifest(layout, store.blob_path(store.get("busybox:latest").digest),
                                               {"etc/flavour": b"token\n"})], as_index=False)
    ts = TokenServer(dict(PASSWORDS), {PUSHER: "push", PULLER: "pull", NARROW: "other/app"},
                     tmp / "token-cert.pem").start()
    reg = None
    try:
        reg = start_registry(tmp, auth_yaml=ts.auth_yaml())
        # One tag per test: podctl's pull back-off is per image reference, so a tag that
        # failed in one test would still be backing off in the next.
        for name in ("private/app:1.0", "private/app:denied", "private/app:scope"):
            reg.push(layout, "v1", name, creds=f"{PUSHER}:{PASSWORDS[PUSHER]}")
        reg.push(layout, "v1", "other/app:1.0", creds=f"{PUSHER}:{PASSWORDS[PUSHER]}")
        assert {r["user"] for r in ts.requests} == {PUSHER}  # skopeo went through the token server
        yield reg, ts
    finally:
        if reg:
            reg.stop()
        ts.stop()
        (lab.home / "config.yaml").unlink(missing_ok=True)


def use_credentials(lab, reg, user: str, password: str) -> None:
    (lab.home / "config.yaml").write_text(
        f"registries:\n  credentials:\n    '{reg.host}': {{username: {user}, password: {password}}}\n")


def test_pull_through_bearer_token(lab, podctl, token_registry):
    reg, ts = token_registry
    use_credentials(lab, reg, PULLER, PASSWORDS[PULLER])
    ts.requests.clear()
    try:
        r = podctl("apply", "-f", "-", check=False, input=pod_yaml("tok-ok", f"{reg.host}/private/app:1.0"))
        wait_running(podctl, "tok-ok")
        assert flavour(podctl, "tok-ok") == "token"
        # podctl answered the registry's challenge: its service and scope, the configured user.
        assert ts.requests and all(q == {"path": "/token", "user": PULLER, "service": SERVICE,
                                         "scopes": ["repository:private/app:pull"]} for q in ts.requests), ts.requests
        assert PASSWORDS[PULLER] not in r.stdout + r.stderr
        described = podctl("describe", "pod", "tok-ok").stdout
        assert "Successfully pulled" in described and PASSWORDS[PULLER] not in described
    finally:
        delete(podctl, "tok-ok")


def test_wrong_password_is_the_token_servers_401(lab, podctl, token_registry):
    reg, ts = token_registry
    use_credentials(lab, reg, PULLER, "not-the-password")
    ts.requests.clear()
    try:
        r = podctl("apply", "-f", "-", check=False, input=pod_yaml("tok-denied", f"{reg.host}/private/app:denied"))
        assert r.returncode == 1
        w = waiting(podctl, "tok-denied")
        assert w["reason"] in ("ErrImagePull", "ImagePullBackOff"), w
        assert f"{reg.host}: token server: 401 UNAUTHORIZED: invalid username or password" in w["message"], w
        assert "not-the-password" not in w["message"] + r.stdout + r.stderr
        assert ts.requests and ts.requests[0]["user"] == PULLER
    finally:
        delete(podctl, "tok-denied")


def test_token_for_another_repository_is_refused(lab, podctl, token_registry):
    reg, _ = token_registry
    use_credentials(lab, reg, NARROW, PASSWORDS[NARROW])  # its tokens only grant other/app
    try:
        podctl("apply", "-f", "-", check=False, input=pod_yaml("tok-scope", f"{reg.host}/private/app:scope"))
        w = waiting(podctl, "tok-scope")
        assert w["reason"] in ("ErrImagePull", "ImagePullBackOff"), w
        assert "401 UNAUTHORIZED" in w["message"] and "insufficient_scope" in w["message"], w
        assert "repository:private/app:pull" in w["message"], w
        # The same user's token does open the repository it grants.
        podctl("apply", "-f", "-", check=False, input=pod_yaml("tok-other", f"{reg.host}/other/app:1.0"))
        wait_running(podctl, "tok-other")
        assert flavour(podctl, "tok-other") == "token"
    finally:
        delete(podctl, "tok-scope", "tok-other")
