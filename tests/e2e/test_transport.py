"""SSHTransport against the machine's real OpenSSH sshd, on 127.0.0.1 only.

A module fixture starts `sshd -D -e -f CFG` on a free port with its own host key, a
client key in its own authorized_keys and a known_hosts naming it; it is stopped by
PID at the end. No SSH is mocked. LocalTransport cases at the end need no sshd.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import shutil
import socket
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest

from orchestrator.config import Config
from orchestrator.errors import HostKeyError
from orchestrator.model import Host
from orchestrator.transport import (FAILED, LOADER_MIN, OK, UNKNOWN, UNREACHABLE, remote_command_line,
                                    wrap_script)
from orchestrator.transport.local import LocalTransport
from orchestrator.transport.ssh import SSHTransport

pytestmark = pytest.mark.e2e

SSHD = "/usr/sbin/sshd"
MB = 1 << 20


def arun(coro):
    return asyncio.run(coro)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def keygen(path: Path) -> str:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "podctl-test", "-f", str(path)],
                   check=True)
    return path.with_suffix(".pub").read_text().strip()


class Sshd:
    """A throwaway sshd: its files live in `root`, its log in root/sshd.log."""

    def __init__(self, root: Path):
        self.root = root
        self.port = free_port()
        self.host_pub = keygen(root / "host_ed25519")
        (root / "authorized_keys").write_text(keygen(root / "client_ed25519") + "\n")
        self.key = str(root / "client_ed25519")
        self.known_hosts = root / "known_hosts"
        self.known_hosts.write_text(f"[127.0.0.1]:{self.port} {self.host_pub}\n")
        self.log = root / "sshd.log"
        (root / "sshd_config").write_text(f"""
