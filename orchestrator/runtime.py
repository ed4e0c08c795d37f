"""From a validated pod and its binding to the scripts a host runs: pure functions.

`pod_context` turns a Pod, its uid, its IP and its images into plain values for the
templates; `create_script`, `delete_script` and `probe_script` render the batch a host
runs in one SSH session. Names that become paths or interface names are derived from
the pod uid (which podctl makes) and from DNS-1123 names (which validation enforces).
"""

from __future__ import annotations

import ipaddress
import json
import re
import uuid as uuidlib
from dataclasses import dataclass
from typing import Mapping, Sequence

from .errors import PodctlError
from .images import merge_env, resolve_argv
from .model import Container, EnvVar, ImageConfig, Pod
from .render import render, render_static

STATE = "/var/lib/podctl"
RUN = "/run/podctl"
DEFAULT_PIDS_MAX = 4096  # per pod; Kubernetes leaves it to the kubelet's podPidsLimit
CPU_PERIOD_US = 100_000
WAIT_FOR_RUNNING_S = 5.0
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")


class RuntimeSpecError(PodctlError):
    """The pod cannot be turned into a runtime spec (a bug or a missing image)."""


def check_uid(uid: str) -> str:
    """A pod uid is a canonical UUID: it names paths, cgroups and links on hosts."""
    if str(uuidlib.UUID(uid)) != uid:
        raise RuntimeSpecError(f"pod uid {uid!r} is not a canonical lowercase UUID")
    return uid


def veth_names(uid: str) -> tuple[str, str]:
    """Host-side and pod-side veth names: <= 15 chars, derived from the uid."""
    short = check_uid(uid).replace("-", "")[:12]
    return f"pv{short}", f"pc{short}"


def pod_dir(uid: str) -> str:
    return f"{STATE}/pods/{check_uid(uid)}"


def run_dir(uid: str) -> str:
    return f"{RUN}/pods/{check_uid(uid)}"


def image_dir(digest: str) -> str:
    if not re.fullmatch(r"[0-9a-f]{64}", digest):
        raise RuntimeSpecError(f"image digest {digest!r} is not a sha256 hex digest")
    return f"{STATE}/images/{digest}"


@dataclass(frozen=True)
class Network:
    """Where a pod sits on its host's bridge."""

    ip: str
    cidr: str  # the host's pod CIDR, e.g. 10.244.1.0/24

    @property
    def prefix(self) -> int:
        return ipaddress.ip_network(self.cidr).prefixlen

    @property
    def gateway(self) -> str:
        return str(ipaddress.ip_network(self.cidr).network_address + 1)


def _name(value: str, what: str) -> str:
    if not _DNS_LABEL.fullmatch(value):  # match() would let "$" accept a trailing newline
        raise RuntimeSpecError(f"{what} {value!r} is not a DNS-1123 label")
    return value


