"""Registry pulls, the pure parts: references, auth challenges, platform choice, settings,
pull-policy decisions, waiting reasons and host image GC."""

from __future__ import annotations

import base64

import pytest

from orchestrator.errors import ImageError, UsageError
from orchestrator.image_pull import (BACKOFF, NEVER, PULL, SKIP, USE, Failure, backoff_until, decide, image_gc,
                                     waiting_reason)
from orchestrator.plan import Action
from orchestrator.probe import HostSnapshot
from orchestrator.reconcile import DesiredPod, reconcile
from orchestrator.registry import (Reference, choose_manifest, host_platform, parse_challenges, parse_reference,
                                  refusal_hint)
from orchestrator.registry_config import Credential, RegistrySettings, parse_auth_file, parse_settings

D = "sha256:" + "ab" * 32


@pytest.mark.parametrize("ref, want, store_ref", [
    ("busybox", Reference("docker.io", "library/busybox", "latest", None), "busybox:latest"),
    ("busybox:1.36", Reference("docker.io", "library/busybox", "1.36", None), "busybox:1.36"),
    ("docker.io/library/alpine:3", Reference("docker.io", "library/alpine", "3", None), "alpine:3"),
    ("index.docker.io/team/app", Reference("docker.io", "team/app", "latest", None), "team/app:latest"),
    ("team/app:v1", Reference("docker.io", "team/app", "v1", None), "team/app:v1"),
    ("127.0.0.1:5000/demo/app:1.0", Reference("127.0.0.1:5000", "demo/app", "1.0", None),
     "127.0.0.1:5000/demo/app:1.0"),
    ("localhost/app", Reference("localhost", "app", "latest", None), "localhost/app:latest"),
    ("registry.example.com/a/b/c", Reference("registry.example.com", "a/b/c", "latest", None),
     "registry.example.com/a/b/c:latest"),
    (f"127.0.0.1:5000/app@{D}", Reference("127.0.0.1:5000", "app", None, D), f"127.0.0.1:5000/app@{D}"),
    (f"app:1.0@{D}", Reference("docker.io", "library/app", "1.0", D), f"app@{D}"),  # digest wins
])
def test_references_as_docker_reads_them(ref, want, store_ref):
    got = parse_reference(ref)
    assert got == want
    assert got.store_ref == store_ref
    assert got.wanted == (want.digest or want.tag)


@pytest.mark.parametrize("bad", ["", "app/UPPER", "a b", "app@sha256:short", "host:port:x/app:t", "app:-bad"])
def test_bad_references_are_refused_with_the_grammar(bad):
    with pytest.raises(ImageError, match="invalid image reference"):
        parse_reference(bad)


@pytest.mark.parametrize("header, want", [
    ('Bearer realm="https://auth.docker.io/token",service="registry.docker.io",'
     'scope="repository:library/busybox:pull"',
     [("bearer", {"realm": "https://auth.docker.io/token", "service": "registry.docker.io",
                  "scope": "repository:library/busybox:pull"})]),
    ('Basic realm="podctl-test"', [("basic", {"realm": "podctl-test"})]),
    ('Basic realm="a, b", Bearer realm="https://t/x?y=1",service=reg',
     [("basic", {"realm": "a, b"}), ("bearer", {"realm": "https://t/x?y=1", "service": "reg"})]),
    ('BEARER realm="r\\"q"', [("bearer", {"realm": 'r"q'})]),
    ("Negotiate", [("negotiate", {})]),
    ("", []),
])
def test_www_authenticate_challenges(header, want):
    assert parse_challenges(header) == want


def _desc(arch: str, variant: str = "", os: str = "linux", **extra) -> dict:
    p = {"os": os, "architecture": arch, **({"variant": variant} if variant else {})}
    return {"digest": f"sha256:{arch}{variant}", "platform": p, **extra}


def test_platform_choice_from_an_index():
    index = [_desc("arm", "v7"), _desc("arm64", "v8"), _desc("amd64"), _desc("unknown", os="unknown"),
             _desc("amd64", annotations={"vnd.docker.reference.type": "attestation-manifest"})]
    assert choose_manifest(index, "linux/amd64")["digest"] == "sha256:amd64"
    assert choose_manifest(index, "linux/arm64")["digest"] == "sha256:arm64v8"
    assert choose_manifest(index, "linux/arm/v7")["digest"] == "sha256:armv7"
    with pytest.raises(ImageError, match=r"no manifest for platform linux/s390x.*linux/amd64, linux/arm/v7"):
        choose_manifest(index, "linux/s390x")
    with pytest.raises(ImageError, match="no manifests list"):
        choose_manifest(None, "linux/amd64")


