"""One entry point for the controller's run: a stored workload object in, a decision out.

    obj = workload_from_doc(row.doc, f"state.db {row.kind} {row.namespace}/{row.name}")
    decision = reconcile_workload(obj, pods, now, uid=row.uid, stored_status=row.status,
                                  generation=row.generation, hosts=hosts, rng=rng)
    store.set_object_status(row.kind, row.namespace, row.name, to_store(decision))
"""

from __future__ import annotations

import json
import random
from typing import Mapping, Sequence

from .common import HostInfo, OwnedPod, WorkloadDecision, from_store, state_from_store
from .daemonset import reconcile_daemonset
from .deployment import reconcile_deployment
from .job import reconcile_job
from .specs import DaemonSet, Deployment, Job, StatefulSet
from .statefulset import reconcile_statefulset

WORKLOAD_KINDS = ("Deployment", "Job", "DaemonSet", "StatefulSet")
Workload = Deployment | Job | DaemonSet | StatefulSet


def workload_from_doc(doc: Mapping, source: str) -> Workload:
    """A stored workload document, validated again (ManifestError(s) naming `source`)."""
    from ..manifests import parse_documents  # it imports this package lazily too

    (manifest,) = parse_documents(json.dumps(doc), source)
    if manifest.kind not in WORKLOAD_KINDS:
        raise TypeError(f"{source}: kind {manifest.kind} is not a workload")
    return manifest.obj


def reconcile_workload(obj: Workload, pods: Sequence[OwnedPod], now: float, *,
                       uid: str, stored_status: Mapping | None = None,
                       generation: int | None = None, hosts: Sequence[HostInfo] = (),
                       rng: random.Random | None = None) -> WorkloadDecision:
    """The decision of `obj`'s controller. `pods`: every pod the object owns (owner_uid),
    terminating ones included; `stored_status`: ObjectRow.status as to_store() wrote it;
    `hosts`: the inventory (DaemonSets; StatefulSets read its lost/fenced flags)."""
    prev, history = from_store(stored_status)
    if isinstance(obj, Deployment):
        return reconcile_deployment(obj, pods, now, history=history, prev_status=prev,
                                    generation=generation, rng=rng)
    if isinstance(obj, Job):
        return reconcile_job(obj, pods, now, uid=uid, prev_status=prev, generation=generation,
                             rng=rng)
    if isinstance(obj, DaemonSet):
        return reconcile_daemonset(obj, pods, hosts, now, history=history,
                                   generation=generation, rng=rng)
    if isinstance(obj, StatefulSet):
        return reconcile_statefulset(obj, pods, hosts, now, history=history, prev_status=prev,
                                     state=state_from_store(stored_status),
                                     generation=generation, rng=rng)
    raise TypeError(f"not a workload: {type(obj).__name__}")
