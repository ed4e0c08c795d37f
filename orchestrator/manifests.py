"""Kubernetes YAML -> validated model objects (and back), before any host is touched.

Inputs (`load_manifests`): each path is a file, a directory, or "-" for stdin. A
directory contributes its `*.yaml`, `*.yml` and `*.json` files, sorted by name and NOT
recursively (like `kubectl apply -f DIR` without `-R`). A stream may hold several
documents (`---`); empty documents are skipped; a top-level `kind: List` is expanded
into its `items`. JSON and KYAML/flow style are YAML; text that parses as JSON gets
exact JSON semantics (PyYAML's YAML 1.1 reads `1e3` as a string and mangles escaped
emoji), YAML gets `yaml.safe_load` semantics except that timestamps stay strings (as in
Kubernetes, where YAML becomes JSON before decoding).

Errors name where the problem is, then the field path, then what is allowed:

    pods.yaml:14 (document 2): spec.containers[1].ports[0].containerPort: 70000 is out of range (allowed: 1..65535)

Documents count from 1 in stream order (empty ones included, so the number matches
the `---` separators); `items[i]` is added inside a List. All errors of every input
are collected and raised together (`ManifestErrors`), so a user fixes them in one go.

Every field Kubernetes defines for the objects below is in `OBJECT_FIELDS` with one of
four rules: Supported, NoOp (accepted only with values that mean what podctl already
does), Ignored (server-set or observed state), NotYet (an error naming the field). A
field Kubernetes does not define is an "unknown field" error with a did-you-mean hint.
Nothing is dropped silently. `fields_markdown()` renders the table for the README.

New kinds plug in through `KINDS`: {(apiVersion, kind): validator}.
"""

from __future__ import annotations

import difflib
import json
import posixpath
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

import yaml

from .errors import ManifestError
from .model import (
    Container,
    ContainerPort,
    EnvVar,
    Handler,
    Probe,
    Manifest,
    ObjectMeta,
    Pod,
    PodSpec,
    Resources,
    Volume,
    VolumeMount,
    pairs,
)
from .quantity import QuantityError, format_cpu, format_memory, parse_cpu, parse_memory

MANIFEST_SUFFIXES = (".yaml", ".yml", ".json")
STDIN = "<stdin>"

# ---------------------------------------------------------------- the field table


@dataclass(frozen=True)
class Supported:
    what: str = ""


@dataclass(frozen=True)
class NoOp:
    """Accepted only with `values`, which mean what podctl already does (`why`)."""

    values: tuple
    why: str


@dataclass(frozen=True)
class Ignored:
    why: str


@dataclass(frozen=True)
class NotYet:
    """A Kubernetes field podctl does not implement: an error, never dropped.
    null or [] is accepted (it asks for nothing, as in Kubernetes)."""


Rule = Supported | NoOp | Ignored | NotYet
_NOT_YET = NotYet()
_SERVER_SET = Ignored("set by the API server; kubectl get -o yaml prints it")


def _not_yet(*names: str) -> dict[str, Rule]:
    return dict.fromkeys(names, _NOT_YET)


