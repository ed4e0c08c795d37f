"""orchestrator.manifests: Kubernetes YAML -> validated Pods, and back. Pure, table-driven."""

from __future__ import annotations

import copy
import io
import json
import re
from pathlib import Path

import pytest
import yaml

from orchestrator.errors import ManifestError, UsageError
from orchestrator.manifests import (
    KNOWN_KINDS,
    OBJECT_FIELDS,
    ManifestErrors,
    NoOp,
    NotYet,
    default_pull_policy,
    fields_markdown,
    load_manifests,
    parse_documents,
    pod_to_k8s,
    validate_pod,
)
from orchestrator.model import (
    Container,
    ContainerPort,
    EnvVar,
    ObjectMeta,
    Pod,
    PodSpec,
    Resources,
    Volume,
    VolumeMount,
)

EXAMPLES = Path("/work/shared/k8s-examples")

# Every supported field, and the accepted no-ops, in one pod.
FULL_POD_YAML = """\
apiVersion: v1
kind: Pod
metadata:
  name: web
  namespace: shop
  labels:
    app.kubernetes.io/name: web
    tier: ""
  annotations:
    example.com/note: "any text: 'quotes', $(x), `y`; z"
  uid: 0b5e5c7e-1111-2222-3333-444455556666
  resourceVersion: "12345"
  creationTimestamp: 2024-01-01T00:00:00Z
  generation: 3
  managedFields: [{manager: kubectl}]
  selfLink: /api/v1/namespaces/shop/pods/web
spec:
  restartPolicy: OnFailure
  terminationGracePeriodSeconds: 10
  nodeName: node-1.example.com
  nodeSelector:
    disktype: ssd
  dnsPolicy: ClusterFirst
  schedulerName: default-scheduler
  enableServiceLinks: false
  hostNetwork: false
  securityContext: {}
  volumes:
  - name: cache
    emptyDir: {medium: Memory, sizeLimit: 64Mi}
  - name: logs
    hostPath: {path: /var/log/web, type: DirectoryOrCreate}
  - name: scratch
    emptyDir: {}
  containers:
  - name: app
    image: registry.example.com:5000/shop/web:1.2
    imagePullPolicy: Never
    command: [/bin/app]
    args: [--port, "8080"]
    workingDir: /srv
    env:
    - {name: MODE, value: prod}
    - {name: EMPTY}
    - {name: MODE, value: debug}
    ports:
    - {containerPort: 8080, name: http}
    - {containerPort: 8125, protocol: UDP, hostPort: 8125}
    resources:
      requests: {cpu: 250m, memory: 64Mi}
      limits: {cpu: "1", memory: 128Mi}
    volumeMounts:
    - {name: cache, mountPath: /cache}
    - {name: logs, mountPath: /var/log/web, readOnly: true}
    terminationMessagePath: /dev/termination-log
    terminationMessagePolicy: File
    tty: false
    securityContext: {}
  - name: sidecar
    image: busybox
    resources:
      limits: {memory: 32Mi}
    volumeMounts:
    - {name: scratch, mountPath: /scratch}
status:
  phase: Running
"""

FULL_POD_SOURCE = "full.yaml:1 (document 1)"

FULL_POD = Pod(
    meta=ObjectMeta(
        name="web",
        namespace="shop",
        labels=(("app.kubernetes.io/name", "web"), ("tier", "")),
        annotations=(("example.com/note", "any text: 'quotes', $(x), `y`; z"),),
    ),
    spec=PodSpec(
        containers=(
            Container(
                name="app",
                image="registry.example.com:5000/shop/web:1.2",
                command=("/bin/app",),
                args=("--port", "8080"),
                env=(EnvVar("MODE", "prod"), EnvVar("EMPTY", ""), EnvVar("MODE", "debug")),
                working_dir="/srv",
                ports=(ContainerPort(8080, "TCP", "http"), ContainerPort(8125, "UDP", None, 8125)),
                requests=Resources(cpu_m=250, memory=64 * 2**20),
                limits=Resources(cpu_m=1000, memory=128 * 2**20),
                volume_mounts=(VolumeMount("cache", "/cache"),
                               VolumeMount("logs", "/var/log/web", read_only=True)),
                image_pull_policy="Never",
            ),
            Container(
                name="sidecar",
                image="busybox",
                limits=Resources(memory=32 * 2**20),
                volume_mounts=(VolumeMount("scratch", "/scratch"),),
                image_pull_policy="Always",
            ),
        ),
        volumes=(
            Volume("cache", "emptyDir", medium="Memory", size_limit=64 * 2**20),
            Volume("logs", "hostPath", path="/var/log/web", host_path_type="DirectoryOrCreate"),
            Volume("scratch", "emptyDir"),
        ),
        restart_policy="OnFailure",
        termination_grace_period_seconds=10,
        node_name="node-1.example.com",
        node_selector=(("disktype", "ssd"),),
    ),
    source=FULL_POD_SOURCE,
)

MINIMAL = {
    "apiVersion": "v1",
    "kind": "Pod",
    "metadata": {"name": "web"},
    "spec": {
        "containers": [{"name": "app", "image": "nginx:1.27",
                        "volumeMounts": [{"name": "data", "mountPath": "/data"}]}],
        "volumes": [{"name": "data", "emptyDir": {}}],
    },
}

DELETE = object()


def mutated(changes: dict) -> dict:
    """MINIMAL with {"a.b[0].c": value} applied (DELETE removes the key)."""
    doc = copy.deepcopy(MINIMAL)
    for dotted, value in changes.items():
        parts = [int(p) if p.isdigit() else p for p in re.findall(r"[^.\[\]]+", dotted)]
        parent = doc
        for part in parts[:-1]:
            parent = parent[part]
        if value is DELETE:
            del parent[parts[-1]]
        else:
            parent[parts[-1]] = value
    return doc


def errors_of(text: str, source: str = "bad.yaml") -> str:
    with pytest.raises(ManifestError) as info:
        parse_documents(text, source)
    return str(info.value)


def parse_one(text: str, source: str = "ok.yaml") -> Pod:
    (manifest,) = parse_documents(text, source)
    return manifest.obj


# ---------------------------------------------------------------- valid pods


def test_full_pod_parses_to_the_expected_model():
    (m,) = parse_documents(FULL_POD_YAML, "full.yaml")
    assert m.obj == FULL_POD
    assert (m.api_version, m.kind, m.name, m.namespace) == ("v1", "Pod", "web", "shop")
    assert m.source == FULL_POD_SOURCE
    assert m.raw["status"] == {"phase": "Running"}  # kept in raw, ignored in the object
    assert m.raw["metadata"]["creationTimestamp"] == "2024-01-01T00:00:00Z"  # JSON-safe


