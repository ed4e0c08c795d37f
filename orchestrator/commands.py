"""The verbs behind the CLI: each gathers inputs, calls the controller, prints results.

Printing is done here (rich tables on a terminal, plain columns otherwise), so cli.py
only parses flags and the controller only decides and acts.
"""

from __future__ import annotations

import asyncio
import json
import shlex
import sys
import time
from pathlib import Path

import click
import yaml

from .config import Config, network_settings
from .controller import (Controller, RunReport, host_capacity, open_store, open_transport, probe_hosts, require_inventory, row_pod, stored_pod)
from .errors import LockHeld, UsageError
from .images import ImageStore
from .image_puller import waiting_for_pods
from .manifests import load_manifests
from .model import Manifest, Pod
from .podnet import VXLAN_DEV, desired_networks, node_ip_of, port_bindings
from .quantity import display_memory, format_cpu, format_memory
from .ephemeral import describe_lines as ephemeral_lines
from .store import Store
from .views import POD_HEADERS, POD_WIDE_HEADERS, age, as_output, pod_object, pod_row_columns
from .workloads.common import from_store, template_hash
from .workloads.deployment import (RolloutError, current_revision, deployment_hash, rollout_history,
                                   rollout_status, rollout_undo)
from .workloads.run import workload_from_doc
from .workloads.views import (daemonset_row, deployment_row, job_row, statefulset_row,
                              workload_object)
from .workloads.views import headers as workload_headers

KINDS = {"pod": "pods", "pods": "pods", "po": "pods", "host": "hosts", "hosts": "hosts",
         "node": "hosts", "nodes": "hosts", "no": "hosts",
         "deployment": "deployments", "deployments": "deployments", "deploy": "deployments",
         "job": "jobs", "jobs": "jobs", "daemonset": "daemonsets", "daemonsets": "daemonsets",
         "ds": "daemonsets", "statefulset": "statefulsets", "statefulsets": "statefulsets",
         "sts": "statefulsets", "configmap": "configmaps", "configmaps": "configmaps",
         "cm": "configmaps", "secret": "secrets", "secrets": "secrets"}
# The plural resource name -> the object kind the store keeps.
OBJECT_KINDS = {"deployments": "Deployment", "jobs": "Job", "daemonsets": "DaemonSet",
                "statefulsets": "StatefulSet", "configmaps": "ConfigMap", "secrets": "Secret"}


def _object_ref(kind: str) -> str:
    """kubectl's `kind.group` spelling of a kind (core kinds have no group)."""
    if kind in ("ConfigMap", "Secret"):
        return kind.lower()
    return f"{kind.lower()}.{'batch' if kind == 'Job' else 'apps'}"


def normalize_kind(kind: str) -> str:
    try:
        return KINDS[kind.lower()]
    except KeyError:
        raise UsageError(f"unknown resource type {kind!r} (supported: pods, deployments, jobs, "
                         f"daemonsets, statefulsets, configmaps, secrets, hosts)") from None


def split_target(kind: str, name: str | None) -> tuple[str, str | None]:
    """kubectl's two spellings: `deployment web` and `deployment/web`."""
    if "/" in kind and name is None:
        kind, name = kind.split("/", 1)
    return normalize_kind(kind), name


def print_table(headers: list[str], rows: list[list[str]]) -> None:
    """kubectl-style columns: left-aligned, two spaces apart, no borders."""
    widths = [max(len(str(x)) for x in col) for col in zip(headers, *rows)] if rows else [len(h) for h in headers]
    for line in [headers, *rows]:
        click.echo("   ".join(str(v).ljust(w) for v, w in zip(line, widths)).rstrip())