OBJECT_FIELDS: dict[str, dict[str, Rule]] = {
    "Pod": {
        "apiVersion": Supported("v1"),
        "kind": Supported("Pod"),
        "metadata": Supported(),
        "spec": Supported(),
        "status": Ignored("observed state; ignored like kubectl apply does"),
    },
    "ConfigMap": {
        "apiVersion": Supported("v1"), "kind": Supported("ConfigMap"), "metadata": Supported(),
        "data": Supported("key -> string; keys [-._a-zA-Z0-9]+"),
        "binaryData": Supported("key -> base64; a key is in data or binaryData"),
        "immutable": Supported("boolean; an immutable object's data cannot change")},
    "Secret": {
        "apiVersion": Supported("v1"), "kind": Supported("Secret"), "metadata": Supported(),
        "data": Supported("key -> base64"),
        "stringData": Supported("key -> string, merged into data (wins over data)"),
        "type": Supported("Opaque (default), kubernetes.io/tls, basic-auth, ssh-auth, "
                          "dockercfg, dockerconfigjson, service-account-token (their required "
                          "keys checked), or any other type name"),
        "immutable": Supported("boolean; an immutable object's data cannot change")},
    "List": {
        "apiVersion": Supported("v1"),
        "kind": Supported("List"),
        "items": Supported("expanded into its objects"),
        "metadata": Ignored("a List's metadata is kubectl output"),
    },
    "ObjectMeta": {
        "name": Supported("DNS-1123 label (it names directories and interfaces)"),
        "namespace": Supported('DNS-1123 label, default "default"'),
        "labels": Supported("Kubernetes label keys and values"),
        "annotations": Supported("label-style keys, any string values"),
        **dict.fromkeys(("uid", "resourceVersion", "creationTimestamp", "generation",
                         "managedFields", "selfLink"), _SERVER_SET),
        **_not_yet("generateName", "ownerReferences", "finalizers", "deletionTimestamp",
                   "deletionGracePeriodSeconds"),
    },
    "PodSpec": {
        "containers": Supported("at least one"),
        "volumes": Supported("emptyDir, hostPath, configMap, secret"),
        "restartPolicy": Supported("Always (default), OnFailure, Never"),
        "terminationGracePeriodSeconds": Supported("integer >= 0, default 30"),
        "nodeName": Supported("DNS-1123 subdomain; pins the pod to that host"),
        "nodeSelector": Supported("host label key -> value"),
        "dnsPolicy": NoOp(("ClusterFirst", "Default"),
                          "pods use the host's resolver; without cluster DNS Kubernetes' "
                          "ClusterFirst does the same"),
        "schedulerName": NoOp(("default-scheduler",), "podctl's scheduler is the only one"),
        "enableServiceLinks": NoOp((True, False), "podctl has no Services, so there are "
                                   "no service variables to inject"),
        "shareProcessNamespace": Supported("true or false (default): true puts all the pod's "
                                           "containers in one PID namespace"),
        **dict.fromkeys(("hostNetwork", "hostPID", "hostIPC"),
                        NoOp((False,), "the default: each pod gets its own namespaces")),
        "securityContext": NoOp(({},), "an empty securityContext asks for nothing"),
        "tolerations": Supported("key, operator, value, effect, tolerationSeconds, as "
                                 "Kubernetes validates them (DaemonSets need them)"),
        "affinity": Supported("nodeAffinity, podAffinity, podAntiAffinity, as Kubernetes "
                              "validates them; the scheduler honours them"),
        "topologySpreadConstraints": Supported("maxSkew, topologyKey, whenUnsatisfiable, "
                                               "labelSelector, minDomains, node policies"),
        "hostAliases": Supported("ip and hostnames, added to the pod's /etc/hosts"),
        "hostname": Supported("DNS-1123 label: the pod's hostname (default: its name)"),
        "subdomain": Supported("DNS-1123 label: /etc/hosts names the pod "
                               "<hostname>.<subdomain>.<namespace>.svc.cluster.local"),
        "initContainers": Supported("run one at a time, in order, before the app containers; "
                                    "restartPolicy Always makes a sidecar"),
        **_not_yet("ephemeralContainers", "serviceAccountName", "serviceAccount",
                   "automountServiceAccountToken", "imagePullSecrets", "activeDeadlineSeconds",
                   "dnsConfig", "hostUsers",
                   "setHostnameAsFQDN", "os", "overhead", "preemptionPolicy", "priority",
                   "priorityClassName", "readinessGates", "resourceClaims", "resources",
                   "runtimeClassName", "schedulingGates"),
    },
    "Container": {
        "name": Supported("DNS-1123 label, unique in the pod"),
        "image": Supported("non-empty, no whitespace"),
        "command": Supported("list of strings (replaces the image's entrypoint)"),
        "args": Supported("list of strings (replaces the image's cmd)"),
        "env": Supported("name + value or valueFrom; duplicates allowed, the last wins; "
                         "$(VAR) expanded as Kubernetes does"),
        "envFrom": Supported("configMapRef or secretRef, prefix, optional"),
        "workingDir": Supported("absolute path"),
        "ports": Supported("containerPort, protocol, name, hostPort"),
        "resources": Supported("requests/limits of cpu and memory"),
        "volumeMounts": Supported("name, mountPath, readOnly"),
        "imagePullPolicy": Supported("Always, IfNotPresent, Never; default as Kubernetes"),
        "terminationMessagePath": NoOp(("/dev/termination-log",), "the Kubernetes default"),
        "terminationMessagePolicy": NoOp(("File",), "the Kubernetes default"),
        "securityContext": NoOp(({},), "an empty securityContext asks for nothing"),
        **dict.fromkeys(("tty", "stdin", "stdinOnce"), NoOp((False,), "the default")),
        "livenessProbe": Supported("exec, tcpSocket, httpGet; a failure restarts the container"),
        "readinessProbe": Supported("exec, tcpSocket, httpGet; sets ready and the pod's Ready"),
        "startupProbe": Supported("exec, tcpSocket, httpGet; holds the other probes back"),
        "lifecycle": Supported("postStart and preStop: exec, httpGet, sleep"),
        "restartPolicy": Supported("init containers only: Always (a sidecar)"),
        **_not_yet("resizePolicy", "restartPolicyRules", "volumeDevices"),
    },
    "Probe": {
        "exec": Supported("command, run in the container"),
        "tcpSocket": Supported("port, host"),
        "httpGet": Supported("port, host, path, httpHeaders; scheme HTTP"),
        "initialDelaySeconds": Supported("integer >= 0, default 0"),
        "periodSeconds": Supported("integer >= 0, default 10 (0 means the default)"),
        "timeoutSeconds": Supported("integer >= 0, default 1 (0 means the default)"),
        "successThreshold": Supported("integer >= 0, default 1; 1 for liveness and startup"),
        "failureThreshold": Supported("integer >= 0, default 3"),
        **_not_yet("grpc", "terminationGracePeriodSeconds"),
    },
    "ExecAction": {"command": Supported("non-empty list of strings, run without a shell")},
    "TCPSocketAction": {"port": Supported("1..65535 or the name of a container port"),
                        "host": Supported("default: the pod's IP")},
    "HTTPGetAction": {"port": Supported("1..65535 or the name of a container port"),
                      "host": Supported("default: the pod's IP"),
                      "path": Supported("absolute path, default /"),
                      "httpHeaders": Supported("name, value"),
                      "scheme": NoOp(("HTTP",), "podctl's probes speak plain HTTP (no TLS "
                                                "client on hosts)")},
    "HTTPHeader": {"name": Supported("an HTTP header name"),
                   "value": Supported("a header value without control characters")},
    "Lifecycle": {"postStart": Supported("exec, httpGet, sleep: runs right after the start; "
                                         "the container is running once it completes"),
                  "preStop": Supported("exec, httpGet, sleep: runs before SIGTERM, within the "
                                       "grace period"),
                  **_not_yet("stopSignal")},
    "LifecycleHandler": {"exec": Supported("command"), "httpGet": Supported("as in probes"),
                         "sleep": Supported("seconds"), **_not_yet("tcpSocket")},
    "SleepAction": {"seconds": Supported("integer 1..terminationGracePeriodSeconds")},
    "EnvVar": {"name": Supported("printable ASCII except '='"),
               "value": Supported('any string without NUL, default ""'),
               "valueFrom": Supported("fieldRef, resourceFieldRef, configMapKeyRef, "
                                      "secretKeyRef (exactly one; not with value)")},
    "EnvVarSource": {"fieldRef": Supported("fieldPath: metadata.name, metadata.namespace, "
                                           "metadata.uid, metadata.labels['k'], "
                                           "metadata.annotations['k'], spec.nodeName, "
                                           "spec.serviceAccountName, status.podIP(s), "
                                           "status.hostIP(s)"),
                     "resourceFieldRef": Supported("limits/requests cpu and memory, "
                                                   "containerName, divisor"),
                     "configMapKeyRef": Supported("name, key, optional"),
                     "secretKeyRef": Supported("name, key, optional")},
    "ObjectFieldSelector": {"fieldPath": Supported("see EnvVarSource"),
                            "apiVersion": Supported("v1 (default)")},
    "ResourceFieldSelector": {"resource": Supported("limits.cpu, limits.memory, requests.cpu, "
                                                    "requests.memory"),
                              "containerName": Supported("a container of the pod"),
                              "divisor": Supported("cpu: 1 or 1m; memory: 1, 1k..1E, 1Ki..1Ei")},
    "KeySelector": {"name": Supported("the object's name"), "key": Supported("a config key"),
                    "optional": Supported("boolean: a missing object or key is skipped")},
    "EnvFromSource": {"configMapRef": Supported("name, optional"),
                      "secretRef": Supported("name, optional"),
                      "prefix": Supported("prepended to every key")},
    "ObjectReference": {"name": Supported("the object's name"),
                        "optional": Supported("boolean: a missing object is skipped")},
    "HostAlias": {"ip": Supported("an IP address"),
                  "hostnames": Supported("DNS-1123 subdomains")},
    "ContainerPort": {"containerPort": Supported("1..65535"),
                      "protocol": Supported("TCP (default), UDP, SCTP"),
                      "name": Supported("IANA service name, at most 15 characters"),
                      "hostPort": Supported("1..65535"),
                      **_not_yet("hostIP")},
    "ResourceRequirements": {"requests": Supported("cpu, memory"),
                             "limits": Supported("cpu, memory; request <= limit"),
                             **_not_yet("claims")},
    "VolumeMount": {"name": Supported("a volume of the pod"),
                    "mountPath": Supported("absolute, no '..' or ':', unique per container"),
                    "readOnly": Supported("boolean"),
                    **_not_yet("subPath", "subPathExpr", "mountPropagation",
                               "recursiveReadOnly")},
    "Volume": {
        "name": Supported("DNS-1123 label, unique in the pod"),
        "emptyDir": Supported('medium "" or Memory, sizeLimit'),
        "hostPath": Supported("absolute path, type"),
        "configMap": Supported("name, items, defaultMode, optional (read-only files)"),
        "secret": Supported("secretName, items, defaultMode, optional (read-only files on a "
                            "per-pod tmpfs)"),
        **_not_yet("persistentVolumeClaim", "projected", "downwardAPI",
                   "ephemeral", "csi", "image", "nfs", "iscsi", "rbd", "cephfs", "glusterfs",
                   "fc", "flexVolume", "flocker", "cinder", "awsElasticBlockStore",
                   "gcePersistentDisk", "azureDisk", "azureFile", "vsphereVolume",
                   "photonPersistentDisk", "portworxVolume", "quobyte", "scaleIO", "storageos",
                   "gitRepo"),
    },
    "ConfigMapVolumeSource": {"name": Supported("the ConfigMap's name"),
                              "items": Supported("key, path, mode"),
                              "defaultMode": Supported("0..0777, default 0644"),
                              "optional": Supported("boolean")},
    "SecretVolumeSource": {"secretName": Supported("the Secret's name"),
                           "items": Supported("key, path, mode"),
                           "defaultMode": Supported("0..0777, default 0644"),
                           "optional": Supported("boolean")},
    "KeyToPath": {"key": Supported("a config key"),
                  "path": Supported("relative, no '..' element"),
                  "mode": Supported("0..0777")},
    "EmptyDirVolumeSource": {"medium": Supported('"" (disk) or Memory (tmpfs)'),
                             "sizeLimit": Supported("quantity, e.g. 1Gi (Memory: the tmpfs size; disk: the pod is evicted above it)")},
    "HostPathVolumeSource": {"path": Supported("absolute, no '..'"),
                             "type": Supported("'', DirectoryOrCreate, Directory, "
                                               "FileOrCreate, File, Socket, CharDevice, "
                                               "BlockDevice")},
    "Toleration": {"key": Supported("a label key; empty (with Exists) matches every taint"),
                   "operator": Supported("Equal (default) or Exists"),
                   "value": Supported("a label value; empty with Exists"),
                   "effect": Supported("'' (all), NoSchedule, PreferNoSchedule, NoExecute"),
                   "tolerationSeconds": Supported("integer, with effect NoExecute (kept; "
                                                  "podctl does not evict on taints yet)")},
    # affinity and topologySpreadConstraints (validated by orchestrator/scheduling_fields.py)
    "Affinity": {"nodeAffinity": Supported("required and preferred node selector terms"),
                 "podAffinity": Supported("required and preferred pod affinity terms"),
                 "podAntiAffinity": Supported("required and preferred pod affinity terms")},
    "NodeAffinity": {
        "requiredDuringSchedulingIgnoredDuringExecution": Supported(
            "nodeSelectorTerms: at least one; a host must match one of them"),
        "preferredDuringSchedulingIgnoredDuringExecution": Supported(
            "weight 1..100 and a preference (a node selector term)")},
    "NodeSelector": {"nodeSelectorTerms": Supported("non-empty list of terms, ORed")},
    "NodeSelectorTerm": {"matchExpressions": Supported("host label requirements, ANDed"),
                         "matchFields": Supported("metadata.name In/NotIn one host name")},
    "NodeSelectorRequirement": {
        "key": Supported("a label key (matchFields: metadata.name)"),
        "operator": Supported("In, NotIn, Exists, DoesNotExist, Gt, Lt (matchFields: In, NotIn)"),
        "values": Supported("label values: non-empty for In/NotIn, none for Exists/DoesNotExist, "
                            "one integer for Gt/Lt")},
    "PreferredSchedulingTerm": {"weight": Supported("1..100"),
                                "preference": Supported("a node selector term")},
    **{name: {"requiredDuringSchedulingIgnoredDuringExecution": Supported(
                  "pod affinity terms, all of which must hold"),
              "preferredDuringSchedulingIgnoredDuringExecution": Supported(
                  "weight 1..100 and a podAffinityTerm")}
       for name in ("PodAffinity", "PodAntiAffinity")},
    "PodAffinityTerm": {
        "labelSelector": Supported("matchLabels, matchExpressions; unset matches no pod"),
        "namespaces": Supported("namespace names; empty: the pod's own namespace"),
        "namespaceSelector": Supported("{} (every namespace) only; a selector with labels or "
                                       "expressions is not supported yet"),
        "topologyKey": Supported("a host label key, required"),
        **_not_yet("matchLabelKeys", "mismatchLabelKeys")},
    "WeightedPodAffinityTerm": {"weight": Supported("1..100"),
                                "podAffinityTerm": Supported("a pod affinity term")},
    "TopologySpreadConstraint": {
        "maxSkew": Supported("integer >= 1, required"),
        "topologyKey": Supported("a host label key, required"),
        "whenUnsatisfiable": Supported("DoNotSchedule or ScheduleAnyway, required; one "
                                       "constraint per topologyKey and whenUnsatisfiable"),
        "labelSelector": Supported("matchLabels, matchExpressions; unset counts no pod"),
        "minDomains": Supported("integer >= 1, with whenUnsatisfiable DoNotSchedule"),
        "nodeAffinityPolicy": Supported("Honor (default) or Ignore"),
        "nodeTaintsPolicy": Supported("Ignore (default) or Honor"),
        **_not_yet("matchLabelKeys")},
    # ------------------------------------------------------------ workloads
    # (validated by orchestrator/workloads/validation.py; pods follow the Pod rules above)
    **{kind: {"apiVersion": Supported(api), "kind": Supported(kind), "metadata": Supported(),
              "spec": Supported(),
              "status": Ignored("observed state; ignored like kubectl apply does")}
       for kind, api in (("Deployment", "apps/v1"), ("Job", "batch/v1"),
                         ("DaemonSet", "apps/v1"), ("StatefulSet", "apps/v1"))},
    "DeploymentSpec": {
        "replicas": Supported("integer >= 0, default 1"),
        "selector": Supported("matchLabels and/or matchExpressions, matching the template"),
        "template": Supported("metadata.labels/annotations and a pod spec (restartPolicy "
                              "Always)"),
        "strategy": Supported("RollingUpdate (default) or Recreate"),
        "minReadySeconds": Supported("integer >= 0, default 0"),
        "revisionHistoryLimit": Supported("integer >= 0, default 10"),
        "paused": Supported("boolean: no rollout while true"),
        "progressDeadlineSeconds": Supported("integer > minReadySeconds, default 600"),
    },
    "DeploymentStrategy": {"type": Supported("RollingUpdate (default) or Recreate"),
                           "rollingUpdate": Supported("maxSurge, maxUnavailable")},
    "RollingUpdateDeployment": {
        "maxSurge": Supported("integer or percent (rounded up), default 25%"),
        "maxUnavailable": Supported("integer or percent <= 100% (rounded down), default 25%; "
                                    "not 0 with maxSurge 0")},
    "PodTemplateSpec": {"metadata": Supported("labels, annotations (a name is ignored)"),
                        "spec": Supported("a pod spec, as for kind Pod")},
    "LabelSelector": {"matchLabels": Supported("label key -> value"),
                      "matchExpressions": Supported("key, operator In/NotIn/Exists/"
                                                    "DoesNotExist, values")},
    "LabelSelectorRequirement": {"key": Supported("a label key"),
                                 "operator": Supported("In, NotIn, Exists, DoesNotExist"),
                                 "values": Supported("non-empty for In/NotIn, empty otherwise")},
    "JobSpec": {
        "completions": Supported("integer >= 0; default 1 (unset with parallelism: done "
                                 "after the first success)"),
        "parallelism": Supported("integer >= 0, default 1"),
        "backoffLimit": Supported("integer >= 0, default 6"),
        "activeDeadlineSeconds": Supported("integer >= 1"),
        "ttlSecondsAfterFinished": Supported("integer >= 0: the Job is deleted that long "
                                             "after it finished"),
        "completionMode": Supported("NonIndexed (Indexed is not supported yet)"),
        "selector": Supported("optional (generated from the Job's uid); must match the "
                              "template"),
        "manualSelector": Supported("boolean; true requires a selector"),
        "template": Supported("a pod template with restartPolicy OnFailure or Never"),
        "suspend": NoOp((False,), "the default: the Job runs"),
        "podReplacementPolicy": NoOp(("TerminatingOrFailed",),
                                     "the default: a terminating pod is replaced at once"),
        **_not_yet("podFailurePolicy", "successPolicy", "backoffLimitPerIndex",
                   "maxFailedIndexes", "managedBy"),
    },
    "DaemonSetSpec": {
        "selector": Supported("matchLabels and/or matchExpressions, matching the template"),
        "template": Supported("a pod template (restartPolicy Always); nodeSelector and "
                              "tolerations choose the hosts"),
        "updateStrategy": Supported("RollingUpdate (default) or OnDelete"),
        "minReadySeconds": Supported("integer >= 0, default 0"),
        "revisionHistoryLimit": Supported("integer >= 0, default 10"),
    },
    "DaemonSetUpdateStrategy": {"type": Supported("RollingUpdate (default) or OnDelete"),
                                "rollingUpdate": Supported("maxUnavailable")},
    "RollingUpdateDaemonSet": {
        "maxUnavailable": Supported("integer >= 1 or percent (rounded up), default 1"),
        "maxSurge": NoOp((0, "0%"), "the default: a host's old pod stops before its new one "
                                    "starts")},
    "StatefulSetSpec": {
        "replicas": Supported("integer >= 0, default 1: pods <name>-0 .. <name>-(replicas-1), "
                              "each with its name as hostname"),
        "selector": Supported("matchLabels and/or matchExpressions, matching the template"),
        "template": Supported("a pod template (restartPolicy Always); containers mount the "
                              "claim templates by name"),
        "serviceName": Supported("a DNS-1123 label, recorded only: podctl has no DNS, so "
                                 "<pod>.<serviceName> does not resolve (use pod IPs)"),
        "podManagementPolicy": Supported("OrderedReady (default: one pod at a time, each "
                                         "after the lower ordinals are Running and Ready; "
                                         "scale down highest first) or Parallel"),
        "updateStrategy": Supported("RollingUpdate (default: highest ordinal first, one at a "
                                    "time, partition) or OnDelete"),
        "volumeClaimTemplates": Supported(
            "per pod, a directory on its host (/var/lib/podctl/claims/<namespace>/"
            "<template>-<name>-<ordinal>), like a local PersistentVolume: the claim keeps its "
            "ordinal on that host; the data stays there on scale down and delete"),
        "minReadySeconds": Supported("integer >= 0, default 0"),
        "revisionHistoryLimit": Supported("integer >= 0, default 10"),
        "persistentVolumeClaimRetentionPolicy": Supported("whenDeleted, whenScaled"),
        **_not_yet("ordinals"),
    },
    "StatefulSetUpdateStrategy": {"type": Supported("RollingUpdate (default) or OnDelete"),
                                  "rollingUpdate": Supported("partition")},
    "RollingUpdateStatefulSetStrategy": {
        "partition": Supported("integer >= 0, default 0: ordinals below it keep the current "
                               "revision"),
        "maxUnavailable": NoOp((1,), "the default: one pod at a time")},
    "StatefulSetPersistentVolumeClaimRetentionPolicy": {
        "whenDeleted": NoOp(("Retain",), "the default: claim data stays on its host when the "
                                         "StatefulSet is deleted"),
        "whenScaled": NoOp(("Retain",), "the default: claim data stays on its host when the "
                                        "StatefulSet scales down")},
    "PersistentVolumeClaim": {
        "apiVersion": Supported("v1 (may be left out)"),
        "kind": Supported("PersistentVolumeClaim (may be left out)"),
        "metadata": Supported("name: a DNS-1123 label, the volume name containers mount; "
                              "labels, annotations"),
        "spec": Supported(),
        "status": Ignored("observed state; ignored like kubectl apply does")},
    "PersistentVolumeClaimSpec": {
        "accessModes": Supported("required: ReadWriteOnce or ReadWriteOncePod (a directory on "
                                 "one host)"),
        "resources": Supported("requests.storage required (a quantity); recorded, not "
                               "enforced: a host directory has no size limit"),
        "storageClassName": Supported("any name: every claim is a host directory"),
        "volumeMode": NoOp(("Filesystem",), "the default: a directory"),
        **_not_yet("selector", "volumeName", "dataSource", "dataSourceRef",
                   "volumeAttributesClassName"),
    },
    "VolumeResourceRequirements": {"requests": Supported("storage"),
                                   "limits": Supported("storage (not enforced)")},
}