def test_full_pod_round_trips_through_k8s_yaml_and_json():
    doc = pod_to_k8s(FULL_POD)
    assert validate_pod(doc, FULL_POD_SOURCE) == FULL_POD
    # and through the text a user or the store would see
    for text in (yaml.safe_dump(doc), json.dumps(doc, indent=2)):
        assert parse_one(text, "x").spec == FULL_POD.spec


def test_limit_without_request_keeps_request_unset_but_effective():
    sidecar = FULL_POD.spec.containers[1]
    assert sidecar.requests == Resources()
    assert sidecar.effective_requests() == Resources(memory=32 * 2**20)


def test_minimal_pod_gets_kubernetes_defaults():
    pod = validate_pod(MINIMAL, "m.yaml")
    assert pod.namespace == "default"
    assert pod.spec.restart_policy == "Always"
    assert pod.spec.termination_grace_period_seconds == 30
    assert pod.spec.containers[0].image_pull_policy == "IfNotPresent"
    assert pod.spec.containers[0].command is None and pod.spec.containers[0].args is None
    assert pod.source == "m.yaml"


@pytest.mark.parametrize("image, policy", [
    ("nginx", "Always"),
    ("nginx:latest", "Always"),
    ("nginx:1.27", "IfNotPresent"),
    ("registry:5000/nginx", "Always"),  # the port is not a tag
    ("registry:5000/nginx:1.2", "IfNotPresent"),
    ("nginx@sha256:" + "a" * 64, "IfNotPresent"),
    ("nginx:latest@sha256:" + "a" * 64, "Always"),
])
def test_default_image_pull_policy_follows_kubernetes(image, policy):
    assert default_pull_policy(image) == policy
    assert validate_pod(mutated({"spec.containers[0].image": image}), "x") \
        .spec.containers[0].image_pull_policy == policy


@pytest.mark.parametrize("extra", [
    {"status": {"phase": "Pending", "conditions": []}},
    {"metadata.uid": "abc", "metadata.resourceVersion": "7", "metadata.generation": 1,
     "metadata.managedFields": [], "metadata.selfLink": "/x", "metadata.creationTimestamp": None},
    {"spec.initContainers": [], "spec.tolerations": None},  # null and [] ask for nothing
    {"spec.containers[0].resources": {}},
    {"metadata.namespace": "", "spec.nodeName": "", "spec.containers[0].workingDir": ""},
    {"spec.containers[0].command": [], "spec.containers[0].env": [{"name": "X", "value": None}]},
], ids=["status", "server-set-metadata", "empty-not-yet", "empty-resources", "empty-strings",
        "empty-lists-and-null-value"])
def test_fields_that_ask_for_nothing_are_accepted(extra):
    pod = validate_pod(mutated(extra), "x")
    assert pod.name == "web" and pod.namespace == "default"


WHERE = {"PodSpec": "spec", "Container": "spec.containers[0]"}
NO_OPS = [(obj, name, value) for obj, table in OBJECT_FIELDS.items() if obj in WHERE
          for name, rule in table.items() if isinstance(rule, NoOp) for value in rule.values]


@pytest.mark.parametrize("obj, name, value", NO_OPS, ids=[f"{o}.{n}={v}" for o, n, v in NO_OPS])
def test_every_no_op_value_in_the_table_is_accepted(obj, name, value):
    assert validate_pod(mutated({f"{WHERE[obj]}.{name}": value}), "x").name == "web"


def test_fields_table_renders_for_the_readme():
    table = fields_markdown()
    assert "| Container | `resizePolicy` | not supported yet |" in table
    assert "| Container | `livenessProbe` | supported: exec, tcpSocket, httpGet; a failure restarts the container |" in table
    assert '| PodSpec | `dnsPolicy` | accepted as "ClusterFirst", "Default"' in table
    assert "| ObjectMeta | `uid` | ignored" in table


# ---------------------------------------------------------------- the shared examples


@pytest.mark.skipif(not EXAMPLES.is_dir(), reason="shared k8s examples not present")
@pytest.mark.parametrize("name, not_yet", [
    ("pods__two-container-pod.yaml", []),
    ("debug__counter-pod.yaml", []),
    ("pods__multi-container__startup-coordination.yaml", []),
])
def test_shared_examples_parse_or_fail_only_with_not_yet(name, not_yet):
    path = EXAMPLES / name
    if not not_yet:
        (m,) = load_manifests([path])
        assert isinstance(m.obj, Pod) and m.source.startswith(f"{path}:")
        assert validate_pod(pod_to_k8s(m.obj), m.obj.source) == m.obj
        return
    with pytest.raises(ManifestError) as info:
        load_manifests([path])
    lines = str(info.value).splitlines()
    assert len(lines) == len(not_yet)
    for line, what in zip(lines, not_yet):
        assert line.startswith(str(path)) and what in line
        assert "is not supported by podctl yet" in line or line.endswith("not supported by podctl yet")


@pytest.mark.skipif(not EXAMPLES.is_dir(), reason="shared k8s examples not present")
def test_shared_examples_content():
    two = load_manifests([EXAMPLES / "pods__two-container-pod.yaml"])[0].obj
    assert [c.name for c in two.spec.containers] == ["nginx-container", "debian-container"]
    assert two.spec.restart_policy == "Never"
    assert two.spec.containers[1].command == ("/bin/sh",)
    assert two.spec.containers[1].volume_mounts == (VolumeMount("shared-data", "/pod-data"),)
    counter = load_manifests([EXAMPLES / "debug__counter-pod.yaml"])[0].obj
    assert counter.spec.containers[0].args[2] == \
        'i=0; while true; do echo "$i: $(date)"; i=$((i+1)); sleep 1; done'


# ---------------------------------------------------------------- errors, one table

LABEL = "DNS-1123 label"
NOT_YET = "not supported by podctl yet"