def _print_report(report: RunReport, quiet: bool, verbose: bool = False) -> None:
    plan = report.plan
    problems = []
    for name, snap in sorted(report.snapshots.items()):
        if snap.status != "ok":
            problems.append(f"host {name}: {snap.status}: {snap.error}")
    for name, r in sorted(report.hosts.items()):
        if r.status != "ok":
            problems.append(f"host {name}: {r.status}: {r.error}")
    if not quiet:
        if plan.empty:
            click.echo("nothing to do: everything is as desired")
        else:
            click.echo(f"plan: {plan.summary()}")
            for a in plan.actions:
                if a.verb != "forget":
                    click.echo(f"  {a.describe()}")
        for note in plan.notes:
            click.echo(f"note: {note}")
        if verbose:
            if report.placements:
                from .scheduler import describe

                click.echo("placements (per host: the filter that rejected it, or each scorer's score x weight):")
            for p in report.placements:
                click.echo(describe(p))
    else:
        problems += [n for n in plan.notes if "Pending" in n]
    for line in problems:
        click.echo(line, err=True)


def _run(config: Config, dry_run: bool, progress: bool = False, explain: str = "chosen"):
    """One controller run; on a terminal (and not -q) a progress line on stderr."""
    if not progress or not sys.stderr.isatty():
        return asyncio.run(Controller(config, explain=explain).run(dry_run=dry_run))
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn

    with Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                  console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task("probing hosts", total=None)

        def on_plan(plan):
            bar.update(task, description=f"applying: {plan.summary()}", total=len(plan.hosts()), completed=0)

        def on_host_done(report):
            bar.advance(task)

        return asyncio.run(Controller(config).run(dry_run=dry_run, on_plan=on_plan, on_host_done=on_host_done))


def reconcile(config: Config, quiet: bool, as_json: bool) -> int:
    report = _run(config, dry_run=False, progress=not (quiet or as_json))
    if as_json:
        click.echo(json.dumps(report_json(report), indent=2))
    else:
        _print_report(report, quiet)
    return report.exit_code


def plan(config: Config, verbose: bool) -> int:
    report = _run(config, dry_run=True, explain="full" if verbose else "chosen")
    _print_report(report, quiet=False, verbose=verbose)
    return 0 if report.plan.empty else 1


def report_json(report: RunReport) -> dict:
    return {
        "exitCode": report.exit_code,
        "plan": [a.__dict__ for a in report.plan.actions],
        "notes": list(report.plan.notes),
        "hosts": {name: {"probe": snap.status, "error": snap.error,
                         "execute": report.hosts[name].status if name in report.hosts else None,
                         "executeError": report.hosts[name].error if name in report.hosts else ""}
                  for name, snap in sorted(report.snapshots.items())},
        "pending": report.pending,
        "placements": [{"pod": p.key, "host": p.host, "message": p.message, "feasibleHosts": p.feasible,
                        "score": p.score.total if p.score else None,
                        "scores": {name: {"score": v, "weight": w} for name, v, w in p.score.scores} if p.score else {}}
                       for p in report.placements],
    }


# ---------------------------------------------------------------- apply / delete


def record(store: Store, manifests: list[Manifest], now: float) -> list[str]:
    """Write validated objects to the desired state; returns kubectl-style lines."""
    lines = []
    with store.transaction():
        for m in manifests:
            if m.kind in ("ConfigMap", "Secret"):
                from .configobjects import data_changed, stored_doc
                old = store.get_object(m.kind, m.namespace, m.name)
                doc = stored_doc(m.raw, m.obj)
                if old is not None and old.doc.get("immutable") and data_changed(old.doc, doc):
                    raise UsageError(f'{m.source}: The {m.kind} "{m.name}" is invalid: data: Forbidden: '
                                     "field is immutable when `immutable` is set")
                row = store.put_object(m.kind, m.namespace, m.name, doc, now)
                verb = "created" if old is None else ("configured" if row.generation != old.generation
                                                      else "unchanged")
                lines.append(f"{m.kind.lower()}/{m.name} {verb}")
                continue
            if m.kind in OBJECT_KINDS.values():
                old = store.get_object(m.kind, m.namespace, m.name)
                row = store.put_object(m.kind, m.namespace, m.name, dict(m.raw), now)
                verb = "created" if old is None else ("configured" if row.generation != old.generation
                                                      else "unchanged")
                lines.append(f"{m.kind.lower()}.{'batch' if m.kind == 'Job' else 'apps'}/{m.name} {verb}")
                continue
            if m.kind != "Pod":  # manifests.py rejects kinds it does not know
                raise UsageError(f"{m.source}: kind {m.kind} is not supported")
            pod: Pod = m.obj
            store.put_object("Pod", m.namespace, m.name, dict(m.raw), now)
            row = store.get_pod(m.namespace, m.name)
            if row is None or row.deleting:
                store.add_pod(m.namespace, m.name, dict(m.raw), now)
                lines.append(f"pod/{m.name} created")
            elif row_pod(row).spec != pod.spec:
                # A pod's spec is immutable in Kubernetes: a new spec is a new pod.
                store.replace_pod(m.namespace, m.name, dict(m.raw), now)
                lines.append(f"pod/{m.name} replaced (spec changed: the old pod is deleted)")
            else:
                lines.append(f"pod/{m.name} unchanged")
    return lines


