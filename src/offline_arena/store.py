"""The run's store: every completion (and, later, every judgment) in one embedded SQLite database.

Rows are keyed by a content hash of everything that determines them, so asking again costs nothing and a
rerun after a crash picks up exactly what is missing. Crash safety comes from SQLite itself: WAL mode,
one transaction per batch, `INSERT OR IGNORE` on the key. A process killed with SIGKILL mid-batch loses
that batch and nothing else; the database is never left half-written and never holds a key twice.
(synchronous=NORMAL in WAL mode survives process crashes; only an OS crash or power loss can drop the
last transactions, which are then simply regenerated.)
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import time
from pathlib import Path
from typing import Iterable, Sequence

from .models.base import Completion, SamplingParams, canonical_json

SCHEMA = """
CREATE TABLE IF NOT EXISTS completions (
    key          TEXT PRIMARY KEY,
    model        TEXT NOT NULL,      -- the generator's fingerprint
    prompt       TEXT NOT NULL,      -- the rendered prompt (chat template applied) or canonical messages
    params       TEXT NOT NULL,      -- sampling parameters, canonical JSON
    seed         INTEGER NOT NULL,
    sample_index INTEGER NOT NULL,
    text         TEXT NOT NULL,
    stopped      INTEGER NOT NULL,   -- 1 if the model ended its turn itself, 0 if it hit the token limit
    num_tokens   INTEGER NOT NULL,
    meta         TEXT NOT NULL DEFAULT '{}',
    created_at   REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS completions_by_model ON completions(model);
"""


def completion_key(fingerprint: str, prompt: str, params: SamplingParams, seed: int, sample_index: int) -> str:
    material = canonical_json([fingerprint, prompt, params.to_dict(), seed, sample_index])
    return hashlib.sha256(material.encode()).hexdigest()


class Store:
    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.conn = sqlite3.connect(self.path, timeout=60, isolation_level=None)
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.execute("PRAGMA synchronous=NORMAL")
        self.conn.executescript(SCHEMA)

    def close(self) -> None:
        self.conn.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def get_completions(self, keys: Iterable[str]) -> dict[str, Completion]:
        found: dict[str, Completion] = {}
        keys = list(dict.fromkeys(keys))
        for start in range(0, len(keys), 500):  # stay under SQLite's bound-variable limit
            chunk = keys[start:start + 500]
            rows = self.conn.execute(
                f"SELECT key, text, stopped, num_tokens, meta FROM completions WHERE key IN ({','.join('?' * len(chunk))})",
                chunk,
            )
            for key, text, stopped, num_tokens, meta in rows:
                found[key] = Completion(text, bool(stopped), num_tokens, json.loads(meta))
        return found

    def put_completions(self, rows: Sequence[tuple[str, str, str, SamplingParams, int, int, Completion]]) -> None:
        """Insert (key, model, prompt, params, seed, sample_index, completion) rows in one transaction."""
        now = time.time()
        with self._transaction():
            self.conn.executemany(
                "INSERT OR IGNORE INTO completions VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                [(key, model, prompt, canonical_json(params.to_dict()), seed, index, c.text, int(c.stopped),
                  c.num_tokens, canonical_json(c.meta), now)
                 for key, model, prompt, params, seed, index, c in rows],
            )

    def count(self, table: str = "completions", **where) -> int:
        clause = " AND ".join(f"{column} = ?" for column in where) or "1"
        return self.conn.execute(f"SELECT COUNT(*) FROM {table} WHERE {clause}", list(where.values())).fetchone()[0]

    def _transaction(self):
        conn = self.conn

        class _Tx:
            def __enter__(self_):
                conn.execute("BEGIN IMMEDIATE")

            def __exit__(self_, exc_type, *rest):
                conn.execute("COMMIT" if exc_type is None else "ROLLBACK")

        return _Tx()