# (id, changes to MINIMAL, field path in the message, other fragments that must appear)
ERROR_CASES = [
    # kinds
    ("no-apiVersion", {"apiVersion": DELETE}, "apiVersion", ["required", "Pod"]),
    ("no-kind", {"kind": DELETE}, "kind", ["required", "supported: ConfigMap, DaemonSet, Deployment, Job, Pod, Secret"]),
    ("pod-wrong-api", {"apiVersion": "apps/v1"}, "apiVersion",
     ["'apps/v1' is not valid for kind Pod", "allowed: v1"]),
    ("unknown-kind", {"kind": "Pdo"}, "kind", ["unknown kind 'Pdo'", "did you mean 'Pod'?",
                                               "supported: ConfigMap, DaemonSet, Deployment, Job, Pod, Secret"]),
    ("unknown-top", {"specs": {}}, "specs", ["unknown field 'specs'", "did you mean 'spec'?"]),
    # metadata
    ("no-metadata", {"metadata": DELETE}, "metadata", ["required"]),
    ("no-name", {"metadata.name": DELETE}, "metadata.name", ["required", LABEL]),
    ("name-type", {"metadata.name": 5}, "metadata.name", ["expected a string", "quote it"]),
    ("namespace", {"metadata.namespace": "Prod"}, "metadata.namespace", ["'Prod'", LABEL]),
    ("label-key", {"metadata.labels": {"-bad": "x"}}, "metadata.labels[-bad]",
     ["label key", "DNS-1123 subdomain prefix", "63"]),
    ("label-prefix", {"metadata.labels": {"Example.com/app": "x"}},
     "metadata.labels[Example.com/app]", ["label key"]),
    ("label-name-long", {"metadata.labels": {"a" * 64: "x"}}, "metadata.labels[" + "a" * 64 + "]",
     ["label key"]),
    ("label-value", {"metadata.labels": {"app": "a b"}}, "metadata.labels[app]",
     ["not a valid label value", "empty, or at most 63 characters"]),
    ("label-value-long", {"metadata.labels": {"app": "x" * 64}}, "metadata.labels[app]",
     ["label value"]),
    ("label-value-int", {"metadata.labels": {"app": 1}}, "metadata.labels[app]",
     ["expected a string, got integer 1", "quote it"]),
    ("labels-type", {"metadata.labels": ["a"]}, "metadata.labels", ["expected a mapping"]),
    ("annotation-key", {"metadata.annotations": {"bad key": "x"}},
     "metadata.annotations[bad key]", ["label key"]),
    ("annotation-value", {"metadata.annotations": {"a": True}}, "metadata.annotations[a]",
     ["expected a string, got boolean true"]),
    ("generateName", {"metadata.generateName": "web-"}, "metadata.generateName", [NOT_YET]),
    ("ownerReferences", {"metadata.ownerReferences": [{"kind": "X"}]},
     "metadata.ownerReferences", [NOT_YET]),
    ("metadata-typo", {"metadata.label": {}}, "metadata.label",
     ["unknown field 'label'", "did you mean 'labels'?"]),
    # spec
    ("no-spec", {"spec": DELETE}, "spec", ["required", "containers"]),
    ("spec-type", {"spec": ["x"]}, "spec", ["expected a mapping, got a list"]),
    ("no-containers", {"spec.containers": DELETE}, "spec.containers",
     ["at least one container"]),
    ("containers-empty", {"spec.containers": []}, "spec.containers", ["at least one container"]),
    ("containers-type", {"spec.containers": "app"}, "spec.containers", ["expected a list"]),
    ("container-type", {"spec.containers": ["app"]}, "spec.containers[0]",
     ["expected a container (a mapping)"]),
    ("restartPolicy", {"spec.restartPolicy": "always"}, "spec.restartPolicy",
     ['"Always", "OnFailure", "Never"']),
    ("grace-negative", {"spec.terminationGracePeriodSeconds": -1},
     "spec.terminationGracePeriodSeconds", ["out of range", ">= 0"]),
    ("grace-quoted", {"spec.terminationGracePeriodSeconds": "30"},
     "spec.terminationGracePeriodSeconds", ["expected an integer", "without quotes"]),
    ("grace-bool", {"spec.terminationGracePeriodSeconds": True},
     "spec.terminationGracePeriodSeconds", ["expected an integer, got boolean true"]),
    ("nodeName", {"spec.nodeName": "Node_1"}, "spec.nodeName", ["DNS-1123 subdomain"]),
    ("nodeSelector-value", {"spec.nodeSelector": {"disk": 1}}, "spec.nodeSelector[disk]",
     ["expected a string", "quote it"]),
    ("nodeSelector-key", {"spec.nodeSelector": {"a/b/c": "x"}}, "spec.nodeSelector[a/b/c]",
     ["label key"]),
    ("dnsPolicy", {"spec.dnsPolicy": "ClusterFirstWithHostNet"}, "spec.dnsPolicy",
     [NOT_YET, '"ClusterFirst", "Default"', "resolver"]),
    ("schedulerName", {"spec.schedulerName": "mine"}, "spec.schedulerName",
     [NOT_YET, '"default-scheduler"']),
    ("hostNetwork", {"spec.hostNetwork": True}, "spec.hostNetwork", [NOT_YET, "accepted: false"]),
    ("shareProcessNamespace", {"spec.shareProcessNamespace": "yes"}, "spec.shareProcessNamespace",
     ["expected true or false"]),
    ("pod-securityContext", {"spec.securityContext": {"runAsUser": 1000}},
     "spec.securityContext", [NOT_YET, "accepted: {}"]),
    ("spec-typo", {"spec.restartpolicy": "Never"}, "spec.restartpolicy",
     ["unknown field", "did you mean 'restartPolicy'?"]),
    ("spec-unknown", {"spec.replicas": 3}, "spec.replicas", ["unknown field 'replicas'",
                                                           "podctl supports here: containers"]),
    # containers
    ("container-no-name", {"spec.containers[0].name": DELETE}, "spec.containers[0].name",
     ["required", LABEL]),
    ("container-name", {"spec.containers[0].name": "App"}, "spec.containers[0].name",
     ["'App'", LABEL]),
    ("container-dup", {"spec.containers": [{"name": "a", "image": "x"}, {"name": "a", "image": "y"}]},
     "spec.containers[1].name", ["duplicate container name 'a'", "first at spec.containers[0].name"]),
    ("no-image", {"spec.containers[0].image": DELETE}, "spec.containers[0].image", ["required"]),
    ("image-empty", {"spec.containers[0].image": ""}, "spec.containers[0].image",
     ["not an image reference", "non-empty, without whitespace"]),
    ("image-space", {"spec.containers[0].image": "nginx latest"}, "spec.containers[0].image",
     ["without whitespace"]),
    ("image-type", {"spec.containers[0].image": ["nginx"]}, "spec.containers[0].image",
     ["expected a string, got a list"]),
    ("command-type", {"spec.containers[0].command": "sleep 1"}, "spec.containers[0].command",
     ["expected a list, got string 'sleep 1'"]),
    ("command-number", {"spec.containers[0].command": ["sleep", 1]}, "spec.containers[0].command[1]",
     ["expected a string, got integer 1", "quote it"]),
    ("command-null", {"spec.containers[0].command": ["sleep", None]},
     "spec.containers[0].command[1]", ["expected a string, got null"]),
    ("args-nul", {"spec.containers[0].args": ["ok", "a\0b"]}, "spec.containers[0].args[1]",
     ["NUL"]),
    ("args-float", {"spec.containers[0].args": [1.5]}, "spec.containers[0].args[0]",
     ["expected a string, got number 1.5"]),
    ("env-type", {"spec.containers[0].env": {"A": "b"}}, "spec.containers[0].env",
     ["expected a list, got a mapping"]),
    ("env-item-type", {"spec.containers[0].env": ["A=b"]}, "spec.containers[0].env[0]",
     ["expected an env entry (a mapping)"]),
    ("env-no-name", {"spec.containers[0].env": [{"value": "x"}]}, "spec.containers[0].env[0].name",
     ["required"]),
    ("env-name-empty", {"spec.containers[0].env": [{"name": ""}]}, "spec.containers[0].env[0].name",
     ["non-empty printable ASCII without '='"]),
    ("env-name-eq", {"spec.containers[0].env": [{"name": "A=B"}]}, "spec.containers[0].env[0].name",
     ["without '='"]),
    ("env-name-nul", {"spec.containers[0].env": [{"name": "A\0"}]},
     "spec.containers[0].env[0].name", ["printable ASCII"]),
    ("env-value-int", {"spec.containers[0].env": [{"name": "PORT", "value": 80}]},
     "spec.containers[0].env[0].value", ["expected a string, got integer 80", "quote it"]),
    ("env-value-bool", {"spec.containers[0].env": [{"name": "ON", "value": True}]},
     "spec.containers[0].env[0].value", ["expected a string, got boolean true", "quote it"]),
    ("env-value-nul", {"spec.containers[0].env": [{"name": "A", "value": "x\0"}]},
     "spec.containers[0].env[0].value", ["NUL"]),
    ("env-valueFrom", {"spec.containers[0].env": [{"name": "A", "valueFrom": {"fieldRef": {}}}]},
     "spec.containers[0].env[0].valueFrom.fieldRef.fieldPath", ["required"]),
    ("envFrom", {"spec.containers[0].envFrom": [{"configMapRef": {"name": "x"}, "secretRef": {"name": "y"}}]},
     "spec.containers[0].envFrom[0]", ["exactly one of configMapRef, secretRef"]),
    ("workingDir", {"spec.containers[0].workingDir": "srv"}, "spec.containers[0].workingDir",
     ["'srv' is not a valid path", "absolute"]),
    ("port-quoted", {"spec.containers[0].ports": [{"containerPort": "80"}]},
     "spec.containers[0].ports[0].containerPort", ["expected an integer, got string '80'",
                                                   "without quotes"]),
    ("port-zero", {"spec.containers[0].ports": [{"containerPort": 0}]},
     "spec.containers[0].ports[0].containerPort", ["0 is out of range", "1..65535"]),
    ("port-big", {"spec.containers[0].ports": [{"containerPort": 70000}]},
     "spec.containers[0].ports[0].containerPort", ["70000", "1..65535"]),
    ("port-missing", {"spec.containers[0].ports": [{"name": "http"}]},
     "spec.containers[0].ports[0].containerPort", ["required", "1..65535"]),
    ("port-protocol", {"spec.containers[0].ports": [{"containerPort": 80, "protocol": "HTTP"}]},
     "spec.containers[0].ports[0].protocol", ['"TCP", "UDP", "SCTP"']),
    ("port-name", {"spec.containers[0].ports": [{"containerPort": 80, "name": "HTTP_PORT"}]},
     "spec.containers[0].ports[0].name", ["IANA service name", "15"]),
    ("port-name-long", {"spec.containers[0].ports": [{"containerPort": 80, "name": "a" * 16}]},
     "spec.containers[0].ports[0].name", ["IANA service name"]),
    ("port-name-digits", {"spec.containers[0].ports": [{"containerPort": 80, "name": "8080"}]},
     "spec.containers[0].ports[0].name", ["with a letter"]),
    ("hostPort", {"spec.containers[0].ports": [{"containerPort": 80, "hostPort": 65536}]},
     "spec.containers[0].ports[0].hostPort", ["1..65535"]),
    ("hostIP", {"spec.containers[0].ports": [{"containerPort": 80, "hostIP": "0.0.0.0"}]},
     "spec.containers[0].ports[0].hostIP", [NOT_YET]),
    ("port-dup", {"spec.containers": [{"name": "a", "image": "x", "ports": [{"containerPort": 80}]},
                                      {"name": "b", "image": "x", "ports": [{"containerPort": 80}]}]},
     "spec.containers[1].ports[0].containerPort",
     ["duplicate port 80/TCP", "first at spec.containers[0].ports[0]"]),
    ("hostPort-dup", {"spec.containers[0].ports": [
        {"containerPort": 80, "hostPort": 8080}, {"containerPort": 81, "hostPort": 8080}]},
     "spec.containers[0].ports[1].hostPort", ["duplicate hostPort 8080/TCP"]),
    ("port-name-dup", {"spec.containers[0].ports": [
        {"containerPort": 80, "name": "web"}, {"containerPort": 81, "name": "web"}]},
     "spec.containers[0].ports[1].name", ["duplicate port name 'web'"]),
    ("resource-name", {"spec.containers[0].resources": {"requests": {"ephemeral-storage": "1Gi"}}},
     "spec.containers[0].resources.requests.ephemeral-storage",
     [f"resource 'ephemeral-storage' is {NOT_YET}", "supported: cpu, memory"]),
    ("resource-gpu", {"spec.containers[0].resources": {"limits": {"nvidia.com/gpu": 1}}},
     "spec.containers[0].resources.limits.nvidia.com/gpu", ["supported: cpu, memory"]),
    ("cpu-bad", {"spec.containers[0].resources": {"requests": {"cpu": "lots"}}},
     "spec.containers[0].resources.requests.cpu", ["not a quantity", "500m"]),
    ("memory-negative", {"spec.containers[0].resources": {"limits": {"memory": "-1Gi"}}},
     "spec.containers[0].resources.limits.memory", ["not a quantity"]),
    ("request-over-limit", {"spec.containers[0].resources": {"requests": {"cpu": 2},
                                                             "limits": {"cpu": "1500m"}}},
     "spec.containers[0].resources.requests.cpu",
     ["request 2 must be less than or equal to the cpu limit 1500m"]),
    ("memory-over-limit", {"spec.containers[0].resources": {"requests": {"memory": "1Gi"},
                                                            "limits": {"memory": "512Mi"}}},
     "spec.containers[0].resources.requests.memory", ["1Gi", "512Mi"]),
    ("resources-claims", {"spec.containers[0].resources": {"claims": [{"name": "gpu"}]}},
     "spec.containers[0].resources.claims", [NOT_YET]),
    ("resources-typo", {"spec.containers[0].resources": {"request": {}}},
     "spec.containers[0].resources.request", ["did you mean 'requests'?"]),
    ("mount-unknown-volume", {"spec.containers[0].volumeMounts[0].name": "cache"},
     "spec.containers[0].volumeMounts[0].name",
     ["no volume named 'cache' in spec.volumes", "volumes: data"]),
    ("mount-relative", {"spec.containers[0].volumeMounts[0].mountPath": "data"},
     "spec.containers[0].volumeMounts[0].mountPath", ["absolute"]),
    ("mount-dotdot", {"spec.containers[0].volumeMounts[0].mountPath": "/data/../etc"},
     "spec.containers[0].volumeMounts[0].mountPath", ["without '..' components or ':'"]),
    ("mount-colon", {"spec.containers[0].volumeMounts[0].mountPath": "/data:rw"},
     "spec.containers[0].volumeMounts[0].mountPath", ["':'"]),
    ("mount-missing-path", {"spec.containers[0].volumeMounts[0].mountPath": DELETE},
     "spec.containers[0].volumeMounts[0].mountPath", ["required", "absolute path"]),
    ("mount-dup", {"spec.containers[0].volumeMounts": [{"name": "data", "mountPath": "/data"},
                                                       {"name": "data", "mountPath": "/data/"}]},
     "spec.containers[0].volumeMounts[1].mountPath", ["duplicate mountPath '/data/'"]),
    ("mount-readOnly", {"spec.containers[0].volumeMounts[0].readOnly": "yes"},
     "spec.containers[0].volumeMounts[0].readOnly", ["expected a boolean (true or false)"]),
    ("mount-subPath", {"spec.containers[0].volumeMounts[0].subPath": "x"},
     "spec.containers[0].volumeMounts[0].subPath", [NOT_YET]),
    ("mount-propagation", {"spec.containers[0].volumeMounts[0].mountPropagation": "Bidirectional"},
     "spec.containers[0].volumeMounts[0].mountPropagation", [NOT_YET]),
    ("pullPolicy", {"spec.containers[0].imagePullPolicy": "always"},
     "spec.containers[0].imagePullPolicy", ['"Always", "IfNotPresent", "Never"']),
    ("tty", {"spec.containers[0].tty": True}, "spec.containers[0].tty", [NOT_YET]),
    ("stdin", {"spec.containers[0].stdin": True}, "spec.containers[0].stdin", [NOT_YET]),
    ("terminationMessagePolicy", {"spec.containers[0].terminationMessagePolicy":
                                  "FallbackToLogsOnError"},
     "spec.containers[0].terminationMessagePolicy", [NOT_YET, '"File"']),
    ("container-securityContext", {"spec.containers[0].securityContext": {"privileged": True}},
     "spec.containers[0].securityContext", [NOT_YET]),
    ("container-typo", {"spec.containers[0].imagee": "x"}, "spec.containers[0].imagee",
     ["unknown field 'imagee'", "did you mean 'image'?"]),
    ("container-case", {"spec.containers[0].volumemounts": []}, "spec.containers[0].volumemounts",
     ["did you mean 'volumeMounts'?"]),
    # volumes
    ("volume-name", {"spec.volumes[0].name": "Data"}, "spec.volumes[0].name", ["'Data'", LABEL]),
    ("volume-no-name", {"spec.volumes[0].name": DELETE}, "spec.volumes[0].name", ["required"]),
    ("volume-dup", {"spec.volumes": [{"name": "data", "emptyDir": {}},
                                     {"name": "data", "emptyDir": {}}]},
     "spec.volumes[1].name", ["duplicate volume name 'data'"]),
    ("volume-no-source", {"spec.volumes[0].emptyDir": DELETE}, "spec.volumes[0]",
     ["a volume source is required", "supported: emptyDir, hostPath"]),
    ("volume-null-emptyDir", {"spec.volumes[0].emptyDir": None}, "spec.volumes[0]",
     ["write 'emptyDir: {}'"]),
    ("volume-two-sources", {"spec.volumes[0].hostPath": {"path": "/x"}}, "spec.volumes[0]",
     ["exactly one volume source", "emptyDir, hostPath"]),
    ("emptyDir-medium", {"spec.volumes[0].emptyDir": {"medium": "HugePages"}},
     "spec.volumes[0].emptyDir.medium", ['"", "Memory"']),
    ("emptyDir-size", {"spec.volumes[0].emptyDir": {"sizeLimit": "big"}},
     "spec.volumes[0].emptyDir.sizeLimit", ["not a quantity"]),
    ("emptyDir-typo", {"spec.volumes[0].emptyDir": {"size": "1Gi"}},
     "spec.volumes[0].emptyDir.size", ["did you mean 'sizeLimit'?"]),
    ("emptyDir-type", {"spec.volumes[0].emptyDir": "yes"}, "spec.volumes[0].emptyDir",
     ["expected a mapping"]),
    ("hostPath-relative", {"spec.volumes[0]": {"name": "data", "hostPath": {"path": "var/x"}}},
     "spec.volumes[0].hostPath.path", ["absolute"]),
    ("hostPath-dotdot", {"spec.volumes[0]": {"name": "data", "hostPath": {"path": "/var/../etc"}}},
     "spec.volumes[0].hostPath.path", ["'..'"]),
    ("hostPath-missing", {"spec.volumes[0]": {"name": "data", "hostPath": {}}},
     "spec.volumes[0].hostPath.path", ["required", "absolute path"]),
    ("hostPath-type", {"spec.volumes[0]": {"name": "data", "hostPath": {"path": "/x",
                                                                         "type": "Dir"}}},
     "spec.volumes[0].hostPath.type", ['"DirectoryOrCreate", "Directory"', '"BlockDevice"']),
]


