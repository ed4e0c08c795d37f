"""PodSpec `affinity` and `topologySpreadConstraints`, validated as Kubernetes' apiserver
validates them (pkg/apis/core/validation: validateAffinity, ValidateNodeSelector,
ValidateNodeSelectorRequirement, ValidateNodeFieldSelectorRequirement,
validatePodAffinityTerm, validateTopologySpreadConstraints), with podctl's messages.

Both fields stay in the raw document (PodSpec has no field for them); the scheduler
reads them through `scheduler/kube.py`, which expects exactly what passes here: a unit
test generates specs and checks that every one this module accepts maps to a SchedPod.
Where the scheduler is narrower than Kubernetes, the field is refused with "not
supported by podctl yet": a namespaceSelector other than {} (every namespace), and
matchLabelKeys / mismatchLabelKeys (through the field tables in manifests.py).

Stricter than the apiserver on purpose, where it would only defer a failure to the
scheduler or accept what can never match: a Gt/Lt value must be an integer
(kube-scheduler rejects the pod otherwise), a spread constraint's topologyKey must be a
label key (the apiserver checks only that it is set), and a null inside a list is an
error rather than Go's zero value.

manifests.py imports this module lazily (from its Pod validator), so either may be
imported first.
"""

from __future__ import annotations

import re
from typing import Any

from .manifests import (
    FieldPath,
    _check_fields,
    _Ctx,
    _enum,
    _int_in,
    _items,
    _required,
    _show,
    _typed,
    _unique,
    _values,
    dns1123_label_problem,
    dns1123_subdomain_problem,
    label_key_problem,
    label_value_problem,
)
from .workloads.validation import label_selector

REQUIRED = "requiredDuringSchedulingIgnoredDuringExecution"
PREFERRED = "preferredDuringSchedulingIgnoredDuringExecution"
NODE_OPERATORS = ("In", "NotIn", "Exists", "DoesNotExist", "Gt", "Lt")
FIELD_OPERATORS = ("In", "NotIn")
FIELD_KEYS = ("metadata.name",)  # Kubernetes' nodeFieldSelectorValidators
WHEN_UNSATISFIABLE = ("DoNotSchedule", "ScheduleAnyway")
INCLUSION_POLICIES = ("Honor", "Ignore")
INT32_MAX = 2**31 - 1  # maxSkew, minDomains and weights are int32 in Kubernetes
_INT64 = re.compile(r"[+-]?[0-9]+")


def _int64(text: str) -> bool:
    """Go's strconv.ParseInt(text, 10, 64) succeeds (what scheduler Gt/Lt compare)."""
    return _INT64.fullmatch(text) is not None and -2**63 <= int(text) < 2**63


def _topology_key_problem(s: str) -> str | None:
    return "must not be empty (a host label key)" if not s else label_key_problem(s)


# ---------------------------------------------------------------- affinity


def affinity(ctx: _Ctx, value: Any, path: FieldPath) -> None:
    """spec.affinity: nodeAffinity, podAffinity, podAntiAffinity."""
    aff = _typed(ctx, value, path, dict)
    if aff is None:
        return
    _check_fields(ctx, aff, path, "Affinity")
    _node_affinity(ctx, aff.get("nodeAffinity"), path + ("nodeAffinity",))
    _pod_affinity(ctx, aff.get("podAffinity"), path + ("podAffinity",), "PodAffinity")
    _pod_affinity(ctx, aff.get("podAntiAffinity"), path + ("podAntiAffinity",),
                  "PodAntiAffinity")


def _node_affinity(ctx: _Ctx, value: Any, path: FieldPath) -> None:
    na = _typed(ctx, value, path, dict)
    if na is None:
        return
    _check_fields(ctx, na, path, "NodeAffinity")
    here = path + (REQUIRED,)
    required = _typed(ctx, na.get(REQUIRED), here, dict)
    if required is not None:
        _check_fields(ctx, required, here, "NodeSelector")
        terms = required.get("nodeSelectorTerms")
        if terms is None or terms == []:
            ctx.error(here + ("nodeSelectorTerms",), "required: at least one node selector "
                                                     "term (a host must match one of them)")
        for at, term in _items(ctx, terms, here + ("nodeSelectorTerms",),
                               "a node selector term"):
            _node_selector_term(ctx, term, at)
    for at, item in _items(ctx, na.get(PREFERRED), path + (PREFERRED,),
                           "a preferred scheduling term"):
        _check_fields(ctx, item, at, "PreferredSchedulingTerm")
        _weight(ctx, item, at)
        preference = _typed(ctx, item.get("preference"), at + ("preference",), dict)
        if preference is not None:
            _node_selector_term(ctx, preference, at + ("preference",))


