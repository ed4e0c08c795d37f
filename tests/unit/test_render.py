"""Safe rendering: every template value is quoted, and what comes out is valid bash."""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest

from orchestrator.render import TEMPLATES_DIR, RenderError, Shell, environment, q, render

EXPR = re.compile(r"\{\{(.*?)\}\}", re.S)
# A value may stand as a whole word: after start/space/=/( and before end/space/)/;/|/>
WORD_BEFORE = ("", " ", "\t", "=", "(", ">", "<")
WORD_AFTER = ("", " ", "\t", "\n", ")", ";", "|", ">")


def _templates():
    return sorted(TEMPLATES_DIR.glob("*.j2"))


@pytest.mark.parametrize("path", _templates(), ids=lambda p: p.name)
def test_every_expression_is_quoted_as_a_whole_word(path):
    text = path.read_text()
    assert "<<" not in text.replace("<<<", ""), f"{path.name}: no heredocs in templates"
    assert "eval" not in re.findall(r"\b\w+\b", text), f"{path.name}: no eval in templates"
    for m in EXPR.finditer(text):
        expr = m.group(1).strip()
        assert re.search(r"\|\s*q\s*$", expr), f"{path.name}: {{{{ {expr} }}}} lacks |q"
        line_start = text.rfind("\n", 0, m.start()) + 1
        before = text[line_start:m.start()]
        after = text[m.end():m.end() + 1]
        assert before[-1:] in WORD_BEFORE, f"{path.name}: {{{{ {expr} }}}} glued to {before[-8:]!r}"
        assert after in WORD_AFTER, f"{path.name}: {{{{ {expr} }}}} glued to {after!r}"
        # Inside double quotes a quoted word would be taken literally, quotes and all.
        assert before.count('"') % 2 == 0, f"{path.name}: {{{{ {expr} }}}} inside double quotes"
        assert before.count("'") % 2 == 0, f"{path.name}: {{{{ {expr} }}}} inside single quotes"


def test_unquoted_value_refuses_to_render(tmp_path):
    (tmp_path / "bad.sh.j2").write_text("echo {{ value }}\n")
    env = environment(tmp_path)
    with pytest.raises(RenderError, match="without the \\|q filter"):
        env.get_template("bad.sh.j2").render(value="$(touch /tmp/x)")


@pytest.mark.parametrize("value", [None, True, {"a": 1}, "a\x00b"])
def test_q_refuses_values_it_cannot_carry(value):
    with pytest.raises(RenderError):
        q(value)


@pytest.mark.parametrize(
    "value",
    ["plain", "", "with space", "it's", '"dq"', "$(touch x)", "`id`", "a\nb", "a;b", "é∂😀", "-n", "*"],
)
def test_q_round_trips_through_bash(value):
    script = f"printf '%s' {q(value)}"
    out = subprocess.run(["bash", "-c", script], capture_output=True, check=True).stdout
    assert out.decode() == value


def test_q_on_a_list_gives_one_word_each():
    words = ["a b", "$(x)", "", "'"]
    script = f"arr=({q(words)}); printf '%s\\0' \"${{arr[@]}}\""
    out = subprocess.run(["bash", "-c", script], capture_output=True, check=True).stdout
    assert out.decode().split("\0")[:-1] == words
    assert isinstance(q(words), Shell)


def test_probe_script_is_valid_bash():
    script = render("probe.sh.j2")
    subprocess.run(["bash", "-n"], input=script.encode(), check=True)
    if shutil.which("shellcheck"):
        subprocess.run(["shellcheck", "-s", "bash", "-S", "error", "-"], input=script.encode(), check=True)


# ---------------------------------------------------------------- golden scripts

import os  # noqa: E402
from pathlib import Path  # noqa: E402

from orchestrator.manifests import parse_documents  # noqa: E402
from orchestrator.model import EnvVar, ImageConfig  # noqa: E402
from orchestrator.runtime import Network, batch_script, delete_context, pod_context, probe_script  # noqa: E402

GOLDEN = Path(__file__).parent / "golden"
UID = "0d6f2a4e-1b7c-4c2d-9e3f-5a6b7c8d9e0f"
IMAGE = ImageConfig(ref="busybox:latest", digest="ab" * 32, cmd=("sh",),
                    env=(EnvVar("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"),))