@pytest.mark.parametrize("changes, path, fragments",
                         [c[1:] for c in ERROR_CASES], ids=[c[0] for c in ERROR_CASES])
def test_invalid_field_is_reported_with_file_line_path_and_what_is_allowed(changes, path, fragments):
    message = errors_of(yaml.safe_dump(mutated(changes), sort_keys=False))
    line = next(line for line in message.splitlines() if f": {path}: " in line)
    assert re.match(r"\s*bad\.yaml:\d+ \(document 1\): ", line), line
    for fragment in fragments:
        assert fragment in line, (fragment, line)


NOT_YET_FIELDS = [(obj, name) for obj in ("PodSpec", "Container")
                  for name, rule in OBJECT_FIELDS[obj].items() if isinstance(rule, NotYet)]


@pytest.mark.parametrize("obj, name", NOT_YET_FIELDS, ids=[f"{o}.{n}" for o, n in NOT_YET_FIELDS])
def test_every_not_yet_field_is_an_error_naming_it(obj, name):
    path = f"{WHERE[obj]}.{name}"
    message = errors_of(yaml.safe_dump(mutated({path: {"some": "value"}})))
    assert "bad.yaml:" in message and f"{path}: {NOT_YET}" in message


@pytest.mark.parametrize("name", [  # affinity, topologySpreadConstraints: test_scheduling_fields
    "ephemeralContainers", "hostNetwork",
    "serviceAccountName", "imagePullSecrets", "securityContext",
])
def test_brief_listed_pod_fields_are_not_yet(name):
    assert ("PodSpec", name) in NOT_YET_FIELDS or isinstance(OBJECT_FIELDS["PodSpec"][name], NoOp)
    assert NOT_YET in errors_of(yaml.safe_dump(mutated({f"spec.{name}": [{"x": 1}]})))


