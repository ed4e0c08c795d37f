"""Chaos on the lab: faults that heal themselves, a history recorder, and checkers.

    with Partition(lab, "node2", heal_after=10) as fault, Recorder(lab) as rec:
        ...                                    # the scenario, e.g. a `reconcile --watch`
    assert not double_runs(rec.samples)

Faults (each heals itself from a timer thread after `heal_after` seconds, even when the
test body fails or hangs; leaving the `with` block heals it too, and healing twice is
harmless):

- Crash: the host's init SIGKILLed (lab.host_crash), booted again on heal (lab.host_start).
- Partition: the host's eth0 down (lab.host_link): connects and sessions time out.
- Hang: SIGSTOP to every process of the host (its init and its descendants, plus every
  process in its cgroup subtree, by pid with the start time checked), SIGCONT on heal.
  TCP still completes handshakes (the kernel does that), but sshd never answers.
- PacketLoss: an nftables table of our own (`inet podctl_chaos`) in the host's network
  namespace that drops a share of packets both ways; the table is deleted on heal.
- Flap: a thread that takes the host's link down and up every `period` seconds.

The Recorder polls, every ~0.3 s in a thread, the store read-only (sqlite3
`file:...?mode=ro`: pods, hosts, new events) and the ground truth, read on the machine
itself rather than over SSH (so it keeps seeing a host that is partitioned or hung):
each host's pids cgroup `podctl/<uid>` (a copy runs when a process there is not
stopped) and its /var/lib/podctl/pods/<uid>/pod.json (the pod's name). Samples are
(time, host, namespace/name, uid, running).

PODCTL_CHAOS_SCALE (default 1) scales the long durations: 0.5 halves them (CI).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Self

from orchestrator import lab as labmod

SCALE = float(os.environ.get("PODCTL_CHAOS_SCALE", "1") or "1")
NFT_TABLE = "podctl_chaos"
UID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


def scaled(seconds: float, minimum: float = 0.0) -> float:
    """A scenario's duration under PODCTL_CHAOS_SCALE, never below `minimum`."""
    return max(minimum, seconds * SCALE)


def wait_for(check, timeout: float, step: float = 0.25):
    """check() until it returns something truthy (returned) or `timeout` passes (None)."""
    end = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() >= end:
            return None
        time.sleep(step)


# ---------------------------------------------------------------- the CLI, with deadlines


@dataclass
class Call:
    args: tuple[str, ...]
    deadline: float
    elapsed: float
    rc: int | None  # None: killed at its deadline
    stdout: str = ""
    stderr: str = ""
    env: dict = field(default_factory=dict)

    @property
    def in_time(self) -> bool:
        return self.rc is not None and self.elapsed <= self.deadline


class Cli:
    """The real CLI (`python -m orchestrator.cli`), every call with a deadline; every
    call is recorded in `calls`, so a test can assert that all ended in time."""

    def __init__(self, env: dict):
        self.env = dict(env)
        self.calls: list[Call] = []
        self._lock = threading.Lock()

    def __call__(self, *args: str, input: str | None = None, deadline: float = 90, check: bool = False,
                 extra_env: dict | None = None) -> Call:
        env = {**self.env, **(extra_env or {})}
        began = time.monotonic()
        try:
            r = subprocess.run([sys.executable, "-m", "orchestrator.cli", *args], input=input, env=env,
                               capture_output=True, text=True, timeout=deadline, check=False)
            call = Call(args, deadline, time.monotonic() - began, r.returncode, r.stdout, r.stderr,
                        extra_env or {})
        except subprocess.TimeoutExpired as exc:
            out = exc.stdout.decode(errors="replace") if isinstance(exc.stdout, bytes) else (exc.stdout or "")
            err = exc.stderr.decode(errors="replace") if isinstance(exc.stderr, bytes) else (exc.stderr or "")
            call = Call(args, deadline, time.monotonic() - began, None, out, err, extra_env or {})
        with self._lock:
            self.calls.append(call)
        if check and call.rc != 0:
            raise AssertionError(f"podctl {' '.join(args)} -> {call.rc} after {call.elapsed:.1f}s\n"
                                 f"{call.stdout}\n{call.stderr}")
        return call

    def late(self) -> list[str]:
        """Calls that did not end within their deadline."""
        return [f"podctl {' '.join(c.args)}: {'killed at' if c.rc is None else 'took'} "
                f"{c.elapsed:.1f}s (deadline {c.deadline:.0f}s)" for c in self.calls if not c.in_time]

    def get(self, what: str) -> list[dict]:
        r = self("get", what, "-o", "json", deadline=60)
        assert r.rc in (0, 2), f"get {what} -o json -> {r.rc}: {r.stderr}"
        return json.loads(r.stdout)["items"]


