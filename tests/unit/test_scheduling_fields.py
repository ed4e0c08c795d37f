"""PodSpec affinity and topologySpreadConstraints (orchestrator/scheduling_fields.py):
validated as Kubernetes' apiserver validates them, errors naming file:line and field
path, and in agreement with scheduler/kube.py: whatever validates maps to a SchedPod.
Also the one Toleration type (orchestrator.model) shared by every layer."""

from __future__ import annotations

import copy
import re

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import orchestrator.scheduler as scheduler
import orchestrator.scheduler.types as scheduler_types
import orchestrator.workloads as workloads
import orchestrator.workloads.specs as specs
from orchestrator.errors import ManifestError
from orchestrator.manifests import OBJECT_FIELDS, NotYet, _Ctx, parse_documents, validate_pod
from orchestrator.model import Taint, Toleration
from orchestrator.scheduler import LabelSelector, NodeSelectorTerm, PodAffinityTerm, Requirement
from orchestrator.scheduler.kube import sched_pod
from orchestrator.workloads.common import HostInfo
from orchestrator.workloads.daemonset import eligibility
from orchestrator.workloads.specs import parse_tolerations
from orchestrator.workloads.validation import tolerations as validate_tolerations

REQ = "requiredDuringSchedulingIgnoredDuringExecution"
PREF = "preferredDuringSchedulingIgnoredDuringExecution"
NOT_YET = "not supported by podctl yet"

FULL = yaml.safe_load(f"""
containers: [{{name: app, image: nginx:1.27}}]
tolerations:
- {{key: dedicated, operator: Equal, value: gpu, effect: NoSchedule}}
- {{key: gone, operator: Exists, effect: NoExecute, tolerationSeconds: 30}}
affinity:
  nodeAffinity:
    {REQ}:
      nodeSelectorTerms:
      - matchExpressions:
        - {{key: zone, operator: In, values: [a, b]}}
        - {{key: gen, operator: Gt, values: ["2"]}}
        - {{key: spot, operator: DoesNotExist}}
      - matchFields: [{{key: metadata.name, operator: NotIn, values: [node-1.example.com]}}]
      - {{}}
    {PREF}:
    - {{weight: 30, preference: {{matchExpressions: [{{key: disk, operator: Exists}}]}}}}
  podAffinity:
    {REQ}:
    - labelSelector: {{matchLabels: {{app: db}}}}
      topologyKey: topology.kubernetes.io/zone
      namespaces: [prod]
  podAntiAffinity:
    {REQ}:
    - labelSelector: {{matchExpressions: [{{key: app, operator: In, values: [web]}}]}}
      topologyKey: kubernetes.io/hostname
      matchLabelKeys: []
    {PREF}:
    - weight: 100
      podAffinityTerm:
        labelSelector: {{matchLabels: {{app: web}}}}
        topologyKey: zone
        namespaceSelector: {{}}
topologySpreadConstraints:
- {{maxSkew: 1, topologyKey: zone, whenUnsatisfiable: ScheduleAnyway,
   labelSelector: {{matchLabels: {{app: web}}}}, nodeAffinityPolicy: Ignore, nodeTaintsPolicy: Honor}}
- {{maxSkew: 2, topologyKey: zone, whenUnsatisfiable: DoNotSchedule, minDomains: 3,
   labelSelector: {{matchLabels: {{app: web}}}}}}
""")


def pod_doc(spec: dict) -> dict:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web", "labels": {"app": "web"}},
            "spec": spec}


def errors_of(doc: dict) -> list[str]:
    with pytest.raises(ManifestError) as info:
        parse_documents(yaml.safe_dump(doc, sort_keys=False), "bad.yaml")
    text = str(info.value)
    return text.splitlines()[1:] if text.startswith(tuple("0123456789")) else [text]


# ---------------------------------------------------------------- accepted


def test_every_affinity_and_spread_field_validates_and_maps():
    pod = validate_pod(pod_doc(FULL), "ok.yaml")
    assert pod.name == "web"
    p = sched_pod("default", "web", {"app": "web"}, FULL)
    assert p.required_node_affinity == (
        NodeSelectorTerm((Requirement("zone", "In", ("a", "b")), Requirement("gen", "Gt", ("2",)),
                          Requirement("spot", "DoesNotExist"))),
        NodeSelectorTerm(match_fields=(Requirement("metadata.name", "NotIn", ("node-1.example.com",)),)),
        NodeSelectorTerm())
    assert p.pod_affinity == (PodAffinityTerm(LabelSelector({"app": "db"}), "topology.kubernetes.io/zone",
                                              ("prod",)),)
    assert p.preferred_pod_anti_affinity[0].term.all_namespaces
    assert [(c.max_skew, c.when_unsatisfiable, c.min_domains) for c in p.topology_spread] == [
        (1, "ScheduleAnyway", None), (2, "DoNotSchedule", 3)]
    assert p.tolerations == (Toleration("dedicated", "Equal", "gpu", "NoSchedule"),
                             Toleration("gone", "Exists", "", "NoExecute", 30))


