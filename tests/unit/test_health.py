"""Host health, table-driven: every transition of Ready / Suspect / NotReady with time
injected, hysteresis, and the cut-off rule."""

from __future__ import annotations

import pytest

from orchestrator.health import (CRON, NOT_READY, READY, SUSPECT, WATCH, HealthSettings, HostHealth, cut_off,
                                 observe)

S = HealthSettings(grace=40, recover_probes=2)


def run(statuses, s=S, step=60.0, frozen=False):
    """States after each probe of `statuses`, one every `step` seconds from t=0."""
    h, out = None, []
    for i, st in enumerate(statuses):
        h = observe(h, st, i * step, s, frozen=frozen)
        out.append(h.state)
    return out


@pytest.mark.parametrize("statuses, step, expected", [
    (["ok", "ok"], 60, [READY, READY]),
    # one failed probe: Suspect only; the next good one clears it
    (["ok", "unreachable", "ok"], 60, [READY, SUSPECT, READY]),
    # cron: the second failed run (60 s >= grace 40 s) marks the host NotReady
    (["ok", "unreachable", "unreachable"], 60, [READY, SUSPECT, NOT_READY]),
    # watch-like cadence: failures 10 s apart need 40 s of them
    (["ok"] + ["unreachable"] * 6, 10, [READY, SUSPECT, SUSPECT, SUSPECT, SUSPECT, NOT_READY, NOT_READY]),
    # unknown (no exit status) and failed count as failures too
    (["ok", "unknown", "failed"], 60, [READY, SUSPECT, NOT_READY]),
    # hysteresis: NotReady needs 2 good probes in a row; a failure in between resets
    (["ok", "unreachable", "unreachable", "ok", "unreachable", "ok", "ok"], 60,
     [READY, SUSPECT, NOT_READY, NOT_READY, NOT_READY, NOT_READY, READY]),
    # a host first seen failing starts Suspect
    (["unreachable", "unreachable"], 60, [SUSPECT, NOT_READY]),
])
def test_transitions(statuses, step, expected):
    assert run(statuses, step=step) == expected


def test_frozen_failures_do_not_advance():
    assert run(["ok", "unreachable", "unreachable", "unreachable"], frozen=True) == [READY, SUSPECT, SUSPECT, SUSPECT]


def test_since_and_detail():
    h = observe(None, "ok", 5.0)
    assert (h.state, h.since, h.last_ok) == (READY, 5.0, 5.0)
    h = observe(h, "ok", 10.0)
    assert h.since == 5.0 and h.ok_streak == 2
    h = observe(h, "unreachable", 20.0, error="connect timed out")
    assert (h.state, h.since, h.last_ok, h.detail) == (SUSPECT, 20.0, 10.0, "unreachable: connect timed out")
    h = observe(h, "unreachable", 70.0)
    assert (h.state, h.since) == (NOT_READY, 70.0)
    h = observe(h, "ok", 80.0)
    assert h.state == NOT_READY and "1/2" in h.detail


def test_store_round_trip():
    h = HostHealth(NOT_READY, 12.5, 1, 3.0, "unreachable")
    assert HostHealth.from_store(h.state, h.since, h.to_store()) == h
    assert HostHealth.from_store("Unknown", 1.0, None) is None


@pytest.mark.parametrize("statuses, expected", [
    ({}, False), ({"a": "unreachable"}, False),
    ({"a": "unreachable", "b": "ok"}, False),  # half is not most
    ({"a": "unreachable", "b": "unknown", "c": "ok"}, True),
    ({"a": "unreachable", "b": "ok", "c": "ok", "d": "ok"}, False),
    ({"a": "unreachable", "b": "unreachable", "c": "ok", "d": "ok"}, False),
    ({"a": "unreachable", "b": "unreachable", "c": "unreachable", "d": "ok"}, True),
])
def test_cut_off(statuses, expected):
    assert cut_off(statuses) is expected


def test_settings():
    assert CRON.grace == 40 and WATCH.grace < 5
    with pytest.raises(ValueError):
        HealthSettings(grace=-1)
    with pytest.raises(ValueError):
        HostHealth("Sick")
