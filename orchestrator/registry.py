"""An OCI distribution client: pull an image from a registry into the image store.

    pull(store, "127.0.0.1:5000/app:1.0", settings, cache, platform="linux/amd64")

1. the reference is read as Docker does (`parse_reference`: docker.io/library defaults);
2. its manifest is fetched (OCI index/manifest, Docker manifest list / schema 2); an
   index picks the platform's manifest (`choose_manifest`);
3. config and layers are fetched by digest into a content-addressed cache shared by all
   images ($PODCTL_HOME/registry/blobs/sha256/<hex>): each blob's sha256 must equal its
   digest or it is refused; a partial download resumes (Range) and only a verified blob
   is renamed into place, so a killed pull never leaves a corrupt blob;
4. the blobs are hard-linked into a throwaway OCI layout and handed to
   ImageStore.import_source, the same flatten path as `podctl image import`.

Auth: anonymous first; on 401 the WWW-Authenticate challenge decides: Basic (send the
credential) or Bearer (ask the realm for a token for service/scope, with the credential
if there is one). Credentials are never printed and never on argv. Mirrors (per
registry) are tried in order before the registry itself. Insecure registries (and every
loopback one, as Docker) are spoken to over plain HTTP, all others over HTTPS.
"""

from __future__ import annotations

import base64
import fcntl
import hashlib
import json
import os
import re
import shutil
import tempfile
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from .errors import ImageError
from .images import _ARCH, ImageStore, _split_ref, parse_ref
from .model import ImageConfig
from .registry_config import DOCKER_HUB, Credential, RegistrySettings, is_loopback

OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
INDEX_TYPES = (OCI_INDEX, DOCKER_LIST)
MANIFEST_TYPES = (OCI_MANIFEST, DOCKER_MANIFEST)
ACCEPT = ", ".join(INDEX_TYPES + MANIFEST_TYPES)
_MANIFEST_LIMIT = 4 << 20
_CHUNK = 1 << 20
TIMEOUT = 30.0
LOOPBACK_ONLY_ENV = "PODCTL_REGISTRY_LOOPBACK_ONLY"  # tests: never reach a real registry


# ---------------------------------------------------------------- references


@dataclass(frozen=True)
class Reference:
    registry: str  # "docker.io", "127.0.0.1:5000"
    repository: str  # "library/busybox", "team/app"
    tag: str | None  # None when pulled by digest only
    digest: str | None  # "sha256:<hex>"; wins over the tag when both are given (as Docker)

    @property
    def store_ref(self) -> str:
        """The name the image store keeps it under (parse_ref's familiar form)."""
        name = self.repository
        if self.registry == DOCKER_HUB:
            name = name.removeprefix("library/") if name.count("/") == 1 else name
        else:
            name = f"{self.registry}/{name}"
        return f"{name}@{self.digest}" if self.digest else f"{name}:{self.tag}"

    @property
    def wanted(self) -> str:
        return self.digest or self.tag or "latest"

    def __str__(self) -> str:
        return f"{self.registry}/{self.repository}" + (f":{self.tag}" if self.tag else "") + (
            f"@{self.digest}" if self.digest else "")


def parse_reference(ref: str) -> Reference:
    """'busybox' -> docker.io/library/busybox:latest; 'host:5000/a/b:t' -> registry
    host:5000, repository a/b, tag t; '...@sha256:<hex>' pins the digest (a tag given
    with it is kept for display only). Errors name the reference and the grammar."""
    name, tag, digest = _split_ref(ref)
    first, sep, rest = name.partition("/")
    if sep and ("." in first or ":" in first or first == "localhost" or first != first.lower()):
        registry, repository = first, rest
    else:
        registry, repository = DOCKER_HUB, name if sep else f"library/{name}"
    return Reference(registry, repository, tag or (None if digest else "latest"), digest)


# ---------------------------------------------------------------- WWW-Authenticate

