"""KeeperTransport: a run's transport through the connection keeper (transport/keeper.py).

The same interface as SSHTransport (`async with`, run, run_many, close, connection)
and the same results, but the SSH connections live in the keeper, across runs. This
module is imported by every podctl run that touches hosts, so it stays light: no
asyncssh (SSHTransport is imported only when something runs directly).

- The first call connects to $PODCTL_HOME/run/keeper.sock, checks the keeper's uid
  (SO_PEERCRED) and says hello with the protocol and code versions. No keeper, or one
  of another version (told to exit): it starts one (`python -m
  orchestrator.transport.keeper`, detached, in its own session) and waits for it up to
  START_TIMEOUT. No keeper then: the run uses direct connections, as with
  PODCTL_SSH_KEEPER=0 (a line in run/keeper.log says why).
- Slots as SSHTransport's: Config.parallelism calls at once, sessions_per_host per host,
  so in the keeper a call waits for nothing but its host's connection.
- Deadlines: the keeper enforces the call's timeout from when the call starts there
  (it says "started"); this side also guards, timeout + GUARD_MARGIN after that. A
  call the keeper has not started in that time is cancelled ("unreachable": nothing
  ran); a started one that gets no result is "unknown".
- Direct connections (an SSHTransport made on first need): calls with a payload (image
  pushes stream their blob: kept off the keeper), `connection()` (logs -f, exec), hosts
  whose fields are not plain data, and every call once the keeper is unavailable. A
  call the keeper rejected or never started (it was exiting) is rerun directly; one it
  may have started when it went away is rerun only when idempotent, else "unknown".
"""

from __future__ import annotations

import asyncio
import os
import socket
import struct
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from ..errors import HostKeyError
from ..model import Host
from . import UNKNOWN, UNREACHABLE, BaseTransport, Payload, Result
from . import keeper_proto as proto

START_TIMEOUT = 5.0  # wait for a keeper this run started (python + asyncssh start-up)
HELLO_TIMEOUT = 5.0
GUARD_MARGIN = 5.0  # this side's guard: the call's timeout plus this
STOP_TIMEOUT = 30.0
RERUN = object()  # the keeper did not run it: run it directly


class _Pending:
    __slots__ = ("future", "limit", "deadline", "started", "cancel_sent")

    def __init__(self, loop: asyncio.AbstractEventLoop, limit: float):
        self.future = loop.create_future()
        self.limit = limit
        self.deadline = loop.time() + limit + GUARD_MARGIN  # until started: the same allowance
        self.started = False
        self.cancel_sent = False


