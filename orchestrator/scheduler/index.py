"""Per-run indexes over a frozen snapshot, updated in place as each pod is charged.

Built once per `schedule()` call (O(hosts + bound pods)); never shared between calls, so
the functions of the scheduler stay pure. Hosts are sorted by name, so host i is the
i-th name and the first maximum of any score array is the stable tie-break.

- per-host resources as NumPy arrays (for vector filters/scores) mirrored in Python
  lists (for the one-host refresh after a charge, where NumPy's call cost dominates);
- per label key, a Topo: the domain id of every host (D = "no such label");
- per label-selector query, match counts per topology domain, restricted to a set of
  eligible hosts; built lazily from pods grouped by (namespace, labels), then kept up
  to date by charge(): charging a pod touches only the queries it matches;
- the affinity terms carried by bound pods (for the symmetric rules), counted likewise;
- host ports in use, and a log of charged hosts (templates refresh only those).
"""

from __future__ import annotations

from collections.abc import Hashable
from operator import attrgetter

import numpy as np

from .types import LabelSelector, PodAffinityTerm, SchedPod, Snapshot

Conjunct = tuple[frozenset | None, LabelSelector | None]  # (namespaces or all, selector)


def conjunct(term: PodAffinityTerm, owner_namespace: str) -> Conjunct:
    if term.all_namespaces:
        return (None, term.label_selector)
    return (frozenset(term.namespaces or (owner_namespace,)), term.label_selector)


def conjunct_matches(c: Conjunct, namespace: str, labels: dict) -> bool:
    namespaces, selector = c
    return (selector is not None and (namespaces is None or namespace in namespaces)
            and selector.matches(labels))


class Topo:
    """Domains of one label key: dom[h] in 0..D-1, or D where host h lacks the label."""

    __slots__ = ("key", "values", "D", "dom", "dom_l", "has", "all_has", "identity", "_order")

    def __init__(self, key: str, values: list[str | None]):
        distinct = dict.fromkeys(values)  # in order of first appearance
        distinct.pop(None, None)
        self.key, self.values, self.D = key, list(distinct), len(distinct)
        if self.D == len(values):  # one host per value (hostname): domain i is host i
            self.dom_l = list(range(self.D))
            self.dom = np.arange(self.D, dtype=np.int64)
        else:
            ids = {v: i for i, v in enumerate(distinct)}
            self.dom_l = [ids.get(v, self.D) for v in values]  # None: D
            self.dom = np.array(self.dom_l, dtype=np.int64)
        self.has = self.dom < self.D
        self.all_has = bool(self.has.all())
        self.identity = len(values) == self.D  # one host per domain, in host order (hostname)
        self._order = None

    def present(self, mask: np.ndarray) -> np.ndarray:
        """Per domain (D+1 slots): does any host of `mask` lie in it? O(hosts)."""
        if self.identity:
            return np.append(mask, False)
        if self._order is None:
            order = np.argsort(self.dom, kind="stable")
            starts = np.searchsorted(self.dom[order], np.arange(self.D + (0 if self.all_has else 1)))
            self._order = (order, starts)
        order, starts = self._order
        if len(order) == 0:
            return np.zeros(self.D + 1, dtype=bool)
        out = np.logical_or.reduceat(mask[order], starts)
        return out if not self.all_has else np.append(out, False)


class Counts:
    """Pods matching a query per domain of one key, counted on eligible hosts only.
    counts has D+1 slots; the last ("no label") stays 0 so counts[topo.dom] is safe."""

    __slots__ = ("dom_l", "elig_l", "counts", "D")

    def __init__(self, topo: Topo, elig: np.ndarray | None, host_counts: np.ndarray):
        self.dom_l, self.D = topo.dom_l, topo.D
        self.elig_l = None if elig is None else elig.tolist()
        weights = host_counts if elig is None else host_counts * elig
        self.counts = np.bincount(topo.dom, weights=weights, minlength=topo.D + 1).astype(np.int64)
        self.counts[topo.D] = 0


class Query:
    """Pods matching every conjunct (namespaces + selector), counted per (key, eligible
    hosts) on demand."""

    __slots__ = ("conjuncts", "counters")

    def __init__(self, conjuncts: tuple[Conjunct, ...]):
        self.conjuncts = conjuncts
        self.counters: dict[Hashable, Counts] = {}

    def matches(self, namespace: str, labels: dict) -> bool:
        return all(conjunct_matches(c, namespace, labels) for c in self.conjuncts)


class Plan:
    """What charging a pod of one spec touches, resolved once per spec: its (namespace,
    labels) group, the queries that match it, the affinity terms it carries."""

    __slots__ = ("sig", "group", "seen", "matched", "carried")

    def __init__(self, sig: tuple, group: list):
        self.sig, self.group, self.seen, self.matched, self.carried = sig, group, 0, [], None


class Carried:
    """One distinct affinity term carried by bound pods, counted per domain of its key."""

    __slots__ = ("conjunct", "weight", "topo", "counts")

    def __init__(self, conj: Conjunct, weight: int, topo: Topo):
        self.conjunct, self.weight, self.topo = conj, weight, topo
        self.counts = np.zeros(topo.D + 1, dtype=np.int64)