def apply(config: Config, files: list[Path], reconcile: bool, quiet: bool) -> int:
    manifests = load_manifests(files)  # validates everything before anything changes
    if not manifests:
        raise UsageError("no objects found in " + ", ".join(map(str, files)))
    if reconcile:
        require_inventory(config)
    with open_store(config) as store:
        lines = record(store, manifests, time.time())
    if not quiet:
        for line in lines:
            click.echo(line)
    if not reconcile:
        return 0
    try:
        report = _run(config, dry_run=False)
    except LockHeld as exc:
        # The objects are recorded: the run that holds the lock (or the next) acts on them.
        raise LockHeld(f"{exc}\nthe objects above are recorded; the running reconcile or the next one "
                       f"will act on them") from exc
    _print_report(report, quiet=True)
    return report.exit_code


def delete(config: Config, kind: str | None, name: str | None, files: list[Path], namespace: str,
           reconcile: bool, quiet: bool) -> int:
    if files:
        targets = [(m.kind, m.namespace, m.name) for m in load_manifests(files)]
    else:
        plural, name = split_target(kind or "", name)
        if plural == "hosts" or not name:
            raise UsageError("usage: podctl delete pod|deployment|job|daemonset|statefulset NAME")
        targets = [(OBJECT_KINDS.get(plural, "Pod"), namespace, name)]
    now = time.time()
    lines, missing = [], []
    with open_store(config) as store:
        with store.transaction():
            for kind, ns, n in targets:
                if kind == "Pod":
                    row = store.get_pod(ns, n)
                    store.delete_object("Pod", ns, n)
                    if row is None or row.deleting:
                        missing.append(("pods", n))
                        continue
                    store.request_delete(row.uid, now)
                    lines.append(f'pod "{n}" deleted')
                    continue
                obj = store.get_object(kind, ns, n)
                if obj is None:
                    missing.append((kind.lower() + "s", n))
                    continue
                # Kubernetes' default cascade: the object's pods go with it.
                for row in store.list_pods(owner_uid=obj.uid):
                    if not row.deleting:
                        store.request_delete(row.uid, now)
                store.delete_object(kind, ns, n)
                lines.append(f'{_object_ref(kind)} "{n}" deleted')
    for line in lines if not quiet else []:
        click.echo(line)
    for plural, n in missing:
        click.echo(f'Error from server (NotFound): {plural} "{n}" not found', err=True)
    code = 0
    if reconcile and lines:
        report = _run(config, dry_run=False)
        _print_report(report, quiet=True)
        code = report.exit_code
    return code if not missing else max(code, 1)


# ---------------------------------------------------------------- get / describe