@pytest.mark.parametrize("api, kind", [
    ("apps/v1", "ReplicaSet"), ("batch/v1", "CronJob"),
    ("v1", "Service"),
])
def test_other_kinds_are_not_yet(api, kind):
    assert KNOWN_KINDS[kind] == api
    message = errors_of(f"apiVersion: {api}\nkind: {kind}\nmetadata: {{name: x}}\n")
    assert message == (f"bad.yaml:2 (document 1): kind: kind {kind} is not supported by podctl "
                       "yet (supported: ConfigMap, DaemonSet, Deployment, Job, Pod, Secret, StatefulSet)")


# ---------------------------------------------------------------- names become paths

BAD_NAMES = ["Web", "web_1", "-web", "web-", "web.1", "a" * 64, "../etc", "we b", "wéb", "",
             "web\n", "eth0;reboot", "$(id)", "a/b", "web\0"]


@pytest.mark.parametrize("where", ["metadata.name", "spec.containers[0].name",
                                   "spec.volumes[0].name"])
@pytest.mark.parametrize("name", BAD_NAMES, ids=repr)
def test_names_that_become_paths_or_interfaces_must_be_dns1123_labels(where, name):
    changes = {where: name}
    if where.startswith("spec.volumes"):
        changes["spec.containers[0].volumeMounts"] = []
    with pytest.raises(ManifestError) as info:
        validate_pod(mutated(changes), "bad.yaml")
    assert f"bad.yaml: {where}: " in str(info.value) and LABEL in str(info.value)


