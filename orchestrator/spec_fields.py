"""Validation of the pod spec fields that feed containers their configuration: env
valueFrom, envFrom, configMap and secret volumes, hostAliases (as the API server's
core validation checks them), and their Kubernetes form for `get -o json`.

This module imports manifests; manifests imports it lazily (inside its validators).
"""

from __future__ import annotations

import ipaddress
import posixpath
import re
from typing import Any

from .configobjects import config_key_problem
from .manifests import (_LABEL_RULE, _Ctx, _check_fields, _items, _optional, _required, _show,
                        _typed, dns1123_label_problem, dns1123_subdomain_problem, env_name_problem)
from .model import (Container, EnvFromSource, EnvVar, FieldRef, KeyRef, KeyToPath, ResourceFieldRef,
                    Volume)

# fieldRef paths an env var may use (labels/annotations only with a ['key'] subscript).
FIELD_PATHS = ("metadata.name", "metadata.namespace", "metadata.uid", "spec.nodeName",
               "spec.serviceAccountName", "status.hostIP", "status.hostIPs", "status.podIP",
               "status.podIPs")
_SUBSCRIPT = re.compile(r"metadata\.(labels|annotations)\['(.+)'\]\Z", re.S)
RESOURCES = ("limits.cpu", "limits.memory", "requests.cpu", "requests.memory")
CPU_DIVISORS = ("1m", "1")
MEMORY_DIVISORS = ("1", "1k", "1M", "1G", "1T", "1P", "1E", "1Ki", "1Mi", "1Gi", "1Ti", "1Pi", "1Ei")


def field_path_problem(path: str) -> str | None:
    if path in FIELD_PATHS:
        return None
    m = _SUBSCRIPT.match(path)
    if m:
        from .manifests import label_key_problem
        return label_key_problem(m.group(2))
    if path in ("metadata.labels", "metadata.annotations"):
        return f"{_show(path)} needs a key for an env var, e.g. {path}['app']"
    return (f"{_show(path)} is not supported (supported: {', '.join(FIELD_PATHS)}, "
            "metadata.labels['<key>'], metadata.annotations['<key>'])")


def _bool(ctx: _Ctx, value: Any, path: tuple) -> bool:
    return bool(_typed(ctx, value, path, bool))


def value_from(ctx: _Ctx, value: Any, path: tuple):
    src = _typed(ctx, value, path, dict)
    if src is None:
        return None
    _check_fields(ctx, src, path, "EnvVarSource")
    given = [k for k in ("fieldRef", "resourceFieldRef", "configMapKeyRef", "secretKeyRef")
             if src.get(k) is not None]
    if len(given) != 1:
        ctx.error(path, "must specify exactly one of fieldRef, resourceFieldRef, configMapKeyRef, "
                        f"secretKeyRef (found {', '.join(given) or 'none'})")
        return None
    kind = given[0]
    here = path + (kind,)
    ref = _typed(ctx, src[kind], here, dict)
    if ref is None:
        return None
    if kind == "fieldRef":
        _check_fields(ctx, ref, here, "ObjectFieldSelector")
        api = ref.get("apiVersion") or "v1"
        if api != "v1":
            ctx.error(here + ("apiVersion",), f"{_show(api)} is not supported (supported: v1)")
        fp = _required(ctx, ref, here, "fieldPath", "e.g. metadata.name", field_path_problem)
        return FieldRef(fp) if fp else None
    if kind == "resourceFieldRef":
        _check_fields(ctx, ref, here, "ResourceFieldSelector")
        res = _required(ctx, ref, here, "resource", "e.g. limits.memory",
                        lambda r: None if r in RESOURCES else
                        f"{_show(r)} is not supported (supported: {', '.join(RESOURCES)})")
        cname = _optional(ctx, ref.get("containerName"), here + ("containerName",),
                          dns1123_label_problem) or ""
        divisor = ref.get("divisor")
        if divisor is not None and not isinstance(divisor, str):
            divisor = str(divisor)
        divisor = divisor or ""
        if res and divisor and divisor not in (CPU_DIVISORS if res.endswith("cpu") else MEMORY_DIVISORS):
            allowed = CPU_DIVISORS if res.endswith("cpu") else MEMORY_DIVISORS
            ctx.error(here + ("divisor",), f"{_show(divisor)} is not a valid divisor for {res} "
                                           f"(allowed: {', '.join(allowed)})")
        return ResourceFieldRef(res, cname, divisor) if res else None
    _check_fields(ctx, ref, here, "KeySelector")
    name = _required(ctx, ref, here, "name", "the object's name", dns1123_subdomain_problem)
    key = _required(ctx, ref, here, "key", "a key of the object", config_key_problem)
    optional = _bool(ctx, ref.get("optional"), here + ("optional",))
    if name is None or key is None:
        return None
    return KeyRef("ConfigMap" if kind == "configMapKeyRef" else "Secret", name, key, optional)