class _Channel:
    """One connection to the keeper; calls multiplexed by id."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, info: dict):
        self.reader, self.writer, self.info = reader, writer, info
        self.loop = asyncio.get_running_loop()
        self.pending: dict[int, _Pending] = {}
        self.next_id = 0
        self.bye = ""  # why the keeper is exiting, once it said so
        self.lost = False
        self.reader_task = asyncio.create_task(self._read_loop())

    @property
    def usable(self) -> bool:
        return not self.lost and not self.bye and not self.writer.is_closing()

    async def _read_loop(self) -> None:
        try:
            while True:
                header, blob = await proto.read_frame(self.reader)
                op = header["op"]
                if op == "bye":
                    self.bye = str(header.get("reason") or "exiting")
                    continue
                p = self.pending.get(header.get("id"))
                if p is None:
                    continue
                if op == "started":
                    p.started = True
                    p.deadline = self.loop.time() + p.limit + GUARD_MARGIN
                elif not p.future.done():
                    p.future.set_result((header, blob))
        except (asyncio.IncompleteReadError, ConnectionError, OSError, proto.ProtocolError):
            pass
        finally:
            self.lost = True
            for p in self.pending.values():
                if not p.future.done():
                    p.future.set_result(({"op": "lost"}, b""))

    async def call(self, header: dict, blob: bytes, limit: float, idempotent: bool, name: str):
        """A Result, RERUN, or raises HostKeyError."""
        if not self.usable:
            return RERUN
        self.next_id += 1
        rid = header["id"] = self.next_id
        p = self.pending[rid] = _Pending(self.loop, limit)
        try:
            self.writer.write(proto.encode(header, blob))
            while True:
                while not p.future.done():
                    remaining = p.deadline - self.loop.time()
                    if remaining <= 0:
                        break
                    await asyncio.wait((p.future,), timeout=remaining)
                if p.future.done():
                    break
                if p.started or p.cancel_sent:
                    why = "gave no result" if p.started else "neither started nor cancelled it"
                    return Result(name, UNKNOWN, error=f"the keeper {why} within the {limit:g}s deadline "
                                  f"(+{GUARD_MARGIN:g}s): the command may or may not have run")
                p.cancel_sent = True  # not started in time: withdraw it (the keeper confirms)
                self.writer.write(proto.encode({"op": "cancel", "id": rid}))
                p.deadline = self.loop.time() + GUARD_MARGIN
        finally:
            self.pending.pop(rid, None)
        header, blob = p.future.result()
        op = header["op"]
        if op == "result":
            if header.get("raise") == "HostKeyError":
                raise HostKeyError(str(header.get("error")))
            return Result(name, **proto.result_fields(header, blob))
        if op == "cancelled":
            return Result(name, UNREACHABLE, error=f"the keeper had no session free on this host's "
                          f"connection within the {limit:g}s deadline; nothing was run")
        if op == "rejected":
            return RERUN
        # lost: the keeper went away without a result
        if (not p.started and self.bye) or idempotent:
            return RERUN
        return Result(name, UNKNOWN, error="the connection keeper went away during the command "
                      "(it may or may not have run)")

    async def close(self) -> None:
        self.writer.close()
        self.reader_task.cancel()
        await asyncio.gather(self.reader_task, return_exceptions=True)


class KeeperTransport(BaseTransport):
    def __init__(self, config, *, host_key_checking=None, sessions_per_host: int = 8):
        self.config = config
        self.host_key_checking = dict(host_key_checking or {})
        self.sessions_per_host = sessions_per_host
        self.paths = proto.Paths.of(config.home)
        self.settings = proto.settings(config, sessions_per_host, os.environ.get("SSH_AUTH_SOCK"))
        self.direct_calls = 0  # calls this run made on direct connections
        self._slots = asyncio.Semaphore(config.parallelism)
        self._host_slots: dict[str, asyncio.Semaphore] = {}
        self._channel: asyncio.Task | None = None
        self._direct = None
        self._noted = False
        self._closing: set[asyncio.Task] = set()

    # ------------------------------------------------------------------ calls

    async def run(self, host: Host, script: str, *, payload: Payload = None,
                  timeout: float | None = None, idempotent: bool = False) -> Result:
        """As SSHTransport.run: never raises but HostKeyError."""
        params = proto.host_params(host) if payload is None else None
        channel = await self._get_channel() if params is not None else None
        if channel is not None:
            limit = self.config.command_timeout if timeout is None else timeout
            header = proto.run_request(params, self.host_key_checking.get(host.name, "strict"),
                                       self.settings, limit, idempotent)
            data = script.encode()
            async with self._host_slots.setdefault(host.name, asyncio.Semaphore(self.sessions_per_host)), \
                    self._slots:
                outcome = await channel.call(header, data, limit, idempotent, host.name)
            if outcome is not RERUN:
                return outcome
            self._note(f"keeper {channel.bye or 'unavailable'}: running on a direct connection")
        self.direct_calls += 1
        return await self.direct().run(host, script, payload=payload, timeout=timeout, idempotent=idempotent)

    def begin_run(self) -> None:
        """A new controller run on a kept transport (the watch loop): the keeper forgets
        failed connects once per client, so the next call opens a new channel."""
        task, self._channel = self._channel, None
        if task is not None:
            async def close_later():
                channel = await asyncio.gather(task, return_exceptions=True)
                if channel and isinstance(channel[0], _Channel):
                    await channel[0].close()
            closing = asyncio.get_running_loop().create_task(close_later())
            self._closing.add(closing)  # keep a reference until it is done
            closing.add_done_callback(self._closing.discard)
        if self._direct is not None:
            self._direct.begin_run()

    async def connection(self, host: Host):
        """A direct connection (streaming verbs: logs -f, exec)."""
        return await self.direct().connection(host)

    def direct(self):
        if self._direct is None:
            from .ssh import SSHTransport

            self._direct = SSHTransport(self.config, host_key_checking=self.host_key_checking,
                                        sessions_per_host=self.sessions_per_host)
        return self._direct

    async def close(self) -> None:
        task, self._channel = self._channel, None
        if task is not None:
            if not task.done():
                task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            if not task.cancelled() and task.exception() is None and task.result() is not None:
                await task.result().close()
        if self._direct is not None:
            await self._direct.close()

    # ------------------------------------------------------------------ the keeper

    async def _get_channel(self) -> _Channel | None:
        if self._channel is None:
            self._channel = asyncio.create_task(self._open())
        channel = await asyncio.shield(self._channel)
        return channel if channel is not None and channel.usable else None

    async def _open(self) -> _Channel | None:
        """Connect to the keeper, starting one if needed; None: run directly."""
        try:
            if not proto.socket_path_ok(self.paths.socket):
                self._note(f"socket path longer than {proto.SUN_PATH_MAX} bytes: {self.paths.socket}; "
                           "no keeper")
                return None
            proto.ensure_run_dir(self.paths)
            channel, why = await _connect(self.paths, HELLO_TIMEOUT)
            if channel is not None:
                return channel
            if why.startswith("newer:"):
                self._note(f"{why[6:]}: direct connections for this run")
                return None
            proc = spawn(self.config)
            loop = asyncio.get_running_loop()
            deadline = loop.time() + START_TIMEOUT
            try:
                while channel is None and loop.time() < deadline and not why.startswith("newer:"):
                    await asyncio.sleep(0.02)
                    channel, why = await _connect(self.paths, max(0.1, deadline - loop.time()), replace=False)
            finally:
                _reap(proc)
            if channel is None:
                self._note(f"no keeper within {START_TIMEOUT:g}s ({why}): direct connections for this run")
            return channel
        except Exception as exc:  # noqa: BLE001 - never fail a run for the keeper's sake
            self._note(f"keeper unavailable ({type(exc).__name__}: {exc}): direct connections for this run")
            return None

    def _note(self, message: str) -> None:
        """A debug line in the keeper's log (once per transport); the run itself is quiet."""
        if self._noted:
            return
        self._noted = True
        try:
            with open(self.paths.log, "a") as f:
                f.write(f"{time.strftime('%Y-%m-%d %H:%M:%S')} podctl[{os.getpid()}] {message}\n")
        except OSError:
            pass
        if os.environ.get("PODCTL_KEEPER_DEBUG"):
            print(f"podctl: {message}", file=sys.stderr)


