"""The DaemonSet controller: one pod per eligible host, pinned with spec.nodeName.

Eligibility is Kubernetes' NodeShouldRunDaemonPod: the template's nodeName (if any),
nodeSelector and required node affinity must match, and every NoSchedule/NoExecute taint of the host must be
tolerated by the template's tolerations plus the ones Kubernetes adds to every
DaemonSet pod (not-ready and unreachable NoExecute; disk/memory/pid-pressure and
unschedulable NoSchedule). A host that fails only on a NoSchedule taint keeps a pod it
already runs (shouldContinueRunning) but gets no new one: a not-ready host keeps its
pod, a host whose labels stop matching loses it. Pods on hosts that left the inventory
are deleted.

As in Kubernetes, a host gets its new pod only once its old one is gone (the caller
forgets deleted pods when their host confirms), and a rolling update (maxUnavailable
hosts at a time) runs only in a step where nothing else had to be created or deleted.
"""

from __future__ import annotations

import random
from typing import Mapping, Sequence

from .common import (
    HostInfo,
    OwnedPod,
    PodToCreate,
    WorkloadDecision,
    _Builder,
    pod_manifest,
    record_revision,
    template_hash,
    trim_history,
)
from .specs import DaemonSet, Toleration, untolerated

HASH_LABEL = "controller-revision-hash"

# AddOrUpdateDaemonPodTolerations: what every DaemonSet pod tolerates
DAEMON_TOLERATIONS = (
    Toleration("node.kubernetes.io/not-ready", "Exists", "", "NoExecute"),
    Toleration("node.kubernetes.io/unreachable", "Exists", "", "NoExecute"),
    Toleration("node.kubernetes.io/disk-pressure", "Exists", "", "NoSchedule"),
    Toleration("node.kubernetes.io/memory-pressure", "Exists", "", "NoSchedule"),
    Toleration("node.kubernetes.io/pid-pressure", "Exists", "", "NoSchedule"),
    Toleration("node.kubernetes.io/unschedulable", "Exists", "", "NoSchedule"),
)


def daemonset_hash(ds: DaemonSet) -> str:
    return template_hash(ds.template, ignore_labels=(HASH_LABEL,))


def eligibility(ds: DaemonSet, host: HostInfo) -> tuple[bool, bool, str]:
    """(should run, should continue running, why not) for `host`."""
    spec = ds.template.spec
    if spec.node_name and spec.node_name != host.name:
        return False, False, f"the template's nodeName is {spec.node_name}"
    labels = dict(host.labels)
    if any(labels.get(k) != v for k, v in spec.node_selector):
        return False, False, "host labels do not match the template's nodeSelector"
    if not _fits_node_affinity(ds, host):
        return False, False, "host does not match the template's required node affinity"
    tolerations = ds.template.tolerations + DAEMON_TOLERATIONS
    taints = host.effective_taints()
    taint = untolerated(taints, tolerations)
    if taint is None:
        return True, True, ""
    value = f"={taint.value}" if taint.value else ""
    why = f"untolerated taint {{{taint.key}{value}: {taint.effect}}}"
    return False, untolerated(taints, tolerations, ("NoExecute",)) is None, why


def _fits_node_affinity(ds: DaemonSet, host: HostInfo) -> bool:
    """The template's requiredDuringScheduling node affinity, read as the scheduler reads
    it (a host matches one term; its name is its kubernetes.io/hostname label unless set)."""
    raw_spec = ds.template.raw.get("spec") if isinstance(ds.template.raw, Mapping) else None
    if not isinstance(raw_spec, Mapping) or not (raw_spec.get("affinity") or {}).get("nodeAffinity"):
        return True
    from ..scheduler.kube import required_node_terms  # the scheduler (NumPy) only when needed
    from ..scheduler.types import HOSTNAME_LABEL

    terms = required_node_terms(raw_spec)
    if terms is None:
        return True
    labels = {HOSTNAME_LABEL: host.name, **dict(host.labels)}
    return any(t.matches(labels, host.name) for t in terms)


def reconcile_daemonset(ds: DaemonSet, pods: Sequence[OwnedPod], hosts: Sequence[HostInfo],
                        now: float, *, history: Sequence[Mapping] = (),
                        generation: int | None = None,
                        rng: random.Random | None = None) -> WorkloadDecision:
    """One step of `ds` over the inventory `hosts`, given every pod it owns (its host
    is where the pod is bound or pinned: store node, else spec.nodeName)."""
    b = _Builder(pods, rng)
    current = daemonset_hash(ds)
    history, _, _ = record_revision(history, current, ds.template.raw, now)
    by_host: dict[str | None, list[OwnedPod]] = {}
    for p in sorted(pods, key=lambda p: (p.created_at, p.name)):
        by_host.setdefault(p.host, []).append(p)
    known = {h.name for h in hosts}
    for host, on_host in by_host.items():
        if host not in known:
            for p in on_host:
                b.remove(p, f"host {host} is not in the inventory" if host else
                         "not pinned to a host")
    verdicts = {h.name: eligibility(ds, h) for h in hosts}
    for h in sorted(hosts, key=lambda h: h.name):
        _manage_host(ds, b, h.name, by_host.get(h.name, []), verdicts[h.name], current)
    if ds.update_strategy == "RollingUpdate" and b.empty:
        _rolling_update(ds, b, by_host, verdicts, current, now)

    in_use = {p.hash_label(HASH_LABEL) for p in pods} | {current}
    history = trim_history(history, current, in_use, ds.revision_history_limit)
    status = _status(ds, b, by_host, verdicts, current, now, generation)
    return WorkloadDecision(b.create, b.delete, status, history, b.events, b.requeue_after())


