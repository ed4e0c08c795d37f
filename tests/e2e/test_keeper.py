"""The SSH connection keeper end to end: real sshd on lab hosts, the real CLI.

Every test starts from no keeper for the lab's home and stops (by pid) every keeper
it made; the keeper's own counters (`podctl keeper status -o json`) and sshd's side
(established connections in a host's network namespace) say what was reused.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from orchestrator import lab as labmod
from orchestrator.config import Config
from orchestrator.inventory import load_inventory
from orchestrator.transport import keeper_client, keeper_proto
from orchestrator.transport.keeper_client import KeeperTransport
from orchestrator.transport.ssh import SSHTransport

pytestmark = pytest.mark.e2e


def cli(lab, *args: str, env: dict | None = None, check: bool = True, timeout: float = 120):
    full = {**os.environ, "PODCTL_HOME": str(lab.home), "PODCTL_SSH_KEEPER": "1", **(env or {})}
    r = subprocess.run([sys.executable, "-m", "orchestrator.cli", *args], env=full, capture_output=True,
                       text=True, timeout=timeout)
    if check and r.returncode != 0:
        raise AssertionError(f"podctl {' '.join(args)} -> {r.returncode}\n{r.stdout}\n{r.stderr}")
    return r


def status(lab, home: Path | None = None) -> dict:
    r = subprocess.run([sys.executable, "-m", "orchestrator.cli", "--home", str(home or lab.home), "keeper",
                        "status", "-o", "json"], capture_output=True, text=True, timeout=30)
    return json.loads(r.stdout)


def entries(st: dict) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    for e in st.get("entries", []):
        out.setdefault(e["host"], []).append(e)
    return out


def keepers_of(home: Path) -> set[int]:
    """Live keeper processes started for `home` (their command line names it)."""
    found = set()
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            argv = (d / "cmdline").read_bytes().split(b"\0")
            state = (d / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if b"orchestrator.transport.keeper" in argv and os.fsencode(str(home)) in argv and state != "Z":
            found.add(int(d.name))
    return found


def wait_for(predicate, timeout: float, step: float = 0.1):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(step)


def stop_keepers(home: Path) -> None:
    """Stop the keeper of `home` (`keeper stop`, by its pid), then SIGKILL any left."""
    keeper_client.stop(Config(home=home), timeout=15)
    for pid in keepers_of(home):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    assert wait_for(lambda: not keepers_of(home), 10), f"keepers of {home} left: {keepers_of(home)}"


@pytest.fixture
def no_keeper(lab):
    stop_keepers(lab.home)
    # Others may edit the tree while this session runs: let this process's clients (the
    # in-process tests) say the code version the CLI and the keepers see now.
    keeper_proto._code = None
    yield
    stop_keepers(lab.home)


def established_ssh(name: str) -> int:
    """SSH connections sshd of lab host `name` has open (seen inside its network namespace)."""
    r = subprocess.run(["nsenter", f"--net=/run/netns/{labmod.NETNS_PREFIX}{name}", "ss", "-Htn",
                        "state", "established", "( sport = :22 )"], capture_output=True, text=True, check=True)
    return len([line for line in r.stdout.splitlines() if line.strip()])


def established_all(lab) -> list[int]:
    return [established_ssh(name) for name, _ in lab.hosts]


def test_two_runs_share_one_connection_per_host(lab, no_keeper):
    n = len(lab.hosts)
    # Earlier modules' faults (partitions, hangs) can leave half-open connections that a
    # host's sshd still counts: compare with what is there before this test.
    base = established_all(lab)
    cli(lab, "hosts")
    first = status(lab)
    assert first["running"] and first["connects"] == n and first["open_connections"] == n, first
    cli(lab, "hosts")
    second = status(lab)
    assert second["pid"] == first["pid"]
    assert second["connects"] == n, "the second run opened new SSH connections"
    assert second["requests"] == first["requests"] + n
    assert all(len(es) == 1 and es[0]["requests"] == 2 for es in entries(second).values())
    # sshd's own view: one connection per host, the keeper's, across both runs.
    assert established_all(lab) == [b + 1 for b in base]


def test_keeper_off_runs_on_direct_connections(lab, no_keeper):
    base = established_all(lab)
    r = cli(lab, "hosts", env={"PODCTL_SSH_KEEPER": "0"})
    assert "Ready" in r.stdout
    assert not keepers_of(lab.home)
    assert not (lab.home / "run" / "keeper.sock").exists()
    assert cli(lab, "keeper", "status", check=False).returncode == 1
    assert established_all(lab) == base


@pytest.mark.parametrize("partition", [False, True], ids=["crash", "partition-then-crash"])
def test_restarted_host_gets_a_new_connection_and_the_run_succeeds(lab, no_keeper, partition):
    """A crash: sshd dies, the keeper sees its connection close. A crash behind a
    partition: nobody tells the keeper, its connection looks alive until a session is
    tried on it (then dropped and replaced: `stale_reconnects`, or, if a keepalive found
    it dead first, an ordinary new connection). Either way the run just works."""
    cli(lab, "hosts")
    before = status(lab)
    if partition:
        labmod.host_link(lab.home, "node2", False)
    labmod.host_crash(lab.home, "node2")
    if partition:
        labmod.host_link(lab.home, "node2", True)
    labmod.host_start(lab.home, "node2")
    r = cli(lab, "hosts", "-o", "json")
    assert {i["name"]: i["status"] for i in json.loads(r.stdout)["items"]}["node2"] == "Ready", r.stdout
    after = status(lab)
    assert after["pid"] == before["pid"]
    assert entries(after)["node2"][0]["connects"] == 2
    assert after["connects"] == before["connects"] + 1  # the other hosts kept theirs


def test_dead_kept_connection_is_replaced_before_anything_is_sent(lab, no_keeper):
    """Deterministic version of the partition case: no keepalives (keepalive_interval 0),
    so only the next session finds the connection dead; the script still runs once."""
    config = Config(home=lab.home, inventory=lab.inventory, keepalive_interval=0, ssh_keeper=True)
    inventory = load_inventory(lab.inventory)
    node3 = inventory.get("node3")
    marker = f"/var/lib/podctl/keeper-e2e-{os.getpid()}"

    async def once(script: str):
        async with KeeperTransport(config, host_key_checking=inventory.host_key_checking) as t:
            return await t.run(node3, script, timeout=20)

    try:
        assert asyncio.run(once("true")).ok
        before = status(lab)
        labmod.host_link(lab.home, "node3", False)
        labmod.host_crash(lab.home, "node3")
        labmod.host_link(lab.home, "node3", True)
        labmod.host_start(lab.home, "node3")
        # Not idempotent: it must run exactly once, on the new connection.
        r = asyncio.run(once(f"echo x >> {marker}; wc -l < {marker}"))
        assert r.ok and r.stdout.strip() == b"1", r
        after = status(lab)
        assert after["stale_reconnects"] == before["stale_reconnects"] + 1
        assert after["connects"] == before["connects"] + 1
    finally:
        lab.ssh("node3", f"rm -f {marker}")


def _inventory_variant(lab, tmp_path: Path, name: str, **vars_: str) -> Path:
    text = lab.inventory.read_text()
    extra = "".join(f"    {k}: {v}\n" for k, v in vars_.items())
    text = text.replace("  vars:\n", "  vars:\n" + extra, 1)
    if "podctl_known_hosts" in vars_:
        text = "\n".join(line for line in text.splitlines()
                         if not (line.startswith("    podctl_known_hosts:") and vars_["podctl_known_hosts"] not in line))
    path = tmp_path / name
    path.write_text(text + "\n")
    return path


def test_changed_known_hosts_or_policy_never_reuses_a_connection(lab, no_keeper, tmp_path):
    n = len(lab.hosts)
    cli(lab, "hosts")
    base = status(lab)["connects"]
    assert base == n

    # A weaker policy for the same hosts: new connections, the strict ones are not reused.
    tofu = _inventory_variant(lab, tmp_path, "tofu.yaml", podctl_host_key_checking="accept-new")
    cli(lab, "-i", str(tofu), "hosts")
    assert status(lab)["connects"] == base + n
    # Another known_hosts file (same content): new connections too.
    copy = tmp_path / "known_hosts"
    shutil.copy(lab.known_hosts, copy)
    other = _inventory_variant(lab, tmp_path, "other.yaml", podctl_known_hosts=str(copy))
    cli(lab, "-i", str(other), "hosts")
    assert status(lab)["connects"] == base + 2 * n
    # Back to the lab's inventory: its connections were kept.
    cli(lab, "hosts")
    assert status(lab)["connects"] == base + 2 * n

    saved = lab.known_hosts.read_text()
    try:
        # An entry for some other host: node1's connections stay (its entries did not change).
        lab.known_hosts.write_text(saved + "10.213.99.99 ssh-ed25519 "
                                   "AAAAC3NzaC1lZDI1NTE5AAAAIDH6bxGCzTb9LwqApyVyUAkTqDCFFL4iH+lAVhGRXO0O\n")
        cli(lab, "hosts")
        assert status(lab)["connects"] == base + 2 * n
        # node1's entry now names another key: refused through the keeper, under either
        # policy, although a connection verified under the old entry is open.
        address = lab.address("node1")
        wrong = [line if not line.startswith(address + " ") else f"{address} ssh-ed25519 "
                 "AAAAC3NzaC1lZDI1NTE5AAAAIDH6bxGCzTb9LwqApyVyUAkTqDCFFL4iH+lAVhGRXO0O"
                 for line in saved.splitlines()]
        lab.known_hosts.write_text("\n".join(wrong) + "\n")
        for inventory in (lab.inventory, tofu):
            r = cli(lab, "-i", str(inventory), "hosts", check=False)
            assert r.returncode == 2 and "does not match" in r.stderr and "node1" in r.stderr, r.stderr
        assert status(lab)["connects"] == base + 2 * n  # nothing connected
    finally:
        lab.known_hosts.write_text(saved)
    # The entry as it was: the connection verified under it serves again.
    cli(lab, "hosts")
    assert status(lab)["connects"] == base + 2 * n


def test_keeper_exits_after_its_idle_time(lab, no_keeper):
    cli(lab, "hosts", env={"PODCTL_SSH_KEEPER_IDLE": "1.5"})
    st = status(lab)
    assert st["running"] and st["idle_timeout"] == 1.5
    pid = st["pid"]
    assert wait_for(lambda: not keepers_of(lab.home), 20), "the keeper did not exit when idle"
    assert not Path(f"/proc/{pid}").exists() or pid not in keepers_of(lab.home)
    assert not (lab.home / "run" / "keeper.sock").exists()
    assert "stopping: idle for 1.5s" in (lab.home / "run" / "keeper.log").read_text()
    assert cli(lab, "keeper", "status", check=False).returncode == 1


def test_concurrent_starts_leave_exactly_one_keeper(lab, no_keeper):
    env = {**os.environ, "PODCTL_HOME": str(lab.home), "PODCTL_SSH_KEEPER": "1"}
    procs = [subprocess.Popen([sys.executable, "-m", "orchestrator.cli", "hosts"], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(4)]
    results = [(p.wait(timeout=120), *p.communicate()) for p in procs]
    assert all(r[0] == 0 for r in results), results
    assert wait_for(lambda: len(keepers_of(lab.home)) == 1, 15), keepers_of(lab.home)
    st = status(lab)
    assert keepers_of(lab.home) == {st["pid"]}
    assert st["connects"] == len(lab.hosts)  # the runs shared one keeper's connections


def test_stop_and_a_keeper_of_another_version_is_replaced(lab, no_keeper):
    cli(lab, "hosts")
    first = status(lab)["pid"]
    r = cli(lab, "keeper", "stop")
    assert f"keeper pid {first} stopped" in r.stdout
    assert not keepers_of(lab.home)
    cli(lab, "hosts")
    second = status(lab)["pid"]
    assert second != first
    # A podctl whose keeper code differs (an upgrade): the old keeper exits, a new one serves.
    path = Path(keeper_proto.__file__)
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
    try:
        cli(lab, "hosts")
        third = status(lab)["pid"]
        assert third not in (first, second)
        assert wait_for(lambda: keepers_of(lab.home) == {third}, 15)
        assert "a podctl of another version" in (lab.home / "run" / "keeper.log").read_text()
    finally:
        os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))


def test_results_through_the_keeper_are_the_direct_results(lab, no_keeper):
    inventory = load_inventory(lab.inventory)
    node1 = inventory.get("node1")
    closed_port = type(node1)(**{**node1.__dict__, "name": "closed-port", "port": 2})
    cases = [
        (node1, "printf 'a\\0b'; printf 'err\\n' >&2", 10, False),
        (node1, "echo partial; exit 3", 10, False),
        (node1, "echo started; sleep 30", 1, False),  # deadline: unknown
        (node1, "cat /etc/hostname", 10, True),
        (closed_port, "true", 10, False),  # refused: unreachable
    ]

    async def through(transport_cls, config):
        async with transport_cls(config, host_key_checking=inventory.host_key_checking) as t:
            results = [await t.run(h, s, timeout=tmo, idempotent=idem) for h, s, tmo, idem in cases]
            pushed = await t.run(node1, "wc -c", payload=b"x" * 300_000, timeout=10)
            return results, pushed

    config = Config(home=lab.home, inventory=lab.inventory, ssh_keeper=True)
    direct, direct_push = asyncio.run(through(SSHTransport, config))
    kept, kept_push = asyncio.run(through(KeeperTransport, config))
    for d, k in zip(direct, kept):
        assert (d.host, d.status, d.exit_code, d.stdout, d.stderr, d.error) == \
            (k.host, k.status, k.exit_code, k.stdout, k.stderr, k.error)
    assert [r.status for r in kept] == ["ok", "failed", "unknown", "ok", "unreachable"]
    assert kept[0].stdout == b"a\0b" and kept[0].stderr == b"err\n"
    assert 0.9 < kept[2].duration < 5  # the deadline, enforced in the keeper
    assert direct_push.stdout.strip() == kept_push.stdout.strip() == b"300000"
    assert status(lab)["requests"] == len(cases)  # the payload run went on a direct connection


def test_no_usable_run_dir_means_direct_connections(lab, tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    (home / "run").write_text("not a directory")
    try:
        r = cli(lab, "--home", str(home), "-i", str(lab.inventory), "hosts")
        assert "Ready" in r.stdout
        assert not keepers_of(home)
    finally:
        stop_keepers(home)


def test_only_the_same_user_may_talk_to_the_keeper(lab, no_keeper):
    """SO_PEERCRED: another uid that reaches the socket (here: permissions opened up on
    purpose) is disconnected without an answer."""
    python = "/usr/bin/python3"
    if not os.access(python, os.X_OK):
        pytest.skip("needs /usr/bin/python3 for a client running as nobody")
    cli(lab, "hosts")
    run, sock = lab.home / "run", lab.home / "run" / "keeper.sock"
    homes = [p for p in [run, lab.home, *lab.home.parents] if p != Path("/")]
    modes = {p: p.stat().st_mode & 0o7777 for p in [*homes, sock]}  # (keeps /tmp's sticky bit)
    hello = keeper_proto.encode(keeper_proto.hello()).hex()
    code = ("import socket, sys\n"
            "s = socket.socket(socket.AF_UNIX); s.settimeout(10); s.connect(sys.argv[1])\n"
            "s.sendall(bytes.fromhex(sys.argv[2]))\n"
            "try:\n    data = s.recv(100)\nexcept ConnectionResetError:\n    data = b''\n"
            "print('answer' if data else 'closed')\n")  # closed with our hello unread: a reset
    try:
        for p in homes:
            if modes[p] & 0o011 != 0o011:
                p.chmod(modes[p] | 0o011)
        sock.chmod(0o666)
        r = subprocess.run([python, "-c", code, str(sock), hello], capture_output=True, text=True, timeout=30,
                           user=65534, group=65534)
        assert r.stdout.strip() == "closed", r.stdout + r.stderr
    finally:
        for p, mode in modes.items():
            p.chmod(mode)
    assert status(lab)["refused_peers"] == 1