def _weight(ctx: _Ctx, item: dict, path: FieldPath) -> None:
    if item.get("weight") is None:
        ctx.error(path + ("weight",), "required field is missing (expected 1..100)")
    else:
        _int_in(ctx, item["weight"], path + ("weight",), 1, 100)


def _node_selector_term(ctx: _Ctx, term: dict, path: FieldPath) -> None:
    """matchExpressions (host labels) and matchFields (metadata.name), ANDed. An empty
    term is valid, as in Kubernetes, and matches no host."""
    _check_fields(ctx, term, path, "NodeSelectorTerm")
    for at, r in _items(ctx, term.get("matchExpressions"), path + ("matchExpressions",),
                        "a node selector requirement"):
        _node_requirement(ctx, r, at)
    for at, r in _items(ctx, term.get("matchFields"), path + ("matchFields",),
                        "a node field selector requirement"):
        _field_requirement(ctx, r, at)


def _operator(ctx: _Ctx, r: dict, path: FieldPath, allowed: tuple[str, ...]) -> str | None:
    if r.get("operator") is None:
        ctx.error(path + ("operator",), f"required field is missing (allowed: {_values(allowed)})")
        return None
    return _enum(ctx, r["operator"], path + ("operator",), allowed, "") or None


def _strings(ctx: _Ctx, value: Any, path: FieldPath, problem) -> list:
    """The entries of a list of strings, each checked by `problem`; the list keeps
    every entry (even a bad one) so that counts read as the user wrote them."""
    out = []
    for i, v in enumerate(_typed(ctx, value, path, list) or ()):
        if v is None:
            ctx.error(path + (i,), "expected a string, got null")
        elif _typed(ctx, v, path + (i,), str) is not None and (message := problem(v)):
            ctx.error(path + (i,), message)
        out.append(v)
    return out


def _node_requirement(ctx: _Ctx, r: dict, path: FieldPath) -> None:
    _check_fields(ctx, r, path, "NodeSelectorRequirement")
    _required(ctx, r, path, "key", "a host label key", label_key_problem)
    op = _operator(ctx, r, path, NODE_OPERATORS)
    values = _strings(ctx, r.get("values"), path + ("values",), label_value_problem)
    here = path + ("values",)
    if op in ("In", "NotIn") and not values:
        ctx.error(here, f"must be non-empty when operator is {op}")
    elif op in ("Exists", "DoesNotExist") and values:
        ctx.error(here, f"must be empty when operator is {op}")
    elif op in ("Gt", "Lt"):
        if len(values) != 1:
            ctx.error(here, f"must be exactly one integer when operator is {op} "
                            f"(got {len(values)} values)")
        elif isinstance(values[0], str) and not _int64(values[0]):
            ctx.error(here + (0,), f"{_show(values[0])} is not an integer: operator {op} "
                                   "compares the host label as a number")


def _field_requirement(ctx: _Ctx, r: dict, path: FieldPath) -> None:
    """matchFields: Kubernetes knows one node field, metadata.name (the host's name)."""
    _check_fields(ctx, r, path, "NodeSelectorRequirement")
    _required(ctx, r, path, "key", "metadata.name", lambda s: None if s in FIELD_KEYS else
              f"{_show(s)} is not a field podctl can select hosts by (allowed: metadata.name)")
    op = _operator(ctx, r, path, FIELD_OPERATORS)
    values = _strings(ctx, r.get("values"), path + ("values",), dns1123_subdomain_problem)
    if op and len(values) != 1:
        ctx.error(path + ("values",), f"must be exactly one host name when operator is {op} "
                                      f"in matchFields (got {len(values)})")


