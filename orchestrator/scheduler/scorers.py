"""Score plugins: each gives every feasible host 0..100, following kube-scheduler's
formulas (integer arithmetic where Kubernetes uses it, so scores match its own).

Local scorers compute exact int64 in their vector form and Python ints in their
one-host form; global ones work in float64 holding integers (see plugin.floordiv).
"""

from __future__ import annotations

import math

import numpy as np

from .filters import SMALL, conjunct, spread_eligible, term_mask
from .plugin import BIG, Gathered, GlobalScorer, LocalScorer, Point, Tabled, floordiv
from .types import HOSTNAME_LABEL, tolerated

F64 = np.float64


# ---------------------------------------------------------------- resources (local)


def _alloc_vec(cap, req, weight: int, most: bool):
    """Kubernetes least/mostRequestedScore for one resource, and the weight it counts
    with (a resource the host has none of is left out of the average)."""
    safe = np.maximum(cap, 1)
    if most:
        score = np.minimum(req, cap) * 100 // safe
    else:
        score = np.maximum(cap - req, 0) * 100 // safe
    present = cap > 0
    return np.where(present, score, 0) * weight, present * weight


def _alloc_one(cap: int, req: int, weight: int, most: bool) -> tuple[int, int]:
    if cap <= 0:
        return 0, 0
    score = min(req, cap) * 100 // cap if most else max(cap - req, 0) * 100 // cap
    return score * weight, weight


