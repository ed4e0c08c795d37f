"""SSHTransport: every remote step runs through here, over asyncssh.

- One connection per host for the transport's lifetime (a run), opened on first use;
  concurrent first uses share one connect (a per-host task). A connection that
  dropped is reopened on the next call. A host whose connect failed stays failed for
  2 x connect_timeout (about one run's steps), then is tried again: a dead host costs
  its connect timeout once per run, not per step, and a transport that outlives runs
  (a --watch loop, the keeper) still sees a host come back.
- One session per call, at most `sessions_per_host` at a time on one connection,
  because OpenSSH's sshd refuses more than MaxSessions (default 10) channels.
- Host keys are always verified against known_hosts (host.known_hosts, else
  ~/.ssh/known_hosts); `accept-new` (per host, from the inventory) records the key
  of a host that has no entry yet, like OpenSSH's StrictHostKeyChecking=accept-new.
  Anything else that does not verify raises HostKeyError before anything is sent.
  Each known_hosts file is parsed once per transport (asyncssh gets the parsed
  SSHKnownHosts, not the path it would re-read per connection); recording a key
  drops that file's copy, so the next lookup reads the file again. Client keys are
  likewise loaded once per path.
- Ciphers: AES-GCM first (the cheapest for asyncssh), the other defaults still allowed.
- ~/.ssh/config is not read (config=None), so nothing there changes what podctl does.
- Retries (tenacity) only where repeating is harmless: around connect (refused,
  reset, timed out, dropped during the handshake; never auth or host-key errors) and
  around whole calls made with idempotent=True (read-only probes) whose connection
  was lost. A step that changes a host is never repeated.
- An outer deadline (asyncio.timeout) covers connect + session: asyncssh's own
  timeouts do not cover a peer that stops answering mid-command.
- A connection made before the call (by an earlier call, or kept by the keeper across
  runs, transport/keeper.py) may have died unnoticed (host rebooted, NAT dropped it):
  when a session cannot be opened on it, nothing was sent yet, so the connection is
  dropped and the call reconnects once, whatever the script (`stale_reconnects`
  counts it). Once the script is sent, a lost connection is reported, never re-run
  (but for idempotent calls, above).
"""

from __future__ import annotations

import asyncio
import ctypes.util
import os
import socket
import time
from dataclasses import dataclass, replace
from typing import Callable, Mapping


def _import_asyncssh():
    """Import asyncssh with ctypes' library lookup limited to the linker cache.

    On import, asyncssh looks for liboqs (post-quantum kex) and libnettle with
    ctypes.util.find_library, which, for a library that is not installed, goes on to
    run gcc and ld: measured ~25 ms wall and ~70 ms CPU per podctl command on a
    machine with a C compiler. `ldconfig -p` (find_library's first try) finds any
    installed copy all the same, so asyncssh enables exactly what it would otherwise.
    """
    find_library = ctypes.util.find_library
    in_cache = getattr(ctypes.util, "_findSoname_ldconfig", None)
    if in_cache is not None:
        ctypes.util.find_library = in_cache
    try:
        import asyncssh as module
    finally:
        ctypes.util.find_library = find_library
    return module


asyncssh = _import_asyncssh()
from tenacity import (AsyncRetrying, retry_if_exception, retry_if_result, stop_after_attempt,
                      stop_after_delay, wait_exponential)

from ..config import Config
from ..errors import HostKeyError
from ..model import Host
from . import (FAILED, OK, UNKNOWN, UNREACHABLE, BaseTransport, Payload, PayloadError, Result,
               payload_chunks, remote_command_line, wrap_script)

CONNECT_ATTEMPTS = 3
CALL_ATTEMPTS = 3  # idempotent calls only
# Offered in this order; the server takes the first it also supports. AES-GCM costs
# asyncssh one AEAD call per packet; chacha20-poly1305 (its first choice) builds
# several cipher objects per packet. Measured client CPU, connect + one probe-sized
# session: 3.6 ms with aes128-gcm vs 4.7 ms with chacha20 (a session alone: 1.7 vs
# 2.4 ms). The other defaults stay allowed for hosts without AES-GCM.
ENCRYPTION_ALGS = ("aes128-gcm@openssh.com", "aes256-gcm@openssh.com", "chacha20-poly1305@openssh.com",
                   "aes128-ctr", "aes192-ctr", "aes256-ctr")