@pytest.mark.parametrize("fact, want", [("x86_64", "linux/amd64"), ("aarch64", "linux/arm64"),
                                        ("", "linux/amd64"), (None, "linux/amd64"), ("riscv64", "linux/riscv64")])
def test_host_platform_from_the_probe_fact(fact, want):
    assert host_platform(fact) == want


def test_settings_parse_and_per_group_override():
    s = parse_settings({
        "insecure": ["registry.lan:5000"],
        "mirrors": {"docker.io": ["mirror.lan:5000"], "quay.io": ["q.lan"]},
        "credentials": {"registry.lan:5000": {"username": "ci", "password": "pw"}},
        "groups": {"edge": {"mirrors": {"docker.io": ["10.0.0.5:5000"]}, "insecure": ["10.0.0.5:5000"]}},
    }, "config.yaml")
    assert s.is_insecure("registry.lan:5000") and s.is_insecure("127.0.0.1:9") and s.is_insecure("localhost:1")
    assert not s.is_insecure("docker.io")
    assert s.credential("registry.lan:5000") == Credential("ci", "pw")
    assert "pw" not in repr(s.credential("registry.lan:5000"))
    edge = s.for_groups(["core", "edge"])
    assert edge.mirrors_for("docker.io") == ("10.0.0.5:5000",) and edge.mirrors_for("quay.io") == ("q.lan",)
    assert edge.is_insecure("10.0.0.5:5000") and not s.is_insecure("10.0.0.5:5000")
    assert s.for_groups(["other"]).mirrors_for("docker.io") == ("mirror.lan:5000",)


@pytest.mark.parametrize("doc, field", [
    ([], "registries"),
    ({"mirror": {}}, "registries.mirror"),
    ({"insecure": "a:1"}, "registries.insecure"),
    ({"insecure": ["https://a/"]}, r"registries.insecure\[0\]"),
    ({"mirrors": {"docker.io": ["http://bad/"]}}, r"registries.mirrors.docker.io\[0\]"),
    ({"mirrors": {"not a host": ["a"]}}, "registries.mirrors.not a host"),
    ({"credentials": {"r.lan": {"username": "u"}}}, "registries.credentials.r.lan"),
    ({"credentials": {"r.lan": {"username": "u", "password": ""}}}, "registries.credentials.r.lan"),
    ({"groups": {"edge": {"credentials": {}}}}, "registries.groups.edge.credentials"),
])
def test_bad_settings_name_file_and_field(doc, field):
    with pytest.raises(UsageError, match=rf"^/etc/x/config.yaml: {field}: "):
        parse_settings(doc, "/etc/x/config.yaml")


def test_docker_auth_file():
    auth = base64.b64encode(b"user:pa:ss").decode()
    creds = parse_auth_file({"auths": {"https://index.docker.io/v1/": {"auth": auth},
                                       "r.lan:5000": {"username": "u", "password": "p"},
                                       "helper.lan": {"identitytoken": "x"}}}, "auth.json")
    assert creds == {"docker.io": Credential("user", "pa:ss"), "r.lan:5000": Credential("u", "p")}
    with pytest.raises(UsageError, match=r"auth.json: auths.x.auth: not base64"):
        parse_auth_file({"auths": {"x": {"auth": "!!!"}}}, "auth.json")
    s = parse_settings({"credentials": {"r.lan:5000": {"username": "v", "password": "q"}}}, "c.yaml",
                       {"auths": {"r.lan:5000": {"username": "u", "password": "p"}}})
    assert s.credential("r.lan:5000") == Credential("v", "q")  # config.yaml wins


