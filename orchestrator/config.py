"""Frozen run configuration: paths, timeouts, parallelism. Built once by the CLI."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


def default_home() -> Path:
    env = os.environ.get("PODCTL_HOME")
    return Path(env).expanduser() if env else Path.home() / ".podctl"


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
