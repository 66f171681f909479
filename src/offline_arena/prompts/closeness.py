"""How near an answer comes to a constraint it fails: the graded verifier's third tie-break
(judges/verifier.py). Lives beside the constraints because it reads their parameters and helpers."""

from __future__ import annotations

from . import constraints as c


def _ratio(have: float, want: float) -> float:
    return min(have, want) / max(have, want) if max(have, want) > 0 else 1.0


def closeness(response: str, constraint: dict) -> float:
    """How near a response comes to a constraint, in [0, 1] (1 when it passes): the share of the way to a
    count bound, of the keywords present, of letters in the right case. All-or-nothing constraints (an
    end phrase, JSON, quotes) score 0 unless they pass. An empty answer comes nowhere near anything: it
    avoids every forbidden word and comma only by saying nothing, and IFEval fails it on every instruction."""
    if not response.strip():
        return 0.0
    if c.check_constraint(response, constraint):
        return 1.0
    cid, p = constraint["id"], constraint.get("params") or {}
    words = c.count_words(response)
    if cid == "length_constraints:number_words":
        return _ratio(words, p["num_words"])
    if cid == "length_constraints:number_sentences":
        return _ratio(len(c.split_sentences(response)), p["num_sentences"])
    if cid == "detectable_format:number_bullet_lists":
        return _ratio(len(c._BULLET.findall(response)), p["num_bullets"])
    if cid == "detectable_format:number_highlighted_sections":
        return _ratio(len(c._HIGHLIGHT.findall(response)), p["num_highlights"])
    if cid == "keywords:existence":
        return sum(bool(c._word_pattern(k).search(response)) for k in p["keywords"]) / len(p["keywords"])
    if cid == "keywords:forbidden_words":
        return 1 - sum(bool(c._word_pattern(w).search(response)) for w in p["forbidden_words"]) / len(p["forbidden_words"])
    if cid == "keywords:frequency":
        return _ratio(c._count_word(response, p["keyword"]), p["frequency"])
    if cid == "keywords:letter_frequency":
        return _ratio(response.lower().count(p["letter"]), p["frequency"])
    if cid in ("change_case:english_lowercase", "change_case:english_capital"):
        letters = [ch for ch in response if ch.isalpha()]
        right = sum(ch.islower() if cid.endswith("lowercase") else ch.isupper() for ch in letters)
        return right / len(letters) if letters else 0.0
    if cid == "punctuation:no_comma":
        return 1 / (1 + response.count(","))
    return 0.0