@pytest.mark.parametrize("kind, api, extra", [
    ("Deployment", "apps/v1", {}),
    ("Job", "batch/v1", {}),
    ("DaemonSet", "apps/v1", {}),
])
def test_workload_templates_accept_them_and_report_errors_under_the_template(kind, api, extra):
    spec = copy.deepcopy(FULL)
    spec["restartPolicy"] = "Never" if kind == "Job" else "Always"
    doc = {"apiVersion": api, "kind": kind, "metadata": {"name": "web"},
           "spec": {"selector": {"matchLabels": {"app": "web"}},
                    "template": {"metadata": {"labels": {"app": "web"}}, "spec": spec}, **extra}}
    (m,) = parse_documents(yaml.safe_dump(doc), "ok.yaml")
    assert m.obj.template.raw["spec"]["affinity"] == FULL["affinity"]
    spec["topologySpreadConstraints"][0]["maxSkew"] = 0
    (line,) = errors_of(doc)
    assert re.match(r"bad\.yaml:\d+ \(document 1\): spec\.template\.spec\.topologySpreadConstraints\[0\]"
                    r"\.maxSkew: 0 is out of range", line), line


@pytest.mark.parametrize("spec", [
    {"affinity": {}},
    {"affinity": None, "topologySpreadConstraints": []},
    {"affinity": {"nodeAffinity": {}, "podAffinity": {REQ: []}, "podAntiAffinity": None}},
    {"affinity": {"nodeAffinity": {REQ: {"nodeSelectorTerms": [{}]}}}},  # matches no host, as in k8s
    {"affinity": {"podAffinity": {REQ: [{"topologyKey": "zone", "namespaceSelector": {"matchLabels": {}}}]}}},
    {"affinity": {"podAffinity": {REQ: [{"topologyKey": "zone", "mismatchLabelKeys": None}]}}},
    {"topologySpreadConstraints": [{"maxSkew": 1, "topologyKey": "zone", "whenUnsatisfiable": "DoNotSchedule"},
                                   {"maxSkew": 1, "topologyKey": "zone", "whenUnsatisfiable": "ScheduleAnyway"}]},
], ids=["empty-affinity", "nulls", "empty-parts", "empty-term", "empty-namespace-selector",
        "null-not-yet", "same-key-other-action"])
def test_empty_and_minimal_forms_are_accepted(spec):
    spec = {"containers": [{"name": "a", "image": "x"}], **spec}
    validate_pod(pod_doc(spec), "ok.yaml")
    sched_pod("default", "web", {}, spec)


def test_an_empty_namespace_selector_means_every_namespace():
    spec = {"containers": [{"name": "a", "image": "x"}], "affinity": {"podAffinity": {REQ: [
        {"topologyKey": "zone", "namespaceSelector": {"matchLabels": {}, "matchExpressions": []}}]}}}
    validate_pod(pod_doc(spec), "ok.yaml")
    assert sched_pod("default", "web", {}, spec).pod_affinity[0].all_namespaces


# ---------------------------------------------------------------- refused, one table

NA = "spec.affinity.nodeAffinity"
TERM0 = f"{NA}.{REQ}.nodeSelectorTerms[0]"
PA = f"spec.affinity.podAffinity.{REQ}[0]"
TSC = "spec.topologySpreadConstraints"


def node_expr(**r):
    return {"affinity": {"nodeAffinity": {REQ: {"nodeSelectorTerms": [{"matchExpressions": [r]}]}}}}


def node_field(**r):
    return {"affinity": {"nodeAffinity": {REQ: {"nodeSelectorTerms": [{"matchFields": [r]}]}}}}


def pod_term(**t):
    return {"affinity": {"podAffinity": {REQ: [{"topologyKey": "zone", **t}]}}}


def spread(*constraints):
    return {"topologySpreadConstraints": [{"maxSkew": 1, "topologyKey": "zone",
                                           "whenUnsatisfiable": "DoNotSchedule", **c} for c in constraints]}


