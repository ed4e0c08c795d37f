"""Ephemeral containers (`podctl debug`): the spec the API server would accept, and
the status the kubelet would report. Pure functions.

An ephemeral container joins a running pod (its network, IPC and UTS namespaces, and
with targetContainerName that container's PID namespace) without restarting anything.
It is never restarted, and, as the API server says, it has no ports, probes,
resources or lifecycle. The store keeps the accepted specs next to the pod (they are
not part of the pod's immutable spec: re-applying the manifest does not touch them).
"""

from __future__ import annotations

import random
import string
from typing import Any, Mapping, Sequence

from .errors import UsageError
from .manifests import default_pull_policy, dns1123_label_problem, image_problem, no_nul_problem
from .model import Container, EnvVar, Pod

PULL_POLICIES = ("Always", "IfNotPresent", "Never")
# EphemeralContainerCommon fields the API server refuses (validateEphemeralContainers).
FORBIDDEN = ("ports", "livenessProbe", "readinessProbe", "startupProbe", "resources", "lifecycle",
             "resizePolicy", "restartPolicy")
ALLOWED = ("name", "image", "command", "args", "workingDir", "env", "imagePullPolicy", "stdin", "stdinOnce",
           "tty", "targetContainerName", "terminationMessagePath", "terminationMessagePolicy",
           "securityContext")
_NAME_CHARS = string.ascii_lowercase + string.digits


def debugger_name(rng: random.Random) -> str:
    """kubectl debug's default name: debugger-<5 random [a-z0-9]>."""
    return "debugger-" + "".join(rng.choice(_NAME_CHARS) for _ in range(5))


def container_names(pod: Pod, ephemeral: Sequence[Mapping] = ()) -> list[tuple[str, str]]:
    """Every container of the pod as (name, kind): kind is "", "init" or "ephem"."""
    out = [(c.name, "init") for c in getattr(pod.spec, "init_containers", ()) or ()]
    out += [(c.name, "") for c in pod.spec.containers]
    out += [(str(e.get("name")), "ephem") for e in ephemeral]
    return out


def build_spec(name: str, image: str, command: Sequence[str], target: str | None, stdin: bool, tty: bool,
               pull_policy: str | None) -> dict:
    """The ephemeralContainers[] entry `kubectl debug` sends."""
    doc: dict[str, Any] = {"name": name, "image": image}
    if command:
        doc["command"] = list(command)
    doc["imagePullPolicy"] = pull_policy or default_pull_policy(image)
    doc["terminationMessagePolicy"] = "File"
    if target:
        doc["targetContainerName"] = target
    if stdin:
        doc["stdin"] = True
    if tty:
        doc["tty"] = True
    return doc


def validate(doc: Mapping, pod: Pod, existing: Sequence[Mapping], index: int) -> list[str]:
    """The API server's checks of a new ephemeral container; [] when it is accepted.
    Messages name the field as `kubectl` shows them."""
    at = f"spec.ephemeralContainers[{index}]"
    errors = []
    for key in doc:
        if key in FORBIDDEN:
            errors.append(f"{at}.{key}: Forbidden: cannot be set for an Ephemeral Container")
        elif key not in ALLOWED:
            errors.append(f"{at}.{key}: Unsupported field (supported: {', '.join(ALLOWED)})")
    name = doc.get("name")
    if not isinstance(name, str) or dns1123_label_problem(name):
        errors.append(f"{at}.name: Invalid value: {name!r}: a DNS-1123 label (lowercase letters, digits "
                      "and '-', at most 63 characters)")
    elif name in [n for n, _ in container_names(pod, existing)]:
        errors.append(f'{at}.name: Duplicate value: "{name}"')
    image = doc.get("image")
    if not isinstance(image, str) or not image or image_problem(image):
        errors.append(f"{at}.image: Required value: an image reference such as busybox:latest")
    for key in ("command", "args"):
        value = doc.get(key)
        if value is not None and (not isinstance(value, list) or
                                  any(not isinstance(s, str) or no_nul_problem(s) for s in value)):
            errors.append(f"{at}.{key}: Invalid value: a list of strings without NUL")
    policy = doc.get("imagePullPolicy")
    if policy is not None and policy not in PULL_POLICIES:
        errors.append(f'{at}.imagePullPolicy: Unsupported value: "{policy}": supported values: '
                      + ", ".join(f'"{p}"' for p in PULL_POLICIES))
    target = doc.get("targetContainerName")
    if target is not None:
        names = [n for n, kind in container_names(pod) if kind != "ephem"]
        if target not in names:
            errors.append(f'{at}.targetContainerName: Not found: "{target}"')
    wd = doc.get("workingDir")
    if wd is not None and (not isinstance(wd, str) or not wd.startswith("/")):
        errors.append(f"{at}.workingDir: Invalid value: an absolute path")
    return errors


def check(doc: Mapping, pod: Pod, existing: Sequence[Mapping]) -> None:
    errors = validate(doc, pod, existing, len(existing))
    if errors:
        raise UsageError(f'The Pod "{pod.name}" is invalid:\n* ' + "\n* ".join(errors))


