"""Container log writer: lines/s and CPU per line of the supervisor's `log_lines`.

Every line a container prints goes through a bash reader that prefixes the CRI log
format (`<RFC 3339 µs> stdout F <line>`, templates/supervisor.sh.j2). bash reads a pipe
one byte at a time, so this is the CPU a chatty container costs its host. Peer, side by
side: `cat` copying the same lines into a file (what an unstamped log costs).

    python3 bench/log_writer.py [--lines 100000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import subprocess
import tempfile
import time
from pathlib import Path

SUPERVISOR = Path(__file__).resolve().parent.parent / "templates" / "supervisor.sh.j2"
LINE = "level=info msg=\"request served\" path=/api/v1/items status=200 bytes=5120"


def log_lines_function() -> str:
    """The function's text as the template defines it (it holds no Jinja)."""
    m = re.search(r"^log_lines\(\) \{\n.*?^\}\n", SUPERVISOR.read_text(), re.M | re.S)
    if not m:
        raise SystemExit(f"log_lines() not found in {SUPERVISOR}")
    return m.group(0)


def run(script: str, feed: Path, out: Path) -> tuple[float, float]:
    """(wall s, CPU s of the children) for `bash -c script` reading `feed`."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    with feed.open("rb") as f:
        subprocess.run(["bash", "-c", script, "_", str(out)], stdin=f, check=True,
                       env={"PATH": os.environ["PATH"], "TZ": "UTC"})
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lines", type=int, default=100_000)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    writer = log_lines_function() + 'cat | log_lines stdout "$1"\n'
    with tempfile.TemporaryDirectory(prefix="podctl-bench-log-") as tmp:
        feed = Path(tmp) / "feed"
        feed.write_text("".join(f"{i} {LINE}\n" for i in range(args.lines)))
        best = {}
        for name, script in (("log_lines", writer), ("cat", 'cat >>"$1"')):
            runs = []
            for _ in range(args.repeat):
                out = Path(tmp) / f"{name}.out"
                out.unlink(missing_ok=True)
                runs.append(run(script, feed, out))
                assert sum(1 for _ in out.open()) == args.lines
            best[name] = min(runs)
        wall, cpu = best["log_lines"]
        print(f"log_lines: {args.lines / wall:,.0f} lines/s, {cpu / args.lines * 1e6:.1f} µs CPU per line "
              f"(best of {args.repeat}, {args.lines:,} lines of {len(LINE) + 7} bytes)")
        print(f"cat (no timestamps): {args.lines / best['cat'][0]:,.0f} lines/s; "
              f"log_lines costs {cpu / max(best['cat'][1], 1e-6):.0f}x its CPU")
        print(f"a container printing 1,000 lines/s costs its host {cpu / args.lines * 1000 * 100:.1f}% of a core")


if __name__ == "__main__":
    main()