ListenAddress 127.0.0.1
Port {self.port}
HostKey {root}/host_ed25519
AuthorizedKeysFile {root}/authorized_keys
PermitRootLogin prohibit-password
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
PidFile none
LogLevel VERBOSE
MaxStartups 50
""")
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        os.makedirs("/run/sshd", mode=0o755, exist_ok=True)  # sshd's privilege-separation dir
        with self.log.open("wb") as log:
            self.proc = subprocess.Popen([SSHD, "-D", "-e", "-f", str(self.root / "sshd_config")],
                                         stdout=subprocess.DEVNULL, stderr=log)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"sshd exited: {self.log.read_text()}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("sshd did not start listening")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()  # by PID: only the sshd this fixture started
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def accepted(self) -> int:
        """Connections sshd authenticated so far (its own count, not ours)."""
        return self.log.read_text(errors="replace").count("Accepted publickey")

    def host(self, name: str = "local", **changes) -> Host:
        host = Host(name=name, address="127.0.0.1", port=self.port, user="root",
                    key_file=self.key, known_hosts=str(self.known_hosts))
        return replace(host, **changes)


@pytest.fixture(scope="module")
def sshd(tmp_path_factory):
    if os.geteuid() != 0:
        pytest.skip("needs root: sshd must run as root to log in as root")
    if not os.path.exists(SSHD) or not shutil.which("ssh-keygen"):
        pytest.skip(f"needs OpenSSH server ({SSHD}) and ssh-keygen")
    server = Sshd(tmp_path_factory.mktemp("sshd"))
    server.start()
    yield server
    server.stop()


@pytest.fixture
def config(tmp_path):
    return Config(home=tmp_path, connect_timeout=3.0, command_timeout=20.0)


def canary_script(path: Path) -> str:
    return f"touch {path}\n"


# Comment lines that push a script over LOADER_MIN: the wrapper then uses its loader form.
BIG = "\n" + ("# padding to take the loader path\n" * (LOADER_MIN // 30 + 1))
FORMS = pytest.mark.parametrize("pad", ["", BIG], ids=["read-N", "loader"])


# ------------------------------------------------------------------ statuses


def test_ok_run_returns_stdout_stderr_and_exit_0(sshd, config):
    async def go():
        async with SSHTransport(config) as t:
            return await t.run(sshd.host(), "echo hello; echo oops >&2; echo \"$LC_ALL\"")
    r = arun(go())
    assert (r.status, r.exit_code, r.stdout, r.stderr) == (OK, 0, b"hello\nC\n", b"oops\n")
    assert r.ok and r.host == "local" and r.duration > 0


def test_non_zero_exit_is_failed_with_the_code(sshd, config):
    async def go():
        async with SSHTransport(config) as t:
            return await t.run(sshd.host(), "echo partial; exit 3")
    r = arun(go())
    assert (r.status, r.exit_code, r.stdout) == (FAILED, 3, b"partial\n")


@FORMS
def test_bash_line_numbers_match_the_script(sshd, config, pad):
    async def go():
        async with SSHTransport(config) as t:
            return await t.run(sshd.host(), "true\ntrue\nno-such-command-xyz\n" + pad)
    r = arun(go())
    assert r.status == FAILED and b"line 3: no-such-command-xyz" in r.stderr


@FORMS
def test_a_syntax_error_runs_nothing(sshd, config, tmp_path, pad):
    canary = tmp_path / "syntax.canary"

    async def go():
        async with SSHTransport(config) as t:
            return await t.run(sshd.host(), f"touch {canary}\nif then fi\n" + pad)
    r = arun(go())
    assert r.status == FAILED and not canary.exists()


# ------------------------------------------------------------------ payload on stdin


@FORMS
def test_20mb_payload_reaches_the_script_intact(sshd, config, pad):
    data = os.urandom(20 * MB)

    async def chunks():
        for i in range(0, len(data), 3 * MB + 7):  # odd sizes: chunk boundaries must not matter
            yield data[i:i + 3 * MB + 7]

    async def go():
        async with SSHTransport(config) as t:
            as_bytes = await t.run(sshd.host(), "echo before >&2\nsha256sum\necho after >&2" + pad, payload=data)
            as_iter = await t.run(sshd.host(), "head -c 5 >/dev/null; sha256sum" + pad, payload=chunks())
            return as_bytes, as_iter
    as_bytes, as_iter = arun(go())
    assert as_bytes.status == OK, as_bytes
    assert as_bytes.stdout.split()[0].decode() == hashlib.sha256(data).hexdigest()
    assert as_bytes.stderr == b"before\nafter\n"
    assert as_iter.stdout.split()[0].decode() == hashlib.sha256(data[5:]).hexdigest()


@FORMS
def test_unread_payload_is_never_executed(sshd, config, tmp_path, pad):
    canary = tmp_path / "payload.canary"

    async def go():
        async with SSHTransport(config) as t:
            return await t.run(sshd.host(), "echo done" + pad, payload=canary_script(canary).encode() * 1000)
    r = arun(go())
    assert (r.status, r.stdout) == (OK, b"done\n")
    assert not canary.exists()


async def failing_payload():
    yield b"x" * MB
    raise OSError("disk read error")


def test_a_failing_payload_source_aborts_the_session_as_unknown(sshd, config, tmp_path):
    """The remote side still sees EOF (sshd will not signal a root session), so the
    script checks the size it got, as every payload-consuming script must."""
    done = tmp_path / "consumed"
    script = f'n=$(wc -c); [ "$n" -eq {3 * MB} ] && touch {done}'

    async def go():
        async with SSHTransport(config) as t:
            return await t.run(sshd.host(), script, payload=failing_payload())
    r = arun(go())
    assert r.status == UNKNOWN and "disk read error" in r.error and r.duration < 5, r
    assert not done.exists()


def test_wrap_script_shape():
    def read_n(block: bytes) -> bytes:
        return (b"export LC_ALL=C; IFS= read -r -N %d PODCTL_SCRIPT || { echo 'podctl: the script was cut "
                b"short; nothing ran' >&2; exit 1; }; . /dev/fd/9 9<<<\"$PODCTL_SCRIPT\" ; exit $?\n" % len(block)
                + block)

    def loader(block: bytes) -> bytes:
        return b". <(head -c %d) ; exit $?\n" % len(block) + block

    block = b"{ export LC_ALL=C; echo hi\n}\n"
    empty = b"{ export LC_ALL=C; }\n"
    assert wrap_script("echo hi") == read_n(block)  # small: no process besides bash
    assert wrap_script("") == read_n(empty)
    assert wrap_script("echo hi", loader=True) == loader(block)
    big = "echo hi\n" + "#" * LOADER_MIN
    assert wrap_script(big) == loader(f"{{ export LC_ALL=C; {big}\n}}\n".encode())
    assert wrap_script("echo hi\0") == loader(b"{ export LC_ALL=C; echo hi\0\n}\n")  # NUL: no variable holds it


@pytest.mark.parametrize("loader", [False, True], ids=["read-N", "loader"])
def test_wrapped_script_leaves_the_payload_on_stdin(loader):
    data = wrap_script("read -r first; echo \"got $first\"; exit 7", loader=loader) + b"payload-line\nmore\n"
    r = subprocess.run(["bash", "-s"], input=data, capture_output=True)
    assert r.stdout == b"got payload-line\n" and r.returncode == 7
    # Multi-byte characters: the byte count is what is read, whatever the host's locale.
    data = wrap_script("echo 'é∂😀'; cat", loader=loader) + "payload é\n".encode()
    r = subprocess.run(["bash", "-s"], input=data, capture_output=True, env={**os.environ, "LC_ALL": "C.UTF-8"})
    assert r.stdout.decode() == "é∂😀\npayload é\n" and r.returncode == 0, r
    # A syntax error anywhere runs nothing, not even the lines before it, nor the payload.
    data = wrap_script("echo ran\nif then", loader=loader) + b"echo payload ran\n"
    r = subprocess.run(["bash", "-s"], input=data, capture_output=True)
    assert r.stdout == b"" and r.returncode != 0 and b"line 2" in r.stderr
    # A script cut short in transit runs nothing either.
    data = wrap_script("echo ran\necho more\n", loader=loader)[:-8]
    r = subprocess.run(["bash", "-s"], input=data, capture_output=True)
    assert r.stdout == b"" and r.returncode != 0
    # It runs sourced in both forms: `return` ends the script with its status.
    r = subprocess.run(["bash", "-s"], input=wrap_script("echo a; return 4; echo b", loader=loader),
                       capture_output=True)
    assert (r.stdout, r.returncode) == (b"a\n", 4)


# ------------------------------------------------------------------ host keys


def test_wrong_host_key_raises_and_sends_nothing(sshd, config, tmp_path):
    other = keygen(tmp_path / "other_host")
    known = tmp_path / "known_hosts"
    known.write_text(f"[127.0.0.1]:{sshd.port} {other}\n")
    canary = tmp_path / "hostkey.canary"
    before = sshd.accepted()

    async def go():
        async with SSHTransport(config) as t:
            await t.run(sshd.host("mitm", known_hosts=str(known)), canary_script(canary))
    with pytest.raises(HostKeyError) as info:
        arun(go())
    message = str(info.value)
    assert "'mitm'" in message and "does not match" in message and "ssh-keygen -R" in message
    assert not canary.exists()
    assert sshd.accepted() == before  # never even authenticated


@pytest.mark.parametrize("known_hosts_text", [None, "", "[127.0.0.1]:1 ssh-ed25519 AAAA\n"])
def test_missing_or_unknown_host_key_raises(sshd, config, tmp_path, known_hosts_text):
    known = tmp_path / "kh"
    if known_hosts_text is not None:
        known.write_text(known_hosts_text)
    canary = tmp_path / "unknown.canary"

    async def go():
        async with SSHTransport(config) as t:
            await t.run(sshd.host("newhost", known_hosts=str(known)), canary_script(canary))
    with pytest.raises(HostKeyError) as info:
        arun(go())
    assert "'newhost'" in str(info.value)
    assert f"ssh-keyscan -p {sshd.port} 127.0.0.1 >> {known}" in str(info.value)
    assert not canary.exists()


def test_accept_new_records_an_unknown_key_but_refuses_a_changed_one(sshd, config, tmp_path):
    known = tmp_path / "sub" / "kh"  # neither the file nor its directory exists yet
    host = sshd.host("tofu", known_hosts=str(known))

    async def go(h):
        async with SSHTransport(config, host_key_checking={h.name: "accept-new"}) as t:
            return await t.run(h, "echo in")
    assert arun(go(host)).stdout == b"in\n"
    assert known.read_text() == f"[127.0.0.1]:{sshd.port} {' '.join(sshd.host_pub.split()[:2])}\n"
    assert arun(go(host)).stdout == b"in\n"  # the recorded key now verifies; no second entry
    assert len(known.read_text().splitlines()) == 1
    known.write_text(f"[127.0.0.1]:{sshd.port} {keygen(tmp_path / 'x')}\n")
    with pytest.raises(HostKeyError, match="does not match"):
        arun(go(host))


def test_accept_new_verifies_the_key_it_just_recorded_in_a_file_already_read(sshd, config, tmp_path):
    """The transport keeps each known_hosts parsed; recording a key must drop that copy."""
    known = tmp_path / "kh"
    known.write_text(f"192.0.2.1 {keygen(tmp_path / 'unrelated')}\n")
    host = sshd.host("tofu2", known_hosts=str(known))

    async def go():
        async with SSHTransport(config, host_key_checking={"tofu2": "accept-new"}) as t:
            t._parsed_known_hosts(host, str(known))  # parsed (and kept) before the key is added
            return await t.run(host, "echo in")
    assert arun(go()).stdout == b"in\n"
    assert len(known.read_text().splitlines()) == 2


def test_known_hosts_and_client_key_are_read_once_per_transport(sshd, config, monkeypatch):
    import asyncssh

    import orchestrator.transport.ssh as ssh_module
    reads = {"known_hosts": 0, "key": 0}
    read_known_hosts, read_private_key = asyncssh.read_known_hosts, asyncssh.read_private_key

    def counting_known_hosts(path):
        reads["known_hosts"] += 1
        return read_known_hosts(path)

    def counting_key(path, *args, **kwargs):
        reads["key"] += 1
        return read_private_key(path, *args, **kwargs)
    monkeypatch.setattr(ssh_module.asyncssh, "read_known_hosts", counting_known_hosts)
    monkeypatch.setattr(ssh_module.asyncssh, "read_private_key", counting_key)

    async def go():
        async with SSHTransport(config) as t:
            results = await t.run_many([sshd.host(f"k{i}") for i in range(5)], lambda h: "echo ok")
            return results, t.connects
    results, connects = arun(go())
    assert all(r.stdout == b"ok\n" for r in results.values()) and connects == 5
    assert reads == {"known_hosts": 1, "key": 1}


def test_an_empty_known_hosts_never_falls_back_to_the_users_file(sshd, config, tmp_path, monkeypatch):
    """asyncssh reads ~/.ssh/known_hosts when given a falsy known_hosts: the parsed
    object podctl passes must never count as one."""
    home = tmp_path / "home"
    (home / ".ssh").mkdir(parents=True)
    (home / ".ssh" / "known_hosts").write_text(sshd.known_hosts.read_text())  # would verify the host
    monkeypatch.setenv("HOME", str(home))
    empty = tmp_path / "empty_kh"
    empty.write_text("")

    async def go():
        async with SSHTransport(config) as t:
            await t.run(sshd.host("nofallback", known_hosts=str(empty)), "true")
    with pytest.raises(HostKeyError, match="not in"):
        arun(go())


@pytest.fixture(scope="module")
def sshd_ctr_only(tmp_path_factory):
    """An sshd that offers neither AES-GCM nor chacha20: only aes128-ctr."""
    if os.geteuid() != 0 or not os.path.exists(SSHD) or not shutil.which("ssh-keygen"):
        pytest.skip("needs root and OpenSSH's sshd")
    server = Sshd(tmp_path_factory.mktemp("sshd_ctr"))
    with (server.root / "sshd_config").open("a") as cfg:
        cfg.write("Ciphers aes128-ctr\n")
    server.start()
    yield server
    server.stop()


def test_aes_gcm_is_preferred_and_other_ciphers_still_connect(sshd, sshd_ctr_only, config):
    async def go(server):
        async with SSHTransport(config) as t:
            r = await t.run(server.host(), "echo ok")
            conn = await t.connection(server.host())
            return r, conn.get_extra_info("send_cipher"), conn.get_extra_info("recv_cipher")
    r, send, recv = arun(go(sshd))
    assert r.stdout == b"ok\n" and send == recv == "aes128-gcm@openssh.com"
    r, send, recv = arun(go(sshd_ctr_only))
    assert r.stdout == b"ok\n" and send == recv == "aes128-ctr"


def test_run_many_reports_a_host_key_problem_as_that_hosts_result(sshd, config, tmp_path):
    async def go():
        async with SSHTransport(config) as t:
            return await t.run_many([sshd.host("good"), sshd.host("bad", known_hosts=str(tmp_path / "none"))],
                                    lambda h: "echo ok")
    results = arun(go())
    assert results["good"].status == OK
    assert results["bad"].status == UNREACHABLE and "known_hosts" in results["bad"].error


# ------------------------------------------------------------------ unreachable and unknown


def test_closed_port_is_unreachable_quickly(sshd, config):
    host = sshd.host("closed", port=free_port())

    async def go():
        async with SSHTransport(config) as t:
            first = await t.run(host, "true")
            t0 = time.monotonic()
            second = await t.run(host, "true")  # the failed connect is remembered for this run
            return first, second, time.monotonic() - t0
    first, second, again = arun(go())
    assert first.status == UNREACHABLE and "refused" in first.error.lower(), first
    assert first.duration < 2.0
    assert second.status == UNREACHABLE and again < 0.1


def test_wrong_client_key_is_unreachable_and_not_retried(sshd, config, tmp_path):
    keygen(tmp_path / "stranger")

    async def go():
        async with SSHTransport(config) as t:
            return await t.run(sshd.host("nokey", key_file=str(tmp_path / "stranger")), "true")
    r = arun(go())
    assert r.status == UNREACHABLE and "denied" in r.error.lower(), r
    assert r.duration < 2.0


def test_missing_client_key_is_unreachable(sshd, config, tmp_path):
    async def go():
        async with SSHTransport(config) as t:
            return await t.run(sshd.host("nofile", key_file=str(tmp_path / "absent")), "true")
    r = arun(go())
    assert r.status == UNREACHABLE and str(tmp_path / "absent") in r.error


def test_deadline_gives_unknown_and_the_connection_stays_usable(sshd, config):
    async def go():
        async with SSHTransport(config) as t:
            t0 = time.monotonic()
            slow = await t.run(sshd.host(), "echo started; sleep 30", timeout=1)
            elapsed = time.monotonic() - t0
            after = await t.run(sshd.host(), "echo still here")
            return slow, elapsed, after, t.connects
    slow, elapsed, after, connects = arun(go())
    assert slow.status == UNKNOWN and slow.exit_code is None and "deadline" in slow.error
    assert elapsed < 1.5
    assert (after.status, after.stdout) == (OK, b"still here\n")
    assert connects == 1


@pytest.fixture
def silent_peer():
    """A TCP port that accepts connections and never says a word (a hung host)."""
    server = socket.create_server(("127.0.0.1", 0), backlog=16)
    yield server.getsockname()[1]
    server.close()


def test_silent_peer_is_unreachable_within_the_connect_timeouts(sshd, tmp_path, silent_peer):
    config = Config(home=tmp_path, connect_timeout=0.5, command_timeout=20.0)
    hosts = [sshd.host("fine"), sshd.host("silent", port=silent_peer)]

    async def go():
        async with SSHTransport(config) as t:
            return await t.run_many(hosts, lambda h: "echo fine")
    results = arun(go())
    assert results["fine"].status == OK and results["fine"].duration < 0.5
    silent = results["silent"]
    assert silent.status == UNREACHABLE and "Timeout" in silent.error, silent
    assert 0.9 <= silent.duration < 1.8, silent  # two tries of 0.5 s, then it gives up


def test_outer_deadline_covers_a_hung_connect(sshd, tmp_path, silent_peer):
    config = Config(home=tmp_path, connect_timeout=30.0)

    async def go():
        async with SSHTransport(config) as t:
            return await t.run(sshd.host("silent", port=silent_peer), "true", timeout=1)
    r = arun(go())
    assert r.status == UNREACHABLE and "deadline" in r.error and r.duration < 1.5, r


def test_outer_deadline_covers_a_peer_that_hangs_mid_command(sshd, config, tmp_path):
    """SIGSTOP the sshd process serving the session: the peer stays connected, silent."""
    pid_file = tmp_path / "session.pid"

    async def go():
        async with SSHTransport(config) as t:
            return await t.run(sshd.host(), f"echo $PPID > {pid_file}; kill -STOP $PPID; echo never",
                               timeout=1.5)
    try:
        r = arun(go())
    finally:
        if pid_file.exists():  # the stopped process is a child of the sshd this module started
            os.kill(int(pid_file.read_text()), 9)
    assert r.status == UNKNOWN and "deadline" in r.error and r.duration < 2.0, r


def test_session_killed_without_exit_status_is_unknown(sshd, config):
    """Kill the sshd process serving the session: no exit-status ever arrives."""
    async def go():
        async with SSHTransport(config) as t:
            lost = await t.run(sshd.host(), "echo before; kill -9 $PPID; sleep 5")
            after = await t.run(sshd.host(), "echo reconnected")
            return lost, after, t.connects
    lost, after, connects = arun(go())
    assert lost.status == UNKNOWN and lost.exit_code is None, lost
    assert lost.duration < 4
    assert (after.status, after.stdout, connects) == (OK, b"reconnected\n", 2)


def test_exit_by_signal_is_unknown(sshd, config):
    async def go():
        async with SSHTransport(config) as t:
            return await t.run(sshd.host(), "kill -9 $$")
    r = arun(go())
    assert r.status == UNKNOWN and "KILL" in r.error, r


def test_idempotent_call_is_retried_after_a_lost_connection(sshd, config, tmp_path):
    marker = tmp_path / "first-try"
    script = f"if [ ! -e {marker} ]; then touch {marker}; kill -9 $PPID; fi; echo second try"

    async def go(idempotent):
        marker.unlink(missing_ok=True)
        async with SSHTransport(config) as t:
            return await t.run(sshd.host(), script, idempotent=idempotent)
    changing = arun(go(False))
    probe = arun(go(True))
    assert changing.status == UNKNOWN  # a step that may change a host is never repeated
    assert (probe.status, probe.stdout) == (OK, b"second try\n")


# ------------------------------------------------------------------ concurrency


def test_20_concurrent_calls_share_one_connection(sshd, config):
    before = sshd.accepted()

    async def go():
        async with SSHTransport(config) as t:
            results = await asyncio.gather(*(t.run(sshd.host(), f"sleep 0.2; echo {i}") for i in range(20)))
            return results, t.connects, {id(task.result()) for task in t._conns.values()}
    results, connects, conn_ids = arun(go())
    assert [r.stdout for r in results] == [f"{i}\n".encode() for i in range(20)]
    assert all(r.status == OK for r in results)
    assert connects == 1 and len(conn_ids) == 1
    assert sshd.accepted() - before == 1  # sshd agrees: one login


def test_run_many_fans_out_and_a_dead_host_does_not_slow_the_others(sshd, config):
    hosts = [sshd.host(f"h{i}") for i in range(5)] + [
        Host(name="blackhole", address="127.0.0.1", port=free_port(), key_file=sshd.key,
             known_hosts=str(sshd.known_hosts))]

    async def go():
        async with SSHTransport(config) as t:
            t0 = time.monotonic()
            results = await t.run_many(hosts, lambda h: f"sleep 1; echo {h.name}")
            return results, time.monotonic() - t0
    results, elapsed = arun(go())
    assert list(results) == [h.name for h in hosts]
    for i in range(5):
        assert (results[f"h{i}"].status, results[f"h{i}"].stdout) == (OK, f"h{i}\n".encode())
    assert results["blackhole"].status == UNREACHABLE
    assert elapsed < 3.0  # concurrently: 5 x 1 s in a row would be 5 s


def test_parallelism_bounds_concurrent_calls(sshd, tmp_path):
    config = Config(home=tmp_path, parallelism=2, command_timeout=20.0)
    hosts = [sshd.host(f"p{i}") for i in range(4)]

    async def go():
        async with SSHTransport(config) as t:
            await t.run_many(hosts, lambda h: "true")  # connect first, then time the sessions
            t0 = time.monotonic()
            await t.run_many(hosts, lambda h: "sleep 1")
            return time.monotonic() - t0
    assert 2.0 <= arun(go()) < 3.9  # 4 calls, 2 at a time: two rounds (not one, not four)


# ------------------------------------------------------------------ become


def test_become_command_line():
    assert remote_command_line(Host("h", "a")) == "bash -s"
    assert remote_command_line(Host("h", "a", become=True, become_user="app user")) == \
        "sudo -n -u 'app user' -- bash -s"


def test_become_runs_through_sudo(sshd, config):
    if not shutil.which("sudo"):
        pytest.skip("sudo is not installed on this machine")

    async def go():
        async with SSHTransport(config) as t:
            return await t.run(sshd.host(become=True, become_user="nobody"), "id -un")
    r = arun(go())
    assert (r.status, r.stdout) == (OK, b"nobody\n"), r


def test_importing_the_ssh_transport_runs_no_compiler():
    """asyncssh's import probes for optional C libraries; ctypes would run gcc and ld."""
    code = """if True:
        import ctypes.util, sys
        original = ctypes.util.find_library
        ran = []
        for name in ("_findLib_gcc", "_findLib_ld"):
            if hasattr(ctypes.util, name):
                setattr(ctypes.util, name, lambda lib, name=name: ran.append(name))
        import orchestrator.transport.ssh
        assert "asyncssh" in sys.modules and not ran, ran
        assert ctypes.util.find_library is original
    """
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).resolve().parents[2])


