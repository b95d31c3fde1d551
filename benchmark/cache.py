"""A cache of model answers in its own SQLite file, so a re-run (or a second output file) asks again
for nothing already answered.

The key is a sha256 over everything that decides an answer: the model spec, the prompt, the image
bytes' digests, max_tokens and temperature. Only answers without an error are kept: a failed
call is asked again next time.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import time
from pathlib import Path
from typing import Any

SCHEMA = """
CREATE TABLE IF NOT EXISTS answers (
    key TEXT PRIMARY KEY,
    model TEXT NOT NULL,
    response TEXT NOT NULL,
    input_tokens INTEGER NOT NULL DEFAULT 0,
    output_tokens INTEGER NOT NULL DEFAULT 0,
    cost_usd REAL,
    created_at REAL NOT NULL
)
"""


def answer_key(
    spec: str, prompt: str, image_digests: list[str], max_tokens: int, temperature: float
) -> str:
    """sha256 over the facts that decide a model's answer."""
    parts = [spec, prompt, image_digests, max_tokens, temperature]
    text = json.dumps(parts, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


class AnswerCache:
    """Answers by key; one connection, used from one thread (the run's event loop)."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._db = sqlite3.connect(path, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        # A lost last answer after a crash is only a repeated call: no need to fsync each one.
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute(SCHEMA)

    def get(self, key: str) -> dict[str, Any] | None:
        row = self._db.execute(
            "SELECT response, input_tokens, output_tokens, cost_usd FROM answers WHERE key = ?",
            (key,),
        ).fetchone()
        if row is None:
            return None
        return {
            "response": row[0],
            "input_tokens": row[1],
            "output_tokens": row[2],
            "cost_usd": row[3],
        }

    def put(
        self,
        key: str,
        model: str,
        response: str,
        input_tokens: int,
        output_tokens: int,
        cost: float | None,
    ) -> None:
        self._db.execute(
            "INSERT OR REPLACE INTO answers VALUES (?, ?, ?, ?, ?, ?, ?)",
            (key, model, response, input_tokens, output_tokens, cost, time.time()),
        )

    def close(self) -> None:
        self._db.close()
