"""SQLite helpers both stores need (stdlib `sqlite3` only).

Must not import: sqlite_utils, sqlalchemy.
"""

from __future__ import annotations

import sqlite3
import time


def wal_mode(conn: sqlite3.Connection, wait_s: float) -> str:
    """`PRAGMA journal_mode = WAL`; the journal mode it leaves (`wal`, or what
    the file must keep, e.g. on a read-only directory).

    Switching a new file to WAL needs a moment alone with it, and SQLite
    answers "database is locked" at once (no busy timeout) while another
    process is opening the same new file: two `grizz` started together failed
    this way about once in 40 tries. Retried here for up to `wait_s`.
    """
    deadline = time.monotonic() + wait_s
    delay = 0.001
    while True:
        try:
            return str(conn.execute("PRAGMA journal_mode = WAL").fetchone()[0])
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
        time.sleep(delay)
        delay = min(delay * 2, 0.05)
