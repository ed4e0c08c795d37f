"""Per-template state: the static and local plugins' answers for every host, kept
current as pods are charged.

A template is what pods of one controller share: every SchedPod field the static and
local plugins read (requests, selectors, tolerations, ports, images), not the name nor
the labels. Building one is O(hosts) vector work; after that a charge changes one host,
so a template catches up by recomputing only the hosts charged since it last looked,
in plain Python (for one host NumPy's call overhead costs more than the arithmetic).

Invariant used by the global plugins: during one run a template's feasible set only
shrinks (charges consume resources and ports; static answers never change).
"""

from __future__ import annotations

import numpy as np

from .plugin import BIG, U16

F64 = np.float64
BULK = 24  # refresh up to this many charged hosts one by one; more: vectorised


class Template:
    __slots__ = ("pod", "ix", "lfilters", "rows", "static", "static_l", "codes", "codes_l", "ok", "ok_l",
                 "pen", "masked", "L", "static_base", "static_base_l", "n_ok", "seen", "dok", "hists")

    def __init__(self, pod, ix, static_codes: np.ndarray, lfilters, lscorers, all_idx: np.ndarray):
        self.pod, self.ix = pod, ix
        n = ix.n
        self.lfilters = [p for p in lfilters if p.applies(pod)]
        # rows of L: (scorer, weight, row, refreshed on charge?)
        self.rows = [(p, w, i, not p.static) for i, (p, w) in enumerate((p, w) for p, w in lscorers if p.applies(pod))]
        self.L = np.zeros((len(self.rows), n), dtype=F64)
        self.static_base = np.zeros(n, dtype=F64)
        for p, w, row, refreshed in self.rows:
            if not refreshed:
                self.L[row] = p.scores(pod, ix, all_idx)
                self.static_base += self.L[row] * w
        self.static_base_l = self.static_base.tolist()
        self.static, self.static_l = static_codes, static_codes.tolist()
        self.codes = static_codes
        self.ok = np.zeros(n, dtype=bool)
        self.pen = np.zeros(n, dtype=F64)
        self.masked = np.zeros(n, dtype=F64)
        self.dok: dict = {}
        self.hists: dict = {}
        self.update(all_idx, everything=True)

    # ------------------------------------------------------------ catching up

    def refresh(self) -> None:
        log = self.ix.log
        dirty = log[self.seen:]
        if len(dirty) <= BULK:
            self.seen = len(log)
            for h in set(dirty):
                self.update_one(h)
        elif len(dirty) < self.ix.n:
            self.update(np.unique(np.array(dirty)))
        else:
            self.update(np.arange(self.ix.n), everything=True)

    def update(self, idx: np.ndarray, everything: bool = False) -> None:
        """Recompute the local plugins on hosts idx, vectorised."""
        ix, pod = self.ix, self.pod
        ix.sync()
        codes = self.static if everything else self.static[idx]
        for p in self.lfilters:
            codes = np.where(codes != 0, codes, p.codes(pod, ix, idx))
        if everything:
            self.codes = codes
        elif not np.array_equal(codes, self.codes[idx]):
            self.codes = self.codes.copy()  # placements keep the old array: copy on write
            self.codes[idx] = codes
        base = self.static_base[idx]
        for p, w, row, refreshed in self.rows:
            if refreshed:
                s = p.scores(pod, ix, idx)
                self.L[row, idx] = s
                base = base + s * w
        ok = codes == 0
        pen = np.where(ok, 0.0, -BIG)
        self.ok[idx], self.pen[idx], self.masked[idx] = ok, pen, base + pen
        self.codes_l, self.ok_l = self.codes.tolist(), self.ok.tolist()
        self.n_ok = int(np.count_nonzero(self.ok))
        for key, (topo, _) in list(self.dok.items()):
            self.dok[key] = (topo, self._domain_ok(topo))
        self.seen = len(ix.log)

    def update_one(self, h: int) -> None:
        """The same for one host, in plain Python."""
        ix, pod = self.ix, self.pod
        code = self.static_l[h]
        if not code:
            for p in self.lfilters:
                code = p.code_one(pod, ix, h)
                if code:
                    break
        if code != self.codes_l[h]:
            self.codes = self.codes.copy()
            self.codes[h] = self.codes_l[h] = code
        base = self.static_base_l[h]
        L = self.L
        for p, w, row, refreshed in self.rows:
            if refreshed:
                s = p.score_one(pod, ix, h)
                L[row, h] = s
                base += s * w
        ok = not code
        if ok != self.ok_l[h]:
            self.ok[h] = self.ok_l[h] = ok
            self.pen[h] = 0.0 if ok else -BIG
            self.n_ok += 1 if ok else -1
            for topo, counts in self.dok.values():
                counts[topo.dom_l[h]] += 1 if ok else -1
        self.masked[h] = base if ok else base - BIG

    # ------------------------------------------------------------ for global plugins

    def domain_ok(self, topo) -> list[int]:
        """Feasible hosts per domain of topo (D+1 slots, the last: hosts without the
        key), kept up to date."""
        entry = self.dok.get(topo.key)
        if entry is None:
            entry = self.dok[topo.key] = (topo, self._domain_ok(topo))
        return entry[1]

    def _domain_ok(self, topo) -> list[int]:
        return np.bincount(topo.dom, weights=self.ok, minlength=topo.D + 1).astype(np.int64).tolist()

    def count_hist(self, values: np.ndarray) -> dict:
        """{value: feasible hosts with it} for a per-host integer array that changes only
        on charged hosts, updated from the hosts charged since the last call."""
        n, log = self.ix.n, self.ix.log
        entry = self.hists.get(id(values))
        if entry is not None and len(log) - entry[3] > BULK:
            entry = None
        if entry is None:
            distinct, freq = np.unique(values[:n][self.ok], return_counts=True)
            hist = dict(zip(distinct.tolist(), freq.tolist()))
            self.hists[id(values)] = [values, values[:n].tolist(), self.ok.tolist(), len(log), hist]
            return hist
        _, snap, okl, seen, hist = entry
        if seen != len(log):
            ok_now = self.ok_l
            for h in set(log[seen:]):
                old_ok, old_v = okl[h], snap[h]
                new_ok, new_v = ok_now[h], int(values[h])
                if old_ok:
                    left = hist[old_v] - 1
                    if left:
                        hist[old_v] = left
                    else:
                        del hist[old_v]
                if new_ok:
                    hist[new_v] = hist.get(new_v, 0) + 1
                okl[h], snap[h] = new_ok, new_v
            entry[3] = len(log)
        return hist


def static_codes(pod, ix, sfilters) -> np.ndarray:
    """The first static filter's reason per host (memoised per filter and spec)."""
    codes = None
    for p in sfilters:
        if not p.applies(pod):
            continue
        memo = ("static", p.name, p.key(pod))
        c = ix.cache.get(memo)
        if c is None:
            c = ix.cache[memo] = p.codes(pod, ix)
        codes = c if codes is None else np.where(codes != 0, codes, c)
    return np.zeros(ix.n, dtype=U16) if codes is None else codes