_TOKEN = r"[!#$%&'*+.^_`|~0-9A-Za-z-]+"
_PARAM = re.compile(rf'\s*({_TOKEN})\s*=\s*("(?:[^"\\]|\\.)*"|{_TOKEN})\s*(?:,|\Z)')
_SCHEME = re.compile(rf"\s*({_TOKEN})(?:\s+|\Z)")


def parse_challenges(header: str) -> list[tuple[str, dict[str, str]]]:
    """'Bearer realm="https://a/token",service="reg",scope="repository:x:pull"' ->
    [("bearer", {"realm": ..., "service": ..., "scope": ...})]. Several challenges in
    one header are split where a new scheme starts (RFC 7235); scheme names lowercased."""
    out: list[tuple[str, dict[str, str]]] = []
    pos = 0
    while pos < len(header):
        while pos < len(header) and header[pos] in " ,":
            pos += 1
        m = _SCHEME.match(header, pos)
        if not m or pos >= len(header):
            break
        scheme, pos = m.group(1).lower(), m.end()
        params: dict[str, str] = {}
        while True:
            p = _PARAM.match(header, pos)
            if not p:
                break
            value = p.group(2)
            if value.startswith('"'):
                value = re.sub(r"\\(.)", r"\1", value[1:-1])
            params[p.group(1).lower()] = value
            pos = p.end()
        out.append((scheme, params))
    return out


# ---------------------------------------------------------------- platforms


def host_platform(arch_fact: str | None) -> str:
    """The probe's `arch` fact (bash $HOSTTYPE: x86_64, aarch64...) as an OCI platform."""
    arch = (arch_fact or "").strip().lower()
    return "linux/" + (_ARCH.get(arch, arch) if arch else "amd64")


def _platform(desc: dict) -> tuple[str, str, str]:
    p = desc.get("platform") if isinstance(desc.get("platform"), dict) else {}
    return str(p.get("os", "")), str(p.get("architecture", "")), str(p.get("variant", ""))


def choose_manifest(manifests: object, platform: str) -> dict:
    """The descriptor of an index's manifest for `platform` ("os/arch[/variant]").

    Attestation manifests and unknown/unknown entries are skipped. A wanted variant must
    match; without one, an entry with no variant is preferred, then arm64's v8, then the
    first in index order (as containerd's default matcher orders them)."""
    if not isinstance(manifests, list):
        raise ImageError("the image index has no manifests list")
    descs = [d for d in manifests if isinstance(d, dict)
             and (d.get("annotations") or {}).get("vnd.docker.reference.type") != "attestation-manifest"
             and _platform(d)[0] not in ("", "unknown")]
    want = platform.split("/")
    os_, arch = want[0], want[1] if len(want) > 1 else "amd64"
    variant = want[2] if len(want) > 2 else ""
    matches = [d for d in descs if _platform(d)[:2] == (os_, arch) and (not variant or _platform(d)[2] == variant)]
    if not matches:
        have = ", ".join(sorted({"/".join(x for x in _platform(d) if x) for d in descs})) or "none"
        raise ImageError(f"no manifest for platform {platform} in the image index (it has: {have})")
    return sorted(matches, key=lambda d: (_platform(d)[2] not in ("", "v8")))[0]


# ---------------------------------------------------------------- HTTP


def _opener(loopback: bool) -> urllib.request.OpenerDirector:
    # Loopback never goes through an environment proxy; others honour http(s)_proxy.
    handlers = [urllib.request.ProxyHandler({})] if loopback else []
    return urllib.request.build_opener(*handlers)


def _registry_message(body: bytes, status: int, reason: str) -> str:
    """A registry's error body ({"errors": [{code, message}]}) as one line."""
    try:
        errors = json.loads(body[:65536]).get("errors") or []
        parts = [f"{e.get('code', '')}: {e.get('message', '')}".strip(": ") for e in errors if isinstance(e, dict)]
        if parts:
            return f"{status} {'; '.join(parts)}"
    except (ValueError, AttributeError):
        pass
    return f"{status} {reason}".strip()


