"""`podctl lab`: N local SSH hosts, each a set of Linux namespaces running the real sshd.

Host nodeI is network namespace podlab-nodeI (veth plb-nodeI <-> eth0, bridged on
podlab0 = 10.213.0.1/16, no forwarding anywhere else), a mount/UTS/PID/cgroup namespace
set whose PID 1 is labinit.py, and cgroup dirs podlab/nodeI under the cgroup of the
process that ran `lab up`. Everything the lab makes carries one of these names, so
`lab down` finds it again after any crash. State lives in $PODCTL_HOME/lab/.

One lab per machine: the bridge's alias names the home that owns it.
"""

from __future__ import annotations

import argparse
import fcntl
import ipaddress
import json
import os
import re
import select
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

from .errors import LabError

BRIDGE = "podlab0"
BRIDGE_CIDR = "10.213.0.1/16"
NETNS_PREFIX = "podlab-"
VETH_PREFIX = "plb-"
CGROUP_DIR = "podlab"
LAB_BASE = ipaddress.IPv4Address("10.213.0.0")
MAX_HOSTS = 65524  # the last address below 10.213.255.255
ZONES = ("zone-a", "zone-b", "zone-c")
V1_CONTROLLERS = {"cpu", "cpuacct", "memory", "pids", "freezer"}
SSHD = "/usr/sbin/sshd"
SSH_WAIT = 10.0  # seconds for every host's sshd to accept TCP
LAUNCH_TIMEOUT = 10.0
KILL_WAIT = 10.0
LABINIT = Path(__file__).with_name("labinit.py")
# The system interpreter lives under /usr, which hosts share; a pyenv or venv python
# under /root would vanish behind the host's private /root.
INIT_PYTHON = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else sys.executable
INIT_ENV = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8"}
NETNS_DIR = Path("/run/netns")
VAR_LIB_PODCTL = Path("/var/lib/podctl")


# ---------------------------------------------------------------- names


def host_name(index: int) -> str:
    return f"node{index}"


def host_index(name: str) -> int:
    m = re.fullmatch(r"node([1-9][0-9]*)", name)
    if not m or int(m.group(1)) > MAX_HOSTS:
        raise LabError(f"{name!r} is not a lab host name (node1, node2, ...)")
    return int(m.group(1))


def host_address(index: int) -> str:
    return str(LAB_BASE + 10 + index)


def _netns(name: str) -> str:
    return NETNS_PREFIX + name


def _veth(name: str) -> str:
    return VETH_PREFIX + name  # plb-node65524 is 13 chars: within IFNAMSIZ


def _mac(index: int) -> str:
    # Stable per host, so peers' ARP caches stay right when a host "reboots".
    return "02:00:" + ":".join(f"{b:02x}" for b in ipaddress.IPv4Address(host_address(index)).packed)


class _Paths:
    def __init__(self, home: Path):
        self.home = Path(home).expanduser().resolve()
        self.lab = self.home / "lab"
        self.state = self.lab / "state.json"
        self.key = self.lab / "id_ed25519"
        self.known_hosts = self.lab / "known_hosts"
        self.inventory = self.lab / "inventory.yaml"

    def host(self, name: str) -> Path:
        return self.lab / "hosts" / name


# ---------------------------------------------------------------- small helpers


def _run(argv: list[str], input: str | None = None) -> str:
    proc = subprocess.run(argv, input=input, capture_output=True, text=True)
    if proc.returncode != 0:
        raise LabError(f"{' '.join(argv)} failed: {proc.stderr.strip() or proc.returncode}")
    return proc.stdout


def _ip_batch(lines: list[str], netns: str | None = None, force: bool = False) -> None:
    """Many ip commands in one process (names are ours and contain no spaces)."""
    if not lines:
        return
    argv = ["ip"] + (["-n", netns] if netns else []) + (["-force"] if force else []) + ["-batch", "-"]
    proc = subprocess.run(argv, input="\n".join(lines) + "\n", capture_output=True, text=True)
    if proc.returncode != 0 and not force:
        raise LabError(f"ip {'in ' + netns if netns else ''} failed: {proc.stderr.strip()}")


def _write_atomic(path: Path, text: str, mode: int = 0o644) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.replace(tmp, path)


