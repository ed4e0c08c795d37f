"""One run of the controller: lock, load, probe, place, plan, execute, record.

Everything that decides is a pure function elsewhere (placement, reconcile, status);
this module only gathers their inputs (store, inventory, probes) and carries out their
outputs (executor), so `podctl plan` and `podctl reconcile` share one path.
"""

from __future__ import annotations

import asyncio
import os
import random
import socket
import time
from dataclasses import dataclass, field
from typing import Callable

from .config import Config, network_settings, pod_pids_limit, scheduler_settings
from .errors import StoreError, UsageError
from .health import CRON, READY, HealthSettings
from .host_failures import HostCare, row_pod
from .executor import HostReport, execute
from .images import ImageStore
from .image_puller import gc_for_run, pull_for_run
from .registry_config import registry_settings
from .inventory import Inventory, load_inventory
from .model import Host, ImageConfig, Pod
from . import emptydir_limit, failpoints, pod_events, podconfig, podnet, scheduling
from .scheduling import host_capacity  # noqa: F401 (commands.py)
from .plan import Plan
from .probe import HostSnapshot, parse_probe
from .reconcile import DesiredPod, reconcile
from .runtime import Network, delete_context, pod_context, probe_script
from .store import PodRow, Store, run_lock
from .views import pod_object
from .workloads.common import owned_pod_from_k8s, to_store
from .workloads.run import WORKLOAD_KINDS, reconcile_workload, workload_from_doc



def require_inventory(config: Config) -> Inventory:
    path = config.resolved_inventory()
    if path is None:
        raise UsageError("no inventory: pass -i FILE, set PODCTL_INVENTORY, or run `podctl lab up`")
    return load_inventory(path)


def stored_pod(config: Config, namespace: str, name: str) -> tuple[PodRow, Pod]:
    """The stored pod a verb (exec, logs, debug) acts on, with its validated spec; the
    kubectl error when there is none or it is being deleted."""
    with open_store(config) as store:
        row = store.get_pod(namespace, name)
    if row is None or row.deleting:
        raise UsageError(f'pods "{name}" not found')
    return row, row_pod(row)


def open_transport(config: Config, inventory: Inventory):
    """The run's transport, honouring the inventory's host key policy (strict or accept-new).

    By default through the SSH connection keeper (transport/keeper.py: connections kept
    open between runs, started on first use; direct connections if it cannot be had);
    with config.ssh_keeper off (PODCTL_SSH_KEEPER=0), direct connections for this run.
    Imported here, not at the top: the keeper's client does not load asyncssh."""
    if config.ssh_keeper:
        from .transport.keeper_client import KeeperTransport

        return KeeperTransport(config, host_key_checking=inventory.host_key_checking)
    from .transport.ssh import SSHTransport

    return SSHTransport(config, host_key_checking=inventory.host_key_checking)


def open_store(config: Config) -> Store:
    config.home.mkdir(parents=True, exist_ok=True, mode=0o700)
    # state.db holds Secrets (and env values): 0600 (store.py) under a home only we enter.
    if config.home.stat().st_mode & 0o077:
        config.home.chmod(0o700)
    return Store.open(config.state_db)


async def probe_hosts(transport, hosts: list[Host], timeout: float) -> dict[str, HostSnapshot]:
    script = probe_script()

    async def one(h: Host) -> HostSnapshot:
        r = await transport.run(h, script, timeout=timeout, idempotent=True)
        if r.status != "ok":
            detail = r.error or r.stderr.decode(errors="replace").strip()[-300:]
            return HostSnapshot(h.name, r.status, error=detail)
        return parse_probe(h.name, r.stdout)

    snaps = await asyncio.gather(*(one(h) for h in hosts))
    return {s.host: s for s in snaps}


def sched_inputs(store: Store, pods: list[tuple[PodRow, Pod]]) -> list[scheduling.PodInput]:
    """Every live pod as the scheduler sees it, oldest first (the order pods are placed
    in), with its owner's selector for the default spreading."""
    selectors = {}
    for o in store.list_objects():
        if o.kind in scheduling.SPREAD_BY_DEFAULT:
            selectors[o.uid] = (o.doc.get("spec") or {}).get("selector")
    out = []
    for row, _ in sorted(pods, key=lambda rp: (rp[0].created_at, rp[0].key)):
        if row.deleting:
            continue
        out.append(scheduling.PodInput(row.uid, row.namespace, row.name, row.spec, row.node, row.owner_kind,
                                       selectors.get(row.owner_uid)))
    return out