def refusal_hint(auth: str, challenge_headers: list[str], scope: str) -> str:
    """Why the registry still answered 401 to the credential just sent, for the message:
    its body only says "authentication required"; the Bearer challenge's `error` tells a
    token for other repositories or actions (insufficient_scope) from one it could not
    verify (invalid_token: signature, issuer, audience, expiry)."""
    if not auth.startswith("Bearer "):
        return " (the registry refused the username and password)"
    params = dict(c for h in challenge_headers for c in parse_challenges(h)).get("bearer") or {}
    error = params.get("error", "")
    wanted = params.get("scope") or scope
    if error == "insufficient_scope":
        return f" (insufficient_scope: the token server's token does not grant {wanted})"
    if error == "invalid_token":
        return f" (invalid_token: the registry could not verify the token server's token for {wanted})"
    return f" (the registry refused the token for {wanted}{': ' + error if error else ''})"


class PullError(ImageError):
    """A pull failed; `str()` is the registry's message, as ErrImagePull shows it."""


class _Endpoint:
    """One registry host spoken to over HTTP(S), with its auth state for one pull."""

    def __init__(self, host: str, settings: RegistrySettings):
        self.host = host
        api_host = "registry-1.docker.io" if host == DOCKER_HUB else host
        if os.environ.get(LOOPBACK_ONLY_ENV) == "1" and not is_loopback(host):
            raise PullError(f"refusing to contact registry {host}: {LOOPBACK_ONLY_ENV}=1 allows loopback only")
        scheme = "http" if settings.is_insecure(host) else "https"
        self.base = f"{scheme}://{api_host}"
        self.cred: Credential | None = settings.credential(host)
        self.opener = _opener(is_loopback(host))
        self.auth: str | None = None  # the Authorization header that last worked

    def open(self, path: str, scope: str, headers: dict[str, str] | None = None):
        """GET path (retrying once after answering an auth challenge); the response."""
        url = self.base + path
        for attempt in range(2):
            req = urllib.request.Request(url, headers=headers or {})
            if self.auth:
                req.add_unredirected_header("Authorization", self.auth)  # not sent on to a redirect
            try:
                return self.opener.open(req, timeout=TIMEOUT)
            except urllib.error.HTTPError as exc:
                body = exc.read()
                if exc.code != 401 or attempt:
                    message = _registry_message(body, exc.code, exc.reason)
                    if exc.code == 401 and self.auth:
                        message += refusal_hint(self.auth, exc.headers.get_all("WWW-Authenticate") or [], scope)
                    raise PullError(f"{self.host}: {message}") from None
                self.auth = self._answer(exc.headers.get_all("WWW-Authenticate") or [], scope, body)
            except (urllib.error.URLError, OSError) as exc:
                reason = getattr(exc, "reason", exc)
                raise PullError(f"{self.host}: cannot connect: {reason}") from None
        raise AssertionError("unreachable")

    def _answer(self, headers: list[str], scope: str, body: bytes) -> str:
        challenges = [c for h in headers for c in parse_challenges(h)]
        schemes = dict(challenges)
        if "bearer" in schemes:
            return "Bearer " + self._token(schemes["bearer"], scope)
        if "basic" in schemes:
            if self.cred is None:
                raise PullError(f"{self.host}: {_registry_message(body, 401, 'Unauthorized')} "
                                f"(the registry wants a username and password; none configured)")
            return "Basic " + base64.b64encode(f"{self.cred.username}:{self.cred.password}".encode()).decode()
        raise PullError(f"{self.host}: 401 Unauthorized with no usable challenge ({', '.join(schemes) or 'none'})")

    def _token(self, params: dict[str, str], scope: str) -> str:
        realm = params.get("realm", "")
        if not realm.startswith(("https://", "http://")):
            raise PullError(f"{self.host}: bearer challenge without a usable realm ({realm!r})")
        host = urllib.parse.urlsplit(realm).hostname or ""
        if os.environ.get(LOOPBACK_ONLY_ENV) == "1" and not is_loopback(host):
            raise PullError(f"{self.host}: refusing to contact token server {host}: "
                            f"{LOOPBACK_ONLY_ENV}=1 allows loopback only")
        query = {"service": params["service"]} if params.get("service") else {}
        query["scope"] = params.get("scope") or scope
        req = urllib.request.Request(realm + ("&" if "?" in realm else "?") + urllib.parse.urlencode(query))
        if self.cred is not None:
            basic = base64.b64encode(f"{self.cred.username}:{self.cred.password}".encode()).decode()
            req.add_unredirected_header("Authorization", "Basic " + basic)
        try:
            with _opener(is_loopback(host)).open(req, timeout=TIMEOUT) as r:
                doc = json.loads(r.read(_MANIFEST_LIMIT))
        except urllib.error.HTTPError as exc:
            hint = " (no credentials configured for this registry)" if exc.code == 401 and self.cred is None else ""
            raise PullError(f"{self.host}: token server: "
                            f"{_registry_message(exc.read(), exc.code, exc.reason)}{hint}") from None
        except (urllib.error.URLError, OSError, ValueError) as exc:
            raise PullError(f"{self.host}: token server {host}: {getattr(exc, 'reason', exc)}") from None
        token = doc.get("token") or doc.get("access_token") if isinstance(doc, dict) else None
        if not isinstance(token, str) or not token:
            raise PullError(f"{self.host}: the token server's answer has no token")
        return token


