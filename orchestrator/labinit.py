"""PID 1 of a lab host (see orchestrator/lab.py). Runs as `python3 -I -S labinit.py CONFIG`.

Two stages in one file, so a host costs one interpreter start:

* launcher (started by lab.py in the machine's namespaces, already setsid, stdout a
  pipe, stderr the host's log): joins the host's cgroups, enters its network namespace,
  unshares mount/UTS/PID/cgroup namespaces and forks. The child is PID 1 of the new
  PID namespace. The launcher prints the child's PID once the child reports that its
  mounts are done, then exits, so `lab up` never waits on a long-lived process.
* init (PID 1): builds the host's private mounts, runs sshd (restarting it if it
  dies), reaps every orphan, and on SIGTERM stops everything (SIGKILL after 2 s).

Only the standard library, everything imported up front: once /root and /tmp are
replaced, modules that live there would no longer be importable. Imports are kept to
the cheap ones (a lab may start 200 of these): `_signal` instead of `signal` (no enum),
a line-based config instead of json (no re), libc instead of `socket` for sethostname.

Config file, one `key=value` per line; bind and cgroup repeat, their fields split by tabs:
    name=node1
    netns=/run/netns/podlab-node1
    sshd_config=/abs/sshd_config
    host_key=/abs/ssh_host_ed25519_key
    bind=<source>\t<target>
    cgroup=<machine dir>\t<mount dir under /sys/fs/cgroup>\t<fstype>\t<options>\t<aliases,>
"""

import _signal as signal
import ctypes
import os
import sys
import time

CLONE_NEWNS = 0x00020000
CLONE_NEWCGROUP = 0x02000000
CLONE_NEWUTS = 0x04000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000
MS_NOSUID, MS_NODEV, MS_NOEXEC = 0x2, 0x4, 0x8
MS_BIND, MS_REC, MS_PRIVATE = 0x1000, 0x4000, 0x40000
MNT_DETACH = 0x2
SAFE = MS_NOSUID | MS_NODEV | MS_NOEXEC

SSHD = "/usr/sbin/sshd"
RUN_DIR = "/run/podlab"  # the host's copy of its sshd config and host key
SSHD_RESTART_DELAY = 0.5
STOP_GRACE = 2.0
HANDLED = (signal.SIGCHLD, signal.SIGTERM, signal.SIGINT, signal.SIGHUP)

_libc = ctypes.CDLL(None, use_errno=True)


def log(msg):
    stamp = time.strftime("%Y-%m-%d %H:%M:%S")
    sys.stderr.write(f"{stamp} labinit[{os.getpid()}]: {msg}\n")
    sys.stderr.flush()


def _check(ret, what):
    if ret != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def _b(text):
    return text.encode() if text is not None else None


def mount(source, target, fstype, flags=0, data=None):
    ret = _libc.mount(_b(source), _b(target), _b(fstype), ctypes.c_ulong(flags), _b(data))
    _check(ret, f"mount {fstype or source} on {target}")


def umount_lazy(target):
    _check(_libc.umount2(target.encode(), MNT_DETACH), f"umount {target}")


def detach_below(path):
    """Detach every mount at or below path, e.g. the machine's /run/netns/* copies,
    which would otherwise keep other hosts' network namespaces alive."""
    with open("/proc/self/mountinfo") as f:
        points = [line.split()[4].replace("\\040", " ") for line in f]
    below = [m for m in points if m == path or m.startswith(path + "/")]
    for mountpoint in sorted(set(below), key=len, reverse=True):
        try:
            umount_lazy(mountpoint)
        except OSError:
            pass  # already gone with a parent


# ---------------------------------------------------------------- launcher


def launch(cfg):
    # The cgroup namespace root is the cgroup we are in at unshare time, so join first.
    for h in cfg["cgroups"]:
        with open(os.path.join(h["dir"], "cgroup.procs"), "w") as f:
            f.write(str(os.getpid()))
    fd = os.open(cfg["netns"], os.O_RDONLY)
    _check(_libc.setns(fd, CLONE_NEWNET), "setns net")
    os.close(fd)
    _check(_libc.unshare(CLONE_NEWNS | CLONE_NEWUTS | CLONE_NEWPID | CLONE_NEWCGROUP), "unshare")
    # Nothing we mount may propagate back to the machine.
    mount(None, "/", None, MS_REC | MS_PRIVATE)
    name = cfg["name"].encode()
    _check(_libc.sethostname(name, len(name)), "sethostname")

    ready_r, ready_w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(ready_r)
        os.dup2(2, 1)  # release lab.py's stdout pipe: the host's output goes to its log
        init(cfg, ready_w)
        os._exit(0)
    os.close(ready_w)
    with os.fdopen(ready_r, "rb") as ready:
        ok = ready.read() == b"ok"
    if not ok:
        log("host init failed during setup (see above)")
        os._exit(1)
    sys.stdout.write(f"{pid}\n")
    sys.stdout.flush()
    os._exit(0)


# ---------------------------------------------------------------- init (PID 1)