def image_facts(pods: list[tuple[PodRow, Pod]], images: ImageStore) -> tuple[dict[str, str], dict[str, int]]:
    """(image reference -> digest, digest -> size) for the images pods name and the
    local store has: hosts report digests, and ImageLocality weighs them by size."""
    digests, sizes = {}, {}
    for _, pod in pods:
        for ref, img in (pod_images(pod, images, partial=True) or {}).items():
            digests[ref], sizes[img.digest] = img.digest, img.size
    return digests, sizes


def pod_images(pod: Pod, images: ImageStore, partial: bool = False) -> dict[str, ImageConfig] | None:
    """Every image the pod names, from the local store; None if one is missing (with
    `partial`, those the store has)."""
    found = {}
    for ref in pod.spec.images():
        img = images.get(ref)
        if img is None:
            if partial:
                continue
            return None
        found[ref] = img
    return found


@dataclass
class RunReport:
    plan: Plan
    snapshots: dict[str, HostSnapshot]
    placements: list = field(default_factory=list)  # scheduler.Placement, this run's
    hosts: dict[str, HostReport] = field(default_factory=dict)
    pending: list[str] = field(default_factory=list)  # pods that are not where they should be
    executed: bool = False
    workload_changes: int = 0  # pods workload controllers created or deleted this round

    def merge(self, later: "RunReport") -> "RunReport":
        """A run of several rounds: every action taken, the last round's view of the world."""
        actions = tuple(a for a in self.plan.actions if a.verb != "forget") + later.plan.actions
        hosts = dict(self.hosts)
        for name, r in later.hosts.items():
            hosts[name] = r if name not in hosts or r.status != "ok" or hosts[name].status == "ok" else hosts[name]
        return RunReport(Plan(actions, later.plan.notes), later.snapshots, self.placements + later.placements,
                         hosts, later.pending, later.executed or self.executed, later.workload_changes)

    @property
    def exit_code(self) -> int:
        """DESIGN §3: 2 some hosts failed or unreachable, 1 pending, 0 converged."""
        bad_hosts = [s for s in self.snapshots.values() if s.status != "ok"]
        bad_hosts += [r for r in self.hosts.values() if r.status != "ok"]
        if bad_hosts:
            return 2
        if self.pending or (not self.executed and not self.plan.empty):
            return 1
        return 0