_VOLUME_SOURCES = tuple(k for k in OBJECT_FIELDS["Volume"] if k != "name")
_RESTART_POLICIES = ("Always", "OnFailure", "Never")
_PULL_POLICIES = ("Always", "IfNotPresent", "Never")
_PROTOCOLS = ("TCP", "UDP", "SCTP")
_MEDIA = ("", "Memory")
_HOST_PATH_TYPES = ("", "DirectoryOrCreate", "Directory", "FileOrCreate", "File", "Socket",
                    "CharDevice", "BlockDevice")
_RESOURCE_NAMES = ("cpu", "memory")
_ANNOTATIONS_MAX = 256 * 1024  # Kubernetes' total size limit for annotations


def fields_markdown() -> str:
    """The field table as Markdown, for the README."""
    rows = ["| object | field | podctl |", "|---|---|---|"]
    for obj, table in OBJECT_FIELDS.items():
        for name, rule in table.items():
            if isinstance(rule, Supported):
                text = "supported" + (f": {rule.what}" if rule.what else "")
            elif isinstance(rule, NoOp):
                text = f"accepted as {_values(rule.values)}: {rule.why}"
            elif isinstance(rule, Ignored):
                text = f"ignored: {rule.why}"
            else:
                text = "not supported yet"
            rows.append(f"| {obj} | `{name}` | {text} |")
    return "\n".join(rows)


# ---------------------------------------------------------------- errors and context


class ManifestErrors(ManifestError):
    """Several manifest errors reported together; `.errors` holds each one.
    `.source`/`.path` are the first error's, for code that reads a single location."""

    MAX_SHOWN = 100

    def __init__(self, errors: list[ManifestError]):
        self.errors = list(errors)
        shown = [f"  {e}" for e in self.errors[: self.MAX_SHOWN]]
        if len(self.errors) > self.MAX_SHOWN:
            shown.append(f"  ... and {len(self.errors) - self.MAX_SHOWN} more")
        first = self.errors[0]
        super().__init__(first.source, first.path, "")
        # str() is the whole list, one self-contained line per error
        self.message = f"{len(self.errors)} manifest errors:\n" + "\n".join(shown)
        self.args = (self.message,)


def _raise_collected(errors: list[ManifestError]) -> None:
    if len(errors) == 1:
        raise errors[0]
    if errors:
        raise ManifestErrors(errors)


class _Key(str):
    """A key of a user map (labels, nodeSelector): printed `[key]`, not `.key`."""


FieldPath = tuple  # of str (field), int (list index), _Key (map key)


def format_path(path: FieldPath) -> str:
    out = ""
    for part in path:
        if isinstance(part, (int, _Key)):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


@dataclass
class _Ctx:
    """Where errors go while one object is validated, and how to locate a path."""

    file: str
    label: str = ""  # "document 2" or "document 2, items[0]"; "" for validate_pod
    lines: dict = field(default_factory=dict)  # document path -> 1-based line
    prefix: FieldPath = ()  # this object's path in the document (List items)
    errors: list = field(default_factory=list)

    def line(self, path: FieldPath) -> int | None:
        full = self.prefix + tuple(path)
        while full not in self.lines and full:
            full = full[:-1]  # a missing field: point at its parent
        return self.lines.get(full)

    def source(self, path: FieldPath = (), line: int | None = None) -> str:
        line = line or self.line(path)
        where = f"{self.file}:{line}" if line else self.file
        return f"{where} ({self.label})" if self.label else where

    def error(self, path: FieldPath, message: str, line: int | None = None) -> None:
        err = ManifestError(self.source(path, line), format_path(path), message)
        err.line = line or self.line(path) or 0  # to report a document's errors in file order
        self.errors.append(err)


def _show(value: Any) -> str:
    """A value for a message: repr escapes newlines and terminal escapes."""
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _values(values: Iterable) -> str:
    return ", ".join(json.dumps(v) for v in values)


