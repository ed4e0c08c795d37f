"""Deployment, Job and DaemonSet manifests: defaults, and errors that read like a Pod's."""

from __future__ import annotations

import copy
import re

import pytest
import yaml

from orchestrator.errors import ManifestError
from orchestrator.manifests import (
    OBJECT_FIELDS,
    NoOp,
    NotYet,
    parse_documents,
    pod_to_k8s,
    validate_pod,
    validate_pod_template,
)
from orchestrator.model import Taint
from orchestrator.workloads.specs import (
    DaemonSet,
    Deployment,
    Job,
    LabelSelector,
    PodTemplate,
    Requirement,
    Toleration,
    scaled,
)

TEMPLATE = {"metadata": {"labels": {"app": "web"}},
            "spec": {"containers": [{"name": "app", "image": "nginx:1.27"}]}}
BASE = {
    "Deployment": {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
                   "spec": {"selector": {"matchLabels": {"app": "web"}},
                            "template": TEMPLATE}},
    "Job": {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "pi"},
            "spec": {"template": {**TEMPLATE, "spec": {**TEMPLATE["spec"],
                                                       "restartPolicy": "Never"}}}},
    "DaemonSet": {"apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"name": "agent"},
                  "spec": {"selector": {"matchLabels": {"app": "web"}}, "template": TEMPLATE}},
}
DELETE = object()


def doc(kind: str, changes: dict | None = None) -> dict:
    """BASE[kind] with {"a.b[0].c": value} applied (DELETE removes the key)."""
    out = copy.deepcopy(BASE[kind])
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


def parse(kind: str, changes: dict | None = None):
    (m,) = parse_documents(yaml.safe_dump(doc(kind, changes), sort_keys=False), "ok.yaml")
    return m


def errors_of(kind: str, changes: dict) -> str:
    with pytest.raises(ManifestError) as info:
        parse_documents(yaml.safe_dump(doc(kind, changes), sort_keys=False), "bad.yaml")
    return str(info.value)


# ---------------------------------------------------------------- defaults


def test_deployment_defaults_as_kubernetes():
    m = parse("Deployment")
    dep = m.obj
    assert isinstance(dep, Deployment) and (m.kind, m.name, m.namespace) == ("Deployment", "web", "default")
    assert (dep.replicas, dep.strategy, dep.max_surge, dep.max_unavailable) == (1, "RollingUpdate", "25%", "25%")
    assert (dep.min_ready_seconds, dep.revision_history_limit, dep.paused,
            dep.progress_deadline_seconds) == (0, 10, False, 600)
    assert dep.selector == LabelSelector((("app", "web"),))
    assert dep.template.labels == (("app", "web"),) and dep.template.raw == TEMPLATE
    assert dep.template.spec.restart_policy == "Always"
    assert dep.template.spec.containers[0].image_pull_policy == "IfNotPresent"


def test_deployment_fields_are_read():
    dep = parse("Deployment", {
        "spec.replicas": 5, "spec.minReadySeconds": 3, "spec.revisionHistoryLimit": 2,
        "spec.paused": True, "spec.progressDeadlineSeconds": 30,
        "spec.strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 2, "maxUnavailable": "50%"}},
        "spec.selector": {"matchExpressions": [{"key": "app", "operator": "In", "values": ["web", "api"]}]},
    }).obj
    assert (dep.replicas, dep.min_ready_seconds, dep.revision_history_limit, dep.paused,
            dep.progress_deadline_seconds, dep.max_surge, dep.max_unavailable) == (5, 3, 2, True, 30, 2, "50%")
    assert dep.selector.match_expressions == (Requirement("app", "In", ("web", "api")),)
    assert dep.rolling_limits() == (2, 2)
    recreate = parse("Deployment", {"spec.strategy": {"type": "Recreate"}}).obj
    assert recreate.strategy == "Recreate" and recreate.rolling_limits() == (0, 0)