def _cgroup_values(mem: int | None, cpu_limit_m: int | None, cpu_request_m: int | None,
                   pids: int | None) -> list[str]:
    """[memory bytes, cfs quota us, cpu shares, pids max] with "" for unset."""
    quota = "" if not cpu_limit_m else str(max(1000, cpu_limit_m * CPU_PERIOD_US // 1000))
    # Kubernetes: shares = request * 1024 / 1000, at least 2 (BestEffort gets 2).
    shares = str(max(2, (cpu_request_m or 0) * 1024 // 1000))
    return [str(mem) if mem else "", quota, shares, str(pids) if pids else ""]


def _volume_sources(pod: Pod, uid: str) -> dict[str, dict]:
    out = {}
    for v in pod.spec.volumes:
        name = _name(v.name, "volume name")
        entry = {"name": name, "kind": v.kind, "medium": v.medium, "host_path_type": v.host_path_type}
        if v.kind == "emptyDir" and v.medium == "Memory":
            entry["source"] = f"{run_dir(uid)}/volumes/{name}"
            size = f",size={v.size_limit}" if v.size_limit else ""
            entry["tmpfs_options"] = f"mode=0777,nosuid,nodev{size}"
        elif v.kind == "emptyDir":
            entry["source"] = f"{pod_dir(uid)}/volumes/{name}"
            entry["tmpfs_options"] = ""
        elif v.kind == "hostPath":
            entry["source"] = v.path
            entry["tmpfs_options"] = ""
        else:
            raise RuntimeSpecError(f"volume {name}: kind {v.kind} is not supported")
        out[name] = entry
    return out


def _container_context(pod: Pod, uid: str, c: Container, image: ImageConfig,
                       volumes: Mapping[str, dict]) -> dict:
    name = _name(c.name, "container name")
    argv = resolve_argv(c.command, c.args, image)
    env = merge_env(image.env, c.env)
    # containerd sets HOSTNAME to the pod's hostname unless the spec sets it.
    if all(e.name != "HOSTNAME" for e in env):
        env = (*env, EnvVar("HOSTNAME", pod.name))
    src, dst, ro = [], [], []
    for m in c.volume_mounts:
        src.append(volumes[m.name]["source"])
        dst.append(m.mount_path)
        ro.append("ro" if m.read_only else "rw")
    cdir = f"{pod_dir(uid)}/containers/{name}"
    workdir = c.working_dir or image.working_dir or ""
    if workdir and not workdir.startswith("/"):
        # `unshare --root=R --wd=rel` chdirs relative to the HOST cwd after the chroot: the
        # process would start outside its root. runc refuses a relative cwd too.
        raise RuntimeSpecError(f"container {name}: working directory {workdir!r} is not absolute")
    return {
        "name": name,
        "dir": cdir,
        "start_script": f"{cdir}/start.sh",
        "cgroup_path": f"{uid}/{name}",
        "image_dir": f"{image_dir(image.digest)}/rootfs",
        "workdir": workdir,
        "argv": list(argv),
        "env": [f"{e.name}={e.value}" for e in env],
        "mount_src": src,
        "mount_dst": dst,
        "mount_ro": ro,
        "cgroup": _cgroup_values(c.limits.memory, c.limits.cpu_m,
                                 c.effective_requests().cpu_m, None),
    }


def pod_context(pod: Pod, uid: str, images: Mapping[str, ImageConfig], net: Network,
                pids_max: int = DEFAULT_PIDS_MAX) -> dict:
    """Everything the templates need to create `pod` on a host, as plain values."""
    check_uid(uid)
    missing = [c.image for c in pod.spec.containers if c.image not in images]
    if missing:
        raise RuntimeSpecError(f"pod {pod.key}: no image for {', '.join(missing)}")
    volumes = _volume_sources(pod, uid)
    pod_ctx = {"uid": uid, "restart_policy": pod.spec.restart_policy,
               "grace": pod.spec.termination_grace_period_seconds,
               "container_names": [c.name for c in pod.spec.containers]}
    containers = []
    for c in pod.spec.containers:
        ctx = _container_context(pod, uid, c, images[c.image], volumes)
        ctx["script"] = render("container.sh.j2", pod=pod_ctx, c=ctx)
        containers.append(ctx)
    limits = [c.limits for c in pod.spec.containers]
    # A pod-level limit exists only when every container has one (as in Kubernetes).
    pod_mem = sum(x.memory for x in limits) if all(x.memory for x in limits) else None
    pod_cpu = sum(x.cpu_m for x in limits) if all(x.cpu_m for x in limits) else None
    veth, _ = veth_names(uid)
    meta = {"uid": uid, "name": pod.name, "namespace": pod.namespace,
            "containers": [c.name for c in pod.spec.containers],
            "images": {c.name: images[c.image].digest for c in pod.spec.containers}}
    return {
        **pod_ctx,
        "name": _name(pod.name, "pod name"),
        "ip": net.ip,
        "prefix": net.prefix,
        "gateway": net.gateway,
        "veth": veth,
        "image_dirs": sorted({image_dir(images[c.image].digest) for c in pod.spec.containers}),
        "pod_json": json.dumps(meta, separators=(",", ":"), sort_keys=True),
        "hosts_file": f"127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n"
                      f"{net.ip}\t{pod.name}\n",
        "supervisor": render("supervisor.sh.j2", pod=pod_ctx),
        "containers": containers,
        "volumes": list(volumes.values()),
        "cgroup": _cgroup_values(pod_mem, pod_cpu, pod.spec.requests().cpu_m, pids_max),
        "container_cgroups": [c["cgroup_path"] for c in containers],
        "container_dirs": [f"{c['dir']}/{sub}" for c in containers for sub in ("upper", "work", "rootfs")],
        "wait_ticks": int(WAIT_FOR_RUNNING_S / 0.002),
    }


def delete_context(uid: str, grace: int = 30) -> dict:
    veth, _ = veth_names(uid)
    return {"uid": uid, "veth": veth, "grace": int(grace)}


def batch_script(actions: Sequence[dict], epoch: int | None = None, network: dict | None = None) -> str:
    """One script for a host: [{"verb": "create"|"delete", "pod": context}, ...].
    `epoch`: the controller's fencing token (None: no check, for tests of the parts);
    `network`: the host's pod network to apply first (podnet.apply_context), or None."""
    return render("batch.sh.j2", actions=list(actions), epoch=epoch, network=network)


def probe_script() -> str:
    """The probe (holds no values): read without Jinja, see render.render_static."""
    return render_static("probe.sh.j2")
