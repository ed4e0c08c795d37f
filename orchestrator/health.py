"""Host health across runs: Ready -> Suspect -> NotReady, and back only with hysteresis.

Pure: `observe(previous, probe status, now, settings)` gives the next state; the
controller keeps it in the store between runs. The rules, and why:

- One failed probe makes a Ready host Suspect, nothing more: a single lost SSH
  handshake is normal on a busy network, and moving pods costs far more than waiting.
- A host still failing `grace` seconds after it became Suspect is NotReady: its pods
  are re-placed (those that may run twice; a StatefulSet pod waits for fencing).
- A Suspect host with one good probe is Ready again (nothing was moved yet).
- A NotReady host needs `recover_probes` good probes in a row before it is Ready (and
  gets new pods) again, so a flapping link cannot bounce pods back and forth.
- When most hosts fail at once, the likelier story is that the controller is the one
  cut off: `cut_off` says so, and the controller then freezes every host's state (no
  host becomes NotReady, nothing is re-placed) until the view clears.

A probe that ended without an exit status ("unknown") or a script failure counts as a
failure like "unreachable": either way podctl cannot see the host's pods, and the
pods on it are reported Unknown, never Failed.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

READY, SUSPECT, NOT_READY = "Ready", "Suspect", "NotReady"
STATES = (READY, SUSPECT, NOT_READY)


@dataclass(frozen=True)
class HealthSettings:
    """grace: seconds from the first failed probe to NotReady. recover_probes: good
    probes in a row that bring a NotReady host back. The defaults suit cron (a run a
    minute: the second failed run marks a host NotReady); `--watch` uses WATCH."""

    grace: float = 40.0  # Kubernetes' node-monitor-grace-period is 40 s too
    recover_probes: int = 2
    cut_off_share: float = 0.5  # more than this share of hosts failing at once: freeze

    def __post_init__(self) -> None:
        if self.grace < 0 or self.recover_probes < 1 or not 0 < self.cut_off_share <= 1:
            raise ValueError("grace must be >= 0, recover_probes >= 1, cut_off_share in (0, 1]")


CRON = HealthSettings()
WATCH = HealthSettings(grace=3.0, recover_probes=3)


@dataclass(frozen=True)
class HostHealth:
    state: str = READY
    since: float = 0.0  # when the host entered `state`
    ok_streak: int = 0  # good probes in a row
    last_ok: float | None = None
    detail: str = ""  # the last failure, for `podctl hosts` / describe

    def __post_init__(self) -> None:
        if self.state not in STATES:
            raise ValueError(f"health state {self.state!r} is not one of {', '.join(STATES)}")

    def to_store(self) -> dict:
        return {"ok_streak": self.ok_streak, "last_ok": self.last_ok, "detail": self.detail}

    @classmethod
    def from_store(cls, state: str | None, since: float | None, detail: dict | None) -> HostHealth | None:
        if state not in STATES:
            return None  # a host the store has never judged ("Unknown")
        d = detail or {}
        return cls(state, since or 0.0, int(d.get("ok_streak") or 0), d.get("last_ok"), str(d.get("detail") or ""))


def observe(prev: HostHealth | None, status: str, now: float, s: HealthSettings = CRON,
            error: str = "", frozen: bool = False) -> HostHealth:
    """The host's health after one probe with `status` (ok | failed | unreachable |
    unknown). A host seen for the first time starts Ready if the probe is good, Suspect
    if not. `frozen` (the controller is cut off): failures do not advance a host."""
    if status == "ok":
        if prev is None or prev.state != NOT_READY:
            same = prev is not None and prev.state == READY
            return HostHealth(READY, prev.since if same else now, (prev.ok_streak if same else 0) + 1, now)
        streak = prev.ok_streak + 1
        if streak >= s.recover_probes:
            return HostHealth(READY, now, streak, now)
        return replace(prev, ok_streak=streak, last_ok=now, detail=f"recovering: {streak}/{s.recover_probes} good probes")
    detail = f"{status}: {error}" if error else status
    if prev is None:
        return HostHealth(SUSPECT, now, 0, None, detail)
    if prev.state == READY:
        return HostHealth(SUSPECT, now, 0, prev.last_ok, detail)
    if prev.state == SUSPECT and not frozen and now - prev.since >= s.grace:
        return HostHealth(NOT_READY, now, 0, prev.last_ok, detail)
    return replace(prev, ok_streak=0, detail=detail)


def cut_off(statuses: dict[str, str], s: HealthSettings = CRON) -> bool:
    """Most hosts failed in one run: the controller's own network is the suspect."""
    if len(statuses) < 2:
        return False  # one host cannot tell the two stories apart; nowhere to move anyway
    bad = sum(1 for st in statuses.values() if st != "ok")
    return bad > s.cut_off_share * len(statuses)