def _pod_affinity(ctx: _Ctx, value: Any, path: FieldPath, table: str) -> None:
    pa = _typed(ctx, value, path, dict)
    if pa is None:
        return
    _check_fields(ctx, pa, path, table)
    for at, term in _items(ctx, pa.get(REQUIRED), path + (REQUIRED,), "a pod affinity term"):
        _pod_affinity_term(ctx, term, at)
    for at, item in _items(ctx, pa.get(PREFERRED), path + (PREFERRED,),
                           "a weighted pod affinity term"):
        _check_fields(ctx, item, at, "WeightedPodAffinityTerm")
        _weight(ctx, item, at)
        here = at + ("podAffinityTerm",)
        if item.get("podAffinityTerm") is None:
            ctx.error(here, "required field is missing (expected a mapping with labelSelector "
                            "and topologyKey)")
        elif (term := _typed(ctx, item["podAffinityTerm"], here, dict)) is not None:
            _pod_affinity_term(ctx, term, here)


def _pod_affinity_term(ctx: _Ctx, term: dict, path: FieldPath) -> None:
    _check_fields(ctx, term, path, "PodAffinityTerm")
    label_selector(ctx, term.get("labelSelector"), path + ("labelSelector",), required=False,
                   kind="pod affinity term")
    _strings(ctx, term.get("namespaces"), path + ("namespaces",), dns1123_label_problem)
    _namespace_selector(ctx, term.get("namespaceSelector"), path + ("namespaceSelector",))
    _required(ctx, term, path, "topologyKey", "a host label key such as "
              "'kubernetes.io/hostname'", _topology_key_problem)


def _namespace_selector(ctx: _Ctx, value: Any, path: FieldPath) -> None:
    """Validated as a label selector (as Kubernetes does); then only an empty one, which
    selects every namespace, is something podctl's scheduler can do."""
    if value is None:
        return
    before = len(ctx.errors)
    selector = label_selector(ctx, value, path, required=False, kind="namespaceSelector")
    if len(ctx.errors) == before and selector is not None and not selector.empty:
        ctx.error(path, f"selecting namespaces by label ({selector}) is not supported by "
                        "podctl yet (supported: {} for every namespace, or a list in "
                        "namespaces)")


# ---------------------------------------------------------------- topology spread


def topology_spread_constraints(ctx: _Ctx, value: Any, path: FieldPath) -> None:
    """spec.topologySpreadConstraints; at most one per (topologyKey, whenUnsatisfiable)."""
    seen: dict = {}
    for at, c in _items(ctx, value, path, "a topology spread constraint"):
        _check_fields(ctx, c, at, "TopologySpreadConstraint")
        if c.get("maxSkew") is None:
            ctx.error(at + ("maxSkew",), "required field is missing (expected an integer >= 1)")
        else:
            _int_in(ctx, c["maxSkew"], at + ("maxSkew",), 1, INT32_MAX)
        key = _required(ctx, c, at, "topologyKey", "a host label key such as "
                        "'topology.kubernetes.io/zone'", _topology_key_problem)
        when = c.get("whenUnsatisfiable")
        if when is None:
            ctx.error(at + ("whenUnsatisfiable",), "required field is missing "
                                                   f"(allowed: {_values(WHEN_UNSATISFIABLE)})")
        else:
            when = _enum(ctx, when, at + ("whenUnsatisfiable",), WHEN_UNSATISFIABLE, "") or None
        if key and when:
            _unique(ctx, seen, (key, when), at,
                    f"constraint for topologyKey {key!r} with whenUnsatisfiable {when}")
        if c.get("minDomains") is not None:
            _int_in(ctx, c["minDomains"], at + ("minDomains",), 1, INT32_MAX)
            if when == "ScheduleAnyway":
                ctx.error(at + ("minDomains",), "can only be set when whenUnsatisfiable is "
                                                "DoNotSchedule, not ScheduleAnyway")
        for name in ("nodeAffinityPolicy", "nodeTaintsPolicy"):
            if c.get(name) is not None:
                _enum(ctx, c[name], at + (name,), INCLUSION_POLICIES, "")
        label_selector(ctx, c.get("labelSelector"), at + ("labelSelector",), required=False,
                       kind="topology spread constraint")


__all__ = ["affinity", "topology_spread_constraints"]