def _manage_host(ds: DaemonSet, b: _Builder, host: str, on_host: list[OwnedPod],
                 verdict: tuple[bool, bool, str], current: str) -> None:
    """Kubernetes' podsShouldBeOnNode."""
    run, keep, why = verdict
    if run and not on_host:  # a pod being deleted still counts: wait until it is gone
        name = b.name(f"{ds.name}-")
        manifest = pod_manifest(ds.template, name, ds.namespace, {HASH_LABEL: current},
                                node_name=host, tolerations=DAEMON_TOLERATIONS)
        b.add(PodToCreate(name, manifest, revision_hash=current, host=host))
        b.event("Normal", "SuccessfulCreate", f"Created pod: {name}")
        return
    if not keep:
        for p in on_host:
            if not p.deleting:
                b.remove(p, f"host {host} is not eligible: {why}")
                b.event("Normal", "SuccessfulDelete", f"Deleted pod: {p.name}")
        return
    running = []
    for p in on_host:
        if p.deleting:
            continue
        if p.phase in ("Failed", "Succeeded"):
            b.remove(p, f"pod {p.phase} on {host}; it is replaced")
            b.event("Warning" if p.phase == "Failed" else "Normal", "SuccessfulDelete",
                    f"Deleted pod: {p.name}")
        else:
            running.append(p)
    for p in running[1:]:  # one pod per host: the oldest stays
        b.remove(p, f"more than one daemon pod on {host}")


def _updated_and_old(on_host: list[OwnedPod], current: str) -> tuple[OwnedPod | None,
                                                                    OwnedPod | None, bool]:
    """findUpdatedPodsOnNode: (new pod, old pod, ok) ignoring pods being deleted."""
    new = [p for p in on_host if not p.deleting and p.hash_label(HASH_LABEL) == current]
    old = [p for p in on_host if not p.deleting and p.hash_label(HASH_LABEL) != current]
    if len(new) > 1 or len(old) > 1:
        return None, None, False
    return (new[0] if new else None), (old[0] if old else None), True


def _rolling_update(ds: DaemonSet, b: _Builder, by_host: dict, verdicts: dict, current: str,
                    now: float) -> None:
    """Kubernetes' rollingUpdate without surge: delete old pods while at most
    maxUnavailable hosts are without an available up-to-date pod. Only hosts that
    should run a pod take part (an old pod on a not-ready host is left alone: it could
    not be replaced there)."""
    desired = sum(1 for run, _, _ in verdicts.values() if run)
    max_unavailable = ds.max_unavailable_for(desired)
    unavailable = 0
    replace: list[OwnedPod] = []
    candidates: list[OwnedPod] = []
    for host in sorted(h for h in by_host if h in verdicts and verdicts[h][0]):
        new, old, ok = _updated_and_old(by_host[host], current)
        if not ok or (new is None) == (old is None):
            unavailable += 1
        elif new is not None:
            if not new.available(ds.min_ready_seconds, now):
                unavailable += 1
                if new.ready and new.ready_since is not None:
                    b.wait(new.ready_since + ds.min_ready_seconds - now + 0.001)
        elif not old.available(ds.min_ready_seconds, now):
            replace.append(old)  # an unavailable old pod can always be replaced
        elif unavailable < max_unavailable:
            candidates.append(old)
    room = max(0, min(max_unavailable - unavailable, len(candidates)))
    for p in replace + candidates[:room]:
        b.remove(p, "rolling update: old revision")
        b.event("Normal", "SuccessfulDelete", f"Deleted pod: {p.name}")


def _status(ds: DaemonSet, b: _Builder, by_host: dict, verdicts: dict, current: str,
            now: float, generation: int | None) -> dict:
    """updateDaemonSetStatus, over the pods as this decision leaves them."""
    created = {p.host: p for p in b.create}
    desired = current_n = misscheduled = ready = updated = available = 0
    for host, (run, _, _) in sorted(verdicts.items()):
        alive = [p for p in by_host.get(host, []) if p.uid not in b.deleted and not p.deleting]
        scheduled = bool(alive) or host in created
        if not run:
            misscheduled += scheduled
            continue
        desired += 1
        if not scheduled:
            continue
        current_n += 1
        if alive:
            pod = alive[0]  # the oldest
            if pod.ready:
                ready += 1
                available += pod.available(ds.min_ready_seconds, now)
            updated += pod.hash_label(HASH_LABEL) == current
        else:
            updated += 1  # created now, from the current template
    status: dict = {}
    if generation is not None:
        status["observedGeneration"] = generation
    status.update({"desiredNumberScheduled": desired, "currentNumberScheduled": current_n,
                   "numberMisscheduled": misscheduled, "numberReady": ready})
    for key, value in (("updatedNumberScheduled", updated), ("numberAvailable", available),
                       ("numberUnavailable", desired - available)):
        if value:
            status[key] = value  # omitempty, as Kubernetes writes them
    return status