# (id, spec fields, field path, fragments of the message)
ERROR_CASES = [
    ("affinity-type", {"affinity": []}, "spec.affinity", ["expected a mapping"]),
    ("affinity-typo", {"affinity": {"nodeAfinity": {}}}, "spec.affinity.nodeAfinity",
     ["unknown field", "did you mean 'nodeAffinity'?"]),
    ("node-affinity-typo", {"affinity": {"nodeAffinity": {"requiredDuringScheduling": {}}}},
     f"{NA}.requiredDuringScheduling", ["did you mean 'requiredDuringSchedulingIgnoredDuringExecution'?"]),
    ("no-terms", {"affinity": {"nodeAffinity": {REQ: {}}}}, f"{NA}.{REQ}.nodeSelectorTerms",
     ["at least one node selector term"]),
    ("empty-terms", {"affinity": {"nodeAffinity": {REQ: {"nodeSelectorTerms": []}}}},
     f"{NA}.{REQ}.nodeSelectorTerms", ["at least one"]),
    ("null-term", {"affinity": {"nodeAffinity": {REQ: {"nodeSelectorTerms": [None]}}}},
     f"{NA}.{REQ}.nodeSelectorTerms[0]", ["expected a node selector term (a mapping), got null"]),
    ("term-typo", {"affinity": {"nodeAffinity": {REQ: {"nodeSelectorTerms": [{"matchExpression": []}]}}}},
     f"{TERM0}.matchExpression", ["did you mean 'matchExpressions'?"]),
    ("op-missing", node_expr(key="zone", values=["a"]), f"{TERM0}.matchExpressions[0].operator",
     ["required", '"In", "NotIn", "Exists", "DoesNotExist", "Gt", "Lt"']),
    ("op-unknown", node_expr(key="zone", operator="Equals", values=["a"]),
     f"{TERM0}.matchExpressions[0].operator", ["'Equals' is not allowed"]),
    ("key-missing", node_expr(operator="Exists"), f"{TERM0}.matchExpressions[0].key", ["required"]),
    ("key-bad", node_expr(key="a b", operator="Exists"), f"{TERM0}.matchExpressions[0].key",
     ["is not a label key"]),
    ("in-no-values", node_expr(key="zone", operator="In"), f"{TERM0}.matchExpressions[0].values",
     ["must be non-empty when operator is In"]),
    ("notin-empty-values", node_expr(key="zone", operator="NotIn", values=[]),
     f"{TERM0}.matchExpressions[0].values", ["non-empty"]),
    ("exists-values", node_expr(key="zone", operator="Exists", values=["a"]),
     f"{TERM0}.matchExpressions[0].values", ["must be empty when operator is Exists"]),
    ("doesnotexist-values", node_expr(key="zone", operator="DoesNotExist", values=["a"]),
     f"{TERM0}.matchExpressions[0].values", ["must be empty"]),
    ("gt-two-values", node_expr(key="gen", operator="Gt", values=["1", "2"]),
     f"{TERM0}.matchExpressions[0].values", ["exactly one integer when operator is Gt", "got 2"]),
    ("lt-no-values", node_expr(key="gen", operator="Lt"), f"{TERM0}.matchExpressions[0].values",
     ["exactly one integer"]),
    ("gt-not-integer", node_expr(key="gen", operator="Gt", values=["2.5"]),
     f"{TERM0}.matchExpressions[0].values[0]", ["'2.5' is not an integer"]),
    ("lt-int64-overflow", node_expr(key="gen", operator="Lt", values=["9223372036854775808"]),
     f"{TERM0}.matchExpressions[0].values[0]", ["is not an integer"]),
    ("value-not-label", node_expr(key="zone", operator="In", values=["a b"]),
     f"{TERM0}.matchExpressions[0].values[0]", ["not a valid label value"]),
    ("value-number", node_expr(key="gen", operator="In", values=[5]),
     f"{TERM0}.matchExpressions[0].values[0]", ["expected a string", "(quote it)"]),
    ("value-null", node_expr(key="zone", operator="In", values=[None]),
     f"{TERM0}.matchExpressions[0].values[0]", ["expected a string, got null"]),
    ("field-key", node_field(key="metadata.labels", operator="In", values=["h"]),
     f"{TERM0}.matchFields[0].key", ["allowed: metadata.name"]),
    ("field-op", node_field(key="metadata.name", operator="Exists"),
     f"{TERM0}.matchFields[0].operator", ['allowed: "In", "NotIn"']),
    ("field-two-values", node_field(key="metadata.name", operator="In", values=["a", "b"]),
     f"{TERM0}.matchFields[0].values", ["exactly one host name", "got 2"]),
    ("field-no-values", node_field(key="metadata.name", operator="NotIn"),
     f"{TERM0}.matchFields[0].values", ["exactly one host name"]),
    ("field-bad-name", node_field(key="metadata.name", operator="In", values=["Node_1"]),
     f"{TERM0}.matchFields[0].values[0]", ["DNS-1123 subdomain"]),
    ("pref-weight-0", {"affinity": {"nodeAffinity": {PREF: [{"weight": 0, "preference": {}}]}}},
     f"{NA}.{PREF}[0].weight", ["0 is out of range (allowed: 1..100)"]),
    ("pref-weight-101", {"affinity": {"nodeAffinity": {PREF: [{"weight": 101, "preference": {}}]}}},
     f"{NA}.{PREF}[0].weight", ["101 is out of range"]),
    ("pref-weight-missing", {"affinity": {"nodeAffinity": {PREF: [{"preference": {}}]}}},
     f"{NA}.{PREF}[0].weight", ["required", "1..100"]),
    ("pref-weight-string", {"affinity": {"nodeAffinity": {PREF: [{"weight": "5", "preference": {}}]}}},
     f"{NA}.{PREF}[0].weight", ["expected an integer", "without quotes"]),
    ("pref-preference", {"affinity": {"nodeAffinity": {PREF: [{"weight": 5, "preference": {
        "matchExpressions": [{"key": "zone", "operator": "In"}]}}]}}},
     f"{NA}.{PREF}[0].preference.matchExpressions[0].values", ["non-empty"]),
    ("pod-topology-missing", {"affinity": {"podAffinity": {REQ: [{"labelSelector": {}}]}}},
     f"{PA}.topologyKey", ["required", "kubernetes.io/hostname"]),
    ("pod-topology-empty", pod_term(topologyKey=""), f"{PA}.topologyKey", ["must not be empty"]),
    ("pod-topology-bad", pod_term(topologyKey="zone!"), f"{PA}.topologyKey", ["not a label key"]),
    ("pod-selector-op", pod_term(labelSelector={"matchExpressions": [{"key": "a", "operator": "Gt",
                                                                      "values": ["1"]}]}),
     f"{PA}.labelSelector.matchExpressions[0].operator", ["'Gt' is not allowed"]),
    ("pod-selector-values", pod_term(labelSelector={"matchExpressions": [{"key": "a", "operator": "In"}]}),
     f"{PA}.labelSelector.matchExpressions[0].values", ["non-empty"]),
    ("pod-selector-label", pod_term(labelSelector={"matchLabels": {"app": "a b"}}),
     f"{PA}.labelSelector.matchLabels[app]", ["not a valid label value"]),
    ("pod-selector-typo", pod_term(labelSelector={"matchLabel": {"app": "a"}}),
     f"{PA}.labelSelector.matchLabel", ["did you mean 'matchLabels'?"]),
    ("pod-namespace", pod_term(namespaces=["Prod"]), f"{PA}.namespaces[0]", ["DNS-1123 label"]),
    ("pod-namespace-null", pod_term(namespaces=[None]), f"{PA}.namespaces[0]", ["got null"]),
    ("pod-namespace-selector", pod_term(namespaceSelector={"matchLabels": {"team": "a"}}),
     f"{PA}.namespaceSelector", [NOT_YET, "team=a", "{} for every namespace"]),
    ("pod-namespace-selector-bad", pod_term(namespaceSelector={"matchExpressions": [
        {"key": "team", "operator": "Exists", "values": ["a"]}]}),
     f"{PA}.namespaceSelector.matchExpressions[0].values", ["must be empty"]),
    ("pod-match-label-keys", pod_term(matchLabelKeys=["app"]), f"{PA}.matchLabelKeys", [NOT_YET]),
    ("pod-mismatch-label-keys", pod_term(mismatchLabelKeys=["app"]), f"{PA}.mismatchLabelKeys", [NOT_YET]),
    ("pod-term-null", {"affinity": {"podAntiAffinity": {REQ: [None]}}},
     f"spec.affinity.podAntiAffinity.{REQ}[0]", ["expected a pod affinity term (a mapping)"]),
    ("anti-pref-weight", {"affinity": {"podAntiAffinity": {PREF: [{"weight": 0, "podAffinityTerm": {
        "topologyKey": "zone"}}]}}}, f"spec.affinity.podAntiAffinity.{PREF}[0].weight", ["out of range"]),
    ("anti-pref-term-missing", {"affinity": {"podAntiAffinity": {PREF: [{"weight": 1}]}}},
     f"spec.affinity.podAntiAffinity.{PREF}[0].podAffinityTerm", ["required"]),
    ("anti-pref-term", {"affinity": {"podAntiAffinity": {PREF: [{"weight": 1, "podAffinityTerm": {}}]}}},
     f"spec.affinity.podAntiAffinity.{PREF}[0].podAffinityTerm.topologyKey", ["required"]),
    ("anti-typo", {"affinity": {"podAntiAffinity": {"preferredDuringScheduling": []}}},
     "spec.affinity.podAntiAffinity.preferredDuringScheduling",
     ["did you mean 'preferredDuringSchedulingIgnoredDuringExecution'?"]),
    ("spread-type", {"topologySpreadConstraints": {"maxSkew": 1}}, TSC, ["expected a list"]),
    ("spread-skew-0", spread({"maxSkew": 0}), f"{TSC}[0].maxSkew", ["0 is out of range"]),
    ("spread-skew-missing", {"topologySpreadConstraints": [{"topologyKey": "zone",
                                                            "whenUnsatisfiable": "DoNotSchedule"}]},
     f"{TSC}[0].maxSkew", ["required", ">= 1"]),
    ("spread-skew-int32", spread({"maxSkew": 2**31}), f"{TSC}[0].maxSkew", ["out of range"]),
    ("spread-key-missing", {"topologySpreadConstraints": [{"maxSkew": 1, "whenUnsatisfiable": "DoNotSchedule"}]},
     f"{TSC}[0].topologyKey", ["required"]),
    ("spread-key-empty", spread({"topologyKey": ""}), f"{TSC}[0].topologyKey", ["must not be empty"]),
    ("spread-when-missing", {"topologySpreadConstraints": [{"maxSkew": 1, "topologyKey": "zone"}]},
     f"{TSC}[0].whenUnsatisfiable", ["required", '"DoNotSchedule", "ScheduleAnyway"']),
    ("spread-when-bad", spread({"whenUnsatisfiable": "Never"}), f"{TSC}[0].whenUnsatisfiable",
     ["'Never' is not allowed"]),
    ("spread-duplicate", spread({}, {"maxSkew": 3}), f"{TSC}[1]",
     ["duplicate constraint for topologyKey 'zone' with whenUnsatisfiable DoNotSchedule",
      f"first at {TSC}[0]"]),
    ("spread-min-domains-0", spread({"minDomains": 0}), f"{TSC}[0].minDomains", ["out of range"]),
    ("spread-min-domains-anyway", spread({"minDomains": 2, "whenUnsatisfiable": "ScheduleAnyway"}),
     f"{TSC}[0].minDomains", ["only be set when whenUnsatisfiable is DoNotSchedule"]),
    ("spread-affinity-policy", spread({"nodeAffinityPolicy": "honor"}), f"{TSC}[0].nodeAffinityPolicy",
     ['"Honor", "Ignore"']),
    ("spread-taints-policy", spread({"nodeTaintsPolicy": ""}), f"{TSC}[0].nodeTaintsPolicy",
     ["'' is not allowed"]),
    ("spread-selector", spread({"labelSelector": {"matchExpressions": [{"key": "a", "operator": "Exists",
                                                                         "values": ["x"]}]}}),
     f"{TSC}[0].labelSelector.matchExpressions[0].values", ["must be empty"]),
    ("spread-match-label-keys", spread({"matchLabelKeys": ["pod-template-hash"]}), f"{TSC}[0].matchLabelKeys",
     [NOT_YET]),
    ("spread-typo", spread({"maxskew": 1}), f"{TSC}[0].maxskew", ["did you mean 'maxSkew'?"]),
    ("spread-null", {"topologySpreadConstraints": [None]}, f"{TSC}[0]",
     ["expected a topology spread constraint (a mapping), got null"]),
]


