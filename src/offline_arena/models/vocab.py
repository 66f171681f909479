"""Whether two tokenizers share a vocabulary: logit distillation compares next-token distributions id by id,
so a teacher whose ids mean other tokens teaches nonsense even when the vocabulary sizes agree."""

from __future__ import annotations


def vocabulary_difference(tokenizer_a, tokenizer_b) -> str | None:
    """None when both tokenizers map every token to the same id; otherwise the first difference, in words."""
    vocab_a, vocab_b = tokenizer_a.get_vocab(), tokenizer_b.get_vocab()
    if len(vocab_a) != len(vocab_b):
        return f"{len(vocab_a)} tokens vs {len(vocab_b)} tokens"
    for token, token_id in vocab_a.items():
        other = vocab_b.get(token)
        if other != token_id:
            return f"token {token!r} is id {token_id} in one and " + (
                "absent from the other" if other is None else f"id {other} in the other")
    return None
