"""Inventories -> `Host` values: Ansible YAML, Ansible INI, `vagrant ssh-config` output.

The format is detected from the content (`detect_format`), not from the file name:
an ssh-config starts with a `Host NAME` line, an INI file has `[group]` headers (or
is a bare list of `host key=value` lines), anything else must be a YAML mapping.

Every format is first read into the same raw shape (groups with vars, hosts and
children; per-host vars), then one resolver applies Ansible's variable precedence
and one builder validates the recognised variables, so all formats behave alike.

Precedence (lowest first), as Ansible does it:
  all.vars < parent group vars < child group vars < host vars.
Groups are ordered by depth (the longest path from `all`), then by
`ansible_group_priority` (default 1), then by name; a later group wins. So for two
sibling groups at the same depth that set the same variable, the group whose name
sorts LAST wins (`web` beats `db`), unless `ansible_group_priority` says otherwise.
A host listed in several groups gets its host vars merged in file order (a later
entry wins per key). Mappings and lists are replaced, never merged (Ansible's
default `hash_behaviour=replace`): a host's `labels` replaces its group's `labels`.

Recognised variables (others, including unknown `ansible_*` and app vars, are ignored,
but an unknown `podctl_*` variable is an error, to catch typos):
  ansible_host (alias ansible_ssh_host)       address, default: the host name
  ansible_port (alias ansible_ssh_port)       default 22
  ansible_user (alias ansible_ssh_user)       default root (NOT the local user)
  ansible_ssh_private_key_file (alias ansible_private_key_file)
  ansible_password / ansible_ssh_pass
  ansible_become (Ansible booleans), ansible_become_user (default root),
  ansible_become_method (only sudo), ansible_connection (only ssh; local is refused)
  labels      mapping of Kubernetes label key -> value, or "k=v,k2=v2"
  taints      list of {key, value, effect} or "key=value:Effect" / "key:Effect"
              strings (a comma-separated string also works, handy in INI)
  cpu, memory, max_pods   capacity overrides (see below)
  pod_cidr    the host's pod network, e.g. 10.244.1.0/24; hosts must not overlap
  podctl_known_hosts      known_hosts file for this host (default ~/.ssh/known_hosts)
  podctl_host_key_checking  strict (default) | accept-new -> Inventory.host_key_checking
  podctl_fence_command    run on the controller when the host is NotReady and has
                          StatefulSet pods, to power it off / confirm it down (e.g.
                          "vagrant halt node2"); a list of words or one string split
                          like a shell would (no shell runs it); {host} is replaced by
                          the host name. Exit 0 = fenced.
  podctl_node_ip  the IPv4 address other hosts send this host's pod traffic to (host-gw
                  routes, podnet.py); default: ansible_host when that is a non-loopback IPv4
                  address (a name, or Vagrant's 127.0.0.1 port forward, needs it set). A
                  host without one gets no route to its pods, with a note in the plan.
                  Two hosts may not share one.
  podctl_memory_available_min  eviction threshold (default 100Mi, kubelet's): below it,
                          BestEffort pods, then Burstable pods over their requests,
                          are evicted and re-placed
Every host also gets the label kubernetes.io/hostname=<name>.

Host names must be DNS-1123 subdomains (lowercase letters, digits, '-', '.'), since
they end up in label values and file names; because the name is also the hostname
label value it is further limited to 63 characters. `Host.groups` lists every group
the host is in, directly or through `children`, sorted, without `all`; a host in no
group is in `ungrouped`, as in Ansible.

Capacity: `Host.capacity` is None when none of cpu/memory/max_pods is set. When only
some are set, the others stay "unset": cpu_m=0 and memory=0 mean "use what the probe
reports" (a real host never offers zero, so 0 cannot be a real override, and cpu or
memory of 0 in an inventory is an error); pods keeps Kubernetes' default 110 because
the probe cannot know a pod limit. `effective_capacity` applies that rule.

Relative key and known_hosts paths resolve against the inventory file's directory,
after `~` expansion.

Vagrant: `vagrant ssh-config` writes `StrictHostKeyChecking no` and
`UserKnownHostsFile /dev/null`. podctl does NOT honour them: host keys are always
verified against known_hosts (add the VMs' keys with ssh-keyscan, or set
podctl_host_key_checking: accept-new in a YAML inventory). Other ssh options in
that output are ignored too. Vagrant hosts get become=yes, since the vagrant user is
a password-less sudoer by Vagrant convention and podctl needs root on a host.
"""

from __future__ import annotations

import ast
import difflib
import ipaddress
import os
import re
import shlex
import string
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, NoReturn

import yaml