def as_container(doc: Mapping) -> Container:
    """The runtime's view of an accepted spec (it starts like an app container)."""
    env = tuple(EnvVar(str(e["name"]), str(e.get("value") or "")) for e in doc.get("env") or ())
    command = doc.get("command")
    args = doc.get("args")
    return Container(name=doc["name"], image=doc["image"], command=tuple(command) if command else None,
                     args=tuple(args) if args else None, env=env, working_dir=doc.get("workingDir"),
                     image_pull_policy=doc.get("imagePullPolicy") or "IfNotPresent")


UNKNOWN_STATE = {"terminated": {"exitCode": 137, "reason": "ContainerStatusUnknown",
                                "message": "The container could not be located on the pod's host"}}


def statuses(specs: Sequence[Mapping], observed: Sequence[Mapping] | None, images: Mapping[str, str]
             ) -> list[dict]:
    """status.ephemeralContainerStatuses[]: what the host reports for each recorded
    ephemeral container. `observed` None: the host was not seen (state unknown)."""
    by_name = {str(o.get("name")): o for o in observed or ()}
    out = []
    for spec in specs:
        name = spec["name"]
        seen = by_name.get(name)
        if seen is not None:
            state = seen.get("state") or {"waiting": {"reason": "ContainerCreating"}}
        elif observed is None:
            state = {"waiting": {"reason": "ContainerCreating"}}
        else:
            state = UNKNOWN_STATE
        out.append({"name": name, "image": spec.get("image", ""),
                    "imageID": f"sha256:{images[name]}" if images.get(name) else "",
                    "ready": False, "restartCount": 0, "state": state, "lastState": {}})
    return out


# ---------------------------------------------------------------- the host scripts


def ephemeral_dir(uid: str, name: str) -> str:
    from .runtime import pod_dir

    return f"{pod_dir(uid)}/ephemeral/{name}"


def debug_script(pod: Pod, uid: str, doc: Mapping, image, interactive: bool) -> str:
    """The script that adds the ephemeral container `doc` to `pod` (uid) on its host.
    `image`: the ImageConfig of doc["image"]. Starts it like an app container
    (container.sh.j2: overlay root, /proc of its PID namespace, the pod's /dev and
    /etc files, only the declared environment), without volumes."""
    from .render import render
    from .podenv import PodFacts
    from .runtime import _container_context, _name, _Secrets, check_uid, image_dir, pod_dir

    check_uid(uid)
    c = as_container(doc)
    # `podctl debug` sets no env from ConfigMaps/Secrets: nothing here needs the pod's
    # facts or a secrets payload; oom_score_adj is the pod's class's (capacity unknown).
    secrets = _Secrets(uid)
    ctx = _container_context(pod, uid, c, image, {}, PodFacts(uid, "", "", "", 0, 0), secrets, 0)
    if secrets.files:
        raise ValueError("an ephemeral container cannot take secret-backed values")
    ctx["dir"] = ephemeral_dir(uid, _name(c.name, "ephemeral container name"))
    # No probes, no hooks: started as it runs, never ready (as Kubernetes reports them).
    ctx.update(started_initially="true", ready_initially="false", hold_running="no")
    pod_ctx = {"uid": uid}
    target = doc.get("targetContainerName") or ""
    if target:
        _name(target, "target container name")
    e = {"uid": uid, "name": c.name, "dir": ctx["dir"], "interactive": "yes" if interactive else "no",
         "target": target, "image_dir": f"{image_dir(image.digest)}/rootfs",
         "target_pid_file": f"{pod_dir(uid)}/containers/{target}/pid" if target else ""}
    e["start_script"] = render("container.sh.j2", pod=pod_ctx, c=ctx)
    e["run_script"] = render("ephemeral_run.sh.j2", e=e)
    return render("ephemeral.sh.j2", e=e)


def describe_lines(specs: Sequence[Mapping], statuses_: Sequence[Mapping]) -> list[str]:
    """`kubectl describe pod`'s Ephemeral Containers section."""
    if not specs:
        return []
    by_name = {s.get("name"): s for s in statuses_}
    out = ["Ephemeral Containers:"]
    for spec in specs:
        st = by_name.get(spec["name"], {})
        state = st.get("state") or {}
        kind = next(iter(state), "waiting")
        detail = state.get(kind) or {}
        out.append(f"  {spec['name']}:")
        out.append(f"    Image:          {spec.get('image', '')}")
        if spec.get("targetContainerName"):
            out.append(f"    Target:         {spec['targetContainerName']}")
        if spec.get("command"):
            out.append(f"    Command:        {' '.join(spec['command'])}")
        out.append(f"    State:          {kind.capitalize()}"
                   + (f" ({detail['reason']})" if detail.get("reason") else ""))
        for key in ("startedAt", "finishedAt", "exitCode"):
            if key in detail:
                out.append(f"      {key}: {detail[key]}")
    return out
