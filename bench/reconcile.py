#!/usr/bin/env python3
"""A no-op `podctl reconcile` against ansible-playbook and pyinfra, on the same lab hosts.

    python3 bench/reconcile.py [--hosts 50] [--runs 3] [--big-hosts 200] [--skip-200]

Needs root: it starts its own lab (N hosts, then --big-hosts hosts) under a temporary
PODCTL_HOME and removes it at the end, also on failure, Ctrl-C, SIGTERM or the overall
--timeout. Only one lab can exist on a machine, so it first takes the machine-wide lock
the e2e tests take (/run/lock/podctl-e2e.lock, waiting up to --lock-wait seconds).

Setup: one small pod per host (spec.nodeName: nodeI, busybox `sleep 3600`), recorded in
the store and created by one reconcile, so every host has
/var/lib/podctl/pods/<uid>/pod.json and containers/<c>/state.json. Then, in --runs
interleaved rounds after one unmeasured warm-up round (which also checks each tool
works), each of these is timed as wall time around the whole process:

  podctl     `python -m orchestrator.cli reconcile` (PODCTL_HOME set), as a user runs it;
             must print "nothing to do" and exit 0. Two ways:
               warm  the SSH connection keeper running (transport/keeper.py), as for a
                     cron run every minute: the run after the warm-up, whose run
                     started the keeper and made its connections;
               cold  PODCTL_SSH_KEEPER=0: direct connections, 50 SSH handshakes a run.
             Its modules' bytecode is cached (PYTHONPYCACHEPREFIX in a temp dir), as in
             an installed podctl; when this shell sets PYTHONDONTWRITEBYTECODE, the warm
             CLI is also timed as it then runs (every module compiled on every run).
             Also shown: Controller.run() in this process (warm; no interpreter start,
             no imports), `python -c 'import orchestrator.cli'` and `python -c pass`.
  ansible    ansible-playbook: on every host a shell task cats pod.json and every
             state.json (registered), then an assert that each container is running.
             forks = host count, pipelining on, gather_facts off, interpreter
             /usr/bin/python3, ssh_args -C -o ControlMaster=auto -o ControlPersist=..,
             host key checking on with the lab's known_hosts. Two ways:
               warm  one ControlPath dir for all its warm runs and ControlPersist=300s
                     (its default 60s could lapse between this bench's rounds), so each
                     measured run finds the masters of the one before (warm-up first);
               cold  its defaults (ControlPersist=60s) with a fresh ControlPath dir per
                     run, masters closed after it.
  pyinfra    a deploy file with one server.shell operation running the same check on
             every host; --parallel = host count, -y, the lab's key, known_hosts and
             ssh_strict_host_key_checking=yes. pyinfra has no connection reuse across
             runs: every run is cold.

The goal ratios are computed like for like: warm podctl against warm ansible, cold
against cold (ansible and pyinfra); pyinfra against warm podctl is shown too, marked as
comparing each tool's best cron run (pyinfra cannot keep connections).

Besides wall time, each figure has its CPU time: controller side (user+sys of the
command's processes, plus, for warm podctl, the keeper's CPU during the run) and lab
hosts (sshd, shells, scripts: summed over the hosts' cgroups). The lab's hosts share
this machine's cores with the controller, and other people's processes may too (the
summary says how busy the machine was): the CPU figures are the ones such load barely
moves. The keeper the bench starts lives in its temporary PODCTL_HOME and is stopped
(by pid) before each lab goes down, also on failure.

Before timing, each peer is run once against a known_hosts without the host's key and
must fail: host key checking is really on. A peer that cannot be found or installed
(pip, into a venv at $PODCTL_BENCH_PEERS, default ~/.cache/podctl-bench/peers, so the
project's environment is not changed) is skipped with a message. Figures are medians.
Only loopback and the lab's 10.213.0.0/16 hosts are contacted.
"""

from __future__ import annotations

import argparse
import asyncio
import fcntl
import json
import os
import platform
import re
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from orchestrator import lab  # noqa: E402
from orchestrator.config import Config  # noqa: E402
from orchestrator.controller import Controller, open_store  # noqa: E402
from orchestrator.errors import LabError  # noqa: E402
from orchestrator.images import ImageStore, build_busybox_image  # noqa: E402
from orchestrator.manifests import parse_documents  # noqa: E402
from orchestrator.transport import keeper_client  # noqa: E402

SESSION_LOCK = Path("/run/lock/podctl-e2e.lock")  # the same lock as tests/e2e/conftest.py
PEER_VENV = Path(os.environ.get("PODCTL_BENCH_PEERS", "~/.cache/podctl-bench/peers")).expanduser()
REMOTE_PYTHON = "/usr/bin/python3"  # lab hosts share the machine's /usr, not its /root
PODS = "/var/lib/podctl/pods"
GOAL_SECONDS = 1.0
GOAL_ANSIBLE_RATIO = 25.0
GOAL_PYINFRA_RATIO = 2.5

POD = """
apiVersion: v1
kind: Pod
metadata: {{name: {name}}}
spec:
  nodeName: {node}
  terminationGracePeriodSeconds: 0
  containers:
  - {{name: app, image: busybox, command: [sleep, "3600"]}}
"""

# The check both peers run on every host: read pod.json and every container's state.json.
CAT = f"cat {PODS}/*/pod.json >/dev/null && cat {PODS}/*/containers/*/state.json"
# pyinfra's version decides on the host (ansible's on the controller, in an assert).
CHECK_ON_HOST = (f"cat {PODS}/*/pod.json >/dev/null && n=0 && "
                 f"for f in {PODS}/*/containers/*/state.json; do "
                 "grep -q '\"state\":{\"running\"' \"$f\" || { echo \"not running: $f\"; exit 1; }; "
                 "n=$((n+1)); done && [ \"$n\" -gt 0 ]")

