"""ConfigMap/Secret validation, env resolution ($(VAR), valueFrom, envFrom), QoS and
oom_score_adj, /etc/hosts, and the secrets' out-of-band delivery: table-driven."""

from __future__ import annotations

import base64
import uuid

import pytest

from orchestrator.errors import ManifestError
from orchestrator.manifests import parse_documents, validate_pod
from orchestrator.model import ImageConfig
from orchestrator.podenv import ConfigMissing, PodFacts, Value, expand, hosts_file, resolve
from orchestrator.qos import oom_score_adj, qos_class
from orchestrator.runtime import Network, batch_payload, batch_script, pod_context

UID = str(uuid.UUID(int=7))
GIB = 1 << 30


def config(text: str):
    return parse_documents(text, "c.yaml")[0].obj


def errors(text: str) -> str:
    with pytest.raises(ManifestError) as exc:
        parse_documents(text, "c.yaml")
    return str(exc.value)


@pytest.mark.parametrize("text, fragment", [
    ("kind: ConfigMap\nmetadata: {name: a}\ndata: {'a b': x}", "regex used for validation is '[-._a-zA-Z0-9]+'"),
    ("kind: ConfigMap\nmetadata: {name: a}\ndata: {'..x': x}", "must not start with '..'"),
    ("kind: ConfigMap\nmetadata: {name: a}\ndata: {k: x}\nbinaryData: {k: eA==}", "not both"),
    ("kind: ConfigMap\nmetadata: {name: a}\nbinaryData: {k: '!!'}", "not valid base64"),
    ("kind: ConfigMap\nmetadata: {name: a}\ndata: {k: 1}", "expected a string"),
    ("kind: Secret\nmetadata: {name: a}\ndata: {k: 'not base64'}", "not valid base64"),
    ("kind: Secret\nmetadata: {name: a}\ntype: kubernetes.io/tls\nstringData: {tls.crt: x}", "data[tls.key]: required"),
    ("kind: Secret\nmetadata: {name: a}\ntype: kubernetes.io/basic-auth", "username or a password"),
    ("kind: Secret\nmetadata: {name: a}\nstringdata: {a: b}", "did you mean 'stringData'"),
])
def test_config_object_validation(text, fragment):
    assert fragment in errors("apiVersion: v1\n" + text)


def test_secret_string_data_wins_and_type_defaults():
    s = config("apiVersion: v1\nkind: Secret\nmetadata: {name: s}\ndata: {a: eA==, b: eQ==}\nstringData: {a: z}")
    assert s.mapping() == {"a": b"z", "b": b"y"} and s.type == "Opaque"
    cm = config("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\ndata: {t: x}\nbinaryData: {b: AAE=}")
    assert cm.mapping() == {"t": b"x", "b": b"\0\1"} and cm.env_keys() == ["t"]


@pytest.mark.parametrize("text, expected", [
    ("plain", "plain"),
    ("$(A)", "1"),
    ("x$(A)y$(B)z", "x1y2z"),
    ("$$(A)", "$(A)"),
    ("$$$(A)", "$1"),
    ("$(MISSING)", "$(MISSING)"),
    ("$(A", "$(A"),
    ("$A", "$A"),
    ("a$", "a$"),
    ("$()", "$()"),
    ("$(S)", "secret"),
])
def test_expand_as_kubernetes(text, expected):
    env = {"A": Value("1"), "B": Value("2"), "S": Value("secret", True)}
    got = expand(text, env.get)
    assert got.text == expected and got.secret == ("$(S)" in text)


def pod(env=None, env_from=None, resources=None, volumes=None, command=None, **spec):
    c = {"name": "app", "image": "busybox"}
    for k, v in (("env", env), ("envFrom", env_from), ("resources", resources), ("command", command)):
        if v is not None:
            c[k] = v
    return validate_pod({"apiVersion": "v1", "kind": "Pod",
                         "metadata": {"name": "web", "namespace": "ns", "labels": {"app": "x"}},
                         "spec": {"containers": [c], **({"volumes": volumes} if volumes else {}), **spec}}, "p")


CM = config("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: cm}\ndata: {k: v, 1bad: b, ok.k: o}")
SEC = config("apiVersion: v1\nkind: Secret\nmetadata: {name: sec}\nstringData: {pw: hunter2}")
FACTS = PodFacts(UID, "node1", "10.213.0.2", "10.244.1.5", 2000, 4 * GIB,
                 {("ConfigMap", "cm"): CM, ("Secret", "sec"): SEC})


