"""podctl logs: CRI/raw line parsing, selection, time-ordered merging, -l parsing."""

from __future__ import annotations

import pytest

from orchestrator.errors import UsageError
from orchestrator.podlogs import (Assembler, parse_duration, parse_lines, parse_selector, parse_time, render,
                                  select)


def cri(t: str, text: str, stream: str = "stdout", tag: str = "F") -> str:
    return f"2026-11-22T01:02:{t}Z {stream} {tag} {text}\n"


def test_cri_prefix_is_stripped_and_raw_lines_are_kept_whole():
    lines = list(parse_lines([cri("03.123456", "hello"), "plain text\n", cri("04", "err", "stderr")]))
    assert [x.text for x in lines] == ["hello", "plain text", "err"]
    assert [x.stream for x in lines] == ["stdout", "stdout", "stderr"]
    assert lines[0].stamp == "2026-11-22T01:02:03.123456Z"
    # a raw line takes the time of the dated line before it (for ordering only), no stamp
    assert lines[1].time == lines[0].time and lines[1].stamp == ""


def test_partial_entries_join_the_full_line_they_start():
    raw = [cri("01", "abc", tag="P"), cri("02", "def", tag="P"), cri("03", "ghi"), cri("04", "next")]
    lines = list(parse_lines(raw))
    assert [x.text for x in lines] == ["abcdefghi", "next"]
    assert lines[0].stamp.endswith("01Z")  # the time of its first part


def test_partial_entry_then_raw_line_or_end_is_flushed():
    a = Assembler()
    assert a.feed(cri("01", "half", tag="P")) == []
    assert [x.text for x in a.feed("raw\n")] == ["half", "raw"]
    assert [x.text for x in parse_lines([cri("01", "tail", tag="P")])] == ["tail"]


def test_empty_cri_line_and_text_that_only_looks_like_a_prefix():
    assert [x.text for x in parse_lines(["2026-11-22T01:02:03Z stdout F\n"])] == [""]
    assert [x.text for x in parse_lines(["2026-13-99 stdout F nope\n"])] == ["2026-13-99 stdout F nope"]


def test_nanosecond_times_and_offsets():
    assert parse_time("2026-11-22T01:02:03.5Z") == pytest.approx(parse_time("2026-11-22T01:02:03Z") + 0.5)
    assert parse_time("2026-11-22T01:02:03.123456789Z") % 1 == pytest.approx(0.123456789, abs=1e-6)
    assert parse_time("2026-11-22T02:02:03+01:00") == parse_time("2026-11-22T01:02:03Z")


def test_tail_then_since_as_the_kubelet_orders_them():
    lines = list(parse_lines([cri("01", "a"), cri("05", "b"), cri("09", "c")]))
    since = parse_time("2026-11-22T01:02:04Z")
    assert [x.text for x in select(lines, tail=2)] == ["b", "c"]
    assert [x.text for x in select(lines, tail=0)] == []
    assert [x.text for x in select(lines, since=since)] == ["b", "c"]
    assert [x.text for x in select(lines, since=since, tail=1)] == ["c"]


def test_merge_is_in_time_order_with_kubectl_prefixes_and_stable_on_ties():
    a = [cri("01", "a1"), cri("03", "a2"), cri("03", "a3")]
    b = [cri("02", "b1"), cri("03", "b2"), "b-raw\n", cri("09", "b3")]
    out = render([("[pod/a/main] ", a), ("[pod/b/main] ", b)])
    assert out == ["[pod/a/main] a1", "[pod/b/main] b1", "[pod/a/main] a2", "[pod/a/main] a3",
                   "[pod/b/main] b2", "[pod/b/main] b-raw", "[pod/b/main] b3"]


def test_merge_of_raw_logs_keeps_each_source_in_order():
    assert render([("", ["x\n", "y\n"]), ("", ["z\n"])]) == ["x", "y", "z"]


def test_timestamps_option_prints_the_stamp_after_the_prefix():
    out = render([("[pod/a/c] ", [cri("01.5", "hi"), "raw\n"])], timestamps=True)
    assert out == ["[pod/a/c] 2026-11-22T01:02:01.5Z hi", "[pod/a/c] raw"]


def test_tail_applies_per_source_before_merging():
    a = [cri("01", "a1"), cri("04", "a2")]
    b = [cri("02", "b1"), cri("03", "b2")]
    assert render([("a ", a), ("b ", b)], tail=1) == ["b b2", "a a2"]


