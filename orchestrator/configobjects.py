"""ConfigMap and Secret objects (apiVersion v1): validated as the API server validates
them, stored in the objects table in the shape the API server returns them (a Secret's
stringData merged into base64 `data`), and read back for env vars and volumes.

This module imports manifests; manifests imports it lazily (inside its validators).
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass
from typing import Any, Mapping

from .manifests import (_Ctx, _Key, _check_fields, _object_meta, _show, _typed)
from .model import ObjectMeta

CONFIG_KINDS = ("ConfigMap", "Secret")
MAX_SIZE = 1024 * 1024  # Kubernetes' limit on a ConfigMap's or Secret's data
_KEY = re.compile(r"[-._a-zA-Z0-9]+")
# Secret types with keys the API server requires (core validation.ValidateSecret).
REQUIRED_KEYS = {
    "kubernetes.io/dockercfg": (".dockercfg",),
    "kubernetes.io/dockerconfigjson": (".dockerconfigjson",),
    "kubernetes.io/ssh-auth": ("ssh-privatekey",),
    "kubernetes.io/tls": ("tls.crt", "tls.key"),
}
COMMON_TYPES = ("Opaque", "kubernetes.io/service-account-token", "kubernetes.io/basic-auth",
                "bootstrap.kubernetes.io/token", *REQUIRED_KEYS)


@dataclass(frozen=True)
class ConfigObject:
    """A ConfigMap or a Secret: every key with its bytes. `text_keys`: a ConfigMap's
    `data` keys (env vars read only those; `binaryData` keys only become files)."""

    kind: str
    meta: ObjectMeta
    data: tuple[tuple[str, bytes], ...]
    text_keys: frozenset = frozenset()
    type: str = ""  # Secret only
    immutable: bool = False

    @property
    def name(self) -> str:
        return self.meta.name

    def mapping(self) -> dict[str, bytes]:
        return dict(self.data)

    def env_keys(self) -> list[str]:
        """The keys an env var may read: a Secret's all, a ConfigMap's `data` ones."""
        return [k for k, _ in self.data if self.kind == "Secret" or k in self.text_keys]


def config_key_problem(s: str) -> str | None:
    """Kubernetes' IsConfigMapKey (ConfigMap and Secret keys, volume item keys)."""
    if len(s) > 253:
        return f"{_show(s)} is longer than 253 characters"
    if not _KEY.fullmatch(s):
        return (f"{_show(s)}: a valid config key must consist of alphanumeric characters, '-', "
                "'_' or '.' (e.g. 'key.name', or 'KEY_NAME', or 'key-name', regex used for "
                "validation is '[-._a-zA-Z0-9]+')")
    if s in (".", "..") or s.startswith(".."):
        return f"{_show(s)}: must not be '.' or '..' and must not start with '..'"
    return None


FIELDS = {
    "ConfigMap": ("apiVersion", "kind", "metadata", "data", "binaryData", "immutable"),
    "Secret": ("apiVersion", "kind", "metadata", "data", "stringData", "type", "immutable"),
}


def _strings(ctx: _Ctx, value: Any, path: tuple) -> dict[str, str]:
    out = {}
    for key, val in (_typed(ctx, value, path, dict) or {}).items():
        here = path + (_Key(str(key)),)
        if not isinstance(key, str):
            ctx.error(path, f"keys are strings, got {key!r} (quote it)")
            continue
        problem = config_key_problem(key)
        if problem:
            ctx.error(here, problem)
            continue
        if val is None:
            val = ""
        if not isinstance(val, str):
            ctx.error(here, f"expected a string, got {_show(val)} (quote it)")
            continue
        out[key] = val
    return out


def _base64(ctx: _Ctx, values: dict[str, str], path: tuple) -> dict[str, bytes]:
    out = {}
    for key, val in values.items():
        try:
            out[key] = base64.b64decode(val, validate=True)
        except (binascii.Error, ValueError):
            ctx.error(path + (_Key(key),), "not valid base64 (a Secret's data and a ConfigMap's "
                                           "binaryData hold base64; use stringData or data for text)")
    return out


