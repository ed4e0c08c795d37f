"""Filter plugins: which hosts a pod cannot go to, and why (kube-scheduler's texts,
"node(s)" read "host(s)"). Each returns per-host reason codes; 0 passes.

Also the static host masks other plugins share (node affinity, taints), memoised in
Index.cache for the run.
"""

from __future__ import annotations

import numpy as np

from .index import conjunct
from .plugin import U16, GlobalFilter, LocalFilter, StaticFilter
from .types import (
    UNSCHEDULABLE_TAINT,
    NodeSelectorTerm,
    Requirement,
    parse_int64,
    tolerated,
)

NOT_READY = "host(s) were not ready"
UNSCHEDULABLE = "host(s) were unschedulable"
NODE_NAME = "host(s) didn't match the requested host name"
NODE_AFFINITY = "host(s) didn't match Pod's node affinity/selector"
NODE_PORTS = "host(s) didn't have free ports for the requested pod ports"
TOO_MANY_PODS, NO_CPU, NO_MEMORY = "Too many pods", "Insufficient cpu", "Insufficient memory"
SPREAD = "host(s) didn't match pod topology spread constraints"
SPREAD_LABEL = "host(s) didn't match pod topology spread constraints (missing required label)"
AFFINITY = "host(s) didn't match pod affinity rules"
ANTI_AFFINITY = "host(s) didn't match pod anti-affinity rules"
EXISTING_ANTI = "host(s) didn't satisfy existing pods anti-affinity rules"
SMALL = 64  # up to this many topology domains, per-domain work is done in plain Python
FIT_TABLE = ("fit-table",)


def untolerated(taint) -> str:
    value = f"={taint.value}" if taint.value else ""
    return f"host(s) had untolerated taint {{{taint.key}{value}: {taint.effect}}}"


def _memo(ix, key, build):
    value = ix.cache.get(key)
    if value is None:
        value = ix.cache[key] = build()
    return value


# ---------------------------------------------------------------- shared static masks


def requirement_mask(req: Requirement, ix) -> np.ndarray:
    def build():
        if req.operator in ("Gt", "Lt"):
            numbers, parsed = _label_numbers(req.key, ix)
            bound = int(req.values[0])
            return parsed & ((numbers > bound) if req.operator == "Gt" else (numbers < bound))
        topo = ix.topo(req.key)
        if req.operator in ("Exists", "DoesNotExist"):
            return topo.has if req.operator == "Exists" else ~topo.has
        ids = [i for i, v in enumerate(topo.values) if v in req.values]
        found = np.isin(topo.dom, ids) if ids else np.zeros(ix.n, dtype=bool)
        return found if req.operator == "In" else ~found
    return _memo(ix, ("req", req), build)


def _label_numbers(key: str, ix) -> tuple[np.ndarray, np.ndarray]:
    """Label `key` of every host as an integer (Kubernetes' ParseInt, base 10, int64),
    and whether it is one."""
    def build():
        numbers = [None if v is None else parse_int64(v) for v in ix.label_values(key)]
        parsed = np.array([n is not None for n in numbers], dtype=bool)
        return np.array([0 if n is None else n for n in numbers], dtype=np.int64), parsed
    return _memo(ix, ("numbers", key), build)


def term_mask(term: NodeSelectorTerm, ix) -> np.ndarray:
    def build():
        if not term.match_expressions and not term.match_fields:
            return np.zeros(ix.n, dtype=bool)
        mask = np.ones(ix.n, dtype=bool)
        for req in term.match_expressions:
            mask &= requirement_mask(req, ix)
        for req in term.match_fields:  # metadata.name In/NotIn
            named = np.zeros(ix.n, dtype=bool)
            named[[ix.pos[v] for v in req.values if v in ix.pos]] = True
            mask &= named if req.operator == "In" else ~named
        return mask
    return _memo(ix, ("term", term), build)


def node_affinity_mask(pod, ix) -> np.ndarray:
    """Hosts matching the pod's nodeSelector and required node affinity."""
    def build():
        mask = np.ones(ix.n, dtype=bool)
        for k, v in pod.node_selector:
            mask &= requirement_mask(Requirement(k, "In", (v,)), ix)
        if pod.required_node_affinity is not None:
            anyterm = np.zeros(ix.n, dtype=bool)
            for term in pod.required_node_affinity:
                anyterm |= term_mask(term, ix)
            mask &= anyterm
        return mask
    return _memo(ix, ("affinity", pod.node_selector, pod.required_node_affinity), build)


def taint_codes(tolerations, ix) -> np.ndarray:
    """Per host: the code of its first NoSchedule/NoExecute taint not tolerated, or 0."""
    def build():
        table = np.zeros(len(ix.taint_sets), dtype=U16)
        for g, taints in enumerate(ix.taint_sets):
            for t in taints:
                if t.effect in ("NoSchedule", "NoExecute") and not tolerated(t, tolerations):
                    table[g] = ix.reason(TaintToleration.name, untolerated(t))
                    break
        return table[ix.taint_group]
    return _memo(ix, ("taints", tolerations), build)