@pytest.mark.parametrize("fields, path, fragments", [c[1:] for c in ERROR_CASES],
                         ids=[c[0] for c in ERROR_CASES])
def test_invalid_fields_are_reported_with_file_line_and_path(fields, path, fragments):
    spec = {"containers": [{"name": "a", "image": "x"}], **fields}
    lines = errors_of(pod_doc(spec))
    line = next((line for line in lines if f": {path}: " in line), None)
    assert line is not None, lines
    assert re.match(r"\s*bad\.yaml:\d+ \(document 1\): ", line), line
    for fragment in fragments:
        assert fragment in line, (fragment, line)


def test_errors_point_at_their_line_and_are_all_reported():
    text = f"""\
apiVersion: v1
kind: Pod
metadata: {{name: web}}
spec:
  containers: [{{name: a, image: x}}]
  affinity:
    nodeAffinity:
      {PREF}:
      - weight: 0
        preference: {{}}
  topologySpreadConstraints:
  - maxSkew: 1
    topologyKey: zone
"""
    with pytest.raises(ManifestError) as info:
        parse_documents(text, "pod.yaml")
    assert str(info.value).splitlines()[1:] == [
        f"  pod.yaml:9 (document 1): {NA}.{PREF}[0].weight: 0 is out of range (allowed: 1..100)",
        "  pod.yaml:12 (document 1): spec.topologySpreadConstraints[0].whenUnsatisfiable: required field "
        'is missing (allowed: "DoNotSchedule", "ScheduleAnyway")']


