"""The connection keeper's protocol (framing, cache key) and its client's rules for what
a missing or partial answer means. Pure: a fake keeper on a socketpair, no SSH."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import socket
import sys
from pathlib import Path

import pytest

from orchestrator.config import Config
from orchestrator.errors import HostKeyError
from orchestrator.model import Capacity, Host
from orchestrator.transport import keeper_client, keeper_proto as proto

HOST = Host(name="web1", address="10.0.0.5", port=2222, user="deploy", key_file="/keys/id",
            known_hosts="/kh/known_hosts", become=True, become_user="root", password=None,
            labels=(("zone", "a"),), capacity=Capacity(cpu_m=1000), pod_cidr="10.244.1.0/24",
            groups=("web",), source="inv.yaml")
SETTINGS = {"connect_timeout": 5.0, "keepalive_interval": 5.0, "keepalive_count_max": 3,
            "sessions_per_host": 8, "agent": None}
FILES = {"known_hosts": "entries:abc", "key_file": "1:2:3:4"}


# ---------------------------------------------------------------- framing


@pytest.mark.parametrize("header, blob", [
    ({"op": "hello", "protocol": 1}, b""),
    ({"op": "run", "id": 7, "host": {"name": "h"}, "timeout": 1.5}, b"echo hi\n"),
    ({"op": "result", "id": 1, "stdout": 3, "error": "\u00e9\u4e2d"}, bytes(range(256)) * 3),
])
def test_frames_round_trip(header, blob):
    frame = proto.encode(header, blob)
    size = proto.frame_size(frame[:4])
    assert size == len(frame) - 4
    assert proto.decode(frame[4:]) == (header, blob)


def test_frames_read_from_a_stream_one_after_another():
    frames = [proto.encode({"op": "a", "id": i}, b"x" * i) for i in range(5)]

    async def read_all():
        reader = asyncio.StreamReader()
        data = b"".join(frames)
        for i in range(0, len(data), 3):  # arrives in small pieces
            reader.feed_data(data[i:i + 3])
        reader.feed_eof()
        got = [await proto.read_frame(reader) for _ in frames]
        with pytest.raises(asyncio.IncompleteReadError):
            await proto.read_frame(reader)
        return got

    got = asyncio.run(read_all())
    assert got == [({"op": "a", "id": i}, b"x" * i) for i in range(5)]


def test_sync_reader_reads_frames_and_reports_eof():
    a, b = socket.socketpair()
    with a, b:
        a.sendall(proto.encode({"op": "status", "n": 1}, b"zz") + proto.encode({"op": "bye"}))
        a.shutdown(socket.SHUT_WR)
        assert proto.read_frame_sync(b) == ({"op": "status", "n": 1}, b"zz")
        assert proto.read_frame_sync(b) == ({"op": "bye"}, b"")
        with pytest.raises(EOFError):
            proto.read_frame_sync(b)


@pytest.mark.parametrize("body, why", [
    (b"\x00\x00", "shorter"),
    (b"\x00\x00\x00\x09{}", "header of 9"),
    (b"\x00\x00\x00\x02[]", "object"),
    (b"\x00\x00\x00\x02{}", "object"),  # no op
    (b"\x00\x00\x00\x03{x}", "not JSON"),
    (b"\x00\x00\x00\x02\xff\xfe", "not JSON"),
])
def test_bad_frames_are_protocol_errors(body, why):
    with pytest.raises(proto.ProtocolError, match=why):
        proto.decode(body)


def test_frame_limits():
    with pytest.raises(proto.ProtocolError):
        proto.frame_size((proto.MAX_FRAME + 1).to_bytes(4, "big"))
    with pytest.raises(proto.ProtocolError):
        proto.frame_size((3).to_bytes(4, "big"))
    with pytest.raises(proto.ProtocolError):
        proto.encode({"op": "x", "pad": "y" * proto.MAX_HEADER})


def test_result_fields_split_stdout_and_stderr():
    header = proto.result_header(3, "failed", 2, b"out", 0.25, "exit status 2")
    fields = proto.result_fields(json.loads(json.dumps(header)), b"out" + b"err\x00")
    assert fields == {"status": "failed", "exit_code": 2, "stdout": b"out", "stderr": b"err\x00",
                      "duration": 0.25, "error": "exit status 2"}
    with pytest.raises(proto.ProtocolError):
        proto.result_fields({**header, "stdout": 9}, b"short")
    with pytest.raises(proto.ProtocolError):
        proto.result_fields({**header, "status": "fine"}, b"out")


# ---------------------------------------------------------------- what a request carries


def test_host_params_carry_every_connection_field_and_no_placement_field():
    params = proto.host_params(HOST)
    connection = {f.name for f in dataclasses.fields(Host)} - proto.NOT_CONNECTION
    assert set(params) == connection
    assert {"address", "port", "user", "key_file", "known_hosts", "become", "become_user", "password"} <= connection
    assert proto.host_from_params(json.loads(json.dumps(params))) == dataclasses.replace(
        HOST, labels=(), capacity=None, pod_cidr=None, groups=(), source="")


def test_host_params_make_paths_absolute():
    params = proto.host_params(Host(name="h", address="h.example", key_file="keys/id", known_hosts=None))
    assert params["key_file"] == str(Path("keys/id").absolute())
    assert params["known_hosts"] == str(Path("~/.ssh/known_hosts").expanduser())


@pytest.mark.parametrize("params", [
    {"name": "h", "address": "a", "labels": []},  # not a connection field
    {"name": "h", "address": "a", "bogus": 1},
    {"name": 1, "address": "a"},
    {"name": "h", "address": "a", "port": "22"},
    "not a mapping",
])
def test_host_from_params_refuses_what_is_not_a_host(params):
    with pytest.raises(ValueError):
        proto.host_from_params(params)


def test_settings_come_from_config_and_are_checked():
    got = proto.settings(Config(home=Path("/h"), connect_timeout=3, keepalive_interval=7,
                                keepalive_count_max=2), 8, "/agent.sock")
    assert got == {"connect_timeout": 3.0, "keepalive_interval": 7.0, "keepalive_count_max": 2,
                   "sessions_per_host": 8, "agent": "/agent.sock"}
    assert proto.check_settings(got) == got
    for bad in ({**got, "extra": 1}, {**got, "connect_timeout": "5"}, {**got, "sessions_per_host": 0},
                {k: v for k, v in got.items() if k != "agent"}):
        with pytest.raises(ValueError):
            proto.check_settings(bad)


# ---------------------------------------------------------------- the cache key


def key(params=None, policy="strict", conn_settings=None, files=None) -> str:
    return proto.cache_key(params or proto.host_params(HOST), policy, conn_settings or SETTINGS, files or FILES)


def test_cache_key_is_stable_and_order_independent():
    params = proto.host_params(HOST)
    shuffled = dict(reversed(list(params.items())))
    assert key() == key(shuffled) == key(files=dict(reversed(list(FILES.items()))))


@pytest.mark.parametrize("field, value", [
    ("name", "web2"), ("address", "10.0.0.6"), ("port", 22), ("user", "root"), ("key_file", "/keys/other"),
    ("key_file", None), ("known_hosts", "/kh/other"), ("become", False), ("become_user", "admin"),
    ("password", "secret"),
])
def test_any_host_field_changes_the_key(field, value):
    params = proto.host_params(HOST)
    assert key({**params, field: value}) != key(params)


@pytest.mark.parametrize("setting, value", [
    ("connect_timeout", 10.0), ("keepalive_interval", 0.0), ("keepalive_count_max", 5),
    ("sessions_per_host", 4), ("agent", "/run/agent.sock"),
])
def test_any_connection_setting_changes_the_key(setting, value):
    assert key(conn_settings={**SETTINGS, setting: value}) != key()


def test_policy_and_files_change_the_key():
    assert key(policy="accept-new") != key(policy="strict")
    assert key(files={**FILES, "known_hosts": "entries:def"}) != key()  # an edited known_hosts
    assert key(files={**FILES, "key_file": "1:2:3:5"}) != key()  # a replaced private key


def test_password_changes_the_key_but_is_not_in_it():
    params = proto.host_params(HOST)
    a, b = key({**params, "password": "hunter2"}), key({**params, "password": "hunter3"})
    assert a != b and "hunter2" not in a


def test_a_new_host_field_is_keyed_by_default(monkeypatch):
    """A field added to Host later travels in requests and changes the key unless it is
    listed as a placement-only field."""
    @dataclasses.dataclass(frozen=True)
    class Host2(Host):
        proxy_jump: str | None = None

    a = proto.host_params(Host2(name="h", address="a", proxy_jump="bastion1"))
    b = proto.host_params(Host2(name="h", address="a", proxy_jump="bastion2"))
    assert a["proxy_jump"] == "bastion1"
    assert key(a) != key(b)


def test_file_identity_follows_the_file(tmp_path):
    f = tmp_path / "known_hosts"
    assert proto.file_identity(str(f)).startswith("missing:")
    f.write_text("a\n")
    first = proto.file_identity(str(f))
    f.write_text("ab\n")
    assert proto.file_identity(str(f)) != first
    assert proto.file_identity(None) is None


def test_run_dir_is_private(tmp_path):
    paths = proto.Paths.of(tmp_path / "home")
    proto.ensure_run_dir(paths)
    assert paths.run.stat().st_mode & 0o777 == 0o700
    paths.run.chmod(0o755)
    proto.ensure_run_dir(paths)  # tightened: it is ours
    assert paths.run.stat().st_mode & 0o777 == 0o700
    assert proto.socket_path_ok(paths.socket)
    assert not proto.socket_path_ok(Path("/" + "x" * 120))


def test_only_a_client_with_code_as_new_replaces_a_keeper():
    hello = {**proto.hello(), "code": "other"}
    assert proto.replaces(hello)  # an upgrade (or the same files' mtime)
    assert not proto.replaces({**hello, "mtime": hello["mtime"] - 1})  # a podctl from before it
    assert not proto.replaces({**hello, "replace": False})  # a client that just started this keeper
    assert not proto.replaces({k: v for k, v in hello.items() if k != "mtime"})


def test_compatible_needs_protocol_and_code():
    hello = proto.hello()
    assert proto.compatible(hello)
    assert not proto.compatible({**hello, "code": "other"})
    assert not proto.compatible({**hello, "protocol": proto.PROTOCOL + 1})


# ---------------------------------------------------------------- the client's rules


class FakeKeeper:
    """The keeper's end of a socketpair: answers each run request with `answer(header)`,
    a list of frames (headers, or (header, blob)); None: close the connection."""

    def __init__(self, answer):
        self.answer = answer
        self.requests = []

    async def serve(self, reader, writer):
        try:
            while True:
                header, blob = await proto.read_frame(reader)
                self.requests.append((header, blob))
                frames = self.answer(header)
                if frames is None:
                    writer.close()
                    return
                for f in frames:
                    h, b = f if isinstance(f, tuple) else (f, b"")
                    writer.write(proto.encode({**h, "id": header.get("id")}, b))
        except (asyncio.IncompleteReadError, ConnectionError):
            pass


def call(answer, *, limit=1.0, idempotent=False, margin=0.2, monkeypatch=None):
    async def go():
        ours, theirs = socket.socketpair()
        fake = FakeKeeper(answer)
        r2, w2 = await asyncio.open_connection(sock=theirs)
        server = asyncio.create_task(fake.serve(r2, w2))
        reader, writer = await asyncio.open_connection(sock=ours)
        channel = keeper_client._Channel(reader, writer, {})
        header = proto.run_request(proto.host_params(HOST), "strict", SETTINGS, limit, idempotent)
        try:
            out = await channel.call(header, b"echo hi", limit, idempotent, HOST.name)
        finally:
            await channel.close()
            w2.close()
            server.cancel()
            await asyncio.gather(server, return_exceptions=True)
        return out, fake

    monkeypatch.setattr(keeper_client, "GUARD_MARGIN", margin)
    return asyncio.run(go())


def test_a_result_comes_back_as_the_same_result(monkeypatch):
    def answer(h):
        return [{"op": "started"}, (proto.result_header(0, "failed", 3, b"out", 0.5, "exit status 3"), b"outerr")]

    (result, fake) = call(answer, monkeypatch=monkeypatch)
    assert (result.host, result.status, result.exit_code, result.stdout, result.stderr, result.error) == \
        ("web1", "failed", 3, b"out", b"err", "exit status 3")
    header, blob = fake.requests[0]
    assert header["op"] == "run" and blob == b"echo hi" and header["timeout"] == 1.0
    assert header["host"]["address"] == "10.0.0.5" and header["policy"] == "strict"


def test_a_host_key_error_is_raised_as_direct_runs_raise_it(monkeypatch):
    with pytest.raises(HostKeyError, match="does not match"):
        call(lambda h: [{"op": "result", "raise": "HostKeyError", "error": "key does not match"}],
             monkeypatch=monkeypatch)


def test_rejected_means_run_it_directly(monkeypatch):
    result, _ = call(lambda h: [{"op": "rejected", "error": "exiting"}], monkeypatch=monkeypatch)
    assert result is keeper_client.RERUN


def test_started_without_a_result_is_unknown(monkeypatch):
    result, fake = call(lambda h: [{"op": "started"}], limit=0.3, monkeypatch=monkeypatch)
    assert result.status == "unknown" and "gave no result" in result.error
    assert [h["op"] for h, _ in fake.requests] == ["run"]  # a started call is never withdrawn


def test_keeper_gone_without_bye_is_unknown_unless_idempotent(monkeypatch):
    result, _ = call(lambda h: None, monkeypatch=monkeypatch)  # crashed: it may have started it
    assert result.status == "unknown" and "went away" in result.error
    result, _ = call(lambda h: None, idempotent=True, monkeypatch=monkeypatch)
    assert result is keeper_client.RERUN


def test_keeper_exiting_before_start_means_run_it_directly(monkeypatch):
    async def go():
        ours, theirs = socket.socketpair()
        r2, w2 = await asyncio.open_connection(sock=theirs)
        reader, writer = await asyncio.open_connection(sock=ours)
        channel = keeper_client._Channel(reader, writer, {})
        header = proto.run_request(proto.host_params(HOST), "strict", SETTINGS, 1.0, False)
        task = asyncio.create_task(channel.call(header, b"x", 1.0, False, "web1"))
        await proto.read_frame(r2)  # the request arrived; the keeper says bye and goes
        w2.write(proto.encode({"op": "bye", "reason": "idle"}))
        await asyncio.sleep(0.05)
        w2.close()
        out = await task
        await channel.close()
        return out, channel.usable

    monkeypatch.setattr(keeper_client, "GUARD_MARGIN", 0.2)
    out, usable = asyncio.run(go())
    assert out is keeper_client.RERUN and not usable


def test_not_started_in_time_is_cancelled_and_unreachable(monkeypatch):
    def answer(h):
        if h["op"] == "cancel":
            return [{"op": "cancelled"}]
        return []  # queued: never started

    result, fake = call(answer, limit=0.2, monkeypatch=monkeypatch)
    assert result.status == "unreachable" and "nothing was run" in result.error
    assert [h["op"] for h, _ in fake.requests] == ["run", "cancel"]


def test_started_late_after_cancel_still_gets_its_result(monkeypatch):
    def answer(h):
        if h["op"] == "cancel":
            return [{"op": "started"}, (proto.result_header(0, "ok", 0, b"late", 0.1, ""), b"late")]
        return []

    result, _ = call(answer, limit=0.2, monkeypatch=monkeypatch)
    assert result.status == "ok" and result.stdout == b"late"


def test_no_answer_at_all_is_unknown(monkeypatch):
    result, fake = call(lambda h: [], limit=0.2, monkeypatch=monkeypatch)
    assert result.status == "unknown" and "neither started nor cancelled" in result.error


def test_client_imports_no_asyncssh():
    import subprocess

    code = ("import sys, orchestrator.transport.keeper_client, orchestrator.controller; "
            "bad = [m for m in ('asyncssh', 'jinja2', 'rich', 'numpy', 'tenacity') if m in sys.modules]; "
            "print(bad); sys.exit(1 if bad else 0)")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