from .errors import InventoryError
from .model import Capacity, Host, Taint
from .podnet import node_ip_problem
from .quantity import QuantityError, parse_cpu, parse_memory

FORMATS = ("yaml", "ini", "ssh-config")
HOST_KEY_CHECKING = ("strict", "accept-new")
TAINT_EFFECTS = ("NoSchedule", "PreferNoSchedule", "NoExecute")
HOSTNAME_LABEL = "kubernetes.io/hostname"
PODCTL_VARS = ("podctl_known_hosts", "podctl_host_key_checking", "podctl_fence_command",
               "podctl_memory_available_min", "podctl_node_ip")
_OTHER_VARS = ("labels", "taints", "cpu", "memory", "max_pods", "pod_cidr")
_MAX_EXPANSION = 10_000  # a host range larger than this is surely a typo


@dataclass(frozen=True)
class Inventory:
    """Validated hosts in file order (first appearance), and each host's key-checking mode."""

    hosts: tuple[Host, ...]
    source: str
    host_key_checking: dict[str, str] = field(default_factory=dict)  # name -> mode

    def get(self, name: str) -> Host | None:
        return next((h for h in self.hosts if h.name == name), None)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(h.name for h in self.hosts)

    def __iter__(self) -> Iterator[Host]:
        return iter(self.hosts)

    def __len__(self) -> int:
        return len(self.hosts)


def effective_capacity(override: Capacity | None, probed: Capacity) -> Capacity:
    """The inventory's capacity override laid over what the probe reported (0 = unset)."""
    if override is None:
        return probed
    return Capacity(cpu_m=override.cpu_m or probed.cpu_m,
                    memory=override.memory or probed.memory, pods=override.pods)


def load_inventory(path: Path | str) -> Inventory:
    path = Path(path).expanduser()
    source = str(path)
    if not path.exists():
        raise InventoryError(source, None, None, "no such inventory file "
                             "(pass -i FILE, set PODCTL_INVENTORY, or run `podctl lab up`)")
    if path.is_dir():
        raise InventoryError(source, None, None, "is a directory, expected an inventory file")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InventoryError(source, None, None, f"cannot read: {exc}") from exc
    return parse_inventory(text, source, base_dir=path.absolute().parent)


def parse_inventory(text: str, source: str, fmt: str | None = None, *,
                    base_dir: Path | None = None) -> Inventory:
    """Parse inventory text. `base_dir` anchors relative paths (default: source's dir)."""
    fmt = {"vagrant": "ssh-config"}.get(fmt or "", fmt) or detect_format(text)
    parsers = {"yaml": _parse_yaml, "ini": _parse_ini, "ssh-config": _parse_ssh_config}
    if fmt not in parsers:
        raise InventoryError(source, None, None, f"unknown format {fmt!r} (one of {', '.join(FORMATS)})")
    raw = parsers[fmt](text, source)
    if not raw.order:
        raise InventoryError(source, None, None, "the inventory defines no hosts")
    base = base_dir if base_dir is not None else Path(source).absolute().parent
    hosts, modes = [], {}
    for name, merged, groups in _resolve(raw, source):
        host, mode = _build_host(name, _Vars(source, name, merged), groups, source, base)
        hosts.append(host)
        modes[name] = mode
    _check_pod_cidrs(hosts, source)
    _check_node_ips(hosts, source)
    return Inventory(tuple(hosts), source, modes)


def detect_format(text: str) -> str:
    lines = [ln for ln in text.splitlines() if ln.strip() and ln.lstrip()[0] not in "#;"]
    if not lines:
        return "yaml"  # an empty YAML document; reported as "no hosts"
    if re.match(r"(?i)host(\s+[^\s=]+)+$", lines[0].strip()):
        return "ssh-config"
    if any(_SECTION.match(ln.rstrip()) for ln in lines if ln.startswith("[")):
        return "ini"
    if any(re.match(r"\s*[-\w.]+:(\s|$)", ln) for ln in lines):
        return "yaml"  # a `key:` line: YAML, or broken YAML to be reported as YAML
    try:  # only now, since parsing costs more than everything above (the file is parsed again)
        data = yaml.load(text, Loader=_BaseLoader)  # noqa: S506 - a safe loader
    except yaml.YAMLError:
        data = None
    return "yaml" if isinstance(data, (dict, list)) else "ini"  # else bare "host key=value" lines


# ------------------------------------------------------------------ raw shape


@dataclass
class _Group:
    vars: dict = field(default_factory=dict)  # key -> value
    hosts: list = field(default_factory=list)
    parents: set = field(default_factory=set)