@pytest.mark.parametrize("text,seconds", [("5s", 5), ("2m", 120), ("1h30m", 5400), ("1.5h", 5400),
                                          ("500ms", 0.5), ("1m0.5s", 60.5)])
def test_since_durations(text, seconds):
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "5", "5d", "-1s", "1 h", "s"])
def test_bad_since_durations(text):
    with pytest.raises(UsageError, match="--since"):
        parse_duration(text)


def test_selector_syntax():
    sel = parse_selector("app=web, tier!=db,env in (prod, staging),!legacy,team")
    assert sel.matches({"app": "web", "env": "prod", "team": "x"})
    assert not sel.matches({"app": "web", "env": "prod", "team": "x", "tier": "db"})
    assert not sel.matches({"app": "web", "env": "dev", "team": "x"})
    assert not sel.matches({"app": "web", "env": "prod", "team": "x", "legacy": "1"})
    assert not sel.matches({"app": "web", "env": "prod"})
    assert parse_selector("app==web").matches({"app": "web"})
    assert parse_selector("env notin (a,b)").matches({})


@pytest.mark.parametrize("text,needle", [("", "empty selector"), ("app in (a", "cannot parse"),
                                         ("a b=c", "cannot parse"), ("-bad=x", "label key"),
                                         ("app=-x", "label value"), ("!app=x", "cannot parse"),
                                         ("app in ()", "at least one value")])
def test_bad_selectors_are_refused_with_what_is_allowed(text, needle):
    with pytest.raises(UsageError, match=needle):
        parse_selector(text)


# ---------------------------------------------------------------- which containers


def _pod(name: str, labels: dict, containers=("main",)) -> dict:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": labels},
            "spec": {"containers": [{"name": c, "image": "busybox"} for c in containers]}}


def test_targets_selector_workload_and_containers(tmp_path):
    from orchestrator.logfetch import resolve_pods, sources_for
    from orchestrator.store import Store

    with Store.open(tmp_path / "state.db") as db:
        db.upsert_host("h1", now=0)
        a = db.add_pod("default", "web-b", _pod("web-b", {"app": "web"}), 2.0)
        b = db.add_pod("default", "web-a", _pod("web-a", {"app": "web"}, ("main", "side")), 3.0)
        db.add_pod("default", "db", _pod("db", {"app": "db"}), 1.0)
        for row in (a, b):
            db.bind_pod(row.uid, "h1", None)
        assert [r.name for r in resolve_pods(db, None, "app=web", "default")] == ["web-a", "web-b"]
        assert resolve_pods(db, None, "app=none", "default") == []
        dep = db.put_object("Deployment", "default", "web", {"kind": "Deployment"}, 0)
        c = db.add_pod("default", "web-x", _pod("web-x", {}), 5.0, "Deployment", "web", dep.uid)
        d = db.add_pod("default", "web-y", _pod("web-y", {}), 4.0, "Deployment", "web", dep.uid)
        db.bind_pod(c.uid, "h1", None)
        # a placed pod first, then the oldest
        assert [r.name for r in resolve_pods(db, "deployment/web", None, "default")] == ["web-x"]
        db.bind_pod(d.uid, "h1", None)
        assert [r.name for r in resolve_pods(db, "deploy/web", None, "default")] == ["web-y"]
        with pytest.raises(UsageError, match="not found"):
            resolve_pods(db, "job/web", None, "default")
        with pytest.raises(UsageError, match="not both"):
            resolve_pods(db, "web-a", "app=web", "default")
        rows = resolve_pods(db, "pod/web-a", None, "default")
        db.add_ephemeral(b.uid, {"name": "dbg", "image": "busybox"}, lambda r: None)
        rows = resolve_pods(db, "web-a", None, "default")
        assert [(s.container, s.kind) for s in sources_for(rows, None, True)] == [
            ("main", ""), ("side", ""), ("dbg", "ephem")]
        assert sources_for(rows, "dbg", False)[0].dir.endswith(f"/pods/{b.uid}/ephemeral/dbg")
        assert sources_for(rows, None, False)[0].dir.endswith(f"/pods/{b.uid}/containers/main")
        with pytest.raises(UsageError, match=r"container nope is not valid .*dbg \(ephem\)"):
            sources_for(rows, "nope", False)
