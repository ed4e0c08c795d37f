"""Registry settings: the `registries:` section of $PODCTL_HOME/config.yaml, validated.

    registries:
      insecure: ["registry.lan:5000"]        # plain HTTP (loopback registries always are)
      mirrors:                               # tried in order before the registry itself
        docker.io: ["mirror.lan:5000"]
      credentials:                           # per registry host; never printed
        registry.lan:5000: {username: ci, password: s3cret}
      authFile: /root/.docker/config.json    # docker-style {"auths": {host: {auth: base64}}}
      groups:                                # per inventory group (a host's first group
        edge: {mirrors: {docker.io: ["10.0.0.5:5000"]}}   # listed here wins)

Every error names the file and the field, and comes before anything is pulled or any
host is touched. Pure parsing (`parse_settings`) is separate from reading files.
"""

from __future__ import annotations

import base64
import ipaddress
import json
import os
import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Iterable, Mapping

from .errors import UsageError

DOCKER_HUB = "docker.io"
_HOST = re.compile(r"(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*"
                   r"|\[[0-9a-fA-F:]+\])(?::[0-9]{1,5})?\Z")
_KNOWN = ("insecure", "mirrors", "credentials", "authFile", "groups")
_GROUP_KNOWN = ("insecure", "mirrors")
HELP = """\
registries (in $PODCTL_HOME/config.yaml):
  insecure: [HOST[:PORT], ...]           plain HTTP (loopback registries always are)
  mirrors: {REGISTRY: [HOST[:PORT], ...]}  tried in order, then REGISTRY itself
  credentials: {REGISTRY: {username: U, password: P}}
  authFile: PATH                         docker-style auths file (config.json)
  groups: {GROUP: {mirrors: ..., insecure: ...}}   per inventory host group
"""


@dataclass(frozen=True)
class Credential:
    username: str
    password: str = field(repr=False)  # never shown, not even in a traceback's repr


@dataclass(frozen=True)
class RegistrySettings:
    insecure: frozenset[str] = frozenset()
    mirrors: tuple[tuple[str, tuple[str, ...]], ...] = ()
    credentials: tuple[tuple[str, Credential], ...] = ()
    groups: tuple[tuple[str, "RegistrySettings"], ...] = ()

    def mirrors_for(self, registry: str) -> tuple[str, ...]:
        return dict(self.mirrors).get(registry, ())

    def credential(self, registry: str) -> Credential | None:
        return dict(self.credentials).get(registry)

    def is_insecure(self, registry: str) -> bool:
        return registry in self.insecure or is_loopback(registry)

    def for_groups(self, groups: Iterable[str]) -> "RegistrySettings":
        """The settings a host of these groups pulls with: the first of its groups that
        has a `groups` entry adds its insecure hosts and replaces mirrors per registry."""
        by_name = dict(self.groups)
        for g in groups:
            if g in by_name:
                over = by_name[g]
                mirrors = {**dict(self.mirrors), **dict(over.mirrors)}
                return replace(self, insecure=self.insecure | over.insecure,
                               mirrors=tuple(sorted(mirrors.items())), groups=())
        return replace(self, groups=())


def host_only(registry: str) -> str:
    """'127.0.0.1:5000' -> '127.0.0.1'; '[::1]:5000' -> '::1'."""
    if registry.startswith("["):
        return registry[1:registry.index("]")]
    return registry.rsplit(":", 1)[0] if registry.count(":") == 1 else registry


def is_loopback(registry: str) -> bool:
    host = host_only(registry)
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def normalize_registry(key: str) -> str:
    """Auth-file keys come as 'https://index.docker.io/v1/' or 'host:port': the host."""
    key = re.sub(r"^[a-z]+://", "", key.strip()).split("/", 1)[0]
    return DOCKER_HUB if key in ("index.docker.io", "registry-1.docker.io", "docker.io") else key


class _Bad:
    def __init__(self, source: str):
        self.source = source

    def __call__(self, fieldname: str, problem: str) -> UsageError:
        return UsageError(f"{self.source}: {fieldname}: {problem}\n{HELP}")


def _hosts(bad: _Bad, value: object, where: str) -> tuple[str, ...]:
    if not isinstance(value, list):
        raise bad(where, f"expected a list of registry hosts (HOST[:PORT]), not {value!r}")
    out = []
    for i, h in enumerate(value):
        if not isinstance(h, str) or not _HOST.match(h):
            raise bad(f"{where}[{i}]", f"{h!r} is not a registry host: HOST[:PORT], without scheme or path")
        out.append(normalize_registry(h))
    return tuple(out)


def _registry_key(bad: _Bad, key: object, where: str) -> str:
    if not isinstance(key, str) or not _HOST.match(key):
        raise bad(where, f"{key!r} is not a registry host: HOST[:PORT] (docker.io for Docker Hub)")
    return normalize_registry(key)


def _mirrors(bad: _Bad, value: object, where: str) -> tuple[tuple[str, tuple[str, ...]], ...]:
    if not isinstance(value, dict):
        raise bad(where, "expected a mapping of registry host -> list of mirror hosts")
    return tuple(sorted((_registry_key(bad, k, f"{where}.{k}"), _hosts(bad, v, f"{where}.{k}"))
                        for k, v in value.items()))


