"""The scheduling framework: filters, then weighted scores, then a stable pick.

`schedule(pods, snapshot, config)` places pods one after another; each placement is
charged into the run's Index so the next pod sees it. Pure: no I/O, no clock, no
randomness; hosts are ordered by name, so equal totals go to the first name.

Per pod the work is (see plugin.py for the kinds of plugin):
1. its spec (every field but the key: the replicas of one controller share it) finds
   its cache entry: the global plugins' prepared state, and the template (template.py)
   holding every host's static and local answers (reason code, allocation scores),
   refreshed only on the hosts charged since it last looked;
2. global filters narrow the template's feasible set; scorers whose answer is fixed
   for the spec (static raw scores) are folded into a per-spec base kept current host
   by host; the others (spread, inter-pod affinity) add per-domain or per-value tables;
3. the best total among feasible hosts wins (argmax: first index = smallest name);
4. its ScoreCard is read off now, and the pod is charged into the Index.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, fields
from operator import attrgetter, mul
from typing import NamedTuple

import numpy as np

from . import explain, registry
from .index import Index
from .plugin import BIG, Context, Gathered, Point, Tabled
from .template import BULK, Template, static_codes
from .types import SchedPod, SchedulerConfig, Snapshot

SPEC_FIELDS = tuple(f.name for f in fields(SchedPod) if f.name != "key")


@dataclass(frozen=True)
class Rejection:
    """Why one host was filtered out: the first filter that said no, and its reasons."""

    host: str
    plugin: str
    reasons: tuple[str, ...]


class ScoreCard(NamedTuple):
    """One feasible host's score: (plugin, score 0..100, weight) each; total = sum of
    score * weight."""

    host: str
    total: int
    scores: tuple[tuple[str, int, int], ...]


@dataclass(frozen=True)
class Verdict:
    """A host's outcome for one pod: rejected (and why) or scored."""

    host: str
    rejection: Rejection | None = None
    score: ScoreCard | None = None

    @property
    def feasible(self) -> bool:
        return self.rejection is None


@dataclass(frozen=True, slots=True)
class Placement:
    """Where one pod goes (host None: it stays Pending, `message` says why)."""

    pod: SchedPod
    host: str | None
    message: str = ""
    _score: object = field(default=None, compare=False, repr=False)  # see score
    feasible: int = 0  # hosts that passed every filter
    candidates: tuple[ScoreCard, ...] = ()  # explain="full": every feasible host, best first
    _codes: object = field(default=None, compare=False, repr=False)  # see codes()
    _reasons: list | None = field(default=None, compare=False, repr=False)
    _names: list | None = field(default=None, compare=False, repr=False)

    @property
    def score(self) -> ScoreCard | None:
        """The chosen host's card. Its numbers were captured when the pod was placed;
        the card is assembled on first use."""
        if isinstance(self._score, _Captured):
            object.__setattr__(self, "_score", self._score.card())
        return self._score

    def __eq__(self, other) -> bool:
        if not isinstance(other, Placement):
            return NotImplemented
        return ((self.pod, self.host, self.message, self.feasible, self.candidates, self.score)
                == (other.pod, other.host, other.message, other.feasible, other.candidates, other.score))

    @property
    def key(self) -> str:
        return self.pod.key

    @property
    def sched_pod(self) -> SchedPod:
        return self.pod

    def codes(self) -> np.ndarray | None:
        """Per host (sorted by name): the interned reason code it was rejected for, 0 if
        feasible. Merged on first use."""
        if isinstance(self._codes, tuple):
            object.__setattr__(self, "_codes", merge_codes(self._codes))
        return self._codes

    def rejections(self) -> tuple[Rejection, ...]:
        """Every rejected host, by host name."""
        codes = self.codes()
        if codes is None:
            return ()
        out = []
        for h in np.flatnonzero(codes).tolist():
            plugin, texts = self._reasons[int(codes[h])]
            out.append(Rejection(self._names[h], plugin, texts))
        return tuple(out)

    def reason_counts(self) -> dict[str, int]:
        """How many hosts each reason rejected (a host may count under several)."""
        return explain.reason_counts(self.codes(), self._reasons)


_PLACEMENT_SETTERS = tuple(getattr(Placement, f.name).__set__ for f in fields(Placement))


def _placement(*values) -> Placement:
    """Placement(*values) without the frozen dataclass's __init__ checks."""
    p = object.__new__(Placement)
    for set_field, value in zip(_PLACEMENT_SETTERS, values):
        set_field(p, value)
    return p


