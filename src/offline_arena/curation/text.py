"""The one way curation reads a prompt: its user turns, as lowercased word tokens."""

from __future__ import annotations

import re

WORD = re.compile(r"\w+")


def prompt_text(prompt) -> str:
    """A Prompt's user turns joined (a multi-turn prompt counts as all it asks); a str stays itself."""
    if isinstance(prompt, str):
        return prompt
    return "\n".join(str(m.get("content", "")) for m in prompt.messages if m.get("role", "user") == "user")


def words(text: str) -> list[str]:
    """Lowercased \\w+ runs: case, punctuation and spacing do not hide a copy."""
    return WORD.findall(text.lower())


def normalised(text: str) -> str:
    return " ".join(words(text))


def ngrams(tokens: list[str], n: int) -> set[str]:
    """The token n-grams of a text, each joined by spaces; a text shorter than n is one n-gram of its own
    length, so a short copy is caught too."""
    if len(tokens) < n:
        return {" ".join(tokens)} if tokens else set()
    return {" ".join(tokens[i:i + n]) for i in range(len(tokens) - n + 1)}