PLAYBOOK = f"""\
- hosts: all
  gather_facts: false
  tasks:
    - name: read the pod status files
      ansible.builtin.shell: {json.dumps(CAT)}
      register: st
      changed_when: false
    - name: every container is running
      ansible.builtin.assert:
        quiet: true
        that:
          - st.stdout_lines | length > 0
          - st.stdout_lines | map('from_json') | selectattr('state.running', 'undefined') | list | length == 0
"""

DEPLOY = f"""\
from pyinfra.operations import server

server.shell(name="check the pod status files", commands=[{CHECK_ON_HOST!r}])
"""


class Abort(BaseException):
    """A signal or the overall timeout: unwind through every finally (lab down)."""


def _on_signal(signum, frame):
    raise Abort(f"interrupted by {signal.Signals(signum).name}")


def _on_alarm(signum, frame):
    raise Abort("the overall --timeout expired")


def say(msg: str = "") -> None:
    print(msg, flush=True)


# ---------------------------------------------------------------- the machine-wide lock


class SessionLock:
    """tests/e2e/conftest.py's lock: flock on a file that is removed on release."""

    def __init__(self, path: Path):
        self.path = path
        self.fd: int | None = None

    def acquire(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        told = False
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                if os.path.exists(self.path) and os.stat(self.path).st_ino == os.fstat(fd).st_ino:
                    self.fd = fd
                    return
            except BlockingIOError:
                pass
            os.close(fd)
            if time.monotonic() > deadline:
                raise SystemExit(f"another session holds {self.path} for more than {timeout:.0f}s; try later")
            if not told:
                say(f"waiting for {self.path} (an e2e session or another bench holds it; up to {timeout:.0f}s)")
                told = True
            time.sleep(0.5)

    def release(self) -> None:
        if self.fd is not None:
            self.path.unlink(missing_ok=True)
            os.close(self.fd)
            self.fd = None


# ---------------------------------------------------------------- processes we start

_children: set[subprocess.Popen] = set()
_cleanups: list = []  # run at the end, also on failure: ansible's warm ControlPersist masters


def _kill_group(proc: subprocess.Popen) -> None:
    """Kill the process group of a child we started (it leads its own session)."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        pass


@dataclass
class Run:
    rc: int
    out: str
    err: str
    seconds: float
    cpu: float = 0.0  # user+sys of the command's process tree (what its processes reaped)


def _children_cpu() -> float:
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def run_cmd(argv: list[str], *, env: dict | None = None, cwd: Path | None = None,
            timeout: float = 300, logdir: Path) -> Run:
    """Wall time of a whole process; output goes to files (no pipe a daemon could hold)."""
    logdir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryFile(dir=logdir) as out, tempfile.TemporaryFile(dir=logdir) as err:
        cpu0 = _children_cpu()
        start = time.perf_counter()
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=err, env=env,
                                cwd=cwd, start_new_session=True)
        _children.add(proc)
        try:
            rc = proc.wait(timeout=timeout)
            seconds = time.perf_counter() - start
        except subprocess.TimeoutExpired:
            _kill_group(proc)
            rc, seconds = -9, time.perf_counter() - start
        except BaseException:
            _kill_group(proc)
            raise
        finally:
            _children.discard(proc)
        out.seek(0)
        err.seek(0)
        return Run(rc, out.read().decode(errors="replace"), err.read().decode(errors="replace"), seconds,
                   _children_cpu() - cpu0)


def kill_children() -> None:
    for proc in list(_children):
        _kill_group(proc)


# ---------------------------------------------------------------- peers


@dataclass
class Peer:
    name: str
    exe: Path | None = None
    version: str = ""
    skipped: str = ""  # why, when the peer is not measured
    runs: list[Sample] = field(default_factory=list)  # cold (pyinfra: its only way)
    warm_runs: list[Sample] = field(default_factory=list)  # ansible with ControlPersist kept


def _find(tool: str) -> Path | None:
    for cand in (Path(sys.executable).parent / tool, shutil.which(tool), PEER_VENV / "bin" / tool):
        if cand and os.access(cand, os.X_OK):
            return Path(cand)
    return None


def _install_peers(tmp: Path) -> str:
    """pip install ansible-core and pyinfra into the bench's own venv; '' or why it failed."""
    say(f"installing ansible-core and pyinfra with pip into {PEER_VENV} (once) ...")
    try:
        if not (PEER_VENV / "bin" / "pip").exists():
            r = run_cmd([sys.executable, "-m", "venv", str(PEER_VENV)], timeout=120, logdir=tmp)
            if r.rc != 0:
                return f"python -m venv failed: {r.err.strip()[-300:]}"
        r = run_cmd([str(PEER_VENV / "bin" / "pip"), "install", "-q", "ansible-core", "pyinfra"],
                    timeout=600, logdir=tmp)
        return "" if r.rc == 0 else f"pip install failed (exit {r.rc}): {r.err.strip()[-300:]}"
    except OSError as exc:
        return f"{type(exc).__name__}: {exc}"


def find_peers(install: bool, tmp: Path) -> dict[str, Peer]:
    peers = {"ansible": Peer("ansible"), "pyinfra": Peer("pyinfra")}
    tools = {"ansible": "ansible-playbook", "pyinfra": "pyinfra"}
    if install and any(_find(t) is None for t in tools.values()):
        why = _install_peers(tmp)
        if why:
            say(f"could not install the peers: {why}")
    for key, tool in tools.items():
        peer = peers[key]
        peer.exe = _find(tool)
        if peer.exe is None:
            peer.skipped = (f"{tool} not found (not on PATH, not beside {sys.executable}, not in "
                            f"{PEER_VENV}){'' if install else '; --no-install given'}: skipped")
            say(f"SKIP {key}: {peer.skipped}")
            continue
        r = run_cmd([str(peer.exe), "--version"], timeout=60, logdir=tmp)
        if r.rc != 0:
            peer.skipped = f"`{peer.exe} --version` failed (exit {r.rc}): {(r.err or r.out).strip()[-300:]}"
            say(f"SKIP {key}: {peer.skipped}")
            continue
        first = (r.out or r.err).strip().splitlines()[0] if (r.out or r.err).strip() else "?"
        peer.version = first.strip()
    return peers


# ---------------------------------------------------------------- the lab


class Lab:
    """One lab under a temporary home, removed by down() (idempotent)."""

    def __init__(self, n: int):
        self.n = n
        self.home = Path(tempfile.mkdtemp(prefix="podctl-bench-reconcile-"))
        self.up = False

    @property
    def config(self) -> Config:
        return Config(home=self.home, inventory=None, ssh_keeper=True)

    @property
    def key(self) -> Path:
        return self.home / "lab" / "id_ed25519"

    @property
    def known_hosts(self) -> Path:
        return self.home / "lab" / "known_hosts"

    def hosts(self) -> list[tuple[str, str]]:
        return [(lab.host_name(i), lab.host_address(i)) for i in range(1, self.n + 1)]

    def start(self, wait: float) -> None:
        deadline = time.monotonic() + wait
        while True:
            owner = lab.lab_owner()
            if owner is None:
                break
            if time.monotonic() > deadline:
                raise SystemExit(f"a lab owned by {owner} is up on this machine (one lab per machine); "
                                 "it was not started by this bench, so it is left alone. Try later.")
            time.sleep(1)
        started = time.perf_counter()
        self.up = True  # from here on, down() has something to remove
        lab.lab_up(self.home, self.n)
        build_busybox_image(ImageStore(self.config.images_dir))
        say(f"  lab up: {self.n} hosts in {time.perf_counter() - started:.1f}s (home {self.home})")

    def add_pods(self) -> None:
        config = self.config
        now = time.time()
        with open_store(config) as store:
            for name, _ in self.hosts():
                doc = parse_documents(POD.format(name=f"bench-{name}", node=name), "bench")[0]
                store.add_pod("default", doc.name, dict(doc.raw), now)
        started = time.perf_counter()
        report = asyncio.run(Controller(config).run())
        # (each host also reports its pod network, outcome "network": podnet.py)
        outcomes = [o for r in report.hosts.values() for uid, o in r.outcomes.items() if uid != "network"]
        if report.exit_code != 0 or len(outcomes) != self.n or not all(o.ok for o in outcomes):
            bad = {k: (r.status, r.error) for k, r in report.hosts.items() if r.status != "ok"}
            raise SystemExit(f"setup reconcile did not converge: exit {report.exit_code}, "
                             f"{len(outcomes)} outcomes for {self.n} pods; hosts {bad}")
        say(f"  setup reconcile: {self.n} pods created and running in {time.perf_counter() - started:.1f}s")
        report = asyncio.run(Controller(config).run())
        if report.exit_code != 0 or not report.plan.empty:
            raise SystemExit(f"the second reconcile is not a no-op: exit {report.exit_code}, "
                             f"plan {report.plan.summary()}")

    def stop_keeper(self) -> None:
        """Stop the keeper of this lab's home (by its pid), if one runs."""
        pid = keeper_client.stop(self.config, timeout=15)
        if pid:
            say(f"  keeper pid {pid} stopped")

    def keeper_cpu(self) -> float | None:
        """CPU seconds the keeper of this home has used so far (None: no keeper)."""
        pid = keeper_client.keeper_pid(self.config)
        if pid is None:
            return None
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            return None
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def down(self) -> None:
        try:
            self.stop_keeper()
        except Exception as exc:  # noqa: BLE001 - report, the lab must still go down
            say(f"  could not stop the keeper of {self.home}: {exc}")
        if self.up:
            started = time.perf_counter()
            lab.lab_down(self.home)
            self.up = False
            say(f"  lab down: {self.n} hosts in {time.perf_counter() - started:.1f}s")
        shutil.rmtree(self.home, ignore_errors=True)


# ---------------------------------------------------------------- measuring


@dataclass
class Sample:
    wall: float
    cpu: float  # controller side: user+sys of the command's processes (or of this process)
    hosts_cpu: float | None  # what the lab hosts spent (sshd, shells, scripts): their cgroups


class HostCPU:
    """CPU time the lab hosts used, summed over their cgroups (every host process is in one).

    The lab's hosts run on this machine, so their sshd and shell work competes with the
    controller for the same cores: a figure that a real fleet spreads over its hosts."""

    def __init__(self, the_lab: Lab):
        self.files: list[tuple[Path, str]] = []
        for name, _ in the_lab.hosts():
            try:
                dirs = lab.host_cgroups(the_lab.home, name)
            except (LabError, OSError):
                dirs = {}
            found = None
            for d in dirs.values():
                if (d / "cpuacct.usage").exists():
                    found = (d / "cpuacct.usage", "ns")
                    break
                if (d / "cpu.stat").exists():
                    found = (d / "cpu.stat", "usec")
            if found is None:
                self.files = []
                return
            self.files.append(found)

    def read(self) -> float | None:
        if not self.files:
            return None
        total = 0.0
        try:
            for path, kind in self.files:
                text = path.read_text()
                if kind == "ns":
                    total += int(text) / 1e9
                else:
                    total += int(re.search(r"^usage_usec (\d+)", text, re.M).group(1)) / 1e6
        except (OSError, ValueError, AttributeError):
            return None
        return total


def timed_cmd(fn, host_cpu: HostCPU) -> tuple[Run, Sample]:
    h0 = host_cpu.read()
    r = fn()
    h1 = host_cpu.read()
    return r, Sample(r.seconds, r.cpu, None if h0 is None or h1 is None else h1 - h0)


def machine_busy() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine since boot, from /proc/stat."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    hz = os.sysconf("SC_CLK_TCK")
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
    return (sum(fields) - idle) / hz, sum(fields) / hz


def own_cpu() -> float:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime + _children_cpu()


class Load:
    """How busy the machine was during the timed rounds, and how much of that was not us
    (ours: this bench and its children, the lab's hosts, and the keeper it started)."""

    def __init__(self, host_cpu: HostCPU, the_lab: Lab):
        self.host_cpu, self.lab = host_cpu, the_lab
        self.load_start = os.getloadavg()[0]
        self.busy0, self.total0 = machine_busy()
        self.own0, self.hosts0, self.keeper0 = own_cpu(), host_cpu.read(), the_lab.keeper_cpu()
        self.wall0 = time.perf_counter()

    def finish(self) -> dict:
        busy1, total1 = machine_busy()
        wall = time.perf_counter() - self.wall0
        hosts1, keeper1 = self.host_cpu.read(), self.lab.keeper_cpu()
        ours = own_cpu() - self.own0 + ((hosts1 - self.hosts0) if hosts1 is not None and self.hosts0 is not None else 0)
        if keeper1 is not None:
            ours += keeper1 - self.keeper0 if self.keeper0 is not None and keeper1 >= self.keeper0 else keeper1
        others = max(0.0, (busy1 - self.busy0) - ours)
        return {"load_start": self.load_start, "load_end": os.getloadavg()[0], "wall": wall,
                "busy": (busy1 - self.busy0) / wall, "others": others / wall, "cpus": os.cpu_count()}


# ---------------------------------------------------------------- podctl


def podctl_env(the_lab: Lab, tmp: Path, bytecode_cache: bool = True, keeper: bool = True) -> dict:
    """The environment of a podctl run. With bytecode_cache, compiled modules are written
    and read under tmp (PYTHONPYCACHEPREFIX), as an installed podctl has them, even when
    this environment says PYTHONDONTWRITEBYTECODE (an editable install then recompiles
    every orchestrator module on every run); the tree itself gets no __pycache__. Without,
    the environment is this one as it is (only PODCTL_HOME set). keeper: the SSH
    connection keeper on (warm) or off (PODCTL_SSH_KEEPER=0: direct connections, cold)."""
    drop = ("PODCTL_INVENTORY", "PODCTL_HOME", "PODCTL_SSH_KEEPER", "PODCTL_SSH_KEEPER_IDLE")
    if bytecode_cache:
        drop += ("PYTHONDONTWRITEBYTECODE", "PYTHONPYCACHEPREFIX")
    env = {k: v for k, v in os.environ.items() if k not in drop}
    env["PODCTL_HOME"] = str(the_lab.home)
    env["PODCTL_SSH_KEEPER"] = "1" if keeper else "0"
    if bytecode_cache:
        env["PYTHONPYCACHEPREFIX"] = str(tmp / "pycache")
    return env


def _with_keeper_cpu(the_lab: Lab, before: float | None, sample: Sample) -> Sample:
    """Charge the keeper's CPU during a warm run to the controller side."""
    after = the_lab.keeper_cpu()
    if after is None:
        return sample
    return Sample(sample.wall, sample.cpu + (after - before if before is not None and after >= before else after),
                  sample.hosts_cpu)


def podctl_cli(the_lab: Lab, tmp: Path, host_cpu: HostCPU, bytecode_cache: bool = True,
               keeper: bool = True) -> Sample:
    k0 = the_lab.keeper_cpu() if keeper else None
    r, sample = timed_cmd(lambda: run_cmd([sys.executable, "-m", "orchestrator.cli", "reconcile"],
                                          env=podctl_env(the_lab, tmp, bytecode_cache, keeper), cwd=REPO,
                                          timeout=120, logdir=tmp), host_cpu)
    if r.rc != 0 or "nothing to do" not in r.out:
        raise SystemExit(f"podctl reconcile is not a no-op: exit {r.rc}\n{r.out}{r.err}")
    return _with_keeper_cpu(the_lab, k0, sample) if keeper else sample


def podctl_inprocess(the_lab: Lab, host_cpu: HostCPU) -> Sample:
    controller = Controller(the_lab.config)  # the keeper on: warm
    h0, cpu0, k0 = host_cpu.read(), time.process_time(), the_lab.keeper_cpu()
    started = time.perf_counter()
    report = asyncio.run(controller.run())
    seconds = time.perf_counter() - started
    h1, cpu1 = host_cpu.read(), time.process_time()
    if report.exit_code != 0 or not report.plan.empty:
        raise SystemExit(f"in-process reconcile is not a no-op: exit {report.exit_code} {report.plan.summary()}")
    return _with_keeper_cpu(the_lab, k0, Sample(seconds, cpu1 - cpu0, None if h0 is None or h1 is None else h1 - h0))


def python_start(the_lab: Lab, tmp: Path, code: str) -> Sample:
    r = run_cmd([sys.executable, "-c", code], env=podctl_env(the_lab, tmp), cwd=REPO, timeout=60, logdir=tmp)
    if r.rc != 0:
        raise SystemExit(f"python -c {code!r} failed: {r.err}")
    return Sample(r.seconds, r.cpu, None)


# ---------------------------------------------------------------- ansible


class Ansible:
    KEY_REFUSED = r"Host key verification failed"

    def __init__(self, peer: Peer, the_lab: Lab, tmp: Path):
        self.peer, self.lab, self.dir = peer, the_lab, tmp / "ansible"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.rounds = 0
        n = the_lab.n
        (self.dir / "ansible.cfg").write_text(
            "[defaults]\n"
            f"forks = {n}\n"
            "gathering = explicit\n"
            "host_key_checking = True\n"
            f"interpreter_python = {REMOTE_PYTHON}\n"
            "retry_files_enabled = False\n"
            "timeout = 10\n"
            "[ssh_connection]\n"
            "pipelining = True\n"
            "ssh_args = -C -o ControlMaster=auto -o ControlPersist=60s\n")
        (self.dir / "playbook.yml").write_text(PLAYBOOK)
        self.inventory = self.write_inventory("inventory.ini", the_lab.known_hosts, the_lab.hosts())

    def write_inventory(self, name: str, known_hosts: Path, hosts: list[tuple[str, str]]) -> Path:
        common = (f"-o UserKnownHostsFile={known_hosts} -o GlobalKnownHostsFile=/dev/null "
                  "-o StrictHostKeyChecking=yes -o IdentitiesOnly=yes")
        lines = ["[lab]"] + [f"{h} ansible_host={a}" for h, a in hosts] + [
            "[lab:vars]", "ansible_user=root", f"ansible_ssh_private_key_file={self.lab.key}",
            f"ansible_python_interpreter={REMOTE_PYTHON}", f"ansible_ssh_common_args='{common}'"]
        path = self.dir / name
        path.write_text("\n".join(lines) + "\n")
        return path

    WARM_PERSIST = "300s"  # kept across runs: longer than a round of this bench

    def run(self, inventory: Path | None = None) -> Run:
        """A cold run: a fresh ControlPath dir (no master from a previous run), closed after."""
        self.rounds += 1
        control = self.dir / f"cp{self.rounds}"
        control.mkdir()
        try:
            return self._run(inventory, control, {})
        finally:
            self.close_masters(control)

    def run_warm(self) -> Run:
        """A warm run: the one ControlPath dir of every warm run, ControlPersist=300s, so the
        run finds the masters (SSH connections) of the warm run before it, as a cron job
        with ControlPersist longer than its interval would. close_warm() ends them."""
        self.warm_dir.mkdir(exist_ok=True)
        args = f"-C -o ControlMaster=auto -o ControlPersist={self.WARM_PERSIST}"
        return self._run(None, self.warm_dir, {"ANSIBLE_SSH_ARGS": args})

    @property
    def warm_dir(self) -> Path:
        return self.dir / "cp-warm"

    def close_warm(self) -> None:
        self.close_masters(self.warm_dir)

    def _run(self, inventory: Path | None, control: Path, extra: dict) -> Run:
        env = dict(os.environ, ANSIBLE_CONFIG=str(self.dir / "ansible.cfg"),
                   ANSIBLE_HOME=str(self.dir / "home"), ANSIBLE_LOCAL_TEMP=str(self.dir / "home" / "tmp"),
                   ANSIBLE_SSH_CONTROL_PATH_DIR=str(control), ANSIBLE_NOCOLOR="1", **extra)
        return run_cmd([str(self.peer.exe), "-i", str(inventory or self.inventory),
                        str(self.dir / "playbook.yml")], env=env, cwd=self.dir, timeout=600, logdir=self.dir)

    def close_masters(self, control: Path) -> None:
        """End the ControlPersist masters this run left (they detach, so no group kill)."""
        socks = [p for p in control.iterdir()] if control.exists() else []

        def stop(sock: Path) -> None:
            run_cmd(["ssh", "-o", f"ControlPath={sock}", "-O", "exit", "podctl-bench"], timeout=10,
                    logdir=self.dir)

        if socks:
            with ThreadPoolExecutor(max_workers=16) as pool:
                list(pool.map(stop, socks))

    def check(self, r: Run) -> str:
        """'' when every host ran both tasks fine, else why not."""
        recap = re.findall(r"^(\S+)\s*:\s*ok=(\d+)\s+changed=\d+\s+unreachable=(\d+)\s+failed=(\d+)", r.out, re.M)
        good = [h for h, ok, unreach, failed in recap if ok == "2" and unreach == "0" and failed == "0"]
        if r.rc == 0 and len(good) == self.lab.n:
            return ""
        return f"exit {r.rc}, {len(good)}/{self.lab.n} hosts ok:\n{(r.out + r.err)[-1500:]}"


# ---------------------------------------------------------------- pyinfra


class Pyinfra:
    KEY_REFUSED = r"No host key for \S+ found in known_hosts"

    def __init__(self, peer: Peer, the_lab: Lab, tmp: Path):
        self.peer, self.lab, self.dir = peer, the_lab, tmp / "pyinfra"
        self.dir.mkdir(parents=True, exist_ok=True)
        (self.dir / "deploy.py").write_text(DEPLOY)
        self.inventory = self.write_inventory("inventory.py", the_lab.known_hosts, the_lab.hosts())

    def write_inventory(self, name: str, known_hosts: Path, hosts: list[tuple[str, str]]) -> Path:
        data = dict(ssh_user="root", ssh_key=str(self.lab.key), ssh_known_hosts_file=str(known_hosts),
                    ssh_strict_host_key_checking="yes", ssh_allow_agent=False, ssh_look_for_keys=False)
        entries = [(h, dict(data, ssh_hostname=a)) for h, a in hosts]
        path = self.dir / name
        path.write_text(f"lab = {entries!r}\n")
        return path

    def run(self, inventory: Path | None = None, parallel: int | None = None) -> Run:
        return run_cmd([str(self.peer.exe), "-y", "--parallel", str(parallel or self.lab.n),
                        str(inventory or self.inventory), "deploy.py"],
                       cwd=self.dir, timeout=600, logdir=self.dir)

    def check(self, r: Run) -> str:
        """'' when the operation succeeded on every host (pyinfra's results table), else why not."""
        m = re.search(r"^\s*Grand total\s+(\d+)\s+(\d+)\s+(\S+)", r.out + r.err, re.M)
        if r.rc == 0 and m and int(m.group(2)) == self.lab.n and m.group(3) == "-":
            return ""
        return f"exit {r.rc}, results {m.groups() if m else 'missing'}:\n{(r.out + r.err)[-1500:]}"


# ---------------------------------------------------------------- the bench


def strict_key_check(tool, the_lab: Lab, tmp: Path) -> str:
    """Run the peer on node1 with a known_hosts that lacks node1's key: it must fail."""
    empty = tmp / f"empty_known_hosts_{tool.peer.name}"
    empty.write_text("")
    inv = tool.write_inventory("strict-" + tool.inventory.name, empty, the_lab.hosts()[:1])
    r = tool.run(inv) if isinstance(tool, Ansible) else tool.run(inv, parallel=1)
    text = r.out + r.err
    if r.rc == 0 or not re.search(tool.KEY_REFUSED, text, re.I):
        return (f"{tool.peer.name} on a host whose key is not in known_hosts: exit {r.rc}, expected a "
                f"host key error (/{tool.KEY_REFUSED}/):\n{text[-1500:]}")
    return ""


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def walls(samples: list[Sample]) -> list[float]:
    return [x.wall for x in samples]


def fmt_runs(samples: list[Sample]) -> str:
    return " ".join(f"{x.wall:.2f}" for x in samples)


def fmt_cpu(samples: list[Sample]) -> str:
    cpu = median([x.cpu for x in samples])
    hosts = [x.hosts_cpu for x in samples if x.hosts_cpu is not None]
    return f"{cpu:5.2f} s {median(hosts):6.2f} s" if hosts else f"{cpu:5.2f} s      -  "


def total_cpu(samples: list[Sample]) -> float | None:
    """Median of controller + lab-host CPU: a figure that other load on the machine barely moves."""
    values = [x.cpu + x.hosts_cpu for x in samples if x.hosts_cpu is not None]
    return median(values) if values else None


NO_BYTECODE_ENV = "PYTHONDONTWRITEBYTECODE" in os.environ


def bench_small(n: int, runs: int, peers: dict[str, Peer], tmp: Path, lock_wait: float,
                results: dict, labs: list[Lab]) -> None:
    say(f"== {n} hosts ==")
    the_lab = Lab(n)
    labs.append(the_lab)
    the_lab.start(lock_wait)
    the_lab.add_pods()
    host_cpu = HostCPU(the_lab)
    tools = {}
    if not peers["ansible"].skipped:
        tools["ansible"] = Ansible(peers["ansible"], the_lab, tmp)
        _cleanups.append(tools["ansible"].close_warm)
    if not peers["pyinfra"].skipped:
        tools["pyinfra"] = Pyinfra(peers["pyinfra"], the_lab, tmp)

    # Warm-up round (unmeasured): page cache, .pyc files, the keeper's and ansible's warm
    # connections, and each tool works at all.
    podctl_cli(the_lab, tmp, host_cpu)
    podctl_cli(the_lab, tmp, host_cpu, keeper=False)
    podctl_inprocess(the_lab, host_cpu)
    for key, tool in list(tools.items()):
        why = strict_key_check(tool, the_lab, tmp)
        if not why:
            r = tool.run()
            why = tool.check(r)
            if not why and key == "ansible":
                warm = tool.run_warm()
                why = tool.check(warm)
            if not why:
                say(f"  warm-up {key}: ok on {n} hosts in {r.seconds:.2f}s; "
                    "an unknown host key is refused (host key checking on)")
        if why:
            peers[key].skipped = f"warm-up failed: {why}"
            say(f"SKIP {key}: {peers[key].skipped}")
            del tools[key]

    r = {"cli": [], "cold": [], "inproc": [], "python": [], "imports": [], "nocache": []}
    load = Load(host_cpu, the_lab)
    for i in range(runs):
        r["cli"].append(podctl_cli(the_lab, tmp, host_cpu))
        r["cold"].append(podctl_cli(the_lab, tmp, host_cpu, keeper=False))
        r["inproc"].append(podctl_inprocess(the_lab, host_cpu))
        r["python"].append(python_start(the_lab, tmp, "pass"))
        r["imports"].append(python_start(the_lab, tmp, "import orchestrator.cli"))
        if NO_BYTECODE_ENV:
            r["nocache"].append(podctl_cli(the_lab, tmp, host_cpu, bytecode_cache=False))
        line = (f"  round {i + 1}/{runs}: podctl warm {r['cli'][-1].wall:.2f}s, cold {r['cold'][-1].wall:.2f}s, "
                f"in-process {r['inproc'][-1].wall:.2f}s")
        for key, tool in tools.items():
            variants = [("", tool.run)] + ([(" warm", tool.run_warm)] if key == "ansible" else [])
            for label, fn in variants:
                run, sample = timed_cmd(fn, host_cpu)
                why = tool.check(run)
                if why:
                    raise SystemExit(f"{key}{label} failed in round {i + 1}: {why}")
                (peers[key].warm_runs if label else peers[key].runs).append(sample)
                line += f", {key}{label} {sample.wall:.2f}s"
        say(line + f"  (load avg {os.getloadavg()[0]:.1f})")
    r["load"] = load.finish()
    results[n] = r
    if "ansible" in tools:
        tools["ansible"].close_warm()
    the_lab.down()


def bench_big(n: int, runs: int, tmp: Path, lock_wait: float, results: dict, labs: list[Lab]) -> None:
    say(f"== {n} hosts (podctl only) ==")
    the_lab = Lab(n)
    labs.append(the_lab)
    the_lab.start(lock_wait)
    the_lab.add_pods()
    host_cpu = HostCPU(the_lab)
    podctl_cli(the_lab, tmp, host_cpu)  # warm-up
    podctl_cli(the_lab, tmp, host_cpu, keeper=False)
    r = {"cli": [], "cold": [], "inproc": []}
    load = Load(host_cpu, the_lab)
    for i in range(runs):
        r["cli"].append(podctl_cli(the_lab, tmp, host_cpu))
        r["cold"].append(podctl_cli(the_lab, tmp, host_cpu, keeper=False))
        r["inproc"].append(podctl_inprocess(the_lab, host_cpu))
        say(f"  round {i + 1}/{runs}: podctl warm {r['cli'][-1].wall:.2f}s, cold {r['cold'][-1].wall:.2f}s, "
            f"in-process {r['inproc'][-1].wall:.2f}s  (load avg {os.getloadavg()[0]:.1f})")
    r["load"] = load.finish()
    results[n] = r
    the_lab.down()


def versions(peers: dict[str, Peer]) -> list[str]:
    import asyncssh

    ssh = subprocess.run(["ssh", "-V"], capture_output=True, text=True, check=False)
    lines = [f"python {platform.python_version()} ({sys.executable}), asyncssh {asyncssh.__version__}, "
             f"{(ssh.stderr or ssh.stdout).strip()}, {os.cpu_count()} CPUs, Linux {platform.release()}"]
    for p in peers.values():
        lines.append(f"{p.name}: {p.version or '-'} ({p.exe or 'not found'})")
    return lines


def load_line(load: dict) -> str:
    return (f"  machine during the timed rounds: load avg {load['load_start']:.1f} -> {load['load_end']:.1f} "
            f"on {load['cpus']} CPUs; {load['busy']:.2f} of {load['cpus']} CPUs busy, of which "
            f"{load['others']:.2f} by processes other than this bench and its lab")


def _line(label: str, samples: list[Sample], note: str = "") -> str:
    return (f"  {label:44} {median(walls(samples)):6.2f} s   {fmt_cpu(samples)}   {fmt_runs(samples)}"
            + (f"   ({note})" if note else ""))


def _goal_ratio(what: str, theirs: list[Sample], mine: list[Sample], goal: float, note: str = "") -> str:
    t, m = median(walls(theirs)), median(walls(mine))
    line = f"  {what} = {t:.2f} s / {m:.2f} s = {t / m:.1f}x   (goal >= {goal:g}x: {'met' if t / m >= goal else 'MISSED'})"
    a, b = total_cpu(theirs), total_cpu(mine)
    if a and b:
        line += f";  in CPU (controller + lab hosts): {a:.2f} s / {b:.2f} s = {a / b:.1f}x"
    return line + (f"  [{note}]" if note else "")


def summary(args, peers: dict[str, Peer], results: dict) -> str:
    n = args.hosts
    head = f"  {'':44} {'wall':>7}   {'CPU: ctl':>8} {'lab hosts':>9}   runs (s)"
    out = [f"podctl reconcile bench: median of {args.runs} runs, wall time of the whole command; CPU: "
           "controller side (the command's processes; warm podctl: plus its keeper's CPU during the run) "
           "and lab hosts (sshd, shells, scripts; they share this machine's cores)"]
    out += ["  " + v for v in versions(peers)]
    r = results.get(n)
    if r:
        warm, cold = median(walls(r["cli"])), median(walls(r["cold"]))
        out.append(f"{n} hosts, one pod each, no-op:")
        out.append(head)
        out.append(_line("podctl reconcile, warm (keeper running)", r["cli"]))
        out.append(_line("podctl reconcile, cold (PODCTL_SSH_KEEPER=0)", r["cold"]))
        out.append(_line("  Controller.run() in-process (warm)", r["inproc"]))
        out.append(_line("  python -c 'import orchestrator.cli'", r["imports"]))
        out.append(_line("  python -c pass", r["python"]))
        if r["nocache"]:
            out.append(_line("  warm CLI in this shell's environment", r["nocache"],
                             "PYTHONDONTWRITEBYTECODE=1: the editable install's modules are compiled on every run"))
        ans, pyi = peers["ansible"], peers["pyinfra"]
        for p, label in ((ans, "ansible-playbook"), (pyi, "pyinfra")):
            if p.skipped or not p.runs:
                out.append(f"  {label:44} skipped: {p.skipped or 'no runs'}")
        if ans.warm_runs and not ans.skipped:
            out.append(_line("ansible-playbook, warm (ControlPersist kept)", ans.warm_runs))
        if ans.runs and not ans.skipped:
            out.append(_line("ansible-playbook, cold (fresh ControlPath)", ans.runs))
        if pyi.runs and not pyi.skipped:
            out.append(_line("pyinfra (no connection reuse across runs)", pyi.runs))
        out.append("goals (podctl <= 1.0 s; ansible-playbook/podctl >= 25x; pyinfra/podctl >= 2.5x):")
        out.append(f"  podctl warm {warm:.2f} s (goal <= {GOAL_SECONDS:.1f} s: {'met' if warm <= GOAL_SECONDS else 'MISSED'}); "
                   f"cold {cold:.2f} s ({'met' if cold <= GOAL_SECONDS else 'MISSED'})")
        if ans.warm_runs and not ans.skipped:
            out.append(_goal_ratio("warm vs warm: ansible-playbook/podctl", ans.warm_runs, r["cli"], GOAL_ANSIBLE_RATIO))
        if ans.runs and not ans.skipped:
            out.append(_goal_ratio("cold vs cold: ansible-playbook/podctl", ans.runs, r["cold"], GOAL_ANSIBLE_RATIO))
        if pyi.runs and not pyi.skipped:
            out.append(_goal_ratio("cold vs cold: pyinfra/podctl", pyi.runs, r["cold"], GOAL_PYINFRA_RATIO))
            out.append(_goal_ratio("pyinfra/podctl warm", pyi.runs, r["cli"], GOAL_PYINFRA_RATIO,
                                   "not like for like: pyinfra has no connection reuse across runs, so every "
                                   "pyinfra run is cold; this compares each tool's cron run as it can be set up"))
        out.append(load_line(r["load"]))
    big = results.get(args.big_hosts)
    if big:
        out.append(f"{args.big_hosts} hosts, one pod each, no-op:")
        out.append(head)
        out.append(_line("podctl reconcile, warm (keeper running)", big["cli"]))
        out.append(_line("podctl reconcile, cold (PODCTL_SSH_KEEPER=0)", big["cold"]))
        out.append(_line("  Controller.run() in-process (warm)", big["inproc"]))
        out.append(load_line(big["load"]))
    elif not args.skip_200:
        out.append(f"{args.big_hosts} hosts: not measured (see above)")
    out.append(f"settings: ansible forks={n}, pipelining=True, gather_facts=false, interpreter_python="
               f"{REMOTE_PYTHON}, ssh_args '-C -o ControlMaster=auto -o ControlPersist=..': cold 60s (its default) "
               f"with a fresh ControlPath dir per run, warm {Ansible.WARM_PERSIST} with one ControlPath dir for all "
               "warm runs; ssh_common_args UserKnownHostsFile=<lab> StrictHostKeyChecking=yes; pyinfra -y --parallel "
               f"{n}, ssh_known_hosts_file=<lab>, ssh_strict_host_key_checking=yes, agent and key search off; "
               "podctl: the lab inventory, known_hosts always verified (also through the keeper); its modules' "
               "bytecode cached; warm = the keeper started by the warm-up run, cold = PODCTL_SSH_KEEPER=0")
    return "\n".join(out)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--hosts", type=int, default=50)
    ap.add_argument("--runs", type=int, default=3, help="measured rounds (after one warm-up round)")
    ap.add_argument("--big-hosts", type=int, default=200, help="podctl-only figure at this many hosts")
    ap.add_argument("--skip-200", action="store_true", help="skip the --big-hosts part")
    ap.add_argument("--no-install", action="store_true", help="do not pip install missing peers")
    ap.add_argument("--timeout", type=float, default=1800, help="overall limit once the lock is held (s)")
    ap.add_argument("--lock-wait", type=float, default=900, help="wait for the e2e lock / another lab (s)")
    args = ap.parse_args()
    if not 1 <= args.hosts <= 250 or not 1 <= args.big_hosts <= 250 or not 1 <= args.runs <= 20:
        ap.error("--hosts and --big-hosts must be 1..250, --runs 1..20")
    if os.geteuid() != 0:
        print("bench/reconcile.py needs root: it starts a local lab (network namespaces, veth, cgroups)",
              file=sys.stderr)
        return 3

    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _on_signal)
    signal.signal(signal.SIGALRM, _on_alarm)
    tmp = Path(tempfile.mkdtemp(prefix="podctl-bench-reconcile-tools-"))
    lock = SessionLock(SESSION_LOCK)
    labs: list[Lab] = []
    results: dict = {}
    peers: dict[str, Peer] = {}
    failed = ""
    try:
        peers = find_peers(not args.no_install, tmp)
        lock.acquire(args.lock_wait)
        signal.setitimer(signal.ITIMER_REAL, args.timeout)
        bench_small(args.hosts, args.runs, peers, tmp, args.lock_wait, results, labs)
        if not args.skip_200:
            bench_big(args.big_hosts, args.runs, tmp, args.lock_wait, results, labs)
    except (Abort, SystemExit, LabError, Exception) as exc:
        failed = f"{type(exc).__name__}: {exc}" if not isinstance(exc, SystemExit) else str(exc.code)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, signal.SIG_IGN)  # nothing may interrupt the teardown
        kill_children()
        for cleanup in _cleanups:
            try:
                cleanup()
            except Exception as exc:  # noqa: BLE001 - report, go on with the rest
                print(f"ERROR: cleanup {cleanup} failed: {exc}", file=sys.stderr)
        for the_lab in labs:
            try:
                the_lab.down()
            except Exception as exc:  # noqa: BLE001 - report, go on with the rest
                print(f"ERROR: lab down of {the_lab.home} failed: {exc}; run: "
                      f"python -m orchestrator.lab down --home {the_lab.home}", file=sys.stderr)
        lock.release()
        shutil.rmtree(tmp, ignore_errors=True)
    if failed:
        print(f"bench failed: {failed}", file=sys.stderr)
    say()
    say("---- summary ----")
    say(summary(args, peers, results))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
