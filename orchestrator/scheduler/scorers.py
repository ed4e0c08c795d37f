"""Score plugins: each gives every feasible host 0..100, following kube-scheduler's
formulas (integer arithmetic where Kubernetes uses it, so scores match its own).

Local scorers compute exact int64 in their vector form and Python ints in their
one-host form; global ones work in float64 holding integers (see plugin.floordiv).
"""

from __future__ import annotations

import numpy as np

from .filters import term_mask
from .plugin import GlobalScorer, LocalScorer, Point, floordiv
from .types import tolerated

F64 = np.float64


# ---------------------------------------------------------------- resources (local)


def _alloc_vec(cap, req, weight: int, most: bool):
    """Kubernetes least/mostRequestedScore for one resource, and the weight it counts
    with (a resource the host has none of is left out of the average), in int64."""
    safe = np.maximum(cap, 1)
    top = np.minimum(req, cap) * 100 if most else np.maximum(cap - req, 0) * 100
    present = cap > 0
    return top // safe * (present * weight), present * weight


def _resource_arrays(ix) -> dict:
    """Per-host constants of the allocation scorers, once per run."""
    arrays = ix.cache.get(("resource-arrays",))
    if arrays is None:
        cfg = ix.config
        wc = (ix.cap_cpu > 0) * float(cfg.cpu_weight)
        wm = (ix.cap_mem > 0) * float(cfg.memory_weight)
        arrays = ix.cache[("resource-arrays",)] = {
            "safe_cpu": np.maximum(ix.cap_cpu, 1), "safe_mem": np.maximum(ix.cap_mem, 1),
            "w_cpu": wc, "w_mem": wm, "den": np.maximum(wc + wm, 1.0),
            "half_if_both": ((ix.cap_cpu > 0) & (ix.cap_mem > 0)) * 0.5}
    return arrays


