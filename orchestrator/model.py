"""Frozen value types shared by every layer: hosts, pods, containers, volumes.

Decisions (placement, planning) are pure functions over these; nothing here does I/O.
Mappings are stored as sorted tuples of pairs so every value is hashable and the
same input always compares (and renders) the same way.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable, Mapping

Pairs = tuple[tuple[str, str], ...]


def pairs(mapping: Mapping[str, str] | Iterable[tuple[str, str]] | None) -> Pairs:
    """A mapping as a sorted tuple of (key, value): hashable and order-independent."""
    if not mapping:
        return ()
    items = mapping.items() if isinstance(mapping, Mapping) else mapping
    return tuple(sorted((str(k), str(v)) for k, v in items))


# ---------------------------------------------------------------- hosts


TAINT_EFFECTS = ("NoSchedule", "PreferNoSchedule", "NoExecute")
TOLERATION_OPERATORS = ("Equal", "Exists")


@dataclass(frozen=True)
class Taint:
    key: str
    value: str = ""
    effect: str = "NoSchedule"  # NoSchedule | PreferNoSchedule | NoExecute


@dataclass(frozen=True)
class Toleration:
    """A pod's toleration, matched as Kubernetes does (v1helper.ToleratesTaint): an
    empty effect matches every effect; an empty key with Exists matches every taint.

    The one toleration type of podctl: the manifest layer builds it from validated
    specs, the workload controllers and the scheduler match taints with it. A plain
    frozen dataclass (its hash is that of five small fields; SchedPod caches its own)."""

    key: str = ""
    operator: str = "Equal"  # Equal | Exists
    value: str = ""
    effect: str = ""  # "" | NoSchedule | PreferNoSchedule | NoExecute
    toleration_seconds: int | None = None  # NoExecute only; kept, podctl does not evict yet

    def __post_init__(self) -> None:
        if self.operator not in TOLERATION_OPERATORS:
            raise ValueError(f"toleration operator {self.operator!r} is not Equal or Exists")
        if self.effect and self.effect not in TAINT_EFFECTS:
            raise ValueError(f"toleration effect {self.effect!r} is not one of "
                             f"{', '.join(TAINT_EFFECTS)}")
        if not self.key and self.operator != "Exists":
            raise ValueError("a toleration with an empty key needs operator Exists")
        if self.operator == "Exists" and self.value:
            raise ValueError("a toleration with operator Exists takes no value")

    @classmethod
    def from_k8s(cls, t: Mapping) -> Toleration:
        """A toleration of a validated spec (camelCase; omitted or null fields default
        as in Kubernetes: operator Equal, empty key, value and effect)."""
        return cls(t.get("key") or "", t.get("operator") or "Equal", t.get("value") or "",
                   t.get("effect") or "", t.get("tolerationSeconds"))

    def tolerates(self, taint: Taint) -> bool:
        if self.effect and self.effect != taint.effect:
            return False
        if self.key and self.key != taint.key:
            return False
        return self.operator == "Exists" or self.value == taint.value

    def to_k8s(self) -> dict:
        out: dict = {}
        if self.key:
            out["key"] = self.key
        out["operator"] = self.operator
        if self.value:
            out["value"] = self.value
        if self.effect:
            out["effect"] = self.effect
        if self.toleration_seconds is not None:
            out["tolerationSeconds"] = self.toleration_seconds
        return out


@dataclass(frozen=True)
class Capacity:
    """What a host offers to pods. cpu in millicores, memory in bytes."""

    cpu_m: int = 0
    memory: int = 0
    pods: int = 110  # Kubernetes' default max pods per node


@dataclass(frozen=True)
class Host:
    name: str
    address: str
    port: int = 22
    user: str = "root"
    key_file: str | None = None
    known_hosts: str | None = None  # None: the user's ~/.ssh/known_hosts
    become: bool = False  # run scripts through sudo
    become_user: str = "root"
    password: str | None = None
    labels: Pairs = ()
    taints: tuple[Taint, ...] = ()
    capacity: Capacity | None = None  # None: use what the probe reports
    pod_cidr: str | None = None
    node_ip: str | None = None  # where other hosts route its pods (None: podnet derives it)
    fence_command: tuple[str, ...] = ()  # argv run on the controller to fence the host
    memory_available_min: int | None = None  # eviction threshold (None: the default)
    groups: tuple[str, ...] = ()
    source: str = ""  # the inventory file, for error messages

    @property
    def label_map(self) -> dict[str, str]:
        return dict(self.labels)


# ---------------------------------------------------------------- pods


@dataclass(frozen=True)
class Resources:
    """cpu in millicores, memory in bytes; None where the manifest says nothing."""

    cpu_m: int | None = None
    memory: int | None = None


@dataclass(frozen=True)
class KeyRef:
    """configMapKeyRef / secretKeyRef of an env var."""

    kind: str  # ConfigMap | Secret
    name: str
    key: str
    optional: bool = False


@dataclass(frozen=True)
class FieldRef:
    """fieldRef: a pod field (metadata.name, status.podIP, metadata.labels['k']...)."""

    field_path: str
    api_version: str = "v1"


@dataclass(frozen=True)
class ResourceFieldRef:
    """resourceFieldRef: a container's request or limit, divided by `divisor`."""

    resource: str  # limits.cpu, requests.memory...
    container_name: str = ""  # "": the container the variable belongs to
    divisor: str = ""  # a quantity as written; "" is 1