def _proc_start(pid: int | None) -> int | None:
    """The start time of a live (non-zombie) process: with the pid, its identity."""
    if not pid:
        return None
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[1].split()
    return None if fields[0] in ("Z", "X") else int(fields[19])


def _alive(pid: int | None, start: int | None) -> bool:
    return start is not None and _proc_start(pid) == start


def _tcp_ok(address: str, timeout: float = 1.0) -> bool:
    try:
        with socket.create_connection((address, 22), timeout=timeout):
            return True
    except OSError:
        return False


def _log_tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def _pool(n: int) -> ThreadPoolExecutor:
    return ThreadPoolExecutor(max_workers=max(1, min(32, n)))


def _run_all(fn, items) -> list:
    """fn over items concurrently; every failure is reported, not just the first."""
    items = list(items)
    with _pool(len(items)) as pool:
        futures = [pool.submit(fn, item) for item in items]
    errors = [f.exception() for f in futures if f.exception() is not None]
    if errors:
        if len(errors) == 1 and isinstance(errors[0], LabError):
            raise errors[0]
        raise LabError(f"{len(errors)} of {len(items)} hosts failed:\n" + "\n".join(map(str, errors[:5])))
    return [f.result() for f in futures]


@contextmanager
def _machine_lock():
    # Serialises lab changes across processes and homes. A directory that always
    # exists is locked, so the lock leaves no file behind.
    fd = os.open("/run/lock" if os.path.isdir("/run/lock") else "/run", os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _preflight() -> None:
    if os.geteuid() != 0:
        raise LabError("the lab needs root (namespaces, veth, cgroups)")
    for tool in (SSHD, INIT_PYTHON):
        if not os.access(tool, os.X_OK):
            raise LabError(f"the lab needs {tool}")
    for tool in ("ip", "ssh-keygen"):
        if shutil.which(tool) is None:
            raise LabError(f"the lab needs {tool} on PATH")


# ---------------------------------------------------------------- state


def _load_state(p: _Paths) -> dict:
    try:
        state = json.loads(p.state.read_text())
    except FileNotFoundError:
        state = {}
    except (OSError, ValueError) as exc:
        raise LabError(f"{p.state}: unreadable lab state: {exc}") from exc
    state.setdefault("home", str(p.home))
    state.setdefault("hierarchies", [])
    state.setdefault("created", [])  # machine dirs the lab made: removed by lab down
    state.setdefault("hosts", {})
    return state


def _save_state(p: _Paths, state: dict) -> None:
    _write_atomic(p.state, json.dumps(state, indent=1, sort_keys=True) + "\n", 0o600)


def _host_entry(p: _Paths, state: dict, name: str) -> dict:
    host_index(name)
    if name not in state["hosts"]:
        raise LabError(f"no lab host {name} in {p.lab}")
    return state["hosts"][name]


def _running(entry: dict) -> bool:
    return _alive(entry.get("pid"), entry.get("start"))


def _bridge_owner() -> str | None:
    """The home that owns the machine's lab, "" for an unowned bridge, None without one."""
    try:
        return Path(f"/sys/class/net/{BRIDGE}/ifalias").read_text().strip()
    except FileNotFoundError:
        return None


def lab_owner() -> str | None:
    """The home of the lab that is up on this machine, if any."""
    owner = _bridge_owner()
    return owner if owner and (Path(owner) / "lab" / "state.json").exists() else None


def _foreign_lab(p: _Paths) -> str | None:
    owner = lab_owner()
    return owner if owner and owner != str(p.home) else None


# ---------------------------------------------------------------- cgroups


def _cgroup_hierarchies() -> list[dict]:
    """The machine's cgroup mounts the hosts get, with our own cgroup in each.

    Each entry: root (our cgroup dir + /podlab), target (mount dir inside a host,
    relative to /sys/fs/cgroup; "" for a pure cgroup2 machine), fstype and options.
    """
    own: dict[frozenset | None, str] = {}
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        hid, ctrls, path = line.split(":", 2)
        own[None if hid == "0" else frozenset(ctrls.split(","))] = path
    found = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        pre, post = line.split(" - ", 1)
        mnt_root, mountpoint = pre.split()[3:5]
        fstype, _, superopts = post.split()[:3]
        if mnt_root != "/" or not (mountpoint + "/").startswith("/sys/fs/cgroup/"):
            continue
        if fstype == "cgroup2":
            key = None
        elif fstype == "cgroup":
            opts = set(superopts.split(","))
            key = next((k for k in own if k and k <= opts and k & V1_CONTROLLERS), None)
        else:
            continue
        if key not in own or (fstype == "cgroup" and key is None):
            continue
        rel = os.path.relpath(mountpoint, "/sys/fs/cgroup")
        target = "" if rel == "." else rel
        aliases = [c for c in sorted(key or ()) if c != target and c in V1_CONTROLLERS]
        found.append({
            "mount": mountpoint,
            "root": os.path.join(mountpoint, own[key].lstrip("/"), CGROUP_DIR),
            "target": target,
            "fstype": fstype,
            "options": ",".join(sorted(key or ())),
            "aliases": aliases,
        })
    if not found:
        raise LabError("no cgroup hierarchies found under /sys/fs/cgroup")
    return found


def host_cgroups(home: Path, name: str) -> dict[str, Path]:
    """Machine-side cgroup dir of a host per mount name ("memory", "unified"...)."""
    p = _Paths(home)
    state = _load_state(p)
    _host_entry(p, state, name)
    return {h["target"] or "unified": Path(h["root"]) / name for h in state["hierarchies"]}


def _known_cgroup_roots(state: dict) -> set[str]:
    """podlab dirs: recorded ones, ours, and any a lost state forgot (by name)."""
    roots = {h["root"] for h in state["hierarchies"]}
    try:
        current = _cgroup_hierarchies()
    except LabError:
        current = []  # no cgroups here: nothing of ours to find either
    for h in current:
        roots.add(h["root"])
        roots.update(str(d) for d in _find_dirs(Path(h["mount"]), CGROUP_DIR, depth=3))
    return {r for r in roots if os.path.isdir(r)}


def _find_dirs(top: Path, name: str, depth: int) -> list[Path]:
    found = []
    try:
        children = [c for c in top.iterdir() if c.is_dir()]
    except OSError:
        return found
    for child in children:
        if child.name == name:
            found.append(child)
        elif depth > 1:
            found.extend(_find_dirs(child, name, depth - 1))
    return found


def _cgroup_pids(root: str) -> set[int]:
    pids = set()
    for dirpath, _, _ in os.walk(root):
        try:
            pids.update(int(x) for x in Path(dirpath, "cgroup.procs").read_text().split())
        except OSError:
            pass
    return pids


def _remove_cgroup_tree(root: str) -> None:
    """rmdir bottom-up; a cgroup stays busy a moment after its last task exits."""
    for dirpath, _, _ in os.walk(root, topdown=False):
        deadline = time.monotonic() + 3.0
        while True:
            try:
                os.rmdir(dirpath)
                break
            except FileNotFoundError:
                break
            except OSError as exc:
                if time.monotonic() > deadline:
                    raise LabError(f"cannot remove cgroup {dirpath}: {exc.strerror}") from exc
                time.sleep(0.01)


# ---------------------------------------------------------------- processes


def _kill_and_wait(procs: dict[int, int], timeout: float = KILL_WAIT) -> None:
    """SIGKILL {pid: start} (identity checked) and wait until each is gone.

    Killing a host's init takes its whole PID namespace down; its pidfd turns
    readable only once every process in that namespace is gone.
    """
    fds = []
    for pid, start in procs.items():
        try:
            fd = os.pidfd_open(pid)
        except OSError:
            continue
        if _proc_start(pid) != start or pid == os.getpid():
            os.close(fd)
            continue
        signal.pidfd_send_signal(fd, signal.SIGKILL)
        fds.append(fd)
    poller = select.poll()
    for fd in fds:
        poller.register(fd, select.POLLIN)
    deadline = time.monotonic() + timeout
    pending = set(fds)
    try:
        while pending and time.monotonic() < deadline:
            for fd, _ in poller.poll(max(1, int((deadline - time.monotonic()) * 1000))):
                poller.unregister(fd)
                pending.discard(fd)
        if pending:
            raise LabError(f"{len(pending)} lab processes did not die within {timeout}s")
    finally:
        for fd in fds:
            os.close(fd)


def _netns_pids(names: list[str]) -> set[int]:
    """Processes in the given network namespaces (what `ip netns pids` does)."""
    inodes = set()
    for name in names:
        try:
            inodes.add(os.stat(NETNS_DIR / name).st_ino)
        except OSError:
            pass
    pids = set()
    for entry in os.listdir("/proc") if inodes else ():
        if entry.isdigit():
            try:
                if os.stat(f"/proc/{entry}/ns/net").st_ino in inodes:
                    pids.add(int(entry))
            except OSError:
                pass
    return pids


def _lab_netns() -> list[str]:
    try:
        return sorted(n for n in os.listdir(NETNS_DIR) if n.startswith(NETNS_PREFIX))
    except FileNotFoundError:
        return []


def _lab_links() -> list[str]:
    return sorted(n for n in os.listdir("/sys/class/net") if n.startswith(VETH_PREFIX) or n == BRIDGE)


def _remove_machine_leftovers(state: dict) -> None:
    """Kill, unlink and rmdir everything on the machine that carries a lab name."""
    roots = _known_cgroup_roots(state)
    netns = _lab_netns()
    victims = _netns_pids(netns)
    for root in roots:
        victims |= _cgroup_pids(root)
    _kill_and_wait({pid: _proc_start(pid) for pid in victims})
    _ip_batch([f"netns del {n}" for n in netns], force=True)
    # The kernel destroys the namespaces' veths in one batch, far faster than deleting
    # them one by one; only what is still pinned somehow gets deleted explicitly.
    deadline = time.monotonic() + 3.0
    while any(n != BRIDGE for n in _lab_links()) and time.monotonic() < deadline:
        time.sleep(0.01)
    _ip_batch([f"link del {n}" for n in _lab_links() if n != BRIDGE], force=True)
    _ip_batch([f"link del {BRIDGE}"] if BRIDGE in _lab_links() else [], force=True)
    for root in roots:
        _remove_cgroup_tree(root)
    for entry in state["hosts"].values():
        entry.pop("pid", None)
        entry.pop("start", None)
    left = _lab_netns() + _lab_links()
    if left:
        raise LabError(f"could not remove {', '.join(left)}")


def _remove_created_dirs(state: dict) -> None:
    """Machine dirs the lab made (mount points, /run/netns) that nothing else uses now."""
    for path in state["created"]:
        if path == str(NETNS_DIR):
            if not NETNS_DIR.is_dir() or os.listdir(NETNS_DIR):
                continue
            # `ip netns add` bind-mounted /run/netns onto itself (shared propagation).
            for _ in range(4):
                if f" {NETNS_DIR} " not in Path("/proc/self/mountinfo").read_text():
                    break
                subprocess.run(["umount", str(NETNS_DIR)], capture_output=True)
        try:
            os.rmdir(path)
        except OSError:
            pass  # gone already, or someone put something there: theirs now


# ---------------------------------------------------------------- host files


def _sshd_config(index: int) -> str:
    return f"""\
# sshd of lab host {host_name(index)}. labinit copies this file and the host key into
# the host's private /run/podlab (the lab home may be hidden inside the host).
ListenAddress {host_address(index)}
Port 22
HostKey /run/podlab/ssh_host_ed25519_key
PidFile /run/sshd.pid
UsePAM no
PermitRootLogin prohibit-password
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
AuthorizedKeysFile /root/.ssh/authorized_keys
StrictModes yes
UseDNS no
MaxStartups 200:30:400
MaxSessions 100
Subsystem sftp internal-sftp
AcceptEnv none
PrintMotd no
PrintLastLog no
"""


def _keygen(path: Path, comment: str) -> None:
    if not path.exists():
        _run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(path)])