def env(ctx: _Ctx, value: Any, path: tuple) -> tuple[EnvVar, ...]:
    from .manifests import no_nul_problem
    out = []
    for here, item in _items(ctx, value, path, "an env entry"):
        _check_fields(ctx, item, here, "EnvVar")
        name = _required(ctx, item, here, "name", "a variable name such as 'LOG_LEVEL'",
                         env_name_problem)
        val = _optional(ctx, item.get("value"), here + ("value",), no_nul_problem) or ""
        source = None
        if item.get("valueFrom") is not None:
            if val:
                ctx.error(here + ("valueFrom",), "may not be specified when `value` is not empty")
            source = value_from(ctx, item["valueFrom"], here + ("valueFrom",))
        if name is not None:
            out.append(EnvVar(name=name, value=val, value_from=source))
    return tuple(out)  # duplicates kept in order: the last one wins, as in Kubernetes


def env_from(ctx: _Ctx, value: Any, path: tuple) -> tuple[EnvFromSource, ...]:
    out = []
    for here, item in _items(ctx, value, path, "an envFrom entry"):
        _check_fields(ctx, item, here, "EnvFromSource")
        given = [k for k in ("configMapRef", "secretRef") if item.get(k) is not None]
        prefix = _optional(ctx, item.get("prefix"), here + ("prefix",), env_name_problem) or ""
        if len(given) != 1:
            ctx.error(here, "must specify exactly one of configMapRef, secretRef "
                            f"(found {', '.join(given) or 'none'})")
            continue
        at = here + (given[0],)
        ref = _typed(ctx, item[given[0]], at, dict)
        if ref is None:
            continue
        _check_fields(ctx, ref, at, "ObjectReference")
        name = _required(ctx, ref, at, "name", "the object's name", dns1123_subdomain_problem)
        optional = _bool(ctx, ref.get("optional"), at + ("optional",))
        if name is not None:
            out.append(EnvFromSource("ConfigMap" if given[0] == "configMapRef" else "Secret", name,
                                     prefix, optional))
    return tuple(out)


def _mode(ctx: _Ctx, value: Any, path: tuple) -> int | None:
    mode = _typed(ctx, value, path, int)
    if mode is not None and not 0 <= mode <= 0o777:
        ctx.error(path, f"{mode} is out of range (allowed: 0..0777 octal, 0..511 decimal)")
        return None
    return mode


def item_path_problem(p: str) -> str | None:
    if not p:
        return "must not be empty"
    if p.startswith("/"):
        return f"{_show(p)} must be a relative path"
    if "\0" in p:
        return f"{_show(p)} contains a NUL character"
    if any(part == ".." for part in p.split("/")) or p.startswith(".."):
        return f"{_show(p)} must not contain '..'"
    if posixpath.normpath(p) in (".", ""):
        return f"{_show(p)} names no file"
    return None


def config_volume(ctx: _Ctx, kind: str, source: dict, path: tuple, name: str) -> Volume | None:
    table = "ConfigMapVolumeSource" if kind == "configMap" else "SecretVolumeSource"
    _check_fields(ctx, source, path, table)
    name_field = "name" if kind == "configMap" else "secretName"
    obj = _required(ctx, source, path, name_field, "the object's name", dns1123_subdomain_problem)
    items = []
    seen: dict = {}
    for here, item in _items(ctx, source.get("items"), path + ("items",), "an item"):
        _check_fields(ctx, item, here, "KeyToPath")
        key = _required(ctx, item, here, "key", "a key of the object", config_key_problem)
        rel = _required(ctx, item, here, "path", "a relative path", item_path_problem)
        mode = _mode(ctx, item.get("mode"), here + ("mode",))
        if rel is not None:
            norm = posixpath.normpath(rel)
            if norm in seen:
                ctx.error(here + ("path",), f"duplicate path {rel!r} (first at items[{seen[norm]}])")
            seen[norm] = here[-1]
        if key is not None and rel is not None:
            items.append(KeyToPath(key, posixpath.normpath(rel), mode))
    default = _mode(ctx, source.get("defaultMode"), path + ("defaultMode",))
    optional = _bool(ctx, source.get("optional"), path + ("optional",))
    if obj is None:
        return None
    return Volume(name=name, kind=kind, source_name=obj, items=tuple(items),
                  default_mode=0o644 if default is None else default, optional=optional)


