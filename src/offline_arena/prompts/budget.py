"""Length budgets: how many new tokens a prompt's answer needs, so that no prompt is cut at a token limit
sized for another (a 64-token cap on a prompt that asks for 300 words teaches a model that answers end
early, and a model trained on such answers gets shorter everywhere — what the first quickstart did to
IFEval's word, sentence and section counts).

A prompt's budget is `meta["max_new_tokens"]`: a user's prompt file may set it per row; the built-in pack
records what its constraints need (`meta["needs_tokens"]`, `needed_tokens`), and `apply_budgets` turns
that into a budget between the recipe's `max_new_tokens` (the floor: every answer gets at least what the
recipe gives) and its cap (`generation.max_budget`). Every decode of a prompt (battles, evaluation, guard
probes, PPO rollouts) then asks for `with_budget(params, prompt.meta)` tokens.

The arithmetic is deliberately rough and generous: English runs ~1.3 SmolLM2 tokens a word; we count 1.5
and add room to finish, since an answer that needs exactly its budget is one token from a runaway.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Sequence

TOKENS_PER_WORD = 1.5
ROOM_TO_FINISH = 32      # tokens after the last counted unit: a closing sentence, a P.S., the stop token
TOKENS_PER_SENTENCE = 30
TOKENS_PER_PARAGRAPH = 70
TOKENS_PER_BULLET = 20


def _constraint_needs(constraint: dict) -> int:
    """New tokens an answer needs to satisfy one constraint (0: no particular length). E.g. "at least 300
    words" needs 1.5 * 300 + 32 = 482; "exactly 4 paragraphs" 4 * 70 + 32 = 312."""
    cid, p = constraint["id"], constraint.get("params") or {}
    if cid == "length_constraints:number_words":
        return int(TOKENS_PER_WORD * p["num_words"]) + ROOM_TO_FINISH
    if cid == "length_constraints:number_sentences":
        return TOKENS_PER_SENTENCE * p["num_sentences"] + ROOM_TO_FINISH
    if cid in ("length_constraints:number_paragraphs", "length_constraints:nth_paragraph_first_word"):
        return TOKENS_PER_PARAGRAPH * p["num_paragraphs"] + ROOM_TO_FINISH
    if cid == "detectable_format:multiple_sections":
        return TOKENS_PER_PARAGRAPH * p["num_sections"] + ROOM_TO_FINISH
    if cid == "detectable_format:number_bullet_lists":
        return TOKENS_PER_BULLET * p["num_bullets"] + ROOM_TO_FINISH
    if cid == "detectable_format:number_highlighted_sections":
        return TOKENS_PER_SENTENCE * p["num_highlights"] + ROOM_TO_FINISH
    if cid == "combination:repeat_prompt":
        return int(TOKENS_PER_WORD * len(p["prompt_to_repeat"].split())) + 2 * TOKENS_PER_PARAGRAPH
    if cid == "combination:two_responses":
        return 2 * TOKENS_PER_PARAGRAPH + ROOM_TO_FINISH
    return 0


def needed_tokens(constraints: Sequence[dict]) -> int:
    """What the most demanding of a prompt's constraints needs (0 when none asks for length)."""
    return max((_constraint_needs(c) for c in constraints), default=0)


def budget(meta: dict, floor: int, cap: int) -> int | None:
    """A prompt's budget under a recipe: its own (`max_new_tokens`, a user's row) or what its constraints
    need, never below `floor` (the recipe's max_new_tokens) nor above `cap`; None when it has neither."""
    wanted = meta.get("max_new_tokens", meta.get("needs_tokens"))
    if wanted is None:
        return None
    return max(floor, min(int(wanted), cap))


def apply_budgets(prompts: Sequence, floor: int, cap: int | None) -> list:
    """The prompts with their budget in `meta["max_new_tokens"]` (cap None: budgets off, prompts returned
    as they are). A prompt whose budget is `floor` asks what a run without budgets asks, so its requests,
    and hence its cached answers, are the same."""
    if cap is None:
        return list(prompts)
    out = []
    for prompt in prompts:
        tokens = budget(prompt.meta, floor, cap)
        if tokens is not None:
            prompt = replace(prompt, meta={**prompt.meta, "max_new_tokens": tokens})
        out.append(prompt)
    return out


def with_budget(params, meta: dict | None):
    """The sampling params for one prompt: `params` with the prompt's budget as its token limit."""
    tokens = (meta or {}).get("max_new_tokens")
    return params if not tokens or tokens == params.max_new_tokens else replace(params, max_new_tokens=int(tokens))