# ---------------------------------------------------------------- the blob cache


class BlobCache:
    """Verified registry blobs, content-addressed: root/blobs/sha256/<hex>."""

    def __init__(self, root: Path):
        self.root = Path(root)
        self.blobs = self.root / "blobs" / "sha256"
        self.partial = self.root / "partial"

    def path(self, digest: str) -> Path:
        return self.blobs / _hex(digest)

    def has(self, digest: str) -> bool:
        return self.path(digest).is_file()

    def put_bytes(self, digest: str, data: bytes) -> Path:
        _check(digest, hashlib.sha256(data).hexdigest(), "manifest")
        self._dirs()
        if not self.has(digest):
            fd, tmp = tempfile.mkstemp(dir=self.partial, prefix="m-")
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.chmod(tmp, 0o444)
            os.replace(tmp, self.path(digest))
        return self.path(digest)

    def fetch(self, digest: str, size: int | None, opener: Callable[[int], object], label: str) -> Path:
        """Download `digest` unless cached. `opener(offset)` returns a response (status
        206 when it honoured the Range). A partial file left by a killed pull resumes;
        the blob enters the cache only once its sha256 equals the digest."""
        hexd = _hex(digest)
        if self.has(digest):
            return self.path(digest)
        self._dirs()
        part = self.partial / hexd
        with open(part, "ab+") as f:
            fcntl.flock(f, fcntl.LOCK_EX)  # one downloader per blob across processes
            if self.has(digest):
                return self.path(digest)
            f.seek(0)
            h = hashlib.sha256()
            while chunk := f.read(_CHUNK):
                h.update(chunk)
            offset = f.tell()
            resp = opener(offset)
            with resp:  # type: ignore[attr-defined]
                if offset and getattr(resp, "status", 200) != 206:
                    f.truncate(0)  # the registry ignored the Range: start over
                    h, offset = hashlib.sha256(), 0
                f.seek(offset)
                while chunk := resp.read(_CHUNK):  # type: ignore[attr-defined]
                    f.write(chunk)
                    h.update(chunk)
                    if size is not None and f.tell() > size:
                        break
            f.flush()
            os.fsync(f.fileno())
            got = f.tell()
            try:
                if size is not None and got != size:
                    raise PullError(f"{label}: size mismatch: the manifest says {size} bytes, "
                                    f"the registry sent {got}; refused")
                _check(digest, h.hexdigest(), label)
            except PullError:
                part.unlink(missing_ok=True)
                raise
            os.chmod(part, 0o444)
            os.replace(part, self.path(digest))
        return self.path(digest)

    def _dirs(self) -> None:
        self.blobs.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.partial.mkdir(parents=True, exist_ok=True, mode=0o700)