def _describe(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"boolean {str(value).lower()}"
    kinds = {int: "integer", float: "number", str: "string", list: "a list", dict: "a mapping"}
    for kind, name in kinds.items():
        if isinstance(value, kind):
            return name if kind in (list, dict) else f"{name} {_show(value)}"
    return type(value).__name__


# ---------------------------------------------------------------- typed access


_TYPE_NAMES = {str: "a string", int: "an integer", bool: "a boolean (true or false)",
               list: "a list", dict: "a mapping"}


def _typed(ctx: _Ctx, value: Any, path: FieldPath, kind: type) -> Any:
    """`value` if it has JSON type `kind`; None if absent (null) or wrong (error recorded)."""
    if value is None:
        return None
    if isinstance(value, kind) and not (kind is int and isinstance(value, bool)):
        return value
    hint = ""
    if kind is int and isinstance(value, str) and value.strip().lstrip("+-").isdigit():
        hint = " (write it without quotes)"
    elif kind is str and isinstance(value, (int, float, bool)):
        hint = " (quote it)"
    ctx.error(path, f"expected {_TYPE_NAMES[kind]}, got {_describe(value)}{hint}")
    return None


def _required(ctx: _Ctx, obj: dict, path: FieldPath, name: str, what: str,
              problem: Callable[[str], str | None] | None = None) -> str | None:
    """A required string field, checked by `problem`; None (error recorded) if bad."""
    if obj.get(name) is None:
        ctx.error(path + (name,), f"required field is missing (expected {what})")
        return None
    return _checked(ctx, obj[name], path + (name,), problem or (lambda s: None))


def _optional(ctx: _Ctx, value: Any, path: FieldPath,
              problem: Callable[[str], str | None]) -> str | None:
    """An optional string field: null and "" both mean unset, as in Kubernetes (omitempty)."""
    return None if value in (None, "") else _checked(ctx, value, path, problem)


def _checked(ctx: _Ctx, value: Any, path: FieldPath, problem: Callable[[str], str | None]) -> Any:
    """A string that passes `problem` (None = fine), else None with the error recorded."""
    value = _typed(ctx, value, path, str)
    if value is None:
        return None
    message = problem(value)
    if message:
        ctx.error(path, message)
        return None
    return value


def _enum(ctx: _Ctx, value: Any, path: FieldPath, allowed: tuple[str, ...], default: str) -> str:
    if value is None:
        return default
    if isinstance(value, str) and value in allowed:
        return value
    ctx.error(path, f"{_show(value)} is not allowed (allowed: {_values(allowed)})")
    return default


def _int_in(ctx: _Ctx, value: Any, path: FieldPath, lo: int, hi: int | None) -> int | None:
    value = _typed(ctx, value, path, int)
    if value is not None and (value < lo or (hi is not None and value > hi)):
        allowed = f"{lo}..{hi}" if hi is not None else f">= {lo}"
        ctx.error(path, f"{value} is out of range (allowed: {allowed})")
        return None
    return value


def _items(ctx: _Ctx, value: Any, path: FieldPath, what: str) -> list[tuple[FieldPath, dict]]:
    """The mapping elements of a list, each with its path; other elements are errors."""
    out = []
    for i, item in enumerate(_typed(ctx, value, path, list) or ()):
        if isinstance(item, dict):
            out.append((path + (i,), item))
        else:
            ctx.error(path + (i,), f"expected {what} (a mapping), got {_describe(item)}")
    return out


def _check_fields(ctx: _Ctx, obj: dict, path: FieldPath, table_name: str) -> None:
    """Every key must be a field Kubernetes knows; podctl's rule for it decides the rest."""
    table = OBJECT_FIELDS[table_name]
    for key, value in obj.items():
        here = path + (key,)
        if not isinstance(key, str):
            ctx.error(path, f"field names are strings, got {_describe(key)}")
            continue
        rule = table.get(key)
        if rule is None:
            ctx.error(here, _unknown_field(key, table))
        elif isinstance(rule, NotYet) and value is not None and value != []:
            ctx.error(here, "not supported by podctl yet")
        elif isinstance(rule, NoOp) and value is not None and not _is_one_of(value, rule.values):
            ctx.error(here, f"{_show(value)} is not supported by podctl yet "
                            f"(accepted: {_values(rule.values)}: {rule.why})")


def _is_one_of(value: Any, values: tuple) -> bool:
    # exact type: False must not match 0, nor {} match []
    return any(type(value) is type(v) and value == v for v in values)


def _unknown_field(key: str, table: dict[str, Rule]) -> str:
    close = difflib.get_close_matches(key, table, n=1, cutoff=0.6)
    if not close:  # catch case slips like "ContainerPort" too
        close = [k for k in table if k.lower() == key.lower()]
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    supported = [k for k, r in table.items() if isinstance(r, (Supported, NoOp))]
    return f"unknown field {key!r}{hint}; podctl supports here: {', '.join(supported)}"


# ---------------------------------------------------------------- value rules (pure)

_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
_QUALIFIED = re.compile(r"[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?")
_IANA = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")

_LABEL_RULE = ("a DNS-1123 label: at most 63 lowercase letters, digits and '-', "
               "starting and ending with a letter or digit (e.g. 'web-1')")
_SUBDOMAIN_RULE = ("a DNS-1123 subdomain: at most 253 characters, DNS-1123 labels "
                   "joined by '.' (e.g. 'node-1.example.com')")
_NAME_RULE = ("at most 63 characters: letters, digits, '-', '_' and '.', "
              "starting and ending with a letter or digit")
_KEY_RULE = f"a label key: an optional DNS-1123 subdomain prefix and '/', then {_NAME_RULE} " \
            "(e.g. 'app.kubernetes.io/name')"


def dns1123_label_problem(s: str) -> str | None:
    if len(s) <= 63 and _LABEL.fullmatch(s):
        return None
    return f"{_show(s)} is not {_LABEL_RULE}"


def dns1123_subdomain_problem(s: str) -> str | None:
    if len(s) <= 253 and all(_LABEL.fullmatch(p) for p in s.split(".")):
        return None
    return f"{_show(s)} is not {_SUBDOMAIN_RULE}"


def label_key_problem(s: str) -> str | None:
    prefix, slash, name = s.rpartition("/")
    ok = (len(name) <= 63 and _QUALIFIED.fullmatch(name) is not None
          and (not slash or dns1123_subdomain_problem(prefix) is None))
    return None if ok else f"{_show(s)} is not {_KEY_RULE}"


def label_value_problem(s: str) -> str | None:
    if s == "" or (len(s) <= 63 and _QUALIFIED.fullmatch(s)):
        return None
    return f"{_show(s)} is not a valid label value: empty, or {_NAME_RULE}"


def port_name_problem(s: str) -> str | None:
    if len(s) <= 15 and _IANA.fullmatch(s) and "--" not in s and re.search("[a-z]", s):
        return None
    return (f"{_show(s)} is not an IANA service name: at most 15 lowercase letters, digits "
            "and '-', with a letter, no '--', starting and ending with a letter or digit")


def env_name_problem(s: str) -> str | None:
    if s and all(" " <= c <= "~" and c != "=" for c in s):
        return None
    return f"{_show(s)} is not a valid variable name: non-empty printable ASCII without '='"


def no_nul_problem(s: str) -> str | None:
    if "\0" in s:
        return f"{_show(s)} contains a NUL character, which no process can receive"
    return None


def image_problem(s: str) -> str | None:
    if s and not any(c.isspace() or not c.isprintable() for c in s):
        return None
    return (f"{_show(s)} is not an image reference: non-empty, without whitespace "
            "(e.g. 'nginx:1.27', 'registry.example.com/app@sha256:...')")


def absolute_path_problem(s: str, *, colon: bool = True) -> str | None:
    if not s.startswith("/") or "\0" in s or ".." in s.split("/") or (not colon and ":" in s):
        rules = "absolute, without '..' components" + ("" if colon else " or ':'")
        return f"{_show(s)} is not a valid path: {rules} (e.g. '/data')"
    return None


def default_pull_policy(image: str) -> str:
    """Kubernetes: Always for ':latest' or no tag (unless pinned by digest), else IfNotPresent."""
    name, at, _digest = image.partition("@")
    last = name.rsplit("/", 1)[-1]  # a registry's ':port' is not a tag
    tag = last.partition(":")[2] if ":" in last else ("" if at else "latest")
    return "Always" if tag == "latest" else "IfNotPresent"


# ---------------------------------------------------------------- Pod


def _pod(ctx: _Ctx, doc: dict) -> Pod:
    _check_fields(ctx, doc, (), "Pod")
    meta = _object_meta(ctx, doc.get("metadata"), ("metadata",))
    spec = _pod_spec(ctx, doc.get("spec"), ("spec",))
    return Pod(meta=meta, spec=spec, source=ctx.source())


def _object_meta(ctx: _Ctx, value: Any, path: FieldPath) -> ObjectMeta:
    if value is None:
        ctx.error(path, "required field is missing (expected a mapping with at least a name)")
        return ObjectMeta(name="")
    meta = _typed(ctx, value, path, dict)
    if meta is None:
        return ObjectMeta(name="")
    _check_fields(ctx, meta, path, "ObjectMeta")
    name = _required(ctx, meta, path, "name", _LABEL_RULE, dns1123_label_problem)
    namespace = _optional(ctx, meta.get("namespace"), path + ("namespace",), dns1123_label_problem)
    labels = _string_map(ctx, meta.get("labels"), path + ("labels",), label_value_problem)
    annotations = _string_map(ctx, meta.get("annotations"), path + ("annotations",), None)
    if sum(len(k) + len(v) for k, v in annotations) > _ANNOTATIONS_MAX:
        ctx.error(path + ("annotations",), f"total size exceeds {_ANNOTATIONS_MAX} bytes")
    return ObjectMeta(name=name or "", namespace=namespace or "default",
                      labels=pairs(labels), annotations=pairs(annotations))


def _string_map(ctx: _Ctx, value: Any, path: FieldPath,
                value_problem: Callable[[str], str | None] | None) -> list[tuple[str, str]]:
    """A label-style map: label keys, string values checked by `value_problem`."""
    out = []
    for key, val in (_typed(ctx, value, path, dict) or {}).items():
        here = path + (_Key(key),)
        if not isinstance(key, str):
            ctx.error(path, f"keys are strings, got {_describe(key)} (quote it)")
            continue
        problem = label_key_problem(key)
        if problem:
            ctx.error(here, problem)
        if val is None:  # Go decodes null into "" for a map[string]string
            val = ""
        val = _checked(ctx, val, here, value_problem or (lambda v: None))
        if not problem and val is not None:
            out.append((key, val))
    return out


def _pod_spec(ctx: _Ctx, value: Any, path: FieldPath) -> PodSpec:
    if value is None:
        ctx.error(path, "required field is missing (expected a mapping with containers)")
        return PodSpec(containers=())
    spec = _typed(ctx, value, path, dict)
    if spec is None:
        return PodSpec(containers=())
    _check_fields(ctx, spec, path, "PodSpec")
    volumes = _volumes(ctx, spec.get("volumes"), path + ("volumes",))
    grace = _int_in(ctx, spec.get("terminationGracePeriodSeconds"),
                    path + ("terminationGracePeriodSeconds",), 0, None)
    grace = 30 if grace is None else grace
    seen = _Seen()
    inits = ()
    if spec.get("initContainers") not in (None, []):
        inits = _containers(ctx, spec.get("initContainers"), path + ("initContainers",),
                            {v.name for v in volumes}, seen, init=True, grace=grace)
    containers = _containers(ctx, spec.get("containers"), path + ("containers",),
                             {v.name for v in volumes}, seen, grace=grace)
    node_name = _optional(ctx, spec.get("nodeName"), path + ("nodeName",),
                          dns1123_subdomain_problem)
    selector = _string_map(ctx, spec.get("nodeSelector"), path + ("nodeSelector",),
                           label_value_problem)
    # Validated here, kept in the raw document (PodSpec has no field for them yet)
    _tolerations(ctx, spec.get("tolerations"), path + ("tolerations",))
    _scheduling(ctx, spec, path)
    from . import spec_fields  # it imports this module
    spec_fields.check_references(ctx, containers, path + ("containers",))
    hostname, subdomain = spec_fields.pod_naming(ctx, spec, path)
    return PodSpec(
        containers=containers,
        volumes=volumes,
        restart_policy=_enum(ctx, spec.get("restartPolicy"), path + ("restartPolicy",),
                             _RESTART_POLICIES, "Always"),
        termination_grace_period_seconds=grace,
        node_name=node_name,
        node_selector=pairs(selector),
        share_process_namespace=_bool(ctx, spec.get("shareProcessNamespace"),
                                      path + ("shareProcessNamespace",)),
        host_aliases=spec_fields.host_aliases(ctx, spec.get("hostAliases"), path + ("hostAliases",)),
        hostname=hostname,
        subdomain=subdomain,
        init_containers=inits,
    )


def _bool(ctx: _Ctx, value: Any, path: FieldPath) -> bool:
    if value is None:
        return False
    if not isinstance(value, bool):
        ctx.error(path, f"expected true or false, got {_describe(value)}")
        return False
    return value


@dataclass
class _Seen:
    """Names and ports already used in the pod (init and app containers share them)."""

    names: dict = field(default_factory=dict)
    ports: dict = field(default_factory=dict)
    host_ports: dict = field(default_factory=dict)
    port_names: dict = field(default_factory=dict)


def _unique(ctx: _Ctx, seen: dict, key: Any, path: FieldPath, what: str) -> None:
    """Record `key` at `path`; a second occurrence is an error pointing at the first."""
    if key in seen:
        ctx.error(path, f"duplicate {what} (first at {format_path(seen[key])})")
    else:
        seen[key] = path


def _containers(ctx: _Ctx, value: Any, path: FieldPath, volumes: set[str], seen: _Seen | None = None,
                init: bool = False, grace: int = 30) -> tuple[Container, ...]:
    if (value is None or value == []) and not init:
        ctx.error(path, "at least one container is required")
        return ()
    seen = seen or _Seen()
    names, ports, host_ports, port_names = seen.names, seen.ports, seen.host_ports, seen.port_names
    out = []
    for here, item in _items(ctx, value, path, "a container"):
        c = _container(ctx, item, here, volumes, init=init, grace=grace)
        if c.name:  # an invalid name was reported already
            _unique(ctx, names, c.name, here + ("name",), f"container name {c.name!r}")
        out.append(c)
        if init and not c.is_sidecar:
            continue  # a regular init container's ports are not the pod's (as in Kubernetes)
        for i, p in enumerate(c.ports):
            at = here + ("ports", i)
            # one network namespace per pod: two containers cannot bind the same port
            if p.container_port:
                _unique(ctx, ports, (p.container_port, p.protocol), at + ("containerPort",),
                        f"port {p.container_port}/{p.protocol} in this pod")
            if p.host_port is not None:
                _unique(ctx, host_ports, (p.host_port, p.protocol), at + ("hostPort",),
                        f"hostPort {p.host_port}/{p.protocol} in this pod")
            if p.name is not None:
                _unique(ctx, port_names, p.name, at + ("name",), f"port name {p.name!r}")
    return tuple(out)


def _container(ctx: _Ctx, c: dict, path: FieldPath, volumes: set[str], init: bool = False,
               grace: int = 30) -> Container:
    _check_fields(ctx, c, path, "Container")
    restart_policy = None
    if c.get("restartPolicy") is not None:
        if not init:
            ctx.error(path + ("restartPolicy",), "may not be set for non-init containers "
                                                 "(only an init container can be a sidecar)")
        else:
            restart_policy = _enum(ctx, c.get("restartPolicy"), path + ("restartPolicy",),
                                   ("Always",), "Always")
    sidecar = restart_policy == "Always"
    if init and not sidecar:
        for key in ("lifecycle", "livenessProbe", "readinessProbe", "startupProbe"):
            if c.get(key) is not None:
                ctx.error(path + (key,), "may not be set for init containers without "
                                         "restartPolicy Always")
    name = _required(ctx, c, path, "name", _LABEL_RULE, dns1123_label_problem)
    image = _required(ctx, c, path, "image", "an image reference such as 'nginx:1.27'",
                      image_problem)
    working_dir = _optional(ctx, c.get("workingDir"), path + ("workingDir",), absolute_path_problem)
    requests, limits = _resources(ctx, c.get("resources"), path + ("resources",))
    ports = _ports(ctx, c.get("ports"), path + ("ports",))
    port_names = {p.name for p in ports if p.name}
    probes = {key: _probe(ctx, c.get(key), path + (key,), port_names, key)
              for key in ("livenessProbe", "readinessProbe", "startupProbe")}
    post_start, pre_stop = _lifecycle(ctx, c.get("lifecycle"), path + ("lifecycle",), port_names, grace)
    return Container(
        name=name or "",
        image=image or "",
        command=_strings(ctx, c.get("command"), path + ("command",)),
        args=_strings(ctx, c.get("args"), path + ("args",)),
        env=_env(ctx, c.get("env"), path + ("env",)),
        working_dir=working_dir,
        ports=ports,
        requests=requests,
        limits=limits,
        volume_mounts=_mounts(ctx, c.get("volumeMounts"), path + ("volumeMounts",), volumes),
        image_pull_policy=_enum(ctx, c.get("imagePullPolicy"), path + ("imagePullPolicy",),
                                _PULL_POLICIES, default_pull_policy(image or "")),
        env_from=_env_from(ctx, c.get("envFrom"), path + ("envFrom",)),
        restart_policy=restart_policy,
        liveness_probe=probes["livenessProbe"],
        readiness_probe=probes["readinessProbe"],
        startup_probe=probes["startupProbe"],
        post_start=post_start,
        pre_stop=pre_stop,
    )


# ---------------------------------------------------------------- probes and hooks

_HTTP_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
_PROBE_HOST = re.compile(r"[A-Za-z0-9]([A-Za-z0-9.:-]*[A-Za-z0-9])?")
_PROBE_DEFAULTS = {"initialDelaySeconds": 0, "periodSeconds": 10, "timeoutSeconds": 1,
                   "successThreshold": 1, "failureThreshold": 3}


def _probe(ctx: _Ctx, value: Any, path: FieldPath, port_names: set[str], which: str) -> Probe | None:
    probe = _typed(ctx, value, path, dict)
    if probe is None:
        return None
    _check_fields(ctx, probe, path, "Probe")
    handler = _handler(ctx, probe, path, port_names, ("exec", "tcpSocket", "httpGet"), 0)
    numbers = {}
    for key, default in _PROBE_DEFAULTS.items():
        n = _int_in(ctx, probe.get(key), path + (key,), 0, None)
        # The apiserver's defaulting: an unset (or zero) period, timeout or threshold
        # takes the default; an initial delay of 0 is just 0.
        numbers[key] = n if n else default
    if which in ("livenessProbe", "startupProbe") and numbers["successThreshold"] != 1:
        ctx.error(path + ("successThreshold",), f"must be 1 for a {which[:-5]} probe")
    if handler is None:
        return None
    return Probe(handler, numbers["initialDelaySeconds"], numbers["periodSeconds"],
                 numbers["timeoutSeconds"], numbers["successThreshold"], numbers["failureThreshold"])


def _lifecycle(ctx: _Ctx, value: Any, path: FieldPath, port_names: set[str],
               grace: int) -> tuple[Handler | None, Handler | None]:
    lc = _typed(ctx, value, path, dict)
    if lc is None:
        return None, None
    _check_fields(ctx, lc, path, "Lifecycle")
    out = []
    for key in ("postStart", "preStop"):
        hook = _typed(ctx, lc.get(key), path + (key,), dict)
        if hook is None:
            out.append(None)
            continue
        _check_fields(ctx, hook, path + (key,), "LifecycleHandler")
        out.append(_handler(ctx, hook, path + (key,), port_names, ("exec", "httpGet", "sleep"), grace))
    return out[0], out[1]


def _handler(ctx: _Ctx, obj: dict, path: FieldPath, port_names: set[str], kinds: tuple[str, ...],
             grace: int) -> Handler | None:
    given = [k for k in kinds if obj.get(k) is not None]
    if len(given) != 1:
        what = "more than one handler" if given else "no handler"
        ctx.error(path, f"{what} given: exactly one of {', '.join(kinds)} is required")
        return None
    kind = given[0]
    here = path + (kind,)
    action = _typed(ctx, obj[kind], here, dict)
    if action is None:
        return None
    if kind == "exec":
        _check_fields(ctx, action, here, "ExecAction")
        command = _strings(ctx, action.get("command"), here + ("command",))
        if not command:
            ctx.error(here + ("command",), "required: a non-empty list of strings")
            return None
        return Handler("exec", command=command)
    if kind == "sleep":
        _check_fields(ctx, action, here, "SleepAction")
        if action.get("seconds") is None:
            ctx.error(here + ("seconds",), f"required field is missing (expected 1..{max(grace, 1)})")
        seconds = _int_in(ctx, action.get("seconds"), here + ("seconds",), 1, max(grace, 1))
        return None if seconds is None else Handler("sleep", seconds=seconds)
    _check_fields(ctx, action, here, "TCPSocketAction" if kind == "tcpSocket" else "HTTPGetAction")
    port = _probe_port(ctx, action.get("port"), here + ("port",), port_names)
    host = _optional(ctx, action.get("host"), here + ("host",),
                     lambda s: None if len(s) <= 253 and _PROBE_HOST.fullmatch(s) else
                     f"{_show(s)} is not a host name or IP address")
    if kind == "tcpSocket":
        return None if port is None else Handler("tcpSocket", host=host or "", port=port)
    path_ = _optional(ctx, action.get("path"), here + ("path",),
                      lambda s: None if s.startswith("/") and s.isprintable() and " " not in s else
                      f"{_show(s)} is not an absolute URL path (printable, no spaces)")
    headers = []
    for hp, item in _items(ctx, action.get("httpHeaders"), here + ("httpHeaders",), "a header"):
        _check_fields(ctx, item, hp, "HTTPHeader")
        name = _required(ctx, item, hp, "name", "an HTTP header name",
                         lambda s: None if _HTTP_TOKEN.fullmatch(s) else
                         f"{_show(s)} is not an HTTP header name")
        val = _checked(ctx, item.get("value") or "", hp + ("value",),
                       lambda s: None if s.isprintable() else
                       f"{_show(s)} contains control characters")
        if name is not None and val is not None:
            headers.append((name, val))
    if port is None:
        return None
    return Handler("httpGet", host=host or "", port=port, path=path_ or "/", headers=tuple(headers))


def _probe_port(ctx: _Ctx, value: Any, path: FieldPath, port_names: set[str]) -> int | str | None:
    if value is None:
        ctx.error(path, "required field is missing (expected 1..65535 or a container port name)")
        return None
    if isinstance(value, str):
        problem = port_name_problem(value)
        if problem:
            ctx.error(path, problem)
            return None
        if value not in port_names:
            known = ", ".join(sorted(port_names)) or "none"
            ctx.error(path, f"no container port named {_show(value)} (port names: {known})")
            return None
        return value
    return _int_in(ctx, value, path, 1, 65535)


def _strings(ctx: _Ctx, value: Any, path: FieldPath) -> tuple[str, ...] | None:
    """command/args: data passed verbatim (the renderer quotes it); only NUL is refused.
    An empty list means "unset" in Kubernetes, so it becomes None."""
    out = []
    for i, s in enumerate(_typed(ctx, value, path, list) or ()):
        if s is None:
            ctx.error(path + (i,), "expected a string, got null")
        elif (s := _checked(ctx, s, path + (i,), no_nul_problem)) is not None:
            out.append(s)
    return tuple(out) or None


def _env(ctx: _Ctx, value: Any, path: FieldPath) -> tuple[EnvVar, ...]:
    from .spec_fields import env  # it imports this module
    return env(ctx, value, path)


def _env_from(ctx: _Ctx, value: Any, path: FieldPath) -> tuple:
    from .spec_fields import env_from  # it imports this module
    return env_from(ctx, value, path)


def _env_plain(ctx: _Ctx, value: Any, path: FieldPath) -> tuple[EnvVar, ...]:
    out = []
    for here, item in _items(ctx, value, path, "an env entry"):
        _check_fields(ctx, item, here, "EnvVar")
        name = _required(ctx, item, here, "name", "a variable name such as 'LOG_LEVEL'",
                         env_name_problem)
        val = _checked(ctx, item.get("value"), here + ("value",), no_nul_problem)
        if name is not None:
            out.append(EnvVar(name=name, value=val or ""))
    return tuple(out)  # duplicates kept in order: the last one wins, as in Kubernetes


def _ports(ctx: _Ctx, value: Any, path: FieldPath) -> tuple[ContainerPort, ...]:
    out = []
    for here, item in _items(ctx, value, path, "a port"):
        _check_fields(ctx, item, here, "ContainerPort")
        if item.get("containerPort") is None:
            ctx.error(here + ("containerPort",), "required field is missing (expected 1..65535)")
        port = _int_in(ctx, item.get("containerPort"), here + ("containerPort",), 1, 65535)
        host = _int_in(ctx, item.get("hostPort"), here + ("hostPort",), 1, 65535)
        name = _optional(ctx, item.get("name"), here + ("name",), port_name_problem)
        protocol = _enum(ctx, item.get("protocol"), here + ("protocol",), _PROTOCOLS, "TCP")
        out.append(ContainerPort(container_port=port or 0, protocol=protocol, name=name,
                                 host_port=host))
    return tuple(out)


def _resources(ctx: _Ctx, value: Any, path: FieldPath) -> tuple[Resources, Resources]:
    res = _typed(ctx, value, path, dict) or {}
    _check_fields(ctx, res, path, "ResourceRequirements")
    requests = _resource_list(ctx, res.get("requests"), path + ("requests",))
    limits = _resource_list(ctx, res.get("limits"), path + ("limits",))
    for name, fmt in (("cpu", format_cpu), ("memory", format_memory)):
        want, cap = requests.get(name), limits.get(name)
        if want is not None and cap is not None and want > cap:
            ctx.error(path + ("requests", name), f"request {fmt(want)} must be less than or "
                      f"equal to the {name} limit {fmt(cap)}")
    # requests stay as given; Container.effective_requests applies "limit implies request"
    return (Resources(cpu_m=requests.get("cpu"), memory=requests.get("memory")),
            Resources(cpu_m=limits.get("cpu"), memory=limits.get("memory")))


def _resource_list(ctx: _Ctx, value: Any, path: FieldPath) -> dict[str, int]:
    out = {}
    for name, quantity in (_typed(ctx, value, path, dict) or {}).items():
        here = path + (name,)
        if name not in _RESOURCE_NAMES:
            ctx.error(here, f"resource {_show(name)} is not supported by podctl yet "
                            f"(supported: {', '.join(_RESOURCE_NAMES)})")
            continue
        try:
            out[name] = (parse_cpu if name == "cpu" else parse_memory)(quantity)
        except QuantityError as exc:
            ctx.error(here, str(exc))
    return out


def _mounts(ctx: _Ctx, value: Any, path: FieldPath, volumes: set[str]) -> tuple[VolumeMount, ...]:
    out = []
    targets: dict = {}
    for here, item in _items(ctx, value, path, "a volume mount"):
        _check_fields(ctx, item, here, "VolumeMount")
        name = _required(ctx, item, here, "name", "the name of a volume in spec.volumes")
        if name is not None and name not in volumes:
            known = ", ".join(sorted(volumes)) or "none"
            ctx.error(here + ("name",), f"no volume named {_show(name)} in spec.volumes "
                                        f"(volumes: {known})")
        mount_path = _required(ctx, item, here, "mountPath", "an absolute path",
                               lambda s: absolute_path_problem(s, colon=False))
        if mount_path is not None:
            _unique(ctx, targets, posixpath.normpath(mount_path), here + ("mountPath",),
                    f"mountPath {mount_path!r} in this container")
        read_only = _typed(ctx, item.get("readOnly"), here + ("readOnly",), bool)
        out.append(VolumeMount(name=name or "", mount_path=mount_path or "",
                               read_only=bool(read_only)))
    return tuple(out)


def _volumes(ctx: _Ctx, value: Any, path: FieldPath) -> tuple[Volume, ...]:
    out = []
    names: dict = {}
    for here, item in _items(ctx, value, path, "a volume"):
        _check_fields(ctx, item, here, "Volume")
        name = _required(ctx, item, here, "name", _LABEL_RULE, dns1123_label_problem)
        if name is not None:
            _unique(ctx, names, name, here + ("name",), f"volume name {name!r}")
        volume = _volume_source(ctx, item, here, name or "")
        if volume is not None:
            out.append(volume)
    return tuple(out)


def _volume_source(ctx: _Ctx, item: dict, path: FieldPath, name: str) -> Volume | None:
    sources = [k for k in _VOLUME_SOURCES if item.get(k) is not None]
    if len(sources) > 1:
        ctx.error(path, f"exactly one volume source is allowed, found {', '.join(sources)}")
        return None
    if not sources:
        ctx.error(path, "a volume source is required (supported: emptyDir, hostPath, configMap, secret; "
                        "write 'emptyDir: {}' for an empty directory)")
        return None
    kind = sources[0]
    here = path + (kind,)
    if kind not in ("emptyDir", "hostPath", "configMap", "secret"):
        return None  # reported as not supported yet by _check_fields
    source = _typed(ctx, item[kind], here, dict)
    if source is None:
        return None
    if kind in ("configMap", "secret"):
        from .spec_fields import config_volume  # it imports this module
        return config_volume(ctx, kind, source, here, name)
    if kind == "emptyDir":
        _check_fields(ctx, source, here, "EmptyDirVolumeSource")
        size = None
        if source.get("sizeLimit") is not None:
            try:
                size = parse_memory(source["sizeLimit"])
            except QuantityError as exc:
                ctx.error(here + ("sizeLimit",), str(exc))
        medium = _enum(ctx, source.get("medium"), here + ("medium",), _MEDIA, "")
        return Volume(name=name, kind=kind, medium=medium, size_limit=size)
    _check_fields(ctx, source, here, "HostPathVolumeSource")
    host_path = _required(ctx, source, here, "path", "an absolute path", absolute_path_problem)
    kind_of = _enum(ctx, source.get("type"), here + ("type",), _HOST_PATH_TYPES, "")
    return Volume(name=name, kind=kind, path=host_path or "", host_path_type=kind_of)


# ---------------------------------------------------------------- Pod -> Kubernetes


def pod_to_k8s(pod: Pod) -> dict:
    """A Kubernetes-shaped Pod (apiVersion, kind, metadata, spec) with every default
    spelled out, so validate_pod(pod_to_k8s(p), p.source) == p."""
    meta: dict[str, Any] = {"name": pod.meta.name, "namespace": pod.meta.namespace}
    if pod.meta.labels:
        meta["labels"] = dict(pod.meta.labels)
    if pod.meta.annotations:
        meta["annotations"] = dict(pod.meta.annotations)
    spec: dict[str, Any] = {"containers": [_container_to_k8s(c) for c in pod.spec.containers]}
    if pod.spec.init_containers:
        spec["initContainers"] = [_container_to_k8s(c) for c in pod.spec.init_containers]
    if pod.spec.volumes:
        spec["volumes"] = [_volume_to_k8s(v) for v in pod.spec.volumes]
    spec["restartPolicy"] = pod.spec.restart_policy
    spec["terminationGracePeriodSeconds"] = pod.spec.termination_grace_period_seconds
    if pod.spec.node_name is not None:
        spec["nodeName"] = pod.spec.node_name
    if pod.spec.node_selector:
        spec["nodeSelector"] = dict(pod.spec.node_selector)
    if pod.spec.share_process_namespace:
        spec["shareProcessNamespace"] = True
    if pod.spec.host_aliases:
        spec["hostAliases"] = [{"ip": ip, "hostnames": list(names)} for ip, names in pod.spec.host_aliases]
    if pod.spec.hostname:
        spec["hostname"] = pod.spec.hostname
    if pod.spec.subdomain:
        spec["subdomain"] = pod.spec.subdomain
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": spec}


def _container_to_k8s(c: Container) -> dict:
    out: dict[str, Any] = {"name": c.name, "image": c.image}
    if c.command is not None:
        out["command"] = list(c.command)
    if c.args is not None:
        out["args"] = list(c.args)
    if c.working_dir is not None:
        out["workingDir"] = c.working_dir
    if c.ports:
        out["ports"] = [_port_to_k8s(p) for p in c.ports]
    from .spec_fields import env_from_to_k8s, env_to_k8s
    if c.env_from:
        out["envFrom"] = [env_from_to_k8s(e) for e in c.env_from]
    if c.env:
        out["env"] = [env_to_k8s(e) for e in c.env]
    resources = {k: v for k, v in (("requests", _resources_to_k8s(c.requests)),
                                   ("limits", _resources_to_k8s(c.limits))) if v}
    if resources:
        out["resources"] = resources
    if c.volume_mounts:
        out["volumeMounts"] = [{"name": m.name, "mountPath": m.mount_path} for m in c.volume_mounts]
        for mount, m in zip(out["volumeMounts"], c.volume_mounts):
            if m.read_only:
                mount["readOnly"] = True
    out["imagePullPolicy"] = c.image_pull_policy
    if c.restart_policy is not None:
        out["restartPolicy"] = c.restart_policy
    for key, probe in (("livenessProbe", c.liveness_probe), ("readinessProbe", c.readiness_probe),
                       ("startupProbe", c.startup_probe)):
        if probe is not None:
            out[key] = {**_handler_to_k8s(probe.handler),
                        "initialDelaySeconds": probe.initial_delay_seconds,
                        "periodSeconds": probe.period_seconds, "timeoutSeconds": probe.timeout_seconds,
                        "successThreshold": probe.success_threshold,
                        "failureThreshold": probe.failure_threshold}
    hooks = {k: _handler_to_k8s(h) for k, h in (("postStart", c.post_start), ("preStop", c.pre_stop))
             if h is not None}
    if hooks:
        out["lifecycle"] = hooks
    return out


def _handler_to_k8s(h: Handler) -> dict:
    if h.kind == "exec":
        return {"exec": {"command": list(h.command)}}
    if h.kind == "sleep":
        return {"sleep": {"seconds": h.seconds}}
    action: dict[str, Any] = {"port": h.port}
    if h.host:
        action["host"] = h.host
    if h.kind == "httpGet":
        action["path"] = h.path
        action["scheme"] = "HTTP"
        if h.headers:
            action["httpHeaders"] = [{"name": n, "value": v} for n, v in h.headers]
    return {h.kind: action}


def _port_to_k8s(p: ContainerPort) -> dict:
    out: dict[str, Any] = {"containerPort": p.container_port, "protocol": p.protocol}
    if p.name is not None:
        out["name"] = p.name
    if p.host_port is not None:
        out["hostPort"] = p.host_port
    return out


def _resources_to_k8s(r: Resources) -> dict:
    out = {}
    if r.cpu_m is not None:
        out["cpu"] = format_cpu(r.cpu_m)
    if r.memory is not None:
        out["memory"] = format_memory(r.memory)
    return out


def _volume_to_k8s(v: Volume) -> dict:
    if v.kind in ("configMap", "secret"):
        from .spec_fields import config_volume_to_k8s
        return config_volume_to_k8s(v)
    if v.kind == "hostPath":
        source = {"path": v.path, **({"type": v.host_path_type} if v.host_path_type else {})}
    else:
        source = {"medium": v.medium} if v.medium else {}
        if v.size_limit is not None:
            source["sizeLimit"] = format_memory(v.size_limit)
    return {"name": v.name, v.kind: source}


# ---------------------------------------------------------------- kinds

def _tolerations(ctx: _Ctx, value: Any, path: FieldPath) -> tuple:
    from .workloads.validation import tolerations  # it imports this module
    return tolerations(ctx, value, path)


def _scheduling(ctx: _Ctx, spec: dict, path: FieldPath) -> None:
    """spec.affinity and spec.topologySpreadConstraints (kept in the raw document, read
    by scheduler/kube.py)."""
    from .scheduling_fields import affinity, topology_spread_constraints  # it imports this module
    affinity(ctx, spec.get("affinity"), path + ("affinity",))
    topology_spread_constraints(ctx, spec.get("topologySpreadConstraints"),
                                path + ("topologySpreadConstraints",))


def _workload(kind: str) -> Callable[[_Ctx, dict], Any]:
    """The validator of a workload kind, in orchestrator/workloads/validation.py."""
    def validate(ctx: _Ctx, doc: dict) -> Any:
        from .workloads.validation import VALIDATORS  # it imports this module
        return VALIDATORS[kind](ctx, doc)
    return validate


def _config_object(ctx: _Ctx, doc: dict) -> Any:
    from .configobjects import validate  # it imports this module
    return validate(ctx, doc)


def validate_pod_template(doc: Any, source: str, path: FieldPath | str = ("spec", "template")):
    """A workload's pod template (metadata + spec, validated by the Pod rules) ->
    workloads.specs.PodTemplate, or ManifestError(s) naming `source` and `path`
    (a tuple of fields, or dotted text such as "spec.template")."""
    from .workloads.validation import pod_template
    if isinstance(path, str):
        path = tuple(path.split(".")) if path else ()
    ctx = _Ctx(file=source)
    template = pod_template(ctx, doc, tuple(path))
    _raise_collected(ctx.errors)
    return template


# (apiVersion, kind) -> validator returning an object with `.meta` (an ObjectMeta)
KINDS: dict[tuple[str, str], Callable[[_Ctx, dict], Any]] = {
    ("v1", "Pod"): _pod,
    ("v1", "ConfigMap"): _config_object,  # -> configobjects.ConfigObject
    ("v1", "Secret"): _config_object,
    ("apps/v1", "Deployment"): _workload("Deployment"),  # -> workloads.specs.Deployment
    ("batch/v1", "Job"): _workload("Job"),  # -> workloads.specs.Job
    ("apps/v1", "DaemonSet"): _workload("DaemonSet"),  # -> workloads.specs.DaemonSet
    ("apps/v1", "StatefulSet"): _workload("StatefulSet"),  # -> workloads.specs.StatefulSet
}

# Kubernetes kinds podctl will grow into: a clear "not yet" rather than "unknown kind"
KNOWN_KINDS = {"Deployment": "apps/v1", "StatefulSet": "apps/v1", "DaemonSet": "apps/v1",
               "ReplicaSet": "apps/v1", "Job": "batch/v1", "CronJob": "batch/v1",
               "Service": "v1"}


def _kind_problem(ctx: _Ctx, api: Any, kind: Any) -> None:
    """Record why (api, kind) has no validator."""
    supported = ", ".join(sorted({k for _, k in KINDS}))
    if not isinstance(kind, str) or not kind:
        ctx.error(("kind",), f"required: a string such as 'Pod' (supported: {supported})")
    if not isinstance(api, str) or not api:
        ctx.error(("apiVersion",), f"required: a string such as 'v1' (supported: {supported})")
    if not (isinstance(kind, str) and kind and isinstance(api, str) and api):
        return
    allowed = [a for a, k in KINDS if k == kind]
    if allowed:
        ctx.error(("apiVersion",), f"{_show(api)} is not valid for kind {kind} "
                                   f"(allowed: {', '.join(allowed)})")
    elif kind in KNOWN_KINDS:
        ctx.error(("kind",), f"kind {kind} is not supported by podctl yet (supported: {supported})")
    elif kind == "List":
        ctx.error(("kind",), "a List may appear only at the top of a document")
    else:
        close = difflib.get_close_matches(kind, [k for _, k in KINDS] + list(KNOWN_KINDS), 1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        ctx.error(("kind",), f"unknown kind {_show(kind)}{hint} (supported: {supported})")


def _validate_object(ctx: _Ctx, doc: Any) -> Manifest | None:
    if not isinstance(doc, dict):
        ctx.error((), "expected a Kubernetes object (a mapping with apiVersion and kind), "
                      f"got {_describe(doc)}")
        return None
    api, kind = doc.get("apiVersion"), doc.get("kind")
    validator = KINDS.get((api, kind)) if isinstance(api, str) and isinstance(kind, str) else None
    if validator is None:
        _kind_problem(ctx, api, kind)
        return None
    before = len(ctx.errors)
    obj = validator(ctx, doc)
    if len(ctx.errors) > before:
        return None
    return Manifest(api_version=api, kind=kind, name=obj.meta.name, namespace=obj.meta.namespace,
                    obj=obj, raw=doc, source=ctx.source())


def validate_pod(doc: dict, source: str) -> Pod:
    """A Pod document (apiVersion v1, kind Pod) -> Pod, or ManifestError(s) naming `source`."""
    ctx = _Ctx(file=source)
    manifest = _validate_object(ctx, doc)
    if manifest is not None and not isinstance(manifest.obj, Pod):
        ctx.error(("kind",), f"expected kind Pod, got {manifest.kind}")
    _raise_collected(ctx.errors)
    assert manifest is not None
    return manifest.obj


# ---------------------------------------------------------------- YAML with line numbers


class _Loader(yaml.SafeLoader):
    """safe_load, except that every value is JSON (Kubernetes turns YAML into JSON, and
    the store keeps `raw` as JSON): timestamps and !!binary stay the strings they are
    written as (a label value 2024-01-01 is a string in Kubernetes too); !!set is refused."""

    def construct_scalar_text(self, node: yaml.Node) -> str:
        return self.construct_scalar(node)

    def refuse(self, node: yaml.Node) -> None:
        raise yaml.constructor.ConstructorError(None, None, f"{node.tag} has no JSON form",
                                                node.start_mark)


_Loader.add_constructor("tag:yaml.org,2002:timestamp", _Loader.construct_scalar_text)
_Loader.add_constructor("tag:yaml.org,2002:binary", _Loader.construct_scalar_text)
_Loader.add_constructor("tag:yaml.org,2002:set", _Loader.refuse)
_MERGE = "tag:yaml.org,2002:merge"


@dataclass
class _Document:
    index: int  # 1-based position in the stream
    data: Any
    lines: dict  # path -> 1-based line
    duplicates: list  # (path, key, line, first line)


_MAX_MERGED = 10_000  # pairs one mapping may gain through `<<` merges


class _Unsafe(Exception):
    """A document PyYAML would build but podctl refuses: (line, reason)."""


def _index_nodes(loader: yaml.SafeLoader, root: yaml.Node) -> tuple[dict, list]:
    """Lines of every path, and duplicate keys, from the node tree: before construction,
    which would apply `<<` merges and let the last duplicate key win silently.

    Each node is visited once, so aliases cost nothing here; an alias to its own
    ancestor (a cycle: `raw` could never be stored) and merges that multiply (PyYAML
    copies merged pairs, exponentially for chained merges) raise _Unsafe."""
    lines = {(): root.start_mark.line + 1}
    duplicates: list = []
    done: set[int] = set()
    active: set[int] = set()  # the nodes on the current path, to spot cycles
    merged: dict[int, int] = {}

    def visit(path: FieldPath | None, node: yaml.Node) -> None:  # path None: inside a merge
        if id(node) in active:
            raise _Unsafe(node.start_mark.line + 1, "an alias refers to a node containing it")
        if id(node) in done:
            return
        active.add(id(node))
        if isinstance(node, yaml.MappingNode):
            visit_mapping(path, node)
        elif isinstance(node, yaml.SequenceNode):
            for i, item in enumerate(node.value):
                if path is not None:
                    lines.setdefault(path + (i,), item.start_mark.line + 1)
                visit(None if path is None else path + (i,), item)
        active.discard(id(node))
        done.add(id(node))

    def visit_mapping(path: FieldPath | None, node: yaml.MappingNode) -> None:
        first: dict = {}
        for key_node, value_node in node.value:
            if key_node.tag == _MERGE:
                if _merged_size(node, merged) > _MAX_MERGED:
                    raise _Unsafe(key_node.start_mark.line + 1,
                                  f"merge keys (<<) expand to more than {_MAX_MERGED} entries")
                visit(None, value_node)
                continue
            if not isinstance(key_node, yaml.ScalarNode):
                continue  # an unhashable key: the constructor reports it
            key = loader.construct_object(key_node)  # as safe_load reads it: 80 != "80"
            line = key_node.start_mark.line + 1
            if key in first:
                if path is not None:
                    duplicates.append((path, key, line, first[key]))
                continue
            first[key] = line
            if path is not None:
                lines.setdefault(path + (key,), line)
            visit(None if path is None else path + (key,), value_node)

    visit((), root)
    return lines, duplicates


def _merged_size(node: yaml.Node, memo: dict[int, int]) -> int:
    """How many pairs `node` holds once its merges are flattened, as PyYAML does it."""
    if id(node) in memo or not isinstance(node, yaml.MappingNode):
        return memo.get(id(node), 0)
    memo[id(node)] = 0  # a merge cycle counts nothing (PyYAML then fails on its own)
    total = 0
    for key_node, value_node in node.value:
        if key_node.tag != _MERGE:
            total += 1
            continue
        sources = value_node.value if isinstance(value_node, yaml.SequenceNode) else [value_node]
        total += sum(_merged_size(n, memo) for n in sources)
    memo[id(node)] = total
    return total


def _yaml_documents(text: str, file: str) -> tuple[list[_Document], list[ManifestError]]:
    docs: list[_Document] = []
    loader = None
    try:
        loader = _Loader(text)  # the reader rejects control characters right here
        while loader.check_node():
            node = loader.get_node()
            lines, duplicates = _index_nodes(loader, node)
            docs.append(_Document(len(docs) + 1, loader.construct_document(node), lines,
                                  duplicates))
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"{file}:{mark.line + 1}:{mark.column + 1}" if mark else file
        what = " ".join(p for p in (exc.context, exc.problem) if p)
        syntax = "" if isinstance(exc, yaml.constructor.ConstructorError) else " syntax"
        return docs, [ManifestError(f"{where} (document {len(docs) + 1})", "",
                                    f"YAML{syntax} error: {what}")]
    except yaml.YAMLError as exc:  # e.g. a control character; ReaderError has a position
        line = text.count("\n", 0, getattr(exc, "position", 0)) + 1
        return docs, [ManifestError(f"{file}:{line} (document {len(docs) + 1})", "",
                                    f"YAML error: {exc}".splitlines()[0])]
    except _Unsafe as exc:
        line, reason = exc.args
        return docs, [ManifestError(f"{file}:{line} (document {len(docs) + 1})", "", reason)]
    except RecursionError:
        return docs, [ManifestError(f"{file} (document {len(docs) + 1})", "",
                                    "nested too deeply")]
    finally:
        if loader is not None:
            loader.dispose()
    return docs, []


def _json_document(text: str) -> _Document | None:
    """JSON text with JSON semantics; lines and duplicate keys from the YAML node tree
    (tabs are only whitespace in JSON, so spaces keep every line in place)."""
    try:
        data = json.loads(text)
    except (ValueError, RecursionError):
        return None
    loader = _Loader(text.replace("\t", " "))
    try:
        lines, duplicates = _index_nodes(loader, loader.get_single_node())
    except (yaml.YAMLError, RecursionError):
        lines, duplicates = {}, _json_duplicates(text)
    finally:
        loader.dispose()
    return _Document(1, data, lines, duplicates)


def _json_duplicates(text: str) -> list:
    found = []

    def hook(items):
        keys = [k for k, _ in items]
        found.extend(((), k, None, None) for i, k in enumerate(keys) if k in keys[:i])
        return dict(items)

    json.loads(text, object_pairs_hook=hook)
    return found


def _documents(text: str, file: str) -> tuple[list[_Document], list[ManifestError]]:
    doc = _json_document(text) if text.lstrip().startswith(("{", "[")) else None
    return ([doc], []) if doc is not None else _yaml_documents(text, file)


def _parse(text: str, file: str) -> tuple[list[Manifest], list[ManifestError]]:
    docs, syntax_errors = _documents(text, file)
    manifests: list[Manifest] = []
    errors: list[ManifestError] = []
    for doc in docs:
        ctx = _Ctx(file, f"document {doc.index}", doc.lines)
        for path, key, line, first in doc.duplicates:
            again = f" (first at line {first})" if first else ""
            ctx.error(path + (key,), f"duplicate key {_show(key)}{again}; YAML would silently "
                                     "keep only the last one", line=line)
        for item_ctx, obj in _objects(ctx, doc.data):
            manifest = _validate_object(item_ctx, obj)
            if manifest is not None:
                manifests.append(manifest)
            if item_ctx is not ctx:
                ctx.errors += item_ctx.errors
        # any error at all fails the whole call, so nothing is applied half-way
        errors += sorted(ctx.errors, key=lambda e: e.line)
    return manifests, errors + syntax_errors  # documents before a syntax error count


def _objects(ctx: _Ctx, data: Any) -> list[tuple[_Ctx, Any]]:
    """The objects of one document: none if empty, the items of a `kind: List`, or itself."""
    if data is None:
        return []
    if not (isinstance(data, dict) and data.get("kind") == "List"):
        return [(ctx, data)]
    _check_fields(ctx, data, (), "List")
    if data.get("apiVersion") != "v1":
        ctx.error(("apiVersion",), f"{_show(data.get('apiVersion'))} is not valid for kind "
                                   "List (allowed: v1)")
    items = _typed(ctx, data.get("items"), ("items",), list) or []
    return [(_Ctx(ctx.file, f"{ctx.label}, items[{i}]", ctx.lines, ("items", i)), item)
            for i, item in enumerate(items)]


def parse_documents(text: str, source: str) -> list[Manifest]:
    """Every object of a YAML/JSON stream; `source` names it in errors (e.g. the file)."""
    manifests, errors = _parse(text, source)
    errors += _duplicate_objects(manifests)
    _raise_collected(errors)
    return manifests


def _duplicate_objects(manifests: list[Manifest]) -> list[ManifestError]:
    first: dict[tuple[str, str, str], Manifest] = {}
    errors = []
    for m in manifests:
        key = (m.kind, m.namespace, m.name)
        if key in first:
            errors.append(ManifestError(m.source, "metadata.name",
                                        f"duplicate {m.kind} {m.namespace}/{m.name} "
                                        f"(also defined at {first[key].source})"))
        else:
            first[key] = m
    return errors


# ---------------------------------------------------------------- files


def _inputs(paths: Iterable[Path | str]) -> tuple[list[tuple[str, Path | None]], list]:
    """(label, path) for each file to read; path None is stdin."""
    out: list[tuple[str, Path | None]] = []
    errors = []
    for p in paths:
        if str(p) == "-":
            out.append((STDIN, None))
        elif Path(p).is_dir():
            files = sorted(f for f in Path(p).iterdir()
                           if f.suffix in MANIFEST_SUFFIXES and f.is_file())
            if not files:
                errors.append(ManifestError(str(p), "", "no *.yaml, *.yml or *.json files "
                                                       "in this directory (not recursive)"))
            out.extend((str(f), f) for f in files)
        else:
            out.append((str(p), Path(p)))
    return out, errors


def _read(label: str, path: Path | None) -> str:
    if path is None:
        return sys.stdin.read()
    try:
        return path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ManifestError(label, "", f"not UTF-8 text (byte {exc.start})") from None
    except OSError as exc:
        raise ManifestError(label, "", f"cannot read: {exc.strerror or exc}") from None


def load_manifests(paths: Iterable[Path | str]) -> list[Manifest]:
    """Every object in `paths` (files, directories, "-" for stdin), validated together:
    all errors of all inputs are raised at once, including duplicate objects."""
    inputs, errors = _inputs(paths)
    manifests: list[Manifest] = []
    for label, path in inputs:
        try:
            text = _read(label, path)
        except ManifestError as exc:
            errors.append(exc)
            continue
        found, problems = _parse(text, label)
        manifests += found
        errors += problems
    errors += _duplicate_objects(manifests)
    _raise_collected(errors)
    return manifests