def _prepare_host_files(p: _Paths, index: int, hierarchies: list[dict]) -> None:
    name = host_name(index)
    d = p.host(name)
    ssh_dir = d / "root" / ".ssh"
    ssh_dir.mkdir(parents=True, exist_ok=True)
    (d / "var-lib-podctl").mkdir(exist_ok=True)
    # sshd's StrictModes: /root and /root/.ssh owned by root and not group/world writable.
    for path in (d, d / "root", ssh_dir, d / "var-lib-podctl"):
        os.chmod(path, 0o700)
    _keygen(d / "ssh_host_ed25519_key", f"root@{name}")
    _write_atomic(ssh_dir / "authorized_keys", p.key.with_suffix(".pub").read_text(), 0o600)
    _write_atomic(d / "sshd_config", _sshd_config(index), 0o600)
    lines = [
        f"name={name}",
        f"netns={NETNS_DIR / _netns(name)}",
        f"sshd_config={d / 'sshd_config'}",
        f"host_key={d / 'ssh_host_ed25519_key'}",
        f"bind={d / 'root'}\t/root",
        f"bind={d / 'var-lib-podctl'}\t{VAR_LIB_PODCTL}",
    ]
    for h in hierarchies:
        fields = [os.path.join(h["root"], name), h["target"], h["fstype"], h["options"],
                  ",".join(h["aliases"])]
        lines.append("cgroup=" + "\t".join(fields))
    _write_atomic(d / "init.conf", "\n".join(lines) + "\n", 0o600)  # format: see labinit.py


