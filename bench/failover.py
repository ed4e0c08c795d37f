#!/usr/bin/env python3
"""Time from a host crash to all its Deployment pods Running elsewhere, under
`podctl reconcile --watch --interval 1`.

    python3 bench/failover.py [--hosts 4] [--replicas 8] [--runs 3] [--interval 1]

Needs root. Starts its own lab under a temporary PODCTL_HOME (after taking the e2e
tests' machine-wide lock, /run/lock/podctl-e2e.lock), applies a Deployment spread over
the hosts, starts the watch (a subprocess, as a user runs it), then per run: SIGKILLs
the init of the host holding most replicas (every process on it dies, as in a power
cut), and polls the store every 20 ms until each replica that was on it has a
successor bound elsewhere whose create succeeded ("Started" event: the create script
returns once the containers run). The host is booted again and the watch cleans its
stale copies before the next run. Everything is removed at the end, also on failure.

For comparison (defaults, not measured here): Kubernetes marks a node NotReady after
40 s and evicts its pods 300 s later (~350 s); Nomad reschedules after its heartbeat
grace, about 20-30 s.
"""

from __future__ import annotations

import argparse
import fcntl
import os
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from orchestrator import lab  # noqa: E402
from orchestrator.images import ImageStore, build_busybox_image  # noqa: E402

LOCK = "/run/lock/podctl-e2e.lock"


def manifest(replicas: int) -> str:
    return textwrap.dedent(f"""
        apiVersion: apps/v1
        kind: Deployment
        metadata: {{name: failover}}
        spec:
          replicas: {replicas}
          selector: {{matchLabels: {{app: failover}}}}
          template:
            metadata: {{labels: {{app: failover}}}}
            spec:
              terminationGracePeriodSeconds: 0
              containers:
              - {{name: app, image: busybox, command: [sleep, "86400"]}}
        """)


def podctl(env, *args, input=None, check=True):
    r = subprocess.run([sys.executable, "-m", "orchestrator.cli", *args], env=env, input=input,
                       capture_output=True, text=True, timeout=300)
    if check and r.returncode not in (0, 1):
        raise SystemExit(f"podctl {' '.join(args)} -> {r.returncode}\n{r.stdout}\n{r.stderr}")
    return r


def live_pods(db: Path) -> list[tuple[str, str, str | None]]:
    """(uid, name, node) of the deployment's live pods."""
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5) as c:
        return c.execute("SELECT uid, name, node FROM pods WHERE owner_kind = 'Deployment'"
                         " AND deletion_requested_at IS NULL").fetchall()


def started(db: Path, uids: list[str]) -> bool:
    if not uids:
        return False
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5) as c:
        marks = ",".join("?" * len(uids))
        n = c.execute(f"SELECT COUNT(DISTINCT uid) FROM events WHERE reason = 'Started' AND uid IN ({marks})",
                      uids).fetchone()[0]
    return n == len(uids)


def wait(cond, timeout: float, step: float = 0.02):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        v = cond()
        if v:
            return v
        time.sleep(step)
    return None


def one_run(home: Path, env, replicas: int) -> float:
    db = home / "state.db"
    before = live_pods(db)
    counts: dict[str, int] = {}
    for _, _, node in before:
        counts[node] = counts.get(node, 0) + 1
    victim = max(sorted(counts), key=lambda n: counts[n])
    lost = {uid for uid, _, node in before if node == victim}
    t0 = time.monotonic()
    lab.host_crash(home, victim)

    def replaced():
        now = [(u, n) for u, _, n in live_pods(db) if u not in lost]
        fresh = [u for u, n in now if u not in {b[0] for b in before}]
        return (len(now) == replicas and all(n and n != victim for u, n in now if u in fresh)
                and len(fresh) >= len(lost) and started(db, fresh))

    if not wait(replaced, 60):
        raise SystemExit(f"replacements for {victim} not Running within 60 s")
    took = time.monotonic() - t0
    print(f"  crash of {victim} ({len(lost)} of {replicas} replicas): all Running elsewhere after {took:.2f} s")
    lab.host_start(home, victim)

    def clean():
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5) as c:
            return c.execute("SELECT COUNT(*) FROM pods WHERE deletion_requested_at IS NOT NULL").fetchone()[0] == 0

    if not wait(clean, 60, 0.2):
        raise SystemExit(f"stale copies on {victim} not cleaned within 60 s of its return")
    return took


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--hosts", type=int, default=4)
    ap.add_argument("--replicas", type=int, default=8)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--interval", type=float, default=1.0)
    args = ap.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("bench/failover.py needs root (it runs a lab)")
    lock = open(LOCK, "a")
    fcntl.flock(lock, fcntl.LOCK_EX)
    home = Path(tempfile.mkdtemp(prefix="podctl-bench-failover-"))
    env = {**os.environ, "PODCTL_HOME": str(home)}
    watch = None
    results = []
    try:
        lab.lab_up(home, args.hosts)
        build_busybox_image(ImageStore(home / "images"))
        podctl(env, "apply", "-f", "-", input=manifest(args.replicas))
        for _ in range(5):
            if "nothing to do" in podctl(env, "reconcile", check=False).stdout:
                break
        watch = subprocess.Popen([sys.executable, "-m", "orchestrator.cli", "-q", "reconcile", "--watch",
                                  "--interval", str(args.interval), "--for", "900"],
                                 env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(3)
        print(f"failover under `reconcile --watch --interval {args.interval:g}`, {args.hosts} lab hosts, "
              f"Deployment of {args.replicas}:")
        for _ in range(args.runs):
            results.append(one_run(home, env, args.replicas))
            time.sleep(2)
    finally:
        if watch is not None:
            watch.send_signal(signal.SIGTERM)
            try:
                watch.wait(30)
            except subprocess.TimeoutExpired:
                watch.kill()
                watch.wait()
        podctl(env, "keeper", "stop", check=False)
        lab.lab_down(home)
    print(f"crash -> all its Deployment pods Running elsewhere: median {statistics.median(results):.2f} s, "
          f"max {max(results):.2f} s over {len(results)} runs (goal <= 5 s; Kubernetes' defaults ~350 s, "
          f"Nomad ~20-30 s); load avg {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")


if __name__ == "__main__":
    main()