@dataclass
class _Raw:
    groups: dict = field(default_factory=lambda: {"all": _Group()})
    host_vars: dict = field(default_factory=dict)  # host -> {key: (value, origin)}
    order: list = field(default_factory=list)  # hosts in order of first appearance

    def group(self, name: str, parent: str | None = None) -> _Group:
        g = self.groups.setdefault(name, _Group())
        if parent is not None:
            g.parents.add(parent)
        return g

    def add_host(self, group: str, name: str, hostvars: dict, origin: str) -> None:
        if name not in self.host_vars:
            self.host_vars[name] = {}
            self.order.append(name)
        self.host_vars[name].update({k: (v, origin) for k, v in hostvars.items()})
        if name not in self.group(group).hosts:
            self.group(group).hosts.append(name)


def _resolve(raw: _Raw, source: str) -> Iterator[tuple[str, dict, tuple[str, ...]]]:
    """Per host: merged vars {key: (value, origin)} and the groups it belongs to."""
    if raw.groups["all"].parents:
        raise InventoryError(source, None, "all", "group 'all' cannot be a child of another group")
    for name, g in raw.groups.items():
        if name != "all" and not g.parents:
            g.parents.add("all")  # top-level groups are children of all
    depth: dict[str, int] = {}

    def depth_of(name: str, path: tuple[str, ...] = ()) -> int:
        if name in path:
            loop = " -> ".join(path[path.index(name):] + (name,))
            raise InventoryError(source, None, name, f"groups form a loop: {loop}")
        if name not in depth:
            parents = raw.groups[name].parents
            depth[name] = 0 if name == "all" else 1 + max(depth_of(p, path + (name,)) for p in parents)
        return depth[name]

    def ancestors(name: str) -> set[str]:
        found = {name}
        for p in raw.groups[name].parents:
            found |= ancestors(p)
        return found

    for name in raw.groups:
        depth_of(name)
    for host in raw.order:
        member = set().union(*(ancestors(g) for g, grp in raw.groups.items() if host in grp.hosts))
        member.add("all")
        merged: dict = {}
        for g in sorted(member, key=lambda g: (depth[g], _priority(raw, g, source), g)):
            where = "all.vars" if g == "all" else f"vars of group {g!r}"
            merged.update({k: (v, where) for k, v in raw.groups[g].vars.items()})
        merged.update(raw.host_vars[host])
        groups = tuple(sorted(member - {"all"})) or ("ungrouped",)
        yield host, merged, groups


def _priority(raw: _Raw, group: str, source: str) -> int:
    value = raw.groups[group].vars.get("ansible_group_priority", 1)
    try:
        return int(value)
    except (TypeError, ValueError):
        raise InventoryError(source, None, f"{group}.ansible_group_priority",
                             f"{value!r} is not an integer") from None


# ------------------------------------------------------------------ host patterns


def _expand(pattern: str, where: str) -> tuple[list[str], int | None]:
    """Ansible host patterns: `node[1:3]`, `db[01:10:2]`, `n[a:c]`, optional `:port`."""
    port = None
    m = re.fullmatch(r"([^:]+):(\d+)", pattern)
    if m:
        pattern, port = m.group(1), int(m.group(2))
    names = _expand_ranges(pattern, where)
    if len(names) > _MAX_EXPANSION:
        raise InventoryError(where, pattern, None, f"host range expands to more than {_MAX_EXPANSION} hosts")
    return names, port


def _expand_ranges(pattern: str, where: str) -> list[str]:
    m = re.search(r"\[([^\]]*)\]", pattern)
    if not m:
        return [pattern]
    head, tail = pattern[:m.start()], pattern[m.end():]
    parts = m.group(1).split(":")
    if len(parts) not in (2, 3):
        raise InventoryError(where, pattern, None, "a host range is [begin:end] or [begin:end:step]")
    beg, end, step = parts[0] or "0", parts[1], parts[2] if len(parts) == 3 else "1"
    if not end or not step.isdigit() or int(step) < 1:
        raise InventoryError(where, pattern, None, "a host range needs an end and a positive step")
    if beg.isdigit() and end.isdigit():
        width = len(beg) if beg.startswith("0") and len(beg) > 1 else 0
        if width and len(end) != width:
            raise InventoryError(where, pattern, None, "a zero-padded range needs begin and end of equal width")
        items = [str(i).zfill(width) for i in range(int(beg), int(end) + 1, int(step))]
    elif len(beg) == 1 and len(end) == 1 and beg in string.ascii_letters and end in string.ascii_letters:
        letters = string.ascii_letters
        items = list(letters[letters.index(beg):letters.index(end) + 1:int(step)])
    else:
        raise InventoryError(where, pattern, None, "a host range is numeric ([1:3]) or one letter each ([a:c])")
    if not items:
        raise InventoryError(where, pattern, None, "a host range must have begin <= end")
    rest = _expand_ranges(tail, where)
    return [head + item + r for item in items for r in rest]


