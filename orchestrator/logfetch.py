"""`podctl logs`: which containers' logs (a pod, TYPE/NAME, or -l), fetched from their
hosts concurrently and printed through podlogs (CRI prefixes stripped, merged in time
order). With -f, each stream's backlog is merged first, then lines print as they come.
"""

from __future__ import annotations

import asyncio
import sys
import time
from dataclasses import dataclass

import click

from .config import Config
from .controller import open_store, open_transport, require_inventory
from .ephemeral import container_names
from .errors import TransportError, UsageError
from .host_failures import row_pod
from .podlogs import Assembler, LogLine, format_line, merge, parse_duration, parse_selector, prefix_for, select
from .render import render
from .runtime import pod_dir
from .store import PodRow, Store
from .transport import remote_command_line, wrap_script
from .transport.ssh import ConnectFailed

BACKLOG_END = "@@podctl-backlog-end"
NO_PREVIOUS, NO_LOG = 4, 5
# TYPE/NAME of `podctl logs deployment/web` -> the kind the store keeps.
OWNER_KINDS = {"deployment": "Deployment", "deployments": "Deployment", "deploy": "Deployment",
               "job": "Job", "jobs": "Job", "statefulset": "StatefulSet", "statefulsets": "StatefulSet",
               "sts": "StatefulSet", "daemonset": "DaemonSet", "daemonsets": "DaemonSet", "ds": "DaemonSet"}


@dataclass(frozen=True)
class Source:
    pod: str
    uid: str
    node: str
    container: str
    kind: str  # "" app, "init", "ephem"

    @property
    def dir(self) -> str:
        sub = "ephemeral" if self.kind == "ephem" else "containers"
        return f"{pod_dir(self.uid)}/{sub}/{self.container}"


@dataclass(frozen=True)
class Options:
    follow: bool = False
    previous: bool = False
    timestamps: bool = False
    tail: int = -1
    since: float | None = None  # seconds ago
    prefix: bool = False
    max_requests: int = 5


def _pick_pod(rows: list[PodRow]) -> PodRow | None:
    """kubectl's choice among a workload's pods: a placed one, the oldest."""
    live = [r for r in rows if not r.deleting]
    live.sort(key=lambda r: (r.node is None, r.created_at, r.name))
    return live[0] if live else None


def resolve_pods(store: Store, target: str | None, selector: str | None, namespace: str) -> list[PodRow]:
    if selector is not None:
        if target:
            raise UsageError("give either a pod (or TYPE/NAME) or -l, not both")
        sel = parse_selector(selector)
        rows = [r for r in store.list_pods(namespace=namespace, include_deleting=False)
                if sel.matches(dict(row_pod(r).meta.labels))]
        return sorted(rows, key=lambda r: r.name)
    if not target:
        raise UsageError("usage: podctl logs POD | TYPE/NAME | -l SELECTOR")
    kind, slash, name = target.partition("/")
    if not slash:
        kind, name = "pod", target
    if kind.lower() in ("pod", "pods", "po"):
        row = store.get_pod(namespace, name)
        if row is None or row.deleting:
            raise UsageError(f'pods "{name}" not found')
        return [row]
    if kind.lower() not in OWNER_KINDS:
        raise UsageError(f"logs: unknown resource type {kind!r} (pod, deployment, job, statefulset, daemonset)")
    obj = store.get_object(OWNER_KINDS[kind.lower()], namespace, name)
    if obj is None:
        raise UsageError(f'{OWNER_KINDS[kind.lower()].lower()}s "{name}" not found')
    rows = store.list_pods(owner_uid=obj.uid)
    row = _pick_pod(rows)
    if row is None:
        raise UsageError(f"no pods found for {kind}/{name}")
    if len([r for r in rows if not r.deleting]) > 1:
        click.echo(f"Found {len([r for r in rows if not r.deleting])} pods, using pod/{row.name}", err=True)
    return [row]


def sources_for(rows: list[PodRow], container: str | None, all_containers: bool) -> list[Source]:
    out = []
    for row in rows:
        pod = row_pod(row)
        names = container_names(pod, row.ephemeral or [])
        if all_containers:
            chosen = names
        elif container is not None:
            chosen = [(n, k) for n, k in names if n == container]
            if not chosen:
                listed = ", ".join(n + (f" ({k})" if k else "") for n, k in names)
                raise UsageError(f"container {container} is not valid for pod {row.name} (containers: {listed})")
        else:
            apps = [(n, k) for n, k in names if k == ""]
            chosen = apps[:1]
            if len(names) > 1 and len(rows) == 1:
                listed = ", ".join(n + (f" ({k})" if k else "") for n, k in names)
                click.echo(f'Defaulted container "{apps[0][0]}" out of: {listed}', err=True)
        if not row.node:
            raise UsageError(f"pod {row.name} is not scheduled to a host yet")
        out += [Source(row.name, row.uid, row.node, n, k) for n, k in chosen]
    return out


def _script(src: Source, opts: Options) -> str:
    return render("logs.sh.j2", dir=src.dir, file="log.previous" if opts.previous else "log",
                  tail="+1" if opts.tail < 0 else str(opts.tail), follow="yes" if opts.follow else "no")