@pytest.mark.parametrize("replicas, surge, unavailable, expected", [
    (4, "25%", "25%", (1, 1)),
    (10, "25%", "25%", (3, 2)),   # surge rounds up, unavailable down
    (1, "25%", "25%", (1, 0)),
    (3, 0, "10%", (0, 1)),        # never both 0 (ResolveFenceposts)
    (3, "100%", 0, (3, 0)),
])
def test_rolling_limits_resolve_like_kubernetes(replicas, surge, unavailable, expected):
    dep = parse("Deployment", {"spec.replicas": replicas, "spec.strategy.rollingUpdate":
                               {"maxSurge": surge, "maxUnavailable": unavailable}}).obj
    assert dep.rolling_limits() == expected


def test_scaled_percentages():
    assert [scaled("25%", 10, True), scaled("25%", 10, False), scaled(3, 10, True)] == [3, 2, 3]


def test_job_defaults_as_kubernetes():
    job = parse("Job").obj
    assert isinstance(job, Job)
    assert (job.completions, job.parallelism, job.backoff_limit, job.active_deadline_seconds,
            job.ttl_seconds_after_finished, job.completion_mode, job.selector) == \
        (1, 1, 6, None, None, "NonIndexed", None)
    # parallelism alone: a work queue (completions stays unset), as Kubernetes defaults it
    queue = parse("Job", {"spec.parallelism": 3}).obj
    assert (queue.completions, queue.parallelism) == (None, 3)
    full = parse("Job", {"spec.completions": 5, "spec.parallelism": 2, "spec.backoffLimit": 0,
                         "spec.activeDeadlineSeconds": 60, "spec.ttlSecondsAfterFinished": 0,
                         "spec.completionMode": "NonIndexed", "spec.suspend": False,
                         "spec.template.spec.restartPolicy": "OnFailure"}).obj
    assert (full.completions, full.parallelism, full.backoff_limit, full.active_deadline_seconds,
            full.ttl_seconds_after_finished) == (5, 2, 0, 60, 0)
    assert full.template.spec.restart_policy == "OnFailure"


def test_daemonset_defaults_and_tolerations():
    ds = parse("DaemonSet", {"spec.template.spec.tolerations": [
        {"key": "dedicated", "operator": "Equal", "value": "infra", "effect": "NoSchedule"},
        {"operator": "Exists"},
        {"key": "gone", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 30}],
        "spec.template.spec.nodeSelector": {"role": "edge"}}).obj
    assert isinstance(ds, DaemonSet)
    assert (ds.update_strategy, ds.max_unavailable, ds.min_ready_seconds,
            ds.revision_history_limit) == ("RollingUpdate", 1, 0, 10)
    assert ds.template.tolerations == (Toleration("dedicated", "Equal", "infra", "NoSchedule"),
                                       Toleration("", "Exists"),
                                       Toleration("gone", "Exists", "", "NoExecute", 30))
    assert ds.template.spec.node_selector == (("role", "edge"),)
    assert ds.max_unavailable_for(10) == 1
    pct = parse("DaemonSet", {"spec.updateStrategy": {"rollingUpdate": {"maxUnavailable": "25%"}}}).obj
    assert pct.max_unavailable_for(10) == 3  # rounds up
    on_delete = parse("DaemonSet", {"spec.updateStrategy": {"type": "OnDelete"}}).obj
    assert on_delete.update_strategy == "OnDelete"


def test_template_name_is_ignored_and_annotations_kept():
    dep = parse("Deployment", {"spec.template.metadata.name": "ignored",
                               "spec.template.metadata.annotations": {"a/b": "c"}}).obj
    assert dep.template.annotations == (("a/b", "c"),)


# ---------------------------------------------------------------- errors, one table

NOT_YET = "not supported by podctl yet"