class Watch:
    """`podctl reconcile --watch --interval I --for D` in the background, its output
    collected by a thread; `stop()` sends SIGTERM (the loop ends after its run) and
    waits, recording whether it ended within `duration + slack`."""

    def __init__(self, cli: Cli, duration: float, interval: float = 1.0, slack: float = 30.0, args=()):
        self.cli, self.duration, self.deadline = cli, duration, duration + slack
        argv = [sys.executable, "-m", "orchestrator.cli", *args, "reconcile", "--watch",
                "--interval", str(interval), "--for", str(duration)]
        self.began = time.monotonic()
        self.proc = subprocess.Popen(argv, env=cli.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self.rc: int | None = None
        self._recorded = False

    def _read(self) -> None:
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))

    @property
    def output(self) -> str:
        return "\n".join(self.lines)

    def wait(self) -> int | None:
        """Until the watch ends by itself (its --for), at most until its deadline."""
        left = self.deadline - (time.monotonic() - self.began)
        try:
            self.rc = self.proc.wait(timeout=max(0.1, left))
        except subprocess.TimeoutExpired:
            self.stop()
        return self._done()

    def stop(self) -> int | None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            left = self.deadline - (time.monotonic() - self.began)
            try:
                self.proc.wait(timeout=max(15.0, left))
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self._done()

    def _done(self) -> int | None:
        elapsed = time.monotonic() - self.began
        self._reader.join(timeout=5)
        rc = self.proc.returncode
        timed_out = elapsed > self.deadline or rc is None or rc < 0
        with self.cli._lock:
            if not self._recorded:
                self._recorded = True
                self.cli.calls.append(Call(("reconcile", "--watch", "--for", str(self.duration)), self.deadline,
                                           elapsed, None if timed_out else rc, self.output))
        self.rc = rc
        return rc

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


# ---------------------------------------------------------------- lab internals, read-only


def _paths(lab) -> labmod._Paths:
    return labmod._Paths(lab.home)


def host_init(lab, name: str) -> tuple[int, int] | None:
    """(pid, start time) of the host's init, None if the host is down."""
    entry = labmod._load_state(_paths(lab))["hosts"].get(name) or {}
    pid, start = entry.get("pid"), entry.get("start")
    return (pid, start) if labmod._alive(pid, start) else None


def _stat(pid: int) -> tuple[str, int, int] | None:
    """(state, ppid, start time) of a process, None if gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return fields[0], int(fields[1]), int(fields[19])


def host_processes(lab, name: str) -> dict[int, int]:
    """{pid: start time} of every process of a lab host: its init, the init's
    descendants (the host's PID namespace and the containers' nested ones), and every
    process in the host's cgroup subtree."""
    init = host_init(lab, name)
    if init is None:
        return {}
    children: dict[int, list[int]] = defaultdict(list)
    starts: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        st = _stat(int(entry))
        if st is None or st[0] in ("Z", "X"):
            continue
        children[st[1]].append(int(entry))
        starts[int(entry)] = st[2]
    found = {init[0]: init[1]}
    todo = [init[0]]
    while todo:
        for child in children.get(todo.pop(), ()):
            if child not in found and child in starts:
                found[child] = starts[child]
                todo.append(child)
    for root in labmod.host_cgroups(lab.home, name).values():
        for pid in labmod._cgroup_pids(str(root)):
            st = _stat(pid)
            if st is not None and st[0] not in ("Z", "X") and pid != os.getpid():
                found.setdefault(pid, st[2])
    return found


def _signal(pid: int, start: int, sig: int) -> bool:
    """Send sig to pid if it is still the process that started at `start` (pidfd: no
    race with pid reuse)."""
    try:
        fd = os.pidfd_open(pid)
    except OSError:
        return False
    try:
        st = _stat(pid)
        if st is None or st[2] != start:
            return False
        signal.pidfd_send_signal(fd, sig)
        return True
    except OSError:
        return False
    finally:
        os.close(fd)


# ---------------------------------------------------------------- faults