class _Allocated(LocalScorer):
    fields = ("cpu_m", "memory", "nonzero_cpu_m", "nonzero_memory")
    most = False

    def scores(self, pod, ix, idx):
        if not ix.float_ok:  # hosts past 64 TiB: exact integer division, slower
            cfg = ix.config
            sc, wc = _alloc_vec(ix.cap_cpu[idx], ix.nz_cpu[idx] + pod.score_cpu_m, cfg.cpu_weight, self.most)
            sm, wm = _alloc_vec(ix.cap_mem[idx], ix.nz_mem[idx] + pod.score_memory, cfg.memory_weight, self.most)
            return ((sc + sm) // np.maximum(wc + wm, 1)).astype(F64)
        # floor(a / b) in float64 equals integer division here (Index.float_ok)
        r = _resource_arrays(ix)
        total = None
        for cap, used, req, safe, w in ((ix.cap_cpu, ix.nz_cpu, pod.score_cpu_m, r["safe_cpu"], r["w_cpu"]),
                                        (ix.cap_mem, ix.nz_mem, pod.score_memory, r["safe_mem"], r["w_mem"])):
            want = used[idx] + req
            if self.most:
                top = np.minimum(want, cap[idx], out=want)
            else:
                top = np.subtract(cap[idx], want, out=want)
                np.maximum(top, 0, out=top)
            top *= 100
            score = np.divide(top, safe[idx])
            np.floor(score, out=score)
            score *= w[idx]
            total = score if total is None else np.add(total, score, out=total)
        total /= r["den"][idx]
        return np.floor(total, out=total)

    def score_one(self, pod, ix, h):
        num = den = 0
        cap, req = ix.cap_cpu_l[h], ix.nz_cpu_l[h] + pod.score_cpu_m
        if cap > 0:
            w = ix.config.cpu_weight
            num += w * (min(req, cap) * 100 // cap if self.most else max(cap - req, 0) * 100 // cap)
            den += w
        cap, req = ix.cap_mem_l[h], ix.nz_mem_l[h] + pod.score_memory
        if cap > 0:
            w = ix.config.memory_weight
            num += w * (min(req, cap) * 100 // cap if self.most else max(cap - req, 0) * 100 // cap)
            den += w
        return num // den if den else 0


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
        r = _resource_arrays(ix)
        fractions = []
        for cap, free, req, safe in ((ix.cap_cpu, ix.free_cpu, pod.cpu_m, r["safe_cpu"]),
                                     (ix.cap_mem, ix.free_mem, pod.memory, r["safe_mem"])):
            used = np.subtract(cap[idx], free[idx])
            used += req
            f = np.divide(used, safe[idx])
            fractions.append(np.minimum(f, 1.0, out=f))
        fc, fm = fractions
        std = np.subtract(fc, fm, out=fc)
        np.abs(std, out=std)
        std *= r["half_if_both"][idx]  # |fc - fm| / 2, or 0 without both resources
        score = np.subtract(1.0, std, out=std)
        score *= 100
        return np.trunc(score, out=score)  # Go's int64(): toward zero

    def score_one(self, pod, ix, h):
        capc, capm = ix.cap_cpu_l[h], ix.cap_mem_l[h]
        if capc <= 0 or capm <= 0:
            return 100
        fc = min((capc - ix.free_cpu_l[h] + pod.cpu_m) / capc, 1.0)
        fm = min((capm - ix.free_mem_l[h] + pod.memory) / capm, 1.0)
        return int((1 - abs(fc - fm) / 2) * 100)


class ImageLocality(LocalScorer):
    """Kubernetes' ImageLocality: per container, the size of its image times the share
    of all hosts that have it (so an image everywhere counts less than a rare one), if
    this host has it; the sum is clamped to 23 MB..1000 MB per container and scaled to
    0..100. Small images (busybox) score 0, as they do in Kubernetes: pulling them
    costs little, and they must not pull replicas together."""

    name = "ImageLocality"
    fields = ("images",)
    static = True
    MIN_BYTES = 23 * 1024 * 1024
    MAX_BYTES = 1000 * 1024 * 1024

    def applies(self, pod):
        return bool(pod.images)

    def scores(self, pod, ix, idx):
        images = pod.images
        scores = ix.cache.get(("images", images))
        if scores is None:
            total = np.zeros(ix.n, dtype=np.int64)
            for image in images:
                hosts = ix.image_hosts(image)
                if len(hosts):
                    total[hosts] += int(ix.image_sizes.get(image, 0) * (len(hosts) / ix.n))
            low, high = self.MIN_BYTES * len(images), self.MAX_BYTES * len(images)
            scores = ix.cache[("images", images)] = ((np.clip(total, low, high) - low) * 100 // (high - low)).astype(F64)
        return scores[idx]


# ---------------------------------------------------------------- normalised (global)


class _StaticRaw:
    """A static raw score (per host, fixed for the run) and its normalisation by the
    feasible maximum. The template's feasible set only shrinks during a run (charges
    consume), so while the host that held the maximum stays feasible the maximum and the
    normalised array still hold: no O(hosts) work for most pods. Otherwise the maximum
    is found by value, highest first: the first value one of whose hosts is feasible."""

    __slots__ = ("raw", "groups", "hmax", "scaled", "reverse")

    def __init__(self, raw, reverse: bool):
        self.raw, self.reverse = raw, reverse
        values = np.unique(raw)[::-1]
        self.groups = [(float(v), np.flatnonzero(raw == v)) for v in values]  # highest first
        self.hmax, self.scaled = -1, {}  # {maximum: normalised array}

    def _top(self, feasible) -> tuple[float, int]:
        """(the largest raw value on a feasible host, such a host); at least one is feasible."""
        for value, hosts in self.groups[:-1]:
            ok = feasible[hosts]
            if ok.any():
                return value, int(hosts[ok.argmax()])
        return self.groups[-1][0], -1

    def normalised(self, ctx):
        if not ctx.n_feasible:
            return 0
        h = self.hmax
        if h >= 0 and ctx.feasible[h]:
            top = float(self.raw[h])
        else:
            if h < 0 or not ctx.template.ok[h]:
                top, self.hmax = self._top(ctx.template.ok)
            if self.hmax < 0 or not ctx.feasible[self.hmax]:  # a global filter took it: this pod only
                top, _ = self._top(ctx.feasible)
        scores = self.scaled.get(top)
        if scores is None:
            scores = self.scaled[top] = self._scale(top)
        return scores

    def _scale(self, top: float):
        if top <= 0:
            return 100 if self.reverse else 0
        scaled = floordiv(self.raw * 100, top)
        return 100 - scaled if self.reverse else scaled


class NodeAffinityScore(GlobalScorer):
    """Sum of the weights of matching preferred terms, scaled so the best host has 100."""

    name = "NodeAffinity"
    fixed = True

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
    fixed = True

    def prepare(self, pod, ix):
        tolerations = tuple(t for t in pod.tolerations if t.effect in ("", "PreferNoSchedule"))
        table = np.array([sum(1 for t in taints if t.effect == "PreferNoSchedule" and not tolerated(t, tolerations))
                          for taints in ix.taint_sets], dtype=F64)
        return _StaticRaw(table[ix.taint_group], reverse=True) if table.any() else 100

    def scores(self, st, ctx):
        return st if isinstance(st, int) else st.normalised(ctx)


class CurrentHost(GlobalScorer):
    """podctl's own: 100 on the host the pod runs on now, so it stays unless it must move."""

    name = "CurrentHost"

    def prepare(self, pod, ix):
        return ix.pos.get(pod.current_host) if pod.current_host else None

    def scores(self, h, ctx):
        return Point(h, 100.0) if ctx.feasible[h] else None
