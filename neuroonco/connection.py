"""A plain SQLite connection to a store, set up as every store connection is.

Kept apart from :mod:`neuroonco.store` (which needs sqlite_utils, and through it pandas when that is
installed: half a second to import) so that a process that only writes rows, such as the instruction
export's store writer, starts in milliseconds.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

BUSY_TIMEOUT_S = 30


def open_connection(path: Path | str) -> sqlite3.Connection:
    """Autocommit mode (transactions are explicit), WAL, a 30 s wait on a busy store."""
    conn = sqlite3.connect(
        path, timeout=BUSY_TIMEOUT_S, check_same_thread=False, isolation_level=None
    )
    conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_S * 1000}")
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = NORMAL")
    conn.execute("PRAGMA foreign_keys = ON")
    return conn