def _live_pods(config: Config, namespace: str | None, name: str | None):
    """Stored pods with what their hosts report now (one probe per involved host)."""
    inventory = require_inventory(config)
    with open_store(config) as store:
        rows = [r for r in store.list_pods(namespace=namespace) if name is None or r.name == name]
        events = {r.uid: store.list_events(uid=r.uid) for r in rows} if name else {}
        unscheduled = {r.uid: _last_failed_scheduling(events[r.uid] if name else store.list_events(uid=r.uid, limit=20))
                       for r in rows if r.node is None}
        from . import podconfig
        objects = podconfig.load_objects(store)
    hosts = [h for h in inventory.hosts if any(r.node == h.name for r in rows)]

    async def probe():
        async with open_transport(config, inventory) as t:
            return await probe_hosts(t, hosts, config.probe_timeout)

    snaps = asyncio.run(probe()) if hosts else {}
    images = ImageStore(config.images_dir)
    pods = [(r, row_pod(r)) for r in rows]
    with open_store(config) as store:
        waiting = waiting_for_pods(store, images, pods, time.time())
    objs = []
    for r, pod in pods:
        host = inventory.get(r.node) if r.node else None
        missing = podconfig.problem(pod, r.uid, objects)
        objs.append((r, pod, pod_object(r, pod, snaps.get(r.node or ""), host.address if host else None,
                                        pending_message=unscheduled.get(r.uid, ""),
                                        image_waiting=waiting.get(r.uid, {}),
                                        config_error=(missing.reason, missing.message) if missing else None)))
    return objs, snaps, events


def _last_failed_scheduling(events) -> str:
    """The scheduler's latest 'why not' for a pod (FailedScheduling events)."""
    failed = [e for e in events if e.reason == "FailedScheduling"]
    return max(failed, key=lambda e: e.id).message if failed else ""


def get_pods(config: Config, name: str | None, namespace: str | None, output: str | None) -> int:
    objs, snaps, _ = _live_pods(config, namespace, name)
    if name and not objs:
        click.echo(f'Error from server (NotFound): pods "{name}" not found', err=True)
        return 1
    items = [o for _, _, o in objs]
    if output in ("json", "yaml"):
        click.echo(as_output(items, bool(name), output))
    elif output == "name":
        for o in items:
            click.echo(f"pod/{o['metadata']['name']}")
    elif not items:
        click.echo("No resources found", err=True)
    else:
        wide = output == "wide"
        print_table(POD_WIDE_HEADERS if wide else POD_HEADERS, [pod_row_columns(o, wide) for o in items])
    return 2 if any(s.status != "ok" for s in snaps.values()) else 0


def get_workloads(config: Config, plural: str, name: str | None, namespace: str | None,
                  output: str | None) -> int:
    kind = OBJECT_KINDS[plural]
    with open_store(config) as store:
        rows = [o for o in store.list_objects(kind=kind, namespace=namespace) if name is None or o.name == name]
    if name and not rows:
        click.echo(f'Error from server (NotFound): {plural} "{name}" not found', err=True)
        return 1
    now = time.time()
    if output in ("json", "yaml"):
        items = []
        for o in rows:
            obj = workload_from_doc(o.doc, f"state.db {kind} {o.namespace}/{o.name}")
            history = from_store(o.status)[1]
            revision = current_revision(history, obj) if kind == "Deployment" else None
            items.append(workload_object(o.doc, uid=o.uid, created_at=o.created_at, generation=o.generation,
                                         status=from_store(o.status)[0], revision=revision))
        click.echo(as_output(items, bool(name), output))
        return 0
    if output == "name":
        for o in rows:
            click.echo(f"{kind.lower()}.{'batch' if kind == 'Job' else 'apps'}/{o.name}")
        return 0
    if not rows:
        click.echo("No resources found", err=True)
        return 0
    row_of = {"Deployment": deployment_row, "Job": job_row, "DaemonSet": daemonset_row,
              "StatefulSet": statefulset_row}[kind]
    wide = output == "wide"
    table = []
    for o in rows:
        obj = workload_from_doc(o.doc, f"state.db {kind} {o.namespace}/{o.name}")
        table.append(row_of(obj, from_store(o.status)[0], created_at=o.created_at, now=now, wide=wide))
    print_table(workload_headers(kind, wide), table)
    return 0


