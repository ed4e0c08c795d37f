"""reconcile(desired, observed) -> Plan: the pure diff at the heart of every run."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence

from .emptydir_limit import evicted
from .plan import Action, Plan, ordered
from .probe import HostSnapshot


@dataclass(frozen=True)
class DesiredPod:
    uid: str
    key: str  # namespace/name
    host: str | None  # bound host, None while unscheduled
    deleting: bool = False
    digests: tuple[str, ...] | None = ()  # image digests; None when an image is missing


def reconcile(desired: Sequence[DesiredPod], observed: Mapping[str, HostSnapshot],
              notes: Sequence[str] = (), image_gc: Mapping[str, Sequence[str]] | None = None) -> Plan:
    """`image_gc`: host -> digests unused long enough to delete there (image_pull.image_gc)."""
    actions: list[Action] = []
    by_uid = {d.uid: d for d in desired}
    skipped = sorted(h for h, snap in observed.items() if not snap.reachable)

    # What hosts run that nothing wants there: orphans, or pods now bound elsewhere.
    for host, snap in observed.items():
        if not snap.reachable:
            continue
        for uid in snap.pods:
            d = by_uid.get(uid)
            if d is None:
                actions.append(Action("delete", host, uid, "", "orphan: no desired pod has this uid"))
            elif d.host != host and not d.deleting:
                actions.append(Action("delete", host, uid, d.key, f"bound to {d.host}, not {host}"))

    for d in desired:
        snap = observed.get(d.host) if d.host else None
        if d.deleting:
            if snap is None:
                if d.host is None or d.host not in observed:
                    actions.append(Action("forget", None, d.uid, d.key, "deleted"))
            elif snap.reachable:
                if d.uid in snap.pods:
                    actions.append(Action("delete", d.host, d.uid, d.key, "deleted"))
                else:
                    actions.append(Action("forget", None, d.uid, d.key, "gone from its host"))
            continue
        if snap is None or not snap.reachable or d.digests is None:
            continue
        seen = snap.pods.get(d.uid)
        if seen is not None and (seen.state in ("alive", "finished") or evicted(seen)):
            continue  # an evicted pod stays Failed, even if its supervisor died
        for digest in d.digests:
            if digest not in snap.images:
                actions.append(Action("push-image", d.host, "", "", "not on host", digest))
        reason = "supervisor lost: restart" if seen is not None else "new"
        actions.append(Action("create", d.host, d.uid, d.key, reason))

    pushed = {(a.host, a.digest) for a in actions if a.verb == "push-image"}
    for host, digests in sorted((image_gc or {}).items()):
        if host in observed and observed[host].reachable:
            actions += [Action("delete-image", host, "", "", "unused", d) for d in digests if (host, d) not in pushed]

    # One push per (host, digest), whatever number of pods need it.
    unique = list(dict.fromkeys(actions))
    all_notes = list(notes) + [f"host {h} not reachable: its pods are left as they are" for h in skipped]
    return Plan(ordered(unique), tuple(all_notes))
