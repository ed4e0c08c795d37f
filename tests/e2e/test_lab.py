"""The lab itself, checked over real SSH with host key verification."""

from __future__ import annotations

import json
import os
import signal
import socket
import time
import subprocess
import uuid
from pathlib import Path

import pytest

from orchestrator import lab as labmod
from orchestrator.podnet import ROUTE_PROTO

pytestmark = pytest.mark.e2e


def _token() -> str:
    return uuid.uuid4().hex[:12]


def _ok(result: subprocess.CompletedProcess) -> str:
    assert result.returncode == 0, (
        f"rc={result.returncode}\nstdout:\n{result.stdout}\nstderr:\n{result.stderr}")
    return result.stdout


def _status(lab) -> dict[str, dict]:
    return {row["name"]: row for row in labmod.lab_status(lab.home)}


def _start_time(pid: int) -> int | None:
    """A live process's start time (with its pid, its identity); None once it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return None if fields[0] in ("Z", "X") else int(fields[19])


def _restore(lab) -> None:
    """Put the session's lab back to exactly the hosts the fixture promised."""
    labmod.lab_down(lab.home)
    labmod.lab_up(lab.home, len(lab.hosts))


def test_hostnames(lab):
    for name, _ in lab.hosts:
        assert _ok(lab.ssh(name, "hostname")).strip() == name


def test_pid1_is_labinit_and_machine_processes_are_hidden(lab):
    listing = r"for p in /proc/[0-9]*; do echo ${p#/proc/} $(tr '\0' ' ' < $p/cmdline); done"
    out = _ok(lab.ssh("node1", listing))
    procs = dict(line.split(" ", 1) for line in out.splitlines() if " " in line)
    assert "labinit.py" in procs["1"]
    # Nothing of the machine's: neither its init nor this test process.
    seen = {cmd.strip() for cmd in procs.values()}
    for pid in ("1", "self"):
        machine_cmd = Path(f"/proc/{pid}/cmdline").read_text().replace("\0", " ").strip()
        assert machine_cmd not in seen
    assert len(procs) < len([p for p in os.listdir("/proc") if p.isdigit()])


def test_root_tmp_and_run_podctl_are_private(lab):
    token = _token()
    dirs = ("/root", "/tmp", "/run/podctl")
    files = [f"{d}/lab-{token}" for d in dirs]
    try:
        _ok(lab.ssh("node1", f"touch {' '.join(files)}"))
        assert _ok(lab.ssh("node1", "stat -c %a /run/podctl")).strip() == "700"
        for name, _ in lab.hosts[1:]:
            seen = _ok(lab.ssh(name, f"for f in {' '.join(files)}; do test -e $f && echo $f; done; true"))
            assert seen.strip() == "", f"{name} sees {seen}"
        assert not [f for f in files if os.path.exists(f)], "visible on the machine"
        assert (lab.home / "lab" / "hosts" / "node1" / "root" / f"lab-{token}").exists()
    finally:
        lab.ssh("node1", f"rm -f {' '.join(files)}")


def test_var_lib_podctl_survives_a_crash_run_and_tmp_do_not(lab):
    token = _token()
    _ok(lab.ssh("node2", f"echo {token} > /var/lib/podctl/keep-{token}; "
                         f"touch /tmp/{token} /run/podctl/{token}"))
    before = _status(lab)["node2"]

    labmod.host_crash(lab.home, "node2")
    crashed = _status(lab)["node2"]
    assert not crashed["running"] and not crashed["reachable"]
    assert _start_time(before["pid"]) is None
    assert lab.ssh("node2", "true", timeout=20).returncode == 255  # ssh cannot connect

    labmod.host_start(lab.home, "node2")
    after = _status(lab)["node2"]
    assert after["running"] and after["reachable"] and after["pid"] != before["pid"]
    out = _ok(lab.ssh("node2", f"hostname; cat /var/lib/podctl/keep-{token}; "
                               f"ls /tmp/{token} /run/podctl/{token} 2>/dev/null; "
                               f"rm /var/lib/podctl/keep-{token}; true"))
    assert out.split() == ["node2", token]