class Controller:
    max_rounds = 10

    def __init__(self, config: Config, transport_factory: Callable = open_transport,
                 rng: random.Random | None = None, explain: str = "chosen", health: HealthSettings = CRON):
        """`explain="full"` keeps every feasible host's score card (for `plan -v`);
        `health`: grace and hysteresis (health.CRON, or health.WATCH for a loop)."""
        self.config = config
        self.health = health
        self.transport_factory = transport_factory
        self.rng = rng or random.Random()
        self.explain = explain

    def images(self) -> ImageStore:
        return ImageStore(self.config.images_dir)

    def sync_hosts(self, store: Store, inventory: Inventory, now: float) -> dict[str, str]:
        """Every inventory host in the store with a stable pod CIDR; returns name -> CIDR."""
        known = {h.name: h.pod_cidr for h in store.list_hosts()}
        cidrs = {}
        with store.transaction():
            for h in inventory.hosts:
                if known.get(h.name) and (h.pod_cidr is None or h.pod_cidr == known[h.name]):
                    cidrs[h.name] = known[h.name]  # already there: nothing to write
                    continue
                store.upsert_host(h.name, now=now)
                cidrs[h.name] = store.assign_pod_cidr(h.name, requested=h.pod_cidr)
        return cidrs

    async def run(self, *, dry_run: bool = False, on_host_done=None, transport=None,
                  on_plan=None) -> RunReport:
        """One reconcile; with dry_run the plan is computed and nothing changes anywhere.

        `transport`: an open transport to reuse (warm connections, e.g. a watch loop);
        by default the run opens its own and closes it at the end. `on_plan(plan)` and
        `on_host_done(report)` let a terminal show progress.
        """
        self.on_plan = on_plan
        config = self.config
        inventory = require_inventory(config)
        self.sched_settings = {**scheduler_settings(config), "explain": self.explain}
        self.registry = registry_settings(config)  # validated before any host is touched
        self.net_settings = network_settings(config)
        if dry_run:
            return await self._with_transport(inventory, True, on_host_done, transport)
        holder = f"podctl reconcile on {socket.gethostname()} pid {os.getpid()}"
        with run_lock(config.home, holder):
            failpoints.hit("after-lock")
            return await self._with_transport(inventory, False, on_host_done, transport)

    async def _with_transport(self, inventory, dry_run, on_host_done, transport) -> RunReport:
        if transport is not None:
            return await self._rounds(inventory, transport, dry_run, on_host_done)
        async with self.transport_factory(self.config, inventory) as t:
            return await self._rounds(inventory, t, dry_run, on_host_done)

    async def _rounds(self, inventory, transport, dry_run, on_host_done) -> RunReport:
        """Rounds of probe-decide-act while workload controllers still have steps to take
        (a rolling update advances as its new pods come up), bounded by MAX_ROUNDS; what
        is left (e.g. minReadySeconds) waits for the next run."""
        report = await self._run(inventory, transport, dry_run=dry_run, on_host_done=on_host_done)
        rounds = 1
        while (not dry_run and report.workload_changes and report.executed
               and report.exit_code != 2 and rounds < self.max_rounds):
            later = await self._run(inventory, transport, dry_run=False, on_host_done=on_host_done)
            report = report.merge(later)
            rounds += 1
        return report

    async def _run(self, inventory: Inventory, transport, *, dry_run: bool, on_host_done) -> RunReport:
        config = self.config
        now = time.time()
        images = self.images()
        with open_store(config) as store:
            cidrs = self.sync_hosts(store, inventory, now) if not dry_run else {
                h.name: (store.get_host(h.name).pod_cidr if store.get_host(h.name) else None) or h.pod_cidr
                for h in inventory.hosts}
            begin_run = getattr(transport, "begin_run", None)
            if begin_run is not None:
                begin_run()  # a kept transport retries hosts that failed last run
            snaps = await probe_hosts(transport, list(inventory.hosts), config.probe_timeout)
            failpoints.hit("after-probe")
            if not dry_run:
                with store.transaction():  # one commit for all hosts, not one each
                    for name, snap in snaps.items():
                        if snap.reachable:
                            store.record_host_facts(name, dict(snap.facts), now)
            if not dry_run:
                self._container_events(store, snaps, now)
            care = self.care = HostCare(self.health, config.command_timeout)
            health, health_notes = care.judge(store, inventory, snaps, now, dry_run)
            health_notes += await care.fence(store, inventory, health, now, dry_run)
            health_notes += care.evacuate(store, health, now, dry_run)
            health_notes += care.evict(store, inventory, snaps, now, dry_run)
            failpoints.hit("after-health")
            workload_notes, changes = self._workloads(store, inventory, snaps, now, dry_run)
            workload_notes = health_notes + workload_notes
            failpoints.hit("after-workloads")
            rows = store.list_pods()
            pods = [(row, row_pod(row)) for row in rows]
            placements, notes = self._place(store, inventory, snaps, pods, cidrs, dry_run, images, health)
            failpoints.hit("after-place")
            notes = workload_notes + notes
            rows = store.list_pods() if not dry_run else rows
            pods = [(row, row_pod(row)) for row in rows]
            pulls = await pull_for_run(store, inventory, pods, placements, snaps, images, self.registry,
                                       config.home / "registry", now, dry_run)
            gc = gc_for_run(store, snaps, pods, placements, images, now, config.image_gc_min_age, dry_run)
            objects = podconfig.load_objects(store)
            desired, pending = self._desired(pods, images, placements, snaps, objects,
                                             None if dry_run else store, now, pulls.blocked)
            plan = reconcile(desired, snaps, notes + pulls.notes, gc)
            nets, net_notes = self._networks(inventory, cidrs, pods, self.net_settings)
            plan = podnet.with_network(plan, podnet.network_actions(nets, snaps), net_notes)
            report = RunReport(plan, snaps, placements, pending=pending, workload_changes=changes)
            if dry_run or plan.empty:
                if not dry_run:
                    self._forget(store, plan, now)
                report.executed = not dry_run
                return report
            if getattr(self, "on_plan", None):
                self.on_plan(plan)
            hosts = {h.name: h for h in inventory.hosts}
            contexts = self._contexts(plan, pods, images, cidrs, hosts, snaps, objects, store, now)
            contexts.update({podnet.context_key(a.host): podnet.apply_context(nets[a.host])
                             for a in plan.actions if a.verb == podnet.NET_VERB})
            report.hosts = await execute(plan, transport, hosts, contexts, images,
                                         config.command_timeout, on_host_done, epoch=store.next_epoch())
            report.executed = True
            failpoints.hit("before-record")
            self._record(store, plan, report, pods, now)
            return report

    @staticmethod
    def _container_events(store: Store, snaps, now: float) -> None:
        """Events from container transitions the probes saw since the last run (only a
        pod whose containers changed is written)."""
        changed = []
        for row in store.list_pods():
            snap = snaps.get(row.node or "")
            observed = snap.pods.get(row.uid) if snap is not None and snap.reachable else None
            if observed is None:
                continue
            summary = pod_events.summarize(observed)
            before = (row.observed or {}).get("containers")
            # An eviction (emptydir_limit) is news once: its message is kept with the summary.
            eviction = emptydir_limit.evicted(observed)
            evicted = eviction[1] if eviction else None
            if summary != before or evicted != (row.observed or {}).get("evicted"):
                changed.append((row, before, summary, evicted))
        if not changed:
            return  # a run over unchanged pods writes nothing
        with store.transaction():
            for row, before, summary, evicted in changed:
                for kind, reason, message in pod_events.transitions(before, summary, row.name):
                    store.add_event(now, kind, reason, message, namespace=row.namespace, name=row.name,
                                    uid=row.uid)
                if evicted and evicted != (row.observed or {}).get("evicted"):
                    store.add_event(now, "Warning", emptydir_limit.REASON, evicted, namespace=row.namespace,
                                    name=row.name, uid=row.uid)
                seen = {"containers": summary, **({"evicted": evicted} if evicted else {})}
                store.record_observed(row.uid, seen, now)

    def _workloads(self, store: Store, inventory: Inventory, snaps, now: float, dry_run: bool):
        """Run each workload's controller over the pods it owns; record what it decides.

        Returns (notes for the plan, number of pods created or deleted). In a dry run the
        decisions become notes only.
        """
        hosts = [self.care.host_info(h, snaps) for h in inventory.hosts]
        notes, changes = [], 0
        for o in store.list_objects():
            if o.kind not in WORKLOAD_KINDS:
                continue
            obj = workload_from_doc(o.doc, f"state.db {o.kind} {o.namespace}/{o.name}")
            owned = []
            for r in store.list_pods(owner_uid=o.uid):
                body = pod_object(r, row_pod(r), snaps.get(r.node or ""), None)
                host = r.node or (r.spec.get("spec") or {}).get("nodeName")
                owned.append(owned_pod_from_k8s(body, uid=r.uid, created_at=r.created_at, host=host,
                                                deleting=r.deleting))
            d = reconcile_workload(obj, owned, now, uid=o.uid, stored_status=o.status,
                                   generation=o.generation, hosts=hosts, rng=self.rng)
            what = f"{o.kind.lower()} {o.namespace}/{o.name}"
            if d.create or d.delete:
                notes.append(f"{what}: {len(d.create)} pod(s) to create, {len(d.delete)} to delete"
                             + (" (dry run)" if dry_run else ""))
            notes += getattr(d, "notes", [])  # e.g. a StatefulSet waiting for a host to be fenced
            if dry_run:
                continue
            changes += self._record_decision(store, o, d, now)
        return notes, changes

    def _record_decision(self, store: Store, o, d, now: float) -> int:
        changes = 0
        with store.transaction():
            for c in d.create:
                try:
                    store.add_pod(o.namespace, c.name, c.manifest, now, o.kind, o.name, o.uid)
                    changes += 1
                except StoreError as exc:  # a name clash with another pod: next run retries
                    store.add_event(now, "Warning", "FailedCreate", str(exc), kind=o.kind,
                                    namespace=o.namespace, name=o.name, uid=o.uid)
            for x in d.delete:
                row = store.get_pod_by_uid(x.uid)
                if row is not None and not row.deleting:
                    store.request_delete(x.uid, now)
                    changes += 1
                    store.add_event(now, "Normal", "SuccessfulDelete", f"deleted pod {x.name}: {x.reason}",
                                    kind=o.kind, namespace=o.namespace, name=o.name, uid=o.uid)
            if d.delete_object:
                for row in store.list_pods(owner_uid=o.uid):
                    if not row.deleting:
                        store.request_delete(row.uid, now)
                store.delete_object(o.kind, o.namespace, o.name)
            else:
                store.set_object_status(o.kind, o.namespace, o.name, to_store(d))
            for e in d.events:
                store.add_event(now, e.type, e.reason, e.message, kind=o.kind, namespace=o.namespace,
                                name=o.name, uid=o.uid)
        return changes

    def _place(self, store: Store, inventory: Inventory, snaps, pods, cidrs, dry_run, images: ImageStore, health):
        """Schedule every pod without a host; bind (and give an IP to) each one placed."""
        inputs = sched_inputs(store, pods)
        if all(p.node is not None for p in inputs):
            return [], []
        digests, sizes = image_facts(pods, images)
        not_ready = frozenset(name for name, h in health.items() if h.state != READY)
        outcome = scheduling.place(list(inventory.hosts), snaps, inputs, digests, sizes, self.sched_settings,
                                   not_ready=not_ready, cordoned=self.care.cordoned, pressure=self.care.pressure)
        notes = [f"pod {key} is Pending: {message}" for key, message in outcome.invalid]
        now = time.time()
        by_key = {row.key: row for row, _ in pods}
        for p in outcome.placements:
            row = by_key[p.key]
            if p.host is None:
                notes.append(f"pod {p.key} is Pending: {p.message}")
                if not dry_run:
                    self._unschedulable(store, row, p.message, now)
                continue
            if not dry_run:
                ip = store.allocate_pod_ip(p.host, cidrs[p.host], row.uid)
                card = p.score
                why = f"; score {card.total} of {p.feasible} feasible host(s)" if card else ""
                store.add_event(now, "Normal", "Scheduled", f"Successfully assigned {row.key} to {p.host} ({ip}){why}",
                                namespace=row.namespace, name=row.name, uid=row.uid)
        return list(outcome.placements), notes

    @staticmethod
    def _unschedulable(store: Store, row: PodRow, message: str, now: float) -> None:
        """A FailedScheduling event, once per distinct message (cron runs every minute:
        the same reason again is not news)."""
        last = [e for e in store.list_events(uid=row.uid, limit=20) if e.reason == "FailedScheduling"]
        if last and max(last, key=lambda e: e.id).message == message:
            return
        store.add_event(now, "Warning", "FailedScheduling", message, namespace=row.namespace, name=row.name,
                        uid=row.uid)

    def _desired(self, pods, images: ImageStore, placements: list, snaps, objects=None, store=None,
                 now: float = 0.0, blocked: set[str] = frozenset()):
        """`blocked`: pods whose image could not be had this run (pull failed, back-off)."""
        planned = {p.key: p.host for p in placements if p.host}
        desired, pending = [], []
        for row, pod in pods:
            host = row.node or planned.get(row.key) if not row.deleting else row.node
            imgs = None if row.uid in blocked else pod_images(pod, images)
            digests = None if imgs is None else tuple(sorted({i.digest for i in imgs.values()}))
            missing = podconfig.problem(pod, row.uid, objects or {}) if not row.deleting else None
            if missing is not None:
                digests = None  # not started until the ConfigMap/Secret exists (a later run)
                if store is not None and host is not None:
                    self._once(store, row, "Warning", "Failed" if missing.reason != "FailedMount"
                               else "FailedMount", f"Error: {missing.message}", now)
            desired.append(DesiredPod(row.uid, row.key, host, row.deleting, digests))
            if not row.deleting and (host is None or imgs is None):
                pending.append(row.key)
        return desired, pending

    @staticmethod
    def _once(store: Store, row: PodRow, type_: str, reason: str, message: str, now: float) -> None:
        """An event, unless the pod's latest event of that reason says the same."""
        last = [e for e in store.list_events(uid=row.uid, limit=20) if e.reason == reason]
        if last and max(last, key=lambda e: e.id).message == message:
            return
        store.add_event(now, type_, reason, message, namespace=row.namespace, name=row.name, uid=row.uid)

    @staticmethod
    def _networks(inventory: Inventory, cidrs, pods, settings=podnet.NetworkSettings()):
        """Each host's pod network (podnet.py): routes to the inventory's other hosts,
        masquerade, the hostPorts of the live pods bound to it (oldest first)."""
        live = sorted((rp for rp in pods if not rp[0].deleting), key=lambda rp: (rp[0].created_at, rp[0].key))
        bindings = podnet.port_bindings((row.node, row.key, row.pod_ip, pod) for row, pod in live)
        return podnet.desired_networks(list(inventory.hosts), cidrs, bindings, settings=settings)

    def _contexts(self, plan: Plan, pods, images: ImageStore, cidrs, hosts=None, snaps=None,
                  objects=None, store=None, now: float = 0.0) -> dict[str, dict]:
        by_uid = {row.uid: (row, pod) for row, pod in pods}
        contexts = {}
        pids = pod_pids_limit(self.config)
        for a in plan.actions:
            if a.verb == "create":
                row, pod = by_uid[a.uid]
                imgs = pod_images(pod, images) or {}
                host = (hosts or {}).get(row.node)
                snap = (snaps or {}).get(row.node)
                facts = podconfig.facts_for(pod, row.uid, row.pod_ip, host, snap, objects or {}) if host else None
                contexts[a.uid] = ctx = pod_context(pod, row.uid, imgs, Network(row.pod_ip, cidrs[row.node]),
                                                    pids_max=pids, facts=facts,
                                                    memory_capacity=podconfig.memory_capacity(snap))
                for reason, message in ctx["events"] if store is not None else ():
                    self._once(store, row, "Warning", reason, message, now)
            elif a.verb == "delete":
                entry = by_uid.get(a.uid)
                grace = entry[1].spec.termination_grace_period_seconds if entry else 30
                contexts[a.uid] = delete_context(a.uid, grace)
        return contexts

    def _forget(self, store: Store, plan: Plan, now: float) -> None:
        for a in plan.actions:
            if a.verb == "forget":
                store.forget_pod(a.uid)

    @staticmethod
    def _record_network(store: Store, a, report: RunReport, now: float) -> None:
        """A failed network sync is a Warning event on the host (kind Node, as kubectl
        shows node events) and keeps the run from reporting converged."""
        host_report = report.hosts.get(a.host)
        outcome = host_report.outcomes.get("network") if host_report else None
        if outcome is not None and outcome.ok:
            return
        detail = ("; ".join(outcome.events) or f"exit {outcome.rc}") if outcome else (
            host_report.error if host_report else "not run")
        store.add_event(now, "Warning", "NetworkNotReady", f"pod network on {a.host}: {detail}",
                        kind="Node", namespace="", name=a.host)
        report.pending.append(f"network on {a.host}")

    def _record(self, store: Store, plan: Plan, report: RunReport, pods, now: float) -> None:
        by_uid = {row.uid: row for row, _ in pods}
        self._forget(store, plan, now)
        for a in plan.actions:
            if a.verb == podnet.NET_VERB:
                self._record_network(store, a, report, now)
            if a.verb not in ("create", "delete"):
                continue
            host_report = report.hosts.get(a.host)
            outcome = host_report.outcomes.get(a.uid) if host_report else None
            row = by_uid.get(a.uid)
            ns, name = (row.namespace, row.name) if row else ("default", "")
            if outcome is None:
                store.add_event(now, "Warning", "FailedSync",
                                f"{a.describe()}: {host_report.error if host_report else 'not run'}",
                                namespace=ns, name=name, uid=a.uid)
                report.pending.append(a.pod or a.uid)
                continue
            if a.verb == "delete" and outcome.ok:
                if row is not None and row.deleting:
                    store.forget_pod(a.uid)
                store.add_event(now, "Normal", "Killing", f"{a.describe()}", namespace=ns, name=name, uid=a.uid)
            elif a.verb == "create" and outcome.ok:
                store.add_event(now, "Normal", "Started", f"started on {a.host}", namespace=ns, name=name, uid=a.uid)
            else:
                detail = "; ".join(outcome.events) or f"exit {outcome.rc}"
                store.add_event(now, "Warning", "Failed", f"{a.describe()}: {detail}",
                                namespace=ns, name=name, uid=a.uid)
                report.pending.append(a.pod or a.uid)
