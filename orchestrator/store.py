"""Durable controller state in $PODCTL_HOME/state.db (SQLite, WAL), and the run lock.

podctl runs from cron and may be SIGKILLed at any instant, and two podctl processes may
open the store at once. So every change is one transaction begun IMMEDIATE: the write
lock is taken up front, so a second writer waits (busy_timeout) instead of failing when
it tries to upgrade a read lock. A killed process leaves at worst an uncommitted
transaction, which SQLite discards. WAL lets readers run while a writer works.

Rows come back as frozen dataclasses, JSON columns decoded to dicts. Times are floats
passed in by callers (`now`), so tests fix them.
"""

from __future__ import annotations

import fcntl
import ipaddress
import json
import os
import sqlite3
import time
import uuid
from contextlib import contextmanager
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Callable, Iterator, Union

from .errors import LockHeld, StoreError

BUSY_TIMEOUT = 5.0  # seconds a writer waits for another process's transaction
MAX_EVENTS = 10_000
EVENT_TYPES = ("Normal", "Warning")
HEALTH_UNKNOWN = "Unknown"  # a host nobody has probed yet
LOCK_FILE = "run.lock"

# ---------------------------------------------------------------- schema

# MIGRATIONS[i] takes the schema from version i to i+1 (PRAGMA user_version). Append
# only; never edit a released step. A step is SQL statements or a function(conn).
Migration = Union[tuple[str, ...], Callable[[sqlite3.Connection], None]]
MIGRATIONS: list[Migration] = [
    (
        """CREATE TABLE objects (
            kind TEXT NOT NULL, namespace TEXT NOT NULL, name TEXT NOT NULL,
            uid TEXT NOT NULL UNIQUE, generation INTEGER NOT NULL, doc TEXT NOT NULL,
            created_at REAL NOT NULL, updated_at REAL NOT NULL,
            PRIMARY KEY (kind, namespace, name))""",
        """CREATE TABLE pods (
            uid TEXT PRIMARY KEY, namespace TEXT NOT NULL, name TEXT NOT NULL,
            spec TEXT NOT NULL, owner_kind TEXT, owner_name TEXT, owner_uid TEXT,
            node TEXT, pod_ip TEXT, created_at REAL NOT NULL,
            deletion_requested_at REAL, observed TEXT, observed_at REAL)""",
        # A name is unique among live pods only: a replaced pod stays, being deleted,
        # next to its successor until the host confirms it is gone.
        """CREATE UNIQUE INDEX pods_live_name ON pods (namespace, name)
            WHERE deletion_requested_at IS NULL""",
        # Backstop for allocate_pod_ip: an address is held once per host.
        "CREATE UNIQUE INDEX pods_node_ip ON pods (node, pod_ip) WHERE pod_ip IS NOT NULL",
        "CREATE INDEX pods_owner ON pods (owner_uid)",
        """CREATE TABLE hosts (
            name TEXT PRIMARY KEY, pod_cidr TEXT UNIQUE, health TEXT NOT NULL,
            health_since REAL NOT NULL, health_detail TEXT, facts TEXT, last_seen REAL)""",
        """CREATE TABLE events (
            id INTEGER PRIMARY KEY, at REAL NOT NULL, type TEXT NOT NULL,
            reason TEXT NOT NULL, message TEXT NOT NULL, kind TEXT NOT NULL,
            namespace TEXT NOT NULL, name TEXT NOT NULL, uid TEXT)""",
        "CREATE INDEX events_object ON events (kind, namespace, name)",
        "CREATE INDEX events_uid ON events (uid)",
    ),
    # v2: what controllers observed about an object (Kubernetes' .status): replica
    # counts, conditions, a Deployment's revision history. Not part of the spec, so
    # writing it never bumps the generation.
    ("ALTER TABLE objects ADD COLUMN status TEXT",),
    # v3: operators' word on hosts (cordon; fence = confirmed down or its pods killed)
    # and the controller epoch every change on a host carries (hosts refuse older ones).
    (
        "ALTER TABLE hosts ADD COLUMN cordoned INTEGER NOT NULL DEFAULT 0",
        "ALTER TABLE hosts ADD COLUMN fenced_at REAL",
        "ALTER TABLE hosts ADD COLUMN fence_detail TEXT",
        "CREATE TABLE meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL)",
        "INSERT INTO meta (key, value) VALUES ('epoch', 0)",
    ),
    # v4: a pod's ephemeral containers (`podctl debug`): added to a running pod, not
    # part of its immutable spec (re-applying the manifest leaves them alone).
    ("ALTER TABLE pods ADD COLUMN ephemeral TEXT",),
]