def build_mounts(cfg):
    # Read what sshd needs now: the lab home may live under /tmp, hidden below.
    with open(cfg["sshd_config"], "rb") as f:
        sshd_config = f.read()
    with open(cfg["host_key"], "rb") as f:
        host_key = f.read()

    for source, target in cfg["binds"]:
        mount(source, target, None, MS_BIND | MS_REC)

    umount_lazy("/proc")
    mount("proc", "/proc", "proc", SAFE)
    # A fresh sysfs shows this host's network namespace (/sys/class/net).
    umount_lazy("/sys")
    mount("sysfs", "/sys", "sysfs", SAFE)
    mount_cgroups(cfg["cgroups"])

    for private in ("/run", "/tmp"):
        detach_below(private)
    mount("tmpfs", "/run", "tmpfs", MS_NOSUID | MS_NODEV, "mode=755")
    mount("tmpfs", "/tmp", "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777")
    os.mkdir("/run/sshd", 0o755)  # sshd's privilege separation directory
    os.mkdir("/run/podctl", 0o700)
    os.mkdir(RUN_DIR, 0o700)
    write_private(os.path.join(RUN_DIR, "sshd_config"), sshd_config)
    write_private(os.path.join(RUN_DIR, "ssh_host_ed25519_key"), host_key)


def mount_cgroups(hierarchies):
    # Inside our cgroup namespace a cgroup mount's root is the host's own subtree.
    if any(h["target"] != "" for h in hierarchies):
        mount("tmpfs", "/sys/fs/cgroup", "tmpfs", SAFE, "mode=755")
    for h in hierarchies:
        target = os.path.join("/sys/fs/cgroup", h["target"]) if h["target"] else "/sys/fs/cgroup"
        os.makedirs(target, exist_ok=True)
        mount("cgroup", target, h["fstype"], SAFE, h["options"] or None)
        for alias in h.get("aliases", ()):
            os.symlink(h["target"], os.path.join("/sys/fs/cgroup", alias))


def write_private(path, data):
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)


def start_sshd():
    argv = [SSHD, "-D", "-e", "-f", os.path.join(RUN_DIR, "sshd_config")]
    env = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8"}
    # Blocked signals survive exec; sshd must start with a clean mask.
    pid = os.posix_spawn(SSHD, argv, env, setsigmask=(), setsigdef=HANDLED)
    log(f"started sshd pid {pid}")
    return pid


def reap():
    """Collect every exited child (our own and reparented orphans)."""
    gone = []
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return gone
        if pid == 0:
            return gone
        gone.append((pid, status))


def shutdown():
    log("stopping: SIGTERM to every process")
    try:
        os.kill(-1, signal.SIGTERM)  # from PID 1: every process in this PID namespace
    except ProcessLookupError:
        pass
    deadline = time.monotonic() + STOP_GRACE
    while time.monotonic() < deadline:
        reap()
        try:
            os.kill(-1, 0)
        except ProcessLookupError:
            break
        signal.sigtimedwait([signal.SIGCHLD], max(0.0, deadline - time.monotonic()))
    else:
        log("grace period over: SIGKILL")
        try:
            os.kill(-1, signal.SIGKILL)
        except ProcessLookupError:
            pass
    reap()
    os._exit(0)


def init(cfg, ready_fd):
    try:
        # PID 1 only receives signals it has handlers for; then we take them synchronously.
        for sig in HANDLED:
            signal.signal(sig, lambda *_: None)
        signal.pthread_sigmask(signal.SIG_BLOCK, HANDLED)
        build_mounts(cfg)
        sshd = start_sshd()
    except BaseException as exc:  # report, and let the launcher fail loudly
        log(f"setup failed: {exc!r}")
        os._exit(1)
    os.write(ready_fd, b"ok")
    os.close(ready_fd)

    restart_at = None
    while True:
        timeout = 3600.0 if restart_at is None else max(0.0, restart_at - time.monotonic())
        info = signal.sigtimedwait(HANDLED, timeout)
        if info is not None and info.si_signo in (signal.SIGTERM, signal.SIGINT):
            shutdown()
        for pid, status in reap():
            if pid == sshd:
                log(f"sshd exited (status {status}), restarting in {SSHD_RESTART_DELAY}s")
                sshd, restart_at = None, time.monotonic() + SSHD_RESTART_DELAY
        if sshd is None and restart_at is not None and time.monotonic() >= restart_at:
            try:
                sshd, restart_at = start_sshd(), None
            except OSError as exc:
                log(f"cannot start sshd: {exc}")
                restart_at = time.monotonic() + SSHD_RESTART_DELAY


def read_config(path):
    cfg = {"binds": [], "cgroups": []}
    with open(path) as f:
        for line in f.read().splitlines():
            key, _, value = line.partition("=")
            if key == "bind":
                cfg["binds"].append(value.split("\t"))
            elif key == "cgroup":
                cgdir, target, fstype, options, aliases = value.split("\t")
                cfg["cgroups"].append({"dir": cgdir, "target": target, "fstype": fstype,
                                       "options": options, "aliases": [a for a in aliases.split(",") if a]})
            elif key:
                cfg[key] = value
    return cfg


def main():
    if len(sys.argv) != 2:
        sys.stderr.write("usage: labinit.py CONFIG\n")
        sys.exit(2)
    try:
        launch(read_config(sys.argv[1]))
    except OSError as exc:
        log(f"launch failed: {exc}")
        sys.exit(1)


if __name__ == "__main__":
    main()
