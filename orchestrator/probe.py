"""Parsing what hosts report: probe output and batch results. Pure functions.

Scripts print machine-readable lines `@@podctl <kind> ...` (templates/*.sh.j2);
anything else (a chatty .bashrc, warnings) is ignored.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

MARK = "@@podctl "


@dataclass(frozen=True)
class ObservedPod:
    uid: str
    state: str  # alive | dead | finished
    status: dict  # status.json as the supervisor wrote it ({} when none)
    meta: dict  # pod.json (name, namespace, containers, images)
    memory: int = 0  # bytes in use by the pod's cgroup (0: unknown)

    @property
    def containers(self) -> list[dict]:
        return list(self.status.get("containers") or [])


@dataclass(frozen=True)
class HostSnapshot:
    """One host as one probe saw it. `status` follows transport.Result.status."""

    host: str
    status: str  # ok | failed | unreachable | unknown
    facts: dict = field(default_factory=dict)
    images: frozenset[str] = frozenset()
    pods: dict = field(default_factory=dict)  # uid -> ObservedPod
    error: str = ""

    @property
    def reachable(self) -> bool:
        return self.status == "ok"

    def cpu_m(self) -> int:
        return int(self.facts.get("cpus", 0)) * 1000

    def memory(self) -> int:
        return int(self.facts.get("mem_total_kb", 0)) * 1024


def _lines(stdout: bytes | str):
    text = stdout.decode("utf-8", "replace") if isinstance(stdout, bytes) else stdout
    for line in text.splitlines():
        if line.startswith(MARK):
            yield line[len(MARK):]


def _json(text: str) -> dict:
    try:
        value = json.loads(text)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def parse_probe(host: str, stdout: bytes | str) -> HostSnapshot:
    facts: dict[str, str] = {}
    images: set[str] = set()
    pods: dict[str, ObservedPod] = {}
    usage: dict[str, int] = {}
    complete = False
    for line in _lines(stdout):
        kind, _, rest = line.partition(" ")
        if kind == "fact":
            key, _, value = rest.partition(" ")
            facts[key] = value
        elif kind == "image":
            images.add(rest.strip())
        elif kind == "usage":
            uid, _, value = rest.partition(" ")
            if value.isdigit():
                usage[uid] = int(value)
        elif kind == "pod":
            parts = rest.split(" ", 3)
            if len(parts) == 4:
                uid, state, status, meta = parts
                pods[uid] = ObservedPod(uid, state, _json(status), _json(meta), usage.get(uid, 0))
        elif kind == "end":
            complete = True
    if not complete:
        # A probe cut short must not be read as "these pods are gone".
        return HostSnapshot(host, "unknown", error="probe output ended early")
    return HostSnapshot(host, "ok", facts, frozenset(images), pods)


@dataclass(frozen=True)
class ActionOutcome:
    uid: str
    ok: bool
    rc: int | None
    events: tuple[str, ...] = ()  # created, exists, deleted, image-missing ..., error ...


def parse_results(stdout: bytes | str) -> dict[str, ActionOutcome]:
    """Per pod uid, how its action in a batch ended (missing = it never ran)."""
    events: dict[str, list[str]] = {}
    results: dict[str, ActionOutcome] = {}
    for line in _lines(stdout):
        kind, _, rest = line.partition(" ")
        uid, _, detail = rest.partition(" ")
        if kind == "result":
            rc = int(detail) if detail.strip().lstrip("-").isdigit() else None
            results[uid] = ActionOutcome(uid, rc == 0, rc, tuple(events.get(uid, ())))
        elif uid:
            events.setdefault(uid, []).append(f"{kind} {detail}".strip())
    return results