def test_every_not_yet_field_of_the_new_tables_is_refused():
    tables = ("Affinity", "NodeAffinity", "NodeSelector", "NodeSelectorTerm", "NodeSelectorRequirement",
              "PreferredSchedulingTerm", "PodAffinity", "PodAntiAffinity", "PodAffinityTerm",
              "WeightedPodAffinityTerm", "TopologySpreadConstraint")
    not_yet = {(t, n) for t in tables for n, r in OBJECT_FIELDS[t].items() if isinstance(r, NotYet)}
    assert not_yet == {("PodAffinityTerm", "matchLabelKeys"), ("PodAffinityTerm", "mismatchLabelKeys"),
                       ("TopologySpreadConstraint", "matchLabelKeys")}


# ---------------------------------------------------------------- validator and kube.py agree

KEYS = ["zone", "kubernetes.io/hostname", "topology.kubernetes.io/zone", "gen", "example.com/tier"]
VALUES = ["a", "b", "", "5", "web"]
label_keys = st.sampled_from(KEYS)
label_values = st.sampled_from(VALUES)
no_values = st.sampled_from([{}, {"values": []}, {"values": None}])


def with_extra(base: st.SearchStrategy, extra: st.SearchStrategy) -> st.SearchStrategy:
    return st.builds(lambda a, b: {**a, **b}, base, extra)


node_requirements = st.one_of(
    st.fixed_dictionaries({"key": label_keys, "operator": st.sampled_from(["In", "NotIn"]),
                           "values": st.lists(label_values, min_size=1, max_size=3)}),
    with_extra(st.fixed_dictionaries({"key": label_keys, "operator": st.sampled_from(["Exists", "DoesNotExist"])}),
               no_values),
    st.fixed_dictionaries({"key": label_keys, "operator": st.sampled_from(["Gt", "Lt"]),
                           "values": st.lists(st.sampled_from(["0", "5", "9223372036854775807"]),
                                              min_size=1, max_size=1)}))
