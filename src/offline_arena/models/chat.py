"""Chat-template facts every backend and trainer needs: the end-of-turn token and the stop ids."""

from __future__ import annotations

_SENTINEL = "\u2063offline-arena-sentinel\u2063"


def render_prompt(tokenizer, messages) -> str:
    """The text a model continues to answer `messages`: the chat template with the assistant's turn opened."""
    return tokenizer.apply_chat_template(list(messages), tokenize=False, add_generation_prompt=True)


def end_of_turn_token_id(tokenizer) -> int:
    """The token the chat template puts right after an assistant's answer (`<|im_end|>` for ChatML,
    `<|eot_id|>` for Llama 3). Found by rendering a conversation, not by guessing from the EOS, because
    for many models EOS and end-of-turn differ — and a model that never learns to emit this token never
    stops (the stop-token lesson in docs/architecture.md)."""
    messages = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": _SENTINEL}]
    rendered = tokenizer.apply_chat_template(messages, tokenize=False)
    tail = rendered.split(_SENTINEL, 1)[1]
    for token_id in tokenizer(tail, add_special_tokens=False)["input_ids"]:
        if token_id in tokenizer.all_special_ids or tokenizer.convert_ids_to_tokens(token_id).startswith("<"):
            return token_id
    if tokenizer.eos_token_id is None:
        raise ValueError("the chat template ends an assistant turn with no special token and there is no EOS")
    return tokenizer.eos_token_id


def stop_token_ids(tokenizer, generation_config=None) -> list[int]:
    """Every id that ends generation: the end-of-turn token, the tokenizer's EOS and the model's
    generation-config EOS ids (a list for e.g. Llama 3 and Qwen)."""
    ids = [end_of_turn_token_id(tokenizer)]
    if tokenizer.eos_token_id is not None:
        ids.append(tokenizer.eos_token_id)
    eos = getattr(generation_config, "eos_token_id", None)
    ids.extend(eos if isinstance(eos, (list, tuple)) else [eos] if eos is not None else [])
    return list(dict.fromkeys(ids))


# --- what a reward model reads ---------------------------------------------------------------------------

# A reward model's config.json key: True when it was trained (train/reward.py) reading its score at the
# answer's end-of-turn token, with nothing after it. Reward models from elsewhere lack it and are read at the
# last token of the full chat template, as they were trained.
SCORE_AT_END_OF_TURN = "offline_arena_score_at_end_of_turn"


def scores_at_end_of_turn(config) -> bool:
    return bool(getattr(config, SCORE_AT_END_OF_TURN, False))


def reward_input_ids(tokenizer, conversation, stopped: bool = True, end_at_end_of_turn: bool = False) -> list[int]:
    """The tokens a reward model scores for `conversation` (its last message the assistant's answer): a
    finished answer with its turn closed by the chat template; a runaway (cut at the token limit) as an open
    turn, never closed as if it had ended. `end_at_end_of_turn` drops what the template puts after the
    closing end-of-turn token (ChatML's newline), so that a sequence classifier, which reads the last token,
    reads the stop token: where OpenRLHF reads the score of a rollout (prompt + generated ids, ending on the
    stop token), and where our reward models are trained (train/reward.py)."""
    def tokens(text: str) -> list[int]:
        return tokenizer(text, add_special_tokens=False)["input_ids"]

    def prompt() -> str:
        return render_prompt(tokenizer, conversation[:-1])

    if not stopped:
        return tokens(prompt() + conversation[-1]["content"])
    ids = tokens(tokenizer.apply_chat_template(list(conversation), tokenize=False))
    if not end_at_end_of_turn:
        return ids
    end = end_of_turn_token_id(tokenizer)
    cut = len(ids) - ids[::-1].index(end) if end in ids else 0
    # The prompt's turns end on the same token: the last one must close the answer, not the question.
    if cut <= len(tokens(prompt())):
        raise ValueError(f"the chat template closes no answer with the end-of-turn token "
                         f"{tokenizer.convert_ids_to_tokens(end)!r}, where a reward model's score is read")
    return ids[:cut]


def pad_token_apart_from_end_of_turn(tokenizer) -> str:
    """A pad token that is not the end-of-turn token. A sequence classifier reads the last token that is
    not the pad token, so with pad == end-of-turn (SmolLM2: both `<|im_end|>`) an answer ending on its
    end-of-turn token would be read one token early. Any other token does: it only ever fills the tail."""
    end = end_of_turn_token_id(tokenizer)
    for token in (tokenizer.pad_token, tokenizer.unk_token, tokenizer.eos_token, tokenizer.bos_token,
                  *tokenizer.all_special_tokens):
        if token is not None and tokenizer.convert_tokens_to_ids(token) != end:
            return token
    return tokenizer.convert_ids_to_tokens(0 if end != 0 else 1)
