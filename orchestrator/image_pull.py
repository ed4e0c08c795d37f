"""When the controller pulls, what a pod waiting for its image shows, and which images a
host no longer needs. Pure functions over plain data (the pulling itself: registry.py).

podctl's rule, on top of Kubernetes' imagePullPolicy: **a local import pins the name.**
An image brought in with `podctl image import` (the lab's busybox:latest, test images)
is never pulled, whatever the policy: it is what that name means on this controller.
Only names the store does not hold, or holds from an earlier pull, go to a registry:

    policy        image in the store        not in the store
    Never         use it                    ErrImageNeverPull (pod not started)
    IfNotPresent  use it                    pull
    Always        re-resolve the tag's      pull
                  digest (pulled images
                  only), when the pod is
                  being started

Pulls happen only for pods about to be started on a host (not on a no-op reconcile).
A failed pull is retried at later runs with Kubernetes' image back-off (10 s doubling to
300 s); while it waits the container shows ImagePullBackOff, right after a failure
ErrImagePull, both with the registry's message. One pod's failure never blocks others.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Iterable, Mapping

BACKOFF_INITIAL = 10.0
BACKOFF_MAX = 300.0
GC_MIN_AGE = 120.0  # Kubernetes' imageMinimumGCAge

USE, PULL, NEVER, BACKOFF, SKIP = "use", "pull", "never", "backoff", "skip"
_HEX = re.compile(r"[0-9a-f]{64}\Z")


@dataclass(frozen=True)
class Failure:
    failures: int
    error: str
    last_attempt: float


def backoff_until(f: Failure) -> float:
    return f.last_attempt + min(BACKOFF_MAX, BACKOFF_INITIAL * 2 ** max(0, f.failures - 1))


def decide(policy: str, local: str | None, starting: bool, failure: Failure | None, now: float) -> str:
    """What to do about one image of one pod. `local`: "imported", "pulled" or None
    (not in the store); `starting`: the pod is about to be (re)started on its host."""
    if local == "imported":
        return USE  # a local import pins the name
    if policy == "Never":
        return USE if local else NEVER
    if not starting:
        return USE if local else SKIP
    if policy == "IfNotPresent" and local:
        return USE
    if failure is not None and now < backoff_until(failure):
        return BACKOFF
    return PULL


def waiting_reason(image: str, action: str, failure: Failure | None, now: float) -> tuple[str, str] | None:
    """(reason, message) a container shows while its image is not there, or None."""
    if action == NEVER:
        return ("ErrImageNeverPull",
                f'Container image "{image}" is not present with pull policy of Never '
                "(import it: podctl image import)")
    if failure is None or action not in (BACKOFF, PULL, SKIP):
        return None
    if now - failure.last_attempt < BACKOFF_INITIAL:
        return "ErrImagePull", f'failed to pull image "{image}": {failure.error}'
    return "ImagePullBackOff", f'Back-off pulling image "{image}": {failure.error}'


def starting(uid: str, host: str | None, deleting: bool, snap) -> bool:
    """The pod will get a create action this run (reconcile.py's rule, restated): bound,
    its host answered the probe, and no live or finished copy of it is there."""
    if deleting or host is None or snap is None or not snap.reachable:
        return False
    seen = snap.pods.get(uid)
    return seen is None or seen.state not in ("alive", "finished")


# ---------------------------------------------------------------- host image GC


def digests_in_use(observed_pods: Iterable, wanted: Iterable[str]) -> set[str]:
    """Every image digest a pod present on the host names (any state: a dead pod's
    overlay still sits on its image), plus those of pods planned there."""
    used = set(wanted)
    for p in observed_pods:
        used.update(str(d) for d in ((p.meta or {}).get("images") or {}).values())
    return used


def image_gc(on_host: Iterable[str], in_use: set[str], unused_since: Mapping[str, float | None],
             now: float, min_age: float | None) -> tuple[dict[str, float | None], list[str]]:
    """(what to remember: digest -> unused since or None, digests to delete now).

    An image no pod uses starts its clock when first seen unused; it is deleted once it
    has stayed unused for `min_age` seconds (None: GC off). Used again, the clock resets."""
    seen: dict[str, float | None] = {}
    delete = []
    for d in sorted(set(on_host)):
        if not _HEX.match(d):
            continue
        if d in in_use:
            seen[d] = None
            continue
        since = unused_since.get(d) or now
        seen[d] = since
        if min_age is not None and now - since >= min_age:
            delete.append(d)
    return seen, delete