field_requirements = st.fixed_dictionaries({
    "key": st.just("metadata.name"), "operator": st.sampled_from(["In", "NotIn"]),
    "values": st.lists(st.sampled_from(["h1", "h2", "node-1.example.com"]), min_size=1, max_size=1)})
node_terms = st.fixed_dictionaries({}, optional={"matchExpressions": st.lists(node_requirements, max_size=3),
                                                 "matchFields": st.lists(field_requirements, max_size=2)})
node_affinities = st.fixed_dictionaries({}, optional={
    REQ: st.fixed_dictionaries({"nodeSelectorTerms": st.lists(node_terms, min_size=1, max_size=3)}),
    PREF: st.lists(st.fixed_dictionaries({"weight": st.integers(1, 100)}, optional={"preference": node_terms}),
                   max_size=2)})
selector_requirements = st.one_of(
    st.fixed_dictionaries({"key": label_keys, "operator": st.sampled_from(["In", "NotIn"]),
                           "values": st.lists(label_values, min_size=1, max_size=2)}),
    with_extra(st.fixed_dictionaries({"key": label_keys, "operator": st.sampled_from(["Exists", "DoesNotExist"])}),
               no_values))
selectors = st.fixed_dictionaries({}, optional={
    "matchLabels": st.dictionaries(label_keys, st.one_of(label_values, st.none()), max_size=2),
    "matchExpressions": st.lists(selector_requirements, max_size=2)})
pod_terms = st.fixed_dictionaries({"topologyKey": label_keys}, optional={
    "labelSelector": selectors,
    "namespaces": st.lists(st.sampled_from(["default", "prod"]), max_size=2),
    "namespaceSelector": st.sampled_from([{}, {"matchLabels": {}}, {"matchExpressions": []}, None]),
    "matchLabelKeys": st.sampled_from([None, []]),
    "mismatchLabelKeys": st.sampled_from([None, []])})
pod_affinities = st.fixed_dictionaries({}, optional={
    REQ: st.lists(pod_terms, max_size=2),
    PREF: st.lists(st.fixed_dictionaries({"weight": st.integers(1, 100), "podAffinityTerm": pod_terms}),
                   max_size=2)})
affinities = st.fixed_dictionaries({}, optional={"nodeAffinity": node_affinities, "podAffinity": pod_affinities,
                                                 "podAntiAffinity": pod_affinities})


@st.composite
def spread_constraints(draw) -> list:
    pairs = draw(st.lists(st.tuples(label_keys, st.sampled_from(["DoNotSchedule", "ScheduleAnyway"])),
                          unique=True, max_size=3))
    out = []
    for key, when in pairs:
        optional = {"labelSelector": selectors,
                    "nodeAffinityPolicy": st.sampled_from(["Honor", "Ignore"]),
                    "nodeTaintsPolicy": st.sampled_from(["Honor", "Ignore"]),
                    "matchLabelKeys": st.sampled_from([None, []])}
        if when == "DoNotSchedule":
            optional["minDomains"] = st.integers(1, 3)
        out.append(draw(st.fixed_dictionaries({"maxSkew": st.integers(1, 5), "topologyKey": st.just(key),
                                               "whenUnsatisfiable": st.just(when)}, optional=optional)))
    return out


effects = st.sampled_from(["", "NoSchedule", "PreferNoSchedule", "NoExecute"])
tolerations = st.one_of(
    st.fixed_dictionaries({"operator": st.just("Exists")}, optional={"effect": effects}),
    st.fixed_dictionaries({"key": label_keys, "operator": st.just("Exists")}, optional={"effect": effects}),
    st.fixed_dictionaries({"key": label_keys, "value": label_values},
                          optional={"operator": st.sampled_from(["Equal", "", None]), "effect": effects}),
    st.fixed_dictionaries({"key": label_keys, "effect": st.just("NoExecute"),
                           "tolerationSeconds": st.integers(-10, 3600)}))
valid_specs = st.fixed_dictionaries({"containers": st.just([{"name": "app", "image": "x"}])}, optional={
    "affinity": affinities,
    "topologySpreadConstraints": spread_constraints(),
    "tolerations": st.lists(tolerations, max_size=3),
    "nodeSelector": st.dictionaries(label_keys, st.one_of(label_values, st.none()), max_size=2)})

JUNK = [None, "", 0, -1, 1, 101, True, 1.5, "x", "a b", "Gt", "In", "NotIn", "Exists", "5", "-5", "2.5",
        "metadata.name", "DoNotSchedule", "ScheduleAnyway", "Honor", [], {}, [None], ["a", "b"], ["5"],
        {"matchLabels": {"a": "b"}}, {"bogus": 1}, {"matchExpressions": []}, 2**40]
NEW_KEYS = ["bogus", "values", "weight", "minDomains", "namespaceSelector", "matchLabelKeys", "operator",
            "key", "topologyKey", "labelSelector", "preference", "podAffinityTerm", "nodeSelectorTerms"]
