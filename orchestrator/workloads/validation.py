"""Validators for apps/v1 Deployment, batch/v1 Job and apps/v1 DaemonSet (StatefulSet's
is in statefulset_validation.py).

They plug into `orchestrator.manifests.KINDS` and reuse its Pod rules and error
collection, so errors read exactly like a Pod's (file:line, field path, what is
allowed). The field tables (which Kubernetes fields are supported, no-ops or not yet)
live in `manifests.OBJECT_FIELDS` with the Pod's. The rules follow Kubernetes' API
validation (ValidateDeploymentSpec, ValidateJobSpec, ValidateDaemonSetSpec,
ValidateLabelSelector, ValidateTolerations); the messages follow podctl's style.

This module imports manifests; manifests imports it lazily (inside its validators),
so either may be imported first.
"""

from __future__ import annotations

from typing import Any, Callable

from ..manifests import (
    FieldPath,
    _check_fields,
    _Ctx,
    _enum,
    _int_in,
    _items,
    _object_meta,
    _optional,
    _pod_spec,
    _required,
    _show,
    _string_map,
    _typed,
    _values,
    dns1123_label_problem,
    label_key_problem,
    label_value_problem,
)
from ..model import TAINT_EFFECTS, TOLERATION_OPERATORS, ObjectMeta, PodSpec, Toleration, pairs
from .specs import (
    SELECTOR_OPERATORS,
    DaemonSet,
    Deployment,
    IntOrPercent,
    Job,
    LabelSelector,
    PodTemplate,
    Requirement,
    is_percent,
)

# ---------------------------------------------------------------- shared parts


def _spec(ctx: _Ctx, doc: dict, table: str, what: str) -> dict:
    """doc.spec as a mapping checked against `table` ({} when missing or wrong)."""
    if doc.get("spec") is None:
        ctx.error(("spec",), f"required field is missing (expected a mapping with {what})")
        return {}
    spec = _typed(ctx, doc["spec"], ("spec",), dict)
    if spec is None:
        return {}
    _check_fields(ctx, spec, ("spec",), table)
    return spec


def _has(doc: dict) -> bool:
    """Whether doc.spec is a mapping (an empty one too: its fields are then missing)."""
    return isinstance(doc.get("spec"), dict)


def _top(ctx: _Ctx, doc: dict, kind: str) -> ObjectMeta:
    _check_fields(ctx, doc, (), kind)
    return _object_meta(ctx, doc.get("metadata"), ("metadata",))


def _default(value: int | None, default: int) -> int:
    return default if value is None else value


def _bool(ctx: _Ctx, value: Any, path: FieldPath) -> bool:
    return bool(_typed(ctx, value, path, bool))


def label_selector(ctx: _Ctx, value: Any, path: FieldPath, *, required: bool,
                   kind: str) -> LabelSelector | None:
    """spec.selector (matchLabels, matchExpressions); None when absent or unusable."""
    if value is None:
        if required:
            ctx.error(path, "required field is missing (expected matchLabels and/or "
                            "matchExpressions matching the template's labels)")
        return None
    sel = _typed(ctx, value, path, dict)
    if sel is None:
        return None
    before = len(ctx.errors)
    _check_fields(ctx, sel, path, "LabelSelector")
    labels = _string_map(ctx, sel.get("matchLabels"), path + ("matchLabels",), label_value_problem)
    expressions = []
    for here, item in _items(ctx, sel.get("matchExpressions"), path + ("matchExpressions",),
                             "a selector requirement"):
        _check_fields(ctx, item, here, "LabelSelectorRequirement")
        key = _required(ctx, item, here, "key", "a label key", label_key_problem)
        op = item.get("operator")
        if op is None:
            ctx.error(here + ("operator",), "required field is missing "
                                            f"(allowed: {_values(SELECTOR_OPERATORS)})")
        else:
            op = _enum(ctx, op, here + ("operator",), SELECTOR_OPERATORS, "")
        values = []
        for i, v in enumerate(_typed(ctx, item.get("values"), here + ("values",), list) or ()):
            if v is None:  # not "", as Go would read it: say so rather than guess
                ctx.error(here + ("values", i), "expected a string, got null")
                continue
            v = _typed(ctx, v, here + ("values", i), str)
            if v is not None:
                problem = label_value_problem(v)
                if problem:
                    ctx.error(here + ("values", i), problem)
                values.append(v)
        if op in ("In", "NotIn") and not values:
            ctx.error(here + ("values",), f"must be non-empty when operator is {op}")
        elif op in ("Exists", "DoesNotExist") and values:
            ctx.error(here + ("values",), f"must be empty when operator is {op}")
        if key is not None and op:
            expressions.append(Requirement(key, op, tuple(values)))
    selector = LabelSelector(pairs(labels), tuple(expressions))
    if len(ctx.errors) > before:
        return None
    if selector.empty and required:
        ctx.error(path, f"empty selector is invalid for a {kind} (it would select every pod)")
        return None
    return selector


