"""Decisions explained: Kubernetes' "0/N hosts are available: ..." message, and a
per-host breakdown (rejection or score card) for `podctl plan -v` and `describe pod`."""

from __future__ import annotations

import numpy as np


def reason_counts(codes, reasons) -> dict[str, int]:
    """Hosts per reason text; a host rejected for two reasons (cpu and memory) counts
    under both, as in Kubernetes."""
    if codes is None or len(codes) == 0:
        return {}
    counts: dict[str, int] = {}
    hist = np.bincount(codes, minlength=len(reasons))
    for code in np.flatnonzero(hist[1:]).tolist():
        for text in reasons[code + 1][1]:
            counts[text] = counts.get(text, 0) + int(hist[code + 1])
    return counts


def unschedulable(codes, reasons, n_hosts: int) -> str:
    """'0/5 hosts are available: 3 Insufficient memory, 2 host(s) had untolerated taint
    {gpu=true: NoSchedule}.' Most frequent reason first, then alphabetical."""
    counts = reason_counts(codes, reasons)
    detail = ", ".join(f"{n} {text}" for text, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))
    return f"0/{n_hosts} hosts are available" + (f": {detail}." if detail else ".")


def verdicts(placement) -> list:
    """Every host's outcome for one placement, by host name. Score cards are there for
    the chosen host, or for every feasible host with SchedulerConfig(explain="full")."""
    from .framework import Verdict  # framework imports this module

    rejected = {r.host: r for r in placement.rejections()}
    cards = {c.host: c for c in placement.candidates}
    if placement.score is not None:
        cards.setdefault(placement.score.host, placement.score)
    names = placement._names or sorted(set(rejected) | set(cards))
    return [Verdict(name, rejected.get(name), cards.get(name)) for name in names]


def describe(placement, limit: int | None = None) -> str:
    """Text for `podctl plan -v` / `describe pod`: outcome, then one line per host."""
    lines = []
    if placement.host is None:
        lines.append(f"{placement.key}: Pending: {placement.message}")
    else:
        total = placement.score.total if placement.score else 0
        lines.append(f"{placement.key}: -> {placement.host} (score {total}, "
                     f"{placement.feasible} feasible host(s))")
    for shown, v in enumerate(verdicts(placement)):
        if limit is not None and shown >= limit:
            lines.append("  ...")
            break
        if v.rejection is not None:
            lines.append(f"  {v.host}: rejected by {v.rejection.plugin}: {', '.join(v.rejection.reasons)}")
        elif v.score is not None:
            parts = " ".join(f"{name}={score}x{w}" for name, score, w in v.score.scores)
            mark = " *" if v.host == placement.host else ""
            lines.append(f"  {v.host}: score {v.score.total}{mark}  {parts}")
        else:
            lines.append(f"  {v.host}: feasible")
    return "\n".join(lines)
