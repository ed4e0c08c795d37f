"""`podctl debug POD --image IMG [--target C] [-i] -- CMD`: an ephemeral container.

The edges of what ephemeral.py decides: find the pod and its host, check the request
as the API server would, probe the host (the pod must be running there), record the
container in the store, push its image if the host lacks it, start it (attached with
-i, detached otherwise).
"""

from __future__ import annotations

import asyncio
import random

import click

from .config import Config
from .controller import open_store, open_transport, probe_hosts, require_inventory, stored_pod
from .ephemeral import build_spec, check, debug_script, debugger_name
from .errors import TransportError, UsageError
from .executor import HostReport, _push
from .images import ImageStore


def debug(config: Config, pod_name: str, namespace: str, image: str, target: str | None, name: str | None,
          interactive: bool, tty: bool, pull_policy: str | None, command: list[str],
          rng: random.Random | None = None) -> int:
    inventory = require_inventory(config)
    row, pod = stored_pod(config, namespace, pod_name)
    defaulted = name is None
    name = name or debugger_name(rng or random.SystemRandom())
    doc = build_spec(name, image, command, target, interactive, tty, pull_policy)
    check(doc, pod, row.ephemeral or [])
    images = ImageStore(config.images_dir)
    img = images.get(image)
    if img is None:
        raise UsageError(f'image "{image}" is not in the podctl image store (podctl image import)')
    if not row.node:
        raise UsageError(f"pod {pod_name} is not scheduled to a host yet")
    host = inventory.get(row.node)
    if defaulted:
        click.echo(f"Defaulting debug container name to {name}.", err=True)

    async def run() -> int:
        async with open_transport(config, inventory) as transport:
            snap = (await probe_hosts(transport, [host], config.probe_timeout))[host.name]
            if not snap.reachable:
                raise TransportError(f"host {host.name}: {snap.status}: {snap.error}")
            seen = snap.pods.get(row.uid)
            if seen is None or seen.state != "alive":
                raise UsageError(f"pod {pod_name} is not running on {host.name}: an ephemeral container "
                                 "needs a running pod")
            missing = img.digest not in snap.images
            if missing and doc["imagePullPolicy"] == "Never":
                raise UsageError(f'image "{image}" is not present on host {host.name} with pull policy Never')
            with open_store(config) as store:
                store.add_ephemeral(row.uid, doc, lambda r: check(doc, pod, r.ephemeral or []))
            if missing:
                report = HostReport(host.name)
                await _push(transport, host, images, img.digest, report, config.command_timeout)
                if report.status != "ok":
                    raise TransportError(f"host {host.name}: {report.error}")
            script = debug_script(pod, row.uid, doc, img, interactive)
            if interactive:
                from .remote import stream_on

                click.echo("If you don't see a command prompt, try pressing enter.", err=True)
                return await stream_on(transport, host, script, interactive=True)
            result = await transport.run(host, script, timeout=config.command_timeout)
            if result.status != "ok":
                detail = result.stderr.decode(errors="replace").strip() or result.error
                click.echo(detail, err=True)
                return 1 if result.status == "failed" else 2
            return 0

    try:
        return asyncio.run(run())
    except KeyboardInterrupt:
        return 130