# ---------------------------------------------------------------------- helpers


def _peer_uid(sock: socket.socket) -> int:
    creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    return struct.unpack("3i", creds)[1]


async def _connect(paths: proto.Paths, timeout: float, replace: bool = True) -> tuple[_Channel | None, str]:
    """A channel to a keeper of this version, or (None, why not: "newer:..." when the
    keeper runs other code and stays). replace: a keeper of older code may be told to exit."""
    try:
        reader, writer = await asyncio.open_unix_connection(str(paths.socket))
    except OSError as exc:
        return None, f"{type(exc).__name__}: {exc.strerror or exc}"
    try:
        uid = _peer_uid(writer.get_extra_info("socket"))
        if uid != os.geteuid():
            raise ConnectionError(f"{paths.socket} is served by uid {uid}, not by this user")
        writer.write(proto.encode({**proto.hello(), "replace": replace}))
        header, _ = await asyncio.wait_for(proto.read_frame(reader), timeout)
        if header.get("op") == "hello" and header.get("ok") is True and not header.get("stopping"):
            return _Channel(reader, writer, header), ""
        why = str(header.get("error") or header.get("stopping") or "refused")
        if header.get("ok") is False and not header.get("replaced"):
            why = "newer:" + why
    except (OSError, EOFError, TimeoutError, asyncio.IncompleteReadError, proto.ProtocolError) as exc:
        why = f"{type(exc).__name__}: {exc}"
    writer.close()
    return None, why


def spawn(config) -> subprocess.Popen:
    """Start a keeper for config.home: it detaches at once (its first process exits)."""
    root = str(Path(__file__).resolve().parent.parent.parent)
    env = dict(os.environ)
    env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    argv = [sys.executable, "-m", "orchestrator.transport.keeper", "--home", str(config.home),
            "--idle", repr(float(config.keeper_idle_timeout))]
    return subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True, close_fds=True, cwd="/", env=env)


def _reap(proc: subprocess.Popen) -> None:
    try:
        proc.wait(timeout=2)
    except subprocess.TimeoutExpired:
        pass  # still starting: subprocess reaps it later


# ---------------------------------------------------------------------- podctl keeper status|stop


def _control(paths: proto.Paths, op: str | None, timeout: float = HELLO_TIMEOUT) -> tuple[dict, socket.socket] | None:
    """(hello, open socket) after a control hello (and `op` sent); None: no keeper answers."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        s.settimeout(timeout)
        s.connect(str(paths.socket))
        if _peer_uid(s) != os.geteuid():
            raise ConnectionError("served by another user")
        s.sendall(proto.encode(proto.hello(control=True)))
        hello, _ = proto.read_frame_sync(s)
        if op:
            s.sendall(proto.encode({"op": op}))
        return hello, s
    except (OSError, EOFError, proto.ProtocolError):
        s.close()
        return None


def status(config) -> dict | None:
    """The keeper's status (counters, connections), or None when none is running."""
    paths = proto.Paths.of(config.home)
    answer = _control(paths, "status")
    if answer is None:
        return None
    hello, s = answer
    with s:
        try:
            while True:
                header, _ = proto.read_frame_sync(s)
                if header["op"] == "status":
                    header.pop("op")
                    header["this_code"] = proto.code_version()
                    return header
        except (OSError, EOFError, proto.ProtocolError):
            return {"pid": hello.get("pid"), "code": hello.get("code"), "stopping": hello.get("stopping") or "exiting",
                    "this_code": proto.code_version()}