CARRIED_KINDS = ("anti", "affinity", "preferred")


class Index:
    def __init__(self, snapshot: Snapshot, config, skip_keys: frozenset = frozenset()):
        hosts = sorted(snapshot.hosts, key=attrgetter("name"))
        self.hosts = hosts
        self.names = [h.name for h in hosts]
        self.n = n = len(hosts)
        self.pos = {name: i for i, name in enumerate(self.names)}
        if len(self.pos) != n:
            dup = sorted({x for x in self.names if self.names.count(x) > 1})
            raise ValueError(f"duplicate host names in the snapshot: {', '.join(dup)}")
        self.config = config
        self.labels = [h.label_map for h in hosts]  # with the hostname label
        i64 = np.int64
        self.cap_cpu = np.array([h.cpu_m for h in hosts], dtype=i64)
        self.cap_mem = np.array([h.memory for h in hosts], dtype=i64)
        self.cap_pods = np.array([h.pods for h in hosts], dtype=i64)
        # floor(a / b) in float64 equals integer division while a < 2**53 and b < 2**46
        # (a non-integer quotient is >= 1/b from an integer, far above the rounding error)
        self.float_ok = max(self.cap_cpu.max(initial=0), self.cap_mem.max(initial=0)) < 2**46
        self.ready = np.array([h.ready for h in hosts], dtype=bool)
        self.cordoned = np.array([h.cordoned for h in hosts], dtype=bool)
        # mutable per-host state: arrays for vector code, lists for one-host code
        self.free_cpu, self.free_mem, self.free_pods = self.cap_cpu.copy(), self.cap_mem.copy(), self.cap_pods.copy()
        self.nz_cpu, self.nz_mem = np.zeros(n, dtype=i64), np.zeros(n, dtype=i64)  # non-zero requested
        self.cap_cpu_l, self.cap_mem_l = self.cap_cpu.tolist(), self.cap_mem.tolist()
        self.free_cpu_l, self.free_mem_l, self.free_pods_l = (
            self.free_cpu.tolist(), self.free_mem.tolist(), self.free_pods.tolist())
        self.nz_cpu_l, self.nz_mem_l = [0] * n, [0] * n
        self.ports: dict[int, set] = {}  # host -> (port, protocol) in use
        self.port_hosts: dict[tuple[int, str], set[int]] = {}
        # taints: hosts grouped by their taint tuple
        groups: dict[tuple, int] = {(): 0}
        self.taint_group = np.array([groups.setdefault(h.taints, len(groups)) if h.taints else 0
                                     for h in hosts], dtype=i64)
        self.taint_sets = list(groups)
        self._image_hosts: dict[str, np.ndarray] | None = None
        self.image_sizes = dict(snapshot.image_sizes)
        self.reasons: list[tuple[str, tuple[str, ...]]] = [("", ())]  # code 0: feasible
        self._reason_ids: dict[tuple, int] = {}
        self.cache: dict[Hashable, object] = {}  # plugins' per-run memo (static masks...)
        self.log: list[int] = []  # host of every charge, in order
        self._synced = 0  # charges already copied into the NumPy resource arrays
        self._topos: dict[str, Topo] = {}
        self._groups: dict[tuple[str, tuple], list[int]] = {}  # (ns, labels) -> hosts
        self._queries: list[Query] = []
        self._query_ids: dict[tuple, int] = {}
        self._carried: dict[str, list[Carried]] = {k: [] for k in CARRIED_KINDS}
        self._carried_ids: dict[tuple, Carried] = {}
        self._carried_matched: dict[tuple, tuple[int, list[Carried]]] = {}
        self.carried_version = 0  # distinct carried terms so far
        for b in snapshot.bound:
            h = self.pos.get(b.host)
            if h is not None and b.pod.key not in skip_keys:
                self.charge(b.pod, h)
        self.sync()

    # ------------------------------------------------------------ reasons

    def reason(self, plugin: str, *texts: str) -> int:
        key = (plugin, texts)
        code = self._reason_ids.get(key)
        if code is None:
            code = self._reason_ids[key] = len(self.reasons)
            self.reasons.append(key)
            if code > 0xFFFF:
                raise OverflowError("more than 65535 distinct rejection reasons")
        return code

    def image_hosts(self, image: str) -> np.ndarray:
        """Hosts that have `image` (the index is built on first use)."""
        if self._image_hosts is None:
            index: dict[str, list[int]] = {}
            for i, h in enumerate(self.hosts):
                for img in h.images:
                    index.setdefault(img, []).append(i)
            self._image_hosts = {img: np.array(hosts, dtype=np.int64) for img, hosts in index.items()}
        found = self._image_hosts.get(image)
        return np.zeros(0, dtype=np.int64) if found is None else found

    # ------------------------------------------------------------ topology and counts

    def label_values(self, key: str) -> list[str | None]:
        """Each host's value of label `key` (None: no such label)."""
        return [m.get(key) for m in self.labels]

    def topo(self, key: str) -> Topo:
        t = self._topos.get(key)
        if t is None:
            t = self._topos[key] = Topo(key, self.label_values(key))
        return t

    def query(self, conjuncts: tuple[Conjunct, ...]) -> Query:
        qid = self._query_ids.get(conjuncts)
        if qid is None:
            qid = self._query_ids[conjuncts] = len(self._queries)
            self._queries.append(Query(conjuncts))
        return self._queries[qid]

    def counts(self, conjuncts: tuple[Conjunct, ...], key: str,
               elig_key: Hashable = None, elig: np.ndarray | None = None) -> np.ndarray:
        """Matching pods per domain of `key` (D+1 slots), counting eligible hosts only.
        The array is live: charge() updates it in place."""
        q = self.query(conjuncts)
        c = q.counters.get((key, elig_key))
        if c is None:
            host_counts = np.zeros(self.n, dtype=np.int64)
            for (ns, labels), hosts in self._groups.items():
                if hosts and q.matches(ns, dict(labels)):
                    np.add.at(host_counts, hosts, 1)
            c = q.counters[(key, elig_key)] = Counts(self.topo(key), elig, host_counts)
        return c.counts

    def carried(self, kind: str, pod: SchedPod) -> list[Carried]:
        """Terms of `kind` carried by bound pods that match `pod` (memoised per labels)."""
        terms = self._carried[kind]
        if not terms:
            return []
        sig = (kind, pod.namespace, pod.labels)
        seen, found = self._carried_matched.get(sig, (0, []))
        if seen < len(terms):
            labels = pod.label_map
            found = found + [t for t in terms[seen:] if conjunct_matches(t.conjunct, pod.namespace, labels)]
            self._carried_matched[sig] = (len(terms), found)
        return found

    # ------------------------------------------------------------ charging

    def sync(self) -> None:
        """Bring the NumPy copies of the per-host resources up to date with the lists
        (charge() writes only the lists; vector code calls this first)."""
        if self._synced != len(self.log):
            for h in set(self.log[self._synced:]):
                self.free_cpu[h], self.free_mem[h], self.free_pods[h] = (
                    self.free_cpu_l[h], self.free_mem_l[h], self.free_pods_l[h])
                self.nz_cpu[h], self.nz_mem[h] = self.nz_cpu_l[h], self.nz_mem_l[h]
            self._synced = len(self.log)

    def plan(self, pod: SchedPod) -> Plan:
        sig = (pod.namespace, pod.labels)
        group = self._groups.get(sig)
        if group is None:
            group = self._groups[sig] = []
        return Plan(sig, group)

    def charge(self, pod: SchedPod, h: int, plan: Plan | None = None) -> None:
        """Bind `pod` to host h: resources, ports, and every count it takes part in.
        `plan` (from plan(), per spec) saves resolving the pod's groups each time."""
        if plan is None:
            plan = self.plan(pod)
        self.free_cpu_l[h] -= pod.cpu_m
        self.free_mem_l[h] -= pod.memory
        self.free_pods_l[h] -= 1
        self.nz_cpu_l[h] += pod.score_cpu_m
        self.nz_mem_l[h] += pod.score_memory
        if pod.host_ports:
            for port in pod.host_ports:
                self.ports.setdefault(h, set()).add(port)
                self.port_hosts.setdefault(port, set()).add(h)
        self.log.append(h)
        plan.group.append(h)
        queries = self._queries
        if plan.seen < len(queries):
            ns, labels = pod.namespace, pod.label_map
            plan.matched = plan.matched + [q for q in queries[plan.seen:] if q.matches(ns, labels)]
            plan.seen = len(queries)
        for q in plan.matched:
            for c in q.counters.values():
                d = c.dom_l[h]
                if d != c.D and (c.elig_l is None or c.elig_l[h]):
                    c.counts[d] += 1
        if plan.carried is None:
            has_terms = (pod.pod_anti_affinity or pod.pod_affinity or pod.preferred_pod_affinity
                         or pod.preferred_pod_anti_affinity)
            plan.carried = self._carried_terms(pod) if has_terms else ()
        for c in plan.carried:
            d = c.topo.dom_l[h]
            if d != c.topo.D:
                c.counts[d] += 1

    def _carried_terms(self, pod: SchedPod) -> list[Carried]:
        ns = pod.namespace
        entries = [("anti", t, 1) for t in pod.pod_anti_affinity]
        entries += [("affinity", t, 1) for t in pod.pod_affinity]
        entries += [("preferred", w.term, w.weight) for w in pod.preferred_pod_affinity]
        entries += [("preferred", w.term, -w.weight) for w in pod.preferred_pod_anti_affinity]
        out = []
        for kind, term, weight in entries:
            conj = conjunct(term, ns)
            key = (kind, conj, weight, term.topology_key)
            c = self._carried_ids.get(key)
            if c is None:
                c = self._carried_ids[key] = Carried(conj, weight, self.topo(term.topology_key))
                self._carried[kind].append(c)
                self.carried_version += 1
            out.append(c)
        return out