def rollout(config: Config, action: str, target: str, namespace: str, to_revision: int | None,
            timeout: float, watch: bool) -> int:
    plural, name = split_target(target, None)
    if plural != "deployments" or not name:
        raise UsageError("rollout supports deployment/NAME")
    with open_store(config) as store:
        row = store.get_object("Deployment", namespace, name)
    if row is None:
        click.echo(f'Error from server (NotFound): deployments.apps "{name}" not found', err=True)
        return 1
    dep = workload_from_doc(row.doc, f"state.db Deployment {namespace}/{name}")
    if action == "undo":
        return _rollout_undo(config, row, dep, to_revision)
    if action == "history":
        click.echo(f"deployment.apps/{name}\nREVISION  CHANGE-CAUSE")
        for revision, cause in rollout_history(from_store(row.status)[1]):
            click.echo(f"{revision:<9} {cause or '<none>'}")
        return 0
    # status: reconcile until the rollout is done (or the deadline), like kubectl's wait.
    deadline = time.monotonic() + timeout
    while True:
        with open_store(config) as store:
            row = store.get_object("Deployment", namespace, name)
        dep = workload_from_doc(row.doc, f"state.db Deployment {namespace}/{name}")
        try:
            done, message = rollout_status(dep, from_store(row.status)[0], row.generation)
        except RolloutError as exc:
            click.echo(f"error: {exc}", err=True)
            return 1
        click.echo(message)
        if done or not watch:
            return 0 if done else 1
        if time.monotonic() > deadline:
            click.echo(f"error: timed out waiting for the rollout of deployment {name}", err=True)
            return 1
        try:
            _run(config, dry_run=False)
        except LockHeld:
            pass  # another run is reconciling: just wait for it
        time.sleep(1.0)


def _rollout_undo(config: Config, row, dep, to_revision: int | None) -> int:
    if dep.paused:
        raise UsageError(f"deployment {dep.name} is paused: resume it before undoing its rollout")
    history = from_store(row.status)[1]
    template = rollout_undo(history, to_revision, dep.name)
    if template_hash(template, ignore_labels=("pod-template-hash",)) == deployment_hash(dep):
        click.echo(f"deployment.apps/{dep.name} skipped rollback (current template already matches revision)")
        return 0
    doc = json.loads(json.dumps(row.doc))
    doc["spec"]["template"] = template
    # Validate what we are about to store, exactly as apply would.
    workload_from_doc(doc, f"rollback of deployment {dep.name}")
    with open_store(config) as store:
        store.put_object("Deployment", row.namespace, row.name, doc, time.time())
    click.echo(f"deployment.apps/{dep.name} rolled back")
    report = _run(config, dry_run=False)
    _print_report(report, quiet=True)
    return report.exit_code


