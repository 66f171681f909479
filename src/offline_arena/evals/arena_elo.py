"""Arena Elo: a model against a fixed panel of opponents on a prompt set, decided by a judge, rated with
Bradley-Terry and bootstrap CIs (ratings.leaderboard). Nothing new here: the same schedule, store-cached
generation, judging and ratings as `arena battle|judge|leaderboard`, run as one evaluation.

Only this evaluation's battles enter the leaderboard (not whatever else the store holds), so the rating of
the model is relative to this panel on these prompts: compare ratings across models only with the same
opponents, prompts and judge.
"""

from __future__ import annotations

from typing import Sequence

DEFAULT_PROMPTS = "builtin:verifiable:heldout:{limit}"
DEFAULT_LIMIT = 32
DEFAULT_MAX_NEW_TOKENS = 256
TAG = "eval-arena"


def run(model: str, *, opponents: Sequence[str] = (), judge: str = "verifier", store=None,
        prompts: str | None = None, limit: int | None = None, max_new_tokens: int | None = None,
        temperature: float = 0.0, batch_size: int = 16, seed: int = 0, bootstrap_rounds: int = 100,
        model_name: str | None = None, judge_max_new_tokens: int = 512, judge_max_retries: int = 2) -> dict:
    """Battles of `model` against each opponent on each prompt, judged by `judge` (a judge spec:
    verifier, pairwise:<model>, score:<model>, ...). Needs a store (the battles live there)."""
    from ..battles import play, rate, target_vs_opponents
    from ..loading import load_judge
    from ..models import SamplingParams, named_specs, parse_model_spec
    from ..loading import load_generator
    from ..prompts import load_prompts

    if store is None:
        raise ValueError("the arena suite needs a store for its battles (run_suite opens one)")
    panel = named_specs(opponents)
    if not panel:
        raise ValueError("the arena suite needs opponents: --opponents SPEC [SPEC ...] (NAME=SPEC to name one)")
    name = model_name or model
    if name in panel:
        raise ValueError(f"the model {name!r} is also one of the opponents")
    for spec in panel.values():
        parse_model_spec(spec)  # a bad spec fails before any model loads
    limit = limit or DEFAULT_LIMIT
    prompt_set = load_prompts(prompts or DEFAULT_PROMPTS.format(limit=limit))[:limit]
    params = SamplingParams(max_new_tokens=max_new_tokens or DEFAULT_MAX_NEW_TOKENS, temperature=temperature)
    judge_obj = load_judge(judge, store=store, max_new_tokens=judge_max_new_tokens, max_retries=judge_max_retries)
    contestants = {n: load_generator(s, store=store, batch_size=batch_size) for n, s in {name: model, **panel}.items()}
    judged = play(target_vs_opponents(name, list(panel), prompt_set), contestants, judge_obj, store, params, seed,
                  TAG, progress=False)
    errors = sum(not b.decided for b in judged)
    if errors == len(judged):
        raise RuntimeError(f"arena suite: all {len(judged)} battles were judge errors; nothing to rate")
    # Anchored to the panel's first opponent (1000): ratings of different models against the same panel
    # are on one scale.
    board = rate(judged, rounds=bootstrap_rounds, seed=seed, anchor=next(iter(panel)))
    mine = next(row for row in board if row["model"] == name)
    return {"suite": "arena", "model": name, "judge": judge_obj.fingerprint, "opponents": panel,
            "prompts": len(prompt_set), "battles": len(judged), "judge_errors": errors,
            "rating": mine["rating"], "rating_ci": [mine["lower"], mine["upper"]], "leaderboard": board}


def format_result(result: dict) -> str:
    from ..ratings import format_leaderboard

    return "\n".join([f"Arena Elo  model: {result['model']}  judge: {result['judge']}  prompts: {result['prompts']}  "
                      f"battles: {result['battles']}  judge errors: {result['judge_errors']}",
                      format_leaderboard(result["leaderboard"])])