# ---------------------------------------------------------------- rows


@dataclass(frozen=True)
class ObjectRow:
    kind: str
    namespace: str
    name: str
    uid: str
    generation: int
    doc: dict
    created_at: float
    updated_at: float
    status: dict | None = None


@dataclass(frozen=True)
class PodRow:
    uid: str
    namespace: str
    name: str
    spec: dict
    owner_kind: str | None
    owner_name: str | None
    owner_uid: str | None
    node: str | None
    pod_ip: str | None
    created_at: float
    deletion_requested_at: float | None
    observed: dict | None
    observed_at: float | None
    ephemeral: list | None = None  # ephemeralContainers[] specs, oldest first

    @property
    def deleting(self) -> bool:
        return self.deletion_requested_at is not None

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"


@dataclass(frozen=True)
class HostRow:
    name: str
    pod_cidr: str | None
    health: str
    health_since: float
    health_detail: dict | None
    facts: dict | None
    last_seen: float | None
    cordoned: int = 0
    fenced_at: float | None = None
    fence_detail: str | None = None


@dataclass(frozen=True)
class EventRow:
    id: int
    at: float
    type: str
    reason: str
    message: str
    kind: str
    namespace: str
    name: str
    uid: str | None


_POD_JSON = ("spec", "observed", "ephemeral")


def _dumps(doc: Any) -> str:
    """Canonical JSON: equal documents give equal text (generation bumps rely on it)."""
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _row(cls, r: sqlite3.Row | None, json_cols: tuple[str, ...] = ()):
    if r is None:
        return None
    values = {f.name: r[f.name] for f in fields(cls)}
    for col in json_cols:
        if values[col] is not None:
            values[col] = json.loads(values[col])
    return cls(**values)