POD = """
apiVersion: v1
kind: Pod
metadata: {name: web, labels: {app: web}}
spec:
  restartPolicy: OnFailure
  terminationGracePeriodSeconds: 5
  volumes:
  - {name: shared, emptyDir: {}}
  - {name: cache, emptyDir: {medium: Memory, sizeLimit: 16Mi}}
  - {name: host, hostPath: {path: /srv/data, type: DirectoryOrCreate}}
  containers:
  - name: app
    image: busybox
    command: [sh, -c, 'echo "$GREETING" > /data/out; sleep 3600']
    env: [{name: GREETING, value: "it's $(not run) `nor this`; echo x"}]
    workingDir: /data
    resources: {limits: {cpu: 500m, memory: 64Mi}, requests: {cpu: 250m, memory: 32Mi}}
    volumeMounts: [{name: shared, mountPath: /data}, {name: host, mountPath: /host, readOnly: true}]
  - name: side
    image: busybox
    args: [sleep, "3600"]
    volumeMounts: [{name: shared, mountPath: /data}, {name: cache, mountPath: /cache}]
"""


def _debug_script(pod) -> str:
    from orchestrator.ephemeral import build_spec, debug_script

    doc = build_spec("debugger-x1y2z", "busybox", ["sh", "-c", "ps; echo '$(no)'"], "app", False, False, None)
    return debug_script(pod, UID, doc, IMAGE, interactive=False)


def _golden_scripts() -> dict[str, str]:
    pod = parse_documents(POD, "golden.yaml")[0].obj
    ctx = pod_context(pod, UID, {"busybox": IMAGE}, Network("10.244.1.7", "10.244.1.0/24"))
    from orchestrator.executor import push_script
    from orchestrator.render import render as r

    return {
        "batch.sh": batch_script([{"verb": "create", "pod": ctx}, {"verb": "delete", "pod": delete_context(UID, 5)}], epoch=42),
        "supervisor.sh": ctx["supervisor"],
        "container-app.sh": ctx["containers"][0]["script"],
        "probe.sh": probe_script(),
        "image_push.sh": push_script("ab" * 32, 1234),
        "exec.sh": r("exec.sh.j2", uid=UID, container="app", command=["sh", "-c", "echo $HOSTNAME"], interactive=False),
        "logs.sh": r("logs.sh.j2", dir=f"/var/lib/podctl/pods/{UID}/containers/app", file="log", tail="+1",
                     follow="yes"),
        "debug.sh": _debug_script(pod),
    }


@pytest.mark.parametrize("name", sorted(_golden_scripts()))
def test_golden_scripts(name):
    script = _golden_scripts()[name]
    path = GOLDEN / name
    if os.environ.get("PODCTL_UPDATE_GOLDEN") or not path.exists():
        path.write_text(script)
    assert script == path.read_text(), f"{name} changed: review, then PODCTL_UPDATE_GOLDEN=1 pytest"
    subprocess.run(["bash", "-n"], input=script.encode(), check=True)
    if shutil.which("shellcheck"):
        r = subprocess.run(["shellcheck", "-s", "bash", "-S", "warning", "-"], input=script.encode(),
                           capture_output=True)
        assert r.returncode == 0, r.stdout.decode()


def test_manifest_field_table_in_docs_is_current():
    from orchestrator.manifests import fields_markdown

    doc = (Path(__file__).resolve().parents[2] / "docs" / "manifest-fields.md").read_text()
    assert fields_markdown().strip() in doc, "regenerate docs/manifest-fields.md (see its header)"


def test_render_static_matches_jinja_without_importing_it(tmp_path):
    """The probe is read without Jinja (a no-op reconcile then never imports it): the text
    must be exactly what Jinja renders, for every template that holds no values."""
    from orchestrator.render import _static, render_static

    static = [p.name for p in TEMPLATES_DIR.glob("*.j2") if _static(p.name, TEMPLATES_DIR, 0) is not None]
    assert "probe.sh.j2" in static and "lib_probe.sh.j2" in static
    for name in static:
        assert render_static(name) == render(name), name
    # Anything Jinja must do itself (values, statements, whitespace control) goes to Jinja.
    (tmp_path / "inc.j2").write_text("  {# c #}\ninc\n")
    cases = {"a.j2": "x\n  {# comment\n over lines #}\n{% include \"inc.j2\" %}\ny {# z #} w\n",
             "b.j2": "{% if true %}yes{% endif %}\n", "c.j2": "{#- trim -#}\nv\n", "d.j2": "{{ 'v' | q }}\n"}
    for name, text in cases.items():
        (tmp_path / name).write_text(text)
        expected = environment(tmp_path).get_template(name).render()
        assert render_static(name, tmp_path) == expected, name
    assert _static("a.j2", tmp_path, 0) is not None
    assert all(_static(n, tmp_path, 0) is None for n in ("b.j2", "c.j2", "d.j2"))
