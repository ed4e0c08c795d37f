"""What a run does about hosts that fail or run short: health, fencing, moving pods.

One `HostCare` per controller run holds that run's view (each host's health, the
stored host rows with cordon/fence, whether the controller thinks itself cut off,
the hosts low on memory); its steps record their decisions in the store and return
notes for the plan. The rules themselves are pure and live in health.py and
eviction.py; this module applies them to the store.
"""

from __future__ import annotations

import asyncio

from . import eviction
from .health import NOT_READY, READY, HealthSettings, HostHealth, cut_off, observe
from .inventory import Inventory
from .manifests import validate_pod
from .store import PodRow, Store
from .views import qos_class
from .workloads.common import HostInfo


def row_pod(row: PodRow):
    """A stored pod, validated again (the store holds the manifest document)."""
    return validate_pod(row.spec, f"state.db pod {row.key}")


class HostCare:
    def __init__(self, settings: HealthSettings, command_timeout: float):
        self.health = settings
        self.command_timeout = command_timeout
        self._health_now: dict[str, HostHealth] = {}
        self._hosts: dict = {}  # store.HostRow by name, this run's
        self._frozen = False
        self._pressure: set[str] = set()  # hosts low on memory, this run

    @property
    def cordoned(self) -> frozenset[str]:
        return frozenset(name for name, r in self._hosts.items() if r.cordoned)

    @property
    def pressure(self) -> frozenset[str]:
        return frozenset(self._pressure)

    def host_info(self, h, snaps) -> HostInfo:
        """A host as the workload controllers see it (health, cordon, fence)."""
        row = self._hosts.get(h.name)
        extra = {}
        if "lost" in HostInfo.__dataclass_fields__:
            health = self._health_now.get(h.name)
            extra = {"lost": bool(health and health.state == NOT_READY and not self._frozen),
                     "fenced": bool(row is not None and row.fenced_at is not None)}
        return HostInfo(h.name, h.labels, h.taints, ready=self.ready(h.name, snaps),
                        unschedulable=bool(row is not None and row.cordoned), **extra)

    def ready(self, host: str, snaps) -> bool:
        """Ready for new pods: probed now, and Ready by the health rules."""
        snap = snaps.get(host)
        h = self._health_now.get(host)
        return bool(snap and snap.reachable) and (h is None or h.state == READY)

    def judge(self, store: Store, inventory: Inventory, snaps, now: float, dry_run: bool):
        """Each host's health after this probe (health.py), recorded with an event on
        every change of state. Returns ({host: HostHealth}, notes)."""
        statuses = {h.name: snaps[h.name].status for h in inventory.hosts}
        frozen = self._frozen = cut_off(statuses, self.health)
        rows = {r.name: r for r in store.list_hosts()}
        prev = {r.name: HostHealth.from_store(r.health, r.health_since, r.health_detail) for r in rows.values()}
        out, notes = {}, []
        if frozen:
            bad = sum(1 for st in statuses.values() if st != "ok")
            notes.append(f"{bad} of {len(statuses)} hosts failed their probe at once: this controller is probably "
                         "the one cut off, so no host is marked NotReady and nothing is re-placed")
        with store.transaction():
            for h in inventory.hosts:
                snap, old = snaps[h.name], prev.get(h.name)
                new = observe(old, snap.status, now, self.health, snap.error, frozen)
                out[h.name] = new
                if old is None or old.state != new.state:
                    if new.state != READY or old is not None:
                        notes.append(f"host {h.name}: {old.state if old else 'new'} -> {new.state}"
                                     + (f" ({new.detail})" if new.detail else ""))
                    if not dry_run and old is not None:
                        kind = "Normal" if new.state == READY else "Warning"
                        store.add_event(now, kind, f"Node{new.state}", f"host {h.name} is {new.state}"
                                        + (f": {new.detail}" if new.detail else ""), kind="Node", name=h.name)
                if not dry_run and _health_changed(old, new):
                    store.set_host_health(h.name, new.state, new.since, new.to_store())
                row = rows.get(h.name)
                if not dry_run and new.state == READY and row is not None and row.fenced_at is not None:
                    store.clear_fence(h.name)  # back and proven: a later failure needs fencing anew
        self._health_now = out
        self._hosts = {r.name: r for r in store.list_hosts()} if not dry_run else rows
        return out, notes

    async def fence(self, store: Store, inventory: Inventory, health, now: float, dry_run: bool) -> list[str]:
        """Run a NotReady host's fence command (inventory podctl_fence_command) when it
        holds StatefulSet pods and is not fenced yet: exit 0 means it is down, and its
        StatefulSet pods may move. No shell: the words run as they are."""
        if self._frozen:
            return []
        notes = []
        for h in inventory.hosts:
            row = self._hosts.get(h.name)
            if (not h.fence_command or health[h.name].state != NOT_READY or row is None
                    or row.fenced_at is not None):
                continue
            if not any(r.owner_kind == "StatefulSet" and not r.deleting for r in store.list_pods(node=h.name)):
                continue
            what = " ".join(h.fence_command)
            if dry_run:
                notes.append(f"host {h.name}: would run its fence command: {what}")
                continue
            rc, detail = await _run_fence(h.fence_command, self.command_timeout)
            if rc == 0:
                self._hosts[h.name] = store.fence_host(h.name, now, f"fence command: {what}")
                store.add_event(now, "Warning", "NodeFenced", f"host {h.name} fenced by: {what}", kind="Node",
                                name=h.name)
                notes.append(f"host {h.name} fenced by its fence command")
            else:
                store.add_event(now, "Warning", "FenceFailed", f"{what}: {detail}", kind="Node", name=h.name)
                notes.append(f"host {h.name}: fence command failed ({detail}); its StatefulSet pods stay")
        return notes

    def evict(self, store: Store, inventory: Inventory, snaps, now: float, dry_run: bool) -> list[str]:
        """Node-pressure eviction (eviction.py): on a host low on memory, evict pods by
        kubelet's ranking; each is re-placed like a pod whose host was lost."""
        notes, self._pressure = [], set()
        by_host: dict[str, list] = {}
        for row in store.list_pods(include_deleting=False):
            if row.node:
                by_host.setdefault(row.node, []).append(row)
        for h in inventory.hosts:
            snap = snaps.get(h.name)
            if snap is None or not snap.reachable or "mem_available_kb" not in snap.facts:
                continue
            available = int(snap.facts.get("mem_available_kb") or 0) * 1024
            threshold = h.memory_available_min or eviction.DEFAULT_MEMORY_AVAILABLE_MIN
            if available >= threshold:
                continue
            self._pressure.add(h.name)
            rows = {r.uid: r for r in by_host.get(h.name, ())}
            cands = []
            for r in rows.values():
                pod = row_pod(r)
                seen = snap.pods.get(r.uid)
                cands.append(eviction.Candidate(r.uid, r.key, qos_class(pod), pod.spec.requests().memory or 0,
                                                seen.memory if seen else 0, r.owner_kind == "DaemonSet"))
            why = eviction.message(available, threshold)
            notes.append(f"host {h.name} is low on memory ({available // 2**20}Mi available, "
                         f"threshold {threshold // 2**20}Mi)")
            for c in eviction.choose(available, threshold, cands):
                row = rows[c.uid]
                if dry_run:
                    notes.append(f"pod {c.key} ({c.qos}) would be evicted from {h.name}")
                    continue
                with store.transaction():
                    if row.owner_kind:
                        store.request_delete(row.uid, now)
                    else:
                        store.succeed_pod(row.uid, now)
                    store.add_event(now, "Warning", "Evicted", why, namespace=row.namespace, name=row.name,
                                    uid=row.uid)
                notes.append(f"pod {c.key} ({c.qos}) evicted from {h.name}: low on memory")
        return notes

    def evacuate(self, store: Store, health, now: float, dry_run: bool) -> list[str]:
        """Pods bound to a NotReady host leave it: a Deployment's or Job's pod is deleted
        (its controller makes a replacement this run), a bare Pod gets a successor of
        the same name (podctl keeps bare pods as desired state). The lost copy stays
        recorded as being deleted, so when its host returns it is stopped first. A
        DaemonSet's pod belongs to its host and stays."""
        lost = {name for name, h in health.items() if h.state == NOT_READY}
        if not lost or self._frozen:
            return []
        notes = []
        for row in store.list_pods(include_deleting=False):
            if row.node not in lost or row.owner_kind in ("DaemonSet", "StatefulSet"):
                continue  # a DaemonSet pod belongs to its host; a StatefulSet waits for fencing
            how = f"replaced by its {row.owner_kind}" if row.owner_kind else "re-placed under a new uid"
            if dry_run:
                notes.append(f"pod {row.key} on NotReady host {row.node}: would be {how}")
                continue
            with store.transaction():
                if row.owner_kind:
                    store.request_delete(row.uid, now)
                else:
                    store.succeed_pod(row.uid, now)
                store.add_event(now, "Warning", "NodeNotReady", f"host {row.node} is NotReady: pod {how}",
                                namespace=row.namespace, name=row.name, uid=row.uid)
            notes.append(f"pod {row.key} lost with NotReady host {row.node}: {how}")
        return notes


async def _run_fence(argv: tuple[str, ...], timeout: float) -> tuple[int | None, str]:
    """(exit code, what it said) of a fence command; None on a timeout or if it cannot start."""
    try:
        proc = await asyncio.create_subprocess_exec(*argv, stdin=asyncio.subprocess.DEVNULL,
                                                    stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    except OSError as exc:
        return None, f"cannot run: {exc}"
    try:
        out, _ = await asyncio.wait_for(proc.communicate(), timeout)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        return None, f"no answer within {timeout:g}s"
    text = out.decode(errors="replace").strip()[-200:]
    return proc.returncode, f"exit {proc.returncode}" + (f": {text}" if text else "")


def _health_changed(old, new) -> bool:
    """Worth a write: a Ready host's good-probe count beyond the threshold is not."""
    if old is None or (old.state, old.since, old.detail) != (new.state, new.since, new.detail):
        return True
    return new.state != READY and new.ok_streak != old.ok_streak