def _create_networks(indexes: list[int]) -> None:
    """Fresh netns + veth for each host (a restarted host gets a rebooted network)."""
    links, netns = set(_lab_links()), set(_lab_netns())
    lines = []
    for i in indexes:
        name = host_name(i)
        if _veth(name) in links:
            lines.append(f"link del {_veth(name)}")  # also removes eth0, synchronously
        if _netns(name) in netns:
            lines.append(f"netns del {_netns(name)}")
        lines += [
            f"netns add {_netns(name)}",
            f"link add {_veth(name)} type veth peer name eth0 address {_mac(i)} netns {_netns(name)}",
            f"link set {_veth(name)} master {BRIDGE} up",
        ]
    _ip_batch(lines)


def _configure_host_net(index: int) -> None:
    lines = [f"addr add {host_address(index)}/16 dev eth0", "link set eth0 up", "link set lo up"]
    _ip_batch(lines, netns=_netns(host_name(index)))


def _create_bridge(home: Path) -> None:
    # A fixed MAC: a bridge otherwise takes its lowest port's, which changes as hosts come and go.
    try:
        _run(["ip", "link", "add", BRIDGE, "address", "02:00:0a:d5:00:01", "type", "bridge"])
    except LabError:
        if _bridge_owner() is None:
            raise
        raise LabError(f"another lab ({_bridge_owner() or 'unknown owner'}) is being created on this machine")
    _run(["ip", "link", "set", BRIDGE, "alias", str(home)])
    _ip_batch([f"addr add {BRIDGE_CIDR} dev {BRIDGE}", f"link set {BRIDGE} up"])