@dataclass(frozen=True)
class EnvVar:
    name: str
    value: str
    value_from: KeyRef | FieldRef | ResourceFieldRef | None = None


@dataclass(frozen=True)
class EnvFromSource:
    """envFrom: every key of a ConfigMap or Secret, each name prefixed."""

    kind: str  # ConfigMap | Secret
    name: str
    prefix: str = ""
    optional: bool = False


@dataclass(frozen=True)
class ContainerPort:
    container_port: int
    protocol: str = "TCP"
    name: str | None = None
    host_port: int | None = None


@dataclass(frozen=True)
class VolumeMount:
    name: str
    mount_path: str
    read_only: bool = False


PROBE_KINDS = ("exec", "tcpSocket", "httpGet")
HOOK_KINDS = ("exec", "httpGet", "sleep")


@dataclass(frozen=True)
class Handler:
    """What a probe or a lifecycle hook does: exactly one of exec (command), tcpSocket
    (host, port), httpGet (host, port, path, headers) or sleep (seconds; hooks only).
    `port` is a number, or a name of one of the container's ports (resolved when the
    runtime spec is made); `host` "" means the pod's IP."""

    kind: str  # exec | tcpSocket | httpGet | sleep
    command: tuple[str, ...] = ()
    host: str = ""
    port: int | str = 0
    path: str = "/"
    headers: tuple[tuple[str, str], ...] = ()  # in order; names may repeat
    seconds: int = 0


@dataclass(frozen=True)
class Probe:
    """A liveness, readiness or startup probe with Kubernetes' defaults."""

    handler: Handler
    initial_delay_seconds: int = 0
    period_seconds: int = 10
    timeout_seconds: int = 1
    success_threshold: int = 1
    failure_threshold: int = 3


@dataclass(frozen=True)
class Container:
    name: str
    image: str
    command: tuple[str, ...] | None = None  # None: the image's entrypoint
    args: tuple[str, ...] | None = None  # None: the image's cmd
    env: tuple[EnvVar, ...] = ()
    working_dir: str | None = None
    ports: tuple[ContainerPort, ...] = ()
    requests: Resources = field(default_factory=Resources)
    limits: Resources = field(default_factory=Resources)
    volume_mounts: tuple[VolumeMount, ...] = ()
    image_pull_policy: str = "IfNotPresent"
    env_from: tuple[EnvFromSource, ...] = ()
    restart_policy: str | None = None  # init containers only: "Always" makes a sidecar
    liveness_probe: Probe | None = None
    readiness_probe: Probe | None = None
    startup_probe: Probe | None = None
    post_start: Handler | None = None
    pre_stop: Handler | None = None

    @property
    def is_sidecar(self) -> bool:
        """An init container with restartPolicy Always (Kubernetes' native sidecar)."""
        return self.restart_policy == "Always"

    def effective_requests(self) -> Resources:
        """Kubernetes: a limit without a request makes the request equal to the limit."""
        return Resources(
            cpu_m=self.requests.cpu_m if self.requests.cpu_m is not None else self.limits.cpu_m,
            memory=self.requests.memory if self.requests.memory is not None else self.limits.memory,
        )