def tolerations(ctx: _Ctx, value: Any, path: FieldPath) -> tuple[Toleration, ...]:
    """spec.tolerations of a pod or template, with Kubernetes' ValidateTolerations rules."""
    out = []
    for here, item in _items(ctx, value, path, "a toleration"):
        before = len(ctx.errors)
        _check_fields(ctx, item, here, "Toleration")
        key = _optional(ctx, item.get("key"), here + ("key",), label_key_problem) or ""
        operator = _enum(ctx, item.get("operator") or None, here + ("operator",),
                         TOLERATION_OPERATORS, "Equal")
        value_ = _typed(ctx, item.get("value"), here + ("value",), str) or ""
        effect = item.get("effect") or ""
        if effect:
            effect = _enum(ctx, effect, here + ("effect",), TAINT_EFFECTS, "")
        seconds = _typed(ctx, item.get("tolerationSeconds"), here + ("tolerationSeconds",), int)
        if not key and operator != "Exists":
            ctx.error(here + ("operator",), "must be Exists when key is empty "
                                            "(an empty key with Exists matches every taint)")
        if operator == "Exists" and value_:
            ctx.error(here + ("value",), f"{_show(value_)}: must be empty when operator is Exists")
        elif operator == "Equal" and value_:
            problem = label_value_problem(value_)
            if problem:
                ctx.error(here + ("value",), problem)
        if seconds is not None and effect != "NoExecute":
            ctx.error(here + ("effect",), "must be NoExecute when tolerationSeconds is set")
        if len(ctx.errors) == before:  # model.Toleration refuses what was reported
            out.append(Toleration(key, operator, value_, effect, seconds))
    return tuple(out)


def pod_template(ctx: _Ctx, value: Any, path: FieldPath) -> PodTemplate:
    """spec.template: metadata (labels, annotations; a name is ignored, as in Kubernetes)
    and a pod spec validated by the Pod rules."""
    if value is None:
        ctx.error(path, "required field is missing (expected a mapping with metadata.labels "
                        "and spec)")
        return PodTemplate((), (), PodSpec(containers=()), (), {})
    template = _typed(ctx, value, path, dict)
    if template is None:
        return PodTemplate((), (), PodSpec(containers=()), (), {})
    _check_fields(ctx, template, path, "PodTemplateSpec")
    labels: list = []
    annotations: list = []
    meta = _typed(ctx, template.get("metadata"), path + ("metadata",), dict)
    if meta is not None:
        here = path + ("metadata",)
        _check_fields(ctx, meta, here, "ObjectMeta")
        for name in ("name", "namespace"):
            _optional(ctx, meta.get(name), here + (name,), dns1123_label_problem)
        labels = _string_map(ctx, meta.get("labels"), here + ("labels",), label_value_problem)
        annotations = _string_map(ctx, meta.get("annotations"), here + ("annotations",), None)
    spec = _pod_spec(ctx, template.get("spec"), path + ("spec",))
    raw_spec = template.get("spec") if isinstance(template.get("spec"), dict) else {}
    return PodTemplate(pairs(labels), pairs(annotations), spec, _parsed_tolerations(raw_spec),
                       template)


