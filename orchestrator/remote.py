"""Interactive remote verbs that stream: `podctl exec`, `podctl debug -i` (logs: logfetch.py).

They use the transport's verified connection but stream stdout/stderr as they come
(a follow or a long command must not be buffered until it ends).
"""

from __future__ import annotations

import asyncio
import sys

from .config import Config
from .model import Host
from .render import render
from .transport import remote_command_line, wrap_script
from .controller import open_transport
from .errors import TransportError
from .inventory import Inventory
from .transport.ssh import ConnectFailed


async def _pump(reader, out) -> None:
    while True:
        chunk = await reader.read(65536)
        if not chunk:
            return
        out.write(chunk)
        out.flush()


async def _feed_stdin(process) -> None:
    loop = asyncio.get_running_loop()
    while True:
        chunk = await loop.run_in_executor(None, sys.stdin.buffer.read1, 65536)
        if not chunk:
            break
        process.stdin.write(chunk)
        await process.stdin.drain()
    process.stdin.write_eof()


async def stream_script(config: Config, inventory: Inventory, host: Host, script: str,
                        interactive: bool = False) -> int:
    """Run `script` on `host`, copying its output live; returns its exit status."""
    async with open_transport(config, inventory) as transport:
        return await stream_on(transport, host, script, interactive)


async def stream_on(transport, host: Host, script: str, interactive: bool = False) -> int:
    """stream_script over an open transport (a verb that also probes or pushes first)."""
    try:
        conn = await transport.connection(host)
    except ConnectFailed as exc:
        raise TransportError(f"{host.name}: {exc}") from exc
    process = await conn.create_process(remote_command_line(host), encoding=None)
    process.stdin.write(wrap_script(script))
    feeder = None
    if interactive:
        feeder = asyncio.create_task(_feed_stdin(process))
    else:
        process.stdin.write_eof()
    try:
        await asyncio.gather(_pump(process.stdout, sys.stdout.buffer),
                             _pump(process.stderr, sys.stderr.buffer))
        await process.wait_closed()
    finally:
        if feeder is not None:
            feeder.cancel()
    if process.exit_status is None:
        return 2 if process.exit_signal is None else 128 + 9
    return process.exit_status


async def exec_command(config: Config, inventory: Inventory, host: Host, uid: str, container: str, command: list[str],
                       interactive: bool) -> int:
    script = render("exec.sh.j2", uid=uid, container=container, command=command, interactive=interactive)
    return await stream_script(config, inventory, host, script, interactive)
