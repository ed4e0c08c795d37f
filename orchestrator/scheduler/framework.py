"""The scheduling framework: filters, then weighted scores, then a stable pick.

`schedule(pods, snapshot, config)` places pods one after another; each placement is
charged into the run's Index so the next pod sees it. Pure: no I/O, no clock, no
randomness; hosts are ordered by name, so equal totals go to the first name.

Per pod the work is (see plugin.py for the kinds):
1. the pod's template (every static/local input: spec fields, not its name) finds its
   cache entry: per-host reason codes and allocation scores, refreshed only on hosts
   charged since the entry last looked (a charge changes one host);
2. global filters and scorers run vectorised over all hosts when the pod uses them;
3. the best total among feasible hosts wins (argmax: first = smallest name).
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from operator import attrgetter
from typing import Iterable, Sequence

import numpy as np

from . import explain, registry
from .index import Index
from .plugin import BIG, U16, Context, Gathered, Point, Tabled
from .types import SchedPod, SchedulerConfig, Snapshot

F64 = np.float64
BULK = 24  # refresh this many charged hosts one by one; more: vectorised
SPEC_FIELDS = tuple(f.name for f in fields(SchedPod) if f.name not in ("key", "current_host"))


@dataclass(frozen=True)
class Rejection:
    """Why one host was filtered out: the first filter that said no, and its reasons."""

    host: str
    plugin: str
    reasons: tuple[str, ...]


@dataclass(frozen=True)
class ScoreCard:
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


@dataclass(frozen=True)
class Placement:
    """Where one pod goes (host None: it stays Pending, `message` says why)."""

    pod: SchedPod
    host: str | None
    message: str = ""
    score: ScoreCard | None = None  # the chosen host's card
    feasible: int = 0  # hosts that passed every filter
    candidates: tuple[ScoreCard, ...] = ()  # explain="full": every feasible host, best first
    _codes: np.ndarray | None = field(default=None, compare=False, repr=False)
    _reasons: list | None = field(default=None, compare=False, repr=False)
    _names: list | None = field(default=None, compare=False, repr=False)

    @property
    def key(self) -> str:
        return self.pod.key

    @property
    def sched_pod(self) -> SchedPod:
        return self.pod

    def rejections(self) -> tuple[Rejection, ...]:
        """Every rejected host, by host name."""
        if self._codes is None:
            return ()
        out = []
        for h in np.flatnonzero(self._codes).tolist():
            plugin, texts = self._reasons[int(self._codes[h])]
            out.append(Rejection(self._names[h], plugin, texts))
        return tuple(out)

    def reason_counts(self) -> dict[str, int]:
        """How many hosts each reason rejected (a host may count under several)."""
        return explain.reason_counts(self._codes, self._reasons)


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


class _Template:
    """Per-host results of static and local plugins for one template (pods agreeing on
    every field those plugins read), kept current by refreshing charged hosts only."""

    __slots__ = ("pod", "static", "lfilters", "lscorers", "codes", "ok", "pen", "n_ok", "base",
                 "static_base", "masked", "arrays", "seen", "dok", "hists")

    def domain_ok(self, topo) -> np.ndarray:
        """Feasible hosts per domain of topo (D+1 slots), kept up to date."""
        entry = self.dok.get(topo.key)
        if entry is None:
            entry = self.dok[topo.key] = (topo, np.bincount(topo.dom, weights=self.ok, minlength=topo.D + 1))
        return entry[1]

    def count_hist(self, counts: np.ndarray, log: list) -> dict:
        """{value: feasible hosts with it} for a per-host integer array that changes
        only on charged hosts, updated from the hosts charged since the last call."""
        n = len(self.ok)
        entry = self.hists.get(id(counts))
        if entry is not None and len(log) - entry[3] > BULK:
            entry = None
        if entry is None:
            snap = counts[:n].tolist()
            ok = self.ok.tolist()
            values, freq = np.unique(counts[:n][self.ok], return_counts=True)
            hist = dict(zip(values.tolist(), freq.tolist()))
            entry = self.hists[id(counts)] = [counts, snap, ok, len(log), hist]
            return hist
        _, snap, okl, seen, hist = entry
        if seen != len(log):
            for h in set(log[seen:]):
                old_ok, old_c = okl[h], snap[h]
                new_ok, new_c = bool(self.ok[h]), int(counts[h])
                if old_ok:
                    left = hist[old_c] - 1
                    if left:
                        hist[old_c] = left
                    else:
                        del hist[old_c]
                if new_ok:
                    hist[new_c] = hist.get(new_c, 0) + 1
                okl[h], snap[h] = new_ok, new_c
            entry[3] = len(log)
        return hist


class _Spec:
    """A distinct pod spec (all fields but key and current_host): its template and the
    prepared state of the global plugins that have something to do for it."""

    __slots__ = ("template", "gfilters", "gscorers", "version")


class Engine:
    def __init__(self, ix: Index, reg: registry.Registry):
        self.ix = ix
        self.sfilters = [p for p in reg.filters if p.kind == "static"]
        self.lfilters = [p for p in reg.filters if p.kind == "local"]
        self.gfilters = [p for p in reg.filters if p.kind == "global"]
        self.scorers = reg.scorers
        self.lscorers = [(p, w) for p, w in reg.scorers if p.kind == "local"]
        self.gscorers = [(p, w) for p, w in reg.scorers if p.kind == "global"]
        local = sorted({f for p in self.sfilters + self.lfilters + [p for p, _ in self.lscorers] for f in p.fields})
        self._local_key = attrgetter(*local, "cpu_m")  # at least two names: always a tuple
        self._spec_key = attrgetter(*SPEC_FIELDS)
        self.templates: dict[tuple, _Template] = {}
        self.specs: dict[tuple, _Spec] = {}
        self.all_idx = np.arange(ix.n)

    # ------------------------------------------------------------ specs and templates

    def _spec(self, pod: SchedPod, key: tuple) -> _Spec:
        ix, spec = self.ix, _Spec()
        local_key = self._local_key(pod)
        spec.template = self.templates.get(local_key)
        if spec.template is None:
            spec.template = self.templates[local_key] = self._build(pod)
        spec.gfilters = [(p, st) for p in self.gfilters if (st := p.prepare(pod, ix)) is not None]
        spec.gscorers = [(p, w, st) for p, w in self.gscorers if (st := p.prepare(pod, ix)) is not None]
        spec.version = ix.carried_version
        self.specs[key] = spec
        return spec

    def _static_codes(self, pod: SchedPod) -> np.ndarray:
        ix = self.ix
        codes = None
        for p in self.sfilters:
            if not p.applies(pod):
                continue
            memo = ("static", p.name, p.key(pod))
            c = ix.cache.get(memo)
            if c is None:
                c = ix.cache[memo] = p.codes(pod, ix)
            codes = c if codes is None else np.where(codes != 0, codes, c)
        return np.zeros(ix.n, dtype=U16) if codes is None else codes

    def _build(self, pod: SchedPod) -> _Template:
        ix, t = self.ix, _Template()
        t.pod = pod
        t.static = self._static_codes(pod)
        t.lfilters = [p for p in self.lfilters if p.applies(pod)]
        t.lscorers = [(p, w) for p, w in self.lscorers if p.applies(pod)]
        t.arrays = {}
        t.static_base = np.zeros(ix.n, dtype=F64)
        for p, w in t.lscorers:
            if p.static:
                t.arrays[p.name] = p.scores(pod, ix, self.all_idx)
                t.static_base += t.arrays[p.name] * w
        t.codes = t.static
        t.base = t.static_base.copy()
        t.ok = np.zeros(ix.n, dtype=bool)
        t.pen = np.zeros(ix.n, dtype=F64)
        t.masked = np.zeros(ix.n, dtype=F64)
        t.dok = {}
        t.hists = {}
        self._update(t, self.all_idx)
        t.seen = len(ix.log)
        return t

    def _refresh(self, t: _Template) -> None:
        log = self.ix.log
        dirty = log[t.seen:]
        t.seen = len(log)
        if len(dirty) <= BULK:
            for h in set(dirty):
                self._update_one(t, h)
        else:
            self._update(t, np.unique(np.array(dirty)) if len(dirty) < self.ix.n else self.all_idx)

    def _update(self, t: _Template, idx: np.ndarray) -> None:
        """Recompute local filters and scores on hosts idx (vector form)."""
        ix, pod = self.ix, t.pod
        codes = t.static[idx]
        for p in t.lfilters:
            c = p.codes(pod, ix, idx)
            codes = np.where(codes != 0, codes, c)
        if not np.array_equal(codes, t.codes[idx]):
            t.codes = t.codes.copy()  # placements keep the old array: copy on write
            t.codes[idx] = codes
        base = t.static_base[idx]
        for p, w in t.lscorers:
            if not p.static:
                s = p.scores(pod, ix, idx)
                arr = t.arrays.setdefault(p.name, np.zeros(ix.n, dtype=F64))
                arr[idx] = s
                base = base + s * w
        ok = codes == 0
        pen = np.where(ok, 0.0, -BIG)
        t.base[idx], t.ok[idx], t.pen[idx], t.masked[idx] = base, ok, pen, base + pen
        t.n_ok = int(np.count_nonzero(t.ok))
        for key, (topo, _) in list(t.dok.items()):
            t.dok[key] = (topo, np.bincount(topo.dom, weights=t.ok, minlength=topo.D + 1))

    def _update_one(self, t: _Template, h: int) -> None:
        """The same for one host, in plain Python (NumPy calls cost more than the math)."""
        ix, pod = self.ix, t.pod
        code = int(t.static[h])
        if not code:
            for p in t.lfilters:
                code = p.code_one(pod, ix, h)
                if code:
                    break
        if code != t.codes[h]:
            t.codes[h] = code
        base = float(t.static_base[h])
        for p, w in t.lscorers:
            if not p.static:
                s = p.score_one(pod, ix, h)
                t.arrays[p.name][h] = s
                base += s * w
        t.base[h] = base
        ok = not code
        if ok != t.ok[h]:
            t.ok[h] = ok
            t.pen[h] = 0.0 if ok else -BIG
            t.n_ok += 1 if ok else -1
            for topo, counts in t.dok.values():
                counts[topo.dom_l[h]] += 1 if ok else -1
        t.masked[h] = base + t.pen[h]

    # ------------------------------------------------------------ one pod

    def place(self, pod: SchedPod) -> Placement:
        ix = self.ix
        key = self._spec_key(pod)
        spec = self.specs.get(key)
        if spec is None or spec.version != ix.carried_version:
            spec = self._spec(pod, key)
        t = spec.template
        if t.seen != len(ix.log):
            self._refresh(t)
        ctx = Context(ix, pod, t)
        codes, narrowed = t.codes, False
        for p, st in spec.gfilters:
            g = p.codes(st, ctx)
            if g is None:
                continue
            merged = np.where(codes != 0, codes, g)
            feasible = merged == 0
            k = int(np.count_nonzero(feasible))
            if k != ctx.n_feasible:
                codes, ctx.feasible, ctx.n_feasible, narrowed = merged, feasible, k, True
        if narrowed:
            ctx.pen = np.where(ctx.feasible, 0.0, -BIG)
        if not ctx.n_feasible:
            message = explain.unschedulable(codes, ix.reasons, ix.n)
            return Placement(pod, None, message, None, 0, (), codes, ix.reasons, ix.names)
        values, total, points = [], None, None
        for p, w, st in spec.gscorers:
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
                total += t.masked
            else:
                total += add
        if narrowed:  # hosts this pod's global filters rejected: push them out of reach
            total = t.masked + ctx.pen if total is None else total.__iadd__(ctx.pen)
        if points:
            total = t.masked.copy() if total is None else total
            for h, value in points:
                total[h] += value
        h = int((t.masked if total is None else total).argmax())
        card = self._card(t, spec, values, h)
        cards = ()
        if ix.config.explain == "full":
            cards = tuple(sorted((self._card(t, spec, values, i) for i in np.flatnonzero(ctx.feasible).tolist()),
                                 key=lambda c: (-c.total, c.host)))
        ix.charge(pod, h)
        return Placement(pod, ix.names[h], "", card, ctx.n_feasible, cards, codes, ix.reasons, ix.names)

    def _card(self, t: _Template, spec: _Spec, values: list, h: int) -> ScoreCard:
        got = {p.name: v for (p, _, _), v in zip(spec.gscorers, values) if v is not None}
        scores = []
        total = 0
        for p, w in self.scorers:
            if p.kind == "local":
                arr = t.arrays.get(p.name)
                score = 0 if arr is None else int(arr[h])
            else:
                v = got.get(p.name)
                kind = type(v)
                if v is None:
                    score = 0
                elif kind is np.ndarray:
                    score = int(v[h])
                elif kind is Gathered or kind is Tabled:
                    score = int(v.at(h))
                elif kind is Point:
                    score = int(v.value) if v.h == h else 0
                else:
                    score = int(v)
            scores.append((p.name, score, w))
            total += score * w
        return ScoreCard(self.ix.names[h], total, tuple(scores))