def _missing_message(src: Source, code: int) -> str:
    if code == NO_PREVIOUS:
        return f'previous terminated container "{src.container}" in pod "{src.pod}" not found'
    return f'container "{src.container}" in pod "{src.pod}" is waiting to start: no log yet'


class _Printer:
    def __init__(self, out, prefixed: bool, timestamps: bool):
        self.out, self.prefixed, self.timestamps = out, prefixed, timestamps

    def line(self, src: Source, line: LogLine) -> None:
        prefix = prefix_for(src.pod, src.container) if self.prefixed else ""
        self.out.write((format_line(line, prefix, self.timestamps) + "\n").encode("utf-8", "replace"))
        self.out.flush()

    def merged(self, groups: list[tuple[Source, list[LogLine]]]) -> None:
        for src, line in merge([(s, lines) for s, lines in groups]):
            self.line(src, line)


async def fetch(config: Config, inventory, sources: list[Source], opts: Options, out=None) -> int:
    """Print the sources' logs; returns the exit code (1 if one could not be read)."""
    out = out or sys.stdout.buffer
    if opts.follow and len(sources) > opts.max_requests:
        raise UsageError(f"you are attempting to follow {len(sources)} log streams, but maximum allowed "
                         f"concurrency is {opts.max_requests}, use --max-log-requests to increase the limit")
    printer = _Printer(out, opts.prefix, opts.timestamps)
    since = time.time() - opts.since if opts.since is not None else None
    slots = asyncio.Semaphore(max(1, opts.max_requests))
    failed = []
    backlogs: dict[int, list[LogLine]] = {}
    backlog_done = asyncio.Event()
    pending = set(range(len(sources)))
    live_queue: list[tuple[int, LogLine]] = []

    def backlog_finished(i: int) -> None:
        pending.discard(i)
        if not pending and not backlog_done.is_set():
            printer.merged([(sources[j], select(backlogs.get(j, []), since, opts.tail)) for j in range(len(sources))])
            for j, line in live_queue:
                printer.line(sources[j], line)
            backlog_done.set()

    async def one(transport, i: int, src: Source) -> None:
        host = inventory.get(src.node)
        async with slots:
            try:
                conn = await transport.connection(host)
            except ConnectFailed as exc:
                failed.append(f"{src.pod}/{src.container}: host {host.name}: {exc}")
                backlog_finished(i)
                return
            process = await conn.create_process(remote_command_line(host), encoding=None)
            process.stdin.write(wrap_script(_script(src, opts)))
            process.stdin.write_eof()
            assembler = Assembler()
            lines: list[LogLine] = []
            in_backlog = True
            try:
                async for raw in process.stdout:
                    if not raw:  # end of stream, not an empty line (that is b"\n")
                        continue
                    text = raw.decode("utf-8", "replace")
                    if in_backlog and opts.follow and text.rstrip("\n").endswith(BACKLOG_END):
                        head = text.rstrip("\n")[:-len(BACKLOG_END)]
                        if head:
                            lines += assembler.feed(head)
                        lines += assembler.flush()
                        backlogs[i] = lines
                        in_backlog = False
                        backlog_finished(i)
                        continue
                    parsed = assembler.feed(text)
                    if in_backlog:
                        lines += parsed
                    elif backlog_done.is_set():
                        for line in parsed:
                            printer.line(src, line)
                    else:
                        live_queue.extend((i, line) for line in parsed)
                await process.wait_closed()
            finally:
                process.close()
            if in_backlog:
                backlogs[i] = lines + assembler.flush()
            code = process.exit_status
            if code in (NO_PREVIOUS, NO_LOG):
                failed.append(_missing_message(src, code))
            elif code not in (0, None) or (code is None and not opts.follow):
                err = (await process.stderr.read()).decode(errors="replace").strip() if code else ""
                failed.append(f"{src.pod}/{src.container}: exit {code}: {err}")
            if in_backlog:
                backlog_finished(i)

    async with open_transport(config, inventory) as transport:
        try:
            await asyncio.gather(*(one(transport, i, s) for i, s in enumerate(sources)))
        except asyncio.CancelledError:
            return 130
    for message in failed:
        click.echo(f"error: {message}", err=True)
    return 1 if failed else 0


def logs(config: Config, target: str | None, namespace: str, container: str | None, *, selector: str | None = None,
         follow: bool = False, previous: bool = False, timestamps: bool = False, tail: int = -1,
         since: str | None = None, all_containers: bool = False, prefix: bool | None = None,
         max_log_requests: int = 5) -> int:
    inventory = require_inventory(config)
    since_s = parse_duration(since) if since is not None else None
    if max_log_requests < 1:
        raise UsageError("--max-log-requests must be at least 1")
    with open_store(config) as store:
        rows = resolve_pods(store, target, selector, namespace)
    if not rows:
        click.echo(f"No resources found in {namespace} namespace.", err=True)
        return 0
    sources = sources_for(rows, container, all_containers)
    # kubectl prefixes only with --prefix; podctl also does when lines of several pods mix.
    prefixed = prefix if prefix is not None else len(rows) > 1
    opts = Options(follow, previous, timestamps, tail, since_s, prefixed, max_log_requests)
    try:
        return asyncio.run(fetch(config, inventory, sources, opts))
    except KeyboardInterrupt:
        return 130
    except TransportError:
        raise
