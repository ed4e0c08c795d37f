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
from .model import Container, Handler, ImageConfig, Pod, PodSpec, Probe
from . import emptydir_limit, podenv
from .podenv import PodFacts, Value
from .qos import oom_score_adj
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


def secrets_dir(uid: str) -> str:
    """The pod's tmpfs for config it must not keep on disk: secret env values, secret
    and configMap volume files (mode 0700, on the host only root can enter it)."""
    return f"{run_dir(uid)}/secrets"


def _env_split(names: list[str]) -> str:
    """The `env -S` string that sets each NAME from $PODCTL_E<i> (exported by the start
    script): `env` expands ${...} itself, so no value is ever in an argv. Inside env's
    single quotes only \\ and \' are escapes."""
    words = ["-i", "--"]
    for i, name in enumerate(names):
        if not name or "=" in name or any(not " " <= ch <= "~" for ch in name):
            raise RuntimeSpecError(f"environment variable name {name!r} cannot be passed to a process")
        quoted = name.replace("\\", "\\\\").replace("'", "\\'")
        words.append(f"'{quoted}='\"${{PODCTL_E{i}}}\"")
    return " ".join(words)


class _Secrets:
    """Files for the pod's secrets tmpfs: their bytes travel after the batch script on
    the session's stdin (never in a script), each to a path under secrets_dir."""

    def __init__(self, uid: str):
        self.root = secrets_dir(uid)
        self.files: list[tuple[str, bytes, str]] = []  # (relative path, data, octal mode)
        self.dirs: list[str] = []

    def add(self, rel: str, data: bytes, mode: int = 0o600) -> str:
        self.files.append((rel, data, f"{mode:04o}"))
        return f"{self.root}/{rel}"


def _volume_sources(pod: Pod, uid: str, facts: PodFacts | None = None,
                    secrets: _Secrets | None = None) -> dict[str, dict]:
    out = {}
    for v in pod.spec.volumes:
        name = _name(v.name, "volume name")
        entry = {"name": name, "kind": v.kind, "medium": v.medium, "host_path_type": v.host_path_type}
        if v.kind in ("configMap", "secret"):
            if facts is None or secrets is None:
                raise RuntimeSpecError(f"volume {name}: a {v.kind} volume needs the pod's objects")
            entry["source"] = f"{secrets.root}/vol/{name}"
            entry["tmpfs_options"] = ""
            secrets.dirs.append(f"vol/{name}")
            for f in podenv.volume_files(pod, facts, v):
                secrets.add(f"vol/{name}/{f.path}", f.data, f.mode)
        elif v.kind == "emptyDir" and v.medium == "Memory":
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
                       volumes: Mapping[str, dict], facts: PodFacts, secrets: _Secrets,
                       memory_capacity: int) -> dict:
    name = _name(c.name, "container name")
    resolved = podenv.resolve(pod, c, facts)
    argv = podenv.argv(resolved, image)
    if not argv:
        raise RuntimeSpecError(f"container {name}: no command: the image has no entrypoint or cmd "
                               "and the container sets none")
    # Container variables override the image's in place; new names follow (Docker's rule).
    env: dict[str, Value] = {e.name: Value(e.value) for e in image.env}
    env.update(resolved.env)
    # containerd sets HOSTNAME to the pod's hostname unless the spec sets it.
    env.setdefault("HOSTNAME", Value(podenv.hostname(pod)))
    env_values, env_files = [], []
    for i, (k, v) in enumerate(env.items()):
        env_values.append("" if v.secret else v.text)
        env_files.append(secrets.add(f"env/{name}/{i}", v.text.encode()) if v.secret else "")
    argv_words, argv_files = [], []
    for i, w in enumerate(argv):
        argv_words.append("" if w.secret else w.text)
        argv_files.append(secrets.add(f"argv/{name}/{i}", w.text.encode()) if w.secret else "")
    src, dst, ro = [], [], []
    for m in c.volume_mounts:
        src.append(volumes[m.name]["source"])
        dst.append(m.mount_path)
        # configMap and secret volumes are read-only, as the kubelet mounts them
        ro.append("ro" if m.read_only or volumes[m.name]["kind"] in ("configMap", "secret") else "rw")
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
        "argv": argv_words,
        "argv_files": argv_files,
        "env_split": _env_split(list(env)),
        "env_values": env_values,
        "env_files": env_files,
        "oom_score_adj": oom_score_adj(pod, c, memory_capacity),
        "events": resolved.events,
        "mount_src": src,
        "mount_dst": dst,
        "mount_ro": ro,
        "cgroup": _cgroup_values(c.limits.memory, c.limits.cpu_m,
                                 c.effective_requests().cpu_m, None),
    }


