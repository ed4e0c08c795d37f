"""Jinja rendering of the scripts that run on hosts, with one rule: values are quoted.

Every value that reaches a script goes through the `q` filter, which shell-quotes it
as one whole word (a list becomes several words). The environment's `finalize` hook
refuses to print anything that did not come out of `q`, so a template that forgets
the filter fails to render instead of producing an injectable script; a unit test
also checks every `{{ }}` in templates/ statically (tests/unit/test_render.py).
"""

from __future__ import annotations

import shlex
from functools import lru_cache
from pathlib import Path
from typing import Any

import jinja2

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
def environment(templates_dir: Path = TEMPLATES_DIR) -> jinja2.Environment:
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
    try:
        return environment().get_template(name).render(**context)
    except jinja2.UndefinedError as exc:
        raise RenderError(f"{name}: {exc}") from exc
