"""The keeper's wire protocol, file layout and connection cache key: pure, and light.

Both sides import this module: the keeper (transport/keeper.py) and every podctl run
(transport/keeper_client.py), so it imports nothing heavy (no asyncssh).

Frames, both ways, on a Unix stream socket:

    u32 body length | u32 header length | header (JSON object, UTF-8) | blob (raw bytes)

all big-endian. The blob is the script in a "run" request and stdout + stderr in a
"result" (the header says where stdout ends), so neither is ever escaped or copied
through JSON. A frame is at most MAX_FRAME bytes, a header MAX_HEADER.

Conversation (every header has "op"; requests and their answers carry "id"):

    client                                   keeper
    hello {protocol, code}            ->     hello {ok, pid, code, ...}
                                             (ok false: another version; if the
                                              client's code is newer the keeper
                                              exits and the client starts one)
    run {id, host, policy, settings,  ->     started {id}   the call has its slots: its
         timeout, idempotent} + script                      deadline runs from here
                                             result {id, status, exit_code, duration,
                                                     error, stdout: n} + stdout+stderr
                                             | result {id, raise: HostKeyError, error}
                                             | rejected {id}  the keeper is exiting:
                                                              nothing was run
    cancel {id}                       ->     cancelled {id}  (only if not started: it
                                                              never will be)
    status                            ->     status {...counters}
    stop                              ->     stopping, then bye, then the keeper exits
                                     <-      bye {reason}  the keeper is exiting: it
                                             starts nothing more; requests it already
                                             started still get their result

A control hello (`control: true`, for `podctl keeper status|stop` and for a starting
keeper checking for a twin) is answered whatever the versions, and never makes the
keeper exit.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import struct
import sys
from pathlib import Path
from typing import Any, Mapping

from ..model import Host

PROTOCOL = 1
MAX_FRAME = 1 << 30
MAX_HEADER = 1 << 20
_U32 = struct.Struct(">I")
SUN_PATH_MAX = 107  # bytes in sockaddr_un.sun_path, less the terminating NUL

# Host fields that say where a pod may go, not how to reach the host: left out of
# requests. Every other field is sent and is part of the cache key, so a field added
# to Host later is keyed by default.
NOT_CONNECTION = frozenset({"labels", "taints", "capacity", "pod_cidr", "groups", "source", "fence_command",
                            "memory_available_min"})
POLICIES = ("strict", "accept-new")
SETTINGS = ("connect_timeout", "keepalive_interval", "keepalive_count_max", "sessions_per_host", "agent")

# The files whose code decides what the keeper does: a keeper started from other
# versions of them is replaced (see code_version).
_CODE_FILES = ("transport/__init__.py", "transport/ssh.py", "transport/keeper.py",
               "transport/keeper_proto.py", "transport/keeper_client.py", "model.py",
               "errors.py", "config.py")


class ProtocolError(Exception):
    """A frame that does not follow the protocol (too big, not JSON, not an object)."""


# ---------------------------------------------------------------- files


@dataclasses.dataclass(frozen=True)
class Paths:
    """$PODCTL_HOME/run/: the keeper's socket, lock, pid file and log (dir 0700)."""

    run: Path

    @classmethod
    def of(cls, home: Path) -> "Paths":
        return cls(Path(home) / "run")

    @property
    def socket(self) -> Path:
        return self.run / "keeper.sock"

    @property
    def lock(self) -> Path:
        return self.run / "keeper.lock"  # flock held by the live keeper, for its lifetime

    @property
    def pid(self) -> Path:
        return self.run / "keeper.pid"

    @property
    def log(self) -> Path:
        return self.run / "keeper.log"


def socket_path_ok(path: Path) -> bool:
    """Can `path` be a Unix socket address (sun_path holds 107 bytes)?"""
    return len(os.fsencode(str(path))) <= SUN_PATH_MAX


def ensure_run_dir(paths: Paths) -> None:
    """Create $PODCTL_HOME/run (0700) or check it: a real directory of ours, no group or
    other access (tightened if it is ours). Raises PermissionError otherwise."""
    paths.run.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    try:
        os.mkdir(paths.run, 0o700)
    except FileExistsError:
        pass
    st = os.lstat(paths.run)
    import stat

    if not stat.S_ISDIR(st.st_mode):
        raise PermissionError(f"{paths.run} is not a directory")
    if st.st_uid != os.geteuid():
        raise PermissionError(f"{paths.run} belongs to uid {st.st_uid}, not to this user")
    if st.st_mode & 0o077:
        os.chmod(paths.run, 0o700)


def code_version() -> str:
    """This installation's keeper code: podctl's version, the Python version, and size
    and mtime of every file in _CODE_FILES (a stat each: no file is read). An upgrade
    or an edit of any of them replaces a running keeper at the next run."""
    return _code_info()[0]


