"""The controller's image step of a run: pull what pods about to start need (before the
batch that starts them), and garbage-collect images hosts no longer use.

Decisions are image_pull.py's pure functions; this module gathers their inputs (store,
probes, the image store) and carries them out (registry.pull in threads, events).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

from . import image_state
from .image_pull import BACKOFF, NEVER, PULL, Failure, decide, digests_in_use, image_gc, starting, waiting_reason
from .images import ImageStore, parse_ref
from .errors import ImageError
from .registry import host_platform, pull
from .registry_config import RegistrySettings

PARALLEL_PULLS = 4


def pod_containers(pod) -> list:
    """Every container whose image the pod needs (init containers too, where modelled)."""
    return list(getattr(pod.spec, "init_containers", ()) or ()) + list(pod.spec.containers)


def local_kind(images: ImageStore, ref: str, memo: dict | None = None) -> str | None:
    """"imported" (pinned), "pulled" (from a registry) or None (not in the store).
    `memo`: a dict kept for one run, so each name is looked up once."""
    if memo is not None:
        if ref not in memo:
            memo[ref] = local_kind(images, ref)
        return memo[ref]
    try:
        doc = images.inspect(ref)
    except ImageError:
        return None
    if doc is None:
        return None
    return "pulled" if (doc.get("source") or {}).get("kind") == "registry" else "imported"


def pod_images_one(images: ImageStore, ref: str):
    try:
        return images.get(ref)
    except ImageError:
        return None


def _failures(store) -> dict[str, Failure]:
    return {ref: Failure(f.failures, f.error, f.last_attempt) for ref, f in image_state.pull_failures(store).items()}


def _norm(ref: str) -> str:
    try:
        return parse_ref(ref)
    except ImageError:
        return ref


def image_waiting(pod, images: ImageStore, failures: dict[str, Failure], now: float,
                  memo: dict | None = None) -> dict[str, tuple[str, str]]:
    """container name -> (reason, message) for containers whose image keeps the pod from
    starting (ErrImageNeverPull, ErrImagePull, ImagePullBackOff)."""
    out = {}
    for c in pod_containers(pod):
        action = decide(c.image_pull_policy, local_kind(images, c.image, memo), True, failures.get(_norm(c.image)), now)
        why = waiting_reason(c.image, action, failures.get(_norm(c.image)), now)
        if why:
            out[c.name] = why
    return out


def waiting_for_pods(store, images: ImageStore, pods, now: float) -> dict[str, dict[str, tuple[str, str]]]:
    """uid -> image_waiting, for `get`/`describe` (one read of the pull failures)."""
    failures, memo = _failures(store), {}
    return {row.uid: image_waiting(pod, images, failures, now, memo) for row, pod in pods}


@dataclass
class PullOutcome:
    notes: list[str] = field(default_factory=list)
    blocked: set[str] = field(default_factory=set)  # pod uids that must not start this run


async def pull_for_run(store, inventory, pods, placements, snaps, images: ImageStore,
                       settings: RegistrySettings, cache_root, now: float, dry_run: bool) -> PullOutcome:
    out = PullOutcome()
    failures, memo = _failures(store), {}
    planned = {p.key: p.host for p in placements if p.host}
    hosts = {h.name: h for h in inventory.hosts}
    jobs: dict[tuple, list] = {}  # (ref, platform, settings) -> [(row, image)]
    for row, pod in pods:
        host = row.node or planned.get(row.key)
        snap = snaps.get(host) if host else None
        is_starting = starting(row.uid, host, row.deleting, snap)
        for c in pod_containers(pod):
            norm = _norm(c.image)
            action = decide(c.image_pull_policy, local_kind(images, c.image, memo), is_starting,
                            failures.get(norm), now)
            if action == PULL:
                platform = host_platform((snap.facts or {}).get("arch"))
                group_settings = settings.for_groups(hosts[host].groups if host in hosts else ())
                jobs.setdefault((c.image, platform, group_settings), []).append((row, c.image))
            elif action in (BACKOFF, NEVER) and is_starting:
                out.blocked.add(row.uid)
                why = waiting_reason(c.image, action, failures.get(norm), now)
                out.notes.append(f"pod {row.key} is waiting: {why[0] if why else action}: {why[1] if why else ''}")
    if not jobs:
        return out
    if dry_run:
        out.blocked.update(row.uid for users in jobs.values() for row, _ in users)
        out.notes += [f"would pull {ref} ({platform}) for {', '.join(sorted({r.key for r, _ in users}))}"
                      for (ref, platform, _), users in jobs.items()]
        return out
    gate = asyncio.Semaphore(PARALLEL_PULLS)

    async def one(ref: str, platform: str, group_settings: RegistrySettings):
        async with gate:
            started = time.monotonic()
            try:
                img, changed = await asyncio.to_thread(pull, images, ref, group_settings, cache_root, platform)
                return None, time.monotonic() - started
            except ImageError as exc:
                return str(exc), time.monotonic() - started
            except Exception as exc:  # a registry's surprise must never stop the run
                return f"{type(exc).__name__}: {exc}", time.monotonic() - started

    keys = list(jobs)
    results = await asyncio.gather(*(one(*k) for k in keys))
    with store.transaction():
        for key, (error, took) in zip(keys, results):
            ref = key[0]
            image_state.record_pull(store, _norm(ref), error, now)
            for row, _ in jobs[key]:
                where = dict(namespace=row.namespace, name=row.name, uid=row.uid)
                store.add_event(now, "Normal", "Pulling", f'Pulling image "{ref}"', **where)
                if error is None:
                    store.add_event(now, "Normal", "Pulled", f'Successfully pulled image "{ref}" in {took:.3f}s',
                                    **where)
                else:
                    store.add_event(now, "Warning", "Failed", f'Failed to pull image "{ref}": {error}', **where)
                    store.add_event(now, "Warning", "Failed", "Error: ErrImagePull", **where)
                    out.notes.append(f"pod {row.key} is waiting: ErrImagePull: {error}")
                    out.blocked.add(row.uid)  # even if its other images came
    return out


def gc_for_run(store, snaps, pods, placements, images: ImageStore, now: float, min_age: float | None,
               dry_run: bool) -> dict[str, list[str]]:
    """host -> image digests to delete there now (and the unused-since clocks kept)."""

    planned = {p.key: p.host for p in placements if p.host}
    wanted: dict[str, set[str]] = {}
    digest_of: dict[str, str | None] = {}
    for row, pod in pods:
        host = row.node or planned.get(row.key)
        if host is None or row.deleting:
            continue
        for ref in pod.spec.images():
            if ref not in digest_of:
                img = (pod_images_one(images, ref))
                digest_of[ref] = img.digest if img else None
            if digest_of[ref]:
                wanted.setdefault(host, set()).add(digest_of[ref])
    known = image_state.host_images(store)
    out = {}
    for host, snap in snaps.items():
        if not snap.reachable:
            continue
        used = digests_in_use(snap.pods.values(), wanted.get(host, ()))
        clocks = {d: t for (h, d), t in known.items() if h == host}
        seen, delete = image_gc(snap.images, used, clocks, now, min_age)
        if not dry_run and seen != clocks:
            image_state.save_host_images(store, host, seen)
        if delete:
            out[host] = delete
    return out


