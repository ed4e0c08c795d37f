"""The validator for apps/v1 StatefulSet (ValidateStatefulSetSpec, ValidatePersistentVolumeClaim
where podctl can honour them), registered through validation.VALIDATORS.

A claim template becomes, in each pod, a hostPath volume of the same name (a directory
under specs.CLAIMS_ROOT), as Kubernetes' controller adds a persistentVolumeClaim volume:
so the template is validated with those volumes in place (its containers mount them by
name), while the template stored and hashed is the one written.
"""

from __future__ import annotations

import copy
import dataclasses
from typing import Any

from ..manifests import (
    _LABEL_RULE,
    FieldPath,
    _check_fields,
    _Ctx,
    _enum,
    _int_in,
    _items,
    _optional,
    _required,
    _show,
    _string_map,
    _typed,
    _unique,
    _values,
    dns1123_label_problem,
    dns1123_subdomain_problem,
    label_value_problem,
)
from ..model import PodSpec
from ..quantity import QuantityError, parse_memory
from .specs import (
    CLAIMS_ROOT,
    ClaimTemplate,
    LabelSelector,
    PodTemplate,
    StatefulSet,
    claim_name,
    claim_path,
)
from .validation import (
    _default,
    _has,
    _restart_policy,
    _selector_matches_template,
    _spec,
    _top,
    label_selector,
    pod_template,
)

POLICIES = ("OrderedReady", "Parallel")
ACCESS_MODES = ("ReadWriteOnce", "ReadWriteOncePod")  # one host: what a directory can be
OTHER_ACCESS_MODES = ("ReadOnlyMany", "ReadWriteMany")
MAX_NAME = 63  # pod and claim names are DNS-1123 labels (hostnames, directory names)


def statefulset(ctx: _Ctx, doc: dict) -> StatefulSet:
    meta = _top(ctx, doc, "StatefulSet")
    spec = _spec(ctx, doc, "StatefulSetSpec", "selector and template")
    p = ("spec",)
    claims = claim_templates(ctx, spec.get("volumeClaimTemplates"), p + ("volumeClaimTemplates",))
    raw_template = spec.get("template")
    if _has(doc):
        names = _claim_names(spec.get("volumeClaimTemplates"))
        with_claims, injected = _with_claim_volumes(raw_template, names, meta.namespace,
                                                    meta.name)
        before = len(ctx.errors)
        template = pod_template(ctx, with_claims, p + ("template",))
        # an injected volume's only possible error, its name, is reported at its claim
        ctx.errors[before:] = [e for e in ctx.errors[before:] if not any(
            e.path.startswith(f"spec.template.spec.volumes[{i}]") for i in injected)]
        if isinstance(raw_template, dict):
            template = dataclasses.replace(template, raw=raw_template)
    else:
        template = PodTemplate((), (), PodSpec(containers=()), (), {})
    _restart_policy(ctx, raw_template, p + ("template",), ("Always",), "StatefulSet")
    selector = label_selector(ctx, spec.get("selector"), p + ("selector",), required=_has(doc),
                              kind="StatefulSet")
    _selector_matches_template(ctx, selector, template, p + ("template",))
    replicas = _default(_int_in(ctx, spec.get("replicas"), p + ("replicas",), 0, None), 1)
    service = _optional(ctx, spec.get("serviceName"), p + ("serviceName",),
                        dns1123_label_problem) or ""
    policy = _enum(ctx, spec.get("podManagementPolicy"), p + ("podManagementPolicy",), POLICIES,
                   "OrderedReady")
    strategy, partition = _update_strategy(ctx, spec.get("updateStrategy"),
                                           p + ("updateStrategy",))
    _retention(ctx, spec.get("persistentVolumeClaimRetentionPolicy"),
               p + ("persistentVolumeClaimRetentionPolicy",))
    if meta.name and replicas:
        _name_lengths(ctx, meta.name, replicas, claims, p)
    return StatefulSet(
        meta=meta, selector=selector or LabelSelector(), template=template, replicas=replicas,
        service_name=service, pod_management_policy=policy, update_strategy=strategy,
        partition=partition, claim_templates=claims,
        min_ready_seconds=_default(_int_in(ctx, spec.get("minReadySeconds"),
                                           p + ("minReadySeconds",), 0, None), 0),
        revision_history_limit=_default(_int_in(ctx, spec.get("revisionHistoryLimit"),
                                                p + ("revisionHistoryLimit",), 0, None), 10),
        source=ctx.source())


