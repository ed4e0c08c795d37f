"""Jinja rendering of the scripts that run on hosts, with one rule: values are quoted.

Every value that reaches a script goes through the `q` filter, which shell-quotes it
as one whole word (a list becomes several words). The environment's `finalize` hook
refuses to print anything that did not come out of `q`, so a template that forgets
the filter fails to render instead of producing an injectable script; a unit test
also checks every `{{ }}` in templates/ statically (tests/unit/test_render.py).

Jinja is imported on the first render that needs it: a no-op reconcile renders only
the probe, which holds no values, and `render_static` reads it without Jinja (~0.1 s
of imports saved per run; a unit test checks both give the same text).
"""

from __future__ import annotations

import re
import shlex
from functools import lru_cache
from pathlib import Path
from typing import Any

from .errors import PodctlError

TEMPLATES_DIR = Path(__file__).resolve().parent.parent / "templates"


class RenderError(PodctlError):
    """A template tried to print an unquoted value, or a value cannot be quoted."""


class Shell(str):
    """Text that is safe to paste into a bash script as one or more whole words."""


def _word(value: Any) -> str:
    if isinstance(value, bool) or value is None:
        # A bool or None reaching a script is almost always a template bug.
        raise RenderError(f"refusing to quote {value!r}: convert it explicitly")
    if isinstance(value, (int, float)):
        value = str(value)
    if not isinstance(value, str):
        raise RenderError(f"refusing to quote a {type(value).__name__}")
    if "\x00" in value:
        raise RenderError("a value contains NUL, which no shell word can carry")
    return shlex.quote(value)


def q(value: Any) -> Shell:
    """Shell-quote a value: a string/number is one word, a list/tuple several."""
    if isinstance(value, (list, tuple)):
        return Shell(" ".join(_word(v) for v in value))
    return Shell(_word(value))


def _finalize(value: Any) -> Any:
    if isinstance(value, Shell):
        return value
    raise RenderError(
        f"template printed {value!r} without the |q filter; every value must be quoted"
    )


@lru_cache(maxsize=4)
def environment(templates_dir: Path = TEMPLATES_DIR):
    """The jinja2.Environment every template renders in."""
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(templates_dir)),
        undefined=jinja2.StrictUndefined,
        finalize=_finalize,
        autoescape=False,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["q"] = q
    return env


def render(name: str, **context: Any) -> str:
    """Render templates/<name> with `context`; raises RenderError on an unquoted value."""
    import jinja2

    try:
        return environment().get_template(name).render(**context)
    except jinja2.UndefinedError as exc:
        raise RenderError(f"{name}: {exc}") from exc


# A template that only has comments and includes renders the same for every context.
_STATIC_TAG = re.compile(r"\{#(.*?)#\}|\{%\s*include\s+\"([A-Za-z0-9_.-]+)\"\s*%\}|\{[{%#]", re.S)


@lru_cache(maxsize=16)
def render_static(name: str, templates_dir: Path = TEMPLATES_DIR) -> str:
    """templates/<name> rendered with no values, without Jinja when it holds only `{# #}`
    comments and `{% include "x" %}` of such templates (with the environment's
    trim_blocks / lstrip_blocks / keep_trailing_newline); anything else, Jinja renders."""
    text = _static(name, templates_dir, 0)
    if text is None:
        return environment(templates_dir).get_template(name).render()
    return text


def _static(name: str, templates_dir: Path, depth: int) -> str | None:
    if depth > 8:
        return None
    source = (templates_dir / name).read_text()
    out, pos = [], 0
    for m in _STATIC_TAG.finditer(source):
        token = m.group(0)
        comment = m.group(1)
        if token in ("{{", "{%", "{#") or (comment is not None and (comment[:1] == "-" or comment[-1:] == "-")):
            return None  # a value, a statement, a whitespace-control comment: Jinja's job
        before = source[pos:m.start()]
        line_start = before.rfind("\n") + 1
        if not before[line_start:].strip(" \t"):
            before = before[:line_start]  # lstrip_blocks: the tag's indentation goes
        out.append(before)
        if m.group(2) is not None:
            included = _static(m.group(2), templates_dir, depth + 1)
            if included is None:
                return None
            out.append(included)
        pos = m.end()
        if source.startswith("\n", pos):
            pos += 1  # trim_blocks: the newline after the tag goes
    out.append(source[pos:])
    return "".join(out)