# ------------------------------------------------------------------ YAML


# libyaml's parser when PyYAML was built with it (several times faster on a 50-host
# inventory); the pure-Python one otherwise. Both are safe loaders and give the same
# values and the same line/column marks in errors.
_BaseLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def _mapping(loader: yaml.SafeLoader, node: yaml.MappingNode) -> dict:
    seen: set = set()
    for key_node, _ in node.value:
        if key_node.tag == "tag:yaml.org,2002:merge":
            continue
        key = loader.construct_object(key_node, deep=True)
        if isinstance(key, (str, int, float, bool)) and key in seen:
            raise yaml.constructor.ConstructorError(
                "while constructing a mapping", node.start_mark,
                f"found duplicate key {key!r}", key_node.start_mark)
        seen.add(key)
    return loader.construct_mapping(node, deep=True)


def _loader_class(base: type) -> type:
    """`base` (a safe loader) rejecting duplicate keys: PyYAML silently keeps the last one."""
    loader = type("_Loader", (base,), {"__doc__": _loader_class.__doc__})
    loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping)
    return loader


_Loader = _loader_class(_BaseLoader)


def _parse_yaml(text: str, source: str) -> _Raw:
    try:
        data = yaml.load(text, Loader=_Loader)  # noqa: S506 - a (C)SafeLoader subclass
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = f":{mark.line + 1}" if mark else ""
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        raise InventoryError(f"{source}{line}", None, None,
                             f"YAML syntax error: {exc.problem or exc.context}{where}") from None
    except yaml.YAMLError as exc:
        raise InventoryError(source, None, None, f"YAML error: {exc}") from None
    raw = _Raw()
    if data is None:
        return raw
    if not isinstance(data, dict):
        raise InventoryError(source, None, None, "expected a mapping of groups, e.g. 'all:' "
                             f"with 'hosts:' under it, found a {type(data).__name__}")
    for name, body in data.items():
        _yaml_group(raw, source, name, body, str(name), None)
    return raw


def _yaml_group(raw: _Raw, source: str, name: object, body: object, path: str,
                parent: str | None) -> None:
    if not isinstance(name, str) or not name:
        raise InventoryError(source, None, path, "a group name must be a non-empty string")
    if name == "all" and parent is not None:
        raise InventoryError(source, None, path, "group 'all' cannot be a child of another group")
    group = raw.group(name, parent)
    if body is None:
        return
    if not isinstance(body, dict):
        raise InventoryError(source, None, path, "a group must be a mapping with vars/hosts/children")
    for key in body:
        if key not in ("vars", "hosts", "children"):
            hint = _did_you_mean(str(key), ("vars", "hosts", "children"))
            raise InventoryError(source, None, f"{path}.{key}",
                                 f"unexpected key in a group (allowed: vars, hosts, children){hint}")
    group.vars.update(_yaml_vars(source, body.get("vars"), f"{path}.vars"))
    for pattern, hostvars in _yaml_dict(source, body.get("hosts"), f"{path}.hosts").items():
        names, port = _expand(str(pattern), source)
        hv = _yaml_vars(source, hostvars, f"{path}.hosts.{pattern}")
        if port is not None:
            hv.setdefault("ansible_port", port)
        for host in names:
            raw.add_host(name, host, hv, f"host vars under {path}.hosts")
    for child, child_body in _yaml_dict(source, body.get("children"), f"{path}.children").items():
        _yaml_group(raw, source, child, child_body, f"{path}.children.{child}", name)


def _yaml_dict(source: str, value: object, path: str) -> dict:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InventoryError(source, None, path, f"expected a mapping, found a {type(value).__name__}")
    return value


def _yaml_vars(source: str, value: object, path: str) -> dict:
    result = _yaml_dict(source, value, path)
    for key in result:
        if not isinstance(key, str):
            raise InventoryError(source, None, f"{path}.{key}", "variable names must be strings")
    return dict(result)


# ------------------------------------------------------------------ INI

_SECTION = re.compile(r"^\[([^:\]\s]+)(?::(\w+))?\]\s*(?:[#;].*)?$")


