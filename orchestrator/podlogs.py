"""`podctl logs`: reading container log lines, filtering and merging them. Pure functions.

A container's log file holds lines in the CRI log format the kubelet reads
(`2026-11-22T01:02:03.123456Z stdout F text`: RFC3339 UTC time, stream, tag F for a full
line or P for a partial one continued by the next entry), or raw text from an older
supervisor. Both are read: a line that matches the format loses its prefix, any other
line is kept whole and takes the time of the line before it (for ordering only).
"""

from __future__ import annotations

import heapq
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Iterable, Iterator, Sequence

from .errors import UsageError
from .manifests import label_key_problem, label_value_problem
from .scheduler.kube import label_selector
from .scheduler.types import LabelSelector

_CRI = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d{1,9})?(?:Z|[+-]\d\d:\d\d)) (stdout|stderr) ([FP]) ?(.*)$",
                  re.S)


@dataclass(frozen=True)
class LogLine:
    time: float | None  # seconds since the epoch; None: a raw line before any dated one
    stamp: str  # the RFC3339 time as written ("" for a raw line)
    stream: str  # stdout | stderr
    text: str  # without the newline


def parse_time(stamp: str) -> float:
    """RFC3339 with up to nanoseconds (Python's fromisoformat takes microseconds)."""
    m = re.fullmatch(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d{1,9}))?(Z|[+-]\d\d:\d\d)", stamp)
    if not m:
        raise ValueError(f"not an RFC3339 time: {stamp!r}")
    zone = "+00:00" if m.group(3) == "Z" else m.group(3)
    base = datetime.fromisoformat(m.group(1) + zone).timestamp()
    return base + (int(m.group(2).ljust(9, "0")) / 1e9 if m.group(2) else 0.0)


class Assembler:
    """Raw log lines in, LogLines out, one at a time (for followed streams): CRI partial
    entries (P) are held until the full line (F) that ends them, as the kubelet reads."""

    def __init__(self) -> None:
        self.last_time: float | None = None
        self.pending: list[str] = []
        self.head: tuple[float, str, str] | None = None

    def flush(self) -> list[LogLine]:
        if self.head is None:
            return []
        out = LogLine(self.head[0], self.head[1], self.head[2], "".join(self.pending))
        self.pending, self.head = [], None
        return [out]

    def feed(self, line: str) -> list[LogLine]:
        line = line.rstrip("\n")
        m = _CRI.match(line)
        when = None
        if m is not None:
            try:
                when = parse_time(m.group(1))
            except ValueError:
                m = None
        if m is None:  # a raw line: it cannot continue a partial entry
            return self.flush() + [LogLine(self.last_time, "", "stdout", line)]
        stamp, stream, tag, text = m.groups()
        self.last_time = when
        if self.head is None:
            self.head = (when, stamp, stream)
        self.pending.append(text)
        return self.flush() if tag == "F" else []


def parse_lines(raw: Iterable[str]) -> Iterator[LogLine]:
    """Log file lines -> LogLines (CRI prefixes stripped, partial entries joined)."""
    a = Assembler()
    for line in raw:
        yield from a.feed(line)
    yield from a.flush()


def select(lines: Sequence[LogLine], since: float | None = None, tail: int = -1) -> list[LogLine]:
    """The kubelet's order: the last `tail` lines (-1: all), then those not older than
    `since` (lines with no time are kept: nothing says they are older)."""
    out = list(lines)
    if tail >= 0:
        out = out[len(out) - tail:] if tail else []
    if since is not None:
        out = [x for x in out if x.time is None or x.time >= since]
    return out


def format_line(line: LogLine, prefix: str = "", timestamps: bool = False) -> str:
    """One output line: `[pod/NAME/CONTAINER] ` prefix, then the time (--timestamps)."""
    stamp = f"{line.stamp} " if timestamps and line.stamp else ""
    return f"{prefix}{stamp}{line.text}"


def prefix_for(pod: str, container: str) -> str:
    return f"[pod/{pod}/{container}] "


