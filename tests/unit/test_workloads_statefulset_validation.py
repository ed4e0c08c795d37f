"""StatefulSet manifests: defaults, claim templates, and errors that read like a Pod's
(file:line, field path, what is allowed, did-you-mean)."""

from __future__ import annotations

import copy
import re
import textwrap

import pytest
import yaml

from orchestrator.errors import ManifestError
from orchestrator.manifests import OBJECT_FIELDS, parse_documents
from orchestrator.workloads.specs import ClaimTemplate, StatefulSet
from orchestrator.workloads.statefulset import revision_name

BASE = {
    "apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "web"},
    "spec": {
        "serviceName": "web",
        "replicas": 3,
        "selector": {"matchLabels": {"app": "web"}},
        "template": {"metadata": {"labels": {"app": "web"}},
                     "spec": {"containers": [{"name": "app", "image": "nginx:1.27",
                                              "volumeMounts": [{"name": "data",
                                                                "mountPath": "/data"}]}]}},
        "volumeClaimTemplates": [{"metadata": {"name": "data"},
                                  "spec": {"accessModes": ["ReadWriteOnce"],
                                           "resources": {"requests": {"storage": "1Gi"}}}}],
    },
}
DELETE = object()


def doc(changes: dict | None = None) -> dict:
    """BASE with {"a.b[0].c": value} applied (DELETE removes the key)."""
    out = copy.deepcopy(BASE)
    for dotted, value in (changes or {}).items():
        parts = [int(p) if p.isdigit() else p for p in re.findall(r"[^.\[\]]+", dotted)]
        parent = out
        for part in parts[:-1]:
            if isinstance(part, str) and part not in parent:
                parent[part] = {}
            parent = parent[part]
        if value is DELETE:
            del parent[parts[-1]]
        else:
            parent[parts[-1]] = value
    return out


def parse(changes: dict | None = None) -> StatefulSet:
    (m,) = parse_documents(yaml.safe_dump(doc(changes), sort_keys=False), "ok.yaml")
    return m.obj


def errors_of(changes: dict) -> str:
    with pytest.raises(ManifestError) as info:
        parse_documents(yaml.safe_dump(doc(changes), sort_keys=False), "bad.yaml")
    return str(info.value)


def test_defaults_as_kubernetes():
    obj = parse({"spec.replicas": DELETE, "spec.serviceName": DELETE})
    assert isinstance(obj, StatefulSet)
    assert (obj.replicas, obj.pod_management_policy, obj.update_strategy, obj.partition,
            obj.min_ready_seconds, obj.revision_history_limit, obj.service_name) == \
        (1, "OrderedReady", "RollingUpdate", 0, 0, 10, "")
    assert obj.claim_templates == (ClaimTemplate("data", ("ReadWriteOnce",), 2**30, None),)
    assert obj.pod_name(2) == "web-2" and obj.claims_of(2) == ["data-web-2"]


def test_everything_supported_is_read():
    obj = parse({"spec.podManagementPolicy": "Parallel", "spec.minReadySeconds": 5,
                 "spec.revisionHistoryLimit": 2,
                 "spec.updateStrategy": {"type": "RollingUpdate",
                                         "rollingUpdate": {"partition": 2, "maxUnavailable": 1}},
                 "spec.persistentVolumeClaimRetentionPolicy": {"whenDeleted": "Retain",
                                                               "whenScaled": "Retain"},
                 "spec.volumeClaimTemplates[0].apiVersion": "v1",
                 "spec.volumeClaimTemplates[0].kind": "PersistentVolumeClaim",
                 "spec.volumeClaimTemplates[0].spec.storageClassName": "local-path",
                 "spec.volumeClaimTemplates[0].spec.volumeMode": "Filesystem",
                 "spec.volumeClaimTemplates[0].spec.resources.limits": {"storage": "2Gi"}})
    assert (obj.pod_management_policy, obj.partition, obj.min_ready_seconds) == ("Parallel", 2, 5)
    assert obj.claim_templates[0].storage_class == "local-path"
    assert parse({"spec.updateStrategy": {"type": "OnDelete"}}).update_strategy == "OnDelete"