def describe_pod(config: Config, name: str, namespace: str) -> int:
    objs, snaps, events = _live_pods(config, namespace, name)
    if not objs:
        click.echo(f'Error from server (NotFound): pods "{name}" not found', err=True)
        return 1
    row, pod, obj = objs[0]
    md, spec, st = obj["metadata"], obj["spec"], obj["status"]
    out = [f"Name:         {md['name']}", f"Namespace:    {md.get('namespace', 'default')}",
           f"Node:         {spec.get('nodeName') or '<none>'}" + (f"/{st['hostIP']}" if st.get("hostIP") else ""),
           f"Start Time:   {md.get('creationTimestamp')}",
           "Labels:       " + (", ".join(f"{k}={v}" for k, v in (md.get("labels") or {}).items()) or "<none>"),
           f"Status:       {st['phase']}" + (f" ({st['reason']})" if st.get("reason") else ""),
           *([f"Message:      {st['message']}"] if st.get("message") else []),
           f"IP:           {st.get('podIP') or '<none>'}", f"UID:          {md['uid']}",
           f"QoS Class:    {st.get('qosClass')}"]
    by_name = {s["name"]: s for s in st["containerStatuses"] + st.get("initContainerStatuses", [])}
    inits = {c.name for c in pod.spec.init_containers}
    for c in pod.spec.all_containers():
        if c.name == (pod.spec.init_containers or pod.spec.containers)[0].name:
            out.append("Init Containers:" if c.name in inits else "Containers:")
        elif c.name == pod.spec.containers[0].name:
            out.append("Containers:")
        s = by_name.get(c.name, {})
        state = s.get("state") or {}
        kind = next(iter(state), "waiting")
        detail = state.get(kind) or {}
        out.append(f"  {c.name}:")
        out.append(f"    Image:          {c.image}")
        out.append(f"    State:          {kind.capitalize()}" + (f" ({detail.get('reason')})" if detail.get("reason") else ""))
        for key in ("startedAt", "finishedAt", "exitCode", "message"):
            if key in detail:
                out.append(f"      {key}: {detail[key]}")
        last = s.get("lastState") or {}
        if last:
            lk = next(iter(last))
            ld = last[lk]
            out.append(f"    Last State:     {lk.capitalize()} ({ld.get('reason')}, exit {ld.get('exitCode')})")
        out.append(f"    Ready:          {s.get('ready', False)}")
        out.append(f"    Restart Count:  {s.get('restartCount', 0)}")
        if c.limits.cpu_m or c.limits.memory:
            out.append(f"    Limits:         cpu={format_cpu(c.limits.cpu_m or 0)} memory={format_memory(c.limits.memory or 0)}")
        if c.requests.cpu_m or c.requests.memory:
            out.append(f"    Requests:       cpu={format_cpu(c.requests.cpu_m or 0)} memory={format_memory(c.requests.memory or 0)}")
    out += ephemeral_lines(spec.get("ephemeralContainers") or [], st.get("ephemeralContainerStatuses") or [])
    out.append("Conditions:")
    out += [f"  {c['type']:<16}{c['status']}" for c in st["conditions"]]
    out.append("Events:")
    evs = events.get(row.uid) or []
    out += [f"  {e.type:<8}{e.reason:<18}{age(e.at)} ago  {e.message}" for e in evs] or ["  <none>"]
    click.echo("\n".join(out))
    return 0


def hosts(config: Config, output: str | None) -> int:
    items, snaps = _host_items(config)
    if output in ("json", "yaml"):
        doc = {"kind": "HostList", "items": items}
        click.echo(json.dumps(doc, indent=2) if output == "json" else yaml.safe_dump(doc, sort_keys=False))
    else:
        headers = ["NAME", "STATUS", "ADDRESS", "CPU", "MEMORY", "CPU-REQ", "MEM-REQ", "PODS", "POD-CIDR"]
        wide = output == "wide"
        headers += ["NODE-IP"] if wide else []
        print_table(headers, [[i["name"], i["status"], i["address"], i["cpu"], i["memory"], i["cpuRequested"],
                               i["memoryRequested"], str(i["pods"]), i["podCIDR"]]
                              + ([i["nodeIP"] or "<none>"] if wide else []) for i in items])
    return 0 if all(s.reachable for s in snaps.values()) else 2


