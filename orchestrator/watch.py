"""`podctl reconcile --watch`: the one-shot reconcile in a loop, for seconds-level healing.

The same Controller.run as cron's, with three differences: the SSH transport stays
open between runs (connections kept, keepalive on), the health rules are the watch
ones (health.WATCH: a short grace, more good probes to come back), and probes and
connects get short deadlines so a dead host costs one interval, not ten seconds.
Each run takes the run lock like any other, so a cron run and a watch never act at
once: when the lock is held the watch skips that turn. It prints only what changed
(and problems), one timestamped block per run that did something.
"""

from __future__ import annotations

import asyncio
import dataclasses
import signal
import sys
import time

import click

from .config import Config
from .controller import Controller, RunReport, open_transport, require_inventory
from .errors import LockHeld
from .health import WATCH, HealthSettings


def watch_config(config: Config, interval: float) -> Config:
    """Deadlines short enough that one unreachable host does not stall the loop."""
    short = max(1.5, 2 * interval)
    return dataclasses.replace(config, probe_timeout=min(config.probe_timeout, short),
                               connect_timeout=min(config.connect_timeout, short),
                               keepalive_interval=min(config.keepalive_interval, max(1.0, interval)))


def _print(report: RunReport, quiet: bool) -> None:
    stamp = time.strftime("%H:%M:%S")
    lines = []
    if not report.plan.empty:
        lines.append(f"{stamp} plan: {report.plan.summary()}")
        lines += [f"  {a.describe()}" for a in report.plan.actions if a.verb != "forget"]
    if not quiet:
        lines += [f"{stamp} note: {n}" for n in report.plan.notes if "not reachable" not in n or not quiet]
    problems = [f"{stamp} host {n}: {s.status}: {s.error}" for n, s in sorted(report.snapshots.items()) if s.status != "ok"]
    problems += [f"{stamp} host {n}: {r.status}: {r.error}" for n, r in sorted(report.hosts.items()) if r.status != "ok"]
    for line in lines:
        click.echo(line)
    for line in problems:
        click.echo(line, err=True)
    if lines or problems:
        sys.stdout.flush()


async def watch(config: Config, interval: float, *, quiet: bool = False, runs: int | None = None,
                duration: float | None = None, health: HealthSettings = WATCH) -> int:
    """Run until SIGINT/SIGTERM, or `runs` runs, or `duration` seconds. Returns the last
    run's exit code (0 if none ran)."""
    config = watch_config(config, interval)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    controller = Controller(config, health=health)
    started, done, code = time.monotonic(), 0, 0
    inventory = require_inventory(config)
    transport = open_transport(config, inventory)
    try:
        async with transport:
            while not stop.is_set():
                begin = time.monotonic()
                try:
                    report = await controller.run(transport=transport)
                    code = report.exit_code
                    _print(report, quiet)
                except LockHeld as exc:
                    if not quiet:
                        click.echo(f"{time.strftime('%H:%M:%S')} skipped: {exc}", err=True)
                done += 1
                if runs is not None and done >= runs:
                    break
                if duration is not None and time.monotonic() - started >= duration:
                    break
                try:
                    await asyncio.wait_for(stop.wait(), max(0.0, interval - (time.monotonic() - begin)))
                except TimeoutError:
                    pass
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
    return code


def run_watch(config: Config, interval: float, quiet: bool, runs: int | None, duration: float | None) -> int:
    return asyncio.run(watch(config, interval, quiet=quiet, runs=runs, duration=duration))
