"""What the controller remembers about images, in state.db: pull failures (for back-off
and ErrImagePull / ImagePullBackOff) and, per host, since when an image has been unused
(for garbage collection). Two small tables created on first use (IF NOT EXISTS), so
they need no schema migration step and old databases simply gain them.
"""

from __future__ import annotations

from dataclasses import dataclass

from .store import Store

_DDL = (
    """CREATE TABLE IF NOT EXISTS image_pulls (
        ref TEXT PRIMARY KEY, failures INTEGER NOT NULL, error TEXT NOT NULL,
        last_attempt REAL NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS host_images (
        host TEXT NOT NULL, digest TEXT NOT NULL, unused_since REAL,
        PRIMARY KEY (host, digest))""",
)


@dataclass(frozen=True)
class PullFailure:
    ref: str
    failures: int
    error: str
    last_attempt: float


def _ready(store: Store) -> None:
    if getattr(store, "_image_tables", False):
        return
    with store.transaction():
        for ddl in _DDL:
            store._conn.execute(ddl)
    store._image_tables = True  # type: ignore[attr-defined]


def pull_failures(store: Store) -> dict[str, PullFailure]:
    _ready(store)
    rows = store._conn.execute("SELECT ref, failures, error, last_attempt FROM image_pulls").fetchall()
    return {r[0]: PullFailure(*r) for r in rows}


def record_pull(store: Store, ref: str, error: str | None, now: float) -> None:
    """A pull's outcome: success forgets earlier failures, a failure counts one more."""
    _ready(store)
    with store.transaction():
        if error is None:
            store._conn.execute("DELETE FROM image_pulls WHERE ref = ?", (ref,))
        else:
            store._conn.execute(
                "INSERT INTO image_pulls (ref, failures, error, last_attempt) VALUES (?, 1, ?, ?)"
                " ON CONFLICT (ref) DO UPDATE SET failures = failures + 1, error = excluded.error,"
                " last_attempt = excluded.last_attempt", (ref, error, now))


def host_images(store: Store) -> dict[tuple[str, str], float | None]:
    """(host, digest) -> since when unused (None: in use when last seen)."""
    _ready(store)
    rows = store._conn.execute("SELECT host, digest, unused_since FROM host_images").fetchall()
    return {(r[0], r[1]): r[2] for r in rows}


def save_host_images(store: Store, host: str, seen: dict[str, float | None]) -> None:
    """Replace what is known of `host`'s images with `seen` (digest -> unused since)."""
    _ready(store)
    with store.transaction():
        store._conn.execute("DELETE FROM host_images WHERE host = ?", (host,))
        store._conn.executemany("INSERT INTO host_images (host, digest, unused_since) VALUES (?, ?, ?)",
                                [(host, d, t) for d, t in sorted(seen.items())])