def _parse_ini(text: str, source: str) -> _Raw:
    raw = _Raw()
    group, kind = "ungrouped", "hosts"
    for lineno, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line[0] in "#;":
            continue
        where = f"{source}:{lineno}"
        if line.startswith("["):
            m = _SECTION.match(line)
            if not m or (m.group(2) or "hosts") not in ("hosts", "vars", "children"):
                raise InventoryError(where, None, None, f"bad section header {line!r}: expected "
                                     "[group], [group:vars] or [group:children]")
            group, kind = m.group(1), m.group(2) or "hosts"
            raw.group(group)
        elif kind == "hosts":
            _ini_host_line(raw, group, line, where)
        elif kind == "vars":
            key, value = _ini_assignment(line, where)
            raw.group(group).vars[key] = value  # Ansible: [group:vars] values stay strings
        else:
            tokens = _shlex(line, where)
            if len(tokens) != 1:
                raise InventoryError(where, None, None, f"expected one child group name per line, got {line!r}")
            if tokens[0] == "all":
                raise InventoryError(where, None, None, "group 'all' cannot be a child of another group")
            raw.group(tokens[0], group)
    return raw


def _ini_host_line(raw: _Raw, group: str, line: str, where: str) -> None:
    pattern, *assignments = _shlex(line, where)
    hostvars = {}
    for token in assignments:
        key, sep, value = token.partition("=")
        if not sep or not key:
            raise InventoryError(where, pattern, None, f"expected key=value after the host name, got {token!r}")
        hostvars[key] = _ini_literal(value)
    names, port = _expand(pattern, where)
    if port is not None:
        hostvars.setdefault("ansible_port", port)
    for name in names:
        raw.add_host(group, name, hostvars, f"host vars on {where}")


def _ini_assignment(line: str, where: str) -> tuple[str, str]:
    key, sep, value = line.partition("=")
    if not sep or not key.strip():
        raise InventoryError(where, None, None, f"expected key=value, got {line!r}")
    return key.strip(), " ".join(_shlex(value, where))


def _ini_literal(value: str) -> object:
    """Host-line values are Python literals when they parse as one (Ansible's rule)."""
    try:
        return ast.literal_eval(value)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return value


def _shlex(line: str, where: str) -> list[str]:
    try:
        return shlex.split(line, comments=True)
    except ValueError as exc:
        raise InventoryError(where, None, None, f"cannot split {line!r}: {exc}") from None


# ------------------------------------------------------------------ vagrant ssh-config

_SSH_KEYS = {"hostname": "ansible_host", "user": "ansible_user", "port": "ansible_port",
             "identityfile": "ansible_ssh_private_key_file"}


def _parse_ssh_config(text: str, source: str) -> _Raw:
    raw = _Raw()
    blocks: list[tuple[str, dict, str]] = []
    for lineno, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        where = f"{source}:{lineno}"
        m = re.match(r"(\w+)(?:\s*=\s*|\s+)(.*)$", line)
        if not m:
            raise InventoryError(where, None, None, f"expected 'Keyword value', got {line!r}")
        keyword, values = m.group(1).lower(), _shlex(m.group(2), where)
        if keyword == "host":
            if len(values) != 1 or any(c in values[0] for c in "*?!"):
                raise InventoryError(where, None, None, "each Host block must name one host (no patterns)")
            blocks.append((values[0], {"ansible_become": True}, where))
        elif keyword == "match":
            raise InventoryError(where, None, None, "Match blocks are not supported")
        elif not blocks:
            raise InventoryError(where, None, None, f"{m.group(1)} appears before any Host line")
        elif keyword in _SSH_KEYS and values:
            blocks[-1][1].setdefault(_SSH_KEYS[keyword], values[0])  # ssh: the first one wins
    for name, hostvars, where in blocks:
        raw.add_host("ungrouped", name, hostvars, f"Host block on {where}")
    return raw


# ------------------------------------------------------------------ building a Host


class _Vars:
    """A host's merged vars; errors name file, host, field and where the value was set."""

    def __init__(self, source: str, host: str, merged: dict):
        self.source, self.host, self.merged = source, host, merged

    def first(self, *keys: str) -> tuple[str, object]:
        """The first of `keys` that is set (aliases), as (key, value); (keys[0], None) if none."""
        for key in keys:
            if key in self.merged and self.merged[key][0] is not None:
                return key, self.merged[key][0]
        return keys[0], None

    def fail(self, key: str, message: str) -> NoReturn:
        root = re.split(r"[.\[]", key)[0]  # "taints[0].effect" was set as "taints"
        origin = f" (set in {self.merged[root][1]})" if root in self.merged else ""
        raise InventoryError(self.source, self.host, key, message + origin)