def _network(cidr: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    try:
        return ipaddress.ip_network(cidr)
    except ValueError as e:
        raise StoreError(f"invalid CIDR {cidr!r}: {e}") from None


def _where(**conditions: Any) -> tuple[str, tuple]:
    """' WHERE a = ? AND ...' over the conditions that are not None."""
    used = {k: v for k, v in conditions.items() if v is not None}
    if not used:
        return "", ()
    return " WHERE " + " AND ".join(f"{k} = ?" for k in used), tuple(used.values())


# ---------------------------------------------------------------- the store


class Store:
    def __init__(self, conn: sqlite3.Connection, path: Path):
        self._conn = conn
        self.path = path
        self.max_events = MAX_EVENTS

    @classmethod
    def open(cls, path: Path) -> Store:
        path = Path(path)
        try:
            path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            # Create it 0600 ourselves: manifests (env values) are stored verbatim, and
            # SQLite gives the -wal/-shm files the database file's mode.
            os.close(os.open(path, os.O_RDWR | os.O_CREAT, 0o600))
            # isolation_level=None: we issue BEGIN/COMMIT ourselves.
            conn = sqlite3.connect(path, timeout=BUSY_TIMEOUT, isolation_level=None)
        except (OSError, sqlite3.Error) as e:
            raise StoreError(f"cannot open {path}: {e}") from e
        conn.row_factory = sqlite3.Row
        store = cls(conn, path)
        try:
            conn.execute("PRAGMA journal_mode = WAL")
            # FULL: a committed binding survives a power cut, not only a killed process.
            conn.execute("PRAGMA synchronous = FULL")
            store._migrate()
        except sqlite3.Error as e:
            conn.close()
            raise StoreError(f"cannot open {path}: {e}") from e
        except BaseException:
            conn.close()
            raise
        return store

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """BEGIN IMMEDIATE ... COMMIT, or ROLLBACK on any exception.

        Nested use becomes a savepoint, so the store's own methods can be called inside
        a caller's transaction and still undo just their part when they fail.
        """
        conn = self._conn
        if conn.in_transaction:
            conn.execute("SAVEPOINT nested")
            try:
                yield
                conn.execute("RELEASE nested")
            except BaseException:
                if conn.in_transaction:  # some errors make SQLite roll back by itself
                    conn.execute("ROLLBACK TO nested")
                    conn.execute("RELEASE nested")
                raise
            return
        try:
            conn.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as e:
            raise StoreError(f"{self.path} stayed locked for {BUSY_TIMEOUT:g}s: {e}") from e
        try:
            yield
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:  # some errors make SQLite roll back by itself
                conn.execute("ROLLBACK")
            raise

    def _one(self, sql: str, args: tuple = ()) -> sqlite3.Row | None:
        return self._conn.execute(sql, args).fetchone()

    def _all(self, sql: str, args: tuple = ()) -> list[sqlite3.Row]:
        return self._conn.execute(sql, args).fetchall()

    def schema_version(self) -> int:
        return self._one("PRAGMA user_version")[0]

    def _migrate(self) -> None:
        while True:
            with self.transaction():
                # Read under the write lock: another podctl may be migrating right now.
                version = self.schema_version()
                if version > len(MIGRATIONS):
                    raise StoreError(
                        f"{self.path} has schema version {version}, newer than this "
                        f"podctl understands ({len(MIGRATIONS)}); upgrade podctl"
                    )
                if version == len(MIGRATIONS):
                    return
                step = MIGRATIONS[version]
                if callable(step):
                    step(self._conn)
                else:
                    for statement in step:
                        self._conn.execute(statement)
                self._conn.execute(f"PRAGMA user_version = {version + 1}")

    # ------------------------------------------------------------ objects

    def put_object(self, kind: str, namespace: str, name: str, doc: dict, now: float) -> ObjectRow:
        """Record an applied manifest: new uid at generation 1, or generation+1 if the
        document changed. An unchanged document writes nothing."""
        text = _dumps(doc)
        with self.transaction():
            old = self._one(
                "SELECT doc FROM objects WHERE kind = ? AND namespace = ? AND name = ?",
                (kind, namespace, name),
            )
            if old is None:
                self._conn.execute(
                    "INSERT INTO objects (kind, namespace, name, uid, generation, doc,"
                    " created_at, updated_at) VALUES (?, ?, ?, ?, 1, ?, ?, ?)",
                    (kind, namespace, name, str(uuid.uuid4()), text, now, now),
                )
            elif old["doc"] != text:
                self._conn.execute(
                    "UPDATE objects SET doc = ?, generation = generation + 1, updated_at = ?"
                    " WHERE kind = ? AND namespace = ? AND name = ?",
                    (text, now, kind, namespace, name),
                )
            return self.get_object(kind, namespace, name)

    def get_object(self, kind: str, namespace: str, name: str) -> ObjectRow | None:
        r = self._one(
            "SELECT * FROM objects WHERE kind = ? AND namespace = ? AND name = ?",
            (kind, namespace, name),
        )
        return _row(ObjectRow, r, ("doc", "status"))

    def set_object_status(self, kind: str, namespace: str, name: str, status: dict) -> None:
        """Record what the object's controller observed; the generation does not change."""
        with self.transaction():
            self._conn.execute(
                "UPDATE objects SET status = ? WHERE kind = ? AND namespace = ? AND name = ?",
                (_dumps(status), kind, namespace, name),
            )

    def list_objects(self, kind: str | None = None, namespace: str | None = None) -> list[ObjectRow]:
        where, args = _where(kind=kind, namespace=namespace)
        rows = self._all(f"SELECT * FROM objects{where} ORDER BY kind, namespace, name", args)
        return [_row(ObjectRow, r, ("doc", "status")) for r in rows]

    def delete_object(self, kind: str, namespace: str, name: str) -> bool:
        """Forget the object. Its pods are the caller's to delete (integrity_check
        reports owned pods left behind that are not being deleted)."""
        with self.transaction():
            cur = self._conn.execute(
                "DELETE FROM objects WHERE kind = ? AND namespace = ? AND name = ?",
                (kind, namespace, name),
            )
        return cur.rowcount > 0

    # ------------------------------------------------------------ pods

    def add_pod(
        self,
        namespace: str,
        name: str,
        spec: dict,
        now: float,
        owner_kind: str | None = None,
        owner_name: str | None = None,
        owner_uid: str | None = None,
    ) -> PodRow:
        """A new desired pod with a fresh uid. StoreError if a live pod has the name
        (a pod that is only being deleted does not block its successor)."""
        uid = str(uuid.uuid4())
        with self.transaction():
            try:
                self._conn.execute(
                    "INSERT INTO pods (uid, namespace, name, spec, owner_kind, owner_name,"
                    " owner_uid, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    (uid, namespace, name, _dumps(spec), owner_kind, owner_name, owner_uid, now),
                )
            except sqlite3.IntegrityError:
                raise StoreError(f"pod {namespace}/{name} already exists") from None
            return self.get_pod_by_uid(uid)

    def replace_pod(self, namespace: str, name: str, spec: dict, now: float) -> PodRow:
        """A pod's spec is immutable: a changed spec means delete and recreate. In one
        transaction, mark the live pod for deletion and add its successor (new uid, same
        owner). An unchanged spec returns the live pod and writes nothing."""
        with self.transaction():
            old = self.get_pod(namespace, name)
            if old is None or old.deleting:
                raise StoreError(f"pod {namespace}/{name} does not exist")
            if _dumps(old.spec) == _dumps(spec):
                return old
            self.request_delete(old.uid, now)
            return self.add_pod(
                namespace, name, spec, now, old.owner_kind, old.owner_name, old.owner_uid
            )

    def succeed_pod(self, uid: str, now: float) -> PodRow:
        """The pod's successor: same name, spec and owner, a new uid, no host yet; the
        pod itself is marked for deletion (it stays until its host confirms). For a
        bare pod whose host was lost."""
        with self.transaction():
            old = self.get_pod_by_uid(uid)
            if old is None:
                raise StoreError(f"no pod with uid {uid}")
            self.request_delete(uid, now)
            return self.add_pod(old.namespace, old.name, old.spec, now, old.owner_kind, old.owner_name, old.owner_uid)

    def get_pod(self, namespace: str, name: str) -> PodRow | None:
        """The live pod of that name, else the newest one being deleted, else None."""
        r = self._one(
            "SELECT * FROM pods WHERE namespace = ? AND name = ?"
            " ORDER BY deletion_requested_at IS NOT NULL, created_at DESC, uid LIMIT 1",
            (namespace, name),
        )
        return _row(PodRow, r, _POD_JSON)

    def get_pod_by_uid(self, uid: str) -> PodRow | None:
        r = self._one("SELECT * FROM pods WHERE uid = ?", (uid,))
        return _row(PodRow, r, _POD_JSON)

    def list_pods(
        self,
        namespace: str | None = None,
        node: str | None = None,
        owner_uid: str | None = None,
        include_deleting: bool = True,
    ) -> list[PodRow]:
        where, args = _where(namespace=namespace, node=node, owner_uid=owner_uid)
        if not include_deleting:
            where += (" AND" if where else " WHERE") + " deletion_requested_at IS NULL"
        rows = self._all(f"SELECT * FROM pods{where} ORDER BY namespace, name, created_at, uid", args)
        return [_row(PodRow, r, _POD_JSON) for r in rows]

    def _update_pod(self, uid: str, assignments: str, args: tuple) -> PodRow:
        with self.transaction():
            cur = self._conn.execute(f"UPDATE pods SET {assignments} WHERE uid = ?", (*args, uid))
            if cur.rowcount == 0:
                raise StoreError(f"no pod with uid {uid}")
            return self.get_pod_by_uid(uid)

    def bind_pod(self, uid: str, node: str, pod_ip: str | None) -> PodRow:
        """Place the pod on a known host with this address (see allocate_pod_ip)."""
        with self.transaction():
            if self.get_host(node) is None:
                raise StoreError(f"cannot bind pod {uid} to unknown host {node}")
            try:
                return self._update_pod(uid, "node = ?, pod_ip = ?", (node, pod_ip))
            except sqlite3.IntegrityError:
                raise StoreError(f"pod IP {pod_ip} is already held on host {node}") from None

    def unbind_pod(self, uid: str) -> PodRow:
        """Clear host and address (the address becomes free on that host)."""
        return self._update_pod(uid, "node = NULL, pod_ip = NULL", ())

    def request_delete(self, uid: str, now: float) -> PodRow:
        """The pod leaves desired state but stays (holding its host and IP) until the
        host confirms it is gone and the caller forgets it. Keeps the first time, which
        grace periods count from."""
        return self._update_pod(
            uid, "deletion_requested_at = COALESCE(deletion_requested_at, ?)", (now,)
        )

    def forget_pod(self, uid: str) -> bool:
        with self.transaction():
            return self._conn.execute("DELETE FROM pods WHERE uid = ?", (uid,)).rowcount > 0

    def add_ephemeral(self, uid: str, container: dict, check: Callable[[PodRow], None]) -> PodRow:
        """Append an ephemeral container to a live pod. `check(row)` sees the pod as it
        is inside the transaction (names unique, pod not being deleted) and raises to refuse."""
        with self.transaction():
            row = self.get_pod_by_uid(uid)
            if row is None or row.deleting:
                raise StoreError(f"pod {uid} does not exist or is being deleted")
            check(row)
            return self._update_pod(uid, "ephemeral = ?", (_dumps([*(row.ephemeral or []), container]),))

    def record_observed(self, uid: str, status: dict, now: float) -> PodRow:
        """The last status a probe saw (phase, containerStatuses, host...)."""
        return self._update_pod(uid, "observed = ?, observed_at = ?", (_dumps(status), now))

    # ------------------------------------------------------------ pod IPs

    def allocate_pod_ip(self, node: str, cidr: str, uid: str) -> str:
        """Bind the pod to `node` with the lowest free address of the host's pod CIDR.

        Skips the network address, the first host address (the bridge's gateway) and
        the broadcast. Addresses of pods being deleted stay taken until forgotten (the
        old copy may still run). Idempotent for a pod already holding one on `node`.
        The read and the write share one IMMEDIATE transaction, so two processes never
        hand out the same address.
        """
        net = _network(cidr)
        with self.transaction():
            pod = self.get_pod_by_uid(uid)
            if pod is None:
                raise StoreError(f"no pod with uid {uid}")
            if pod.node == node and pod.pod_ip:
                return pod.pod_ip
            if pod.node not in (None, node):
                raise StoreError(f"pod {pod.key} is bound to host {pod.node}; unbind it first")
            rows = self._all(
                "SELECT pod_ip FROM pods WHERE node = ? AND pod_ip IS NOT NULL", (node,)
            )
            used = {ipaddress.ip_address(r["pod_ip"]) for r in rows}
            address = net.network_address + 2
            while address < net.broadcast_address and address in used:
                address += 1
            if address >= net.broadcast_address:
                raise StoreError(f"pod CIDR {cidr} of host {node} is full")
            self._update_pod(uid, "node = ?, pod_ip = ?", (node, str(address)))
            return str(address)

    # ------------------------------------------------------------ hosts

    def upsert_host(self, name: str, pod_cidr: str | None = None, *, now: float) -> HostRow:
        """Make the host known (health Unknown since `now`); a pod_cidr from the
        inventory goes through assign_pod_cidr's checks."""
        with self.transaction():
            self._conn.execute(
                "INSERT INTO hosts (name, health, health_since) VALUES (?, ?, ?)"
                " ON CONFLICT (name) DO NOTHING",
                (name, HEALTH_UNKNOWN, now),
            )
            if pod_cidr is not None:
                self.assign_pod_cidr(name, requested=pod_cidr)
            return self.get_host(name)

    def get_host(self, name: str) -> HostRow | None:
        r = self._one("SELECT * FROM hosts WHERE name = ?", (name,))
        return _row(HostRow, r, ("health_detail", "facts"))

    def list_hosts(self) -> list[HostRow]:
        rows = self._all("SELECT * FROM hosts ORDER BY name")
        return [_row(HostRow, r, ("health_detail", "facts")) for r in rows]

    def _update_host(self, name: str, assignments: str, args: tuple) -> HostRow:
        with self.transaction():
            cur = self._conn.execute(f"UPDATE hosts SET {assignments} WHERE name = ?", (*args, name))
            if cur.rowcount == 0:
                raise StoreError(f"unknown host {name}")
            return self.get_host(name)

    def set_host_health(self, name: str, health: str, since: float, detail: dict) -> HostRow:
        return self._update_host(
            name, "health = ?, health_since = ?, health_detail = ?", (health, since, _dumps(detail))
        )

    def set_cordon(self, name: str, cordoned: bool) -> HostRow:
        return self._update_host(name, "cordoned = ?", (1 if cordoned else 0,))

    def fence_host(self, name: str, now: float, detail: str) -> HostRow:
        """The host is confirmed down, or its pods were killed: pods that must run at
        most once (StatefulSet) may now be replaced elsewhere."""
        return self._update_host(name, "fenced_at = ?, fence_detail = ?", (now, detail))

    def clear_fence(self, name: str) -> HostRow:
        return self._update_host(name, "fenced_at = NULL, fence_detail = NULL", ())

    def next_epoch(self) -> int:
        """A new controller epoch: every change a run makes on a host carries it, and a
        host refuses a change older than one it has already seen."""
        with self.transaction():
            self._conn.execute("UPDATE meta SET value = value + 1 WHERE key = 'epoch'")
            return int(self._one("SELECT value FROM meta WHERE key = 'epoch'")[0])

    def epoch(self) -> int:
        return int(self._one("SELECT value FROM meta WHERE key = 'epoch'")[0])

    def record_host_facts(self, name: str, facts: dict, now: float) -> HostRow:
        """What a successful probe reported; `now` becomes last_seen."""
        return self._update_host(name, "facts = ?, last_seen = ?", (_dumps(facts), now))

    def remove_host(self, name: str) -> bool:
        """Forget the host. Pods still bound to it are the caller's to re-place or
        forget first (integrity_check reports them)."""
        with self.transaction():
            return self._conn.execute("DELETE FROM hosts WHERE name = ?", (name,)).rowcount > 0

    def assign_pod_cidr(
        self,
        name: str,
        cluster_cidr: str = "10.244.0.0/16",
        prefix: int = 24,
        requested: str | None = None,
    ) -> str:
        """The host's pod CIDR. Once assigned it never changes (running pods hold
        addresses from it). A requested CIDR is honoured if no other host's overlaps
        it; otherwise the lowest /prefix of the cluster CIDR that no host uses."""
        want = _network(requested) if requested is not None else None
        with self.transaction():
            host = self.get_host(name)
            if host is None:
                raise StoreError(f"unknown host {name}")
            if host.pod_cidr is not None:
                if want is not None and str(want) != host.pod_cidr:
                    raise StoreError(
                        f"host {name} already has pod CIDR {host.pod_cidr}, not {want}; "
                        "remove the host (and its pods) to change it"
                    )
                return host.pod_cidr
            taken = {
                r["name"]: _network(r["pod_cidr"])
                for r in self._all(
                    "SELECT name, pod_cidr FROM hosts WHERE pod_cidr IS NOT NULL AND name != ?",
                    (name,),
                )
            }
            if want is not None:
                holders = sorted(h for h, n in taken.items() if n.overlaps(want))
                if holders:
                    raise StoreError(
                        f"pod CIDR {want} requested for host {name} is held by host {holders[0]}"
                    )
                choice = want
            else:
                cluster = _network(cluster_cidr)
                if not cluster.prefixlen <= prefix <= cluster.max_prefixlen:
                    raise StoreError(f"cannot cut /{prefix} pod CIDRs from {cluster_cidr}")
                free = (
                    s for s in cluster.subnets(new_prefix=prefix)
                    if not any(s.overlaps(n) for n in taken.values())
                )
                choice = next(free, None)
                if choice is None:
                    raise StoreError(f"cluster CIDR {cluster_cidr} has no free /{prefix} for host {name}")
            self._conn.execute("UPDATE hosts SET pod_cidr = ? WHERE name = ?", (str(choice), name))
            return str(choice)

    # ------------------------------------------------------------ events

    def add_event(
        self,
        now: float,
        type: str,
        reason: str,
        message: str,
        kind: str = "Pod",
        namespace: str = "default",
        name: str = "",
        uid: str | None = None,
    ) -> EventRow:
        if type not in EVENT_TYPES:
            raise ValueError(f"event type must be one of {EVENT_TYPES}, not {type!r}")
        with self.transaction():
            event_id = self._conn.execute(
                "INSERT INTO events (at, type, reason, message, kind, namespace, name, uid)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (now, type, reason, message, kind, namespace, name, uid),
            ).lastrowid
            # New ids are max+1 and only the oldest are ever deleted, so "beyond the
            # newest N" is a range of the primary key: one cheap indexed delete.
            self._conn.execute("DELETE FROM events WHERE id <= ?", (event_id - self.max_events,))
        return EventRow(event_id, now, type, reason, message, kind, namespace, name, uid)

    def list_events(
        self,
        kind: str | None = None,
        namespace: str | None = None,
        name: str | None = None,
        uid: str | None = None,
        limit: int = 100,
    ) -> list[EventRow]:
        """The newest `limit` matching events, oldest first (newest last)."""
        where, args = _where(kind=kind, namespace=namespace, name=name, uid=uid)
        rows = self._all(f"SELECT * FROM events{where} ORDER BY id DESC LIMIT ?", (*args, limit))
        return [_row(EventRow, r) for r in reversed(rows)]

    # ------------------------------------------------------------ consistency

    def integrity_check(self) -> list[str]:
        """Problems found (empty: healthy): SQLite's own check, then the references
        the schema does not enforce."""
        problems: list[str] = []
        with self.transaction():  # one snapshot for every query below
            problems += [
                f"sqlite: {r[0]}" for r in self._all("PRAGMA integrity_check") if r[0] != "ok"
            ]
            for r in self._all(
                "SELECT p.* FROM pods p LEFT JOIN hosts h ON h.name = p.node"
                " WHERE p.node IS NOT NULL AND h.name IS NULL ORDER BY p.namespace, p.name"
            ):
                problems.append(f"pod {r['namespace']}/{r['name']} ({r['uid']}) is bound to unknown host {r['node']}")
            for r in self._all(
                "SELECT node, pod_ip, group_concat(uid, ', ') AS uids FROM pods"
                " WHERE pod_ip IS NOT NULL GROUP BY node, pod_ip HAVING count(*) > 1"
            ):
                problems.append(f"pods {r['uids']} share IP {r['pod_ip']} on host {r['node']}")
            for r in self._all("SELECT * FROM pods WHERE pod_ip IS NOT NULL AND node IS NULL"):
                problems.append(f"pod {r['namespace']}/{r['name']} ({r['uid']}) has IP {r['pod_ip']} but no host")
            for r in self._all(
                "SELECT p.*, h.pod_cidr FROM pods p JOIN hosts h ON h.name = p.node"
                " WHERE p.pod_ip IS NOT NULL AND h.pod_cidr IS NOT NULL"
            ):
                if ipaddress.ip_address(r["pod_ip"]) not in _network(r["pod_cidr"]):
                    problems.append(
                        f"pod {r['namespace']}/{r['name']} ({r['uid']}) has IP {r['pod_ip']}"
                        f" outside host {r['node']}'s pod CIDR {r['pod_cidr']}"
                    )
            for r in self._all(
                "SELECT * FROM pods p WHERE owner_uid IS NOT NULL AND deletion_requested_at IS NULL"
                " AND NOT EXISTS (SELECT 1 FROM objects o WHERE o.uid = p.owner_uid)"
            ):
                problems.append(
                    f"pod {r['namespace']}/{r['name']} ({r['uid']}) is owned by"
                    f" {r['owner_kind']} {r['owner_name']} ({r['owner_uid']}), which no longer exists"
                )
        return problems


# ---------------------------------------------------------------- run lock


@dataclass(frozen=True)
class LockInfo:
    holder: str
    pid: int | None
    started_at: float | None


def _read_lock_info(fd: int) -> LockInfo:
    """What the holder wrote; it may not have written yet (or be mid-write)."""
    try:
        data = json.loads(os.pread(fd, 4096, 0) or b"{}")
        return LockInfo(str(data.get("holder", "?")), data.get("pid"), data.get("started_at"))
    except (OSError, ValueError, AttributeError):
        return LockInfo("?", None, None)


@contextmanager
def run_lock(home: Path, holder: str) -> Iterator[LockInfo]:
    """Hold $PODCTL_HOME/run.lock for one reconcile, or raise LockHeld at once.

    flock belongs to the open file, so the kernel drops it when the process dies: a
    SIGKILLed run's lock frees itself, with no stale-lock guessing. Python opens the
    file close-on-exec, so an ssh child cannot keep it alive after we die. The file
    is never unlinked: a waiter could lock the old inode while a newcomer locks a new one.
    """
    home = Path(home)
    home.mkdir(parents=True, exist_ok=True, mode=0o700)
    path = home / LOCK_FILE
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            other = _read_lock_info(fd)
            since = (
                time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(other.started_at))
                if other.started_at else "an unknown time"
            )
            err = LockHeld(
                f"another podctl run holds {path}: pid {other.pid or '?'} ({other.holder}) since {since}"
            )
            err.holder, err.pid, err.started_at = other.holder, other.pid, other.started_at
            raise err from None
        except OSError as e:
            raise StoreError(f"cannot lock {path}: {e}") from e
        info = LockInfo(holder, os.getpid(), time.time())
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(info.__dict__).encode(), 0)
        try:
            yield info
        finally:
            os.ftruncate(fd, 0)  # clean exit: nothing stale for lock_info to show
    finally:
        os.close(fd)  # drops the lock


def lock_info(home: Path) -> LockInfo | None:
    """Who holds the run lock, or None if it is free.

    Probes with a shared, non-blocking flock held for an instant: a run starting in
    that very instant would see LockHeld (and cron retries it a minute later).
    """
    try:
        fd = os.open(Path(home) / LOCK_FILE, os.O_RDONLY)
    except FileNotFoundError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return _read_lock_info(fd)
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)
