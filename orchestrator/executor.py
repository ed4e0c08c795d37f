"""Runs a Plan: per host, one session that pushes missing images, one batch script for
the pod actions. Hosts are worked on concurrently (bounded by the transport); nothing
that changes a host is retried: a failed or unknown step is reported, and the next
reconcile (whose scripts are idempotent) finishes the work.
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass, field
from typing import AsyncIterator, Callable, Mapping

from . import failpoints
from .images import ImageStore
from .model import Host
from .plan import Action, Plan
from .podnet import NET_VERB, context_key
from .probe import ActionOutcome, parse_results
from .render import render
from .runtime import batch_payload, batch_script, image_dir

CHUNK = 1 << 20


@dataclass
class HostReport:
    host: str
    status: str = "ok"  # ok | failed | unreachable | unknown (worst of its sessions)
    outcomes: dict[str, ActionOutcome] = field(default_factory=dict)
    pushed: list[str] = field(default_factory=list)
    error: str = ""
    stdout: bytes = b""


_RANK = {"ok": 0, "failed": 1, "unknown": 2, "unreachable": 3}


def _worse(a: str, b: str) -> str:
    return a if _RANK[a] >= _RANK[b] else b


def push_script(digest: str, size: int) -> str:
    return render("image_push.sh.j2", image_dir=image_dir(digest), digest=digest, size=size)


async def _blob_chunks(images: ImageStore, digest: str) -> AsyncIterator[bytes]:
    with images.open_blob(digest) as f:
        while True:
            chunk = await asyncio.to_thread(f.read, CHUNK)
            if not chunk:
                return
            yield chunk


async def _push(transport, host: Host, images: ImageStore, digest: str, report: HostReport,
                timeout: float) -> None:
    size = images.blob_path(digest).stat().st_size
    result = await transport.run(host, push_script(digest, size),
                                 payload=_blob_chunks(images, digest), timeout=timeout)
    report.status = _worse(report.status, result.status)
    if result.status == "ok":
        report.pushed.append(digest)
    else:
        report.error = f"image push {digest[:12]}: {result.error or result.stderr.decode(errors='replace')[-300:]}"


STALE_EPOCH = re.compile(rb"^@@podctl stale-epoch ([0-9]+)$", re.M)


async def run_host(transport, host: Host, actions: list[Action], contexts: Mapping[str, dict],
                   images: ImageStore, timeout: float, epoch: int | None = None) -> HostReport:
    report = HostReport(host.name)
    for a in actions:
        if a.verb == "push-image":
            await _push(transport, host, images, a.digest, report, timeout)
    steps = [{"verb": a.verb, "pod": contexts[a.uid]} for a in actions if a.verb in ("create", "delete")]
    gc = [a.digest for a in actions if a.verb == "delete-image"]
    network = contexts.get(context_key(host.name)) if any(a.verb == NET_VERB for a in actions) else None
    if not steps and not gc and network is None:
        return report
    # A graceful delete may take the pod's whole grace period: the deadline allows it.
    grace = max((s["pod"]["grace"] for s in steps if s["verb"] == "delete"), default=0)
    # Secrets and config files follow the script on stdin (never in the script's text).
    result = await transport.run(host, batch_script(steps, epoch, gc, network), payload=batch_payload(steps),
                                 timeout=timeout + grace)
    report.status = _worse(report.status, result.status)
    report.stdout = result.stdout
    stale = STALE_EPOCH.search(result.stdout)
    if stale:
        report.status = _worse(report.status, "failed")
        report.error = (f"refused: the host has acted for controller epoch {int(stale.group(1))}, "
                        f"newer than this run's {epoch} (another controller run decided later)")
        return report
    report.outcomes = parse_results(result.stdout)
    if result.status != "ok":
        tail = result.stderr.decode(errors="replace").strip().splitlines()[-3:]
        report.error = result.error or " / ".join(tail)
    return report


async def execute(plan: Plan, transport, hosts: Mapping[str, Host], contexts: Mapping[str, dict],
                  images: ImageStore, timeout: float,
                  on_done: Callable[[HostReport], None] | None = None, epoch: int | None = None
                  ) -> dict[str, HostReport]:
    """Run every host's share of the plan concurrently; return a report per host.
    `epoch`: the run's fencing token, checked by each host before it changes anything."""

    async def one(name: str) -> HostReport:
        report = await run_host(transport, hosts[name], plan.for_host(name), contexts, images, timeout, epoch)
        failpoints.hit("mid-execute")  # the first host done: others may be mid-script
        if on_done:
            on_done(report)
        return report

    reports = await asyncio.gather(*(one(h) for h in plan.hosts()))
    return {r.host: r for r in reports}