def describe_host(config: Config, name: str) -> int:
    """A host: address, node IP, pod CIDR, and its pod network (routes, hostPorts) as
    podnet computes it, with whether the host has applied it."""
    items, _ = _host_items(config)
    item = next((i for i in items if i["name"] == name), None)
    if item is None:
        raise UsageError(f'hosts "{name}" not found in the inventory')
    inventory = require_inventory(config)
    with open_store(config) as store:
        cidrs = {h.name: (store.get_host(h.name).pod_cidr if store.get_host(h.name) else None) or h.pod_cidr
                 for h in inventory.hosts}
        live = sorted((r for r in store.list_pods() if not r.deleting), key=lambda r: (r.created_at, r.key))
        bindings = port_bindings((r.node, r.key, r.pod_ip, row_pod(r)) for r in live)
    nets, notes = desired_networks(list(inventory.hosts), cidrs, bindings, settings=network_settings(config))
    net = nets.get(name)
    out = [f"Name:         {name}", f"Status:       {item['status']}", f"Address:      {item['address']}",
           f"Node IP:      {item['nodeIP'] or '<none>'}", f"Pod CIDR:     {item['podCIDR'] or '<none>'}",
           f"Capacity:     cpu={item['cpu']} memory={item['memory']}",
           f"Allocated:    cpu={item['cpuRequested']} memory={item['memoryRequested']} pods={item['pods']}",
           "Pod network:"]
    if net is not None:
        applied = item["netDigest"]
        state = "applied" if applied == net.digest else f"not applied (host has {applied or 'none'})"
        out.append(f"  Digest:     {net.digest} ({state})")
        out.append(f"  Mode:       {net.settings.mode}" + (f" ({VXLAN_DEV}, VNI {net.settings.vni}, UDP port "
                                                                f"{net.settings.vxlan_port})" if net.vxlan else ""))
        out += [f"  Route:      {r.dest} via {r.via} ({r.peer})" for r in net.routes] or ["  Route:      <none>"]
        out += [f"  HostPort:   {p.host_port}/{p.protocol} -> {p.pod_ip}:{p.container_port} ({p.pod})"
                for p in net.ports]
    out += [f"  Note:       {n}" for n in notes if n.startswith(f"host {name}:")]
    click.echo("\n".join(out))
    return 0


def _host_items(config: Config):
    inventory = require_inventory(config)

    async def probe():
        async with open_transport(config, inventory) as t:
            return await probe_hosts(t, list(inventory.hosts), config.probe_timeout)

    snaps = asyncio.run(probe())
    with open_store(config) as store:
        rows = [r for r in store.list_pods() if not r.deleting]
        pods = [(r, row_pod(r)) for r in rows]
        stored = {h.name: h for h in store.list_hosts()}
        cidrs = {name: h.pod_cidr for name, h in stored.items()}
    items = []
    for h in inventory.hosts:
        snap = snaps[h.name]
        cap = host_capacity(h, snap)
        bound = [p for r, p in pods if r.node == h.name]
        row = stored.get(h.name)
        health = row.health if row is not None and row.health in ("Ready", "Suspect", "NotReady") else None
        status = (health or "Ready") if snap.reachable else (
            f"{health}({snap.status})" if health and health != "Ready" else snap.status)
        status += ",SchedulingDisabled" if row is not None and row.cordoned else ""
        status += ",Fenced" if row is not None and row.fenced_at is not None else ""
        items.append({
            "name": h.name, "address": f"{h.address}:{h.port}", "status": status,
            "health": health, "probe": snap.status,
            "cordoned": bool(row is not None and row.cordoned),
            "fenced": bool(row is not None and row.fenced_at is not None),
            "cpu": format_cpu(cap.cpu_m), "memory": display_memory(cap.memory),
            "cpuRequested": format_cpu(sum(p.spec.requests().cpu_m or 0 for p in bound)),
            "memoryRequested": display_memory(sum(p.spec.requests().memory or 0 for p in bound)),
            "pods": len(bound), "running": sum(1 for p in snap.pods.values() if p.state == "alive"),
            "podCIDR": cidrs.get(h.name) or h.pod_cidr or "", "nodeIP": node_ip_of(h)[0] or "",
            "netDigest": snap.facts.get("net_digest", ""), "labels": dict(h.labels),
            "error": snap.error})
    return items, snaps


# ---------------------------------------------------------------- logs / exec


def _locate(config: Config, pod: str, namespace: str, container: str | None):
    inventory = require_inventory(config)
    row, spec = stored_pod(config, namespace, pod)
    names = [c.name for c in spec.spec.containers + spec.spec.init_containers]
    if container is None:
        if len(names) > 1:
            click.echo(f'Defaulted container "{names[0]}" out of: {", ".join(names)}', err=True)
        container = names[0]
    elif container not in names:
        raise UsageError(f'container {container} is not valid for pod {pod} (containers: {", ".join(names)})')
    if not row.node:
        raise UsageError(f"pod {pod} is not scheduled to a host yet")
    return inventory, inventory.get(row.node), row, container