def _build_host(name: str, hv: _Vars, groups: tuple[str, ...], source: str,
                base: Path) -> tuple[Host, str]:
    _check_host_name(name, hv)
    _check_podctl_vars(hv)
    _check_connection(hv)
    host = Host(
        name=name,
        address=_word(hv, *hv.first("ansible_host", "ansible_ssh_host")) or name,
        port=_port(hv, *hv.first("ansible_port", "ansible_ssh_port")),
        user=_word(hv, *hv.first("ansible_user", "ansible_ssh_user")) or "root",
        key_file=_path(hv, base, *hv.first("ansible_ssh_private_key_file", "ansible_private_key_file")),
        known_hosts=_path(hv, base, *hv.first("podctl_known_hosts")),
        become=_bool(hv, *hv.first("ansible_become")),
        become_user=_word(hv, *hv.first("ansible_become_user")) or "root",
        password=_password(hv, *hv.first("ansible_password", "ansible_ssh_pass")),
        labels=_labels(hv, name),
        taints=_taints(hv),
        capacity=_capacity(hv),
        pod_cidr=_pod_cidr(hv),
        node_ip=_node_ip(hv),
        fence_command=_fence_command(hv, name, *hv.first("podctl_fence_command")),
        memory_available_min=_memory_min(hv, *hv.first("podctl_memory_available_min")),
        groups=groups,
        source=source,
    )
    key, mode = hv.first("podctl_host_key_checking")
    if mode is None:
        mode = "strict"
    if mode not in HOST_KEY_CHECKING:
        hv.fail(key, f"{mode!r} is not one of {', '.join(HOST_KEY_CHECKING)}")
    return host, mode


_DNS_LABEL = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?"
_DNS_SUBDOMAIN = re.compile(rf"{_DNS_LABEL}(\.{_DNS_LABEL})*")
_LABEL_NAME = re.compile(r"[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?")


def _check_host_name(name: str, hv: _Vars) -> None:
    if len(name) > 253 or not _DNS_SUBDOMAIN.fullmatch(name):
        raise InventoryError(hv.source, name, "name", "not a valid host name: use lowercase letters, "
                             "digits, '-' and '.', starting and ending with a letter or digit, at most "
                             "253 characters (the name is used in labels and file names; put the real "
                             "address in ansible_host)")
    if len(name) > 63:
        raise InventoryError(hv.source, name, "name", f"longer than 63 characters: the name is also "
                             f"the {HOSTNAME_LABEL} label value, which Kubernetes limits to 63")


def _check_podctl_vars(hv: _Vars) -> None:
    for key in hv.merged:
        if key.startswith("podctl_") and key not in PODCTL_VARS:
            hint = _did_you_mean(key, PODCTL_VARS + _OTHER_VARS)
            hv.fail(key, f"unknown podctl variable (known: {', '.join(PODCTL_VARS + _OTHER_VARS)}){hint}")


def _check_connection(hv: _Vars) -> None:
    key, conn = hv.first("ansible_connection")
    if conn in (None, "ssh", "smart", "ansible.builtin.ssh"):
        pass
    elif conn in ("local", "ansible.builtin.local"):
        hv.fail(key, "ansible_connection=local is not supported: podctl reaches every host over "
                     "SSH (run sshd there and use ansible_host: 127.0.0.1)")
    else:
        hv.fail(key, f"ansible_connection={conn!r} is not supported (only ssh)")
    key, method = hv.first("ansible_become_method")
    if method not in (None, "sudo", "ansible.builtin.sudo"):
        hv.fail(key, f"become method {method!r} is not supported (only sudo)")


def _word(hv: _Vars, key: str, value: object) -> str | None:
    """An address or user name: a non-empty string without whitespace."""
    if value is None:
        return None
    if not isinstance(value, str) or not value or value.startswith("-") or re.search(r"\s", value):
        hv.fail(key, f"{value!r} must be a non-empty word (no spaces, not starting with '-')")
    return value


def _port(hv: _Vars, key: str, value: object) -> int:
    if value is None:
        return 22
    text = str(value) if isinstance(value, (int, str)) and not isinstance(value, bool) else ""
    if not text.isdigit() or not 1 <= int(text) <= 65535:
        hv.fail(key, f"{value!r} is not a port number (1..65535)")
    return int(text)


_TRUE = ("y", "yes", "on", "1", "true", "t")
_FALSE = ("n", "no", "off", "0", "false", "f")


def _bool(hv: _Vars, key: str, value: object) -> bool:
    """Ansible's boolean(): yes/no, true/false, on/off, 1/0, y/n, t/f (any case)."""
    if value is None:
        return False
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower() if isinstance(value, (str, int, float)) else ""
    if text in _TRUE or text in _FALSE:
        return text in _TRUE
    hv.fail(key, f"{value!r} is not a boolean (use yes/no, true/false or 1/0)")