def _claim_names(value: Any) -> list[str]:
    """The names the claim templates give (valid or not), for the mounts to refer to."""
    names = []
    for item in value if isinstance(value, list) else ():
        meta = item.get("metadata") if isinstance(item, dict) else None
        name = meta.get("name") if isinstance(meta, dict) else None
        if isinstance(name, str) and name not in names:
            names.append(name)
    return names


def _with_claim_volumes(template: Any, names: list[str], namespace: str,
                        name: str) -> tuple[Any, list[int]]:
    """A copy of the template with a volume per claim template, as pod 0 will have it
    (a template volume of the same name is replaced in place, as Kubernetes does), and
    the indices of those volumes."""
    if not names or not isinstance(template, dict) or not isinstance(template.get("spec"), dict):
        return template, []
    out = copy.deepcopy(template)
    volumes = out["spec"].get("volumes")
    if volumes is None:
        volumes = []
    if not isinstance(volumes, list):
        return out, []  # reported as not a list by the Pod rules
    index = {v.get("name"): i for i, v in enumerate(volumes) if isinstance(v, dict)}
    injected = []
    for claim in names:
        path = CLAIMS_ROOT
        if name and not dns1123_label_problem(claim):
            path = claim_path(namespace, claim_name(claim, name, 0))
        volume = {"name": claim, "hostPath": {"path": path, "type": "DirectoryOrCreate"}}
        if claim in index:
            volumes[index[claim]] = volume
        else:
            index[claim] = len(volumes)
            volumes.append(volume)
        injected.append(index[claim])
    out["spec"]["volumes"] = volumes
    return out, injected


def claim_templates(ctx: _Ctx, value: Any, path: FieldPath) -> tuple[ClaimTemplate, ...]:
    """spec.volumeClaimTemplates: PersistentVolumeClaims (name, accessModes,
    resources.requests.storage, as Kubernetes requires them)."""
    out = []
    names: dict = {}
    for here, item in _items(ctx, value, path, "a PersistentVolumeClaim"):
        before = len(ctx.errors)
        _check_fields(ctx, item, here, "PersistentVolumeClaim")
        for key, allowed in (("apiVersion", "v1"), ("kind", "PersistentVolumeClaim")):
            if item.get(key) is not None and item.get(key) != allowed:
                ctx.error(here + (key,), f"{_show(item.get(key))} is not allowed "
                                         f"(allowed: {_values([allowed])}, or leave it out)")
        name = None
        meta = _typed(ctx, item.get("metadata"), here + ("metadata",), dict)
        if meta is None and item.get("metadata") is None:
            ctx.error(here + ("metadata",), "required field is missing (expected a mapping "
                                            "with a name: the volume name containers mount)")
        elif meta is not None:
            m = here + ("metadata",)
            _check_fields(ctx, meta, m, "ObjectMeta")
            name = _required(ctx, meta, m, "name", _LABEL_RULE, dns1123_label_problem)
            _optional(ctx, meta.get("namespace"), m + ("namespace",), dns1123_label_problem)
            _string_map(ctx, meta.get("labels"), m + ("labels",), label_value_problem)
            _string_map(ctx, meta.get("annotations"), m + ("annotations",), None)
            if name is not None:
                _unique(ctx, names, name, m + ("name",), f"claim template name {name!r}")
        modes, storage, storage_class = _claim_spec(ctx, item.get("spec"), here + ("spec",))
        if len(ctx.errors) == before and name is not None:
            out.append(ClaimTemplate(name, modes, storage, storage_class))
    return tuple(out)


