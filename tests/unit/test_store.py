"""The state store and the run lock: a tmp_path database, fixed times, real processes
where the property is about processes (concurrent allocation, a SIGKILLed lock holder)."""

from __future__ import annotations

import ipaddress
import multiprocessing
import os
import signal
import sqlite3
import time
from pathlib import Path

import pytest

from orchestrator import store as store_mod
from orchestrator.errors import LockHeld, StoreError
from orchestrator.store import MIGRATIONS, Store, lock_info, run_lock

T0 = 1_700_000_000.0
SPEC = {"containers": [{"name": "app", "image": "busybox:1.36"}]}
SPEC2 = {"containers": [{"name": "app", "image": "busybox:1.37"}]}

# spawn, not fork: a child must not inherit the parent's SQLite connections or lock fds.
mp = multiprocessing.get_context("spawn")


@pytest.fixture
def db(tmp_path: Path) -> Store:
    with Store.open(tmp_path / "state.db") as s:
        yield s


def host(db: Store, name: str = "h1", cidr: str = "10.244.0.0/24") -> None:
    db.upsert_host(name, cidr, now=T0)


# ---------------------------------------------------------------- schema


def test_fresh_db_is_migrated_to_current_version(tmp_path: Path) -> None:
    path = tmp_path / "home" / "state.db"
    with Store.open(path) as s:
        assert s.schema_version() == len(MIGRATIONS)
        assert s.integrity_check() == []
    conn = sqlite3.connect(path)
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert {"objects", "pods", "hosts", "events"} <= tables
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    conn.close()
    assert path.stat().st_mode & 0o777 == 0o600


def test_later_migrations_apply_in_order_and_keep_data(tmp_path, monkeypatch) -> None:
    path = tmp_path / "state.db"
    with Store.open(path) as s:
        s.upsert_host("h1", now=T0)
    extra = [
        ("ALTER TABLE hosts ADD COLUMN zone TEXT",),
        lambda conn: conn.execute("UPDATE hosts SET zone = 'z-' || name"),
    ]
    monkeypatch.setattr(store_mod, "MIGRATIONS", MIGRATIONS + extra)
    with Store.open(path) as s:
        assert s.schema_version() == len(MIGRATIONS) + 2
        assert s._one("SELECT zone FROM hosts WHERE name = 'h1'")[0] == "z-h1"
        assert s.get_host("h1").name == "h1"


def test_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    Store.open(path).close()
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA user_version = {len(MIGRATIONS) + 1}")
    conn.close()
    with pytest.raises(StoreError, match="newer than this podctl"):
        Store.open(path)