@pytest.mark.parametrize("policy, local, starting, failure, want", [
    ("Always", "imported", True, None, USE),  # a local import pins the name
    ("IfNotPresent", "imported", True, None, USE),
    ("Never", "imported", True, None, USE),
    ("Never", "pulled", True, None, USE),
    ("Never", None, True, None, NEVER),
    ("Never", None, False, None, NEVER),
    ("IfNotPresent", "pulled", True, None, USE),
    ("IfNotPresent", None, True, None, PULL),
    ("Always", "pulled", True, None, PULL),  # re-resolve when the pod is created
    ("Always", "pulled", False, None, USE),  # not on a no-op reconcile
    ("Always", None, False, None, SKIP),
    ("IfNotPresent", None, True, Failure(1, "x", 995.0), BACKOFF),  # 10 s back-off
    ("IfNotPresent", None, True, Failure(1, "x", 989.0), PULL),
    ("Always", "pulled", True, Failure(3, "x", 965.0), BACKOFF),  # 40 s back-off
])
def test_pull_decisions(policy, local, starting, failure, want):
    assert decide(policy, local, starting, failure, 1000.0) == want


def test_backoff_doubles_to_five_minutes():
    assert [backoff_until(Failure(n, "", 0.0)) for n in (1, 2, 3, 6, 20)] == [10, 20, 40, 300, 300]


def test_waiting_reasons_carry_the_registry_message():
    f = Failure(1, "r:5000: 401 UNAUTHORIZED: authentication required", 995.0)
    assert waiting_reason("r:5000/a:1", PULL, f, 1000.0) == (
        "ErrImagePull", 'failed to pull image "r:5000/a:1": r:5000: 401 UNAUTHORIZED: authentication required')
    reason, message = waiting_reason("r:5000/a:1", BACKOFF, f, 1020.0)
    assert reason == "ImagePullBackOff" and "401 UNAUTHORIZED" in message
    assert waiting_reason("x:1", NEVER, None, 0)[0] == "ErrImageNeverPull"
    assert waiting_reason("x:1", PULL, None, 0) is None  # not tried yet: ContainerCreating
    assert waiting_reason("x:1", USE, f, 1000.0) is None


def test_refusal_hint_tells_why_the_registry_refused_what_was_sent():
    scope = "repository:private/app:pull"

    def challenge(error: str) -> list[str]:
        return [f'Bearer realm="http://127.0.0.1:1/token",service="reg",scope="{scope}"'
                + (f',error="{error}"' if error else "")]

    assert refusal_hint("Bearer t", challenge("insufficient_scope"), "x") == (
        " (insufficient_scope: the token server's token does not grant repository:private/app:pull)")
    assert "invalid_token: the registry could not verify" in refusal_hint("Bearer t", challenge("invalid_token"), "x")
    assert refusal_hint("Bearer t", challenge(""), scope) == f" (the registry refused the token for {scope})"
    assert refusal_hint("Bearer t", [], scope) == f" (the registry refused the token for {scope})"
    assert refusal_hint("Basic dTpw", ['Basic realm="r"'], scope) == " (the registry refused the username and password)"


A, B, C = "a" * 64, "b" * 64, "c" * 64


def test_image_gc_clock():
    seen, delete = image_gc({A, B, "junk"}, {A}, {}, 1000.0, 120.0)
    assert seen == {A: None, B: 1000.0} and delete == []
    seen, delete = image_gc({A, B}, {A}, seen, 1119.0, 120.0)
    assert seen[B] == 1000.0 and delete == []
    seen, delete = image_gc({A, B}, {A}, seen, 1120.0, 120.0)
    assert delete == [B]
    seen, delete = image_gc({A, B}, {A, B}, {B: 1000.0}, 2000.0, 120.0)  # used again: clock reset
    assert seen == {A: None, B: None} and delete == []
    assert image_gc({B}, set(), {B: 0.0}, 9999.0, None)[1] == []  # GC off


def test_reconcile_deletes_unused_images_but_never_one_it_pushes():
    snap = HostSnapshot("h1", "ok", images=frozenset({A, B}))
    desired = [DesiredPod("u1", "default/p", "h1", digests=(C,))]
    plan = reconcile(desired, {"h1": snap, "h2": HostSnapshot("h2", "unreachable")},
                     image_gc={"h1": [B, C], "h2": [A]})
    assert [(a.verb, a.host, a.digest) for a in plan.actions] == [
        ("push-image", "h1", C), ("create", "h1", ""), ("delete-image", "h1", B)]
    assert plan.summary() == "1 to push-image, 1 to create, 1 to delete-image"
    assert Action("delete-image", "h1", digest=B).describe() == f"delete-image {B[:12]} on h1"