class _Allocated(LocalScorer):
    fields = ("cpu_m", "memory", "nonzero_cpu_m", "nonzero_memory")
    most = False

    def scores(self, pod, ix, idx):
        cfg = ix.config
        sc, wc = _alloc_vec(ix.cap_cpu[idx], ix.nz_cpu[idx] + pod.score_cpu_m, cfg.cpu_weight, self.most)
        sm, wm = _alloc_vec(ix.cap_mem[idx], ix.nz_mem[idx] + pod.score_memory, cfg.memory_weight, self.most)
        den = wc + wm
        return np.where(den > 0, (sc + sm) // np.maximum(den, 1), 0).astype(F64)

    def score_one(self, pod, ix, h):
        cfg = ix.config
        sc, wc = _alloc_one(ix.cap_cpu_l[h], ix.nz_cpu_l[h] + pod.score_cpu_m, cfg.cpu_weight, self.most)
        sm, wm = _alloc_one(ix.cap_mem_l[h], ix.nz_mem_l[h] + pod.score_memory, cfg.memory_weight, self.most)
        return (sc + sm) // (wc + wm) if wc + wm else 0


class LeastAllocated(_Allocated):
    """(allocatable - requested) / allocatable, on non-zero requests: spreads load."""

    name = "NodeResourcesLeastAllocated"


class MostAllocated(_Allocated):
    """requested / allocatable (capped at 1): packs pods onto the fullest hosts."""

    name = "NodeResourcesMostAllocated"
    most = True


class BalancedAllocation(LocalScorer):
    """(1 - std dev of the cpu and memory fractions) * 100, on actual requests; a pod
    requesting nothing is skipped (Kubernetes: best-effort pods)."""

    name = "NodeResourcesBalancedAllocation"
    fields = ("cpu_m", "memory")

    def applies(self, pod):
        return bool(pod.cpu_m or pod.memory)

    def scores(self, pod, ix, idx):
        capc, capm = ix.cap_cpu[idx], ix.cap_mem[idx]
        fc = np.minimum((capc - ix.free_cpu[idx] + pod.cpu_m) / np.maximum(capc, 1), 1.0)
        fm = np.minimum((capm - ix.free_mem[idx] + pod.memory) / np.maximum(capm, 1), 1.0)
        std = np.where((capc > 0) & (capm > 0), np.abs(fc - fm) / 2, 0.0)
        return ((1 - std) * 100).astype(np.int64).astype(F64)

    def score_one(self, pod, ix, h):
        capc, capm = ix.cap_cpu_l[h], ix.cap_mem_l[h]
        if capc <= 0 or capm <= 0:
            return 100
        fc = min((capc - ix.free_cpu_l[h] + pod.cpu_m) / capc, 1.0)
        fm = min((capm - ix.free_mem_l[h] + pod.memory) / capm, 1.0)
        return int((1 - abs(fc - fm) / 2) * 100)


class ImageLocality(LocalScorer):
    """Simplified: the share of the pod's images the host already has, times 100."""

    name = "ImageLocality"
    fields = ("images",)
    static = True

    def applies(self, pod):
        return bool(pod.images)

    def scores(self, pod, ix, idx):
        present = np.zeros(ix.n, dtype=np.int64)
        images = tuple(dict.fromkeys(pod.images))
        for image in images:
            present[ix.image_hosts.get(image, [])] += 1
        return (present * 100 // len(images)).astype(F64)[idx]


# ---------------------------------------------------------------- normalised (global)


class _StaticRaw:
    """A static raw score (per host, fixed for the run) and its normalisation by the
    feasible maximum. The template's feasible set only shrinks during a run (charges
    consume), so while the host that held the maximum stays feasible, the maximum and
    the normalised array are still right: no O(hosts) work for most pods."""

    __slots__ = ("raw", "hmax", "top", "scores", "reverse")

    def __init__(self, raw, reverse: bool):
        self.raw, self.reverse = raw, reverse
        self.hmax, self.top, self.scores = -1, None, None

    def normalised(self, ctx):
        if not ctx.n_feasible:
            return 0
        h = self.hmax
        if h < 0 or not ctx.feasible[h]:
            h = int((self.raw + ctx.template.pen).argmax())  # over the template's feasible set
            if not ctx.feasible[h]:  # a global filter took it: this pod only
                return self._scale(float((self.raw + ctx.pen).max()))
            self.hmax = h
        top = float(self.raw[h])
        if top != self.top:
            self.top, self.scores = top, self._scale(top)
        return self.scores

    def _scale(self, top: float):
        if top <= 0:
            return 100 if self.reverse else 0
        scaled = floordiv(self.raw * 100, top)
        return 100 - scaled if self.reverse else scaled


class NodeAffinityScore(GlobalScorer):
    """Sum of the weights of matching preferred terms, scaled so the best host has 100."""

    name = "NodeAffinity"

    def prepare(self, pod, ix):
        terms = pod.preferred_node_affinity
        if not terms:
            return None
        raw = np.zeros(ix.n, dtype=F64)
        for t in terms:
            raw += term_mask(t.preference, ix) * float(t.weight)
        return _StaticRaw(raw, reverse=False)

    def scores(self, st, ctx):
        return st.normalised(ctx)


class TaintTolerationScore(GlobalScorer):
    """Fewer intolerable PreferNoSchedule taints is better: 100 - count * 100 / max."""

    name = "TaintToleration"

    def prepare(self, pod, ix):
        tolerations = tuple(t for t in pod.tolerations if t.effect in ("", "PreferNoSchedule"))
        table = np.array([sum(1 for t in taints if t.effect == "PreferNoSchedule" and not tolerated(t, tolerations))
                          for taints in ix.taint_sets], dtype=F64)
        return _StaticRaw(table[ix.taint_group], reverse=True) if table.any() else 100

    def scores(self, st, ctx):
        return st if isinstance(st, int) else st.normalised(ctx)


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
        topo, counts, extra, hostname = part
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
            if len(dirty) > 64:
                self.values[:] = self._all()
            else:
                for h in set(dirty):
                    self.values[h] = sum(w * int(c[h]) for w, c in self.terms)
        return self.values


class InterPodAffinityScore(GlobalScorer):
    """Preferred pod (anti-)affinity, both ways: +/- weight per matching pod in the
    host's domain for the pod's own terms, and for bound pods' preferred terms (and
    required affinity, at hardPodAffinityWeight) that match this pod; then scaled
    min..max over the feasible hosts to 0..100."""

    name = "InterPodAffinity"

    def prepare(self, pod, ix):
        parts = []
        ns = pod.namespace
        for w in pod.preferred_pod_affinity:
            parts.append((ix.topo(w.term.topology_key), w.weight, ix.counts((conjunct(w.term, ns),), w.term.topology_key)))
        for w in pod.preferred_pod_anti_affinity:
            parts.append((ix.topo(w.term.topology_key), -w.weight, ix.counts((conjunct(w.term, ns),), w.term.topology_key)))
        hard = ix.config.hard_pod_affinity_weight
        if hard:
            parts += [(c.topo, hard, c.counts) for c in ix.carried("affinity", pod)]
        parts += [(c.topo, c.weight, c.counts) for c in ix.carried("preferred", pod)]
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


class CurrentHost(GlobalScorer):
    """podctl's own: 100 on the host the pod runs on now, so it stays unless it must move."""

    name = "CurrentHost"

    def prepare(self, pod, ix):
        return True  # current_host is per pod, not per spec: looked up in scores()

    def scores(self, state, ctx):
        h = ctx.ix.pos.get(ctx.pod.current_host) if ctx.pod.current_host else None
        return Point(h, 100.0) if h is not None and ctx.feasible[h] else None