# (id, kind, changes, field path in the message, fragments that must appear)
ERRORS = [
    # Deployment
    ("selector-mismatch", "Deployment", {"spec.selector.matchLabels": {"app": "api"}},
     "spec.template.metadata.labels", ["selector does not match the template's labels",
                                       "app=api", "app=web"]),
    ("selector-expression-mismatch", "Deployment",
     {"spec.selector": {"matchExpressions": [{"key": "app", "operator": "NotIn", "values": ["web"]}]}},
     "spec.template.metadata.labels", ["selector does not match"]),
    ("no-selector", "Deployment", {"spec.selector": DELETE}, "spec.selector", ["required"]),
    ("empty-selector", "Deployment", {"spec.selector": {}}, "spec.selector",
     ["empty selector is invalid for a Deployment"]),
    ("in-without-values", "Deployment",
     {"spec.selector.matchExpressions": [{"key": "app", "operator": "In"}]},
     "spec.selector.matchExpressions[0].values", ["must be non-empty when operator is In"]),
    ("exists-with-values", "Deployment",
     {"spec.selector.matchExpressions": [{"key": "app", "operator": "Exists", "values": ["x"]}]},
     "spec.selector.matchExpressions[0].values", ["must be empty when operator is Exists"]),
    ("bad-operator", "Deployment",
     {"spec.selector.matchExpressions": [{"key": "app", "operator": "Has"}]},
     "spec.selector.matchExpressions[0].operator", ["'Has' is not allowed", '"In", "NotIn"']),
    ("selector-label-value", "Deployment", {"spec.selector.matchLabels": {"app": "we b"}},
     "spec.selector.matchLabels[app]", ["not a valid label value"]),
    ("no-template", "Deployment", {"spec.template": DELETE}, "spec.template", ["required"]),
    ("no-spec", "Deployment", {"spec": DELETE}, "spec", ["required", "selector and template"]),
    ("replicas-negative", "Deployment", {"spec.replicas": -1}, "spec.replicas",
     ["-1 is out of range", ">= 0"]),
    ("replicas-quoted", "Deployment", {"spec.replicas": "3"}, "spec.replicas",
     ["expected an integer", "write it without quotes"]),
    ("replica-typo", "Deployment", {"spec.replica": 3}, "spec.replica",
     ["unknown field 'replica'", "did you mean 'replicas'?"]),
    ("bad-percent", "Deployment", {"spec.strategy.rollingUpdate": {"maxSurge": "25"}},
     "spec.strategy.rollingUpdate.maxSurge", ["'25' is not allowed", "percentage such as '25%'"]),
    ("negative-surge", "Deployment", {"spec.strategy.rollingUpdate": {"maxSurge": -1}},
     "spec.strategy.rollingUpdate.maxSurge", ["out of range"]),
    ("unavailable-over-100", "Deployment",
     {"spec.strategy.rollingUpdate": {"maxUnavailable": "150%"}},
     "spec.strategy.rollingUpdate.maxUnavailable", ["must not be greater than 100%"]),
    ("both-zero", "Deployment",
     {"spec.strategy.rollingUpdate": {"maxUnavailable": "0%", "maxSurge": 0}},
     "spec.strategy.rollingUpdate.maxUnavailable", ["must not be 0 when maxSurge is 0"]),
    ("recreate-with-rolling", "Deployment",
     {"spec.strategy": {"type": "Recreate", "rollingUpdate": {"maxSurge": 1}}},
     "spec.strategy.rollingUpdate", ["must not be set when type is Recreate"]),
    ("strategy-type", "Deployment", {"spec.strategy": {"type": "BlueGreen"}}, "spec.strategy.type",
     ["'BlueGreen' is not allowed", '"RollingUpdate", "Recreate"']),
    ("deadline-vs-min-ready", "Deployment",
     {"spec.minReadySeconds": 10, "spec.progressDeadlineSeconds": 10},
     "spec.progressDeadlineSeconds", ["must be greater than minReadySeconds (10)"]),
    ("paused-type", "Deployment", {"spec.paused": "yes"}, "spec.paused", ["expected a boolean"]),
    ("deployment-restart-never", "Deployment", {"spec.template.spec.restartPolicy": "Never"},
     "spec.template.spec.restartPolicy", ["'Never' is not allowed for a Deployment",
                                          'allowed: "Always"']),
    ("template-pod-rules", "Deployment", {"spec.template.spec.containers[0].image": DELETE},
     "spec.template.spec.containers[0].image", ["required"]),
    ("template-init-container-rules", "Deployment",
     {"spec.template.spec.initContainers": [{"name": "x", "image": "y", "restartPolicy": "Never"}]},
     "spec.template.spec.initContainers[0].restartPolicy", ["'Never' is not allowed", 'allowed: "Always"']),
    ("template-unknown", "Deployment", {"spec.template.specs": {}}, "spec.template.specs",
     ["unknown field 'specs'", "did you mean 'spec'?"]),
    ("template-label-key", "Deployment", {"spec.template.metadata.labels": {"-x": "y", "app": "web"}},
     "spec.template.metadata.labels[-x]", ["label key"]),
    ("status-is-ignored-but-rollback-unknown", "Deployment", {"spec.rollbackTo": {"revision": 1}},
     "spec.rollbackTo", ["unknown field 'rollbackTo'"]),
    # Job
    ("job-restart-always", "Job", {"spec.template.spec.restartPolicy": "Always"},
     "spec.template.spec.restartPolicy", ["'Always' is not allowed for a Job",
                                          '"OnFailure", "Never"']),
    ("job-restart-missing", "Job", {"spec.template.spec.restartPolicy": DELETE},
     "spec.template.spec.restartPolicy", ["required field is missing for a Job"]),
    ("job-indexed", "Job", {"spec.completionMode": "Indexed"}, "spec.completionMode",
     ["'Indexed' is not supported by podctl yet"]),
    ("job-mode", "Job", {"spec.completionMode": "Sparse"}, "spec.completionMode",
     ["'Sparse' is not allowed"]),
    ("job-backoff", "Job", {"spec.backoffLimit": -1}, "spec.backoffLimit", ["out of range"]),
    ("job-deadline", "Job", {"spec.activeDeadlineSeconds": 0}, "spec.activeDeadlineSeconds",
     ["0 is out of range (allowed: >= 1)"]),
    ("job-completions", "Job", {"spec.completions": -2}, "spec.completions", ["out of range"]),
    ("job-pod-failure-policy", "Job", {"spec.podFailurePolicy": {"rules": []}},
     "spec.podFailurePolicy", [NOT_YET]),
    ("job-suspend", "Job", {"spec.suspend": True}, "spec.suspend",
     ["True is not supported by podctl yet", "accepted: false"]),
    ("job-manual-without-selector", "Job", {"spec.manualSelector": True}, "spec.selector",
     ["required"]),
    ("job-selector-mismatch", "Job", {"spec.selector": {"matchLabels": {"app": "x"}}},
     "spec.template.metadata.labels", ["selector does not match"]),
    # DaemonSet
    ("ds-replicas", "DaemonSet", {"spec.replicas": 3}, "spec.replicas",
     ["unknown field 'replicas'", "podctl supports here: selector, template"]),
    ("ds-selector-mismatch", "DaemonSet", {"spec.template.metadata.labels": {"app": "x"}},
     "spec.template.metadata.labels", ["selector does not match"]),
    ("ds-on-delete-with-rolling", "DaemonSet",
     {"spec.updateStrategy": {"type": "OnDelete", "rollingUpdate": {"maxUnavailable": 1}}},
     "spec.updateStrategy.rollingUpdate", ["must not be set when type is OnDelete"]),
    ("ds-max-surge", "DaemonSet", {"spec.updateStrategy.rollingUpdate": {"maxSurge": 1}},
     "spec.updateStrategy.rollingUpdate.maxSurge", ["1 is not supported by podctl yet"]),
    ("ds-max-unavailable-zero", "DaemonSet",
     {"spec.updateStrategy.rollingUpdate": {"maxUnavailable": 0}},
     "spec.updateStrategy.rollingUpdate.maxUnavailable", ["must not be 0"]),
    ("ds-restart", "DaemonSet", {"spec.template.spec.restartPolicy": "OnFailure"},
     "spec.template.spec.restartPolicy", ["not allowed for a DaemonSet"]),
    # tolerations (any pod spec)
    ("toleration-exists-value", "DaemonSet",
     {"spec.template.spec.tolerations": [{"key": "k", "operator": "Exists", "value": "v"}]},
     "spec.template.spec.tolerations[0].value", ["must be empty when operator is Exists"]),
    ("toleration-empty-key", "DaemonSet",
     {"spec.template.spec.tolerations": [{"value": "v"}]},
     "spec.template.spec.tolerations[0].operator", ["must be Exists when key is empty"]),
    ("toleration-seconds", "DaemonSet",
     {"spec.template.spec.tolerations": [{"key": "k", "operator": "Exists", "effect": "NoSchedule",
                                          "tolerationSeconds": 5}]},
     "spec.template.spec.tolerations[0].effect", ["must be NoExecute when tolerationSeconds is set"]),
    ("toleration-effect", "DaemonSet",
     {"spec.template.spec.tolerations": [{"key": "k", "operator": "Exists", "effect": "NoRun"}]},
     "spec.template.spec.tolerations[0].effect", ["'NoRun' is not allowed", '"NoSchedule"']),
    ("toleration-unknown", "DaemonSet",
     {"spec.template.spec.tolerations": [{"key": "k", "operater": "Exists"}]},
     "spec.template.spec.tolerations[0].operater", ["did you mean 'operator'?"]),
    ("toleration-key", "DaemonSet",
     {"spec.template.spec.tolerations": [{"key": "-k", "operator": "Exists"}]},
     "spec.template.spec.tolerations[0].key", ["label key"]),
]


