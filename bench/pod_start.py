#!/usr/bin/env python3
"""Apply-to-Running latency of a 2-container pod, over a warm and over a fresh connection.

    python3 bench/pod_start.py [--runs 30]

Each run records a new pod in the store and times one reconcile, which probes the host
and creates the pod; the create script returns once both containers are running, so
the figure is apply-to-Running as a user sees it. "warm" reuses one SSH connection for
every run (what a --watch loop has); "fresh" opens a new connection each time (a cron
run with PODCTL_SSH_KEEPER=0); "keeper" makes a new transport per run whose connection
the SSH connection keeper kept from the run before (a cron run by default). Needs root:
it starts its own 1-host lab under a temporary home, or uses the lab of $PODCTL_HOME
when one is up (the keeper it starts for that home is stopped at the end). Prints
p50/p99 in milliseconds.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from orchestrator import lab  # noqa: E402
from orchestrator.config import Config  # noqa: E402
from orchestrator.controller import Controller, open_store, open_transport, require_inventory  # noqa: E402
from orchestrator.transport import keeper_client  # noqa: E402
from orchestrator.images import ImageStore, build_busybox_image  # noqa: E402
from orchestrator.manifests import parse_documents  # noqa: E402

POD = """
apiVersion: v1
kind: Pod
metadata: {{name: {name}}}
spec:
  terminationGracePeriodSeconds: 0
  containers:
  - {{name: app, image: busybox, command: [sleep, "3600"]}}
  - {{name: side, image: busybox, command: [sleep, "3600"]}}
"""


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    k = min(len(ordered) - 1, max(0, round(p / 100 * (len(ordered) - 1))))
    return ordered[k]


async def one_run(controller: Controller, config: Config, name: str, transport) -> float:
    doc = parse_documents(POD.format(name=name), "bench")[0]
    with open_store(config) as store:
        store.add_pod("default", name, dict(doc.raw), time.time())
    start = time.perf_counter()
    report = await controller.run(transport=transport)
    elapsed = time.perf_counter() - start
    outcomes = [o for r in report.hosts.values() for o in r.outcomes.values()]
    if report.exit_code != 0 or not outcomes or not all(o.ok for o in outcomes):
        raise SystemExit(f"run for {name} did not converge: exit {report.exit_code} {report.hosts}")
    return elapsed


async def cleanup(controller: Controller, config: Config, transport) -> None:
    with open_store(config) as store:
        for row in store.list_pods():
            if not row.deleting:
                store.request_delete(row.uid, time.time())
    await controller.run(transport=transport)


async def bench(config: Config, runs: int) -> dict[str, list[float]]:
    controller = Controller(config)
    results: dict[str, list[float]] = {"warm": [], "fresh": [], "keeper": []}
    inventory = require_inventory(config)
    async with open_transport(config, inventory) as warm:
        await controller.run(transport=warm)  # connect once, push the image once
        for i in range(runs):
            results["warm"].append(await one_run(controller, config, f"warm-{i}", warm))
            await cleanup(controller, config, warm)
    for i in range(runs):
        async with open_transport(config, inventory) as fresh:
            results["fresh"].append(await one_run(controller, config, f"fresh-{i}", fresh))
        async with open_transport(config, inventory) as t:
            await cleanup(controller, config, t)
    kept = replace(config, ssh_keeper=True)
    async with open_transport(kept, inventory) as t:
        await cleanup(controller, config, t)  # starts the keeper and connects
    for i in range(runs):
        async with open_transport(kept, inventory) as t:
            results["keeper"].append(await one_run(controller, config, f"kept-{i}", t))
        async with open_transport(kept, inventory) as t:
            await cleanup(controller, config, t)
    return results


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=30)
    args = ap.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("bench/pod_start.py needs root (it runs on the local lab)")
    owner = lab.lab_owner()
    tmp = None
    if owner is None:
        tmp = tempfile.mkdtemp(prefix="podctl-bench-")
        home = Path(tmp)
        lab.lab_up(home, 1)
    else:
        home = Path(owner)
    config = Config(home=home, inventory=None)
    build_busybox_image(ImageStore(config.images_dir))
    # A private inventory with one host: the latency of one pod on one host.
    inv = home / "bench-inventory.yaml"
    text = (home / "lab" / "inventory.yaml").read_text()
    inv.write_text(text.split("    node2:")[0])
    config = Config(home=home, inventory=inv, ssh_keeper=False)  # direct, but for "keeper"
    try:
        results = asyncio.run(bench(config, args.runs))
    finally:
        keeper_client.stop(config)
        inv.unlink(missing_ok=True)
        if tmp:
            lab.lab_down(home)
    for kind in ("warm", "fresh", "keeper"):
        ms = [v * 1000 for v in results[kind]]
        print(f"apply-to-Running 2-container pod, {kind:6} connection: "
              f"p50 {statistics.median(ms):6.1f} ms   p99 {percentile(ms, 99):6.1f} ms   (n={len(ms)})")


if __name__ == "__main__":
    main()