@pytest.mark.parametrize("env, expected", [
    ([{"name": "N", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}], {"N": "web"}),
    ([{"name": "N", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}}], {"N": "ns"}),
    ([{"name": "N", "valueFrom": {"fieldRef": {"fieldPath": "metadata.uid"}}}], {"N": UID}),
    ([{"name": "N", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['app']"}}}], {"N": "x"}),
    ([{"name": "N", "valueFrom": {"fieldRef": {"fieldPath": "metadata.annotations['none']"}}}], {"N": ""}),
    ([{"name": "N", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}}], {"N": "node1"}),
    ([{"name": "N", "valueFrom": {"fieldRef": {"fieldPath": "spec.serviceAccountName"}}}], {"N": "default"}),
    ([{"name": "N", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}}], {"N": "10.244.1.5"}),
    ([{"name": "N", "valueFrom": {"fieldRef": {"fieldPath": "status.hostIP"}}}], {"N": "10.213.0.2"}),
    ([{"name": "N", "valueFrom": {"configMapKeyRef": {"name": "cm", "key": "k"}}}], {"N": "v"}),
    ([{"name": "N", "valueFrom": {"configMapKeyRef": {"name": "cm", "key": "no", "optional": True}}}], {}),
    ([{"name": "N", "valueFrom": {"secretKeyRef": {"name": "gone", "key": "k", "optional": True}}}], {}),
    ([{"name": "A", "value": "1"}, {"name": "B", "value": "$(A)-$(C)"}, {"name": "C", "value": "3"}],
     {"A": "1", "B": "1-$(C)", "C": "3"}),
    ([{"name": "A", "value": "1"}, {"name": "A", "value": "2"}], {"A": "2"}),
])
def test_env_values(env, expected):
    p = pod(env=env)
    assert {k: v.text for k, v in resolve(p, p.spec.containers[0], FACTS).env} == expected


@pytest.mark.parametrize("resources, ref, expected", [
    ({"limits": {"cpu": "250m"}}, {"resource": "limits.cpu"}, "1"),  # ceil(0.25)
    ({"limits": {"cpu": "250m"}}, {"resource": "limits.cpu", "divisor": "1m"}, "250"),
    ({}, {"resource": "limits.cpu"}, "2"),  # unset: the host's allocatable
    ({}, {"resource": "limits.memory", "divisor": "1Mi"}, "4096"),
    ({"limits": {"memory": "100Mi"}}, {"resource": "limits.memory", "divisor": "1Gi"}, "1"),
    ({"limits": {"memory": "1500Ki"}}, {"resource": "limits.memory", "divisor": "1Mi"}, "2"),
    ({"limits": {"memory": "64Mi"}}, {"resource": "requests.memory"}, str(64 << 20)),  # limit implies request
    ({}, {"resource": "requests.cpu"}, "0"),
])
def test_resource_field_ref(resources, ref, expected):
    p = pod(env=[{"name": "R", "valueFrom": {"resourceFieldRef": ref}}], resources=resources)
    assert dict((k, v.text) for k, v in resolve(p, p.spec.containers[0], FACTS).env) == {"R": expected}


def test_env_from_prefix_invalid_keys_and_secrets():
    p = pod(env_from=[{"configMapRef": {"name": "cm"}}, {"secretRef": {"name": "sec"}, "prefix": "S_"}],
            env=[{"name": "X", "value": "$(S_pw)!"}], command=["echo", "$(k)", "$(S_pw)"])
    r = resolve(p, p.spec.containers[0], FACTS)
    assert dict(r.env) == {"k": Value("v"), "ok.k": Value("o"), "S_pw": Value("hunter2", True),
                           "X": Value("hunter2!", True)}
    assert r.command == [Value("echo"), Value("v"), Value("hunter2", True)]
    assert r.events == [("InvalidEnvironmentVariableNames", "Keys [1bad] from the EnvFrom configMap ns/cm were "
                         "skipped since they are considered invalid environment variable names.")]


@pytest.mark.parametrize("env, env_from, volumes, message", [
    ([{"name": "N", "valueFrom": {"secretKeyRef": {"name": "gone", "key": "k"}}}], None, None,
     'secret "gone" not found'),
    ([{"name": "N", "valueFrom": {"configMapKeyRef": {"name": "cm", "key": "nope"}}}], None, None,
     "couldn't find key nope in ConfigMap ns/cm"),
    (None, [{"configMapRef": {"name": "gone"}}], None, 'configmap "gone" not found'),
])
def test_missing_objects_hold_the_container(env, env_from, volumes, message):
    p = pod(env=env, env_from=env_from, volumes=volumes)
    with pytest.raises(ConfigMissing) as exc:
        resolve(p, p.spec.containers[0], FACTS)
    assert exc.value.reason == "CreateContainerConfigError" and exc.value.message == message