def code_mtime() -> int:
    """The newest mtime (ns) of the _CODE_FILES this process took its code_version from."""
    return _code_info()[1]


def _code_info() -> tuple[str, int]:
    global _code
    if _code is None:
        from .. import __version__

        root = Path(__file__).resolve().parent.parent
        parts, newest = [__version__, sys.version.split()[0]], 0
        for name in _CODE_FILES:
            try:
                st = os.stat(root / name)
                parts.append(f"{name}:{st.st_size}:{st.st_mtime_ns}")
                newest = max(newest, st.st_mtime_ns)
            except OSError:
                parts.append(f"{name}:-")
        _code = (hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16], newest)
    return _code


_code: tuple[str, int] | None = None


# ---------------------------------------------------------------- frames


def encode(header: Mapping[str, Any], blob: bytes = b"") -> bytes:
    head = json.dumps(header, separators=(",", ":")).encode()
    if len(head) > MAX_HEADER:
        raise ProtocolError(f"header of {len(head)} bytes (limit {MAX_HEADER})")
    size = 4 + len(head) + len(blob)
    if size > MAX_FRAME:
        raise ProtocolError(f"frame of {size} bytes (limit {MAX_FRAME})")
    return b"".join((_U32.pack(size), _U32.pack(len(head)), head, blob))


def frame_size(prefix: bytes) -> int:
    """The body length announced by a frame's first 4 bytes (checked against MAX_FRAME)."""
    (size,) = _U32.unpack(prefix)
    if size < 4 or size > MAX_FRAME:
        raise ProtocolError(f"frame of {size} bytes announced (expected 4..{MAX_FRAME})")
    return size


def decode(body: bytes) -> tuple[dict, bytes]:
    """A frame's body (what follows its length) -> (header, blob)."""
    if len(body) < 4:
        raise ProtocolError("frame shorter than its header length")
    (n,) = _U32.unpack_from(body)
    if n > MAX_HEADER or 4 + n > len(body):
        raise ProtocolError(f"header of {n} bytes in a frame of {len(body)}")
    try:
        header = json.loads(body[4:4 + n])
    except (UnicodeDecodeError, ValueError) as exc:
        raise ProtocolError(f"header is not JSON: {exc}") from None
    if not isinstance(header, dict) or not isinstance(header.get("op"), str):
        raise ProtocolError("header is not an object with an op")
    return header, body[4 + n:]


async def read_frame(reader) -> tuple[dict, bytes]:
    """One frame from an asyncio StreamReader; IncompleteReadError at EOF."""
    size = frame_size(await reader.readexactly(4))
    return decode(await reader.readexactly(size))


def read_frame_sync(sock) -> tuple[dict, bytes]:
    """One frame from a blocking socket; EOFError at EOF."""
    size = frame_size(_recv_exactly(sock, 4))
    return decode(_recv_exactly(sock, size))


def _recv_exactly(sock, n: int) -> bytes:
    chunks, left = [], n
    while left:
        chunk = sock.recv(min(left, 1 << 20))
        if not chunk:
            raise EOFError("the keeper closed the connection")
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


# ---------------------------------------------------------------- requests


def hello(control: bool = False) -> dict:
    return {"op": "hello", "protocol": PROTOCOL, "code": code_version(), "mtime": code_mtime(), "pid": os.getpid(),
            "control": control}


def compatible(header: Mapping[str, Any]) -> bool:
    """Is a client's hello from this protocol and code version?"""
    return header.get("protocol") == PROTOCOL and header.get("code") == code_version()


def replaces(header: Mapping[str, Any]) -> bool:
    """Does an incompatible client's hello replace this keeper? Only a client whose code
    is at least as new (an upgrade), and that asks to: a long-running podctl from before
    an upgrade runs directly instead of taking the keeper back to its old code, and a
    client that just started a keeper never stops it again."""
    mtime = header.get("mtime")
    return bool(header.get("replace", True)) and isinstance(mtime, int) and mtime >= code_mtime()


def host_params(host: Host) -> dict | None:
    """The host's connection fields for a request, paths made absolute (the keeper runs
    in /, and its own ~ need not be this one's). None when a field is not plain data:
    such a host runs on a direct connection."""
    params = {}
    for f in dataclasses.fields(host):
        if f.name in NOT_CONNECTION:
            continue
        value = getattr(host, f.name)
        if value is not None and not isinstance(value, (str, int, float, bool)):
            return None
        params[f.name] = value
    params["known_hosts"] = os.path.abspath(os.path.expanduser(host.known_hosts or "~/.ssh/known_hosts"))
    if host.key_file:
        params["key_file"] = os.path.abspath(os.path.expanduser(host.key_file))
    return params


