"""Transports run one bash script on one host and say what happened.

Every remote step (probe, create, delete, image push) is a script fed on stdin to
`bash -s`, optionally followed by payload bytes the script reads from the same stdin
(`tar -x` of an image, say). Implementations:

  orchestrator.transport.ssh.SSHTransport     asyncssh, one connection per host
  orchestrator.transport.local.LocalTransport  `bash -s` on this machine (tests)

They share `Result`, the status rules and the script wrapper defined here.

Status rules (the executor relies on them; "unknown" is never success):
  ok           the script exited 0
  failed       the script exited with a real non-zero status
  unreachable  nothing ran: no connection, no authentication, no session
  unknown      it may or may not have run: deadline hit, connection lost mid-command,
               the session ended without an exit status, or the script was killed by
               a signal
"""

from __future__ import annotations

import asyncio
import shlex
from dataclasses import dataclass
from typing import AsyncIterator, Callable, Iterable, Protocol, Union

from ..errors import HostKeyError
from ..model import Host

OK, FAILED, UNREACHABLE, UNKNOWN = "ok", "failed", "unreachable", "unknown"
STATUSES = (OK, FAILED, UNREACHABLE, UNKNOWN)

Payload = Union[bytes, AsyncIterator[bytes], None]
CHUNK = 1 << 20  # payload bytes written per drain: bounded memory in the channel buffer


@dataclass(frozen=True)
class Result:
    host: str
    status: str  # one of STATUSES
    exit_code: int | None = None  # only for ok / failed
    stdout: bytes = b""
    stderr: bytes = b""
    duration: float = 0.0  # seconds, from when the call got its concurrency slot
    error: str = ""  # why, for unreachable / unknown (and a failed exit code)

    @property
    def ok(self) -> bool:
        return self.status == OK

    def __str__(self) -> str:
        code = f" exit {self.exit_code}" if self.exit_code is not None else ""
        why = f": {self.error}" if self.error else ""
        return f"{self.host}: {self.status}{code} ({self.duration:.2f}s){why}"


# Wrapped scripts from this size on use the `head -c` loader; smaller ones are read
# with the `read -N` builtin. Measured with bash 5.2 on a pipe (median CPU per run,
# bench: `bash -s` fed each form): 1 KB 1.4 vs 2.3 ms, 4 KB 1.5 vs 2.1 ms, 16 KB 4.2
# vs 4.5 ms; from there on parsing dominates and the two are even. The loader keeps
# big batches off the here-string's pipe (bash falls back to a temp file above the
# pipe's 64 KiB, and before bash 5.1 always does).
LOADER_MIN = 16 * 1024


def wrap_script(script: str, *, loader: bool | None = None) -> bytes:
    """The bytes sent on stdin before any payload.

    The script travels as one block, `{ ...; }`, that bash sources from a file
    descriptor after taking it off stdin in one piece (on a pipe bash reads a script
    one byte at a time: ~10 ms for a 40 KB batch). How the block is taken:

    - small scripts (below LOADER_MIN, the probe): `read -N <bytes>` into a variable,
      then `. /dev/fd/9 9<<<"$var"`: builtins only, no process is started (bash 5.2
      reads the block with one read(2); the here-string is a pipe);
    - bigger ones (loader=True forces it): a loader, `. <(head -c N)`, a `head`
      process per session.

    Both stop exactly after the script, so what follows on stdin (a payload, or the
    user's input for `exec -i`) stays there for the script's commands, and both run
    the block the same way (sourced: `return` ends it, errors read "line N").

    - `{ ...; }` makes bash parse the WHOLE script before running any of it: a
      syntax error runs nothing (nor does a script cut short in transit). The price:
      `shopt -s extglob` (or an alias) cannot affect how later lines of the same
      script are parsed.
    - `; exit $?` stops bash from ever executing payload bytes a script did not
      consume.
    - LC_ALL=C sits on the script's first line, so bash's error line numbers match it
      (and on the first line of the stream, so `read -N` counts bytes).
    """
    body = script if script.endswith("\n") or not script else script + "\n"
    block = f"{{ export LC_ALL=C; {body}}}\n".encode()
    if loader is None:
        # NUL: no bash variable can hold it (read would drop it and read on).
        loader = len(block) >= LOADER_MIN or "\0" in script
    if loader:
        return f". <(head -c {len(block)}) ; exit $?\n".encode() + block
    return (f"export LC_ALL=C; IFS= read -r -N {len(block)} PODCTL_SCRIPT || "
            "{ echo 'podctl: the script was cut short; nothing ran' >&2; exit 1; }; "
            '. /dev/fd/9 9<<<"$PODCTL_SCRIPT" ; exit $?\n').encode() + block


def remote_command(host: Host) -> list[str]:
    """argv that reads the script on stdin: bash, through `sudo -n` when become is set.

    -n: sudo must never prompt (stdin is the script, and there is no tty).
    """
    if host.become:
        return ["sudo", "-n", "-u", host.become_user, "--", "bash", "-s"]
    return ["bash", "-s"]


def remote_command_line(host: Host) -> str:
    return shlex.join(remote_command(host))


async def payload_chunks(payload: Payload) -> AsyncIterator[bytes]:
    if payload is None:
        return
    if isinstance(payload, (bytes, bytearray, memoryview)):
        view = memoryview(payload)
        for offset in range(0, len(view), CHUNK):
            yield bytes(view[offset:offset + CHUNK])
        return
    async for chunk in payload:
        if chunk:
            yield bytes(chunk)


class PayloadError(Exception):
    """Reading the caller's payload iterator failed (a local problem, not the host's)."""


class Transport(Protocol):
    async def run(self, host: Host, script: str, *, payload: Payload = None,
                  timeout: float | None = None, idempotent: bool = False) -> Result: ...

    async def run_many(self, hosts: Iterable[Host], make_script: Callable[[Host], str], *,
                       payload: bytes | None = None, timeout: float | None = None,
                       idempotent: bool = False) -> dict[str, Result]: ...

    async def close(self) -> None: ...


class BaseTransport:
    """run_many and `async with` on top of a subclass's run and close."""

    async def run(self, host: Host, script: str, *, payload: Payload = None,
                  timeout: float | None = None, idempotent: bool = False) -> Result:
        raise NotImplementedError

    async def close(self) -> None:
        raise NotImplementedError

    async def run_many(self, hosts: Iterable[Host], make_script: Callable[[Host], str], *,
                       payload: bytes | None = None, timeout: float | None = None,
                       idempotent: bool = False) -> dict[str, Result]:
        """Run one script per host concurrently; results keyed by host name, in input order.

        `payload` must be bytes here (an iterator cannot be shared by several hosts).
        """
        hosts = list(hosts)
        names = [h.name for h in hosts]
        if len(set(names)) != len(names):
            raise ValueError(f"run_many: duplicate host names in {names}")
        results = await asyncio.gather(*(
            self._run_one_of_many(h, make_script(h), payload, timeout, idempotent) for h in hosts))
        return dict(zip(names, results))

    async def _run_one_of_many(self, host: Host, script: str, payload: bytes | None,
                               timeout: float | None, idempotent: bool) -> Result:
        """Like run, but a host-key problem becomes this host's "unreachable" Result, so
        one unverifiable host does not abort the others (run() raises HostKeyError)."""
        try:
            return await self.run(host, script, payload=payload, timeout=timeout, idempotent=idempotent)
        except HostKeyError as exc:
            return Result(host.name, UNREACHABLE, error=str(exc))

    async def __aenter__(self):
        return self

    async def __aexit__(self, *exc_info) -> None:
        await self.close()