def _path(hv: _Vars, base: Path, key: str, value: object) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not value:
        hv.fail(key, f"{value!r} is not a file path")
    path = Path(os.path.expanduser(value))
    return os.path.normpath(path if path.is_absolute() else base / path)


def _fence_command(hv: _Vars, name: str, key: str, value: object) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        import shlex

        try:
            words = shlex.split(value)
        except ValueError as exc:
            hv.fail(key, f"cannot split {value!r} into words: {exc}")
    elif isinstance(value, list) and all(isinstance(w, str) for w in value):
        words = list(value)
    else:
        hv.fail(key, "must be a command: a string or a list of strings")
    if not words or not words[0]:
        hv.fail(key, "is empty: give the command to run, e.g. vagrant halt {host}")
    return tuple(w.replace("{host}", name) for w in words)


def _memory_min(hv: _Vars, key: str, value: object) -> int | None:
    if value is None:
        return None
    try:
        return parse_memory(value)
    except QuantityError as exc:
        hv.fail(key, str(exc))


def _password(hv: _Vars, key: str, value: object) -> str | None:
    if value is None:
        return None
    if isinstance(value, (str, int)) and not isinstance(value, bool):
        return str(value)  # INI turns all-digit passwords into ints
    hv.fail(key, "must be a string")


def _labels(hv: _Vars, name: str) -> tuple[tuple[str, str], ...]:
    key, value = hv.first("labels")
    items = _split_pairs(hv, key, value) if isinstance(value, str) else value
    if items is None:
        items = {}
    if not isinstance(items, dict):
        hv.fail(key, "must be a mapping of label key to value (or 'k=v,k2=v2')")
    labels: dict[str, str] = {}
    for k, v in items.items():
        k = _label_key(hv, f"{key}.{k}", k)
        labels[k] = _label_value(hv, f"{key}.{k}", v)
    if labels.setdefault(HOSTNAME_LABEL, name) != name:
        hv.fail(key, f"{HOSTNAME_LABEL} is always the host name {name!r}")
    return tuple(sorted(labels.items()))


def _split_pairs(hv: _Vars, key: str, text: str) -> dict[str, str]:
    pairs = {}
    for item in filter(None, (s.strip() for s in text.split(","))):
        k, sep, v = item.partition("=")
        if not sep:
            hv.fail(key, f"expected key=value, got {item!r}")
        pairs[k.strip()] = v.strip()
    return pairs


def _label_key(hv: _Vars, field_: str, key: object) -> str:
    """Kubernetes: [prefix/]name; prefix a DNS subdomain <= 253, name <= 63."""
    text = key if isinstance(key, str) else ""
    prefix, slash, name = text.rpartition("/")
    ok = bool(_LABEL_NAME.fullmatch(name)) and len(name) <= 63 and (
        not slash or (len(prefix) <= 253 and bool(_DNS_SUBDOMAIN.fullmatch(prefix))))
    if not ok:
        hv.fail(field_, f"{key!r} is not a valid key: [prefix/]name where the optional prefix is a "
                        "DNS subdomain (lowercase, <= 253) and name is <= 63 characters of "
                        "[A-Za-z0-9-_.] starting and ending with a letter or digit")
    return text


