"""Scheduler throughput: placements per second with the full plugin set.

    python bench/scheduler.py --hosts 1000 --pods 5000
    python bench/scheduler.py --hosts 10000 --pods 2000 --order interleaved

Every filter and scorer of registry.py is active and every feasible host is scored
(no sampling: kube-scheduler's percentageOfNodesToScore has no equivalent here). The
cluster and the workload are generated from a fixed seed:

- hosts: 10 zones, 3 sizes, node types (std/highmem/gpu), ssd or hdd; some gpu hosts
  tainted NoSchedule, some PreferNoSchedule, 1% not ready, 1% cordoned; each has a few
  of 24 images;
- pods: from 40 templates (think Deployments), with resource requests, images, and
  a mix of topology spread (ScheduleAnyway and DoNotSchedule), preferred and required
  pod anti-affinity, required pod affinity, required and preferred node affinity,
  nodeSelector + tolerations, host ports, and best-effort pods. `--order grouped`
  (default) places each template's replicas together, as a controller creates them;
  `interleaved` deals them round-robin (the worst case for the template cache).

The time is that of one `schedule()` call: building the indexes from the snapshot and
placing every pod, explanations captured (each Placement's score card is assembled on
first access). Prints the best of --repeat runs, and their median.
"""

from __future__ import annotations

import argparse
import gc
import os
import random
import statistics
import sys
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from orchestrator.model import Taint
from orchestrator.scheduler import (
    LabelSelector,
    NodeSelectorTerm,
    PodAffinityTerm,
    PreferredSchedulingTerm,
    Requirement,
    SchedHost,
    SchedPod,
    SchedulerConfig,
    Snapshot,
    Toleration,
    TopologySpreadConstraint,
    WeightedPodAffinityTerm,
    schedule,
)

GI, MI = 2**30, 2**20
ZONES = [f"zone-{c}" for c in "abcdefghij"]
IMAGES = [f"sha256-{i:02d}" for i in range(24)]
HOSTNAME = "kubernetes.io/hostname"


def make_hosts(n: int, rng: random.Random) -> list[SchedHost]:
    hosts = []
    for i in range(n):
        kind = rng.choices(["std", "highmem", "gpu"], [70, 20, 10])[0]
        cpu, mem = {"std": (32000, 128 * GI), "highmem": (32000, 512 * GI), "gpu": (64000, 256 * GI)}[kind]
        taints = []
        if kind == "gpu" and rng.random() < 0.8:
            taints.append(Taint("dedicated", "gpu", "NoSchedule"))
        if rng.random() < 0.05:
            taints.append(Taint("maintenance", "soon", "PreferNoSchedule"))
        hosts.append(SchedHost(
            name=f"host-{i:05d}",
            labels={"zone": ZONES[i % len(ZONES)], "rack": f"rack-{i // 40:03d}", "node-type": kind,
                    "disk": rng.choice(["ssd", "hdd"]), "generation": str(rng.randint(1, 5))},
            taints=tuple(taints), ready=rng.random() >= 0.01, cordoned=rng.random() < 0.01,
            cpu_m=cpu, memory=mem, pods=110, images=frozenset(rng.sample(IMAGES, 4))))
    return hosts


def make_templates(rng: random.Random, n: int = 40) -> list[tuple[dict, float]]:
    """(SchedPod keyword arguments, share of the pods) for n templates."""
    out = []
    for t in range(n):
        app = f"app-{t:02d}"
        sel = LabelSelector({"app": app})
        kw: dict = {"namespace": ("default", "prod", "batch")[t % 3], "labels": {"app": app, "tier": ("web", "api", "db", "job")[t % 4]},
                    "images": tuple(rng.sample(IMAGES, rng.choice([1, 1, 2])))}
        if t % 20 != 19:  # 5% best-effort
            kw["cpu_m"] = rng.choice([100, 250, 500, 1000, 2000])
            kw["memory"] = rng.choice([128, 256, 512, 1024, 4096]) * MI
        spread = []
        if t % 2 == 0:
            spread.append(TopologySpreadConstraint(1, "zone", "ScheduleAnyway", sel))
        if t % 4 == 1:
            spread.append(TopologySpreadConstraint(2, "zone", "DoNotSchedule", sel))
        if t % 8 == 3:
            spread.append(TopologySpreadConstraint(5, HOSTNAME, "ScheduleAnyway", sel))
        kw["topology_spread"] = tuple(spread)
        if t % 3 == 0:
            kw["preferred_pod_anti_affinity"] = (WeightedPodAffinityTerm(100, PodAffinityTerm(sel, HOSTNAME)),)
        if t % 10 == 2:
            kw["pod_anti_affinity"] = (PodAffinityTerm(sel, HOSTNAME),)
        if t % 10 == 5:
            other = LabelSelector({"app": f"app-{(t - 1) % n:02d}"})
            kw["pod_affinity"] = (PodAffinityTerm(other, "zone", namespaces=("default", "prod", "batch")),)
        if t % 5 == 1:
            kw["required_node_affinity"] = (NodeSelectorTerm((Requirement("node-type", "In", ("std", "highmem")),
                                                               Requirement("generation", "Gt", ("1",)))),)
        if t % 5 == 2:
            kw["preferred_node_affinity"] = (PreferredSchedulingTerm(50, NodeSelectorTerm((Requirement("disk", "In", ("ssd",)),))),
                                             PreferredSchedulingTerm(20, NodeSelectorTerm((Requirement("node-type", "NotIn", ("gpu",)),))))
        if t % 10 == 7:
            kw["node_selector"] = {"node-type": "gpu"}
            kw["tolerations"] = (Toleration("dedicated", "Equal", "gpu", "NoSchedule"),)
        if t % 20 == 11:
            kw["host_ports"] = ((8080 + t, "TCP"),)
        share = 0.3 if "host_ports" in kw or "pod_anti_affinity" in kw else 1.0
        out.append((kw, share))
    return out


