"""The three kinds of plugin, by what their answer for a host depends on.

The kind tells the framework how often it must ask, which is where the speed comes from:

- static: the pod's spec and the host's fixed attributes (labels, taints, readiness).
  Asked once per distinct spec per run (memoised on `fields`).
- local: also the host's own mutable state (resources, ports). Asked once per host per
  template, then again only for hosts charged since (Kubernetes' per-node Filter/Score).
  Gives a vector form over host indices and a one-host form; both must agree (tested).
- global: counts over other hosts (topology spread, inter-pod affinity) or a
  normalisation over the feasible set. `prepare(pod, ix)` runs once per distinct pod
  spec (Kubernetes' PreFilter/PreScore: resolve selectors to live count arrays, which
  charge() keeps current in place) and returns None when the plugin has nothing to do;
  then `codes(state, ctx)` / `scores(state, ctx)` run for every pod, vectorised,
  working per topology domain where they can (a zone has many hosts, one count).

Filters return per-host reason codes (uint16, 0 = passes; Index.reason() interns them).
Scorers return 0..100 per host: a float64 array holding integers (a `fixed` scorer
returns the same array object while its answer holds, so the framework can keep the
weighted sum current host by host), a Gathered (one score per domain), a Tabled (one
score per count), a Point (one host scores, the rest 0), a single int (every host the
same), or None (Kubernetes' PreScore Skip: 0 everywhere).
"""

from __future__ import annotations

from operator import attrgetter

import numpy as np

U16 = np.uint16


class Plugin:
    name = ""
    kind = ""  # static | local | global
    fields: tuple[str, ...] = ()  # SchedPod fields read (static/local: the memo key)

    def applies(self, pod) -> bool:
        """False: nothing to check or score for this pod (PreFilter/PreScore Skip)."""
        return True

    def key(self, pod):
        if not self.fields:
            return ()
        return attrgetter(*self.fields)(pod)

    def __repr__(self) -> str:
        return self.name


class StaticFilter(Plugin):
    kind = "static"

    def codes(self, pod, ix) -> np.ndarray:  # pragma: no cover - interface
        raise NotImplementedError


class LocalFilter(Plugin):
    """Vector form: `idx` is an array of host indices or a slice (ALL: every host)."""

    kind = "local"

    def codes(self, pod, ix, idx: np.ndarray) -> np.ndarray:  # pragma: no cover - interface
        raise NotImplementedError

    def code_one(self, pod, ix, h: int) -> int:  # pragma: no cover - interface
        raise NotImplementedError


class GlobalFilter(Plugin):
    kind = "global"
    carried = False  # True: reads bound pods' affinity terms (re-prepared when new ones appear)

    def prepare(self, pod, ix):  # pragma: no cover - interface
        raise NotImplementedError

    def codes(self, state, ctx) -> np.ndarray | None:  # pragma: no cover - interface
        raise NotImplementedError


class LocalScorer(Plugin):
    kind = "local"
    static = False  # True: depends on no mutable host state, never refreshed

    def scores(self, pod, ix, idx: np.ndarray) -> np.ndarray:  # pragma: no cover - interface
        raise NotImplementedError

    def score_one(self, pod, ix, h: int) -> int:  # pragma: no cover - interface
        raise NotImplementedError


class GlobalScorer(Plugin):
    kind = "global"
    carried = False  # as GlobalFilter.carried
    fixed = False  # True: returns the same array object while its answer is unchanged

    def prepare(self, pod, ix):  # pragma: no cover - interface
        raise NotImplementedError

    def scores(self, state, ctx):  # pragma: no cover - interface
        raise NotImplementedError


class Gathered:
    """A score per topology domain: host h scores values[topo.dom[h]]."""

    __slots__ = ("values", "topo")

    def __init__(self, values: np.ndarray, topo):
        self.values, self.topo = values, topo

    def at(self, h: int) -> float:
        return float(self.values[self.topo.dom_l[h]])

    def hosts(self, weight: float) -> np.ndarray:
        scaled = self.values * weight
        return scaled[: len(self.topo.dom_l)] if self.topo.identity else scaled[self.topo.dom]


class Tabled:
    """A score per value: host h scores table[index[h]], the index clipped to the table
    (mode "clip": values 0..len-1) or taken modulo its length (mode "wrap": any len
    consecutive values, negative ones too). The table covers the feasible hosts'
    values; what the others get does not matter."""

    __slots__ = ("table", "index", "n", "mode")

    def __init__(self, table: np.ndarray, index: np.ndarray, n: int, mode: str):
        self.table, self.index, self.n, self.mode = table, index, n, mode

    def at(self, h: int) -> float:
        i, size = int(self.index[h]), len(self.table)
        return float(self.table[min(i, size - 1) if self.mode == "clip" else i % size])

    def hosts(self, weight: float) -> np.ndarray:
        return np.take(self.table * weight, self.index[: self.n], mode=self.mode)


class Point:
    """One host scores `value`, every other host 0."""

    __slots__ = ("h", "value")

    def __init__(self, h: int, value: float):
        self.h, self.value = h, value


class Context:
    """What global plugins see of the pod being placed: the hosts still feasible, a
    penalty array (0 where feasible, -BIG elsewhere: max(x + pen) is the feasible max)."""

    __slots__ = ("ix", "pod", "feasible", "_pen", "template", "n_feasible")

    def __init__(self, ix, pod, template):
        self.ix, self.pod, self.template = ix, pod, template
        self.feasible, self.n_feasible, self._pen = template.ok, template.n_ok, None

    @property
    def pen(self) -> np.ndarray:
        """0 on feasible hosts, -BIG elsewhere: max(x + pen) is the feasible maximum."""
        if self._pen is None:
            self._pen = np.where(self.feasible, 0.0, -BIG)
        return self._pen

    def domains(self, topo) -> list[bool]:
        """Per domain of topo (D+1 slots, the last "no label"): holds a feasible host?"""
        if self.feasible is self.template.ok:
            return [k > 0 for k in self.template.domain_ok(topo)]
        return topo.present(self.feasible).tolist()

    def count_hist(self, counts: np.ndarray) -> dict | None:
        """{count: feasible hosts with it} of per-host counts (a hostname-keyed count
        array), kept current from the charge log; None if this pod's global filters
        narrowed the feasible set (then work on the arrays)."""
        if self.feasible is not self.template.ok:
            return None
        return self.template.count_hist(counts)


BIG = 1e18


def floordiv(a, b):
    """floor(a / b) for integer-valued float64 a (|a| < 2**53) and b (0 < b < 2**46),
    quotients up to ~100 (scores): exact, since a non-integer quotient is at least 1/b
    from an integer, far more than the rounding error of one division; and ~2x faster
    than int64 //."""
    return np.floor(a / b)