def test_cgroup_subtree_is_private_and_limits_work(lab):
    group = f"e2e-{_token()}"
    mem = f"/sys/fs/cgroup/memory/podctl/{group}"
    script = f"""set -e
mkdir -p {mem}/c1 /sys/fs/cgroup/pids/podctl/{group} /sys/fs/cgroup/cpu/podctl/{group}
echo 33554432 > {mem}/c1/memory.limit_in_bytes
echo 64 > /sys/fs/cgroup/pids/podctl/{group}/pids.max
echo 50000 > /sys/fs/cgroup/cpu/podctl/{group}/cpu.cfs_quota_us
sh -c 'echo $$ > {mem}/c1/cgroup.procs; grep :memory: /proc/self/cgroup'
"""
    cleanup = (f"rmdir {mem}/c1 {mem} /sys/fs/cgroup/pids/podctl/{group} "
               f"/sys/fs/cgroup/cpu/podctl/{group}")
    try:
        # Inside the host its cgroup is the root: the child shows as /podctl/<group>/c1.
        assert _ok(lab.ssh("node1", script)).strip().endswith(f":memory:/podctl/{group}/c1")
        machine = labmod.host_cgroups(lab.home, "node1")
        c1 = machine["memory"] / "podctl" / group / "c1"
        assert "/podlab/node1/" in str(c1)
        assert (c1 / "memory.limit_in_bytes").read_text().strip() == "33554432"
        assert (machine["pids"] / "podctl" / group / "pids.max").read_text().strip() == "64"
        assert _ok(lab.ssh("node2", f"test -e {mem} && echo visible; true")).strip() == ""
        # The limit is enforced: allocating 128 MiB in c1 gets the process OOM-killed.
        # (A shell around it reports the status; ssh itself says 255 for "killed by signal".)
        alloc = _ok(lab.ssh("node1", f"sh -c 'echo $$ > {mem}/c1/cgroup.procs; "
                                     f"exec python3 -c \"bytearray(128 << 20)\"'; echo status=$?"))
        assert f"status={128 + signal.SIGKILL}" in alloc
    finally:
        lab.ssh("node1", cleanup)


def test_overlay_mount_works_inside_a_host(lab):
    base = f"/var/lib/podctl/e2e-ovl-{_token()}"
    mount = (f"set -e; mkdir -p {base}/lower {base}/upper {base}/work {base}/merged; "
             f"echo lower > {base}/lower/f; "
             f"mount -t overlay overlay -o lowerdir={base}/lower,upperdir={base}/upper,"
             f"workdir={base}/work {base}/merged; "
             f"echo new > {base}/merged/g; cat {base}/merged/f; ls {base}/upper")
    try:
        assert _ok(lab.ssh("node3", mount)).split() == ["lower", "g"]
        # The mount lives in the host's mount namespace only.
        assert base not in Path("/proc/self/mountinfo").read_text()
    finally:
        lab.ssh("node3", f"umount {base}/merged; rm -rf {base}")


def test_hosts_reach_each_other_and_nothing_else(lab):
    for src, _ in lab.hosts:
        others = [address for name, address in lab.hosts if name != src]
        probe = "; ".join(f"(exec 3<>/dev/tcp/{a}/22; head -c 7 <&3; echo)" for a in others)
        assert _ok(lab.ssh(src, probe)).split() == ["SSH-2.0"] * len(others), src
    routes = [line.split() for line in _ok(lab.ssh("node1", "ip -4 route")).strip().splitlines()]
    # podctl's host-gw routes (podnet.py, made by earlier tests' reconciles) send other
    # hosts' pod CIDRs to their lab addresses, and nothing else
    pod_routes = [r for r in routes if f"proto {ROUTE_PROTO}" in " ".join(r)]
    assert all(r[0].startswith("10.244.") and r[1:3] == ["via", r[2]] and r[2].startswith("10.213.")
               for r in pod_routes), pod_routes
    routes = [r for r in routes if r not in pod_routes]
    # the lab subnet and nothing else leaves by eth0, and there is no default route;
    # pods' bridge (podctl0, made by earlier tests) may add its own pod CIDR
    assert [r for r in routes if "eth0" in r] == ["10.213.0.0/16 dev eth0 proto kernel scope link src 10.213.0.11".split()]
    assert not [r for r in routes if r[0] == "default"]
    assert all("eth0" in r or ("podctl0" in r and r[0].startswith("10.244.")) for r in routes), routes


def _sshd_answers(address: str) -> bool:
    try:
        with socket.create_connection((address, 22), timeout=0.5):
            return True
    except OSError:
        return False