class ConnectFailed(Exception):
    """Could not connect or authenticate; nothing was sent. Cached per host."""


class _NotOpened(Exception):
    """The session (channel + exec request) could not be opened: nothing was sent."""


_FROM_ENV = object()  # agent_path default: $SSH_AUTH_SOCK when the connection is made


@dataclass
class _Call:
    """What one attempt has reached, so the deadline handler knows what to report."""

    phase: str = "connect"  # connect -> open (nothing sent yet) -> session (script sent)
    process: asyncssh.SSHClientProcess | None = None


class SSHTransport(BaseTransport):
    def __init__(self, config: Config, *, host_key_checking: Mapping[str, str] | None = None,
                 sessions_per_host: int = 8, agent_path: object = _FROM_ENV,
                 known_hosts: Mapping[str, asyncssh.SSHKnownHosts] | None = None):
        """agent_path: the ssh-agent socket (None: no agent); by default $SSH_AUTH_SOCK.
        known_hosts: already parsed known_hosts files by path (the keeper passes the copy
        it computed its cache key from, so both see the same entries)."""
        self.config = config
        self.host_key_checking = dict(host_key_checking or {})  # name -> strict | accept-new
        self.sessions_per_host = sessions_per_host
        self.agent_path = agent_path
        self.connects = 0  # SSH connections opened (handshake + auth done)
        self.stale_reconnects = 0  # connections dropped because a session could not be opened
        self._slots = asyncio.Semaphore(config.parallelism)
        self._host_slots: dict[str, asyncio.Semaphore] = {}
        self._conns: dict[str, asyncio.Task] = {}
        self._failed_at: dict[str, float] = {}  # host -> when its last connect finished
        self._known: dict[str, asyncssh.SSHKnownHosts] = dict(known_hosts or {})  # path -> parsed
        self._keys: dict[str, asyncssh.SSHKey] = {}  # private key path -> loaded key

    # ------------------------------------------------------------------ calls

    async def run(self, host: Host, script: str, *, payload: Payload = None,
                  timeout: float | None = None, idempotent: bool = False,
                  on_start: Callable[[], None] | None = None) -> Result:
        """Run `script` (then `payload`) on `host`'s stdin; never raises but HostKeyError.

        `on_start()` is called once the call has its slots, just before its deadline
        starts and anything is sent (the keeper tells its client so)."""
        limit = self.config.command_timeout if timeout is None else timeout
        data = wrap_script(script)
        # Per-host slot first: calls queued behind one busy host must not hold global slots.
        async with self._host_slot(host), self._slots:
            if on_start is not None:
                on_start()
            start = time.monotonic()
            call = _Call()
            deadline = asyncio.timeout(limit)
            try:
                async with deadline:
                    if idempotent and (payload is None or isinstance(payload, bytes)):
                        result = await self._with_retries(host, data, payload, call)
                    else:
                        result, _ = await self._attempt(host, data, payload, call)
            except TimeoutError:
                if not deadline.expired():
                    raise
                result = self._deadline_result(host, call, limit)
            return replace(result, duration=time.monotonic() - start)

    async def _with_retries(self, host: Host, data: bytes, payload: bytes | None,
                            call: _Call) -> Result:
        """Repeat a read-only call whose connection was lost (the outer deadline still holds)."""
        retrying = AsyncRetrying(stop=stop_after_attempt(CALL_ATTEMPTS),
                                 wait=wait_exponential(multiplier=0.1, max=1),
                                 retry=retry_if_result(lambda outcome: outcome[1]),
                                 retry_error_callback=lambda state: state.outcome.result())
        result, _ = await retrying(self._attempt, host, data, payload, call)
        return result

    async def _attempt(self, host: Host, data: bytes, payload: Payload,
                       call: _Call) -> tuple[Result, bool]:
        """One connect + session. Returns (result, worth retrying if idempotent).

        A session that cannot be opened on a connection older than this call drops that
        connection and is tried once more on a new one (nothing was sent: safe for any
        script). On a connection made for this call, it is the server refusing: reported."""
        call.phase, call.process = "connect", None
        try:
            conn, reused = await self._connection_for_call(host)
        except ConnectFailed as exc:
            return Result(host.name, UNREACHABLE, error=str(exc)), False
        call.phase = "open"
        try:
            process = await self._open_session(host, conn)
        except _NotOpened as exc:
            if not reused:
                return Result(host.name, UNREACHABLE, error=f"could not open a session: {exc}"), True
            self._drop(host, conn)
            call.phase = "connect"
            try:
                conn, _ = await self._connection_for_call(host)
            except ConnectFailed as exc2:
                return Result(host.name, UNREACHABLE, error=f"{exc2} (after the kept connection "
                              f"failed to open a session: {exc})"), False
            call.phase = "open"
            try:
                process = await self._open_session(host, conn)
            except _NotOpened as exc2:
                return Result(host.name, UNREACHABLE, error=f"could not open a session: {exc2}"), True
        call.phase, call.process = "session", process
        try:
            return await self._session(host, process, data, payload)
        except PayloadError as exc:
            return Result(host.name, UNKNOWN, error=f"payload source failed mid-transfer: {exc}"), False
        except (asyncssh.Error, OSError) as exc:
            return Result(host.name, UNKNOWN, error=f"connection lost during the command "
                          f"(it may or may not have run): {exc or type(exc).__name__}"), True

    async def _open_session(self, host: Host, conn: asyncssh.SSHClientConnection) -> asyncssh.SSHClientProcess:
        """Open the channel and start `bash -s`: until this returns, nothing of the script is sent."""
        try:
            return await conn.create_process(remote_command_line(host), encoding=None)
        except (asyncssh.Error, OSError) as exc:
            raise _NotOpened(_describe(exc)) from None

    async def _session(self, host: Host, process: asyncssh.SSHClientProcess, data: bytes,
                       payload: Payload) -> tuple[Result, bool]:
        feeder = asyncio.create_task(_feed(process, data, payload))
        try:
            stdout, stderr = await asyncio.gather(process.stdout.read(), process.stderr.read())
            await process.wait_closed()
        finally:
            if not feeder.done():
                feeder.cancel()  # the script exited without reading all its stdin
            await asyncio.gather(feeder, return_exceptions=True)
        if not feeder.cancelled() and isinstance(feeder.exception(), PayloadError):
            raise feeder.exception()
        return _classify(host.name, process, stdout, stderr)

    def _deadline_result(self, host: Host, call: _Call, limit: float) -> Result:
        if call.phase == "connect":
            return Result(host.name, UNREACHABLE, error=f"could not connect within the {limit:g}s deadline")
        if call.phase == "open":
            return Result(host.name, UNREACHABLE, error=f"could not open a session within the {limit:g}s "
                          "deadline; nothing was sent")
        if call.process is not None:
            call.process.close()  # the remote command may keep running until it touches the pipe
        return Result(host.name, UNKNOWN, error=f"no result within the {limit:g}s deadline: "
                      "the command may still be running or may have finished")

    def _host_slot(self, host: Host) -> asyncio.Semaphore:
        return self._host_slots.setdefault(host.name, asyncio.Semaphore(self.sessions_per_host))

    # ------------------------------------------------------------------ connections

    async def connection(self, host: Host) -> asyncssh.SSHClientConnection:
        """The host's shared connection, for streaming verbs (logs -f, exec) that need
        their own session. Raises ConnectFailed or HostKeyError. No deadline, no slot."""
        return await self._connection(host)

    async def _connection_for_call(self, host: Host) -> tuple[asyncssh.SSHClientConnection, bool]:
        """(connection, reused): reused when it was up before this call asked for it."""
        task = self._conns.get(host.name)
        reused = task is not None and _is_up(task)
        return await self._connection(host), reused

    def _drop(self, host: Host, conn: asyncssh.SSHClientConnection) -> None:
        """Forget a connection that cannot open sessions (unless already replaced)."""
        task = self._conns.get(host.name)
        if task is not None and _is_up(task, closed_too=True) and task.result() is conn:
            del self._conns[host.name]
            self.stale_reconnects += 1
            conn.abort()

    def forget_failed(self, host: Host) -> None:
        """Let the next call connect again after a failed connect (a failed connect stays
        failed for the transport's lifetime; the keeper calls this once per client run)."""
        task = self._conns.get(host.name)
        if task is not None and task.done() and (task.cancelled() or task.exception() is not None):
            del self._conns[host.name]

    def begin_run(self) -> None:
        """A new controller run on a kept transport (the watch loop): hosts whose
        connect failed in an earlier run are tried again."""
        for name in list(self._conns):
            task = self._conns[name]
            if task.done() and (task.cancelled() or task.exception() is not None):
                del self._conns[name]

    def open_connections(self) -> int:
        return sum(1 for task in self._conns.values() if _is_up(task))

    async def _connection(self, host: Host) -> asyncssh.SSHClientConnection:
        """The host's cached connection; the first caller starts the connect, others wait on it.

        shield(): a caller whose deadline expires must not cancel a connect that other
        callers share; the task is bounded by its own connect timeouts.
        """
        task = self._conns.get(host.name)
        if task is None or _is_dead(task) or self._failure_expired(host, task):
            task = asyncio.create_task(self._connect(host), name=f"ssh-connect-{host.name}")
            task.add_done_callback(_retrieve)
            task.add_done_callback(lambda t: self._failed_at.__setitem__(host.name, time.monotonic()))
            self._conns[host.name] = task
        return await asyncio.shield(task)

    def _failure_expired(self, host: Host, task: asyncio.Task) -> bool:
        """A failed connect older than 2 x connect_timeout (not remembered forever)."""
        if not task.done() or task.cancelled() or task.exception() is None:
            return False
        return time.monotonic() - self._failed_at.get(host.name, 0.0) > 2 * self.config.connect_timeout

    async def _connect(self, host: Host) -> asyncssh.SSHClientConnection:
        known_hosts = await self._known_hosts(host)
        options = self._connect_options(host, known_hosts)
        # A refused port gets its 3 quick tries; a silent one (each try waits connect_timeout)
        # gets 2, so a dead host costs about 2 x connect_timeout, once per transport.
        retrying = AsyncRetrying(
            stop=stop_after_attempt(CONNECT_ATTEMPTS) | stop_after_delay(2 * self.config.connect_timeout),
            wait=wait_exponential(multiplier=0.1, max=1),
            retry=retry_if_exception(_transient), reraise=True)

        async def connect_once() -> asyncssh.SSHClientConnection:
            return await asyncssh.connect(host.address, host.port, **options)

        try:
            conn = await retrying(connect_once)
        except asyncssh.HostKeyNotVerifiable as exc:
            raise self._host_key_error(host, known_hosts, str(exc)) from None
        except TimeoutError:
            raise ConnectFailed(f"cannot connect to {_target(host)}: TimeoutError: no SSH "
                                f"handshake within {self.config.connect_timeout:g}s") from None
        except (OSError, asyncssh.Error) as exc:
            raise ConnectFailed(f"cannot connect to {_target(host)}: {_describe(exc)}") from None
        self.connects += 1
        return conn

    def _connect_options(self, host: Host, known_hosts: asyncssh.SSHKnownHosts) -> dict:
        options = dict(
            username=host.user,
            known_hosts=known_hosts,  # never None: host keys are always verified
            config=None,  # ~/.ssh/config must not change what podctl does
            connect_timeout=self.config.connect_timeout,
            keepalive_interval=self.config.keepalive_interval,
            keepalive_count_max=self.config.keepalive_count_max,
            encryption_algs=ENCRYPTION_ALGS,
        )
        agent = os.environ.get("SSH_AUTH_SOCK") if self.agent_path is _FROM_ENV else self.agent_path
        options["agent_path"] = agent or None
        if host.key_file:
            options["client_keys"] = [self._client_key(host)]
        if host.password is not None:
            options["password"] = host.password
        return options

    def _client_key(self, host: Host) -> asyncssh.SSHKey:
        """The host's private key, read once per path (a failure is not remembered)."""
        key = self._keys.get(host.key_file)
        if key is None:
            key = self._keys[host.key_file] = _load_key(host)
        return key

    # ------------------------------------------------------------------ host keys

    async def _known_hosts(self, host: Host) -> asyncssh.SSHKnownHosts:
        """The parsed known_hosts that verifies this host (after accept-new recorded it)."""
        path = _known_hosts_path(host)
        if self.host_key_checking.get(host.name, "strict") == "accept-new":
            known = self._parsed_known_hosts(host, path) if os.path.isfile(path) else None
            if known is None or not _has_entry(known, host):
                await self._accept_new(host, path)
        return self._parsed_known_hosts(host, path)

    def _parsed_known_hosts(self, host: Host, path: str) -> asyncssh.SSHKnownHosts:
        """known_hosts at `path`, parsed once per transport (until accept-new appends)."""
        known = self._known.get(path)
        if known is not None:
            return known
        if not os.path.isfile(path):
            raise HostKeyError(f"host {host.name!r} ({_target(host)}): no known_hosts file {path}; "
                               f"nothing was sent. {_keyscan_hint(host, path)}")
        try:
            known = asyncssh.read_known_hosts(path)
        except (OSError, UnicodeDecodeError, ValueError) as exc:
            raise HostKeyError(f"host {host.name!r} ({_target(host)}): cannot read known_hosts file "
                               f"{path}: {_describe(exc)}; nothing was sent.") from None
        self._known[path] = known
        return known

    async def _accept_new(self, host: Host, path: str) -> None:
        """Record the key of a host not yet in known_hosts (OpenSSH's accept-new)."""
        try:
            key = await asyncio.wait_for(
                asyncssh.get_server_host_key(host.address, host.port, config=None),
                self.config.connect_timeout)
        except (OSError, asyncssh.Error) as exc:
            raise ConnectFailed(f"cannot fetch the host key of {_target(host)}: {_describe(exc)}") from None
        if key is None:
            raise HostKeyError(f"host {host.name!r} ({_target(host)}) presented no host key")
        os.makedirs(os.path.dirname(path) or ".", mode=0o700, exist_ok=True)
        line = f"{_known_hosts_name(host)} {key.export_public_key().decode().strip()}\n"
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            with os.fdopen(fd, "a") as file:
                file.write(line)
        finally:
            self._known.pop(path, None)  # re-read: the key must verify from the file itself

    def _host_key_error(self, host: Host, known: asyncssh.SSHKnownHosts, detail: str) -> HostKeyError:
        path = _known_hosts_path(host)
        if _has_entry(known, host):
            return HostKeyError(
                f"host {host.name!r} ({_target(host)}): its host key does not match {path} "
                f"({detail}); nothing was sent. If the host was reinstalled, check its new "
                f"fingerprint, remove the old entry with `ssh-keygen -R "
                f"'{_known_hosts_name(host)}' -f {path}`, then add the new one. Otherwise "
                "someone may be intercepting the connection.")
        return HostKeyError(f"host {host.name!r} ({_target(host)}): its host key is not in "
                            f"{path}; nothing was sent. {_keyscan_hint(host, path)}")

    # ------------------------------------------------------------------ shutdown

    async def close(self) -> None:
        tasks, self._conns = list(self._conns.values()), {}
        conns = []
        for task in tasks:
            if not task.done():
                task.cancel()
            elif not task.cancelled() and task.exception() is None:
                conns.append(task.result())
        for conn in conns:
            conn.close()
        await asyncio.gather(*(c.wait_closed() for c in conns), *tasks, return_exceptions=True)