@dataclass(frozen=True)
class KeyToPath:
    key: str
    path: str
    mode: int | None = None


@dataclass(frozen=True)
class Volume:
    name: str
    kind: str  # "emptyDir" | "hostPath" | "configMap" | "secret"
    medium: str = ""  # emptyDir: "" (disk) or "Memory" (tmpfs)
    size_limit: int | None = None  # emptyDir, bytes
    path: str | None = None  # hostPath
    host_path_type: str = ""  # hostPath: "", Directory, DirectoryOrCreate, File, FileOrCreate...
    source_name: str = ""  # configMap: name; secret: secretName
    items: tuple[KeyToPath, ...] = ()  # configMap/secret: () projects every key
    default_mode: int = 0o644  # configMap/secret
    optional: bool = False  # configMap/secret


@dataclass(frozen=True)
class PodSpec:
    containers: tuple[Container, ...]
    volumes: tuple[Volume, ...] = ()
    restart_policy: str = "Always"  # Always | OnFailure | Never
    termination_grace_period_seconds: int = 30
    node_name: str | None = None
    node_selector: Pairs = ()
    share_process_namespace: bool = False  # one PID namespace for all the pod's containers
    host_aliases: tuple[tuple[str, tuple[str, ...]], ...] = ()  # (ip, hostnames)
    hostname: str | None = None
    subdomain: str | None = None
    init_containers: tuple[Container, ...] = ()  # in order; sidecars among them

    def all_containers(self) -> tuple[Container, ...]:
        """Init containers (in order), then app containers."""
        return self.init_containers + self.containers

    def requests(self) -> Resources:
        """The pod's effective request, as the scheduler counts it (Kubernetes'
        PodRequests): app containers plus sidecars, or the largest need of any init
        container while it runs (with the sidecars started before it), whichever is more."""
        def total(attr: str) -> int:
            steady = sum(getattr(c.effective_requests(), attr) or 0 for c in self.containers)
            sidecars, peak = 0, 0
            for c in self.init_containers:
                need = getattr(c.effective_requests(), attr) or 0
                if c.is_sidecar:
                    sidecars += need
                    peak = max(peak, sidecars)
                else:
                    peak = max(peak, sidecars + need)
            return max(steady + sidecars, peak)
        return Resources(cpu_m=total("cpu_m"), memory=total("memory"))

    def images(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(c.image for c in self.all_containers()))


@dataclass(frozen=True)
class ObjectMeta:
    name: str
    namespace: str = "default"
    labels: Pairs = ()
    annotations: Pairs = ()


@dataclass(frozen=True)
class Pod:
    """A validated pod as the user declared it. `source` names file and document."""

    meta: ObjectMeta
    spec: PodSpec
    source: str = ""

    @property
    def name(self) -> str:
        return self.meta.name

    @property
    def namespace(self) -> str:
        return self.meta.namespace

    @property
    def key(self) -> str:
        return f"{self.meta.namespace}/{self.meta.name}"


@dataclass(frozen=True)
class Manifest:
    """One document of a manifest file: its kind and the validated object."""

    api_version: str
    kind: str
    name: str
    namespace: str
    obj: object  # Pod for kind Pod; workloads add their own types
    raw: Mapping  # the document as parsed, kept for `get -o yaml` and the store
    source: str = ""


# ---------------------------------------------------------------- images


@dataclass(frozen=True)
class ImageConfig:
    """An image as the runtime needs it: which rootfs, and how to start it.

    `digest` names the flattened rootfs tarball (sha256 hex, no prefix); a host keeps
    the unpacked tree at /var/lib/podctl/images/<digest>/rootfs.
    """

    ref: str  # normalised "name:tag"
    digest: str
    entrypoint: tuple[str, ...] = ()
    cmd: tuple[str, ...] = ()
    env: tuple[EnvVar, ...] = ()
    working_dir: str = ""
    size: int = 0
