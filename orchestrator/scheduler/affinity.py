"""Scores that count pods by topology domain: topology spread (ScheduleAnyway) and
preferred inter-pod (anti-)affinity, both ways, as kube-scheduler computes them.

Both work per domain where they can (a zone has many hosts and one count), and for a
hostname key keep the feasible hosts' counts as a histogram updated from the charge log,
so a pod costs O(domains + charged hosts) plus one gather over the hosts.
"""

from __future__ import annotations

import math

import numpy as np

from .filters import SMALL, conjunct, spread_eligible
from .plugin import BIG, Gathered, GlobalScorer, Tabled, floordiv
from .types import HOSTNAME_LABEL

F64 = np.float64
COMBO_BULK = 64  # _Combo: recompute host by host up to this many charges; more: all at once


class PodTopologySpreadScore(GlobalScorer):
    """whenUnsatisfiable ScheduleAnyway: fewer matching pods in the host's domains is
    better. Kubernetes' formula: per constraint, count * log(domains + 2) + maxSkew - 1,
    summed and rounded; then 100 * (max + min - score) / max over the feasible hosts
    that carry every key (the others score 0). `domains` counts those hosts' domains."""

    name = "PodTopologySpread"

    def prepare(self, pod, ix):
        cons = [c for c in pod.topology_spread if c.when_unsatisfiable == "ScheduleAnyway"]
        if not cons:
            return None
        keys = tuple(sorted({c.topology_key for c in cons}))
        has_all = np.ones(ix.n, dtype=bool)
        for k in keys:
            has_all &= ix.topo(k).has
        parts = []
        for c in cons:
            topo = ix.topo(c.topology_key)
            elig_key, elig = spread_eligible(pod, c, keys, ix)
            counts = ix.counts(((frozenset((pod.namespace,)), c.label_selector),), topo.key, elig_key, elig)
            parts.append((topo, counts, float(c.max_skew - 1), c.topology_key == HOSTNAME_LABEL))
        return parts, has_all, bool(has_all.all())

    def scores(self, state, ctx):
        parts, has_all, all_has = state
        if len(parts) == 1:
            topo = parts[0][0]
            fast = self._one_host_key(parts[0], ctx) if topo.identity else self._one_domain_key(parts[0], ctx)
            if fast is not None:
                return fast
        considered = ctx.feasible if all_has else ctx.feasible & has_all
        n_considered = ctx.n_feasible if all_has else int(np.count_nonzero(considered))
        if not n_considered:
            return 0
        raw = np.zeros(ctx.ix.n, dtype=F64)
        for topo, counts, extra, hostname in parts:
            size = n_considered if hostname else int(np.count_nonzero(topo.present(considered)[: topo.D]))
            per_domain = counts * math.log(size + 2) + extra
            raw += per_domain[: ctx.ix.n] if topo.identity else per_domain[topo.dom]
        raw = np.floor(raw + 0.5)  # Go's math.Round, for values >= 0
        pen = ctx.pen if all_has else np.where(considered, 0.0, -BIG)
        top = float((raw + pen).max())
        if top == 0:
            return has_all * 100.0
        low = float((raw - pen).min())
        return floordiv((top + low - raw) * 100, top) * has_all

    @staticmethod
    def _one_host_key(part, ctx):
        """One constraint on the hostname: the score is a function of the host's count,
        and the feasible hosts' counts are a histogram kept current: score the counts."""
        _, counts, extra, hostname = part
        hist = ctx.count_hist(counts)
        if hist is None or not hostname:
            return None
        if not hist:
            return 0
        w = math.log(ctx.n_feasible + 2)
        raw = {c: math.floor(c * w + extra + 0.5) for c in hist}
        top, low = max(raw.values()), min(raw.values())
        table = np.zeros(max(hist) + 1)  # by count, for the counts feasible hosts have
        table[list(raw)] = [100 if top == 0 else (top + low - r) * 100 // top for r in raw.values()]
        return Tabled(table, counts, ctx.ix.n, "clip")

    @staticmethod
    def _one_domain_key(part, ctx):
        """One constraint on a key like zone: every host of a domain scores the same, so
        score the domains (in Python: there are few) and gather."""
        topo, counts, extra, _ = part
        if topo.D > SMALL:
            return None
        present = ctx.domains(topo)
        present[topo.D] = False  # hosts without the key are ignored
        cl = counts.tolist()
        live = [cl[d] for d in range(topo.D) if present[d]]
        if not live:
            return 0
        w = math.log(len(live) + 2)
        top, low = math.floor(max(live) * w + extra + 0.5), math.floor(min(live) * w + extra + 0.5)
        scores = [100.0 if top == 0 else float((top + low - math.floor(c * w + extra + 0.5)) * 100 // top) for c in cl]
        scores[topo.D] = 0.0
        return Gathered(np.array(scores), topo)


class _Combo:
    """sum(weight * counts[h]) per host for a hostname key (one domain per host), with
    integer weights, kept current from the charge log: a charge changes one host."""

    __slots__ = ("terms", "values", "seen", "n")

    def __init__(self, terms, n: int, log: list):
        self.terms, self.n = terms, n
        self.values = self._all()
        self.seen = len(log)

    def _all(self):
        values = np.zeros(self.n, dtype=np.int64)
        for weight, counts in self.terms:
            values += counts[: self.n] * weight
        return values

    def sync(self, log: list) -> np.ndarray:
        if self.seen != len(log):
            dirty = log[self.seen:]
            self.seen = len(log)
            if len(dirty) > COMBO_BULK:
                self.values[:] = self._all()
            else:
                values = self.values
                for h in set(dirty):
                    values[h] = sum([w * int(c[h]) for w, c in self.terms])
        return self.values


class InterPodAffinityScore(GlobalScorer):
    """Preferred pod (anti-)affinity, both ways: +/- weight per matching pod in the
    host's domain for the pod's own terms, and for bound pods' preferred terms (and
    required affinity, at hardPodAffinityWeight) that match this pod; then scaled
    min..max over the feasible hosts to 0..100."""

    name = "InterPodAffinity"
    carried = True

    def prepare(self, pod, ix):
        hard = ix.config.hard_pod_affinity_weight
        back = ([(c.topo, hard, c.counts) for c in ix.carried("affinity", pod)] if hard else [])
        back += [(c.topo, c.weight, c.counts) for c in ix.carried("preferred", pod)]
        memo = ("interpod", pod.namespace, pod.preferred_pod_affinity, pod.preferred_pod_anti_affinity,
                tuple(id(counts) for _, _, counts in back))
        state = ix.cache.get(memo, False)
        if state is False:
            state = ix.cache[memo] = self._prepare(pod, ix, back)
        return state

    def _prepare(self, pod, ix, back):
        parts = []
        ns = pod.namespace
        for w in pod.preferred_pod_affinity:
            parts.append((ix.topo(w.term.topology_key), w.weight, ix.counts((conjunct(w.term, ns),), w.term.topology_key)))
        for w in pod.preferred_pod_anti_affinity:
            parts.append((ix.topo(w.term.topology_key), -w.weight, ix.counts((conjunct(w.term, ns),), w.term.topology_key)))
        parts += back
        if not parts:
            return None
        by_key: dict[str, tuple] = {}
        for topo, weight, counts in parts:
            by_key.setdefault(topo.key, (topo, []))[1].append((weight, counts))
        return [(topo, _Combo(terms, ix.n, ix.log) if topo.identity else terms) for topo, terms in by_key.values()]

    def scores(self, state, ctx):
        log = ctx.ix.log
        if len(state) == 1:
            topo, terms = state[0]
            if topo.identity:  # hostname: a histogram of the feasible hosts' values
                fast = self._one_host_key(terms.sync(log), ctx)
                if fast is not None:
                    return fast
            elif topo.D <= SMALL:  # one key like zone: every host of a domain scores the same
                values = [0] * (topo.D + 1)
                for w, counts in terms:
                    values = [v + c * w for v, c in zip(values, counts.tolist())]
                present = ctx.domains(topo)
                live = [v for v, p in zip(values, present) if p]
                top, low = max(live), min(live)
                if not top > low:
                    return 0
                return Gathered(np.array([math.floor(100.0 * ((v - low) / (top - low))) for v in values], dtype=F64), topo)
        raw = None
        for topo, terms in state:
            if topo.identity:
                host = terms.sync(log).astype(F64)
            else:
                host = sum(counts * float(w) for w, counts in terms)[topo.dom]
            raw = host if raw is None else raw + host
        top = float((raw + ctx.pen).max())
        low = float((raw - ctx.pen).min())
        if not top > low:
            return 0
        out = raw - low
        out /= top - low
        out *= 100.0
        return np.floor(out, out=out)

    @staticmethod
    def _one_host_key(values, ctx):
        hist = ctx.count_hist(values)
        if hist is None:
            return None
        if not hist:
            return 0
        low, top = min(hist), max(hist)
        if not top > low:
            return 0
        if top - low > 4 * ctx.ix.n + 64:
            return None
        size, spread = top - low + 1, top - low
        table = np.zeros(size)  # table[v % size] scores v, for the values feasible hosts have
        present = list(hist)
        table[[v % size for v in present]] = [math.floor(100.0 * ((v - low) / spread)) for v in present]
        return Tabled(table, values, ctx.ix.n, "wrap")