# near misses for a field, by its name: what a user gets almost right
NEAR = {
    "weight": [0, 101, -1, "5", True, 1.5, None],
    "maxSkew": [0, -1, "1", 2**31, True, None],
    "minDomains": [0, -1, "2", True],
    "operator": ["In", "NotIn", "Exists", "DoesNotExist", "Gt", "Lt", "in", "", None, "Equal"],
    "values": [[], None, ["x"], ["1", "2"], ["2.5"], ["-5"], ["+5"], ["9223372036854775808"], [None], [5],
               ["a b"], ["node_1"], "x"],
    "key": ["metadata.name", "metadata.labels", "", "a b", None, 5, "zone"],
    "topologyKey": ["", None, "a b", 5],
    "whenUnsatisfiable": ["", None, "Never", "doNotSchedule"],
    "nodeAffinityPolicy": ["", "honor", None, 1],
    "nodeTaintsPolicy": ["", "ignore", None],
    "namespaceSelector": [{"matchLabels": {"a": "b"}}, {"matchExpressions": [{"key": "a", "operator": "Exists"}]},
                          {"matchLabels": None}, "x", [], {"matchLabels": {"a": None}}],
    "namespaces": [[None], ["Prod"], [""], "prod", [5]],
    "nodeSelectorTerms": [[], None, [None], [{}], {}, "x"],
    "effect": ["", "Sometimes", None, "noschedule"],
    "tolerationSeconds": [None, "30", 1.5],
    "matchLabels": [{"a": None}, {"a": 5}, {"a b": "c"}, None, []],
}
DELETE = object()


def _paths(node, path=()):
    """Every (path, value) below node, skipping the containers."""
    items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
    for k, v in items:
        if path == () and k == "containers":
            continue
        yield path + (k,), v
        yield from _paths(v, path + (k,))


@st.composite
def mutated_specs(draw) -> dict:
    """A valid spec with one to three things changed: a value replaced by junk (or a
    near miss), a key deleted, or a key added."""
    spec = copy.deepcopy(draw(valid_specs))
    for _ in range(draw(st.integers(1, 3))):
        by_name: dict = {}  # drawn by field name first, so rare fields get their turn
        for path, value in _paths(spec):
            by_name.setdefault(str(path[-1]) if isinstance(path[-1], str) else "[]", []).append((path, value))
        if not by_name:
            break
        path, value = draw(st.sampled_from(by_name[draw(st.sampled_from(sorted(by_name)))]))
        parent = spec
        for part in path[:-1]:
            parent = parent[part]
        name = next((part for part in reversed(path) if isinstance(part, str)), "")
        near = NEAR.get(name, []) if not isinstance(path[-1], int) else []
        choice = draw(st.sampled_from(near or JUNK) if near and draw(st.booleans())
                      else st.sampled_from(JUNK + [DELETE, "add"]))
        if choice is DELETE:
            del parent[path[-1]]
        elif choice == "add" and isinstance(value, dict):
            value[draw(st.sampled_from(NEW_KEYS))] = draw(st.sampled_from(JUNK))
        else:
            parent[path[-1]] = copy.deepcopy(choice)
    return spec


def _tolerations_of(spec: dict) -> tuple:
    ctx = _Ctx(file="x")
    out = validate_tolerations(ctx, spec.get("tolerations"), ("spec", "tolerations"))
    assert not ctx.errors
    return out


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(valid_specs)
def test_valid_specs_validate_and_map_to_the_same_values(spec):
    pod = validate_pod(pod_doc(spec), "gen.yaml")
    p = sched_pod("default", "web", {"app": "web"}, spec)
    assert p.node_selector == pod.spec.node_selector
    assert p.tolerations == _tolerations_of(spec) == parse_tolerations(spec.get("tolerations"))
    terms = (((spec.get("affinity") or {}).get("nodeAffinity") or {}).get(REQ) or {}).get("nodeSelectorTerms")
    assert (p.required_node_affinity is None) == (terms is None)
    assert len(p.required_node_affinity or ()) == len(terms or ())
    assert len(p.topology_spread) == len(spec.get("topologySpreadConstraints") or ())


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated_specs())
def test_whatever_validates_maps_to_a_sched_pod(spec):
    try:
        validate_pod(pod_doc(spec), "gen.yaml")
    except ManifestError:
        return
    sched_pod("default", "web", {"app": "web"}, spec)  # must not raise


def _single_mutations(spec: dict):
    """FULL with one thing changed, every way: each field (every depth) replaced by each
    near miss for its name and each junk value, deleted, or given an extra key."""
    for path, value in list(_paths(spec)):
        name = next((part for part in reversed(path) if isinstance(part, str)), "")
        near = NEAR.get(name, []) if not isinstance(path[-1], int) else []
        for choice in near + JUNK + [DELETE] + [("add", k) for k in NEW_KEYS if isinstance(value, dict)]:
            out = copy.deepcopy(spec)
            parent = out
            for part in path[:-1]:
                parent = parent[part]
            if choice is DELETE:
                del parent[path[-1]]
            elif isinstance(choice, tuple):
                for junk in (None, 0, 101, "x", ["a"], {"matchLabels": {"a": "b"}}):
                    parent[path[-1]][choice[1]] = junk
                    yield path, copy.deepcopy(out)
                continue
            else:
                parent[path[-1]] = copy.deepcopy(choice)
            yield path, out