# The supervisor's handler slots: probes, then lifecycle hooks.
HANDLER_SLOTS = ("startup", "liveness", "readiness", "poststart", "prestop")


def _role(c: Container, init: bool) -> str:
    return "sidecar" if c.is_sidecar else ("init" if init else "app")


def _handler_context(c: Container, h: Handler, pod_ip: str) -> dict:
    """A probe's or hook's action as words for the supervisor: the kind and its argv.
    exec: the command; tcpSocket: host port; httpGet: host port path "Name: value"...;
    sleep: seconds. A named port is resolved to the container's port number."""
    if h.kind == "exec":
        return {"kind": "exec", "argv": list(h.command)}
    if h.kind == "sleep":
        return {"kind": "sleep", "argv": [str(h.seconds)]}
    port = h.port
    if isinstance(port, str):
        numbers = [p.container_port for p in c.ports if p.name == port]
        if not numbers:
            raise RuntimeSpecError(f"container {c.name}: no port named {port!r}")
        port = numbers[0]
    host = h.host or pod_ip
    if h.kind == "tcpSocket":
        return {"kind": "tcpSocket", "argv": [host, str(port)]}
    headers = [f"{n}: {v}" for n, v in h.headers]
    if not any(n.lower() == "host" for n, _ in h.headers):
        headers.insert(0, f"Host: {host}:{port}")
    return {"kind": "httpGet", "argv": [host, str(port), h.path, *headers]}


def _probe_params(p: Probe) -> list[str]:
    return [str(p.initial_delay_seconds), str(p.period_seconds), str(p.timeout_seconds),
            str(p.success_threshold), str(p.failure_threshold)]


def supervisor_entries(spec: PodSpec, pod_ip: str) -> list[dict]:
    """Per container (init containers in order, then app containers): its role and
    handler slots, as the supervisor template lays them out in bash arrays."""
    out = []
    for init, c in [(True, x) for x in spec.init_containers] + [(False, x) for x in spec.containers]:
        slots = []
        for slot, probe in (("startup", c.startup_probe), ("liveness", c.liveness_probe),
                            ("readiness", c.readiness_probe)):
            if probe is not None:
                slots.append({"slot": slot, **_handler_context(c, probe.handler, pod_ip),
                              "params": _probe_params(probe)})
        for slot, hook in (("poststart", c.post_start), ("prestop", c.pre_stop)):
            if hook is not None:
                slots.append({"slot": slot, **_handler_context(c, hook, pod_ip), "params": []})
        out.append({"name": _name(c.name, "container name"), "role": _role(c, init), "slots": slots})
    return out


def _pod_limit(spec: PodSpec, attr: str) -> int | None:
    """The pod cgroup's limit: set only when every container has one (as in Kubernetes),
    then what the pod can use at its peak (app containers and sidecars, or an init
    container with the sidecars started before it)."""
    every = spec.all_containers()
    if not all(getattr(c.limits, attr) for c in every):
        return None
    steady = sum(getattr(c.limits, attr) for c in spec.containers)
    sidecars, peak = 0, 0
    for c in spec.init_containers:
        if c.is_sidecar:
            sidecars += getattr(c.limits, attr)
            peak = max(peak, sidecars)
        else:
            peak = max(peak, sidecars + getattr(c.limits, attr))
    return max(steady + sidecars, peak)


