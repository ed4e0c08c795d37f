"""Operators' verbs on hosts: cordon, uncordon, drain, fence.

- cordon: no new pods on the host (kubectl's SchedulingDisabled); what runs stays.
- drain: cordon, then move every pod off it except DaemonSet pods (they belong to the
  host): a Deployment's or Job's pod is deleted and its controller replaces it; a bare
  pod gets a successor elsewhere (podctl keeps bare pods as desired state); StatefulSet
  pods are deleted highest ordinal first, as their controller scales down.
- fence: the operator confirms the host is down (powered off, its pods dead), so pods
  that must never run twice (StatefulSet) may be replaced elsewhere. Refused while the
  host answers its probe: a host that is up is not fenced by saying so.

Each verb records its decision in the store and the next reconcile carries it out
(`drain` runs that reconcile itself).
"""

from __future__ import annotations

import asyncio
import re
import time

from .config import Config
from .controller import open_store, open_transport, probe_hosts, require_inventory
from .errors import UsageError
from .inventory import Inventory


def _host(inventory: Inventory, name: str):
    host = inventory.get(name)
    if host is None:
        known = ", ".join(h.name for h in inventory.hosts)
        raise UsageError(f"host {name!r} is not in the inventory (hosts: {known})")
    return host


def _known(store, name: str, now: float) -> None:
    if store.get_host(name) is None:
        store.upsert_host(name, now=now)


def cordon(config: Config, name: str, on: bool) -> str:
    inventory = require_inventory(config)
    _host(inventory, name)
    now = time.time()
    with open_store(config) as store:
        _known(store, name, now)
        was = bool(store.get_host(name).cordoned)
        store.set_cordon(name, on)
        store.add_event(now, "Normal", "NodeNotSchedulable" if on else "NodeSchedulable",
                        f"host {name} {'cordoned' if on else 'uncordoned'}", kind="Node", name=name)
    word = "cordoned" if on else "uncordoned"
    return f"host/{name} {word}" if was != on else f"host/{name} already {word}"


def _ordinal(name: str) -> int:
    m = re.search(r"-([0-9]+)$", name)
    return int(m.group(1)) if m else 0


def drain(config: Config, name: str) -> list[str]:
    """Cordon and mark every movable pod on the host; returns what was done."""
    inventory = require_inventory(config)
    _host(inventory, name)
    now = time.time()
    out = [cordon(config, name, True)]
    with open_store(config) as store, store.transaction():
        pods = [r for r in store.list_pods(node=name) if not r.deleting]
        skipped = [r for r in pods if r.owner_kind == "DaemonSet"]
        stateful = sorted((r for r in pods if r.owner_kind == "StatefulSet"),
                          key=lambda r: (r.owner_uid or "", -_ordinal(r.name)))
        rest = [r for r in pods if r.owner_kind not in ("DaemonSet", "StatefulSet")]
        for row in rest + stateful:
            if row.owner_kind:
                store.request_delete(row.uid, now)
                how = f"evicted (its {row.owner_kind} replaces it)"
            else:
                store.succeed_pod(row.uid, now)
                how = "evicted (re-placed elsewhere under a new uid)"
            store.add_event(now, "Normal", "Evicted", f"drain of host {name}: {how}",
                            namespace=row.namespace, name=row.name, uid=row.uid)
            out.append(f"pod/{row.name} {how}")
        if skipped:
            out.append(f"ignoring DaemonSet-managed pods: {', '.join(r.name for r in skipped)}")
    return out


def fence(config: Config, name: str, reason: str) -> str:
    inventory = require_inventory(config)
    host = _host(inventory, name)

    async def probe():
        async with open_transport(config, inventory) as t:
            return await probe_hosts(t, [host], min(config.probe_timeout, 5.0))

    snap = asyncio.run(probe())[name]
    if snap.reachable:
        raise UsageError(f"host {name} answers its probe: it is not down, so it cannot be fenced "
                         f"(to move its pods, use: podctl drain {name})")
    now = time.time()
    with open_store(config) as store:
        _known(store, name, now)
        store.fence_host(name, now, reason)
        store.add_event(now, "Warning", "NodeFenced", f"host {name} fenced: {reason}", kind="Node", name=name)
    return f"host/{name} fenced ({reason}); the next reconcile may replace its StatefulSet pods"