def host_from_params(params: Mapping[str, Any]) -> Host:
    """The keeper's Host for a request (ValueError if the fields are not a Host's)."""
    names = {f.name for f in dataclasses.fields(Host)} - NOT_CONNECTION
    if not isinstance(params, Mapping) or set(params) - names:
        raise ValueError(f"unknown host fields: {sorted(set(params) - names) if isinstance(params, Mapping) else params}")
    if not isinstance(params.get("name"), str) or not isinstance(params.get("address"), str):
        raise ValueError("host name and address must be strings")
    if not isinstance(params.get("port", 22), int) or isinstance(params.get("port"), bool):
        raise ValueError("host port must be an integer")
    return Host(**params)


def settings(config, sessions_per_host: int, agent: str | None) -> dict:
    """Connection settings sent with every request (and keyed): from Config, plus the
    ssh-agent socket this run would use."""
    return {"connect_timeout": float(config.connect_timeout),
            "keepalive_interval": float(config.keepalive_interval),
            "keepalive_count_max": int(config.keepalive_count_max),
            "sessions_per_host": int(sessions_per_host), "agent": agent or None}


def check_settings(values: Mapping[str, Any]) -> dict:
    if not isinstance(values, Mapping) or set(values) != set(SETTINGS):
        raise ValueError(f"settings must have exactly {', '.join(SETTINGS)}")
    out = dict(values)
    for name in ("connect_timeout", "keepalive_interval"):
        if not isinstance(out[name], (int, float)) or isinstance(out[name], bool) or out[name] < 0:
            raise ValueError(f"settings.{name} must be a number >= 0")
    for name in ("keepalive_count_max", "sessions_per_host"):
        if not isinstance(out[name], int) or isinstance(out[name], bool) or out[name] < 1:
            raise ValueError(f"settings.{name} must be an integer >= 1")
    if out["agent"] is not None and not isinstance(out["agent"], str):
        raise ValueError("settings.agent must be a path or null")
    return out


def run_request(params: Mapping[str, Any], policy: str, conn_settings: Mapping[str, Any],
                timeout: float, idempotent: bool) -> dict:
    return {"op": "run", "host": dict(params), "policy": policy, "settings": dict(conn_settings),
            "timeout": float(timeout), "idempotent": bool(idempotent)}


def cache_key(params: Mapping[str, Any], policy: str, conn_settings: Mapping[str, Any],
              files: Mapping[str, Any]) -> str:
    """The keeper's connection cache key: everything a connection was made under.

    Every host field sent (address, port, user, key file, known_hosts, become, password
    (hashed: the key may be logged), and any other), the host key policy, the
    connection settings (timeouts, keepalives, sessions, agent) and what the keeper
    saw of the files (`files`: the known_hosts entries that match the host, the key
    file's identity). Any difference is another connection: an inventory change, an
    edited known_hosts or a weaker policy never reuses a connection made under others.
    """
    host = dict(params)
    if host.get("password") is not None:
        host["password"] = "sha256:" + hashlib.sha256(str(host["password"]).encode()).hexdigest()
    doc = {"protocol": PROTOCOL, "host": host, "policy": policy, "settings": dict(conn_settings),
           "files": dict(files)}
    return hashlib.sha256(json.dumps(doc, sort_keys=True, separators=(",", ":"),
                                     default=str).encode()).hexdigest()


def file_identity(path: str | None) -> str | None:
    """(device, inode, size, mtime) of a file, or why not: changes when the file does."""
    if not path:
        return None
    try:
        st = os.stat(path)
    except OSError as exc:
        return f"missing:{type(exc).__name__}"
    return f"{st.st_dev}:{st.st_ino}:{st.st_size}:{st.st_mtime_ns}"


# ---------------------------------------------------------------- results


def result_header(rid: int, status: str, exit_code: int | None, stdout: bytes, duration: float,
                  error: str) -> dict:
    return {"op": "result", "id": rid, "status": status, "exit_code": exit_code,
            "duration": float(duration), "error": error, "stdout": len(stdout)}


def result_fields(header: Mapping[str, Any], blob: bytes) -> dict:
    """A result frame -> Result's keyword arguments (but host)."""
    n = header.get("stdout")
    if not isinstance(n, int) or not 0 <= n <= len(blob):
        raise ProtocolError(f"result frame: stdout length {n!r} for a blob of {len(blob)}")
    from . import STATUSES

    status = header.get("status")
    if status not in STATUSES:
        raise ProtocolError(f"result frame: status {status!r}")
    code = header.get("exit_code")
    return {"status": status, "exit_code": code if isinstance(code, int) else None,
            "stdout": bytes(blob[:n]), "stderr": bytes(blob[n:]),
            "duration": float(header.get("duration") or 0.0), "error": str(header.get("error") or "")}