@pytest.mark.parametrize("name", ["a", "web", "web-1", "1web", "a" * 63, "x-y-z"])
def test_good_names_are_accepted(name):
    pod = validate_pod(mutated({"metadata.name": name, "spec.containers[0].name": name}), "x")
    assert pod.name == name and pod.spec.containers[0].name == name


# ---------------------------------------------------------------- hostile data is data

HOSTILE = ['"double"', "it's", "$(rm -rf /)", "`reboot`", "a\nb\n", "a; b && c | d > /etc/x",
           "ünïcødé ✓ 🚀", "\\", "${HOME}", " padded ", "\t", "-c", "", "'; DROP TABLE pods;--",
           "\x1b[31mred\x1b[0m", "%s%n", "*", "!"]


@pytest.mark.parametrize("text", HOSTILE, ids=repr)
@pytest.mark.parametrize("dump", [yaml.safe_dump, json.dumps], ids=["yaml", "json"])
def test_hostile_strings_are_accepted_verbatim(text, dump):
    doc = mutated({"spec.containers[0].command": [text],
                   "spec.containers[0].args": [text, text],
                   "spec.containers[0].env": [{"name": "X", "value": text}],
                   "metadata.annotations": {"note": text}})
    c = parse_one(dump(doc)).spec.containers[0]
    assert c.command == (text,) and c.args == (text, text) and c.env == (EnvVar("X", text),)
    assert validate_pod(pod_to_k8s(validate_pod(doc, "x")), "x") == validate_pod(doc, "x")


@pytest.mark.parametrize("where", ["spec.containers[0].command", "spec.containers[0].args"])
def test_nul_is_rejected_in_command_and_args(where):
    with pytest.raises(ManifestError, match=r"\[0\]: .*NUL"):
        validate_pod(mutated({where: ["a\0b"]}), "x")


def test_unicode_escapes_in_json_keep_json_semantics():
    doc = json.dumps(mutated({"spec.containers[0].args": ["\U0001F680", "1e3"]}))  # \ud83d\ude80
    assert "\\ud83d\\ude80" in doc
    assert parse_one(doc).spec.containers[0].args == ("\U0001F680", "1e3")


# ---------------------------------------------------------------- YAML and lines

LINES_YAML = """\
apiVersion: v1
kind: Pod
metadata:
  name: web
spec:
  containers:
  - name: app
    image: nginx
    ports:
    - containerPort: "80"
    env:
    - value: x
"""


def test_errors_carry_the_line_of_the_field_or_of_its_parent():
    message = errors_of(LINES_YAML)
    assert "bad.yaml:10 (document 1): spec.containers[0].ports[0].containerPort: " in message
    # a missing field points at the object that lacks it
    assert "bad.yaml:12 (document 1): spec.containers[0].env[0].name: required" in message


def test_all_errors_of_a_document_are_reported_together_in_file_order():
    with pytest.raises(ManifestErrors) as info:
        parse_documents(LINES_YAML.replace("image: nginx", "image: ''"), "bad.yaml")
    err = info.value
    assert isinstance(err, ManifestError) and isinstance(err, UsageError)
    assert [e.path for e in err.errors] == ["spec.containers[0].image",
                                            "spec.containers[0].ports[0].containerPort",
                                            "spec.containers[0].env[0].name"]
    assert str(err).splitlines()[0] == "3 manifest errors:"
    assert err.source == err.errors[0].source


def test_documents_are_numbered_and_empty_ones_skipped():
    pod = yaml.safe_dump(MINIMAL)
    text = f"---\n---\n{pod}---\n# only a comment\n---\n{pod.replace('name: web', 'name: api')}"
    assert [m.name for m in parse_documents(text, "multi.yaml")] == ["web", "api"]
    bad = text.replace("image: nginx:1.27", "image: ''")
    message = errors_of(bad, "multi.yaml")
    assert re.search(r"multi\.yaml:\d+ \(document 2\): spec.containers\[0\].image", message)
    assert re.search(r"multi\.yaml:\d+ \(document 4\): spec.containers\[0\].image", message)


