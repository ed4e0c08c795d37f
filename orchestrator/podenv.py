"""A container's environment, command line and config files, resolved as the kubelet
resolves them (kubelet_pods.go makeEnvironmentVariables): pure functions.

Order: envFrom sources in order (each key with its prefix), then env entries in order,
the last of a name winning; `value`s and then command/args get $(VAR) expansion against
the variables defined so far (third_party/forked/golang/expansion). Every value
remembers whether a Secret went into it: those never reach a script, an argv or a file
outside the pod's secrets tmpfs (runtime.py delivers them out of band).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Callable, Mapping, Sequence

from .configobjects import ConfigObject
from .model import (Container, EnvFromSource, FieldRef, ImageConfig, KeyRef, Pod, ResourceFieldRef,
                    Volume)
from .quantity import parse_memory

# kubelet's IsEnvVarName: envFrom keys that fail it are skipped, with an event.
_ENV_VAR_NAME = re.compile(r"[-._a-zA-Z][-._a-zA-Z0-9]*\Z")
CLUSTER_DOMAIN = "cluster.local"


class ConfigMissing(Exception):
    """The pod names a ConfigMap/Secret (or a key) that does not exist and is not
    optional: its containers wait (`reason`: CreateContainerConfigError for env,
    FailedMount for volumes, as the kubelet reports them)."""

    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason = reason
        self.message = message


@dataclass(frozen=True)
class Value:
    text: str
    secret: bool = False


@dataclass(frozen=True)
class PodFacts:
    """What the kubelet knows when it starts the pod."""

    uid: str
    node_name: str
    host_ip: str
    pod_ip: str
    allocatable_cpu_m: int  # an unset limit resolves to these, as the kubelet does
    allocatable_memory: int
    objects: Mapping[tuple[str, str], ConfigObject] = field(default_factory=dict)  # (kind, name)


@dataclass
class Resolved:
    env: list[tuple[str, Value]]  # the container's own variables (image env not included)
    command: list[Value] | None
    args: list[Value] | None
    events: list[tuple[str, str]]  # (reason, message), Warning events


# ---------------------------------------------------------------- $(VAR) expansion


def expand(text: str, lookup: Callable[[str], Value | None]) -> Value:
    """Kubernetes' expansion.Expand: $(NAME) -> its value when defined (else left as
    written), $$ -> $, any other $ kept. The result is secret if a secret went in."""
    out, secret, i, n = [], False, 0, len(text)
    while i < n:
        ch = text[i]
        if ch != "$" or i + 1 >= n:
            out.append(ch)
            i += 1
            continue
        nxt = text[i + 1]
        if nxt == "$":
            out.append("$")
            i += 2
        elif nxt == "(":
            close = text.find(")", i + 2)
            if close < 0:  # unterminated: kept as written, to the end
                out.append(text[i:])
                break
            name = text[i + 2:close]
            found = lookup(name)
            if found is None:
                out.append(f"$({name})")
            else:
                out.append(found.text)
                secret = secret or found.secret
            i = close + 1
        else:
            out.append("$" + nxt)
            i += 2
    return Value("".join(out), secret)


# ---------------------------------------------------------------- values


def _object(facts: PodFacts, kind: str, name: str) -> ConfigObject | None:
    return facts.objects.get((kind, name))


def _not_found(kind: str, name: str) -> str:
    return f'{"configmap" if kind == "ConfigMap" else "secret"} "{name}" not found'


def field_value(pod: Pod, facts: PodFacts, path: str) -> str:
    m = re.match(r"metadata\.(labels|annotations)\['(.*)'\]\Z", path, re.S)
    if m:
        source = pod.meta.labels if m.group(1) == "labels" else pod.meta.annotations
        return dict(source).get(m.group(2), "")
    return {
        "metadata.name": pod.name,
        "metadata.namespace": pod.namespace,
        "metadata.uid": facts.uid,
        "spec.nodeName": facts.node_name,
        "spec.serviceAccountName": "default",  # the admission default; podctl has no others
        "status.podIP": facts.pod_ip,
        "status.podIPs": facts.pod_ip,
        "status.hostIP": facts.host_ip,
        "status.hostIPs": facts.host_ip,
    }[path]


def resource_value(pod: Pod, current: Container, facts: PodFacts, ref: ResourceFieldRef) -> str:
    """The kubelet's ExtractContainerResourceValue: limits default to the host's
    allocatable; divided by the divisor and rounded up."""
    c = next((x for x in pod.spec.all_containers() if x.name == ref.container_name), current) \
        if ref.container_name else current
    which, resource = ref.resource.split(".", 1)
    if resource == "cpu":
        if which == "limits":
            amount = c.limits.cpu_m or facts.allocatable_cpu_m
        else:
            amount = c.effective_requests().cpu_m or 0
        divisor = 1 if ref.divisor == "1m" else 1000
        return str(math.ceil(amount / divisor))
    if which == "limits":
        amount = c.limits.memory or facts.allocatable_memory
    else:
        amount = c.effective_requests().memory or 0
    divisor = parse_memory(ref.divisor) if ref.divisor else 1
    return str(math.ceil(amount / divisor))


def _key_value(pod: Pod, facts: PodFacts, ref: KeyRef) -> Value | None:
    obj = _object(facts, ref.kind, ref.name)
    if obj is None:
        if ref.optional:
            return None
        raise ConfigMissing("CreateContainerConfigError", _not_found(ref.kind, ref.name))
    if ref.key not in obj.env_keys():
        if ref.optional:
            return None
        raise ConfigMissing("CreateContainerConfigError",
                            f"couldn't find key {ref.key} in {ref.kind} {pod.namespace}/{ref.name}")
    return Value(obj.mapping()[ref.key].decode(errors="replace"), ref.kind == "Secret")


def _env_from(pod: Pod, facts: PodFacts, src: EnvFromSource, env: dict[str, Value],
              events: list[tuple[str, str]]) -> None:
    obj = _object(facts, src.kind, src.name)
    if obj is None:
        if src.optional:
            return
        raise ConfigMissing("CreateContainerConfigError", _not_found(src.kind, src.name))
    invalid = []
    data = obj.mapping()
    for key in obj.env_keys():
        name = src.prefix + key
        if not _ENV_VAR_NAME.match(name):
            invalid.append(name)
            continue
        env[name] = Value(data[key].decode(errors="replace"), src.kind == "Secret")
    if invalid:
        what = "configMap" if src.kind == "ConfigMap" else "secret"
        events.append(("InvalidEnvironmentVariableNames",
                       f"Keys [{', '.join(sorted(invalid))}] from the EnvFrom {what} "
                       f"{pod.namespace}/{src.name} were skipped since they are considered invalid "
                       "environment variable names."))


def resolve(pod: Pod, c: Container, facts: PodFacts) -> Resolved:
    """The container's variables and its command/args after expansion; raises
    ConfigMissing when a required ConfigMap, Secret or key is missing."""
    env: dict[str, Value] = {}
    events: list[tuple[str, str]] = []
    for src in c.env_from:
        _env_from(pod, facts, src, env, events)
    for e in c.env:
        ref = e.value_from
        if e.value or ref is None:
            value = expand(e.value, env.get)
        elif isinstance(ref, FieldRef):
            value = Value(field_value(pod, facts, ref.field_path))
        elif isinstance(ref, ResourceFieldRef):
            value = Value(resource_value(pod, c, facts, ref))
        else:
            found = _key_value(pod, facts, ref)
            if found is None:
                continue  # optional and missing: the variable is not set
            value = found
        env[e.name] = value  # a redefinition keeps its place (merge_env's rule)

    def words(items: Sequence[str] | None) -> list[Value] | None:
        return None if not items else [expand(w, env.get) for w in items]

    return Resolved(list(env.items()), words(c.command), words(c.args), events)


def argv(resolved: Resolved, image: ImageConfig) -> list[Value]:
    """images.resolve_argv's rule with the expanded words (the image's are literal)."""
    if resolved.command:
        return resolved.command + (resolved.args or [])
    entrypoint = () if image.entrypoint == ("",) else image.entrypoint
    return [Value(w) for w in entrypoint] + (resolved.args or [Value(w) for w in image.cmd])


# ---------------------------------------------------------------- volumes


@dataclass(frozen=True)
class VolumeFile:
    volume: str
    path: str  # relative, normalised
    data: bytes
    mode: int
    secret: bool


def volume_files(pod: Pod, facts: PodFacts, v: Volume) -> list[VolumeFile]:
    """The files of a configMap or secret volume (items, or every key)."""
    kind = "ConfigMap" if v.kind == "configMap" else "Secret"
    obj = _object(facts, kind, v.source_name)
    what = f'MountVolume.SetUp failed for volume "{v.name}" : '
    if obj is None:
        if v.optional:
            return []
        raise ConfigMissing("FailedMount", what + _not_found(kind, v.source_name))
    data = obj.mapping()
    secret = kind == "Secret"
    if not v.items:
        return [VolumeFile(v.name, k, data[k], v.default_mode, secret) for k in sorted(data)]
    out = []
    for item in v.items:
        if item.key not in data:
            if v.optional:
                continue
            raise ConfigMissing("FailedMount", what + f"{kind.lower()} references non-existent "
                                f"config key: {item.key}")
        mode = v.default_mode if item.mode is None else item.mode
        out.append(VolumeFile(v.name, item.path, data[item.key], mode, secret))
    return out


def references(pod: Pod) -> set[tuple[str, str]]:
    """(kind, name) of every ConfigMap and Secret the pod names."""
    refs = set()
    for c in pod.spec.all_containers():
        refs |= {(s.kind, s.name) for s in c.env_from}
        refs |= {(e.value_from.kind, e.value_from.name) for e in c.env if isinstance(e.value_from, KeyRef)}
    for v in pod.spec.volumes:
        if v.kind in ("configMap", "secret"):
            refs.add(("ConfigMap" if v.kind == "configMap" else "Secret", v.source_name))
    return refs


def hostname(pod: Pod) -> str:
    return pod.spec.hostname or pod.name


def hosts_file(pod: Pod, ip: str) -> str:
    """The kubelet's managed /etc/hosts (kubelet_pods.go managedHostsFileContent)."""
    lines = ["# Kubernetes-managed hosts file.", "127.0.0.1\tlocalhost",
             "::1\tlocalhost ip6-localhost ip6-loopback", "fe00::0\tip6-localnet",
             "fe00::0\tip6-mcastprefix", "fe00::1\tip6-allnodes", "fe00::2\tip6-allrouters"]
    host = hostname(pod)
    if pod.spec.subdomain:
        fqdn = f"{host}.{pod.spec.subdomain}.{pod.namespace}.svc.{CLUSTER_DOMAIN}"
        lines.append(f"{ip}\t{fqdn}\t{host}")
    else:
        lines.append(f"{ip}\t{host}")
    text = "\n".join(lines) + "\n"
    if pod.spec.host_aliases:
        text += "\n# Entries added by HostAliases.\n"
        text += "".join(f"{a}\t{chr(9).join(names)}\n" for a, names in pod.spec.host_aliases)
    return text