# ---------------------------------------------------------------- static filters


class HostReady(StaticFilter):
    name = "HostReady"

    def codes(self, pod, ix):
        return np.where(ix.ready, 0, ix.reason(self.name, NOT_READY)).astype(U16)


class NodeUnschedulable(StaticFilter):
    """A cordoned host takes only pods tolerating node.kubernetes.io/unschedulable."""

    name = "NodeUnschedulable"
    fields = ("tolerations",)

    def applies(self, pod):
        return not tolerated(UNSCHEDULABLE_TAINT, pod.tolerations)

    def codes(self, pod, ix):
        return np.where(ix.cordoned, ix.reason(self.name, UNSCHEDULABLE), 0).astype(U16)


class NodeName(StaticFilter):
    name = "NodeName"
    fields = ("node_name",)

    def applies(self, pod):
        return pod.node_name is not None

    def codes(self, pod, ix):
        codes = np.full(ix.n, ix.reason(self.name, NODE_NAME), dtype=U16)
        if pod.node_name in ix.pos:
            codes[ix.pos[pod.node_name]] = 0
        return codes


class TaintToleration(StaticFilter):
    name = "TaintToleration"
    fields = ("tolerations",)

    def codes(self, pod, ix):
        return taint_codes(pod.tolerations, ix)


class NodeAffinity(StaticFilter):
    name = "NodeAffinity"
    fields = ("node_selector", "required_node_affinity")

    def applies(self, pod):
        return bool(pod.node_selector) or pod.required_node_affinity is not None

    def codes(self, pod, ix):
        return np.where(node_affinity_mask(pod, ix), 0, ix.reason(self.name, NODE_AFFINITY)).astype(U16)


# ---------------------------------------------------------------- local filters


class NodePorts(LocalFilter):
    name = "NodePorts"
    fields = ("host_ports",)

    def applies(self, pod):
        return bool(pod.host_ports)

    def codes(self, pod, ix, idx):
        if isinstance(idx, slice):
            idx = np.arange(ix.n)[idx]
        bad = np.zeros(len(idx), dtype=bool)
        for port in pod.host_ports:
            used = ix.port_hosts.get(port)
            if used:
                bad |= np.isin(idx, sorted(used))
        return np.where(bad, ix.reason(self.name, NODE_PORTS), 0).astype(U16)

    def code_one(self, pod, ix, h):
        used = ix.ports.get(h)
        return ix.reason(self.name, NODE_PORTS) if used and any(p in used for p in pod.host_ports) else 0


class NodeResourcesFit(LocalFilter):
    """Requests against allocatable minus what is bound; a pod always takes one pod slot,
    and a request of 0 is never refused (as in Kubernetes, even on an overcommitted host)."""

    name = "NodeResourcesFit"
    fields = ("cpu_m", "memory")

    def _table(self, ix) -> list[int]:
        """Reason code per combination of (too many pods, cpu, memory) bits."""
        table = ix.cache.get(FIT_TABLE)
        if table is None:
            table = [0]
            for bits in range(1, 8):
                texts = [t for bit, t in ((1, TOO_MANY_PODS), (2, NO_CPU), (4, NO_MEMORY)) if bits & bit]
                table.append(ix.reason(self.name, *texts))
            ix.cache[FIT_TABLE] = table
        return table

    def codes(self, pod, ix, idx):
        full = ix.free_pods[idx] < 1
        cpu = ix.free_cpu[idx] < pod.cpu_m if pod.cpu_m else None
        mem = ix.free_mem[idx] < pod.memory if pod.memory else None
        bad = full.copy()
        for b in (cpu, mem):
            if b is not None:
                bad |= b
        if not bad.any():
            return np.zeros(len(full), dtype=U16)
        bits = full.astype(np.uint8)
        for b, bit in ((cpu, 2), (mem, 4)):
            if b is not None:
                bits += b.astype(np.uint8) * np.uint8(bit)
        return np.array(self._table(ix), dtype=U16)[bits]

    def code_one(self, pod, ix, h):
        bits = (ix.free_pods_l[h] < 1) + 2 * (pod.cpu_m > 0 and ix.free_cpu_l[h] < pod.cpu_m) \
            + 4 * (pod.memory > 0 and ix.free_mem_l[h] < pod.memory)
        return self._table(ix)[bits] if bits else 0


# ---------------------------------------------------------------- global filters


def spread_eligible(pod, c, keys: tuple[str, ...], ix):
    """Hosts whose pods count for constraint c: they carry every key of the pod's
    constraints of that kind and pass the node inclusion policies (Kubernetes:
    nodeAffinityPolicy Honor, nodeTaintsPolicy Ignore by default)."""
    key = ("spread-elig", keys,
           (pod.node_selector, pod.required_node_affinity) if c.node_affinity_policy == "Honor" else None,
           pod.tolerations if c.node_taints_policy == "Honor" else None)

    def build():
        mask = np.ones(ix.n, dtype=bool)
        for k in keys:
            mask &= ix.topo(k).has
        if c.node_affinity_policy == "Honor":
            mask &= node_affinity_mask(pod, ix)
        if c.node_taints_policy == "Honor":
            mask &= taint_codes(pod.tolerations, ix) == 0
        return mask
    return key, _memo(ix, key, build)