@pytest.mark.parametrize("text, where, fragment", [
    ("apiVersion: v1\nkind: Pod\nmetadata: {name: web\n", "bad.yaml:4:1 (document 1)",
     "YAML syntax error"),
    ("a: b\n c: d\n", "bad.yaml:2:3 (document 1)", "mapping values are not allowed"),
    ("---\nkind: Pod\n---\n\tkind: Pod\n", "bad.yaml:4:1 (document 2)", "YAML syntax error"),
    ("kind: \x7f\n", "bad.yaml:1 (document 1)", "special characters"),
])
def test_yaml_syntax_errors_have_line_and_column(text, where, fragment):
    line = errors_of(text).splitlines()[-1].strip()  # after the errors of earlier documents
    assert line.startswith(where) and fragment in line


@pytest.mark.parametrize("text, where, key, first", [
    ("apiVersion: v1\nkind: Pod\nmetadata:\n  name: a\n  name: b\n", "bad.yaml:5", "name", 4),
    ("apiVersion: v1\nkind: Pod\nkind: Pod\n", "bad.yaml:3", "kind", 2),
    ("{apiVersion: v1, kind: Pod,\n metadata: {labels: {a: x,\n  a: y}}}", "bad.yaml:3", "a", 2),
    ('{"apiVersion": "v1",\n\t"kind": "Pod",\n\t"kind": "Pod"}', "bad.yaml:3", "kind", 2),
])
def test_duplicate_keys_are_rejected(text, where, key, first):
    message = errors_of(text)
    assert f"{where} (document 1): " in message
    assert f"duplicate key {key!r} (first at line {first})" in message


def test_merge_keys_are_not_duplicates():
    text = ("apiVersion: v1\nkind: Pod\nmetadata:\n  name: web\n  labels: &l {app: web}\n"
            "  annotations:\n    <<: *l\n    app: other\n"
            "spec:\n  containers: [{name: a, image: b}]\n")
    assert parse_one(text).meta.annotations == (("app", "other"),)


def test_aliases_cannot_explode():
    # 10^8 strings by value, 80 nodes: indexing visits each node once, validation stops early
    layers = ["  a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    layers += [f"  a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]" for i in range(1, 9)]
    text = "\n".join(["apiVersion: v1", "kind: Pod", "anchors:", *layers,
                      "metadata: {name: web}",
                      "spec: {containers: [{name: a, image: b, command: *a8}]}"])
    message = errors_of(text)
    assert "anchors: unknown field 'anchors'" in message
    assert "spec.containers[0].command[0]: expected a string, got a list" in message


@pytest.mark.parametrize("text, where, fragment", [
    ("\n".join(["a0: &a0 {k: v}"] + [f"a{i}: &a{i} {{<<: [" + ", ".join([f"*a{i - 1}"] * 10) + "]}"
                                   for i in range(1, 12)]),
     "bad.yaml:6 (document 1)", "merge keys (<<) expand to more than 10000 entries"),
    ("apiVersion: v1\nkind: Pod\nmetadata: &m {name: x, labels: *m}\n", "bad.yaml:3 (document 1)",
     "an alias refers to a node containing it"),
    ("a: &a {<<: *a}\n", "bad.yaml:1 (document 1)", "an alias refers to a node containing it"),
    ("a: " + "[" * 3000 + "]" * 3000, "bad.yaml (document 1)", "nested too deeply"),
])
def test_hostile_yaml_shapes_fail_fast(text, where, fragment):
    assert errors_of(text) == f"{where}: {fragment}"


def test_timestamps_stay_strings_like_kubernetes():
    text = ("apiVersion: v1\nkind: Pod\nmetadata:\n  name: web\n  labels: {day: 2024-01-01}\n"
            "spec:\n  containers: [{name: a, image: b}]\n")
    assert parse_one(text).meta.labels == (("day", "2024-01-01"),)


def test_raw_is_always_json_for_the_store():
    text = ("apiVersion: v1\nkind: Pod\nmetadata: {name: web, creationTimestamp: 2024-01-01}\n"
            "spec: {containers: [{name: a, image: b}]}\nstatus: {blob: !!binary aGVsbG8=}\n")
    (m,) = parse_documents(text, "x")
    assert json.loads(json.dumps(m.raw))["status"] == {"blob": "aGVsbG8="}
    assert errors_of(text + "extra: !!set {a, b}\n") == \
        "bad.yaml:6:8 (document 1): YAML error: tag:yaml.org,2002:set has no JSON form"
    assert "unhashable" in errors_of("{[a]: 1}\n")


def test_a_document_must_be_a_mapping():
    assert "expected a Kubernetes object" in errors_of("- a\n- b\n")
    assert "expected a Kubernetes object" in errors_of("just text\n")


# ---------------------------------------------------------------- kind: List


def test_list_items_are_expanded_and_errors_name_the_item():
    pod = copy.deepcopy(MINIMAL)
    other = mutated({"metadata.name": "api"})
    doc = {"apiVersion": "v1", "kind": "List", "metadata": {"resourceVersion": ""},
           "items": [pod, other]}
    assert [m.name for m in parse_documents(yaml.safe_dump(doc), "list.yaml")] == ["web", "api"]
    other["spec"]["containers"][0]["image"] = ""
    message = errors_of(yaml.safe_dump(doc), "list.yaml")
    assert re.fullmatch(r"list\.yaml:\d+ \(document 1, items\[1\]\): spec\.containers\[0\]\.image: .*",
                        message)


@pytest.mark.parametrize("doc, fragment", [
    ({"apiVersion": "v1", "kind": "List", "items": "x"}, "items: expected a list"),
    ({"apiVersion": "v2", "kind": "List", "items": []}, "allowed: v1"),
    ({"apiVersion": "v1", "kind": "List", "itemz": []}, "did you mean 'items'?"),
    ({"apiVersion": "v1", "kind": "List", "items": [{"apiVersion": "v1", "kind": "List"}]},
     "items[0]): kind: a List may appear only at the top"),
])
def test_bad_lists(doc, fragment):
    assert fragment in errors_of(json.dumps(doc))


# ---------------------------------------------------------------- files, directories, stdin


def write(path: Path, doc: dict | str) -> Path:
    path.write_text(doc if isinstance(doc, str) else yaml.safe_dump(doc))
    return path