def exec_in(config: Config, pod: str, namespace: str, container: str | None, command: list[str],
            interactive: bool) -> int:
    from .remote import exec_command

    inventory, host, row, container = _locate(config, pod, namespace, container)
    return asyncio.run(exec_command(config, inventory, host, row.uid, container, command, interactive))


# ---------------------------------------------------------------- images / lab


def _words(value: str | None) -> list[str] | None:
    if value is None:
        return None
    value = value.strip()
    if value.startswith("["):
        try:
            parsed = json.loads(value)
        except ValueError as exc:
            raise UsageError(f"not a JSON list: {value}") from exc
        if not isinstance(parsed, list) or not all(isinstance(x, str) for x in parsed):
            raise UsageError(f"expected a JSON list of strings: {value}")
        return parsed
    return shlex.split(value)


def image_import(config: Config, ref: str, source: Path, entrypoint: str | None, cmd: str | None,
                 env: list[str], workdir: str | None):
    for e in env:
        if "=" not in e:
            raise UsageError(f"--env {e!r}: expected KEY=VALUE")
    store = ImageStore(config.images_dir)
    return store.import_source(ref, source, entrypoint=_words(entrypoint), cmd=_words(cmd),
                               env=env or None, workdir=workdir)


def image_standins(config: Config):
    from .standins import build_standins

    return build_standins(ImageStore(config.images_dir))


def image_table(config: Config):
    """Every image of the store; SOURCE says whether it was imported (pinned: never
    pulled) or pulled, with the registry and the platform."""
    store = ImageStore(config.images_dir)
    rows = []
    for i in store.list():
        src = (store.inspect(i.ref) or {}).get("source") or {}
        origin = (f"pulled {src.get('registry', '')} {src.get('platform') or ''}".strip()
                  if src.get("kind") == "registry" else "imported")
        rows.append([i.ref, i.digest[:12], display_memory(i.size) if i.size else "0", origin,
                     shlex.join(i.entrypoint + i.cmd)])
    return ["IMAGE", "DIGEST", "SIZE", "SOURCE", "COMMAND"], rows


def image_pull(config: Config, ref: str, platform: str | None):
    """Pull REF into the store now (`podctl image pull`): the host platform of the
    inventory's first reachable host is not known here, so linux/<this machine's arch>
    unless --platform says otherwise. A name imported locally is pinned: refused."""
    import platform as host_platform_mod

    from .image_puller import local_kind
    from .registry import host_platform, pull
    from .registry_config import registry_settings

    settings = registry_settings(config)
    store = ImageStore(config.images_dir)
    if local_kind(store, ref) == "imported":
        raise UsageError(f"{ref} was imported locally (podctl image import): a local import pins the name "
                         "and it is never pulled; remove it first (podctl image rm) to pull it")
    img, changed = pull(store, ref, settings, config.home / "registry",
                        platform or host_platform(host_platform_mod.machine()))
    return img, changed


def lab_up(config: Config, count: int, quiet: bool) -> Path:
    from . import lab

    started = time.monotonic()
    path = lab.lab_up(config.home, count)
    image_standins(config)
    if not quiet:
        click.echo(f"lab: {count} hosts up in {time.monotonic() - started:.1f}s; images busybox:latest "
                   f"and the examples' stand-ins ready (podctl image ls)", err=True)
    return path


def lab_down(config: Config) -> None:
    from . import lab

    lab.lab_down(config.home)


def lab_status_table(config: Config):
    from . import lab

    rows = [[h["name"], h["address"], str(h.get("pid") or "-"), "yes" if h.get("running") else "no",
             "yes" if h.get("reachable") else "no"] for h in lab.lab_status(config.home)]
    return ["NAME", "ADDRESS", "INIT-PID", "RUNNING", "SSH"], rows