@pytest.mark.parametrize("kind, changes, path, fragments", [e[1:] for e in ERRORS],
                         ids=[e[0] for e in ERRORS])
def test_errors_name_file_line_field_and_what_is_allowed(kind, changes, path, fragments):
    message = errors_of(kind, changes)
    line = next((l for l in message.splitlines() if f": {path}: " in l), None)
    assert line is not None, message
    assert re.match(r"\s*bad\.yaml:\d+ \(document 1\): ", line), line
    for fragment in fragments:
        assert fragment in line, (fragment, line)


def test_error_points_at_the_line_of_the_field():
    text = """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: 2
  selector:
    matchLabels:
      app: api
  template:
    metadata:
      labels:
        app: web
    spec:
      restartPolicy: Never
      containers:
      - name: app
        image: nginx:1.27
"""
    with pytest.raises(ManifestError) as info:
        parse_documents(text, "web.yaml")
    assert str(info.value).splitlines()[1:] == [
        ("  web.yaml:12 (document 1): spec.template.metadata.labels: selector does not match "
         "the template's labels (selector: app=api; labels: app=web)"),
        ("  web.yaml:15 (document 1): spec.template.spec.restartPolicy: 'Never' is not allowed "
         'for a Deployment (allowed: "Always")'),
    ]