def host_aliases(ctx: _Ctx, value: Any, path: tuple) -> tuple[tuple[str, tuple[str, ...]], ...]:
    out = []
    for here, item in _items(ctx, value, path, "a host alias"):
        _check_fields(ctx, item, here, "HostAlias")
        ip = _required(ctx, item, here, "ip", "an IP address", _ip_problem)
        names = []
        for i, h in enumerate(_typed(ctx, item.get("hostnames"), here + ("hostnames",), list) or ()):
            from .manifests import _checked
            h = _checked(ctx, h, here + ("hostnames", i), dns1123_subdomain_problem)
            if h is not None:
                names.append(h)
        if ip is not None:
            out.append((ip, tuple(names)))
    return tuple(out)


def _ip_problem(s: str) -> str | None:
    try:
        ipaddress.ip_address(s)
    except ValueError:
        return f"{_show(s)} is not a valid IP address"
    return None


def pod_naming(ctx: _Ctx, spec: dict, path: tuple) -> tuple[str | None, str | None]:
    hostname = _optional(ctx, spec.get("hostname"), path + ("hostname",), dns1123_label_problem)
    subdomain = _optional(ctx, spec.get("subdomain"), path + ("subdomain",), dns1123_label_problem)
    return hostname, subdomain


def check_references(ctx: _Ctx, containers: tuple[Container, ...], path: tuple) -> None:
    """resourceFieldRef.containerName must name a container of the pod."""
    names = {c.name for c in containers}
    for i, c in enumerate(containers):
        for j, e in enumerate(c.env):
            ref = e.value_from
            if isinstance(ref, ResourceFieldRef) and ref.container_name and ref.container_name not in names:
                ctx.error(path + (i, "env", j, "valueFrom", "resourceFieldRef", "containerName"),
                          f"{_show(ref.container_name)} is not a container of this pod "
                          f"(containers: {', '.join(sorted(names))})")


# ---------------------------------------------------------------- to Kubernetes


def env_to_k8s(e: EnvVar) -> dict:
    out: dict[str, Any] = {"name": e.name}
    if e.value:
        out["value"] = e.value
    ref = e.value_from
    if isinstance(ref, FieldRef):
        out["valueFrom"] = {"fieldRef": {"apiVersion": ref.api_version, "fieldPath": ref.field_path}}
    elif isinstance(ref, ResourceFieldRef):
        r: dict[str, Any] = {"resource": ref.resource}
        if ref.container_name:
            r["containerName"] = ref.container_name
        if ref.divisor:
            r["divisor"] = ref.divisor
        out["valueFrom"] = {"resourceFieldRef": r}
    elif isinstance(ref, KeyRef):
        sel: dict[str, Any] = {"name": ref.name, "key": ref.key}
        if ref.optional:
            sel["optional"] = True
        out["valueFrom"] = {("configMapKeyRef" if ref.kind == "ConfigMap" else "secretKeyRef"): sel}
    return out


def env_from_to_k8s(e: EnvFromSource) -> dict:
    ref: dict[str, Any] = {"name": e.name}
    if e.optional:
        ref["optional"] = True
    out: dict[str, Any] = {("configMapRef" if e.kind == "ConfigMap" else "secretRef"): ref}
    if e.prefix:
        out["prefix"] = e.prefix
    return out


def config_volume_to_k8s(v: Volume) -> dict:
    src: dict[str, Any] = {("name" if v.kind == "configMap" else "secretName"): v.source_name}
    if v.items:
        src["items"] = [{"key": i.key, "path": i.path, **({"mode": i.mode} if i.mode is not None else {})}
                        for i in v.items]
    src["defaultMode"] = v.default_mode
    if v.optional:
        src["optional"] = True
    return {"name": v.name, v.kind: src}


_ = _LABEL_RULE  # (re-exported names kept in one import list)
