"""Judge prompt templates are data files (data/judges/*.txt) with a `### system` and a `### user` part
and `{placeholder}` fields. Filling uses plain replacement, not str.format, so braces inside answers are
safe; answers sit between delimiters carrying a per-prompt nonce, and any verdict-looking token inside an
answer is defused, so a contestant cannot close the delimiter or hand the judge a ready-made verdict."""

from __future__ import annotations

import hashlib
import re
from functools import lru_cache
from pathlib import Path

TEMPLATE_DIR = Path(__file__).resolve().parent.parent / "data" / "judges"
_VERDICT_LIKE = re.compile(r"\[\[([^\[\]]{0,12})\]\]")
_PLACEHOLDER = re.compile(r"\{(\w+)\}")


@lru_cache(maxsize=None)
def load_template(name: str) -> tuple[str, str]:
    path = TEMPLATE_DIR / f"{name}.txt"
    if not path.is_file():
        known = sorted(p.stem for p in TEMPLATE_DIR.glob("*.txt"))
        raise ValueError(f"unknown judge template {name!r}; known: {known}")
    text = path.read_text(encoding="utf-8")
    match = re.fullmatch(r"### system\n(.*?)\n### user\n(.*)", text, flags=re.S)
    if not match:
        raise ValueError(f"{path}: expected a '### system' part followed by a '### user' part")
    return match[1].strip(), match[2].strip()


def defuse(answer: str) -> str:
    """`[[A]]` inside an answer becomes `[ [A] ]`: readable for the judge, never parsed as a verdict."""
    return _VERDICT_LIKE.sub(lambda m: f"[ [{m[1]}] ]", answer).replace("<<<", "< < <")


def nonce_for(*parts: str) -> str:
    return hashlib.sha256("\x00".join(parts).encode()).hexdigest()[:8]


def render(name: str, fields: dict[str, str]) -> list[dict]:
    """The judge's chat messages for a template and its fields."""
    system, user = load_template(name)
    return [{"role": "system", "content": fill(system, fields)}, {"role": "user", "content": fill(user, fields)}]


def fill(text: str, fields: dict[str, str]) -> str:
    """`{key}` placeholders replaced in one pass (not str.format, see the module docstring): a value is
    never scanned again, so an answer that contains "{answer_2}" cannot pull another field in."""
    return _PLACEHOLDER.sub(lambda m: fields.get(m[1], m[0]), text)


def question_text(messages) -> str:
    """The conversation to judge as text: the last user turn, with earlier turns above it if any."""
    if len(messages) == 1:
        return messages[0]["content"]
    return "\n\n".join(f"[{m['role']}]\n{m['content']}" for m in messages)
