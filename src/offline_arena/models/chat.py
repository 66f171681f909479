"""Chat-template facts every backend and trainer needs: the end-of-turn token and the stop ids."""

from __future__ import annotations

_SENTINEL = "\u2063offline-arena-sentinel\u2063"


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