def test_the_template_is_kept_as_written():
    """Claim volumes are added only to validate the mounts: the stored template (and so
    the revision hash) is the one written."""
    obj = parse()
    assert "volumes" not in obj.template.raw["spec"]
    assert revision_name(obj) == revision_name(parse())
    assert revision_name(obj) != revision_name(parse({"spec.template.spec.containers[0].image":
                                                      "nginx:1.28"}))


ERRORS = [
    # id, changes, expected text
    ("bad policy", {"spec.podManagementPolicy": "Ordered"},
     "spec.podManagementPolicy: 'Ordered' is not allowed (allowed: \"OrderedReady\", \"Parallel\")"),
    ("bad strategy", {"spec.updateStrategy.type": "Recreate"},
     "spec.updateStrategy.type: 'Recreate' is not allowed"),
    ("negative partition", {"spec.updateStrategy.rollingUpdate.partition": -1},
     "spec.updateStrategy.rollingUpdate.partition: -1 is out of range (allowed: >= 0)"),
    ("rollingUpdate with OnDelete", {"spec.updateStrategy": {"type": "OnDelete",
                                                             "rollingUpdate": {"partition": 1}}},
     "spec.updateStrategy.rollingUpdate: must not be set when type is OnDelete"),
    ("maxUnavailable above 1", {"spec.updateStrategy.rollingUpdate.maxUnavailable": 2},
     "spec.updateStrategy.rollingUpdate.maxUnavailable: 2 is not supported by podctl yet"),
    ("claim without a name", {"spec.volumeClaimTemplates[0].metadata": {}},
     "spec.volumeClaimTemplates[0].metadata.name: required field is missing"),
    ("claim without metadata", {"spec.volumeClaimTemplates[0].metadata": DELETE},
     "spec.volumeClaimTemplates[0].metadata: required field is missing"),
    ("claim name not a label", {"spec.volumeClaimTemplates[0].metadata.name": "Data_1"},
     "spec.volumeClaimTemplates[0].metadata.name: 'Data_1' is not a DNS-1123 label"),
    ("claim names unique", {"spec.volumeClaimTemplates": 2 * BASE["spec"]["volumeClaimTemplates"]},
     ("spec.volumeClaimTemplates[1].metadata.name: duplicate claim template name 'data' "
     "(first at spec.volumeClaimTemplates[0].metadata.name)")),
    ("access modes required", {"spec.volumeClaimTemplates[0].spec.accessModes": DELETE},
     "spec.volumeClaimTemplates[0].spec.accessModes: at least 1 access mode is required"),
    ("shared access refused", {"spec.volumeClaimTemplates[0].spec.accessModes": ["ReadWriteMany"]},
     ("accessModes[0]: 'ReadWriteMany' is not supported by podctl: a claim is a directory on "
     "one host")),
    ("storage required", {"spec.volumeClaimTemplates[0].spec.resources.requests": {}},
     "spec.volumeClaimTemplates[0].spec.resources.requests.storage: required field is missing"),
    ("resources required", {"spec.volumeClaimTemplates[0].spec.resources": DELETE},
     "spec.volumeClaimTemplates[0].spec.resources: required field is missing"),
    ("storage is a quantity", {"spec.volumeClaimTemplates[0].spec.resources.requests.storage":
                               "lots"}, "requests.storage: "),
    ("only storage", {"spec.volumeClaimTemplates[0].spec.resources.requests.cpu": "1"},
     "requests.cpu: 'cpu' is not allowed for a claim (allowed: \"storage\")"),
    ("claim spec required", {"spec.volumeClaimTemplates[0].spec": DELETE},
     "spec.volumeClaimTemplates[0].spec: required field is missing"),
    ("claim kind", {"spec.volumeClaimTemplates[0].kind": "Volume"},
     "spec.volumeClaimTemplates[0].kind: 'Volume' is not allowed"),
    ("claim selector not yet", {"spec.volumeClaimTemplates[0].spec.selector":
                                {"matchLabels": {"a": "b"}}},
     "spec.volumeClaimTemplates[0].spec.selector: not supported by podctl yet"),
    ("retention Delete", {"spec.persistentVolumeClaimRetentionPolicy.whenDeleted": "Delete"},
     ("spec.persistentVolumeClaimRetentionPolicy.whenDeleted: 'Delete' is not supported by "
     "podctl yet (accepted: \"Retain\"")),
    ("ordinals not yet", {"spec.ordinals": {"start": 1}}, "spec.ordinals: not supported by podctl yet"),
    ("did you mean", {"spec.volumeClaimTemplate": []},
     ("spec.volumeClaimTemplate: unknown field 'volumeClaimTemplate' (did you mean "
     "'volumeClaimTemplates'?)")),
    ("serviceName a label", {"spec.serviceName": "Web Service"},
     "spec.serviceName: 'Web Service' is not a DNS-1123 label"),
    ("restartPolicy Always only", {"spec.template.spec.restartPolicy": "Never"},
     "spec.template.spec.restartPolicy: 'Never' is not allowed for a StatefulSet"),
    ("a mount still needs a volume", {"spec.template.spec.containers[0].volumeMounts[0].name":
                                      "logs"}, "volumeMounts[0].name"),
    ("selector must match", {"spec.selector.matchLabels.app": "db"},
     "selector does not match the template's labels"),
    ("selector required", {"spec.selector": DELETE}, "spec.selector: required field is missing"),
    ("pod names stay labels", {"metadata.name": "w" * 62},
     "spec.replicas: pod name '" + "w" * 62 + "-2' would be longer than 63 characters"),
    ("claim names stay labels", {"metadata.name": "w" * 57},
     "spec.volumeClaimTemplates[0].metadata.name: claim name 'data-" + "w" * 57 + "-2' would be "
     "longer than 63 characters"),
]