# ---------------------------------------------------------------------- helpers


async def _feed(process: asyncssh.SSHClientProcess, data: bytes, payload: Payload) -> None:
    """Script, then payload, then EOF. Channel errors end quietly: the exit status tells."""
    stdin = process.stdin
    try:
        stdin.write(data)
        chunks = payload_chunks(payload)
        while True:
            try:
                chunk = await anext(chunks)
            except StopAsyncIteration:
                break
            except Exception as exc:
                # Abort: KILL the script, then close. Best effort only: sshd refuses signal
                # requests on sessions without privilege separation (root logins), and
                # closing the channel gives the remote stdin an EOF all the same. Scripts
                # that consume a payload must check it (size or digest) before acting.
                process.send_signal("KILL")
                process.close()
                raise PayloadError(f"{type(exc).__name__}: {exc}") from exc
            stdin.write(chunk)
            await stdin.drain()
        stdin.write_eof()
    except (BrokenPipeError, ConnectionError, asyncssh.Error):
        pass  # the remote side closed its stdin or the connection dropped


def _classify(name: str, process: asyncssh.SSHClientProcess, stdout: bytes,
              stderr: bytes) -> tuple[Result, bool]:
    signal = process.exit_signal
    status = process.exit_status
    if signal is not None:
        return Result(name, UNKNOWN, None, stdout, stderr,
                      error=f"the command was killed by signal {signal[0]}"), False
    if status is None:
        return Result(name, UNKNOWN, None, stdout, stderr, error="the session ended without an "
                      "exit status (connection or session process lost)"), True
    if status == 0:
        return Result(name, OK, 0, stdout, stderr), False
    return Result(name, FAILED, status, stdout, stderr, error=f"exit status {status}"), False


