"""Failpoints: named places where a test can have the controller die by SIGKILL.

`PODCTL_FAILPOINT=after-place podctl reconcile` kills the process right there, as a
power cut or an OOM kill would, so the chaos suite can check that the next run finishes
what this one started. Unset (always, outside tests), `hit` is one dict lookup.
"""

from __future__ import annotations

import os
import signal

POINTS = ("after-lock", "after-probe", "after-health", "after-workloads", "after-place",
          "mid-execute", "before-record")


def hit(name: str) -> None:
    if os.environ.get("PODCTL_FAILPOINT") == name:
        os.kill(os.getpid(), signal.SIGKILL)