def test_garbage_file_is_a_store_error(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    path.write_bytes(b"not a database at all" * 100)
    with pytest.raises(StoreError, match="cannot open"):
        Store.open(path)


def _open_and_close(path: str) -> None:
    Store.open(Path(path)).close()


def test_processes_opening_a_fresh_db_together_all_succeed(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    procs = [mp.Process(target=_open_and_close, args=(str(path),)) for _ in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(30)
    assert [p.exitcode for p in procs] == [0] * 4
    with Store.open(path) as s:
        assert s.schema_version() == len(MIGRATIONS)


def test_transaction_rolls_back_everything_on_error(db: Store) -> None:
    with pytest.raises(RuntimeError):
        with db.transaction():
            db.upsert_host("h1", now=T0)
            db.add_pod("default", "web", SPEC, T0)
            raise RuntimeError("killed halfway")
    assert db.list_hosts() == [] and db.list_pods() == []


def test_failed_inner_call_undoes_only_its_part(db: Store) -> None:
    with db.transaction():
        db.add_pod("default", "web", SPEC, T0)
        with pytest.raises(StoreError, match="already exists"):
            db.add_pod("default", "web", SPEC, T0)
        db.add_pod("default", "db", SPEC, T0)
    assert [p.name for p in db.list_pods()] == ["db", "web"]


# ---------------------------------------------------------------- objects


def test_object_generation_bumps_only_on_change(db: Store) -> None:
    doc = {"kind": "Deployment", "spec": {"replicas": 2, "a": [1, 2]}}
    first = db.put_object("Deployment", "default", "web", doc, T0)
    assert (first.generation, first.created_at, first.updated_at) == (1, T0, T0)
    # Key order does not matter: the comparison is on canonical JSON.
    same = db.put_object("Deployment", "default", "web", {"spec": {"a": [1, 2], "replicas": 2}, "kind": "Deployment"}, T0 + 5)
    assert same == first
    changed = db.put_object("Deployment", "default", "web", {**doc, "spec": {"replicas": 3}}, T0 + 10)
    assert (changed.uid, changed.generation, changed.created_at, changed.updated_at) == (first.uid, 2, T0, T0 + 10)
    assert changed.doc["spec"] == {"replicas": 3}
    assert db.get_object("Deployment", "default", "web") == changed


def test_objects_list_and_delete(db: Store) -> None:
    db.put_object("Deployment", "default", "web", {}, T0)
    db.put_object("Job", "default", "batch", {}, T0)
    db.put_object("Deployment", "prod", "api", {}, T0)
    assert [o.name for o in db.list_objects()] == ["web", "api", "batch"]
    assert [o.name for o in db.list_objects(kind="Deployment", namespace="prod")] == ["api"]
    assert db.delete_object("Job", "default", "batch") is True
    assert db.delete_object("Job", "default", "batch") is False
    assert db.get_object("Job", "default", "batch") is None
    # Re-created after deletion: a new object, new uid.
    again = db.put_object("Job", "default", "batch", {}, T0 + 1)
    assert again.generation == 1


# ---------------------------------------------------------------- pods


def test_add_pod_and_duplicate_name(db: Store) -> None:
    pod = db.add_pod("default", "web", SPEC, T0)
    assert (pod.spec, pod.created_at, pod.node, pod.deleting, pod.observed) == (SPEC, T0, None, False, None)
    assert db.get_pod("default", "web") == pod == db.get_pod_by_uid(pod.uid)
    with pytest.raises(StoreError, match="pod default/web already exists"):
        db.add_pod("default", "web", SPEC2, T0)
    assert db.add_pod("other", "web", SPEC, T0).uid != pod.uid


def test_replace_pod_new_uid_and_old_marked_for_deletion(db: Store) -> None:
    old = db.add_pod("default", "web", SPEC, T0, "Deployment", "web", "owner-uid")
    assert db.replace_pod("default", "web", dict(SPEC), T0 + 1) == old  # unchanged: no churn
    new = db.replace_pod("default", "web", SPEC2, T0 + 2)
    assert new.uid != old.uid and new.spec == SPEC2 and not new.deleting
    assert (new.owner_kind, new.owner_name, new.owner_uid) == ("Deployment", "web", "owner-uid")
    assert db.get_pod_by_uid(old.uid).deletion_requested_at == T0 + 2
    assert db.get_pod("default", "web") == new
    assert [p.uid for p in db.list_pods(include_deleting=False)] == [new.uid]
    assert {p.uid for p in db.list_pods()} == {old.uid, new.uid}
    with pytest.raises(StoreError, match="does not exist"):
        db.replace_pod("default", "nope", SPEC, T0)


def test_replace_pod_is_atomic(db: Store, monkeypatch) -> None:
    old = db.add_pod("default", "web", SPEC, T0)

    def boom(*args, **kwargs):
        raise RuntimeError("SIGKILL stand-in between the two writes")

    monkeypatch.setattr(Store, "add_pod", boom)
    with pytest.raises(RuntimeError):
        db.replace_pod("default", "web", SPEC2, T0 + 1)
    assert db.list_pods() == [old]  # the old pod was not left marked for deletion


def test_delete_lifecycle_and_observed(db: Store) -> None:
    host(db)
    pod = db.add_pod("default", "web", SPEC, T0)
    db.allocate_pod_ip("h1", "10.244.0.0/24", pod.uid)
    seen = db.record_observed(pod.uid, {"phase": "Running"}, T0 + 1)
    assert (seen.observed, seen.observed_at) == ({"phase": "Running"}, T0 + 1)
    assert db.request_delete(pod.uid, T0 + 2).deletion_requested_at == T0 + 2
    assert db.request_delete(pod.uid, T0 + 9).deletion_requested_at == T0 + 2  # first time kept
    gone = db.get_pod("default", "web")
    assert gone.deleting and gone.node == "h1" and gone.pod_ip == "10.244.0.2"
    assert db.get_pod("default", "web").uid == pod.uid  # still found while being deleted
    assert db.forget_pod(pod.uid) is True and db.forget_pod(pod.uid) is False
    assert db.get_pod("default", "web") is None
    with pytest.raises(StoreError, match="no pod with uid"):
        db.request_delete(pod.uid, T0)


def test_list_pods_filters(db: Store) -> None:
    host(db, "h1", "10.244.0.0/24")
    host(db, "h2", "10.244.1.0/24")
    a = db.add_pod("default", "a", SPEC, T0, "ReplicaSet", "rs", "rs-uid")
    b = db.add_pod("default", "b", SPEC, T0)
    c = db.add_pod("prod", "c", SPEC, T0)
    db.bind_pod(a.uid, "h1", "10.244.0.2")
    db.bind_pod(b.uid, "h2", None)
    assert [p.name for p in db.list_pods(namespace="default")] == ["a", "b"]
    assert [p.name for p in db.list_pods(node="h2")] == ["b"]
    assert [p.name for p in db.list_pods(owner_uid="rs-uid")] == ["a"]
    assert db.unbind_pod(a.uid).node is None
    with pytest.raises(StoreError, match="unknown host"):
        db.bind_pod(c.uid, "h9", None)


# ---------------------------------------------------------------- pod IPs


def test_ip_allocation_lowest_free_idempotent_reuse_full(db: Store) -> None:
    cidr = "10.244.3.0/29"  # .0 network, .1 gateway, .7 broadcast: .2-.6 are usable
    host(db, "h1", cidr)
    pods = [db.add_pod("default", f"p{i}", SPEC, T0) for i in range(6)]
    ips = [db.allocate_pod_ip("h1", cidr, p.uid) for p in pods[:5]]
    assert ips == ["10.244.3.2", "10.244.3.3", "10.244.3.4", "10.244.3.5", "10.244.3.6"]
    assert db.allocate_pod_ip("h1", cidr, pods[1].uid) == "10.244.3.3"  # idempotent
    assert db.get_pod_by_uid(pods[1].uid).node == "h1"
    with pytest.raises(StoreError, match=r"pod CIDR 10\.244\.3\.0/29 of host h1 is full"):
        db.allocate_pod_ip("h1", cidr, pods[5].uid)
    # Being deleted still holds the address; forgetting frees it, lowest first.
    db.request_delete(pods[3].uid, T0)
    db.request_delete(pods[1].uid, T0)
    with pytest.raises(StoreError, match="is full"):
        db.allocate_pod_ip("h1", cidr, pods[5].uid)
    db.forget_pod(pods[3].uid)
    db.forget_pod(pods[1].uid)
    assert db.allocate_pod_ip("h1", cidr, pods[5].uid) == "10.244.3.3"


def test_ip_is_per_node_and_a_bound_pod_must_be_unbound_to_move(db: Store) -> None:
    host(db, "h1", "10.244.0.0/24")
    host(db, "h2", "10.244.1.0/24")
    a = db.add_pod("default", "a", SPEC, T0)
    b = db.add_pod("default", "b", SPEC, T0)
    assert db.allocate_pod_ip("h1", "10.244.0.0/24", a.uid) == "10.244.0.2"
    assert db.allocate_pod_ip("h2", "10.244.1.0/24", b.uid) == "10.244.1.2"
    with pytest.raises(StoreError, match="bound to host h1"):
        db.allocate_pod_ip("h2", "10.244.1.0/24", a.uid)
    with pytest.raises(StoreError, match="already held"):
        db.bind_pod(b.uid, "h1", "10.244.0.2")
    db.unbind_pod(a.uid)
    assert db.allocate_pod_ip("h2", "10.244.1.0/24", a.uid) == "10.244.1.3"


def _allocate_all(path: str, node: str, cidr: str, uids: list[str], start) -> None:
    # Widen the race: pause between reading the used addresses and writing the new
    # one, and between allocations so the two processes take turns.
    read = Store._all

    def slow_read(self, sql, args=()):
        rows = read(self, sql, args)
        time.sleep(0.003)
        return rows

    Store._all = slow_read
    with Store.open(Path(path)) as s:
        start.wait(30)
        for uid in uids:
            s.allocate_pod_ip(node, cidr, uid)
            time.sleep(0.002)


def test_two_processes_never_hand_out_the_same_ip(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    cidr = "10.244.0.0/24"
    with Store.open(path) as s:
        host(s, "h1", cidr)
        uids = [s.add_pod("default", f"p{i}", SPEC, T0).uid for i in range(80)]
    start = mp.Event()
    procs = [
        mp.Process(target=_allocate_all, args=(str(path), "h1", cidr, uids[i::2], start))
        for i in range(2)
    ]
    for p in procs:
        p.start()
    start.set()
    for p in procs:
        p.join(60)
    assert [p.exitcode for p in procs] == [0, 0]
    with Store.open(path) as s:
        pods = s.list_pods(node="h1")
        assert s.integrity_check() == []
    ips = [p.pod_ip for p in pods]
    assert len(ips) == 80 and len(set(ips)) == 80
    # Both went through the same lowest-free rule, so together they fill .2 .. .81.
    assert sorted(int(ipaddress.ip_address(ip)) & 0xFF for ip in ips) == list(range(2, 82))


# ---------------------------------------------------------------- hosts


def test_host_rows(db: Store) -> None:
    row = db.upsert_host("h1", now=T0)
    assert (row.health, row.health_since, row.pod_cidr, row.facts, row.last_seen) == ("Unknown", T0, None, None, None)
    assert db.upsert_host("h1", now=T0 + 5) == row  # existing: unchanged
    db.set_host_health("h1", "Suspect", T0 + 1, {"error": "timeout"})
    db.record_host_facts("h1", {"cpus": 4}, T0 + 2)
    row = db.get_host("h1")
    assert (row.health, row.health_since, row.health_detail) == ("Suspect", T0 + 1, {"error": "timeout"})
    assert (row.facts, row.last_seen) == ({"cpus": 4}, T0 + 2)
    db.upsert_host("h0", now=T0)
    assert [h.name for h in db.list_hosts()] == ["h0", "h1"]
    assert db.remove_host("h0") is True and db.remove_host("h0") is False
    with pytest.raises(StoreError, match="unknown host h0"):
        db.set_host_health("h0", "Ready", T0, {})


def test_pod_cidr_assignment_stable_and_honours_requests(db: Store) -> None:
    for name in ("a", "b", "c", "d"):
        db.upsert_host(name, now=T0)
    assert db.assign_pod_cidr("a") == "10.244.0.0/24"
    assert db.assign_pod_cidr("a") == "10.244.0.0/24"  # stable
    # A requested CIDR is honoured; free ones are then picked around it.
    assert db.assign_pod_cidr("b", requested="10.244.1.0/24") == "10.244.1.0/24"
    assert db.assign_pod_cidr("c") == "10.244.2.0/24"
    with pytest.raises(StoreError, match="held by host b"):
        db.assign_pod_cidr("d", requested="10.244.1.0/24")
    with pytest.raises(StoreError, match="held by host a"):
        db.assign_pod_cidr("d", requested="10.244.0.0/23")  # overlaps a's /24
    with pytest.raises(StoreError, match="already has pod CIDR"):
        db.assign_pod_cidr("c", requested="10.244.9.0/24")
    # Freed by removing its host, a CIDR is reused (lowest first).
    db.remove_host("a")
    assert db.assign_pod_cidr("d") == "10.244.0.0/24"
    # From the inventory, through upsert_host.
    assert db.upsert_host("e", "192.168.50.0/24", now=T0).pod_cidr == "192.168.50.0/24"


def test_pod_cidr_cluster_exhausted(db: Store) -> None:
    for name in ("a", "b", "c"):
        db.upsert_host(name, now=T0)
    db.assign_pod_cidr("a", cluster_cidr="10.9.0.0/23")
    db.assign_pod_cidr("b", cluster_cidr="10.9.0.0/23")
    with pytest.raises(StoreError, match="no free /24"):
        db.assign_pod_cidr("c", cluster_cidr="10.9.0.0/23")


# ---------------------------------------------------------------- events


def test_events_filtered_newest_last_and_bounded(db: Store) -> None:
    db.max_events = 50
    for i in range(120):
        db.add_event(T0 + i, "Normal", "Tick", f"n{i}", name=f"p{i % 2}", uid=f"u{i % 2}")
    db.add_event(T0 + 200, "Warning", "BackOff", "crash", kind="Deployment", name="web")
    everything = db.list_events(limit=1000)
    assert len(everything) == 50
    assert everything[-1].message == "crash" and everything[0].message == "n71"
    assert [e.message for e in db.list_events(name="p1", limit=3)] == ["n115", "n117", "n119"]
    assert [e.message for e in db.list_events(kind="Deployment")] == ["crash"]
    assert all(e.uid == "u0" for e in db.list_events(uid="u0"))
    with pytest.raises(ValueError):
        db.add_event(T0, "Error", "X", "y")


# ---------------------------------------------------------------- integrity


def test_integrity_check_finds_planted_problems(db: Store) -> None:
    host(db, "h1", "10.244.0.0/24")
    host(db, "h2", "10.244.1.0/24")
    owner = db.put_object("Deployment", "default", "web", {}, T0)
    owned = db.add_pod("default", "web-1", SPEC, T0, "Deployment", "web", owner.uid)
    stray = db.add_pod("default", "stray", SPEC, T0)
    db.allocate_pod_ip("h2", "10.244.1.0/24", stray.uid)
    assert db.integrity_check() == []

    db.delete_object("Deployment", "default", "web")  # owner gone, pod not being deleted
    db.remove_host("h2")  # a pod still bound to it
    problems = db.integrity_check()
    assert any("web-1" in p and "no longer exists" in p for p in problems)
    assert any("stray" in p and "unknown host h2" in p for p in problems)
    assert len(problems) == 2

    db.request_delete(owned.uid, T0)  # being deleted: no longer a problem
    assert len(db.integrity_check()) == 1

    # Planted behind the store's back: two pods with one IP, an IP outside the CIDR.
    a = db.add_pod("default", "a", SPEC, T0)
    b = db.add_pod("default", "b", SPEC, T0)
    db._conn.execute("DROP INDEX pods_node_ip")
    db._conn.execute("UPDATE pods SET node = 'h1', pod_ip = '10.244.0.7' WHERE uid IN (?, ?)", (a.uid, b.uid))
    db._conn.execute("UPDATE pods SET node = 'h1', pod_ip = '10.9.9.9' WHERE uid = ?", (stray.uid,))
    problems = db.integrity_check()
    assert any("share IP 10.244.0.7 on host h1" in p for p in problems)
    assert any("outside host h1's pod CIDR" in p for p in problems)


# ---------------------------------------------------------------- run lock


def _hold_lock(home: str, ready) -> None:
    with run_lock(Path(home), "reconcile (test)"):
        ready.set()
        time.sleep(120)


def test_run_lock_held_by_another_process_then_freed_by_sigkill(tmp_path: Path) -> None:
    ready = mp.Event()
    child = mp.Process(target=_hold_lock, args=(str(tmp_path), ready))
    child.start()
    try:
        assert ready.wait(30)
        started = time.monotonic()
        with pytest.raises(LockHeld) as caught:
            with run_lock(tmp_path, "second"):
                pass
        assert time.monotonic() - started < 1.0  # refused at once, no waiting
        assert caught.value.exit_code == 4
        assert caught.value.pid == child.pid and str(child.pid) in str(caught.value)
        assert caught.value.started_at is not None
        info = lock_info(tmp_path)
        assert (info.pid, info.holder) == (child.pid, "reconcile (test)")
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.join(10)
    assert lock_info(tmp_path) is None  # the kernel dropped it with the process
    with run_lock(tmp_path, "after the crash") as mine:
        assert mine.pid == os.getpid()
        assert lock_info(tmp_path).holder == "after the crash"
    assert lock_info(tmp_path) is None


def test_run_lock_in_one_process_is_not_reentrant(tmp_path: Path) -> None:
    assert lock_info(tmp_path) is None  # no file yet
    with run_lock(tmp_path, "first"):
        with pytest.raises(LockHeld, match="first"):
            with run_lock(tmp_path, "second"):
                pass
    with run_lock(tmp_path, "third"):
        pass


# ---------------------------------------------------------------- v3: epoch, cordon, fence, successors


def test_epoch_only_grows_and_survives_reopen(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    with Store.open(path) as s:
        assert s.epoch() == 0
        assert [s.next_epoch() for _ in range(3)] == [1, 2, 3]
    with Store.open(path) as s:
        assert s.epoch() == 3 and s.next_epoch() == 4


def test_v2_database_gains_v3_columns(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    conn = sqlite3.connect(path)
    for step in MIGRATIONS[:2]:
        for sql in step:
            conn.execute(sql)
    conn.execute("INSERT INTO hosts (name, health, health_since) VALUES ('h1', 'Ready', 1.0)")
    conn.execute("PRAGMA user_version = 2")
    conn.commit()
    conn.close()
    with Store.open(path) as s:
        h = s.get_host("h1")
        assert (h.cordoned, h.fenced_at) == (0, None) and s.epoch() == 0


def test_cordon_and_fence(db: Store) -> None:
    host(db)
    assert db.set_cordon("h1", True).cordoned == 1
    assert db.set_cordon("h1", False).cordoned == 0
    h = db.fence_host("h1", T0, "power switch")
    assert (h.fenced_at, h.fence_detail) == (T0, "power switch")
    assert db.clear_fence("h1").fenced_at is None
    with pytest.raises(StoreError):
        db.fence_host("nope", T0, "x")


def test_successor_keeps_name_spec_and_owner(db: Store) -> None:
    host(db)
    owned = db.add_pod("default", "job-x", SPEC, T0, "Job", "x", "owner-1")
    assert db.succeed_pod(owned.uid, T0).owner_uid == "owner-1"
    old = db.add_pod("default", "web", SPEC, T0)  # a bare pod (no owner object to check)
    db.allocate_pod_ip("h1", "10.244.0.0/24", old.uid)
    new = db.succeed_pod(old.uid, T0 + 1)
    assert new.uid != old.uid and (new.name, new.spec, new.owner_uid) == ("web", SPEC, None)
    assert new.node is None and new.pod_ip is None
    gone = db.get_pod_by_uid(old.uid)
    assert gone.deleting and gone.node == "h1"  # stays until its host confirms
    assert [p for p in db.integrity_check() if "web" in p] == []