def test_every_single_change_to_a_full_spec_is_refused_or_maps():
    """Deterministic and exhaustive for one change: validates => sched_pod does not raise."""
    accepted = refused = 0
    for path, spec in _single_mutations(FULL):
        try:
            validate_pod(pod_doc(spec), "gen.yaml")
        except ManifestError:
            refused += 1
            continue
        accepted += 1
        try:
            sched_pod("default", "web", {"app": "web"}, spec)
        except Exception as exc:  # noqa: BLE001 - any exception is the bug
            raise AssertionError(f"validated but sched_pod raised at {path}: {exc!r}\n{spec}") from exc
    assert accepted > 100 and refused > 1000, (accepted, refused)


# ---------------------------------------------------------------- DaemonSets honour node affinity


def _daemonset(affinity: dict):
    doc = {"apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"name": "agent"},
           "spec": {"selector": {"matchLabels": {"app": "agent"}},
                    "template": {"metadata": {"labels": {"app": "agent"}},
                                 "spec": {"containers": [{"name": "a", "image": "x"}], "affinity": affinity}}}}
    return parse_documents(yaml.safe_dump(doc), "ds.yaml")[0].obj


@pytest.mark.parametrize("terms, host, runs", [
    ([{"matchExpressions": [{"key": "role", "operator": "In", "values": ["edge"]}]}],
     HostInfo("h1", {"role": "edge"}), True),
    ([{"matchExpressions": [{"key": "role", "operator": "In", "values": ["edge"]}]}],
     HostInfo("h1", {"role": "core"}), False),
    ([{"matchExpressions": [{"key": "role", "operator": "In", "values": ["edge"]}]},  # terms are ORed
      {"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["h1"]}]}],
     HostInfo("h1", {"role": "core"}), True),
    ([{"matchExpressions": [{"key": "kubernetes.io/hostname", "operator": "NotIn", "values": ["h1"]}]}],
     HostInfo("h1"), False),
    ([{}], HostInfo("h1"), False),  # an empty term matches no host
])
def test_daemonset_eligibility_honours_required_node_affinity(terms, host, runs):
    ds = _daemonset({"nodeAffinity": {REQ: {"nodeSelectorTerms": terms}}})
    run, keep, why = eligibility(ds, host)
    assert (run, keep) == (runs, runs)
    assert (why == "host does not match the template's required node affinity") == (not runs)


def test_daemonset_eligibility_ignores_preferred_and_pod_affinity():
    ds = _daemonset({"nodeAffinity": {PREF: [{"weight": 1, "preference": {"matchExpressions": [
        {"key": "role", "operator": "In", "values": ["edge"]}]}}]},
        "podAntiAffinity": {REQ: [{"topologyKey": "zone"}]}})
    assert eligibility(ds, HostInfo("h1", {"role": "core"}))[:2] == (True, True)


# ---------------------------------------------------------------- one Toleration type


def test_one_toleration_type_everywhere():
    assert scheduler.Toleration is scheduler_types.Toleration is Toleration
    assert specs.Toleration is workloads.Toleration is Toleration


def test_toleration_is_hashable_by_value_and_checks_itself():
    a, b = Toleration("k", "Equal", "v", "NoExecute", 30), Toleration("k", "Equal", "v", "NoExecute", 30)
    assert a == b and hash(a) == hash(b) and len({a, b}) == 1
    assert a != Toleration("k", "Equal", "v", "NoExecute")
    for bad, match in [(("", "Equal", "v"), "empty key"), (("k", "Exists", "v"), "takes no value"),
                       (("k", "Foo"), "operator"), (("k", "Equal", "", "Sometimes"), "effect")]:
        with pytest.raises(ValueError, match=match):
            Toleration(*bad)
    assert Toleration.from_k8s({"key": "k", "value": "v", "effect": "NoExecute", "tolerationSeconds": 5}) == \
        Toleration("k", "Equal", "v", "NoExecute", 5)
    assert Toleration("", "Exists").to_k8s() == {"operator": "Exists"}
    assert Toleration("k", "Exists").tolerates(Taint("k", "any", "NoExecute"))


def test_parse_tolerations_leaves_out_what_validation_would_refuse():
    assert parse_tolerations([{"key": "x", "operator": "Exists"}, "junk", {"operator": "Equal"},
                              {"key": "y", "operator": "Sometimes"}]) == (Toleration("x", "Exists"),)


@pytest.mark.parametrize("toleration, path", [
    ({"operator": "Equal", "value": "v"}, "operator"),
    ({"key": "k", "operator": "Exists", "value": "v"}, "value"),
    ({"key": "k", "effect": "Sometimes"}, "effect"),
    ({"key": "k", "operator": "Maybe"}, "operator"),
])
def test_invalid_tolerations_are_errors_not_crashes(toleration, path):
    lines = errors_of(pod_doc({"containers": [{"name": "a", "image": "x"}], "tolerations": [toleration]}))
    assert any(f": spec.tolerations[0].{path}: " in line for line in lines), lines
