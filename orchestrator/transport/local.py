"""LocalTransport: the SSHTransport interface, running `bash -s` on this machine.

For tests of scripts (no SSH involved): the host's address is ignored, but the
script, stdin layout, sudo wrapping and status rules are exactly those of SSH, so a
script that works here gets the same bytes on its stdin remotely.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from dataclasses import replace

from ..config import Config
from ..model import Host
from . import (FAILED, OK, UNKNOWN, UNREACHABLE, BaseTransport, Payload, PayloadError, Result,
               payload_chunks, remote_command, wrap_script)


class LocalTransport(BaseTransport):
    def __init__(self, config: Config | None = None, *, command_timeout: float = 60.0,
                 parallelism: int = 64):
        self.command_timeout = config.command_timeout if config else command_timeout
        self._slots = asyncio.Semaphore(config.parallelism if config else parallelism)

    async def run(self, host: Host, script: str, *, payload: Payload = None,
                  timeout: float | None = None, idempotent: bool = False) -> Result:
        """`idempotent` is accepted for interface parity; nothing local is worth retrying."""
        limit = self.command_timeout if timeout is None else timeout
        async with self._slots:
            start = time.monotonic()
            result = await self._run(host, wrap_script(script), payload, limit)
            return replace(result, duration=time.monotonic() - start)

    async def close(self) -> None:
        """Nothing to close: each run's process is waited for before run returns."""

    async def _run(self, host: Host, data: bytes, payload: Payload, limit: float) -> Result:
        try:
            # A new session (process group) so a deadline can kill the script's children too.
            proc = await asyncio.create_subprocess_exec(
                *remote_command(host), stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
                start_new_session=True)
        except OSError as exc:
            return Result(host.name, UNREACHABLE, error=f"cannot start {remote_command(host)[0]}: {exc}")
        feeder = asyncio.create_task(_feed(proc, data, payload))
        try:
            async with asyncio.timeout(limit):
                stdout, stderr = await asyncio.gather(proc.stdout.read(), proc.stderr.read())
                await proc.wait()
        except TimeoutError:
            _kill_group(proc)
            await proc.wait()
            return Result(host.name, UNKNOWN, error=f"no result within the {limit:g}s deadline (killed)")
        finally:
            if not feeder.done():
                feeder.cancel()
            await asyncio.gather(feeder, return_exceptions=True)
        if not feeder.cancelled() and isinstance(feeder.exception(), PayloadError):
            return Result(host.name, UNKNOWN, None, stdout, stderr,
                          error=f"payload source failed mid-transfer: {feeder.exception()}")
        return _classify(host.name, proc.returncode, stdout, stderr)


async def _feed(proc: asyncio.subprocess.Process, data: bytes, payload: Payload) -> None:
    try:
        proc.stdin.write(data)
        chunks = payload_chunks(payload)
        while True:
            try:
                chunk = await anext(chunks)
            except StopAsyncIteration:
                break
            except Exception as exc:
                _kill_group(proc)  # a truncated payload must not look like a whole one
                raise PayloadError(f"{type(exc).__name__}: {exc}") from exc
            proc.stdin.write(chunk)
            await proc.stdin.drain()
        await proc.stdin.drain()
        proc.stdin.close()
    except (BrokenPipeError, ConnectionResetError):
        pass  # the script exited without reading all of its stdin


def _kill_group(proc: asyncio.subprocess.Process) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)  # the group we created for this script only
    except ProcessLookupError:
        pass


def _classify(name: str, code: int | None, stdout: bytes, stderr: bytes) -> Result:
    if code is None or code < 0:
        return Result(name, UNKNOWN, None, stdout, stderr,
                      error=f"the command was killed by signal {-code}" if code else "no exit status")
    if code == 0:
        return Result(name, OK, 0, stdout, stderr)
    return Result(name, FAILED, code, stdout, stderr, error=f"exit status {code}")