def make_pods(m: int, rng: random.Random, order: str) -> list[SchedPod]:
    templates = make_templates(rng)
    total = sum(s for _, s in templates)
    counts = [max(1, round(m * s / total)) for _, s in templates]
    while sum(counts) > m:
        counts[counts.index(max(counts))] -= 1
    while sum(counts) < m:
        counts[counts.index(min(counts))] += 1
    per_template = []
    for t, ((kw, _), c) in enumerate(zip(templates, counts)):
        ns = kw["namespace"]
        per_template.append([SchedPod(key=f"{ns}/app-{t:02d}-{r:05d}", **kw) for r in range(c)])
    if order == "grouped":
        return [p for group in per_template for p in group]
    out, i = [], 0
    while len(out) < m:
        for group in per_template:
            if i < len(group):
                out.append(group[i])
        i += 1
    return out


def features(pods: list[SchedPod]) -> Counter:
    c = Counter()
    for p in pods:
        c["requests"] += bool(p.cpu_m or p.memory)
        c["spread ScheduleAnyway"] += any(x.when_unsatisfiable == "ScheduleAnyway" for x in p.topology_spread)
        c["spread DoNotSchedule"] += any(x.when_unsatisfiable == "DoNotSchedule" for x in p.topology_spread)
        c["preferred anti-affinity"] += bool(p.preferred_pod_anti_affinity)
        c["required anti-affinity"] += bool(p.pod_anti_affinity)
        c["required affinity"] += bool(p.pod_affinity)
        c["required node affinity"] += p.required_node_affinity is not None
        c["preferred node affinity"] += bool(p.preferred_node_affinity)
        c["nodeSelector+tolerations"] += bool(p.node_selector)
        c["host ports"] += bool(p.host_ports)
        c["images"] += bool(p.images)
    return c


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--hosts", type=int, default=1000)
    ap.add_argument("--pods", type=int, default=5000)
    ap.add_argument("--order", choices=["grouped", "interleaved"], default="grouped")
    ap.add_argument("--strategy", choices=["LeastAllocated", "MostAllocated"], default="LeastAllocated")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--profile", action="store_true", help="print a cProfile of one run")
    args = ap.parse_args()

    rng = random.Random(args.seed)
    snapshot = Snapshot(tuple(make_hosts(args.hosts, rng)))
    pods = make_pods(args.pods, rng, args.order)
    config = SchedulerConfig(scoring_strategy=args.strategy)
    if args.profile:
        import cProfile
        import pstats
        cProfile.runctx("schedule(pods, snapshot, config)", globals(), locals(), "/tmp/sched.prof")
        pstats.Stats("/tmp/sched.prof").sort_stats("tottime").print_stats(25)
        return 0
    walls, cpus, placements = [], [], None
    for _ in range(args.repeat):
        placements = None  # each run starts from the same process state
        gc.collect()
        t0, c0 = time.perf_counter(), time.process_time()
        placements = schedule(pods, snapshot, config)
        walls.append(time.perf_counter() - t0)
        cpus.append(time.process_time() - c0)
    best, best_cpu, median = min(walls), min(cpus), statistics.median(walls)
    placed = sum(1 for p in placements if p.host)
    assert all(p.score is not None for p in placements if p.host)  # every card assembles
    feats = features(pods)
    print(f"hosts={args.hosts} pods={args.pods} order={args.order} strategy={args.strategy} "
          f"templates=40 repeat={args.repeat}")
    print("pods using: " + ", ".join(f"{k} {v}" for k, v in feats.items()))
    print(f"placed={placed} pending={len(placements) - placed} "
          f"mean feasible hosts per placed pod={sum(p.feasible for p in placements if p.host) / max(placed, 1):.0f}")
    print(f"best of {args.repeat}: {best:.3f} s wall  ->  {len(pods) / best:,.0f} placements/s "
          f"(median {len(pods) / median:,.0f}/s; best CPU time {best_cpu:.3f} s -> {len(pods) / best_cpu:,.0f}/s; "
          f"load average {os.getloadavg()[0]:.1f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