def _parsed_tolerations(raw_spec: dict) -> tuple[Toleration, ...]:
    """The template's tolerations: _pod_spec has validated them already (errors recorded
    there), so this parses without recording anything twice."""
    scratch = _Ctx(file="")
    return tolerations(scratch, raw_spec.get("tolerations"), ("tolerations",))


def _restart_policy(ctx: _Ctx, template: Any, path: FieldPath, allowed: tuple[str, ...],
                    kind: str) -> None:
    """Kubernetes: Deployments and DaemonSets run restartPolicy Always only; Jobs need
    OnFailure or Never, written out (the Pod default Always is refused)."""
    spec = template.get("spec") if isinstance(template, dict) else None
    if not isinstance(spec, dict):
        return
    value = spec.get("restartPolicy")
    here = path + ("spec", "restartPolicy")
    if value is None:
        if "Always" not in allowed:
            ctx.error(here, f"required field is missing for a {kind} "
                            f"(allowed: {_values(allowed)})")
        return
    if value in ("Always", "OnFailure", "Never") and value not in allowed:
        ctx.error(here, f"{_show(value)} is not allowed for a {kind} (allowed: {_values(allowed)})")


def _selector_matches_template(ctx: _Ctx, selector: LabelSelector | None, template: PodTemplate,
                               path: FieldPath) -> None:
    if selector is not None and not selector.matches(template.labels):
        shown = ", ".join(f"{k}={v}" for k, v in template.labels) or "none"
        ctx.error(path + ("metadata", "labels"),
                  f"selector does not match the template's labels (selector: {selector}; "
                  f"labels: {shown})")


def _int_or_percent(ctx: _Ctx, value: Any, path: FieldPath, default: IntOrPercent,
                    at_most_100: bool = False) -> IntOrPercent:
    """An integer >= 0 or a percent string like '25%' (Kubernetes' IntOrString)."""
    if value is None:
        return default
    if isinstance(value, int) and not isinstance(value, bool):
        if value < 0:
            ctx.error(path, f"{value} is out of range (allowed: >= 0)")
            return default
        return value
    if isinstance(value, str) and is_percent(value):
        if at_most_100 and int(value[:-1]) > 100:
            ctx.error(path, f"{_show(value)} must not be greater than 100%")
            return default
        return value
    ctx.error(path, f"{_show(value)} is not allowed (expected an integer >= 0 or a percentage "
                    "such as '25%')")
    return default


def _is_zero(value: IntOrPercent) -> bool:
    return value == 0 or (isinstance(value, str) and int(value[:-1]) == 0)


# ---------------------------------------------------------------- Deployment


def deployment(ctx: _Ctx, doc: dict) -> Deployment:
    meta = _top(ctx, doc, "Deployment")
    spec = _spec(ctx, doc, "DeploymentSpec", "selector and template")
    p = ("spec",)
    template = pod_template(ctx, spec.get("template"), p + ("template",)) if _has(doc) else \
        PodTemplate((), (), PodSpec(containers=()), (), {})
    _restart_policy(ctx, spec.get("template"), p + ("template",), ("Always",), "Deployment")
    selector = label_selector(ctx, spec.get("selector"), p + ("selector",), required=_has(doc),
                              kind="Deployment")
    _selector_matches_template(ctx, selector, template, p + ("template",))
    replicas = _default(_int_in(ctx, spec.get("replicas"), p + ("replicas",), 0, None), 1)
    min_ready = _default(_int_in(ctx, spec.get("minReadySeconds"), p + ("minReadySeconds",),
                                 0, None), 0)
    history = _default(_int_in(ctx, spec.get("revisionHistoryLimit"),
                               p + ("revisionHistoryLimit",), 0, None), 10)
    deadline = _int_in(ctx, spec.get("progressDeadlineSeconds"),
                       p + ("progressDeadlineSeconds",), 1, None)
    if deadline is not None and deadline <= min_ready:
        ctx.error(p + ("progressDeadlineSeconds",),
                  f"{deadline} must be greater than minReadySeconds ({min_ready})")
    paused = _bool(ctx, spec.get("paused"), p + ("paused",))
    strategy, surge, unavailable = _deployment_strategy(ctx, spec.get("strategy"),
                                                        p + ("strategy",))
    return Deployment(meta=meta, selector=selector or LabelSelector(), template=template,
                      replicas=replicas, strategy=strategy, max_surge=surge,
                      max_unavailable=unavailable, min_ready_seconds=min_ready,
                      revision_history_limit=history, paused=paused,
                      progress_deadline_seconds=_default(deadline, 600), source=ctx.source())