def test_wrong_api_version_for_a_workload():
    message = errors_of("Deployment", {"apiVersion": "extensions/v1beta1"})
    assert "apiVersion: 'extensions/v1beta1' is not valid for kind Deployment (allowed: apps/v1)" in message
    message = errors_of("Job", {"apiVersion": "apps/v1"})
    assert "(allowed: batch/v1)" in message


def test_no_op_values_of_the_workload_tables_are_accepted():
    where = {"JobSpec": ("Job", "spec"), "RollingUpdateDaemonSet":
             ("DaemonSet", "spec.updateStrategy.rollingUpdate")}
    seen = 0
    for obj, (kind, prefix) in where.items():
        for name, rule in OBJECT_FIELDS[obj].items():
            if isinstance(rule, NoOp):
                for value in rule.values:
                    parse(kind, {f"{prefix}.{name}": value})
                    seen += 1
    assert seen == 4


@pytest.mark.parametrize("table", ["JobSpec"])
def test_not_yet_fields_of_the_workload_tables_are_errors(table):
    for name, rule in OBJECT_FIELDS[table].items():
        if isinstance(rule, NotYet):
            assert f"spec.{name}: {NOT_YET}" in errors_of("Job", {f"spec.{name}": {"a": 1}})


def test_status_of_a_workload_is_ignored():
    assert parse("Deployment", {"status": {"replicas": 3}}).obj.name == "web"


