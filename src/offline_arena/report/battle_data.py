"""The run's battles as the report needs them: every battle's outcome (for the win-rate matrices and
counts), and the latest battles with their texts in a compact, size-capped form for the battle browser.

We read store.sqlite through a read-only view (`store.ReadOnlyStore`) instead of `Store.judged_battles`:
the browser needs the judge's raw output (which that method leaves out), unjudged battles of a stage still
running, and, for big runs, texts cut short inside SQLite rather than thousands of full answers in memory.
A read-only connection also guarantees that reporting on a run that is still going never writes to it.

Size: texts are stored once and referenced by index (an answer serves in several battles; a prompt in
one battle per opponent). Answers share a character budget; each answer gets at most
budget / distinct answers characters (within [min_answer_chars, max_answer_chars]), and the browser
says when one was cut and how long it really is.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

from ..store import ReadOnlyStore


@dataclass
class BattleLimits:
    max_battles: int = 5000            # the latest ones are embedded for browsing; matrices use all
    text_budget: int = 6_000_000       # characters of answer text in the file, all answers together
    max_answer_chars: int = 4000
    min_answer_chars: int = 300
    max_prompt_chars: int = 4000
    max_judge_chars: int = 3000


@dataclass
class BattleData:
    judge: str | None                               # the judge whose verdicts the report shows
    judges: dict[str, int]                          # every judge in the store -> battles it judged
    outcomes: list[tuple[str, str, str, str]]       # (tag, model_a, model_b, winner or "") of every battle
    browser: dict = field(default_factory=dict)     # the compact payload the battle browser reads

    @property
    def total(self) -> int:
        return len(self.outcomes)


def read_battles(store_path: str | Path, judge: str | None = None, limits: BattleLimits | None = None) -> BattleData:
    """`judge`: a fingerprint or a unique part of one; by default the judge that judged the most battles
    (a pipeline run has exactly one)."""
    limits = limits or BattleLimits()
    store_path = Path(store_path)
    if not store_path.is_file():
        return BattleData(None, {}, [], empty_browser())
    with ReadOnlyStore(store_path) as store:
        judges = store.judge_counts()
        chosen = pick_judge(judges, judge)
        outcome_rows = store.outcomes(chosen)
        outcomes = [row[:4] for row in outcome_rows]
        shown = outcome_rows[-limits.max_battles:] if limits.max_battles > 0 else []
        distinct_answers = len({key for row in shown for key in row[4:6]})
        answer_cap = max(limits.min_answer_chars,
                         min(limits.max_answer_chars, limits.text_budget // max(distinct_answers, 1)))
        browser = _browser_payload(store, chosen, len(shown), answer_cap, limits)
        browser["total"] = len(outcomes)
        return BattleData(chosen, judges, outcomes, browser)


def pick_judge(judges: dict[str, int], wanted: str | None) -> str | None:
    if wanted:
        matches = [j for j in judges if wanted in j]
        if len(matches) != 1:
            raise ValueError(f"--judge {wanted!r} matches {len(matches)} of the store's judges: {sorted(judges)}")
        return matches[0]
    return next(iter(judges), None)  # most battles judged first


def empty_browser() -> dict:
    return {"models": [], "tags": [], "prompts": [], "answers": [], "judgments": [], "battles": [], "total": 0,
            "answerCap": 0}


def _browser_payload(store: ReadOnlyStore, judge: str | None, count: int, answer_cap: int,
                     limits: BattleLimits) -> dict:
    payload = empty_browser()
    payload["answerCap"] = answer_cap
    index: dict[str, dict] = {name: {} for name in ("models", "tags", "prompts", "answers", "judgments")}

    def ref(table: str, key, make):
        """Index of `key` in payload[table], appending make() the first time the key is seen."""
        seen = index[table]
        if key not in seen:
            seen[key] = len(payload[table])
            payload[table].append(make())
        return seen[key]

    for (tag, prompt_id, messages, model_a, model_b, key_a, key_b, text_a, len_a, stop_a, tok_a,
         text_b, len_b, stop_b, tok_b, j_key, winner, score_a, score_b, explanation, raw) in \
            store.latest_battles(judge, count, answer_cap):
        battle = [
            ref("tags", tag, lambda: tag),
            ref("prompts", messages, lambda: _prompt_entry(messages, limits.max_prompt_chars)),
            ref("models", model_a, lambda: model_a),
            ref("models", model_b, lambda: model_b),
            ref("answers", key_a, lambda: [text_a, len_a, bool(stop_a), tok_a]),
            ref("answers", key_b, lambda: [text_b, len_b, bool(stop_b), tok_b]),
            winner or "",
            _finite(score_a), _finite(score_b),
            ref("judgments", j_key, lambda: _judgment_entry(explanation, raw, limits.max_judge_chars)) if j_key else -1,
            prompt_id,
        ]
        payload["battles"].append(battle)
    return payload


def _finite(score):
    """JSON has no NaN or infinity: a score that is not a finite number is shown as none."""
    return score if isinstance(score, (int, float)) and math.isfinite(score) else None


def _prompt_entry(messages: str, cap: int) -> list:
    """[[role, text shown, full length], ...] of a prompt's messages."""
    try:
        parsed = json.loads(messages)
    except ValueError:
        parsed = [{"role": "?", "content": messages}]
    entry = []
    for message in parsed if isinstance(parsed, list) else []:
        content = message.get("content", "") if isinstance(message, dict) else str(message)
        content = content if isinstance(content, str) else json.dumps(content, ensure_ascii=False)
        entry.append([str(message.get("role", "?")) if isinstance(message, dict) else "?", content[:cap], len(content)])
    return entry


def _judgment_entry(explanation: str | None, raw: str | None, cap: int) -> list:
    """[explanation, raw output shown (pretty JSON), full length of the pretty JSON]."""
    try:
        pretty = json.dumps(json.loads(raw or "{}"), indent=2, ensure_ascii=False)
    except ValueError:
        pretty = raw or ""
    return [(explanation or "")[:cap], pretty[:cap], len(pretty)]