def _deployment_strategy(ctx: _Ctx, value: Any, path: FieldPath) -> tuple[str, IntOrPercent, IntOrPercent]:
    strategy = _typed(ctx, value, path, dict) or {}
    _check_fields(ctx, strategy, path, "DeploymentStrategy")
    kind = _enum(ctx, strategy.get("type"), path + ("type",), ("RollingUpdate", "Recreate"),
                 "RollingUpdate")
    rolling = strategy.get("rollingUpdate")
    if kind == "Recreate":
        if rolling is not None:
            ctx.error(path + ("rollingUpdate",), "must not be set when type is Recreate")
        return kind, 0, 0
    here = path + ("rollingUpdate",)
    rolling = _typed(ctx, rolling, here, dict) or {}
    _check_fields(ctx, rolling, here, "RollingUpdateDeployment")
    surge = _int_or_percent(ctx, rolling.get("maxSurge"), here + ("maxSurge",), "25%")
    unavailable = _int_or_percent(ctx, rolling.get("maxUnavailable"), here + ("maxUnavailable",),
                                  "25%", at_most_100=True)
    if _is_zero(surge) and _is_zero(unavailable):
        ctx.error(here + ("maxUnavailable",), "must not be 0 when maxSurge is 0 "
                                              "(the rollout could never make progress)")
    return kind, surge, unavailable


# ---------------------------------------------------------------- Job


def job(ctx: _Ctx, doc: dict) -> Job:
    meta = _top(ctx, doc, "Job")
    spec = _spec(ctx, doc, "JobSpec", "template")
    p = ("spec",)
    template = pod_template(ctx, spec.get("template"), p + ("template",)) if _has(doc) else \
        PodTemplate((), (), PodSpec(containers=()), (), {})
    _restart_policy(ctx, spec.get("template"), p + ("template",), ("OnFailure", "Never"), "Job")
    manual = _bool(ctx, spec.get("manualSelector"), p + ("manualSelector",))
    selector = label_selector(ctx, spec.get("selector"), p + ("selector",), required=manual,
                              kind="Job with manualSelector")
    _selector_matches_template(ctx, selector, template, p + ("template",))
    completions = _int_in(ctx, spec.get("completions"), p + ("completions",), 0, None)
    parallelism = _int_in(ctx, spec.get("parallelism"), p + ("parallelism",), 0, None)
    if spec.get("completions") is None and spec.get("parallelism") is None:
        completions = 1  # Kubernetes: both unset means one pod, run once
    mode = spec.get("completionMode")
    if mode == "Indexed":
        ctx.error(p + ("completionMode",), "'Indexed' is not supported by podctl yet "
                                           "(supported: \"NonIndexed\")")
    else:
        _enum(ctx, mode, p + ("completionMode",), ("NonIndexed",), "NonIndexed")
    return Job(
        meta=meta, template=template, completions=completions,
        parallelism=_default(parallelism, 1),
        backoff_limit=_default(_int_in(ctx, spec.get("backoffLimit"), p + ("backoffLimit",),
                                       0, None), 6),
        active_deadline_seconds=_int_in(ctx, spec.get("activeDeadlineSeconds"),
                                        p + ("activeDeadlineSeconds",), 1, None),
        ttl_seconds_after_finished=_int_in(ctx, spec.get("ttlSecondsAfterFinished"),
                                           p + ("ttlSecondsAfterFinished",), 0, None),
        completion_mode="NonIndexed", selector=selector, manual_selector=manual,
        source=ctx.source())