def merge(sources: Sequence[tuple[str, Sequence[LogLine]]]) -> list[tuple[str, LogLine]]:
    """Several containers' lines in time order, as (prefix, line). Each source keeps its
    own order; ties and undated lines go by source order (a stable merge)."""
    def keyed(index: int, prefix: str, lines: Sequence[LogLine]):
        last = float("-inf")
        for n, line in enumerate(lines):
            last = line.time if line.time is not None else last
            yield (last, index, n), prefix, line

    streams = [keyed(i, p, lines) for i, (p, lines) in enumerate(sources)]
    return [(p, line) for _, p, line in heapq.merge(*streams, key=lambda x: x[0])]


def render(sources: Sequence[tuple[str, Sequence[str]]], *, since: float | None = None, tail: int = -1,
           timestamps: bool = False) -> list[str]:
    """Raw log lines per source (prefix, lines) -> the output lines `podctl logs` prints."""
    parsed = [(prefix, select(list(parse_lines(lines)), since, tail)) for prefix, lines in sources]
    return [format_line(line, prefix, timestamps) for prefix, line in merge(parsed)]


_DURATION = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")
_UNIT = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_duration(text: str) -> float:
    """A Go duration (`5s`, `2m30s`, `1h`, `1.5h`) in seconds, as kubectl's --since takes it."""
    s = text.strip()
    if not s or not re.fullmatch(rf"(?:{_DURATION.pattern})+", s):
        raise UsageError(f'invalid argument "{text}" for "--since" flag: a duration such as 30s, 5m, 1h or 1h30m')
    return sum(float(n) * _UNIT[u] for n, u in _DURATION.findall(s))


# ---------------------------------------------------------------- label selectors (-l)

_SET_OP = re.compile(r"^\s*(!?)\s*([^\s!=(),]+)\s*(?:(notin|in)\s*\(([^()]*)\)|(==|!=|=)\s*([^\s,()]*))?\s*$")


def _split_terms(text: str) -> list[str]:
    """Split on commas outside parentheses (`a in (x,y),b=c`)."""
    terms, depth, cur = [], 0, []
    for ch in text:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "," and depth == 0:
            terms.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    terms.append("".join(cur))
    return terms


def parse_selector(text: str) -> LabelSelector:
    """kubectl's -l syntax (`app=web`, `tier!=db`, `env in (a,b)`, `env notin (c)`,
    `key`, `!key`, comma-separated, all ANDed) as a LabelSelector, keys and values
    checked as Kubernetes checks label keys and values."""
    labels: dict[str, str] = {}
    exprs: list[dict] = []
    if not text.strip():
        raise UsageError("-l: an empty selector would select every pod; give key=value")
    for term in _split_terms(text):
        m = _SET_OP.match(term)
        if m is None or (m.group(1) and (m.group(3) or m.group(5))):
            raise UsageError(f"-l {text!r}: cannot parse {term.strip()!r} (expected key=value, key!=value, "
                             "key in (a,b), key notin (a,b), key or !key)")
        neg, key, set_op, set_values, op, value = m.groups()
        problem = label_key_problem(key)
        if problem:
            raise UsageError(f"-l {text!r}: label key {key!r}: {problem}")
        values = [v.strip() for v in set_values.split(",")] if set_op else ([value] if op else [])
        for v in values:
            problem = label_value_problem(v)
            if problem:
                raise UsageError(f"-l {text!r}: label value {v!r}: {problem}")
        if set_op:
            if not any(values):
                raise UsageError(f"-l {text!r}: {key} {set_op} () needs at least one value")
            exprs.append({"key": key, "operator": "In" if set_op == "in" else "NotIn", "values": values})
        elif op in ("=", "=="):
            if key in labels and labels[key] != value:
                exprs.append({"key": key, "operator": "In", "values": [value]})
            else:
                labels[key] = value
        elif op == "!=":
            exprs.append({"key": key, "operator": "NotIn", "values": [value]})
        else:
            exprs.append({"key": key, "operator": "DoesNotExist" if neg else "Exists"})
    return label_selector({"matchLabels": labels, "matchExpressions": exprs})