def domains_present(topo, elig_key, elig, ix) -> np.ndarray:
    """Which domains of topo have an eligible host (D+1 slots, the last False)."""
    def build():
        present = np.bincount(topo.dom, weights=elig, minlength=topo.D + 1) > 0
        present[topo.D] = False
        return present
    return _memo(ix, ("present", topo.key, elig_key), build)


class PodTopologySpread(GlobalFilter):
    """whenUnsatisfiable DoNotSchedule: matching pods in the host's domain, plus this pod
    if it matches, minus the fewest in any eligible domain, must not exceed maxSkew."""

    name = "PodTopologySpread"

    def prepare(self, pod, ix):
        cons = [c for c in pod.topology_spread if c.when_unsatisfiable == "DoNotSchedule"]
        if not cons:
            return None
        keys = tuple(sorted({c.topology_key for c in cons}))
        state = []
        for c in cons:
            topo = ix.topo(c.topology_key)
            elig_key, elig = spread_eligible(pod, c, keys, ix)
            counts = ix.counts(((frozenset((pod.namespace,)), c.label_selector),), topo.key, elig_key, elig)
            present = domains_present(topo, elig_key, elig, ix)
            n_domains = int(np.count_nonzero(present))
            floor_to_zero = n_domains == 0 or (c.min_domains is not None and n_domains < c.min_domains)
            self_match = c.label_selector is not None and c.label_selector.matches(pod.label_map)
            state.append((topo, counts, present.tolist() if topo.D <= SMALL else np.where(present, 0, 1 << 40),
                          floor_to_zero, c.max_skew - self_match,
                          ix.reason(self.name, SPREAD), ix.reason(self.name, SPREAD_LABEL)))
        return state

    def codes(self, state, ctx):
        out = None
        for topo, counts, present, floor_to_zero, limit, skew_code, label_code in state:
            if topo.D <= SMALL:  # few domains (zones): plain Python beats NumPy's call cost
                cl = counts.tolist()
                low = 0 if floor_to_zero else min(c for c, p in zip(cl, present) if p)
                bad = [c > limit + low for c in cl]
                if topo.all_has and not any(bad):
                    continue
                table = np.array([skew_code if b else 0 for b in bad], dtype=U16)
            else:  # many domains (hostname): `present` is a penalty keeping absent ones out of the min
                low = 0 if floor_to_zero else int((counts + present).min())
                bad = counts > limit + low
                if topo.all_has and not bad.any():
                    continue
                table = np.where(bad, U16(skew_code), U16(0))
            table[topo.D] = label_code
            codes = table[: topo.D] if topo.identity else table[topo.dom]
            out = codes if out is None else np.where(out != 0, out, codes)
        return out


class InterPodAffinity(GlobalFilter):
    """Required pod affinity (all terms, each in the host's domain), the pod's own
    required anti-affinity, and bound pods' required anti-affinity against this pod."""

    name = "InterPodAffinity"
    carried = True

    def prepare(self, pod, ix):
        existing = ix.carried("anti", pod)
        if not (pod.pod_affinity or pod.pod_anti_affinity or existing):
            return None
        ns = pod.namespace
        affinity = None
        if pod.pod_affinity:
            conjs = tuple(conjunct(t, ns) for t in pod.pod_affinity)
            terms = [(ix.topo(t.topology_key), ix.counts(conjs, t.topology_key)) for t in pod.pod_affinity]
            has_all = np.ones(ix.n, dtype=bool)
            for topo, _ in terms:
                has_all &= topo.has
            affinity = (terms, ix.query(conjs).matches(ns, pod.label_map), has_all, ix.reason(self.name, AFFINITY))
        anti = [(ix.topo(t.topology_key), ix.counts((conjunct(t, ns),), t.topology_key), ix.reason(self.name, ANTI_AFFINITY))
                for t in pod.pod_anti_affinity]
        anti += [(c.topo, c.counts, ix.reason(self.name, EXISTING_ANTI)) for c in existing]
        return affinity, anti

    def codes(self, state, ctx):
        affinity, anti = state
        out = None
        if affinity is not None:
            terms, self_match, has_all, code = affinity
            ok = None
            total = 0
            for topo, counts in terms:
                here = (counts > 0)[topo.dom]
                ok = here if ok is None else ok & here
                total += int(counts.sum())
            if total == 0 and self_match:
                ok = has_all  # the first pod of a group that has affinity to itself
            out = np.where(ok, 0, code).astype(U16)
        for topo, counts, code in anti:
            bad = counts[: topo.D] > 0 if topo.identity else counts > 0
            if not bad.any():
                continue
            codes = np.where(bad, U16(code), U16(0))
            if not topo.identity:
                codes = codes[topo.dom]
            out = codes if out is None else np.where(out != 0, out, codes)
        return out