def stop(config, timeout: float = STOP_TIMEOUT) -> int | None:
    """Stop the keeper and wait for it to exit; its pid, or None when none was running.

    It finishes started requests first. Still there after `timeout` (or not answering):
    SIGTERM, then SIGKILL, to the pid in run/keeper.pid if that is a keeper of this home."""
    paths = proto.Paths.of(config.home)
    answer = _control(paths, "stop")
    pid = None
    if answer is not None:
        hello, s = answer
        pid = hello.get("pid")
        with s:
            s.settimeout(timeout)
            try:
                while True:
                    proto.read_frame_sync(s)  # stopping, bye, ... until it closes
            except (OSError, EOFError, proto.ProtocolError):
                pass
    pid = pid or keeper_pid(config)
    if pid is None:
        return None
    if answer is not None and _wait_gone(pid, 5.0):  # it closed our connection as its last act
        return pid
    for sig, wait in ((15, 10.0), (9, 5.0)):
        if not _is_keeper(pid, config):
            break
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            break
        if _wait_gone(pid, wait):
            break
    return pid


def keeper_pid(config) -> int | None:
    """The pid in run/keeper.pid if that process is a keeper of this home."""
    try:
        pid = int(proto.Paths.of(config.home).pid.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None
    return pid if _is_keeper(pid, config) else None


def _is_keeper(pid: int, config) -> bool:
    """Is `pid` a live keeper process for config.home (not a recycled pid)?"""
    try:
        with open(f"/proc/{pid}/stat") as f:
            if f.read().rsplit(")", 1)[1].split()[0] == "Z":
                return False
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            argv = f.read().split(b"\0")
    except (OSError, IndexError):
        return False
    return b"orchestrator.transport.keeper" in argv and os.fsencode(str(config.home)) in argv


def _wait_gone(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with open(f"/proc/{pid}/stat") as f:
                if f.read().rsplit(")", 1)[1].split()[0] == "Z":
                    return True
        except OSError:
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.05)


def status_command(config, output: str | None) -> int:
    """`podctl keeper status`: 0 running, 1 not running."""
    import json

    info = status(config)
    if output == "json":
        print(json.dumps({"running": info is not None, **(info or {})}, indent=2))
        return 0 if info is not None else 1
    if info is None:
        print(f"no keeper running for {config.home} ({'on' if config.ssh_keeper else 'off: PODCTL_SSH_KEEPER=0'})")
        return 1
    lines = [f"keeper pid {info.get('pid')}, up {_dur(info.get('uptime'))}, idle {_dur(info.get('idle_for'))} "
             f"(exits after {_dur(info.get('idle_timeout'))} idle)"
             + (f", exiting: {info['stopping']}" if info.get("stopping") else "")]
    if info.get("code") != info.get("this_code"):
        lines.append(f"code {info.get('code')} differs from this podctl's ({info.get('this_code')}): "
                     "the next run replaces it")
    lines.append(f"connections open {info.get('open_connections', '?')}, opened in all {info.get('connects', '?')} "
                 f"(stale ones replaced {info.get('stale_reconnects', '?')}); requests {info.get('requests', '?')}, "
                 f"running {info.get('inflight', '?')}; clients {info.get('clients', '?')}")
    lines.append(f"socket {info.get('socket')}, log {info.get('log')}; python {info.get('python')}, "
                 f"asyncssh {info.get('asyncssh')}")
    entries = info.get("entries") or []
    if entries:
        lines.append(f"{'HOST':<16} {'TARGET':<28} {'POLICY':<10} {'CONNECTED':<9} {'CONNECTS':>8} "
                     f"{'REQUESTS':>8} {'IDLE':>7}")
        for e in entries:
            lines.append(f"{e['host']:<16} {e['target']:<28} {e['policy']:<10} {'yes' if e['connected'] else 'no':<9} "
                         f"{e['connects']:>8} {e['requests']:>8} {_dur(e['idle_for']):>7}")
    print("\n".join(lines))
    return 0


def stop_command(config, quiet: bool) -> int:
    pid = stop(config)
    if not quiet:
        print(f"keeper pid {pid} stopped" if pid else f"no keeper running for {config.home}")
    return 0


def _dur(seconds: Any) -> str:
    if not isinstance(seconds, (int, float)):
        return "?"
    return f"{seconds:.1f}s" if seconds < 120 else f"{seconds / 60:.1f}m"
