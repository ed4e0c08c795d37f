"""The SSH connection keeper: keeps each host's SSH connection open between podctl runs.

    python -m orchestrator.transport.keeper --home PODCTL_HOME [--idle SECONDS] [--foreground]

Like OpenSSH's ControlMaster/ControlPersist (which ansible uses by default): a fresh
SSH connection costs a key exchange and an authentication on both ends (about 20 ms of
sshd CPU per host), so a cron run every minute over 50 hosts spent most of its time in
handshakes. The first podctl run that needs SSH starts the keeper (keeper_client.py);
it connects to hosts on demand and keeps the connections, so later runs pay only for
their sessions. podctl runs send it scripts over a Unix socket (keeper_proto.py); it
runs them with the very SSHTransport a direct run uses (transport/ssh.py), so host
keys are verified, deadlines enforced and results classified exactly as without it.

- Socket $PODCTL_HOME/run/keeper.sock (dir 0700, socket 0600); every peer's uid is
  checked (SO_PEERCRED): only this user's processes may talk to it.
- One keeper per home: it holds an flock on run/keeper.lock for its lifetime and only
  then binds the socket. A second one started at the same time finds the lock taken
  and its twin answering, and exits.
- Cache: one SSHTransport (so one connection) per cache key, keeper_proto.cache_key:
  every connection parameter of the host, the host key policy, the connect and
  keepalive settings, and the host's entries in its known_hosts (an edit that changes
  them makes a new connection, verified against the file as it is now).
- A failed connect is remembered as SSHTransport remembers it (2 x connect_timeout,
  so a dead host costs its connect timeout once per run, as without the keeper), and
  forgotten at once for the next client (the next run tries again).
- Exits after --idle seconds (Config.keeper_idle_timeout, default 300) with no request,
  on SIGTERM / SIGINT, on `podctl keeper stop`, or when a podctl of another version
  connects (which then starts its own). Exiting, it first stops accepting and tells
  its clients (bye), starts nothing more (requests get "rejected": the client runs
  them directly), lets started requests finish (each within its deadline), then
  closes its connections. A second SIGTERM exits at once.
- A client that goes away mid-request does not stop its script: it runs to its end
  (or deadline) and the result is dropped.
- Log: $PODCTL_HOME/run/keeper.log (start, stop, new connection keys, errors).
"""

from __future__ import annotations

import argparse
import asyncio
import fcntl
import logging
import os
import signal
import socket
import stat
import struct
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from . import keeper_proto as proto

LOCK_WAIT = 15.0  # a starting keeper waits this long for an exiting one to let go
HELLO_TIMEOUT = 10.0
DRAIN_EXTRA = 10.0  # exiting: wait for started requests' deadlines plus this
log = logging.getLogger("podctl.keeper")


@dataclass
class Entry:
    key: str
    transport: object  # SSHTransport
    host: str
    target: str
    policy: str
    client: int = 0  # the client connection that used it last (failed connects reset per client)
    requests: int = 0
    inflight: int = 0
    last_used: float = field(default_factory=time.monotonic)


class Client:
    def __init__(self, cid: int, writer: asyncio.StreamWriter, pid: int):
        self.id, self.writer, self.pid = cid, writer, pid
        self.tasks: dict[int, asyncio.Task] = {}
        self.started: set[int] = set()
        self.cancelled: set[int] = set()
        self.control = False  # `podctl keeper status|stop`: no runs, no activity

    def send(self, header: dict, blob: bytes = b"") -> None:
        if not self.writer.is_closing():
            self.writer.write(proto.encode(header, blob))


