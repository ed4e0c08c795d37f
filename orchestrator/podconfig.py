"""The controller's adapter to podenv: the ConfigMaps and Secrets a pod can see, the
host facts its env vars resolve against, and whether it can start at all."""

from __future__ import annotations

from typing import Mapping

from .configobjects import CONFIG_KINDS, ConfigObject, from_doc
from .model import Host, Pod
from .podenv import ConfigMissing, PodFacts, references, resolve, volume_files
from .probe import HostSnapshot
from .scheduling import host_capacity

ObjectIndex = Mapping[tuple[str, str, str], ConfigObject]  # (kind, namespace, name)


def load_objects(store) -> dict[tuple[str, str, str], ConfigObject]:
    out = {}
    for o in store.list_objects():
        if o.kind in CONFIG_KINDS:
            out[(o.kind, o.namespace, o.name)] = from_doc(o.doc, f"state.db {o.kind} {o.namespace}/{o.name}")
    return out


def visible(pod: Pod, objects: ObjectIndex) -> dict[tuple[str, str], ConfigObject]:
    """The objects the pod names, from its namespace: (kind, name) -> object."""
    out = {}
    for kind, name in references(pod):
        obj = objects.get((kind, pod.namespace, name))
        if obj is not None:
            out[(kind, name)] = obj
    return out


def problem(pod: Pod, uid: str, objects: ObjectIndex) -> ConfigMissing | None:
    """Why the pod cannot start yet (a required ConfigMap/Secret or key is missing)."""
    facts = PodFacts(uid, "", "", "", 0, 0, visible(pod, objects))
    try:
        for v in pod.spec.volumes:
            if v.kind in ("configMap", "secret"):
                volume_files(pod, facts, v)
        for c in pod.spec.all_containers():
            resolve(pod, c, facts)
    except ConfigMissing as exc:
        return exc
    return None


def facts_for(pod: Pod, uid: str, pod_ip: str, host: Host, snap: HostSnapshot | None,
              objects: ObjectIndex) -> PodFacts:
    cap = host_capacity(host, snap)
    return PodFacts(uid=uid, node_name=host.name, host_ip=host.address, pod_ip=pod_ip or "",
                    allocatable_cpu_m=cap.cpu_m, allocatable_memory=cap.memory,
                    objects=visible(pod, objects))


def memory_capacity(snap: HostSnapshot | None) -> int:
    """The host's memory as the kubelet's machine info has it (for oom_score_adj)."""
    return snap.memory() if snap is not None else 0