class _Captured:
    """A score card's numbers, read when the pod was placed (the arrays behind them
    change with later charges), assembled into a ScoreCard when first asked for."""

    __slots__ = ("names", "weights", "host", "h", "local", "column", "positions", "values")

    def __init__(self, names, weights, host, h, local, column, positions, values):
        self.names, self.weights, self.host, self.h = names, weights, host, h
        self.local, self.column, self.positions, self.values = local, column, positions, values

    def card(self) -> ScoreCard:
        h = self.h
        scores = [0] * len(self.names)
        for pos, fixed, row in self.local:
            scores[pos] = int(fixed[h]) if fixed is not None else int(self.column[row])
        for pos, v in zip(self.positions, self.values):
            kind = type(v)
            if kind is np.ndarray:
                scores[pos] = int(v[h])
            elif kind is Gathered:
                scores[pos] = int(v.at(h))
            elif kind is Point:
                scores[pos] = int(v.value) if v.h == h else 0
            elif v is not None:
                scores[pos] = int(v)  # a number: uniform, or a Tabled score read at placement
        return ScoreCard(self.host, sum(map(mul, scores, self.weights)), tuple(zip(self.names, scores, self.weights)))


def merge_codes(codes):
    """(template codes, [global filter codes, in filter order]) -> one array: each host
    keeps the reason of the first filter that rejected it."""
    if not isinstance(codes, tuple):
        return codes
    merged, rejects = codes
    for g in rejects:
        merged = np.where(merged != 0, merged, g)
    return merged


def select(cards: Iterable[ScoreCard]) -> ScoreCard | None:
    """The best card: highest total, ties to the smallest host name."""
    best = None
    for c in cards:
        if best is None or c.total > best.total or (c.total == best.total and c.host < best.host):
            best = c
    return best


def schedule(pods: Sequence[SchedPod], snapshot: Snapshot,
             config: SchedulerConfig = SchedulerConfig()) -> list[Placement]:
    """Place `pods` in order. A pod's own earlier binding in the snapshot (same key) is
    ignored: it is being placed afresh (its current_host expresses where it runs)."""
    pods = list(pods)
    ix = Index(snapshot, config, frozenset(p.key for p in pods))
    engine = Engine(ix, registry.build(config))
    return [engine.place(p) for p in pods]


class _Spec:
    """A distinct pod spec (every field but the key): its template, the
    prepared state of the global plugins that have something to do for it, and its base:
    the template's masked local total plus the scorers whose result is fixed for the
    spec (static raw scores: kept while their normalisation holds)."""

    __slots__ = ("pod", "template", "gfilters", "fixed", "moving", "gpos", "lpos", "plan", "version",
                 "base", "base_key", "base_seen", "fixed_sum")