def _section(bad: _Bad, doc: dict, where: str, known: tuple[str, ...]) -> None:
    unknown = sorted(set(doc) - set(known), key=str)
    if unknown:
        raise bad(f"{where}.{unknown[0]}", f"unknown field (known: {', '.join(known)})")


def parse_settings(doc: object, source: str, auth_file: Mapping | None = None,
                   auth_source: str = "") -> RegistrySettings:
    """The `registries` mapping (None: defaults) -> RegistrySettings. `auth_file` is the
    parsed docker-style auths document, if any; config.yaml credentials win over it."""
    bad = _Bad(source)
    if doc is None:
        doc = {}
    if not isinstance(doc, dict):
        raise bad("registries", "expected a mapping")
    _section(bad, doc, "registries", _KNOWN)
    insecure = frozenset(_hosts(bad, doc.get("insecure") or [], "registries.insecure"))
    mirrors = _mirrors(bad, doc.get("mirrors") or {}, "registries.mirrors")
    creds: dict[str, Credential] = {}
    if auth_file is not None:
        creds.update(parse_auth_file(auth_file, auth_source or "authFile"))
    cdoc = doc.get("credentials") or {}
    if not isinstance(cdoc, dict):
        raise bad("registries.credentials", "expected a mapping of registry host -> {username, password}")
    for key, c in cdoc.items():
        where = f"registries.credentials.{key}"
        reg = _registry_key(bad, key, where)
        if not isinstance(c, dict) or set(c) != {"username", "password"}:
            raise bad(where, "expected exactly {username: ..., password: ...}")
        if not all(isinstance(c[k], str) and c[k] for k in ("username", "password")):
            raise bad(where, "username and password must be non-empty strings")
        creds[reg] = Credential(c["username"], c["password"])
    groups = []
    gdoc = doc.get("groups") or {}
    if not isinstance(gdoc, dict):
        raise bad("registries.groups", "expected a mapping of inventory group -> {mirrors, insecure}")
    for name, g in gdoc.items():
        where = f"registries.groups.{name}"
        if not isinstance(g, dict):
            raise bad(where, "expected a mapping with mirrors and/or insecure")
        _section(bad, g, where, _GROUP_KNOWN)
        groups.append((str(name), RegistrySettings(
            insecure=frozenset(_hosts(bad, g.get("insecure") or [], f"{where}.insecure")),
            mirrors=_mirrors(bad, g.get("mirrors") or {}, f"{where}.mirrors"))))
    return RegistrySettings(insecure, mirrors, tuple(sorted(creds.items())), tuple(groups))


def parse_auth_file(doc: object, source: str) -> dict[str, Credential]:
    """A docker config.json's `auths`: {host: {auth: base64(user:pass)} or {username, password}}."""
    bad = _Bad(source)
    if not isinstance(doc, dict) or not isinstance(doc.get("auths", {}), dict):
        raise bad("auths", "expected a JSON object with an 'auths' mapping")
    out = {}
    for key, entry in (doc.get("auths") or {}).items():
        where = f"auths.{key}"
        if not isinstance(entry, dict):
            raise bad(where, "expected an object with 'auth' or 'username'/'password'")
        if entry.get("auth"):
            try:
                user, sep, password = base64.b64decode(entry["auth"], validate=True).decode().partition(":")
            except (ValueError, UnicodeDecodeError):
                raise bad(f"{where}.auth", "not base64 of 'username:password'") from None
            if not sep or not user:
                raise bad(f"{where}.auth", "not base64 of 'username:password'")
        elif entry.get("username") and entry.get("password"):
            user, password = str(entry["username"]), str(entry["password"])
        else:
            continue  # credential helpers / identity tokens: not supported, skipped
        out[normalize_registry(key)] = Credential(user, password)
    return out


def load_settings(config_path: Path, doc: object) -> RegistrySettings:
    """parse_settings with the auth file read from disk (path relative to config.yaml)."""
    auth_doc, auth_source = None, ""
    if isinstance(doc, dict) and doc.get("authFile") is not None:
        raw = doc["authFile"]
        if not isinstance(raw, str) or not raw:
            raise _Bad(str(config_path))("registries.authFile", "expected a file path")
        path = (config_path.parent / os.path.expanduser(raw)).resolve()
        auth_source = str(path)
        try:
            auth_doc = json.loads(path.read_text())
        except OSError as exc:
            raise _Bad(str(config_path))("registries.authFile", f"cannot read {path}: {exc.strerror}") from exc
        except ValueError as exc:
            raise _Bad(auth_source)("(file)", f"not valid JSON: {exc}") from exc
    return parse_settings(doc, str(config_path), auth_doc, auth_source)


def registry_settings(config) -> RegistrySettings:
    """The settings of a Config ($PODCTL_HOME/config.yaml; defaults without one)."""
    path: Path = config.settings_file
    if not path.exists():
        return RegistrySettings()

    from .config import read_settings

    doc = read_settings(path)
    if not isinstance(doc, dict):
        raise UsageError(f"{path}: (top level): expected a mapping")
    return load_settings(path, doc.get("registries"))
