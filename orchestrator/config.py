"""Frozen run configuration: paths, timeouts, parallelism. Built once by the CLI."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path


def default_home() -> Path:
    env = os.environ.get("PODCTL_HOME")
    return Path(env).expanduser() if env else Path.home() / ".podctl"


def _env_keeper() -> bool:
    """PODCTL_SSH_KEEPER=0 (or false/no/off): no connection keeper, direct connections."""
    return os.environ.get("PODCTL_SSH_KEEPER", "1").strip().lower() not in ("0", "false", "no", "off")


def _env_keeper_idle() -> float:
    try:
        return float(os.environ.get("PODCTL_SSH_KEEPER_IDLE", "300"))
    except ValueError:
        return 300.0


def _env_gc_age() -> float | None:
    """PODCTL_IMAGE_GC_MIN_AGE: seconds an image must stay unused on a host before it is
    deleted there (default 120, Kubernetes' imageMinimumGCAge); "off" keeps every image."""
    raw = os.environ.get("PODCTL_IMAGE_GC_MIN_AGE", "120").strip().lower()
    if raw in ("off", "never", "none"):
        return None
    try:
        return max(0.0, float(raw))
    except ValueError:
        return 120.0


@dataclass(frozen=True)
class Config:
    home: Path
    inventory: Path | None = None
    connect_timeout: float = 5.0  # TCP + SSH handshake
    command_timeout: float = 60.0  # outer deadline on any one remote script
    probe_timeout: float = 10.0
    keepalive_interval: float = 5.0
    keepalive_count_max: int = 3
    parallelism: int = 64  # hosts worked on at once
    # The SSH connection keeper (transport/keeper.py): a background process that keeps
    # each host's connection open between runs, so a cron run pays no SSH handshakes.
    # Off (env PODCTL_SSH_KEEPER=0): one direct connection per host per run.
    ssh_keeper: bool = field(default_factory=_env_keeper)
    # The keeper exits after this many seconds without a request (env PODCTL_SSH_KEEPER_IDLE).
    keeper_idle_timeout: float = field(default_factory=_env_keeper_idle)
    # Image garbage collection on hosts (image_pull.image_gc); None: off.
    image_gc_min_age: float | None = field(default_factory=_env_gc_age)

    @property
    def settings_file(self) -> Path:
        return self.home / "config.yaml"

    @property
    def state_db(self) -> Path:
        return self.home / "state.db"

    @property
    def images_dir(self) -> Path:
        return self.home / "images"

    @property
    def lab_dir(self) -> Path:
        return self.home / "lab"

    @property
    def lab_inventory(self) -> Path:
        return self.lab_dir / "inventory.yaml"

    def resolved_inventory(self) -> Path | None:
        """-i / PODCTL_INVENTORY, else the lab's inventory when a lab is up."""
        if self.inventory is not None:
            return self.inventory
        if self.lab_inventory.exists():
            return self.lab_inventory
        return None


SETTINGS_HELP = """\
$PODCTL_HOME/config.yaml (optional):
  kubelet:
    podPidsLimit: 4096                # processes per pod (-1: unlimited), as the kubelet's
  scheduler:
    scoringStrategy: LeastAllocated   # spread load (default) | MostAllocated: bin-pack
    weights:                          # scorer -> weight 0..100 (0 turns it off)
      ImageLocality: 1
  registries: ...                     # mirrors, insecure, credentials (registry_config.py)
  network:
    mode: host-gw                     # host-gw (hosts share an L2 segment) | vxlan
    vxlanPort: 8472                   # UDP port of the VXLAN mode (hosts must allow it)
    vni: 1                            # VXLAN network identifier 1..16777215
"""


def read_settings(path: Path):
    """$PODCTL_HOME/config.yaml parsed ({} when empty); a file that cannot be read or
    parsed is a usage error naming it. Each section's reader validates its own part."""
    import yaml

    from .errors import UsageError

    try:
        return yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise UsageError(f"{path}: cannot read: {exc}") from exc


def scheduler_settings(config: Config) -> dict:
    """SchedulerConfig keyword arguments from $PODCTL_HOME/config.yaml ({} without
    one). Errors name the file and the field, and come before any host is touched."""
    path = config.settings_file
    if not path.exists():
        return {}

    from .errors import UsageError
    from .scheduler.registry import build
    from .scheduler.types import SchedulerConfig

    doc = read_settings(path)

    def bad(field: str, problem: str) -> UsageError:
        return UsageError(f"{path}: {field}: {problem}\n{SETTINGS_HELP}")

    if not isinstance(doc, dict):
        raise bad("(top level)", "expected a mapping")
    unknown = sorted(set(doc) - {"scheduler", "registries", "kubelet", "network"})
    if unknown:
        raise bad(unknown[0], "unknown setting (known: scheduler, registries, kubelet, network)")
    sched = doc.get("scheduler") or {}
    if not isinstance(sched, dict):
        raise bad("scheduler", "expected a mapping")
    unknown = sorted(set(sched) - {"scoringStrategy", "weights"})
    if unknown:
        raise bad(f"scheduler.{unknown[0]}", "unknown field (known: scoringStrategy, weights)")
    strategy = sched.get("scoringStrategy", "LeastAllocated")
    if strategy not in ("LeastAllocated", "MostAllocated"):
        raise bad("scheduler.scoringStrategy", f"{strategy!r}: expected LeastAllocated or MostAllocated")
    weights = sched.get("weights") or {}
    if not isinstance(weights, dict):
        raise bad("scheduler.weights", "expected a mapping of scorer name -> weight")
    for name, w in weights.items():
        if not isinstance(w, int) or isinstance(w, bool) or not 0 <= w <= 100:
            raise bad(f"scheduler.weights.{name}", f"{w!r}: expected an integer 0..100")
    settings = {"scoring_strategy": strategy, "weights": tuple(sorted(weights.items()))}
    try:
        build(SchedulerConfig(**settings))  # unknown scorer names
    except ValueError as exc:
        raise bad("scheduler.weights", str(exc)) from exc
    return settings


DEFAULT_POD_PIDS_LIMIT = 4096


def pod_pids_limit(config: Config) -> int | None:
    """The kubelet's podPidsLimit from $PODCTL_HOME/config.yaml (`kubelet.podPidsLimit`,
    default 4096; -1 or 0: unlimited -> None)."""
    path = config.settings_file
    if not path.exists():
        return DEFAULT_POD_PIDS_LIMIT

    from .errors import UsageError

    doc = read_settings(path)
    kubelet = doc.get("kubelet") if isinstance(doc, dict) else None
    if kubelet is None:
        return DEFAULT_POD_PIDS_LIMIT
    if not isinstance(kubelet, dict) or set(kubelet) - {"podPidsLimit"}:
        raise UsageError(f"{path}: kubelet: expected a mapping with podPidsLimit\n{SETTINGS_HELP}")
    value = kubelet.get("podPidsLimit", DEFAULT_POD_PIDS_LIMIT)
    if not isinstance(value, int) or isinstance(value, bool) or value < -1:
        raise UsageError(f"{path}: kubelet.podPidsLimit: {value!r}: expected an integer >= -1\n{SETTINGS_HELP}")
    return value if value > 0 else None


def network_settings(config: Config):
    """The pod network's mode from $PODCTL_HOME/config.yaml (`network:`; default
    host-gw) as podnet.NetworkSettings; errors name the file and the field."""
    from .podnet import MODES, NetworkSettings

    path = config.settings_file
    if not path.exists():
        return NetworkSettings()

    from .errors import UsageError

    doc = read_settings(path)
    net = doc.get("network") if isinstance(doc, dict) else None
    if net is None:
        return NetworkSettings()

    def bad(field: str, problem: str) -> UsageError:
        return UsageError(f"{path}: {field}: {problem}\n{SETTINGS_HELP}")

    if not isinstance(net, dict):
        raise bad("network", "expected a mapping with mode, vxlanPort, vni")
    unknown = sorted(set(net) - {"mode", "vxlanPort", "vni"})
    if unknown:
        raise bad(f"network.{unknown[0]}", "unknown field (known: mode, vxlanPort, vni)")
    mode = net.get("mode", "host-gw")
    if mode not in MODES:
        raise bad("network.mode", f"{mode!r}: expected one of {', '.join(MODES)}")
    defaults = NetworkSettings()
    values = {}
    for key, attr, low, high in (("vxlanPort", "vxlan_port", 1, 65535), ("vni", "vni", 1, 2**24 - 1)):
        value = net.get(key, getattr(defaults, attr))
        if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
            raise bad(f"network.{key}", f"{value!r}: expected an integer {low}..{high}")
        values[attr] = value
    return NetworkSettings(mode, **values)