# ---------------------------------------------------------------- booting hosts


def _launch(p: _Paths, index: int) -> tuple[int, int]:
    """Start the host's init detached; returns its (pid, start time)."""
    name = host_name(index)
    log_path = p.host(name) / "init.log"
    with open(log_path, "ab") as log:
        log.write(f"--- {time.strftime('%Y-%m-%d %H:%M:%S')} lab: starting {name}\n".encode())
        log.flush()
        proc = subprocess.Popen(
            [INIT_PYTHON, "-I", "-S", str(LABINIT), str(p.host(name) / "init.conf")],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=log,
            start_new_session=True, env=INIT_ENV, cwd="/",
        )
    try:
        out, _ = proc.communicate(timeout=LAUNCH_TIMEOUT)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        out = b""
    pid = int(out) if out.strip().isdigit() else None
    start = _proc_start(pid)
    if start is None:
        raise LabError(f"{name}: init did not start; {log_path}:\n{_log_tail(log_path)}")
    return pid, start


def _wait_sshd(p: _Paths, index: int, deadline: float) -> None:
    name, address = host_name(index), host_address(index)
    delay = 0.005
    while not _tcp_ok(address, timeout=0.5):
        if time.monotonic() > deadline:
            log_path = p.host(name) / "init.log"
            raise LabError(f"{name}: sshd not reachable on {address}:22 within {SSH_WAIT:.0f}s; "
                           f"{log_path}:\n{_log_tail(log_path)}")
        time.sleep(delay)
        delay = min(delay * 2, 0.1)


