"""Workload controllers: Deployment, Job, DaemonSet and StatefulSet expanded into pods.

    specs.py       validated objects (Manifest.obj for these kinds)
    validation.py  their manifest rules (registered in orchestrator.manifests.KINDS)
    statefulset_validation.py  StatefulSet's rules (claim templates)
    common.py      controller inputs/outputs (OwnedPod, HostInfo, WorkloadDecision), helpers
    deployment.py  reconcile_deployment, rollout_status, rollout_undo
    job.py         reconcile_job
    daemonset.py   reconcile_daemonset
    statefulset.py reconcile_statefulset (ordinals, claims pinned to hosts, fencing)
    views.py       kubectl table rows and -o json objects

Every decision is a pure function of the object, the pods it owns, the time and a
random source; the caller (orchestrator/controller.py) reads the store and writes back.
This package must not import orchestrator.manifests at import time (manifests imports
validation.py lazily, and validation.py imports manifests).
"""

from .common import HostInfo, OwnedPod, PodToCreate, PodToDelete, WorkloadDecision
from .daemonset import reconcile_daemonset
from .deployment import RolloutError, reconcile_deployment, rollout_status, rollout_undo
from .job import reconcile_job
from .specs import (
    DaemonSet,
    Deployment,
    Job,
    LabelSelector,
    PodTemplate,
    StatefulSet,
    Toleration,
)
from .statefulset import reconcile_statefulset

__all__ = [
    "DaemonSet",
    "Deployment",
    "HostInfo",
    "Job",
    "LabelSelector",
    "OwnedPod",
    "PodTemplate",
    "PodToCreate",
    "PodToDelete",
    "RolloutError",
    "StatefulSet",
    "Toleration",
    "WorkloadDecision",
    "reconcile_daemonset",
    "reconcile_deployment",
    "reconcile_job",
    "reconcile_statefulset",
    "rollout_status",
    "rollout_undo",
]