# ------------------------------------------------------------------ LocalTransport (no sshd)


def test_local_transport_same_rules(tmp_path):
    host = Host(name="here", address="ignored")
    data = os.urandom(5 * MB)
    canary = tmp_path / "local.canary"

    async def go():
        async with LocalTransport(Config(home=tmp_path)) as t:
            return (await t.run(host, "echo hi; exit 0"), await t.run(host, "exit 5"),
                    await t.run(host, "sha256sum", payload=data),
                    await t.run(host, "echo done", payload=canary_script(canary).encode()),
                    await t.run(host, "sleep 30", timeout=0.5), await t.run(host, "kill -9 $$"),
                    await t.run(host, f"cat >/dev/null && touch {canary}", payload=failing_payload()),
                    await t.run_many([Host("a", "x"), Host("b", "y")], lambda h: f"echo {h.name}"))
    ok, failed, digest, unread, slow, killed, broken, many = arun(go())
    assert (ok.status, ok.stdout) == (OK, b"hi\n")
    assert (failed.status, failed.exit_code) == (FAILED, 5)
    assert digest.stdout.split()[0].decode() == hashlib.sha256(data).hexdigest()
    assert unread.stdout == b"done\n" and not canary.exists()
    assert slow.status == UNKNOWN and slow.duration < 1.0
    assert killed.status == UNKNOWN
    assert broken.status == UNKNOWN and "disk read error" in broken.error and not canary.exists()
    assert {k: v.stdout for k, v in many.items()} == {"a": b"a\n", "b": b"b\n"}