class Keeper:
    def __init__(self, paths: proto.Paths, home: Path, idle: float):
        from ..config import Config
        from ..errors import HostKeyError
        from .ssh import SSHTransport, asyncssh

        self.Config, self.HostKeyError, self.SSHTransport, self.asyncssh = Config, HostKeyError, SSHTransport, asyncssh
        self.paths, self.home, self.idle = paths, home, idle
        self.code = proto.code_version()
        self.entries: dict[str, Entry] = {}
        self.clients: dict[int, Client] = {}
        self.next_client = 0
        self.inflight = 0
        self.deadlines: dict[tuple[int, int], float] = {}  # (client, id) -> when its deadline ends
        self.requests = 0
        self.refused_peers = 0
        self.closed_connects = 0  # connects made by transports since closed
        self.closed_stale = 0
        self.started_at = time.time()
        self.last_activity = time.monotonic()
        self.stopping = ""
        self.stop_event = asyncio.Event()
        self.drained = asyncio.Event()
        self.hard = False
        self.known: dict[str, tuple[str, object]] = {}  # known_hosts path -> (identity, parsed)
        self.server: asyncio.AbstractServer | None = None
        self.background: set[asyncio.Task] = set()

    # ------------------------------------------------------------------ life

    async def serve(self, sock: socket.socket, inode: tuple[int, int]) -> None:
        self.inode = inode
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            loop.add_signal_handler(sig, self.stop, signal.Signals(sig).name)
        self.server = await asyncio.start_unix_server(self._handle, sock=sock)
        ticker = asyncio.create_task(self._tick())
        log.info("keeper pid %d serving %s (code %s, idle timeout %gs)", os.getpid(), self.paths.socket,
                 self.code, self.idle)
        await self.stop_event.wait()
        ticker.cancel()
        if self.inflight:
            longest = max(self.deadlines.values(), default=time.monotonic()) - time.monotonic()
            log.info("waiting for %d started request(s) (up to %.0fs)", self.inflight, max(0, longest) + DRAIN_EXTRA)
            try:
                await asyncio.wait_for(self.drained.wait(), max(0.0, longest) + DRAIN_EXTRA)
            except TimeoutError:
                log.warning("%d request(s) still running; exiting anyway", self.inflight)
        await asyncio.sleep(0.05)  # let the last results reach their clients
        for client in list(self.clients.values()):
            client.writer.close()
        entries, self.entries = list(self.entries.values()), {}
        try:
            await asyncio.wait_for(asyncio.gather(*(e.transport.close() for e in entries), *self.background,
                                                  return_exceptions=True), 5)
        except TimeoutError:
            log.warning("some connections did not close within 5s")
        log.info("keeper pid %d exited: %s", os.getpid(), self.stopping)

    def stop(self, reason: str) -> None:
        if self.stopping:
            if reason in ("SIGTERM", "SIGINT") and not self.hard:
                self.hard = True
                self.drained.set()  # a second signal: do not wait for started requests
            return
        self.stopping = reason
        log.info("stopping: %s", reason)
        if self.server is not None:
            self.server.close()
        _unlink_own_socket(self.paths.socket, self.inode)
        for client in self.clients.values():
            client.send({"op": "bye", "reason": reason})
        if not self.inflight:
            self.drained.set()
        self.stop_event.set()

    def touch(self) -> None:
        self.last_activity = time.monotonic()

    async def _tick(self) -> None:
        period = max(0.2, min(5.0, self.idle / 4))
        while True:
            await asyncio.sleep(period)
            now = time.monotonic()
            if self.inflight == 0 and now - self.last_activity >= self.idle:
                self.stop(f"idle for {self.idle:g}s")
                return
            unused = [e for e in self.entries.values() if e.inflight == 0 and now - e.last_used >= self.idle]
            if unused:
                log.info("closing %d connection(s) unused for %gs: %s", len(unused), self.idle,
                         " ".join(sorted(e.host for e in unused)))
            for e in unused:
                del self.entries[e.key]
                task = asyncio.create_task(self._close_entry(e))
                self.background.add(task)
                task.add_done_callback(self.background.discard)

    async def _close_entry(self, e: Entry) -> None:
        self.closed_connects += e.transport.connects
        self.closed_stale += e.transport.stale_reconnects
        await e.transport.close()

    # ------------------------------------------------------------------ clients

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        sock = writer.get_extra_info("socket")
        pid, uid, _ = _peer(sock)
        if uid != os.geteuid():
            self.refused_peers += 1
            log.warning("refused a connection from uid %s pid %s (only uid %d may use this keeper)",
                        uid, pid, os.geteuid())
            writer.close()
            return
        self.next_client += 1
        client = Client(self.next_client, writer, pid)
        try:
            header, _ = await asyncio.wait_for(proto.read_frame(reader), HELLO_TIMEOUT)
            if header.get("op") != "hello":
                return
            if not header.get("control") and not proto.compatible(header):
                replace = proto.replaces(header)
                client.send({"op": "hello", "ok": False, "code": self.code, "replaced": replace,
                             "error": f"keeper code {self.code}, client {header.get('code')}: " +
                             ("the keeper exits" if replace else "the keeper's code is newer: run directly")})
                await writer.drain()
                if replace:
                    self.stop(f"a podctl of another version (pid {pid}, code {header.get('code')}) replaces it")
                return
            client.send({"op": "hello", "ok": True, **self._info()})
            self.clients[client.id] = client
            client.control = bool(header.get("control"))
            if not client.control:  # `keeper status` does not keep the keeper alive
                self.touch()
            if self.stopping:
                client.send({"op": "bye", "reason": self.stopping})
            while True:
                header, blob = await proto.read_frame(reader)
                self._dispatch(client, header, blob)
        except (asyncio.IncompleteReadError, ConnectionError, TimeoutError, proto.ProtocolError) as exc:
            if isinstance(exc, proto.ProtocolError):
                log.warning("client pid %s: %s; disconnected", pid, exc)
        finally:
            self.clients.pop(client.id, None)
            if not client.control:
                self.touch()
            writer.close()

    def _dispatch(self, client: Client, header: dict, blob: bytes) -> None:
        op, rid = header["op"], header.get("id")
        if op == "run":
            if client.control or not isinstance(rid, int) or rid in client.tasks:
                raise proto.ProtocolError(f"run request with a bad or duplicate id {rid!r}")
            if self.stopping:
                client.send({"op": "rejected", "id": rid, "error": f"the keeper is exiting ({self.stopping})"})
                return
            self.inflight += 1
            self.drained.clear()
            self.requests += 1
            self.touch()
            client.tasks[rid] = asyncio.create_task(self._run(client, rid, header, blob))
        elif op == "cancel":
            task = client.tasks.get(rid)
            if task is not None and rid not in client.started and rid not in client.cancelled:
                client.cancelled.add(rid)
                task.cancel()
                client.send({"op": "cancelled", "id": rid})
        elif op == "status":
            client.send({"op": "status", **self._info(), **self._counters()})
        elif op == "stop":
            client.send({"op": "stopping", "pid": os.getpid()})
            self.stop(f"`podctl keeper stop` (pid {client.pid})")
        else:
            raise proto.ProtocolError(f"unknown op {op!r}")

    async def _run(self, client: Client, rid: int, header: dict, blob: bytes) -> None:
        entry = None
        key = (client.id, rid)
        limit = 0.0

        def on_start() -> None:
            client.started.add(rid)
            self.deadlines[key] = time.monotonic() + limit
            client.send({"op": "started", "id": rid})

        try:
            try:
                host = proto.host_from_params(header.get("host"))
                policy = header.get("policy")
                if policy not in proto.POLICIES:
                    raise ValueError(f"host key policy {policy!r}")
                conn_settings = proto.check_settings(header.get("settings"))
                limit = float(header["timeout"])
                script = blob.decode()
                entry = self._entry(host, header["host"], policy, conn_settings, client)
            except (ValueError, TypeError, KeyError, UnicodeDecodeError) as exc:
                client.send(proto.result_header(rid, "unreachable", None, b"", 0.0,
                                                f"keeper: bad request, nothing was run: {exc}"))
                return
            entry.inflight += 1
            try:
                result = await entry.transport.run(host, script, timeout=limit,
                                                   idempotent=bool(header.get("idempotent")), on_start=on_start)
            finally:
                entry.inflight -= 1
                entry.requests += 1
                entry.last_used = time.monotonic()
            client.send(proto.result_header(rid, result.status, result.exit_code, result.stdout,
                                            result.duration, result.error), result.stdout + result.stderr)
        except self.HostKeyError as exc:
            client.send({"op": "result", "id": rid, "raise": "HostKeyError", "error": str(exc)})
        except asyncio.CancelledError:
            if rid not in client.cancelled:
                raise
        except Exception as exc:  # noqa: BLE001 - a bug here must not kill the keeper
            log.exception("request %d of client pid %s failed", rid, client.pid)
            started = rid in client.started
            client.send(proto.result_header(
                rid, "unknown" if started else "unreachable", None, b"", 0.0,
                f"keeper: {type(exc).__name__}: {exc}" + ("" if started else "; nothing was run")))
        finally:
            client.tasks.pop(rid, None)
            client.started.discard(rid)
            client.cancelled.discard(rid)
            self.deadlines.pop(key, None)
            self.inflight -= 1
            self.touch()
            if not self.inflight:
                self.drained.set()

    # ------------------------------------------------------------------ cache

    def _entry(self, host, params: dict, policy: str, conn_settings: dict, client: Client) -> Entry:
        known_fp, parsed = self._known_hosts(host)
        files = {"known_hosts": known_fp, "key_file": proto.file_identity(host.key_file)}
        key = proto.cache_key(params, policy, conn_settings, files)
        entry = self.entries.get(key)
        if entry is None:
            config = self.Config(home=self.home, connect_timeout=conn_settings["connect_timeout"],
                                 keepalive_interval=conn_settings["keepalive_interval"],
                                 keepalive_count_max=conn_settings["keepalive_count_max"],
                                 parallelism=conn_settings["sessions_per_host"])
            transport = self.SSHTransport(
                config, host_key_checking={host.name: policy}, sessions_per_host=conn_settings["sessions_per_host"],
                agent_path=conn_settings["agent"], known_hosts={host.known_hosts: parsed} if parsed else None)
            target = f"{host.user}@{host.address}:{host.port}"
            entry = self.entries[key] = Entry(key, transport, host.name, target, policy)
            log.info("new connection key %s for %s (%s, %s)", key[:12], host.name, target, policy)
        if entry.client != client.id:
            entry.transport.forget_failed(host)
            entry.client = client.id
        return entry

    def _known_hosts(self, host) -> tuple[str, object]:
        """(what the key says about the host's known_hosts, the parsed file or None).

        For an IP address: a digest of the entries that match it (host keys, CAs,
        revocations), so edits about other hosts keep this connection; for a DNS name
        (its entries may match by resolved address): the file's identity.
        """
        path = host.known_hosts
        ident = proto.file_identity(path)
        cached = self.known.get(path)
        if cached is not None and cached[0] == ident:
            parsed = cached[1]
        else:
            try:
                parsed = self.asyncssh.read_known_hosts(path)
            except (OSError, UnicodeDecodeError, ValueError, self.asyncssh.Error):
                return f"unreadable:{ident}", None
            self.known[path] = (ident, parsed)
        if not _is_ip(host.address):
            return f"file:{ident}", parsed
        try:
            matched = parsed.match(host.address, host.address, host.port)
        except (ValueError, self.asyncssh.Error):
            return f"file:{ident}", parsed
        import hashlib

        digest = hashlib.sha256()
        for group in matched:
            digest.update(b"|")
            for item in group:
                data = getattr(item, "public_data", None) or getattr(item, "data", None) or str(item).encode()
                digest.update(bytes(data) + b",")
        return f"entries:{digest.hexdigest()}", parsed

    # ------------------------------------------------------------------ status

    def _info(self) -> dict:
        return {"pid": os.getpid(), "protocol": proto.PROTOCOL, "code": self.code,
                "stopping": self.stopping}

    def _counters(self) -> dict:
        now = time.monotonic()
        live = list(self.entries.values())
        return {
            "started_at": self.started_at, "uptime": time.time() - self.started_at,
            "idle_timeout": self.idle, "idle_for": now - self.last_activity,
            "clients": sum(1 for c in self.clients.values() if not c.control),
            "inflight": self.inflight, "requests": self.requests,
            "connects": self.closed_connects + sum(e.transport.connects for e in live),
            "stale_reconnects": self.closed_stale + sum(e.transport.stale_reconnects for e in live),
            "open_connections": sum(e.transport.open_connections() for e in live),
            "refused_peers": self.refused_peers,
            "python": sys.version.split()[0], "asyncssh": self.asyncssh.__version__,
            "socket": str(self.paths.socket), "log": str(self.paths.log),
            "entries": [{"host": e.host, "target": e.target, "policy": e.policy, "key": e.key[:12],
                         "connected": bool(e.transport.open_connections()), "connects": e.transport.connects,
                         "requests": e.requests, "idle_for": round(now - e.last_used, 1)}
                        for e in sorted(live, key=lambda e: (e.host, e.key))],
        }