# ---------------------------------------------------------------- the pod template API


def test_validate_pod_template_reuses_the_pod_rules():
    template = validate_pod_template(TEMPLATE, "state.db deployment default/web")
    assert isinstance(template, PodTemplate) and template.spec.containers[0].name == "app"
    with pytest.raises(ManifestError) as info:
        validate_pod_template({"spec": {"containers": [{"name": "App"}]}}, "hist", "spec.template")
    text = str(info.value)
    assert "hist: spec.template.spec.containers[0].name: 'App' is not a DNS-1123 label" in text
    assert "hist: spec.template.spec.containers[0].image: required" in text


def test_pods_accept_tolerations_now():
    pod_doc = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
               "spec": {"containers": [{"name": "a", "image": "b:1"}],
                        "tolerations": [{"key": "k", "operator": "Exists", "effect": "NoSchedule"}]}}
    pod = validate_pod(pod_doc, "x")
    assert validate_pod(pod_to_k8s(pod), "x") == pod
    pod_doc["spec"]["tolerations"] = [{"key": "k", "operator": "Exists", "value": "v"}]
    with pytest.raises(ManifestError, match=r"spec.tolerations\[0\].value: 'v': must be empty"):
        validate_pod(pod_doc, "x")


# ---------------------------------------------------------------- matching rules

T = Taint


@pytest.mark.parametrize("toleration, taint, tolerated", [
    (Toleration("k", "Equal", "v", "NoSchedule"), T("k", "v", "NoSchedule"), True),
    (Toleration("k", "Equal", "v", "NoSchedule"), T("k", "w", "NoSchedule"), False),
    (Toleration("k", "Equal", "v", "NoSchedule"), T("k", "v", "NoExecute"), False),
    (Toleration("k", "Equal", "v", ""), T("k", "v", "NoExecute"), True),  # empty effect: all
    (Toleration("k", "Exists", "", "NoSchedule"), T("k", "any", "NoSchedule"), True),
    (Toleration("", "Exists"), T("whatever", "x", "NoExecute"), True),  # tolerates everything
    (Toleration("k", "Equal", "", ""), T("k", "", "NoSchedule"), True),
    (Toleration("j", "Exists"), T("k", "", "NoSchedule"), False),
])
def test_toleration_matching_follows_kubernetes(toleration, taint, tolerated):
    assert toleration.tolerates(taint) is tolerated


@pytest.mark.parametrize("selector, labels, matches", [
    (LabelSelector((("app", "web"),)), {"app": "web", "x": "y"}, True),
    (LabelSelector((("app", "web"),)), {"app": "api"}, False),
    (LabelSelector((), (Requirement("tier", "In", ("a", "b")),)), {"tier": "b"}, True),
    (LabelSelector((), (Requirement("tier", "In", ("a",)),)), {}, False),
    (LabelSelector((), (Requirement("tier", "NotIn", ("a",)),)), {}, True),
    (LabelSelector((), (Requirement("tier", "Exists"),)), {"tier": ""}, True),
    (LabelSelector((), (Requirement("tier", "DoesNotExist"),)), {"tier": ""}, False),
])
def test_label_selector_matching(selector, labels, matches):
    assert selector.matches(labels) is matches


def test_selector_prints_like_kubectl():
    sel = LabelSelector((("app", "web"),), (Requirement("tier", "In", ("b", "a")),
                                             Requirement("gone", "DoesNotExist")))
    assert str(sel) == "app=web,tier in (a,b),!gone"
    assert sel.to_k8s() == {"matchLabels": {"app": "web"}, "matchExpressions": [
        {"key": "tier", "operator": "In", "values": ["b", "a"]},
        {"key": "gone", "operator": "DoesNotExist"}]}