def _transient(exc: BaseException) -> bool:
    """Connect errors worth another try: the network or a busy sshd, not config or auth."""
    if isinstance(exc, asyncssh.ConnectionLost):
        return True  # e.g. sshd's MaxStartups dropped us during the handshake
    if isinstance(exc, (socket.gaierror, FileNotFoundError, PermissionError)):
        return False
    return isinstance(exc, OSError)  # refused, reset, unreachable, timed out


def _is_dead(task: asyncio.Task) -> bool:
    """A finished connect whose connection has closed since (a failed connect stays failed)."""
    if not task.done():
        return False  # still connecting: share it
    if task.cancelled():
        return True
    return task.exception() is None and task.result().is_closed()


def _is_up(task: asyncio.Task, closed_too: bool = False) -> bool:
    """A connect that succeeded (and whose connection is still open, unless closed_too)."""
    if not task.done() or task.cancelled() or task.exception() is not None:
        return False
    return closed_too or not task.result().is_closed()


def _retrieve(task: asyncio.Task) -> None:
    """Mark a shielded task's exception as seen, so asyncio does not log it as lost."""
    if not task.cancelled():
        task.exception()


def _load_key(host: Host) -> asyncssh.SSHKey:
    try:
        return asyncssh.read_private_key(host.key_file)
    except (OSError, asyncssh.KeyImportError, ValueError) as exc:
        raise ConnectFailed(f"cannot use private key {host.key_file} for host {host.name!r}: "
                            f"{_describe(exc)}") from None


def _known_hosts_path(host: Host) -> str:
    return host.known_hosts or os.path.expanduser("~/.ssh/known_hosts")


def _has_entry(known: asyncssh.SSHKnownHosts, host: Host) -> bool:
    """Does known_hosts name this host at all (a key, a CA or a revocation)?"""
    try:
        entries = known.match(host.address, host.address, host.port)
    except (ValueError, asyncssh.Error):
        return False
    return any(entries[:3])


def _known_hosts_name(host: Host) -> str:
    return host.address if host.port == 22 else f"[{host.address}]:{host.port}"


def _keyscan_hint(host: Host, path: str) -> str:
    return (f"Check the host's key fingerprint (ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub "
            f"on the host), then add it: `ssh-keyscan -p {host.port} {host.address} >> {path}` "
            "(or set podctl_host_key_checking: accept-new for this host in the inventory).")


def _target(host: Host) -> str:
    return f"{host.user}@{host.address}:{host.port}"


def _describe(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return text if type(exc).__name__ in text else f"{type(exc).__name__}: {text}"