def _hex(digest: str) -> str:
    if not isinstance(digest, str) or not re.fullmatch(r"sha256:[0-9a-f]{64}", digest):
        raise PullError(f"unsupported or malformed digest {digest!r} (only sha256 is supported)")
    return digest[7:]


def _check(digest: str, actual_hex: str, label: str) -> None:
    if _hex(digest) != actual_hex:
        raise PullError(f"{label}: digest mismatch: expected {digest}, the content is sha256:{actual_hex}; refused")


# ---------------------------------------------------------------- pulling


@dataclass(frozen=True)
class Resolved:
    ref: Reference
    endpoint: str  # the host it came from (a mirror or the registry)
    digest: str  # of the top-level manifest (what `image@sha256:` pins): Kubernetes' imageID
    manifest_digest: str  # of the platform's manifest
    manifest: dict
    media_type: str
    platform: str


class Client:
    def __init__(self, settings: RegistrySettings, cache: BlobCache):
        self.settings = settings
        self.cache = cache

    def _endpoints(self, ref: Reference) -> list[_Endpoint]:
        hosts = list(self.settings.mirrors_for(ref.registry)) + [ref.registry]
        out, errors = [], []
        for h in dict.fromkeys(hosts):
            try:
                out.append(_Endpoint(h, self.settings))
            except PullError as exc:
                errors.append(str(exc))
        if not out:
            raise PullError("; ".join(errors))
        return out

    def resolve(self, ref: Reference, platform: str) -> tuple[_Endpoint, Resolved]:
        """The manifest of `ref` for `platform`, from the first mirror (or the registry)
        that has it; errors of every endpoint tried are reported together."""
        errors = []
        for ep in self._endpoints(ref):
            try:
                return ep, self._resolve(ep, ref, platform)
            except PullError as exc:
                errors.append(str(exc))
        raise PullError("; ".join(errors))

    def _manifest(self, ep: _Endpoint, ref: Reference, what: str) -> tuple[bytes, str, str]:
        scope = f"repository:{ref.repository}:pull"
        with ep.open(f"/v2/{ref.repository}/manifests/{what}", scope, {"Accept": ACCEPT}) as r:
            data = r.read(_MANIFEST_LIMIT + 1)
            ctype = (r.headers.get("Content-Type") or "").split(";")[0].strip()
        if len(data) > _MANIFEST_LIMIT:
            raise PullError(f"{ep.host}: manifest {what} is larger than {_MANIFEST_LIMIT} bytes")
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        if what.startswith("sha256:"):
            _check(what, digest[7:], f"{ep.host}: manifest")
        return data, digest, ctype

    def _resolve(self, ep: _Endpoint, ref: Reference, platform: str) -> Resolved:
        data, top, ctype = self._manifest(ep, ref, ref.wanted)
        doc = _json(data, f"{ep.host}: manifest {ref.wanted}")
        mtype = doc.get("mediaType") or ctype
        if mtype in INDEX_TYPES or ("manifests" in doc and "layers" not in doc):
            desc = choose_manifest(doc.get("manifests"), platform)
            data, mdigest, ctype = self._manifest(ep, ref, str(desc.get("digest")))
            doc = _json(data, f"{ep.host}: manifest {desc.get('digest')}")
            mtype = doc.get("mediaType") or desc.get("mediaType") or ctype
            chosen = "/".join(x for x in _platform(desc) if x)
        else:
            mdigest, chosen = top, platform
        if doc.get("schemaVersion") == 1 or "fsLayers" in doc:
            raise PullError(f"{ep.host}: {ref}: Docker schema 1 manifests are not supported (deprecated)")
        if not isinstance(doc.get("config"), dict) or not isinstance(doc.get("layers"), list):
            raise PullError(f"{ep.host}: {ref}: the manifest has no config or layers (media type {mtype!r})")
        self.cache.put_bytes(mdigest, data)
        return Resolved(ref, ep.host, top, mdigest, doc, mtype or OCI_MANIFEST, chosen)

    def fetch_blobs(self, ep: _Endpoint, res: Resolved) -> None:
        descs = [res.manifest["config"], *res.manifest["layers"]]
        scope = f"repository:{res.ref.repository}:pull"
        for i, d in enumerate(descs):
            digest, size = d.get("digest"), d.get("size")
            label = f"{ep.host}: {res.ref.repository}: " + ("config" if i == 0 else f"layer {i}/{len(descs) - 1}")
            path = f"/v2/{res.ref.repository}/blobs/{digest}"
            self.cache.fetch(str(digest), size if isinstance(size, int) else None,
                             lambda off, p=path: ep.open(p, scope, {"Range": f"bytes={off}-"} if off else {}),
                             f"{label} {str(digest)[:19]}")

    def layout(self, res: Resolved, dest: Path) -> None:
        """An OCI layout at `dest` holding one manifest, its blobs hard-linked from the cache."""
        blobs = dest / "blobs" / "sha256"
        blobs.mkdir(parents=True)
        (dest / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')
        digests = [res.manifest_digest, res.manifest["config"]["digest"]] + [d["digest"] for d in res.manifest["layers"]]
        for digest in dict.fromkeys(digests):
            src, dst = self.cache.path(digest), blobs / _hex(digest)
            try:
                os.link(src, dst)
            except OSError:
                shutil.copyfile(src, dst)
        os_, _, arch = res.platform.partition("/")
        arch, _, variant = arch.partition("/")
        desc = {"mediaType": res.media_type, "digest": res.manifest_digest,
                "size": self.cache.path(res.manifest_digest).stat().st_size,
                "platform": {"os": os_, "architecture": arch, **({"variant": variant} if variant else {})}}
        (dest / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": [desc]}))


def _json(data: bytes, label: str) -> dict:
    try:
        doc = json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise PullError(f"{label}: not valid JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise PullError(f"{label}: not a JSON object")
    return doc


def pull(store: ImageStore, ref: str, settings: RegistrySettings, cache_root: Path,
         platform: str = "linux/amd64") -> tuple[ImageConfig, bool]:
    """Pull `ref` for `platform` into the store; (the image, whether anything changed).

    The tag is always re-resolved at the registry (one manifest request); when the store
    already holds that digest for that platform nothing else is fetched."""
    parsed = parse_reference(ref)
    client = Client(settings, BlobCache(cache_root))
    ep, res = client.resolve(parsed, platform)
    key = parse_ref(parsed.store_ref)
    have = store.inspect(key)
    src = (have or {}).get("source") or {}
    if have and src.get("repo_digest") == res.digest and src.get("platform") == res.platform:
        return store.get(key), False  # type: ignore[return-value]
    client.fetch_blobs(ep, res)
    tmp_root = Path(cache_root) / "tmp"
    tmp_root.mkdir(parents=True, exist_ok=True, mode=0o700)
    with tempfile.TemporaryDirectory(prefix="pull-", dir=tmp_root) as tmp:
        client.layout(res, Path(tmp) / "layout")
        origin = {"kind": "registry", "registry": ep.host, "reference": str(parsed),
                  "repo_digest": res.digest, "platform": res.platform}
        img = store.import_source(key, Path(tmp) / "layout", platform=res.platform, origin=origin)
    return img, True


def is_pulled(store: ImageStore, ref: str) -> bool | None:
    """True: the store holds `ref` from a registry; False: imported locally (pinned);
    None: not in the store."""
    doc = store.inspect(ref)
    if doc is None:
        return None
    return (doc.get("source") or {}).get("kind") == "registry"