def _boot(p: _Paths, state: dict, indexes: list[int]) -> None:
    """Start hosts that are not running: files, network, cgroups, init, then sshd."""
    if not indexes:
        return
    lock = threading.Lock()
    _run_all(lambda i: _prepare_host_files(p, i, state["hierarchies"]), indexes)
    _create_networks(indexes)

    def start(i: int) -> None:
        name = host_name(i)
        _configure_host_net(i)
        for h in state["hierarchies"]:
            os.makedirs(os.path.join(h["root"], name), exist_ok=True)
        pid, started = _launch(p, i)
        with lock:
            state["hosts"][name] = {"index": i, "address": host_address(i), "pid": pid, "start": started}
            _save_state(p, state)

    _run_all(start, indexes)
    deadline = time.monotonic() + SSH_WAIT
    _run_all(lambda i: _wait_sshd(p, i, deadline), indexes)


def _prepare_machine(p: _Paths, state: dict) -> None:
    """Bridge, client key, cgroup roots, mount point; cleans debris of a dead lab first."""
    if _bridge_owner() != str(p.home) or not p.state.exists():
        # No lab of ours is up (or we lost track of it), and no other (checked by the
        # caller): anything that carries a lab name is debris, and would collide.
        _remove_machine_leftovers(state)
        _create_bridge(p.home)
    p.lab.mkdir(parents=True, exist_ok=True)
    os.chmod(p.lab, 0o700)
    _keygen(p.key, "podctl-lab")
    if not state["hierarchies"] or not all(os.path.isdir(os.path.dirname(h["root"]))
                                            for h in state["hierarchies"]):
        state["hierarchies"] = _cgroup_hierarchies()
    for path in (NETNS_DIR, VAR_LIB_PODCTL):
        if not path.exists() and str(path) not in state["created"]:
            state["created"].append(str(path))
    VAR_LIB_PODCTL.mkdir(mode=0o700, exist_ok=True)
    _save_state(p, state)


def _write_known_hosts(p: _Paths, state: dict) -> None:
    lines = []
    for name, entry in _sorted_hosts(state):
        keytype, key = (p.host(name) / "ssh_host_ed25519_key.pub").read_text().split()[:2]
        lines.append(f"{entry['address']} {keytype} {key}\n")
    _write_atomic(p.known_hosts, "".join(lines))


def _yaml_str(value: str) -> str:
    return value if re.fullmatch(r"[A-Za-z0-9_./-]+", value) else json.dumps(value)


def _write_inventory(p: _Paths, state: dict) -> None:
    lines = [
        "# Written by `podctl lab up`; rewritten on every lab up.",
        "all:",
        "  vars:",
        "    ansible_user: root",
        f"    ansible_ssh_private_key_file: {_yaml_str(str(p.key))}",
        f"    podctl_known_hosts: {_yaml_str(str(p.known_hosts))}",
        "  hosts:",
    ]
    for name, entry in _sorted_hosts(state):
        i = entry["index"]
        lines += [f"    {name}:", f"      ansible_host: {entry['address']}", "      ansible_port: 22"]
        if i <= 255:
            lines.append(f"      pod_cidr: 10.244.{i}.0/24")
        lines += ["      labels:", '        podctl.io/lab: "true"',
                  f"        topology.kubernetes.io/zone: {ZONES[(i - 1) % len(ZONES)]}"]
    _write_atomic(p.inventory, "\n".join(lines) + "\n")


def _sorted_hosts(state: dict) -> list[tuple[str, dict]]:
    return sorted(state["hosts"].items(), key=lambda kv: kv[1]["index"])


# ---------------------------------------------------------------- public API