# ---------------------------------------------------------------- DaemonSet


def daemonset(ctx: _Ctx, doc: dict) -> DaemonSet:
    meta = _top(ctx, doc, "DaemonSet")
    spec = _spec(ctx, doc, "DaemonSetSpec", "selector and template")
    p = ("spec",)
    template = pod_template(ctx, spec.get("template"), p + ("template",)) if _has(doc) else \
        PodTemplate((), (), PodSpec(containers=()), (), {})
    _restart_policy(ctx, spec.get("template"), p + ("template",), ("Always",), "DaemonSet")
    selector = label_selector(ctx, spec.get("selector"), p + ("selector",), required=_has(doc),
                              kind="DaemonSet")
    _selector_matches_template(ctx, selector, template, p + ("template",))
    strategy, unavailable = _daemonset_strategy(ctx, spec.get("updateStrategy"),
                                                p + ("updateStrategy",))
    return DaemonSet(
        meta=meta, selector=selector or LabelSelector(), template=template,
        update_strategy=strategy, max_unavailable=unavailable,
        min_ready_seconds=_default(_int_in(ctx, spec.get("minReadySeconds"),
                                           p + ("minReadySeconds",), 0, None), 0),
        revision_history_limit=_default(_int_in(ctx, spec.get("revisionHistoryLimit"),
                                                p + ("revisionHistoryLimit",), 0, None), 10),
        source=ctx.source())


def update_strategy(ctx: _Ctx, value: Any, path: FieldPath, table: str,
                    rolling_table: str) -> tuple[str, dict | None, FieldPath]:
    """updateStrategy of a DaemonSet or StatefulSet: (type, its rollingUpdate mapping or
    None for OnDelete, the rollingUpdate path)."""
    strategy = _typed(ctx, value, path, dict) or {}
    _check_fields(ctx, strategy, path, table)
    kind = _enum(ctx, strategy.get("type"), path + ("type",), ("RollingUpdate", "OnDelete"),
                 "RollingUpdate")
    rolling = strategy.get("rollingUpdate")
    here = path + ("rollingUpdate",)
    if kind == "OnDelete":
        if rolling is not None:
            ctx.error(here, "must not be set when type is OnDelete")
        return kind, None, here
    rolling = _typed(ctx, rolling, here, dict) or {}
    _check_fields(ctx, rolling, here, rolling_table)
    return kind, rolling, here


def _daemonset_strategy(ctx: _Ctx, value: Any, path: FieldPath) -> tuple[str, IntOrPercent]:
    kind, rolling, here = update_strategy(ctx, value, path, "DaemonSetUpdateStrategy", "RollingUpdateDaemonSet")
    if rolling is None:
        return kind, 1
    unavailable = _int_or_percent(ctx, rolling.get("maxUnavailable"), here + ("maxUnavailable",),
                                  1, at_most_100=True)
    if _is_zero(unavailable):
        ctx.error(here + ("maxUnavailable",), "must not be 0 when maxSurge is 0 "
                                              "(the rollout could never make progress)")
    return kind, unavailable


def _statefulset(ctx: _Ctx, doc: dict) -> Any:
    from .statefulset_validation import statefulset  # it imports this module
    return statefulset(ctx, doc)


VALIDATORS: dict[str, Callable[[_Ctx, dict], Any]] = {
    "Deployment": deployment,
    "Job": job,
    "DaemonSet": daemonset,
    "StatefulSet": _statefulset,  # workloads/statefulset_validation.py
}

__all__ = ["VALIDATORS", "label_selector", "pod_template", "tolerations"]