def pod_context(pod: Pod, uid: str, images: Mapping[str, ImageConfig], net: Network,
                pids_max: int | None = DEFAULT_PIDS_MAX, facts: PodFacts | None = None,
                memory_capacity: int = 0) -> dict:
    """Everything the templates need to create `pod` on a host, as plain values.

    `facts`: what env vars and volumes resolve against (objects, host, allocatable);
    podenv.ConfigMissing when a required ConfigMap/Secret is missing. The secret bytes
    are in "payload" (for the batch's stdin), never in a rendered script.
    `memory_capacity`: the host's memory (oom_score_adj of Burstable containers)."""
    check_uid(uid)
    every = pod.spec.all_containers()
    missing = [c.image for c in every if c.image not in images]
    if missing:
        raise RuntimeSpecError(f"pod {pod.key}: no image for {', '.join(missing)}")
    if facts is None:
        facts = PodFacts(uid=uid, node_name="", host_ip="", pod_ip=net.ip, allocatable_cpu_m=0,
                         allocatable_memory=0)
    secrets = _Secrets(uid)
    volumes = _volume_sources(pod, uid, facts, secrets)
    entries = supervisor_entries(pod.spec, net.ip)
    pod_ctx = {"uid": uid, "restart_policy": pod.spec.restart_policy,
               "grace": pod.spec.termination_grace_period_seconds,
               "container_names": [c.name for c in pod.spec.containers],
               "init_names": [c.name for c in pod.spec.init_containers],
               "entries": entries,
               "share_pid": bool(pod.spec.share_process_namespace)}
    containers = []
    for c in every:
        ctx = _container_context(pod, uid, c, images[c.image], volumes, facts, secrets, memory_capacity)
        # What the start script reports as the container starts: started unless a startup
        # probe must pass first; ready once started, unless a readiness probe must pass
        # (a regular init container is never ready while it runs). With a postStart hook
        # the supervisor reports running, once the hook has completed.
        started = c.startup_probe is None
        ready = started and c.readiness_probe is None and c in pod.spec.containers + tuple(
            x for x in pod.spec.init_containers if x.is_sidecar)
        ctx["started_initially"] = "true" if started else "false"
        ctx["ready_initially"] = "true" if ready else "false"
        ctx["hold_running"] = "yes" if c.post_start is not None else "no"
        ctx["script"] = render("container.sh.j2", pod=pod_ctx, c=ctx)
        containers.append(ctx)
    pod_mem = _pod_limit(pod.spec, "memory")
    pod_cpu = _pod_limit(pod.spec, "cpu_m")
    veth, _ = veth_names(uid)
    meta = {"uid": uid, "name": pod.name, "namespace": pod.namespace,
            "containers": [c.name for c in pod.spec.containers],
            "images": {c.name: images[c.image].digest for c in every}}
    if pod.spec.init_containers:
        meta["initContainers"] = [c.name for c in pod.spec.init_containers]
    return {
        **pod_ctx,
        "name": _name(pod.name, "pod name"),
        "ip": net.ip,
        "prefix": net.prefix,
        "gateway": net.gateway,
        "veth": veth,
        "image_dirs": sorted({image_dir(images[c.image].digest) for c in every}),
        "pod_json": json.dumps(meta, separators=(",", ":"), sort_keys=True),
        "hostname": _name(podenv.hostname(pod), "hostname"),
        "hosts_file": podenv.hosts_file(pod, net.ip),
        "supervisor": render("supervisor.sh.j2", pod=pod_ctx),
        "emptydir_watch": emptydir_limit.watch_script(pod.spec, uid, pod_dir(uid)),
        "containers": containers,
        "volumes": list(volumes.values()),
        "cgroup": _cgroup_values(pod_mem, pod_cpu, pod.spec.requests().cpu_m, pids_max),
        "container_cgroups": [c["cgroup_path"] for c in containers],
        "container_dirs": [f"{c['dir']}/{sub}" for c in containers for sub in ("upper", "work", "rootfs")],
        "wait_ticks": int(WAIT_FOR_RUNNING_S / 0.002),
        # secrets tmpfs: directories to make, then (path, octal mode) per payload file
        "secret_dirs": secrets.dirs,
        "secret_files": [x for rel, _, mode in secrets.files for x in (rel, mode)],
        "secret_sizes": [len(data) for _, data, _ in secrets.files],
        "secret_tmpfs_size": sum(len(d) + 4096 for _, d, _ in secrets.files) + 65536,
        "payload": b"".join(data for _, data, _ in secrets.files),
        "events": [e for c in containers for e in c["events"]],
        # The create script waits for these to start: the app containers, or with init
        # containers only the first one (init containers may take long to complete).
        "wait_names": [every[0].name] if pod.spec.init_containers else [c.name for c in pod.spec.containers],
    }


def delete_context(uid: str, grace: int = 30) -> dict:
    veth, _ = veth_names(uid)
    return {"uid": uid, "veth": veth, "grace": int(grace)}


PAYLOAD_END = b"@@podctl-payload-end\n"


def batch_script(actions: Sequence[dict], epoch: int | None = None, gc: Sequence[str] = (),
                 network: dict | None = None) -> str:
    """One script for a host: [{"verb": "create"|"delete", "pod": context}, ...].
    `epoch`: the controller's fencing token (None: no check, for tests of the parts);
    `gc`: image digests to delete from the host when no pod there names them;
    `network`: the host's pod network to apply first (podnet.apply_context), or None."""
    for d in gc:
        image_dir(d)  # refuses anything but a sha256 hex digest
    return render("batch.sh.j2", actions=list(actions), epoch=epoch, gc=list(gc), network=network,
                  payload_end=PAYLOAD_END.decode().strip())


def batch_payload(actions: Sequence[dict]) -> bytes | None:
    """What follows the batch script on stdin: the created pods' secrets tmpfs files,
    in the order batch.sh.j2 reads them, then an end marker (None: nothing to send)."""
    data = [a["pod"]["payload"] for a in actions if a["verb"] == "create" and a["pod"].get("secret_files")]
    return b"".join(data) + PAYLOAD_END if data else None


def probe_script() -> str:
    """The probe (holds no values): read without Jinja, see render.render_static."""
    return render_static("probe.sh.j2")