def validate(ctx: _Ctx, doc: dict) -> ConfigObject:
    kind = doc.get("kind")
    _check_fields(ctx, doc, (), kind)
    meta = _object_meta(ctx, doc.get("metadata"), ("metadata",))
    immutable = bool(_typed(ctx, doc.get("immutable"), ("immutable",), bool))
    if kind == "ConfigMap":
        text = _strings(ctx, doc.get("data"), ("data",))
        binary = _base64(ctx, _strings(ctx, doc.get("binaryData"), ("binaryData",)), ("binaryData",))
        for key in sorted(set(text) & set(binary)):
            ctx.error(("binaryData", _Key(key)), f"duplicate of key {key!r} in data (a key is in "
                                                 "data or in binaryData, not both)")
        data = {**{k: v.encode() for k, v in text.items()}, **binary}
        size = sum(len(v) for v in data.values())
        if size > MAX_SIZE:
            ctx.error(("data",), f"too long: {size} bytes of data, at most {MAX_SIZE}")
        return ConfigObject(kind, meta, tuple(sorted(data.items())), frozenset(text), "", immutable)
    data = _base64(ctx, _strings(ctx, doc.get("data"), ("data",)), ("data",))
    data.update({k: v.encode() for k, v in _strings(ctx, doc.get("stringData"), ("stringData",)).items()})
    type_ = doc.get("type")
    if type_ in (None, ""):
        type_ = "Opaque"
    elif not isinstance(type_, str):
        ctx.error(("type",), f"expected a string such as Opaque, got {_show(type_)}")
        type_ = "Opaque"
    for key in REQUIRED_KEYS.get(type_, ()):
        if key not in data:
            ctx.error(("data", _Key(key)), f"required for a Secret of type {type_}")
    if type_ == "kubernetes.io/basic-auth" and not {"username", "password"} & set(data):
        ctx.error(("data",), "a kubernetes.io/basic-auth Secret needs a username or a password key")
    if type_ == "kubernetes.io/service-account-token" and \
            not dict(meta.annotations).get("kubernetes.io/service-account.name"):
        ctx.error(("metadata", "annotations"), "a service-account-token Secret needs the "
                  "annotation kubernetes.io/service-account.name")
    size = sum(len(v) for v in data.values())
    if size > MAX_SIZE:
        ctx.error(("data",), f"too long: {size} bytes of data, at most {MAX_SIZE}")
    return ConfigObject(kind, meta, tuple(sorted(data.items())), frozenset(), type_, immutable)


def stored_doc(doc: Mapping, obj: ConfigObject) -> dict:
    """The object as the API server keeps it: a Secret's stringData folded into base64
    `data`, its type defaulted; a ConfigMap as given."""
    out = {k: v for k, v in doc.items() if k not in ("stringData", "status")}
    if obj.kind == "Secret":
        out["type"] = obj.type
        if obj.data:
            out["data"] = {k: base64.b64encode(v).decode() for k, v in obj.data}
        else:
            out.pop("data", None)
    return out


def from_doc(doc: Mapping, source: str) -> ConfigObject:
    """A stored ConfigMap or Secret, validated again."""
    from .manifests import _raise_collected

    ctx = _Ctx(file=source)
    obj = validate(ctx, dict(doc))
    _raise_collected(ctx.errors)
    return obj


def data_changed(old: Mapping, new: Mapping) -> bool:
    """Whether an update changes what an immutable object holds."""
    keys = ("data", "binaryData", "immutable")
    return any((old.get(k) or None) != (new.get(k) or None) for k in keys)


def shown_doc(doc: Mapping, uid: str, created: str | None) -> dict:
    """`get -o json`: the stored object with server-set metadata (Secret data stays base64,
    as kubectl shows it)."""
    out = dict(doc)
    meta = dict(out.get("metadata") or {})
    meta.setdefault("namespace", "default")
    meta.update({"uid": uid, "creationTimestamp": created})
    out["metadata"] = meta
    return out