def lab_up(home: Path, hosts: int = 3) -> Path:
    """Ensure hosts node1..nodeN run (others are kept); returns the inventory path."""
    if not 1 <= hosts <= MAX_HOSTS:
        raise LabError(f"the number of lab hosts must be between 1 and {MAX_HOSTS}, not {hosts}")
    _preflight()
    p = _Paths(home)
    if re.search(r"[\t\n]", str(p.home)) or len(str(p.home)) > 255:
        # The home goes into labinit's line format and into the bridge's alias.
        raise LabError(f"the lab home must be under 256 chars, without tabs or newlines: {str(p.home)!r}")
    with _machine_lock():
        other = _foreign_lab(p)
        if other:
            raise LabError(f"a lab owned by {other} is up on this machine (one lab per machine); "
                           f"remove it with: podctl --home {other} lab down")
        state = _load_state(p)
        _prepare_machine(p, state)
        for i in range(1, hosts + 1):
            state["hosts"].setdefault(host_name(i), {"index": i, "address": host_address(i)})
        down = [e["index"] for _, e in _sorted_hosts(state) if e["index"] <= hosts and not _running(e)]
        _boot(p, state, down)
        _write_known_hosts(p, state)
        _write_inventory(p, state)
    return p.inventory


def lab_down(home: Path) -> None:
    """Remove every trace of the lab: processes, links, netns, cgroups, files."""
    p = _Paths(home)
    with _machine_lock():
        state = _load_state(p)
        ours = {e["pid"]: e["start"] for e in state["hosts"].values() if _running(e)}
        _kill_and_wait(ours)
        if not _foreign_lab(p):  # never touch a lab another home owns
            _remove_machine_leftovers(state)
            _remove_created_dirs(state)
        try:
            shutil.rmtree(p.lab)
        except FileNotFoundError:
            pass
        except OSError as exc:
            raise LabError(f"cannot remove {p.lab}: {exc}") from exc


def lab_status(home: Path) -> list[dict]:
    """Per host: name, address, pid (of its init), running, reachable (sshd accepts TCP)."""
    p = _Paths(home)
    if not p.state.exists():
        return []
    rows = [
        {"name": name, "address": e["address"], "pid": e.get("pid"), "running": _running(e)}
        for name, e in _sorted_hosts(_load_state(p))
    ]
    with _pool(len(rows)) as pool:
        reachable = list(pool.map(lambda r: r["running"] and _tcp_ok(r["address"]), rows))
    for row, ok in zip(rows, reachable):
        row["reachable"] = ok
    return rows


def host_crash(home: Path, name: str) -> None:
    """SIGKILL the host's init: every process in the host dies, like a power cut."""
    p = _Paths(home)
    entry = _host_entry(p, _load_state(p), name)
    if _running(entry):
        _kill_and_wait({entry["pid"]: entry["start"]})


def host_start(home: Path, name: str) -> None:
    """Boot a crashed host again: /var/lib/podctl survives, /run and /tmp do not."""
    _preflight()
    p = _Paths(home)
    with _machine_lock():
        state = _load_state(p)
        entry = _host_entry(p, state, name)
        if _bridge_owner() != str(p.home):
            raise LabError(f"the lab of {p.home} is not up; run: podctl lab up")
        if not _running(entry):
            _boot(p, state, [entry["index"]])


def host_link(home: Path, name: str, up: bool) -> None:
    """Set the host's eth0 up or down: down cuts it off the lab network (a partition)."""
    p = _Paths(home)
    _host_entry(p, _load_state(p), name)
    _ip_batch([f"link set eth0 {'up' if up else 'down'}"], netns=_netns(name))


# ---------------------------------------------------------------- python -m orchestrator.lab


def main(argv: list[str] | None = None) -> int:
    from .config import default_home

    parser = argparse.ArgumentParser(prog="python -m orchestrator.lab")
    parser.add_argument("command", choices=["up", "down", "status"])
    parser.add_argument("--hosts", type=int, default=3)
    parser.add_argument("--home", type=Path, default=None)
    args = parser.parse_args(argv)
    home = args.home or default_home()
    try:
        if args.command == "up":
            started = time.monotonic()
            inventory = lab_up(home, args.hosts)
            print(inventory)
            print(f"lab up: {args.hosts} hosts in {time.monotonic() - started:.2f}s", file=sys.stderr)
        elif args.command == "down":
            lab_down(home)
        else:
            for row in lab_status(home):
                print(f"{row['name']:<10} {row['address']:<15} pid={row['pid'] or '-':<8} "
                      f"running={'yes' if row['running'] else 'no':<4} "
                      f"sshd={'yes' if row['reachable'] else 'no'}")
    except LabError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    return 0


if __name__ == "__main__":
    sys.exit(main())