def test_directory_files_are_sorted_and_not_recursive(tmp_path):
    write(tmp_path / "b.yml", mutated({"metadata.name": "b"}))
    write(tmp_path / "a.yaml", mutated({"metadata.name": "a"}))
    (tmp_path / "c.json").write_text(json.dumps(mutated({"metadata.name": "c"}), indent="\t"))
    write(tmp_path / "notes.txt", "not a manifest")
    (tmp_path / "sub").mkdir()
    write(tmp_path / "sub" / "d.yaml", mutated({"metadata.name": "d"}))
    manifests = load_manifests([tmp_path])
    assert [m.name for m in manifests] == ["a", "b", "c"]
    assert manifests[2].source == f"{tmp_path / 'c.json'}:1 (document 1)"


def test_stdin_and_files_mix(tmp_path, monkeypatch):
    monkeypatch.setattr("sys.stdin", io.StringIO(yaml.safe_dump(mutated({"metadata.name": "in"}))))
    manifests = load_manifests(["-", write(tmp_path / "p.yaml", MINIMAL)])
    assert [(m.name, m.source.split(":")[0]) for m in manifests] == \
        [("in", "<stdin>"), ("web", str(tmp_path / "p.yaml"))]


def test_duplicate_objects_across_inputs(tmp_path):
    a = write(tmp_path / "a.yaml", MINIMAL)
    b = write(tmp_path / "b.yaml", mutated({"spec.containers[0].image": "other"}))
    write(tmp_path / "c.yaml", mutated({"metadata.namespace": "other"}))  # another namespace: fine
    with pytest.raises(ManifestError) as info:
        load_manifests([a, b, tmp_path / "c.yaml"])
    assert str(info.value) == (f"{b}:1 (document 1): metadata.name: duplicate Pod default/web "
                               f"(also defined at {a}:1 (document 1))")


def test_errors_of_every_file_are_reported_together(tmp_path):
    write(tmp_path / "a.yaml", mutated({"spec.restartPolicy": "Sometimes"}))
    write(tmp_path / "b.yaml", "kind: [\n")
    with pytest.raises(ManifestErrors) as info:
        load_manifests([tmp_path, tmp_path / "missing.yaml", tmp_path / "empty-dir"])
    sources = [e.source for e in info.value.errors]
    assert sources[0].startswith(f"{tmp_path / 'a.yaml'}:")
    assert sources[1].startswith(f"{tmp_path / 'b.yaml'}:2:1")
    assert sources[2] == str(tmp_path / "missing.yaml")
    assert "cannot read" in info.value.errors[2].message


def test_empty_directory_and_bad_encoding(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(ManifestError, match="no \\*.yaml, \\*.yml or \\*.json files"):
        load_manifests([tmp_path / "empty"])
    (tmp_path / "latin1.yaml").write_bytes(b"kind: caf\xe9\n")
    with pytest.raises(ManifestError, match="not UTF-8"):
        load_manifests([tmp_path / "latin1.yaml"])


# ---------------------------------------------------------------- round trip, property

hypothesis = pytest.importorskip("hypothesis")
st = hypothesis.strategies

label = st.from_regex(r"[a-z]([-a-z0-9]{0,10}[a-z0-9])?", fullmatch=True)
data = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\0"), max_size=20)
maybe = lambda s: st.none() | s  # noqa: E731


@st.composite
def pods(draw):
    volumes = draw(st.lists(label, unique=True, max_size=3))
    vols = tuple(
        draw(st.sampled_from([
            Volume(n, "emptyDir", medium=draw(st.sampled_from(["", "Memory"])),
                   size_limit=draw(maybe(st.integers(0, 2**40)))),
            Volume(n, "hostPath", path="/" + draw(label), host_path_type=draw(
                st.sampled_from(["", "Directory", "FileOrCreate", "Socket"]))),
        ])) for n in volumes)
    containers = []
    for i, name in enumerate(draw(st.lists(label, min_size=1, max_size=3, unique=True))):
        request = draw(maybe(st.integers(0, 64000)))
        limit = draw(maybe(st.integers(request or 0, 128000)))
        containers.append(Container(
            name=name,
            image=draw(st.sampled_from(["nginx", "busybox:1.36", "r.example:5000/a/b@sha256:00"])),
            command=draw(maybe(st.lists(data, min_size=1, max_size=3).map(tuple))),
            args=draw(maybe(st.lists(data, min_size=1, max_size=3).map(tuple))),
            env=tuple(EnvVar(n, v) for n, v in draw(st.lists(st.tuples(
                st.from_regex(r"[A-Za-z_][ -<>-~]{0,8}", fullmatch=True), data), max_size=3))),
            working_dir=draw(maybe(st.just("/srv"))),
            ports=tuple(ContainerPort(1000 + 10 * i + j, draw(st.sampled_from(["TCP", "UDP"])),
                                      draw(maybe(st.just(f"p{i}x{j}"))),
                                      draw(maybe(st.just(20000 + 10 * i + j))))
                        for j in range(draw(st.integers(0, 2)))),
            requests=Resources(cpu_m=request, memory=draw(maybe(st.integers(0, 2**36)))),
            limits=Resources(cpu_m=limit),
            volume_mounts=tuple(VolumeMount(v, f"/mnt/{v}", draw(st.booleans()))
                                for v in draw(st.lists(st.sampled_from(volumes), unique=True))
                                ) if volumes else (),
            image_pull_policy=draw(st.sampled_from(["Always", "IfNotPresent", "Never"])),
        ))
    return Pod(
        meta=ObjectMeta(name=draw(label), namespace=draw(label),
                        labels=tuple(sorted(draw(st.dictionaries(label, label, max_size=3)).items())),
                        annotations=tuple(sorted(draw(st.dictionaries(label, data, max_size=3)).items()))),
        spec=PodSpec(containers=tuple(containers), volumes=vols,
                     restart_policy=draw(st.sampled_from(["Always", "OnFailure", "Never"])),
                     termination_grace_period_seconds=draw(st.integers(0, 3600)),
                     node_name=draw(maybe(label)),
                     node_selector=tuple(sorted(draw(st.dictionaries(label, label, max_size=2)).items()))),
        source="p.yaml:1 (document 1)",
    )


@hypothesis.settings(max_examples=150, deadline=None)
@hypothesis.given(pods())
def test_pod_to_k8s_is_the_inverse_of_validate_pod(pod):
    doc = pod_to_k8s(pod)
    assert validate_pod(doc, pod.source) == pod
    assert validate_pod(yaml.safe_load(yaml.safe_dump(doc)), pod.source) == pod
    assert validate_pod(json.loads(json.dumps(doc)), pod.source) == pod
