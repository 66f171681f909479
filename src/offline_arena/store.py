"""The run's store: every completion (and, later, every judgment) in one embedded SQLite database.

Rows are keyed by a content hash of everything that determines them, so asking again costs nothing and a
rerun after a crash picks up exactly what is missing. Crash safety comes from SQLite itself: WAL mode,
one transaction per batch, `INSERT OR IGNORE` on the key. A process killed with SIGKILL mid-batch loses
that batch and nothing else; the database is never left half-written and never holds a key twice.
(synchronous=NORMAL in WAL mode survives process crashes; only an OS crash or power loss can drop the
last transactions, which are then simply regenerated.)
"""

from __future__ import annotations

import json
import functools
import sqlite3
import threading
import time
from pathlib import Path
from typing import Iterable, Sequence

from .keys import canonical_json, content_key
from .records import Completion, SamplingParams
from .records import Battle, JudgedBattle

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

-- One row per battle: a prompt, two contestants (by display name) and the keys of their answers.
CREATE TABLE IF NOT EXISTS battles (
    id         TEXT PRIMARY KEY,     -- hash of (tag, prompt id, model names, answer keys)
    tag        TEXT NOT NULL,        -- what the battle is for: "arena", "round1/sft", ...
    prompt_id  TEXT NOT NULL,
    messages   TEXT NOT NULL,        -- the prompt, canonical JSON
    context    TEXT NOT NULL,        -- prompt metadata (e.g. constraints), canonical JSON
    model_a    TEXT NOT NULL,
    model_b    TEXT NOT NULL,
    answer_a   TEXT NOT NULL REFERENCES completions(key),
    answer_b   TEXT NOT NULL REFERENCES completions(key),
    created_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS battles_by_tag ON battles(tag);

-- One row per (judge, pair of answers): the verdict and the judge's raw output, so a verdict can
-- always be audited and a rerun never asks the judge twice.
CREATE TABLE IF NOT EXISTS judgments (
    key         TEXT PRIMARY KEY,    -- hash of (judge fingerprint, prompt, answer_a key, answer_b key)
    judge       TEXT NOT NULL,
    winner      TEXT NOT NULL,       -- "model_a" | "model_b" | "tie" | "error"
    score_a     REAL,
    score_b     REAL,
    explanation TEXT NOT NULL DEFAULT '',
    raw         TEXT NOT NULL DEFAULT '{}',
    created_at  REAL NOT NULL
);

-- Which judgment answers which battle, per judge (a judgment can serve several battles).
CREATE TABLE IF NOT EXISTS battle_judgments (
    battle_id    TEXT NOT NULL REFERENCES battles(id),
    judge        TEXT NOT NULL,
    judgment_key TEXT NOT NULL REFERENCES judgments(key),
    PRIMARY KEY (battle_id, judge)
);
"""


def completion_key(fingerprint: str, prompt: str, params: SamplingParams, seed: int, sample_index: int) -> str:
    return content_key([fingerprint, prompt, params.to_dict(), seed, sample_index])


def _locked(method):
    """One thread at a time on the store's connection: the driver's threads (contestants answered at once,
    overlapping judge chunks) share it, and sqlite3 forbids concurrent use of one connection."""

    @functools.wraps(method)
    def locked(self, *args, **kwargs):
        with self._lock:
            return method(self, *args, **kwargs)

    return locked


class _Connection:
    """A store's SQLite connection, closed on leaving a `with` block."""

    conn: sqlite3.Connection

    def close(self) -> None:
        self.conn.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class Store(_Connection):
    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # Shared by the driver's threads, one at a time (`_locked`); a re-entrant lock, since some methods
        # call others.
        self.conn = sqlite3.connect(self.path, timeout=60, isolation_level=None, check_same_thread=False)
        self._lock = threading.RLock()
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.execute("PRAGMA synchronous=NORMAL")
        self.conn.executescript(SCHEMA)

    @_locked
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

    @_locked
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

    @_locked
    def put_battles(self, battles: Sequence[Battle]) -> None:
        """Record battles (their answers are already stored, under `answer_a`/`answer_b`)."""
        now = time.time()
        with self._transaction():
            self.conn.executemany(
                "INSERT OR IGNORE INTO battles VALUES (?,?,?,?,?,?,?,?,?,?)",
                [(b.id, b.tag, b.prompt_id, canonical_json(list(b.messages)), canonical_json(b.context), b.model_a,
                  b.model_b, b.answer_a, b.answer_b, now) for b in battles],
            )

    @_locked
    def battles(self, tag: str | None = None) -> list[Battle]:
        """Battles with both answers joined in, oldest first."""
        query = """
            SELECT b.id, b.tag, b.prompt_id, b.messages, b.context, b.model_a, b.model_b, b.answer_a, b.answer_b,
                   ca.text, ca.stopped, ca.num_tokens, cb.text, cb.stopped, cb.num_tokens
            FROM battles b JOIN completions ca ON ca.key = b.answer_a JOIN completions cb ON cb.key = b.answer_b
        """ + ("WHERE b.tag = ? " if tag is not None else "") + "ORDER BY b.created_at, b.rowid"
        rows = []
        for r in self.conn.execute(query, [tag] if tag is not None else []):
            rows.append(Battle(r[0], r[1], r[2], tuple(json.loads(r[3])), json.loads(r[4]), r[5], r[6], r[7], r[8],
                               Completion(r[9], bool(r[10]), r[11]), Completion(r[12], bool(r[13]), r[14])))
        return rows

    @_locked
    def get_judgments(self, keys: Iterable[str]) -> dict[str, dict]:
        found: dict[str, dict] = {}
        keys = list(dict.fromkeys(keys))
        for start in range(0, len(keys), 500):
            chunk = keys[start:start + 500]
            rows = self.conn.execute(
                "SELECT key, judge, winner, score_a, score_b, explanation, raw FROM judgments "
                f"WHERE key IN ({','.join('?' * len(chunk))})", chunk)
            for key, judge, winner, score_a, score_b, explanation, raw in rows:
                found[key] = {"judge": judge, "winner": winner, "score_a": score_a, "score_b": score_b,
                              "explanation": explanation, "raw": json.loads(raw)}
        return found

    @_locked
    def put_judgments(self, rows: Sequence[tuple[str, str, "object"]]) -> None:
        """Insert (key, judge fingerprint, Verdict) rows in one transaction."""
        now = time.time()
        with self._transaction():
            self.conn.executemany(
                "INSERT OR IGNORE INTO judgments VALUES (?,?,?,?,?,?,?,?)",
                [(key, judge, v.winner, v.score_a, v.score_b, v.explanation, canonical_json(v.raw), now)
                 for key, judge, v in rows],
            )

    @_locked
    def link_judgments(self, rows: Sequence[tuple[str, str, str]]) -> None:
        """Record (battle id, judge fingerprint, judgment key) links."""
        with self._transaction():
            self.conn.executemany("INSERT OR IGNORE INTO battle_judgments VALUES (?,?,?)", rows)

    @_locked
    def judges(self) -> list[str]:
        return [r[0] for r in self.conn.execute("SELECT DISTINCT judge FROM battle_judgments ORDER BY judge")]

    @_locked
    def judged_battles(self, judge: str, tag: str | None = None) -> list[JudgedBattle]:
        """Battles judged by `judge` (a fingerprint) with their verdicts, oldest first."""
        verdicts = {r[0]: r[1:] for r in self.conn.execute(
            "SELECT bj.battle_id, j.winner, j.score_a, j.score_b, j.explanation FROM battle_judgments bj "
            "JOIN judgments j ON j.key = bj.judgment_key WHERE bj.judge = ?", [judge])}
        return [battle.judged(*verdicts[battle.id]) for battle in self.battles(tag) if battle.id in verdicts]

    @_locked
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


class ReadOnlyStore(_Connection):
    """A run's store opened read-only, for reports on a run that may still be writing it: the battles'
    outcomes and the latest battles with texts cut short inside SQLite (a big run's answers never all sit
    in memory). Rows are plain tuples, in the column order each method names."""

    def __init__(self, path: str | Path):
        self.conn = sqlite3.connect(f"file:{Path(path).resolve()}?mode=ro", uri=True, timeout=30)

    def judge_counts(self) -> dict[str, int]:
        """judge fingerprint -> battles it judged, most first."""
        return dict(self.conn.execute("SELECT judge, COUNT(*) FROM battle_judgments GROUP BY judge "
                                      "ORDER BY COUNT(*) DESC, judge").fetchall())

    def outcomes(self, judge: str | None) -> list[tuple]:
        """(tag, model_a, model_b, winner or '' when `judge` has not judged it, answer_a key, answer_b key)
        of every battle, oldest first."""
        return self.conn.execute(
            "SELECT b.tag, b.model_a, b.model_b, COALESCE(j.winner, ''), b.answer_a, b.answer_b FROM battles b "
            "LEFT JOIN battle_judgments bj ON bj.battle_id = b.id AND bj.judge = ? "
            "LEFT JOIN judgments j ON j.key = bj.judgment_key ORDER BY b.created_at, b.rowid", [judge]).fetchall()

    def judged_texts(self, judge: str) -> list[tuple]:
        """(context JSON, text a, text b, winner, raw JSON) of every battle `judge` judged, oldest first."""
        return self.conn.execute(
            "SELECT b.context, ca.text, cb.text, j.winner, j.raw FROM battles b "
            "JOIN battle_judgments bj ON bj.battle_id = b.id AND bj.judge = ? "
            "JOIN judgments j ON j.key = bj.judgment_key "
            "JOIN completions ca ON ca.key = b.answer_a JOIN completions cb ON cb.key = b.answer_b "
            "ORDER BY b.created_at, b.rowid", [judge]).fetchall()

    def latest_battles(self, judge: str | None, count: int, text_cap: int) -> list[tuple]:
        """The latest `count` battles, oldest first: (tag, prompt_id, messages JSON, model_a, model_b, key_a,
        key_b, text_a cut to `text_cap`, full length a, stopped a, tokens a, the same for b, judgment key,
        winner, score_a, score_b, explanation, raw JSON); the judgment columns are None when unjudged."""
        return [row[:-2] for row in self.conn.execute(
            """SELECT * FROM (
                 SELECT b.tag, b.prompt_id, b.messages, b.model_a, b.model_b, b.answer_a, b.answer_b,
                        substr(ca.text, 1, :cap), length(ca.text), ca.stopped, ca.num_tokens,
                        substr(cb.text, 1, :cap), length(cb.text), cb.stopped, cb.num_tokens,
                        j.key, j.winner, j.score_a, j.score_b, j.explanation, j.raw, b.created_at AS t, b.rowid AS r
                 FROM battles b JOIN completions ca ON ca.key = b.answer_a JOIN completions cb ON cb.key = b.answer_b
                 LEFT JOIN battle_judgments bj ON bj.battle_id = b.id AND bj.judge = :judge
                 LEFT JOIN judgments j ON j.key = bj.judgment_key
                 ORDER BY b.created_at DESC, b.rowid DESC LIMIT :count)
               ORDER BY t, r""", {"cap": text_cap, "judge": judge, "count": count})]