# ---------------------------------------------------------------------- helpers


def _peer(sock: socket.socket) -> tuple[int, int, int]:
    """(pid, uid, gid) of the process at the other end of a Unix socket."""
    creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    return struct.unpack("3i", creds)


def _is_ip(address: str) -> bool:
    import ipaddress

    try:
        ipaddress.ip_address(address)
    except ValueError:
        return False
    return True


def _unlink_own_socket(path: Path, inode: tuple[int, int]) -> None:
    """Remove the socket file if it is still the one this keeper bound (we hold the lock,
    so no other keeper can have bound another in between)."""
    try:
        st = os.lstat(path)
        if (st.st_dev, st.st_ino) == inode:
            os.unlink(path)
    except OSError:
        pass


def _twin_serving(paths: proto.Paths) -> bool:
    """Does a keeper of this code version answer on the socket (and is not exiting)?"""
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(HELLO_TIMEOUT)
            s.connect(str(paths.socket))
            s.sendall(proto.encode(proto.hello(control=True)))
            header, _ = proto.read_frame_sync(s)
    except (OSError, EOFError, proto.ProtocolError):
        return False
    return header.get("ok") is True and header.get("code") == proto.code_version() and not header.get("stopping")


def _lock(paths: proto.Paths) -> int | None:
    """The keeper lock's fd, or None when a twin serves (or an old keeper will not let go)."""
    fd = os.open(paths.lock, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    deadline = time.monotonic() + LOCK_WAIT
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return fd
        except BlockingIOError:
            pass
        if _twin_serving(paths):
            log.info("pid %d: another keeper serves %s; exiting", os.getpid(), paths.socket)
            break
        if time.monotonic() > deadline:
            log.warning("pid %d: %s stayed locked for %gs; exiting", os.getpid(), paths.lock, LOCK_WAIT)
            break
        time.sleep(0.05)
    os.close(fd)
    return None


def _bind(paths: proto.Paths) -> tuple[socket.socket, tuple[int, int]]:
    """Bind the socket (we hold the lock: a file there is a dead keeper's), mode 0600."""
    path = paths.socket
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        pass
    else:
        if not stat.S_ISSOCK(st.st_mode):
            raise OSError(f"{path} exists and is not a socket; not touching it")
        os.unlink(path)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old = os.umask(0o177)
    try:
        sock.bind(str(path))
    finally:
        os.umask(old)
    os.chmod(path, 0o600)
    sock.listen(256)
    st = os.lstat(path)
    return sock, (st.st_dev, st.st_ino)


def _open_log(paths: proto.Paths) -> None:
    """stdout/stderr and the log to run/keeper.log (the previous one kept as .1 above 1 MiB)."""
    try:
        if paths.log.stat().st_size > 1 << 20:
            os.replace(paths.log, paths.log.with_suffix(".log.1"))
    except OSError:
        pass
    fd = os.open(paths.log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)
    os.close(null)
    logging.basicConfig(stream=sys.stderr, level=logging.INFO,
                        format="%(asctime)s keeper[%(process)d] %(levelname)s %(message)s")
    logging.getLogger("asyncssh").setLevel(logging.WARNING)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m orchestrator.transport.keeper")
    parser.add_argument("--home", type=Path, required=True, help="PODCTL_HOME (its run/ holds socket and log)")
    parser.add_argument("--idle", type=float, default=300.0, help="exit after this many seconds without a request")
    parser.add_argument("--foreground", action="store_true", help="do not detach (tests, debugging)")
    args = parser.parse_args(argv)
    home = args.home.expanduser().absolute()
    paths = proto.Paths.of(home)
    if not args.foreground and os.fork():
        os._exit(0)  # the podctl run that started us reaps this; the keeper goes on detached
    os.umask(0o077)
    os.chdir("/")
    try:
        proto.ensure_run_dir(paths)
    except OSError as exc:
        print(f"keeper: {exc}", file=sys.stderr)
        return 1
    if not proto.socket_path_ok(paths.socket):
        print(f"keeper: socket path too long: {paths.socket}", file=sys.stderr)
        return 1
    if not args.foreground:
        _open_log(paths)
    else:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s keeper[%(process)d] %(levelname)s %(message)s")
        logging.getLogger("asyncssh").setLevel(logging.WARNING)
    lock = _lock(paths)
    if lock is None:
        return 0
    try:
        sock, inode = _bind(paths)
    except OSError as exc:
        log.error("cannot listen on %s: %s", paths.socket, exc)
        return 1
    try:
        paths.pid.write_text(f"{os.getpid()}\n")
        keeper = Keeper(paths, home, args.idle)  # imports asyncssh: clients wait in the backlog
        asyncio.run(keeper.serve(sock, inode))
    except Exception:  # noqa: BLE001 - log it, then clean up
        log.exception("keeper failed")
        return 1
    finally:
        _unlink_own_socket(paths.socket, inode)
        try:
            if paths.pid.read_text().strip() == str(os.getpid()):
                paths.pid.unlink()
        except OSError:
            pass
        os.close(lock)
    return 0


if __name__ == "__main__":
    sys.exit(main())