def _label_value(hv: _Vars, field_: str, value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        hv.fail(field_, f"{value!r} must be a string (quote values like yes, true or 1.5)")
    text = str(value)
    if text and (len(text) > 63 or not _LABEL_NAME.fullmatch(text)):
        hv.fail(field_, f"{text!r} is not a valid value: empty, or <= 63 characters of "
                        "[A-Za-z0-9-_.] starting and ending with a letter or digit")
    return text


def _taints(hv: _Vars) -> tuple[Taint, ...]:
    key, value = hv.first("taints")
    if value is None:
        return ()
    items = [s for s in value.split(",") if s.strip()] if isinstance(value, str) else value
    if not isinstance(items, list):
        hv.fail(key, "must be a list of {key, value, effect} or 'key=value:Effect' strings")
    taints: list[Taint] = []
    for i, item in enumerate(items):
        taint = _taint(hv, f"{key}[{i}]", item)
        if any((t.key, t.effect) == (taint.key, taint.effect) for t in taints):
            hv.fail(f"{key}[{i}]", f"duplicate taint {taint.key}:{taint.effect}")
        taints.append(taint)
    return tuple(taints)


def _taint(hv: _Vars, field_: str, item: object) -> Taint:
    if isinstance(item, str):
        rest, sep, effect = item.strip().rpartition(":")
        if not sep:
            hv.fail(field_, f"{item!r}: expected 'key=value:Effect' or 'key:Effect'")
        tkey, _, tvalue = rest.partition("=")
        item = {"key": tkey, "value": tvalue, "effect": effect}
    if not isinstance(item, dict):
        hv.fail(field_, "must be {key, value, effect} or a 'key=value:Effect' string")
    extra = set(item) - {"key", "value", "effect"}
    if extra:
        hv.fail(field_, f"unexpected {', '.join(sorted(map(str, extra)))} (allowed: key, value, effect)")
    effect = item.get("effect")
    if effect not in TAINT_EFFECTS:
        hv.fail(f"{field_}.effect", f"{effect!r} is not one of {', '.join(TAINT_EFFECTS)}")
    return Taint(key=_label_key(hv, f"{field_}.key", item.get("key")),
                 value=_label_value(hv, f"{field_}.value", item.get("value")), effect=effect)


def _capacity(hv: _Vars) -> Capacity | None:
    (ck, cpu), (mk, mem), (pk, pods) = hv.first("cpu"), hv.first("memory"), hv.first("max_pods")
    if cpu is None and mem is None and pods is None:
        return None
    try:
        cpu_m = parse_cpu(cpu) if cpu is not None else 0
    except QuantityError as exc:
        hv.fail(ck, str(exc))
    try:
        memory = parse_memory(mem) if mem is not None else 0
    except QuantityError as exc:
        hv.fail(mk, str(exc))
    if cpu is not None and cpu_m <= 0:
        hv.fail(ck, "must be more than 0 (leave it out to use what the host reports)")
    if mem is not None and memory <= 0:
        hv.fail(mk, "must be more than 0 (leave it out to use what the host reports)")
    if pods is None:
        return Capacity(cpu_m=cpu_m, memory=memory)
    text = str(pods) if isinstance(pods, (int, str)) and not isinstance(pods, bool) else ""
    if not text.isdigit() or int(text) < 1:
        hv.fail(pk, f"{pods!r} is not a positive integer (cordon a host to keep pods off it)")
    return Capacity(cpu_m=cpu_m, memory=memory, pods=int(text))


def _pod_cidr(hv: _Vars) -> str | None:
    key, value = hv.first("pod_cidr")
    if value is None:
        return None
    try:
        net = ipaddress.IPv4Network(str(value), strict=True)
    except ValueError as exc:
        hv.fail(key, f"{value!r} is not an IPv4 network with its host bits zero, e.g. "
                     f"10.244.1.0/24 ({exc})")
    if net.prefixlen > 30:
        hv.fail(key, f"{net} is too small: a pod network needs a gateway and pod addresses (at most /30)")
    return str(net)


def _node_ip(hv: _Vars) -> str | None:
    key, value = hv.first("podctl_node_ip")
    if value is None:
        return None
    try:
        ip = ipaddress.IPv4Address(str(value))
    except ValueError:
        hv.fail(key, f"{value!r} is not an IPv4 address (the address other hosts reach this host's "
                     f"pods through, e.g. 192.168.56.11)")
    problem = node_ip_problem(ip)
    if problem:
        hv.fail(key, f"{ip} {problem}")
    return str(ip)


def _check_node_ips(hosts: list[Host], source: str) -> None:
    first: dict[str, str] = {}
    for h in hosts:
        if h.node_ip and first.setdefault(h.node_ip, h.name) != h.name:
            raise InventoryError(source, h.name, "podctl_node_ip", f"{h.node_ip} is also host "
                                 f"{first[h.node_ip]!r}'s: each host needs its own node IP")


def _check_pod_cidrs(hosts: list[Host], source: str) -> None:
    """No two hosts may share pod addresses: sort by start, compare with the widest so far."""
    nets = sorted((ipaddress.IPv4Network(h.pod_cidr), h.name) for h in hosts if h.pod_cidr)
    widest: tuple[ipaddress.IPv4Network, str] | None = None
    for net, name in nets:
        if widest and net.network_address <= widest[0].broadcast_address:
            what = "is the same as" if net == widest[0] else "overlaps"
            raise InventoryError(source, name, "pod_cidr", f"{net} {what} {widest[0]} of host "
                                 f"{widest[1]!r}: each host needs its own pod network")
        if widest is None or net.broadcast_address > widest[0].broadcast_address:
            widest = (net, name)


def _did_you_mean(word: str, choices: tuple[str, ...]) -> str:
    close = difflib.get_close_matches(word, choices, n=1)
    return f"; did you mean {close[0]!r}?" if close else ""