def test_host_link_down_partitions_the_host_and_up_heals_it(lab):
    name, address = lab.hosts[2]
    try:
        labmod.host_link(lab.home, name, up=False)
        assert not _sshd_answers(address)
        probe = f"timeout 1 bash -c 'exec 3<>/dev/tcp/{address}/22' && echo reached || echo cut"
        assert _ok(lab.ssh(lab.hosts[0][0], probe)).strip() == "cut"
    finally:
        labmod.host_link(lab.home, name, up=True)
    # A link that comes back up may take a moment to pass traffic again (bridge port,
    # neighbour entry): seconds, not a retry loop that would hide a real partition.
    deadline = time.monotonic() + 5
    while not _sshd_answers(address) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _sshd_answers(address)
    assert _ok(lab.ssh(name, "hostname")).strip() == name


def test_lab_up_again_is_harmless_and_can_add_hosts(lab):
    before = {n: r["pid"] for n, r in _status(lab).items()}
    assert labmod.lab_up(lab.home, len(lab.hosts)) == lab.inventory
    assert {n: r["pid"] for n, r in _status(lab).items()} == before
    try:
        labmod.lab_up(lab.home, len(lab.hosts) + 1)
        grown = _status(lab)
        new = labmod.host_name(len(lab.hosts) + 1)
        assert {n: grown[n]["pid"] for n in before} == before
        assert grown[new]["running"] and grown[new]["reachable"]
        assert _ok(lab.ssh(new, "hostname")).strip() == new
        assert f"{new}:" in lab.inventory.read_text()
        assert len(lab.known_hosts.read_text().splitlines()) == len(lab.hosts) + 1
    finally:
        _restore(lab)


def _traces(lab) -> dict:
    """What the lab has on the machine now: processes, cgroup roots, dirs it made."""
    state = json.loads((lab.home / "lab" / "state.json").read_text())
    roots = [Path(h["root"]) for h in state["hierarchies"]]
    pids = {e["pid"] for e in state["hosts"].values()}
    for root in roots:
        for procs in root.rglob("cgroup.procs"):
            pids.update(int(p) for p in procs.read_text().split())
    assert roots and pids
    return {"procs": {(pid, _start_time(pid)) for pid in pids}, "cgroups": roots,
            "created": [Path(d) for d in state["created"]]}


def _assert_clean(lab, traces: dict, state_lost: bool = False) -> None:
    netns = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    assert "podlab-" not in netns
    links = subprocess.run(["ip", "-o", "link", "show"], capture_output=True, text=True).stdout
    assert " podlab0" not in links and " plb-" not in links
    assert not [r for r in traces["cgroups"] if r.exists()]
    assert not [pid for pid, start in traces["procs"] if start and _start_time(pid) == start]
    if not state_lost:  # only its state tells which of /run/netns, /var/lib/podctl it made
        assert not [d for d in traces["created"] if d.exists()]
    assert not (lab.home / "lab").exists()


def _make_pod_like_traces(lab) -> None:
    # What a pod leaves: child cgroups and a daemonized process reparented to init.
    _ok(lab.ssh("node1", "mkdir -p /sys/fs/cgroup/memory/podctl/crash/c1 "
                         "/sys/fs/cgroup/pids/podctl/crash; "
                         "setsid sleep 1000 < /dev/null > /dev/null 2>&1 &"))


def test_lab_down_leaves_nothing_also_after_crashes(lab):
    made = json.loads((lab.home / "lab" / "state.json").read_text())["created"]
    try:
        _make_pod_like_traces(lab)
        traces = _traces(lab)
        labmod.lab_down(lab.home)
        _assert_clean(lab, traces)
        labmod.lab_down(lab.home)  # nothing there: still fine

        # Crash of the lab: every init SIGKILLed behind its back.
        labmod.lab_up(lab.home, len(lab.hosts))
        _make_pod_like_traces(lab)
        traces = _traces(lab)
        for row in labmod.lab_status(lab.home):
            os.kill(row["pid"], signal.SIGKILL)
        labmod.lab_down(lab.home)
        _assert_clean(lab, traces)

        # Crash with the lab's state lost: leftovers are found by their names.
        labmod.lab_up(lab.home, len(lab.hosts))
        _make_pod_like_traces(lab)
        traces = _traces(lab)
        (lab.home / "lab" / "state.json").unlink()
        labmod.lab_down(lab.home)
        _assert_clean(lab, traces, state_lost=True)
    finally:
        # Without its state the lab cannot know it made /run/netns or /var/lib/podctl:
        # put the machine back as it was before the session, then the session's lab.
        labmod.lab_down(lab.home)
        labmod._remove_created_dirs({"created": made})
        labmod.lab_up(lab.home, len(lab.hosts))