def _claim_spec(ctx: _Ctx, value: Any, path: FieldPath) -> tuple[tuple[str, ...], int | None,
                                                                   str | None]:
    if value is None:
        ctx.error(path, "required field is missing (expected accessModes and "
                        "resources.requests.storage)")
        return (), None, None
    spec = _typed(ctx, value, path, dict)
    if spec is None:
        return (), None, None
    _check_fields(ctx, spec, path, "PersistentVolumeClaimSpec")
    modes = []
    raw_modes = _typed(ctx, spec.get("accessModes"), path + ("accessModes",), list)
    if spec.get("accessModes") is None or raw_modes == []:
        ctx.error(path + ("accessModes",), "at least 1 access mode is required "
                                           f"(allowed: {_values(ACCESS_MODES)})")
    for i, mode in enumerate(raw_modes or ()):
        if mode in OTHER_ACCESS_MODES:
            ctx.error(path + ("accessModes", i),
                      f"{_show(mode)} is not supported by podctl: a claim is a directory on "
                      f"one host (allowed: {_values(ACCESS_MODES)})")
        else:
            modes.append(_enum(ctx, mode, path + ("accessModes", i), ACCESS_MODES, ""))
    storage = None
    here = path + ("resources",)
    resources = _typed(ctx, spec.get("resources"), here, dict)
    if resources is None:
        if spec.get("resources") is None:
            ctx.error(here, "required field is missing (expected requests.storage, e.g. 1Gi)")
    else:
        _check_fields(ctx, resources, here, "VolumeResourceRequirements")
        for part in ("requests", "limits"):
            amounts = _typed(ctx, resources.get(part), here + (part,), dict)
            if amounts is None:
                if part == "requests":
                    ctx.error(here + (part, "storage"), "required field is missing "
                                                        "(expected a quantity, e.g. 1Gi)")
                continue
            for key in amounts:
                if key != "storage":
                    ctx.error(here + (part, key), f"{_show(key)} is not allowed for a claim "
                                                  '(allowed: "storage")')
            if "storage" not in amounts and part == "requests":
                ctx.error(here + (part, "storage"), "required field is missing "
                                                    "(expected a quantity, e.g. 1Gi)")
            elif "storage" in amounts:
                try:
                    amount = parse_memory(amounts["storage"])
                except QuantityError as exc:
                    ctx.error(here + (part, "storage"), str(exc))
                else:
                    storage = amount if part == "requests" else storage
    storage_class = _optional(ctx, spec.get("storageClassName"), path + ("storageClassName",),
                              dns1123_subdomain_problem)
    return tuple(m for m in modes if m), storage, storage_class


def _update_strategy(ctx: _Ctx, value: Any, path: FieldPath) -> tuple[str, int]:
    from .validation import update_strategy

    kind, rolling, here = update_strategy(ctx, value, path, "StatefulSetUpdateStrategy",
                                          "RollingUpdateStatefulSetStrategy")
    if rolling is None:
        return kind, 0
    partition = _int_in(ctx, rolling.get("partition"), here + ("partition",), 0, None)
    return kind, _default(partition, 0)


def _retention(ctx: _Ctx, value: Any, path: FieldPath) -> None:
    policy = _typed(ctx, value, path, dict)
    if policy is not None:
        _check_fields(ctx, policy, path, "StatefulSetPersistentVolumeClaimRetentionPolicy")


def _name_lengths(ctx: _Ctx, name: str, replicas: int, claims: tuple[ClaimTemplate, ...],
                  p: FieldPath) -> None:
    """Pod names (<name>-<ordinal>) are hostnames and claim names directory names:
    both must stay DNS-1123 labels for the highest ordinal."""
    last = replicas - 1
    pod = f"{name}-{last}"
    if len(pod) > MAX_NAME:
        ctx.error(p + ("replicas",), f"pod name {pod!r} would be longer than {MAX_NAME} "
                                     "characters (shorten metadata.name)")
    for i, c in enumerate(claims):
        claim = claim_name(c.name, name, last)
        if len(claim) > MAX_NAME:
            ctx.error(p + ("volumeClaimTemplates", i, "metadata", "name"),
                      f"claim name {claim!r} would be longer than {MAX_NAME} characters "
                      "(shorten this name or the StatefulSet's)")