@pytest.mark.parametrize("changes, expected", [c[1:] for c in ERRORS], ids=[c[0] for c in ERRORS])
def test_errors(changes, expected):
    assert expected in errors_of(changes)


def test_errors_name_file_and_line():
    text = textwrap.dedent("""\
        apiVersion: apps/v1
        kind: StatefulSet
        metadata: {name: web}
        spec:
          selector: {matchLabels: {app: web}}
          podManagementPolicy: Sequential
          template:
            metadata: {labels: {app: web}}
            spec:
              containers: [{name: app, image: nginx}]
          volumeClaimTemplates:
          - metadata: {name: data}
            spec:
              accessModes: [ReadWriteOnce]
              resources: {requests: {storage: 1Gi}}
              storageClas: fast
        """)
    with pytest.raises(ManifestError) as info:
        parse_documents(text, "db.yaml")
    message = str(info.value)
    assert "db.yaml:6 (document 1): spec.podManagementPolicy: 'Sequential' is not allowed" in message
    assert ("db.yaml:16 (document 1): spec.volumeClaimTemplates[0].spec.storageClas: unknown "
            "field 'storageClas' (did you mean 'storageClassName'?)") in message


def test_every_statefulset_table_is_documented():
    for table in ("StatefulSetSpec", "StatefulSetUpdateStrategy", "RollingUpdateStatefulSetStrategy",
                  "StatefulSetPersistentVolumeClaimRetentionPolicy", "PersistentVolumeClaim",
                  "PersistentVolumeClaimSpec", "VolumeResourceRequirements"):
        assert table in OBJECT_FIELDS
    assert "no DNS" in OBJECT_FIELDS["StatefulSetSpec"]["serviceName"].what


def test_a_bad_claim_template_is_reported_once_not_again_at_its_mounts():
    message = errors_of({"spec.volumeClaimTemplates[0].spec.resources.requests.storage": "lots"})
    assert "volumeMounts" not in message and "volumes[" not in message


@pytest.mark.parametrize("kind, api", [("StatefulSet", "apps/v1"), ("Deployment", "apps/v1"),
                                       ("DaemonSet", "apps/v1"), ("Job", "batch/v1")])
def test_an_empty_spec_is_missing_its_template(kind, api):
    with pytest.raises(ManifestError, match="spec.template: required field is missing"):
        parse_documents(yaml.safe_dump({"apiVersion": api, "kind": kind,
                                        "metadata": {"name": "x"}, "spec": {}}), "x.yaml")
