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
ALL = slice(None)  # "every host" for the vector forms: a[ALL] is a view, not a copy
HIST_BULK = 256  # update a histogram host by host up to this many charges; more: rebuild


class Template:
    __slots__ = ("pod", "ix", "lfilters", "rows", "static", "codes", "ok", "masked", "static_base",
                 "L", "n_ok", "seen", "dok", "hists")

    def __init__(self, pod, ix, static_codes: np.ndarray, lfilters, lscorers):
        self.pod, self.ix = pod, ix
        self.lfilters = [p for p in lfilters if p.applies(pod)]
        # (scorer, weight, its scores if static, else its row of L: recomputed per charged host)
        self.rows, k = [], 0
        for p, w in lscorers:
            if p.applies(pod):
                fixed = p.scores(pod, ix, ALL) if p.static else None
                self.rows.append((p, w, fixed, None if fixed is not None else k))
                k += fixed is None
        self.L = np.zeros((k, ix.n), dtype=F64)
        self.static_base = np.zeros(ix.n, dtype=F64)
        for _, w, fixed, _ in self.rows:
            if fixed is not None:
                self.static_base += fixed * w
        self.static = self.codes = static_codes
        self.dok: dict = {}
        self.hists: dict = {}
        self.update(ALL, everything=True)

    # ------------------------------------------------------------ catching up

    def refresh(self) -> None:
        log = self.ix.log
        dirty = log[self.seen:]
        if len(dirty) <= BULK:
            self.seen = len(log)
            for h in set(dirty):
                self.update_one(h)
        elif len(dirty) < self.ix.n // 2:
            self.update(np.array(list(set(dirty))))
        else:
            self.update(ALL, everything=True)

    def update(self, idx, everything: bool = False) -> None:
        """Recompute the local plugins on hosts idx (an index array, or ALL), vectorised."""
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
        for p, w, fixed, row in self.rows:
            if fixed is None:
                s = p.scores(pod, ix, idx)
                self.L[row, idx] = s
                base = base + s * w
        ok = codes == 0
        masked = np.where(ok, base, base - BIG)
        if everything:
            self.ok, self.masked = ok, masked
            self.n_ok = int(np.count_nonzero(ok))
            for key, (topo, _) in list(self.dok.items()):
                self.dok[key] = (topo, self._domain_ok(topo))
        else:
            flipped = idx[ok != self.ok[idx]].tolist()
            self.ok[idx], self.masked[idx] = ok, masked
            for h in flipped:
                now = bool(self.ok[h])
                self.n_ok += 1 if now else -1
                for topo, counts in self.dok.values():
                    counts[topo.dom_l[h]] += 1 if now else -1
        self.seen = len(ix.log)

    def update_one(self, h: int) -> None:
        """The same for one host, in plain Python."""
        ix, pod = self.ix, self.pod
        code = self.static.item(h)
        if not code:
            for p in self.lfilters:
                code = p.code_one(pod, ix, h)
                if code:
                    break
        if code != self.codes.item(h):
            self.codes = self.codes.copy()
            self.codes[h] = code
        base = self.static_base.item(h)
        L = self.L
        for p, w, fixed, row in self.rows:
            if fixed is None:
                s = p.score_one(pod, ix, h)
                L[row, h] = s
                base += s * w
        ok = not code
        if ok != self.ok.item(h):
            self.ok[h] = ok
            self.n_ok += 1 if ok else -1
            for topo, counts in self.dok.values():
                counts[topo.dom_l[h]] += 1 if ok else -1
        self.masked[h] = base if ok else base - BIG

    def scores_at(self, h: int) -> list[int]:
        """Each local scorer's score on host h now, in self.rows order."""
        column = self.L[:, h].tolist()
        return [int(fixed[h]) if fixed is not None else int(column[row]) for _, _, fixed, row in self.rows]

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
        if entry is not None and len(log) - entry[3] > HIST_BULK:
            entry = None
        if entry is None:
            distinct, freq = np.unique(values[:n][self.ok], return_counts=True)
            hist = dict(zip(distinct.tolist(), freq.tolist()))
            self.hists[id(values)] = [values, values[:n].tolist(), self.ok.tolist(), len(log), hist]
            return hist
        _, snap, okl, seen, hist = entry
        if seen != len(log):
            ok_now = self.ok
            for h in set(log[seen:]):
                old_ok, old_v = okl[h], snap[h]
                new_ok, new_v = bool(ok_now[h]), int(values[h])
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
    memos = tuple(("static", p.name, p.key(pod)) for p in sfilters if p.applies(pod))
    codes = ix.cache.get(memos)
    if codes is not None:
        return codes
    for p, memo in zip([p for p in sfilters if p.applies(pod)], memos):
        c = ix.cache.get(memo)
        if c is None:
            c = ix.cache[memo] = p.codes(pod, ix)
        codes = c if codes is None else np.where(codes != 0, codes, c)
    codes = ix.cache[memos] = np.zeros(ix.n, dtype=U16) if codes is None else codes
    return codes