@pytest.mark.parametrize("requests, limits, qos, adj", [
    ({}, {}, "BestEffort", 1000),
    ({"cpu": "1", "memory": "1Gi"}, {"cpu": "1", "memory": "1Gi"}, "Guaranteed", -997),
    ({}, {"cpu": "1", "memory": "1Gi"}, "Guaranteed", -997),  # a limit implies the request
    ({"memory": "1Gi"}, {}, "Burstable", 1000 - 1000 // 4),
    ({"cpu": "1"}, {}, "Burstable", 999),  # no memory request: 1000 - 0, kept below BestEffort
    ({"memory": "4Gi"}, {"memory": "4Gi"}, "Burstable", 3),  # clamped above Guaranteed
    ({"cpu": "0"}, {}, "BestEffort", 1000),  # zero quantities count as unset
])
def test_qos_and_oom_score_adj(requests, limits, qos, adj):
    p = pod(resources={"requests": requests, "limits": limits})
    assert qos_class(p) == qos and oom_score_adj(p, p.spec.containers[0], 4 * GIB) == adj


def test_hosts_file_as_the_kubelet_writes_it():
    p = pod(hostname="h", subdomain="sub", hostAliases=[{"ip": "10.0.0.1", "hostnames": ["a", "b.c"]}])
    text = hosts_file(p, "10.244.1.5")
    assert text.startswith("# Kubernetes-managed hosts file.\n127.0.0.1\tlocalhost\n")
    assert "10.244.1.5\th.sub.ns.svc.cluster.local\th\n" in text
    assert text.endswith("\n# Entries added by HostAliases.\n10.0.0.1\ta\tb.c\n")


def test_secret_values_travel_only_in_the_payload():
    p = pod(env=[{"name": "PW", "valueFrom": {"secretKeyRef": {"name": "sec", "key": "pw"}}}],
            env_from=[{"secretRef": {"name": "sec"}}],
            volumes=[{"name": "s", "secret": {"secretName": "sec"}}, {"name": "c", "configMap": {"name": "cm"}}])
    image = {"busybox": ImageConfig(ref="busybox", digest="c0" * 32, cmd=("sh",))}
    ctx = pod_context(p, UID, image, Network("10.244.1.5", "10.244.1.0/24"), facts=FACTS)
    steps = [{"verb": "create", "pod": ctx}]
    script = batch_script(steps, 1)
    assert "hunter2" not in script and base64.b64encode(b"hunter2").decode() not in script
    payload = batch_payload(steps)
    assert payload.count(b"hunter2") == 3 and payload.endswith(b"@@podctl-payload-end\n")
    c = ctx["containers"][0]
    assert "hunter2" not in c["script"] and c["env_values"][c["env_split"].split().index("'PW='\"${PODCTL_E1}\"") - 2] == ""


@pytest.mark.parametrize("field, value, fragment", [
    ("env", [{"name": "A", "value": "x", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}],
     "may not be specified when `value` is not empty"),
    ("env", [{"name": "A", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels"}}}], "needs a key"),
    ("env", [{"name": "A", "valueFrom": {"fieldRef": {"fieldPath": "status.phase"}}}], "is not supported"),
    ("env", [{"name": "A", "valueFrom": {"resourceFieldRef": {"resource": "limits.cpu", "divisor": "1Mi"}}}],
     "not a valid divisor"),
    ("env", [{"name": "A", "valueFrom": {"resourceFieldRef": {"resource": "limits.cpu", "containerName": "x"}}}],
     "is not a container of this pod"),
    ("env", [{"name": "A", "valueFrom": {"secretKeyRef": {"name": "s", "key": "a b"}}}], "valid config key"),
    ("envFrom", [{"prefix": "P"}], "exactly one of configMapRef, secretRef"),
])
def test_env_source_validation(field, value, fragment):
    with pytest.raises(ManifestError) as exc:
        validate_pod({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "w"},
                      "spec": {"containers": [{"name": "app", "image": "b", field: value}]}}, "p.yaml")
    assert fragment in str(exc.value)


@pytest.mark.parametrize("volume, fragment", [
    ({"configMap": {"name": "c", "items": [{"key": "k", "path": "../x"}]}}, "must not contain '..'"),
    ({"configMap": {"name": "c", "items": [{"key": "k", "path": "/x"}]}}, "relative path"),
    ({"secret": {"secretName": "s", "defaultMode": 512}}, "out of range"),
    ({"secret": {}}, "secretName: required"),
])
def test_config_volume_validation(volume, fragment):
    with pytest.raises(ManifestError) as exc:
        validate_pod({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "w"},
                      "spec": {"volumes": [{"name": "v", **volume}],
                               "containers": [{"name": "app", "image": "b"}]}}, "p.yaml")
    assert fragment in str(exc.value)


def test_pod_round_trips_through_its_kubernetes_form():
    from orchestrator.manifests import pod_to_k8s
    p = pod(env=[{"name": "N", "valueFrom": {"resourceFieldRef": {"resource": "limits.cpu", "divisor": "1m"}}}],
            env_from=[{"secretRef": {"name": "sec", "optional": True}, "prefix": "P_"}],
            volumes=[{"name": "s", "secret": {"secretName": "sec", "items": [{"key": "pw", "path": "a/b", "mode": 256}]}}],
            hostname="h", hostAliases=[{"ip": "1.2.3.4", "hostnames": ["x"]}])
    assert validate_pod(pod_to_k8s(p), "p") == p