_ACTIVE: list[Fault] = []  # every fault not healed yet, for heal_all()
_ACTIVE_LOCK = threading.Lock()


class Fault:
    """A fault on lab host(s) that heals itself `heal_after` seconds after it started."""

    what = "fault"

    def __init__(self, lab, host: str, heal_after: float):
        self.lab, self.host, self.heal_after = lab, host, heal_after
        self.started: float | None = None  # time.time() stamps, comparable with samples
        self.healed: float | None = None
        self.heal_error: BaseException | None = None
        self._lock = threading.Lock()
        self._timer: threading.Timer | None = None

    def inject(self) -> None:
        raise NotImplementedError

    def restore(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        with _ACTIVE_LOCK:
            _ACTIVE.append(self)
        self._timer = threading.Timer(self.heal_after, self.heal)
        self._timer.daemon = True
        try:
            self.started = time.time()
            self.inject()
        except BaseException:
            self.heal()
            raise
        self._timer.start()
        return self

    def heal(self) -> None:
        """Undo the fault (once; later calls wait for the first to finish)."""
        with self._lock:
            if self.healed is not None:
                return
            try:
                self.restore()
            except BaseException as exc:  # kept for the test to see; heal_all retries
                self.heal_error = exc
                raise
            self.healed = time.time()
            with _ACTIVE_LOCK:
                if self in _ACTIVE:
                    _ACTIVE.remove(self)

    def wait_healed(self, timeout: float | None = None) -> bool:
        end = time.monotonic() + (self.heal_after + 30 if timeout is None else timeout)
        while self.healed is None and time.monotonic() < end:
            time.sleep(0.05)
        return self.healed is not None

    def __exit__(self, *exc) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self.heal()

    def __repr__(self) -> str:
        return f"{self.what}({self.host}, heal after {self.heal_after:.0f}s)"


class Crash(Fault):
    what = "crash"

    def inject(self) -> None:
        labmod.host_crash(self.lab.home, self.host)

    def restore(self) -> None:
        labmod.host_start(self.lab.home, self.host)


class Partition(Fault):
    what = "partition"

    def inject(self) -> None:
        labmod.host_link(self.lab.home, self.host, up=False)

    def restore(self) -> None:
        if host_init(self.lab, self.host) is not None:  # a crashed host's netns is new anyway
            labmod.host_link(self.lab.home, self.host, up=True)


class PartitionAll(Fault):
    """Every lab host's link down at once: the controller is the one cut off."""

    what = "partition-all"

    def __init__(self, lab, heal_after: float):
        super().__init__(lab, ",".join(n for n, _ in lab.hosts), heal_after)

    def inject(self) -> None:
        for name, _ in self.lab.hosts:
            labmod.host_link(self.lab.home, name, up=False)

    def restore(self) -> None:
        for name, _ in self.lab.hosts:
            if host_init(self.lab, name) is not None:
                labmod.host_link(self.lab.home, name, up=True)


class Hang(Fault):
    """SIGSTOP every process of the host (repeatedly, until no unstopped one is left:
    a process may fork while we look); SIGCONT to exactly those on heal."""

    what = "hang"

    def __init__(self, lab, host: str, heal_after: float):
        super().__init__(lab, host, heal_after)
        self.stopped: dict[int, int] = {}

    def inject(self) -> None:
        init = host_init(self.lab, self.host)
        if init is None:
            raise RuntimeError(f"{self.host} is not running: nothing to hang")
        # init first: it restarts sshd and reaps, so stopping it first keeps the tree still
        if _signal(*init, signal.SIGSTOP):
            self.stopped[init[0]] = init[1]
        for _ in range(50):
            fresh = {p: s for p, s in host_processes(self.lab, self.host).items() if p not in self.stopped}
            if not fresh:
                break
            for pid, start in fresh.items():
                if _signal(pid, start, signal.SIGSTOP):
                    self.stopped[pid] = start
        else:
            raise RuntimeError(f"{self.host}: processes kept appearing while stopping them")

    def running(self) -> list[int]:
        """Processes of the host that are not stopped (should be none while hung)."""
        out = []
        for pid in host_processes(self.lab, self.host):
            st = _stat(pid)
            if st is not None and st[0] not in ("T", "t", "Z", "X"):
                out.append(pid)
        return out

    def restore(self) -> None:
        for pid, start in self.stopped.items():
            _signal(pid, start, signal.SIGCONT)
        # anything of the host still stopped (e.g. a process we missed): resume it too
        for pid, start in host_processes(self.lab, self.host).items():
            st = _stat(pid)
            if st is not None and st[0] == "T":
                _signal(pid, start, signal.SIGCONT)


def _netns_exec(host: str, argv: list[str], input: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(["ip", "netns", "exec", labmod._netns(host), *argv], input=input,
                          capture_output=True, text=True, timeout=30, check=False)


def nft_available(lab=None) -> str | None:
    """None if nftables works here (in a lab host's network namespace when `lab` is
    given), else why not."""
    import shutil

    if shutil.which("nft") is None:
        return "nft (nftables) is not installed; scripts/install.sh installs it"
    if lab is not None:
        host = lab.hosts[0][0]
        r = _netns_exec(host, ["nft", "list", "tables"])
        if r.returncode != 0:
            return f"nft does not work in {host}'s network namespace: {r.stderr.strip()[-300:]}"
    return None


class PacketLoss(Fault):
    """`percent`% of the host's packets dropped, both ways (nftables in its netns)."""

    what = "packet-loss"

    def __init__(self, lab, host: str, heal_after: float, percent: int = 20):
        super().__init__(lab, host, heal_after)
        self.percent = percent

    def rules(self) -> str:
        p = int(self.percent)
        return (f"table inet {NFT_TABLE} {{\n"
                f"  chain input {{ type filter hook input priority -300; policy accept; "
                f"numgen random mod 100 < {p} counter drop; }}\n"
                f"  chain output {{ type filter hook output priority -300; policy accept; "
                f"numgen random mod 100 < {p} counter drop; }}\n"
                "}\n")

    def inject(self) -> None:
        r = _netns_exec(self.host, ["nft", "-f", "-"], input=self.rules())
        if r.returncode != 0:
            raise RuntimeError(f"nft in {self.host}: {r.stderr.strip()}")

    def dropped(self) -> int:
        r = _netns_exec(self.host, ["nft", "list", "table", "inet", NFT_TABLE])
        return sum(int(n) for n in re.findall(r"packets (\d+) bytes \d+ drop", r.stdout))

    def restore(self) -> None:
        if host_init(self.lab, self.host) is None:
            return
        r = _netns_exec(self.host, ["nft", "list", "tables"])
        if f"inet {NFT_TABLE}" in r.stdout:
            r = _netns_exec(self.host, ["nft", "delete", "table", "inet", NFT_TABLE])
            if r.returncode != 0:
                raise RuntimeError(f"nft delete table in {self.host}: {r.stderr.strip()}")


class Flap(Fault):
    """The host's link down for `first_down` s (default `period`), then up and down
    every `period` s, until `heal_after` s have passed; up on heal."""

    what = "flap"

    def __init__(self, lab, host: str, heal_after: float, period: float = 3.0, first_down: float | None = None):
        super().__init__(lab, host, heal_after)
        self.period = period
        self.first_down = period if first_down is None else first_down
        self.toggles: list[tuple[float, bool]] = []  # (time, up)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _set(self, up: bool) -> None:
        labmod.host_link(self.lab.home, self.host, up=up)
        self.toggles.append((time.time(), up))

    def _loop(self) -> None:
        up, wait = False, self.first_down
        while not self._stop.wait(wait):
            up, wait = not up, self.period
            try:
                self._set(up)
            except Exception:  # noqa: BLE001 (the lab went away: heal() reports it)
                return

    def inject(self) -> None:
        self._set(False)
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()

    def restore(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        if host_init(self.lab, self.host) is not None:
            self._set(True)


def heal_all(lab) -> list[str]:
    """Heal every fault still active, then make sure the lab itself is whole: every
    host running, links up, no chaos nftables table, nothing stopped. Returns what it
    had to repair."""
    repaired = []
    with _ACTIVE_LOCK:
        active = list(_ACTIVE)
    for f in active:
        try:
            f.heal()
            repaired.append(f"healed {f!r}")
        except Exception as exc:  # noqa: BLE001 (reported; the checks below repair the lab)
            repaired.append(f"could not heal {f!r}: {exc}")
    for name, _ in lab.hosts:
        if host_init(lab, name) is None:
            labmod.host_start(lab.home, name)
            repaired.append(f"{name} was down: started")
            continue
        link = _netns_exec(name, ["ip", "-o", "link", "show", "eth0"])
        if "state DOWN" in link.stdout or ",UP" not in link.stdout:
            labmod.host_link(lab.home, name, up=True)
            repaired.append(f"{name}: link set up")
        if nft_available() is None and f"inet {NFT_TABLE}" in _netns_exec(name, ["nft", "list", "tables"]).stdout:
            _netns_exec(name, ["nft", "delete", "table", "inet", NFT_TABLE])
            repaired.append(f"{name}: nft table removed")
        for pid, start in host_processes(lab, name).items():
            st = _stat(pid)
            if st is not None and st[0] == "T":
                _signal(pid, start, signal.SIGCONT)
                repaired.append(f"{name}: pid {pid} resumed")
    return repaired


# ---------------------------------------------------------------- history


@dataclass(frozen=True)
class Sample:
    """Ground truth: pod copy `uid` (namespace/name) on `host` at `t`; running = some
    process of it exists and is not stopped."""
    t: float
    host: str
    name: str
    uid: str
    running: bool
    procs: int


@dataclass(frozen=True)
class StoreSample:
    t: float
    pods: tuple  # (uid, namespace/name, node, deleting, owner_kind)
    health: dict  # host -> health


class Recorder:
    """Polls the store (read-only) and every host's ground truth every `every` s."""

    def __init__(self, lab, every: float = 0.3):
        self.lab, self.every = lab, every
        self.samples: list[Sample] = []
        self.ticks: list[float] = []
        self.store: list[StoreSample] = []
        self.events: list[dict] = []
        self.errors: list[str] = []
        self.names: dict[str, str] = {}  # uid -> namespace/name, from pod.json and the store
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._cg: dict[str, Path] = {}
        self._last_event = 0
        self.started = self.stopped = 0.0

    # ------------------------------------------------------------ reading

    def _cgroup_dir(self, host: str) -> Path:
        if host not in self._cg:
            roots = labmod.host_cgroups(self.lab.home, host)
            root = roots.get("pids") or roots.get("unified")
            self._cg[host] = Path(root) / "podctl"
        return self._cg[host]

    def _pod_name(self, host: str, uid: str) -> str | None:
        if uid in self.names:
            return self.names[uid]
        f = _paths(self.lab).host(host) / "var-lib-podctl" / "pods" / uid / "pod.json"
        try:
            meta = json.loads(f.read_text())
            self.names[uid] = f"{meta.get('namespace', 'default')}/{meta['name']}"
            return self.names[uid]
        except (OSError, ValueError, KeyError):
            return None

    def truth(self, t: float) -> list[Sample]:
        out = []
        for host, _ in self.lab.hosts:
            uids = set()
            cg = self._cgroup_dir(host)
            try:
                uids |= {d.name for d in cg.iterdir() if d.is_dir() and UID_RE.match(d.name)}
            except OSError:
                pass
            pods_dir = _paths(self.lab).host(host) / "var-lib-podctl" / "pods"
            try:
                uids |= {d.name for d in pods_dir.iterdir() if UID_RE.match(d.name)}
            except OSError:
                pass
            for uid in uids:
                pids = labmod._cgroup_pids(str(cg / uid)) if (cg / uid).is_dir() else set()
                states = [st[0] for st in map(_stat, pids) if st is not None and st[0] not in ("Z", "X")]
                running = any(s not in ("T", "t") for s in states)
                name = self._pod_name(host, uid) or f"?/{uid}"
                out.append(Sample(t, host, name, uid, running, len(states)))
        return out

    def _read_store(self, conn: sqlite3.Connection, t: float) -> None:
        pods = conn.execute("SELECT uid, namespace, name, node, deletion_requested_at, owner_kind FROM pods").fetchall()
        hosts = dict(conn.execute("SELECT name, health FROM hosts").fetchall())
        rows = []
        for uid, ns, name, node, deleting, owner_kind in pods:
            self.names.setdefault(uid, f"{ns}/{name}")
            rows.append((uid, f"{ns}/{name}", node, deleting is not None, owner_kind))
        self.store.append(StoreSample(t, tuple(sorted(rows)), hosts))
        for r in conn.execute("SELECT id, at, type, reason, message, kind, name, uid FROM events WHERE id > ?"
                              " ORDER BY id", (self._last_event,)).fetchall():
            self._last_event = r[0]
            self.events.append(dict(zip(("id", "at", "type", "reason", "message", "kind", "name", "uid"), r)))

    def _loop(self) -> None:
        db = f"file:{self.lab.home / 'state.db'}?mode=ro"
        while True:
            t = time.time()
            try:
                # a connection per poll: a long-lived reader could pin a stale WAL index
                with contextlib.closing(sqlite3.connect(db, uri=True, timeout=2)) as conn:
                    self._read_store(conn, t)
            except sqlite3.Error as exc:
                self.errors.append(f"{t:.1f} store: {exc}")
            try:
                self.samples += self.truth(t)
                self.ticks.append(t)
            except Exception as exc:  # noqa: BLE001 (a host booting: its dirs come and go)
                self.errors.append(f"{t:.1f} hosts: {exc!r}")
            if self._stop.wait(max(0.0, self.every - (time.time() - t))):
                break

    def start(self) -> Recorder:
        self._last_event = ro_query(self.lab.home, "SELECT COALESCE(MAX(id), 0) FROM events")[0][0]
        self.started = time.time()
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        self.stopped = time.time()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # ------------------------------------------------------------ views

    def running_now(self, prefix: str = "") -> dict[str, list[tuple[str, str]]]:
        """The last tick's running copies: name -> [(host, uid)]."""
        last = self.ticks[-1] if self.ticks else None
        out: dict[str, list] = defaultdict(list)
        for s in self.samples:
            if s.t == last and s.running and s.name.split("/", 1)[-1].startswith(prefix):
                out[s.name].append((s.host, s.uid))
        return dict(out)

    def health_of(self, host: str) -> list[tuple[float, str]]:
        """The host's health over time, one entry per change."""
        out = []
        for s in self.store:
            h = s.health.get(host)
            if not out or out[-1][1] != h:
                out.append((s.t, h))
        return out

    def summary(self) -> str:
        return (f"{len(self.ticks)} ticks over {self.stopped - self.started:.1f}s, {len(self.samples)} samples, "
                f"{len(self.store)} store reads, {len(self.events)} events, {len(self.errors)} read errors")


# ---------------------------------------------------------------- checkers


def double_runs(samples: list[Sample], names=None) -> list[tuple[float, str, list[tuple[str, str]]]]:
    """Ticks where one pod name ran as two copies at once (two hosts, or two uids on
    one host): [(time, name, [(host, uid), ...])]. `names`: a predicate on the name."""
    by_tick: dict[tuple[float, str], list] = defaultdict(list)
    for s in samples:
        if s.running and (names is None or names(s.name)):
            by_tick[(s.t, s.name)].append((s.host, s.uid))
    return sorted((t, name, sorted(copies)) for (t, name), copies in by_tick.items() if len(copies) > 1)


def overlap_windows(doubles) -> dict[str, tuple[float, float, int]]:
    """name -> (first, last, ticks) of the double runs found by double_runs."""
    out: dict[str, tuple[float, float, int]] = {}
    for t, name, _ in doubles:
        first, last, n = out.get(name, (t, t, 0))
        out[name] = (min(first, t), max(last, t), n + 1)
    return out


def copies_by_name(samples: list[Sample], store: list[StoreSample] = ()) -> dict[str, set[str]]:
    """Every uid seen per pod name (ground truth and store): a name with 3 uids was
    re-placed twice."""
    out: dict[str, set[str]] = defaultdict(set)
    for s in samples:
        out[s.name].add(s.uid)
    for st in store:
        for uid, name, *_ in st.pods:
            out[name].add(uid)
    return dict(out)


def ever_not_ready(rec: Recorder, host: str, since: float = 0.0) -> list[str]:
    """Evidence that `host` was NotReady: store samples and NodeNotReady events."""
    out = [f"{t:.1f}: hosts.health={h}" for t, h in rec.health_of(host) if h == "NotReady" and t >= since]
    out += [f"{e['at']:.1f}: event {e['reason']}: {e['message']}" for e in rec.events
            if e["kind"] == "Node" and e["name"] == host and e["reason"] == "NodeNotReady" and e["at"] >= since]
    return out


ORPHAN_SCRIPT = r"""
shopt -s nullglob
for d in /var/lib/podctl/pods/*/; do d=${d%/}; echo "dir ${d##*/}"; done
for d in /run/podctl/pods/*/; do d=${d%/}; echo "run ${d##*/}"; done
for d in /sys/fs/cgroup/*/podctl/*/ /sys/fs/cgroup/podctl/*/; do d=${d%/}; echo "cgroup ${d##*/}"; done
while read -r _ _ _ _ mp _; do
  [[ $mp =~ /pods/([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}) ]] && echo "mount ${BASH_REMATCH[1]}"
done </proc/self/mountinfo
for l in /sys/class/net/pv*; do echo "veth ${l##*/pv}"; done
for p in /proc/[0-9]*; do
  argv=()
  { mapfile -d '' argv <"$p/cmdline"; } 2>/dev/null || true
  c="${argv[*]}"
  [[ $c =~ /pods/([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}) ]] && echo "proc ${BASH_REMATCH[1]}"
done
true
"""


def host_traces(lab, host: str) -> dict[str, set[str]]:
    """Over SSH: every podctl trace on a host by kind (dir, run, cgroup, mount, veth,
    proc) -> uids (veths: the 12-hex prefix their name carries)."""
    r = lab.ssh(host, "bash -s", input=ORPHAN_SCRIPT, timeout=30)
    assert r.returncode == 0, f"{host}: listing traces failed: {r.stderr}"
    out: dict[str, set[str]] = defaultdict(set)
    for line in r.stdout.split("\n"):
        if " " in line:
            kind, uid = line.split(" ", 1)
            out[kind].add(uid.strip())
    return dict(out)


def ro_query(home: Path, sql: str, args: tuple = (), tries: int = 5) -> list[tuple]:
    """One read-only query on $PODCTL_HOME/state.db, on a connection opened and closed
    for it (a long-lived reader could pin a stale WAL index in this process). A read
    that fails is retried; if it keeps failing, the error says whether the file itself
    is damaged (checked by a separate sqlite3 process)."""
    err = None
    for attempt in range(tries):
        try:
            with contextlib.closing(sqlite3.connect(f"file:{home / 'state.db'}?mode=ro", uri=True,
                                                    timeout=5)) as conn:
                return conn.execute(sql, args).fetchall()
        except sqlite3.DatabaseError as exc:
            err = exc
            time.sleep(0.1 * (attempt + 1))
    script = ("import sqlite3, sys; c = sqlite3.connect(sys.argv[1]); "
              "print(c.execute('PRAGMA integrity_check').fetchall())")
    check = subprocess.run([sys.executable, "-c", script, str(home / "state.db")], capture_output=True, text=True,
                           timeout=60, check=False)
    raise AssertionError(f"state.db unreadable {tries} times ({err}); integrity_check from another process: "
                         f"{check.stdout.strip() or check.stderr.strip()}")


def store_pods(home: Path) -> list[tuple[str, str, str | None, bool]]:
    """(uid, namespace/name, node, deleting) of every pod row, read-only."""
    rows = ro_query(home, "SELECT uid, namespace, name, node, deletion_requested_at FROM pods")
    return [(u, f"{ns}/{n}", node, d is not None) for u, ns, n, node, d in rows]


def orphans(lab) -> list[str]:
    """Traces on a host of a pod the store does not know, or knows bound elsewhere, or
    is still deleting (after a heal and a reconcile or two there should be none)."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=len(lab.hosts)) as pool:
        traces = dict(zip([h for h, _ in lab.hosts], pool.map(lambda h: host_traces(lab, h[0]), lab.hosts)))
    rows = {u: (name, node, deleting) for u, name, node, deleting in store_pods(lab.home)}
    prefixes = {u.replace("-", "")[:12]: u for u in rows}
    problems = []
    for host, found in traces.items():
        for kind, uids in sorted(found.items()):
            for uid in sorted(uids):
                full = prefixes.get(uid) if kind == "veth" else uid
                row = rows.get(full) if full else None
                if row is None:
                    problems.append(f"{host}: {kind} of unknown pod {uid}")
                elif row[1] != host:
                    problems.append(f"{host}: {kind} of {row[0]} ({uid}), which the store binds to {row[1]}")
                elif row[2]:
                    problems.append(f"{host}: {kind} of {row[0]} ({uid}), still being deleted")
    return problems


def integrity(home: Path) -> list[str]:
    """SQLite's PRAGMA integrity_check (read-only), then Store.integrity_check()."""
    from orchestrator.store import Store

    problems = [f"PRAGMA integrity_check: {r[0]}" for r in ro_query(home, "PRAGMA integrity_check") if r[0] != "ok"]
    with Store.open(home / "state.db") as store:
        problems += store.integrity_check()
    return problems