class Engine:
    def __init__(self, ix: Index, reg: registry.Registry):
        self.ix = ix
        self.sfilters = [p for p in reg.filters if p.kind == "static"]
        self.lfilters = [p for p in reg.filters if p.kind == "local"]
        self.gfilters = [p for p in reg.filters if p.kind == "global"]
        self.scorers = reg.scorers
        self.names = tuple(p.name for p, _ in reg.scorers)
        self.weights = tuple(w for _, w in reg.scorers)
        self.position = {name: i for i, name in enumerate(self.names)}
        self.lscorers = [(p, w) for p, w in reg.scorers if p.kind == "local"]
        self.gscorers = [(p, w) for p, w in reg.scorers if p.kind == "global"]
        local = sorted({f for p in self.sfilters + self.lfilters + [p for p, _ in self.lscorers] for f in p.fields})
        self._local_key = attrgetter(*local, "cpu_m")  # at least two names: always a tuple
        self._spec_key = attrgetter(*SPEC_FIELDS)
        self.templates: dict[tuple, Template] = {}
        self.specs: dict[tuple, _Spec] = {}
        self._last: tuple = (None, None)

    def _spec(self, pod: SchedPod, key: tuple) -> _Spec:
        ix, spec = self.ix, _Spec()
        spec.pod = pod
        local_key = self._local_key(pod)
        t = spec.template = self.templates.get(local_key)
        if t is None:
            t = spec.template = self.templates[local_key] = Template(
                pod, ix, static_codes(pod, ix, self.sfilters), self.lfilters, self.lscorers)
        spec.lpos = [(self.position[p.name], fixed, row) for p, _, fixed, row in t.rows]
        spec.plan = ix.plan(pod)
        self._prepare(spec, everything=True)
        self.specs[key] = spec
        return spec

    def _prepare(self, spec: _Spec, everything: bool) -> None:
        """Prepare the global plugins (all, or those reading bound pods' affinity terms,
        after new terms appeared: those memoise on the terms that match)."""
        ix, pod = self.ix, spec.pod
        if everything:
            spec.gfilters = [(p, st) for p in self.gfilters if (st := p.prepare(pod, ix)) is not None]
            scorers = [(p, w, st) for p, w in self.gscorers if (st := p.prepare(pod, ix)) is not None]
        else:
            old = {p.name: st for p, st in spec.gfilters}
            spec.gfilters = [(p, st) for p in self.gfilters
                             if (st := p.prepare(pod, ix) if p.carried else old.get(p.name)) is not None]
            old = {p.name: st for p, _, st in spec.fixed + spec.moving}
            scorers = [(p, w, st) for p, w in self.gscorers
                       if (st := p.prepare(pod, ix) if p.carried else old.get(p.name)) is not None]
        spec.fixed = [s for s in scorers if s[0].fixed]
        spec.moving = [s for s in scorers if not s[0].fixed]
        spec.gpos = [self.position[p.name] for p, _, _ in spec.fixed + spec.moving]
        spec.version = ix.carried_version
        spec.base, spec.base_key, spec.base_seen, spec.fixed_sum = None, None, 0, None

    def _base(self, spec: _Spec, t: Template, values: list) -> np.ndarray:
        """t.masked + the fixed scorers' weighted sum, kept current host by host."""
        key = tuple(id(v) if type(v) is np.ndarray else v for v in values)
        log = self.ix.log
        if key != spec.base_key:
            fixed = None
            for (p, w, _), v in zip(spec.fixed, values):
                if type(v) is np.ndarray:
                    fixed = v * w if fixed is None else fixed + v * w
            spec.fixed_sum, spec.base_key = fixed, key
            spec.base = None if fixed is None else t.masked + fixed
        elif spec.base is not None and spec.base_seen != len(log):
            dirty = log[spec.base_seen:]
            if len(dirty) > BULK:
                spec.base = t.masked + spec.fixed_sum
            else:
                base, masked, fixed = spec.base, t.masked, spec.fixed_sum
                for h in set(dirty):
                    base[h] = masked[h] + fixed[h]
        spec.base_seen = len(log)
        return t.masked if spec.base is None else spec.base

    # ------------------------------------------------------------ one pod

    def place(self, pod: SchedPod) -> Placement:
        ix = self.ix
        key = self._spec_key(pod)
        if key == self._last[0]:  # replicas come in runs: skip hashing the spec
            spec = self._last[1]
        else:
            spec = self.specs.get(key)
            if spec is None:
                spec = self._spec(pod, key)
            self._last = (key, spec)
        if spec.version != ix.carried_version:
            self._prepare(spec, everything=False)
        t = spec.template
        if t.seen != len(ix.log):
            t.refresh()
        ctx = Context(ix, pod, t)
        rejects = None  # global filters' codes, merged into t.codes only when asked for
        for p, st in spec.gfilters:
            g = p.codes(st, ctx)
            if g is None:
                continue
            feasible = ctx.feasible & (g == 0)
            k = int(np.count_nonzero(feasible))
            if k != ctx.n_feasible:
                ctx.feasible, ctx.n_feasible = feasible, k
                rejects = (rejects or []) + [g]
        codes = t.codes if rejects is None else (t.codes, rejects)
        if not ctx.n_feasible:
            codes = merge_codes(codes)
            message = explain.unschedulable(codes, ix.reasons, ix.n)
            return _placement(pod, None, message, None, 0, (), codes, ix.reasons, ix.names)
        values = [p.scores(st, ctx) for p, _, st in spec.fixed]
        base = self._base(spec, t, values) if spec.fixed else t.masked
        total, points = None, None
        for p, w, st in spec.moving:
            v = p.scores(st, ctx)
            values.append(v)
            kind = type(v)
            if kind is np.ndarray:
                add = v * w
            elif kind is Gathered or kind is Tabled:
                add = v.hosts(w)
            else:
                if kind is Point:
                    points = (points or []) + [(v.h, v.value * w)]
                continue
            if total is None:
                total = add
                total += base
            else:
                total += add
        if points:
            total = base.copy() if total is None else total
            for h, value in points:
                total[h] += value
        if rejects is not None:  # hosts this pod's global filters rejected: out of reach
            total = np.where(ctx.feasible, base if total is None else total, -BIG)
        h = int((base if total is None else total).argmax())
        card = self._capture(t, spec, values, h)
        cards = ()
        if ix.config.explain == "full":
            cards = tuple(sorted((self._capture(t, spec, values, i).card() for i in np.flatnonzero(ctx.feasible).tolist()),
                                 key=lambda c: (-c.total, c.host)))
        ix.charge(pod, h, spec.plan)
        return _placement(pod, ix.names[h], "", card, ctx.n_feasible, cards, codes, ix.reasons, ix.names)

    def _capture(self, t: Template, spec: _Spec, values: list, h: int) -> _Captured:
        """What host h's score card needs, read now: later charges change the arrays
        behind the local scores and the per-count tables, not the rest."""
        column = t.L[:, h].copy() if len(t.L) else None
        if Tabled in map(type, values):
            values = [v.at(h) if type(v) is Tabled else v for v in values]
        return _Captured(self.names, self.weights, self.ix.names[h], h, spec.lpos, column, spec.gpos, tuple(values))
