"""Mechanical repair of an answer so that it satisfies a prompt's checkable constraints.

Why this exists. Arena Learning (arXiv 2407.10627) trains the target on the answers of *stronger* models.
On a laptop the only model at hand is the target itself, and self-play cannot teach what the model never
samples: SmolLM2-135M practically never writes all-lowercase text, a JSON object or an exact end phrase,
so no best-of-n sample ever shows it how (the project's measurements: 0 of 36 lowercase answers in 256
samples). Most IFEval-style constraints are, however, *mechanically* satisfiable: lowercase the text, drop
the commas, append the end phrase, wrap it in quotes, turn sentences into bullets, cut it to a word limit.
`repair_answer` does that to the model's own answer, and `models/revise.py` serves the result as an
opponent (`<model>@revise`): an answer that keeps the model's content and follows the instructions, i.e.
the kind of answer a stronger model would give. It stands in for the 70B opponents of the paper in the CPU
quickstart; real opponents (endpoints, local checkpoints) remain the main path.

Repairs run in a fixed order — content (keywords, lengths), structure (bullets, highlights, title,
placeholders, sections), start and end, case, punctuation, and the wrappers (quotes, JSON) last — because a
later repair must not undo an earlier one: casing after the end phrase keeps "P.S." checkable, the quotes go
around everything. The result is re-checked by the verifier like any other answer; nothing here decides who
wins. A constraint without a repair (two responses) is left as it was and the answer fails it honestly.
"""

from __future__ import annotations

import json
import re

from .constraints import CONSTRAINTS, _word_pattern, check_constraint, count_words, split_sentences

# A generic sentence per purpose, used when a repair must add words: plain, true of any answer, and free of
# the filler words the forbidden-words constraint picks from.
_FILLER = ("This point matters for the whole answer.", "Each part of this advice can be used on its own.",
           "Keep these ideas in mind when you apply them.", "Small steps like these add up over time.",
           "It helps to come back to this when needed.", "These details make the answer easier to use.")
_PLACEHOLDERS = ("[name]", "[date]", "[address]", "[phone number]", "[location]")


def trim_to_sentence(text: str) -> str:
    """A runaway answer cut back to its last complete sentence (or, with none, closed with a period): an
    answer that ends, rather than one that stops mid-word."""
    text = text.rstrip()
    ends = [m.end() for m in re.finditer(r"[.!?](?=[\"')\]]*(\s|$))", text)]
    if ends and ends[-1] >= len(text) * 0.3:
        return text[:ends[-1]].rstrip()
    if "\n" in text:  # a poem or a list: keep the complete lines
        text = text[:text.rindex("\n")].rstrip()
    return text.rstrip(",;:- ") + "." if text else text


def _sentences(text: str) -> list[str]:
    """Sentences, with list markers dropped and each line ending as a sentence ("1. Eat well" -> "Eat well.")."""
    lines = [re.sub(r"^[ \t]*(?:[*-]|\d+[.)])[ \t]+", "", line).strip() for line in text.splitlines()]
    lines = [line if re.search(r"[.!?][\"')\]]*$", line) else line + "." for line in lines if line]
    return [s.strip() for line in lines for s in split_sentences(line)]


def _append(text: str, sentence: str) -> str:
    return f"{text.rstrip()} {sentence}".strip()


# --- one repair per constraint id: (text, params, ctx) -> text; ctx has the task text and all constraints

def _lowercase(text, params, ctx):
    return text.lower()


def _uppercase(text, params, ctx):
    return text.upper()


def _capital_words(text, params, ctx):
    words = list(re.finditer(r"\b[A-Za-z]{2,}\b", text))
    capital = [m for m in words if m.group(0).isupper()]
    if params["relation"] == "at least":
        need = params["frequency"] - len(capital)
        picks = [m for m in words if not m.group(0).isupper() and len(m.group(0)) > 3][:max(need, 0)]
        for m in sorted(picks, key=lambda m: -m.start()):
            text = text[:m.start()] + m.group(0).upper() + text[m.end():]
        return text
    for m in sorted(capital[params["frequency"] - 1:], key=lambda m: -m.start()):
        text = text[:m.start()] + m.group(0).capitalize() + text[m.end():]
    return text


def _include_keywords(text, params, ctx):
    missing = [k for k in params["keywords"] if not _word_pattern(k).search(text)]
    return _append(text, f"This also touches on {' and '.join(missing)}.") if missing else text


def _remove_words(text: str, words) -> str:
    for word in words:
        text = _word_pattern(word).sub("", text)
    text = re.sub(r"[ \t]{2,}", " ", text)
    return re.sub(r" ([,.!?;:])", r"\1", text)


def _forbidden_words(text, params, ctx):
    return _remove_words(text, params["forbidden_words"])


def _keyword_frequency(text, params, ctx):
    word, count = params["keyword"], len(_word_pattern(params["keyword"]).findall(text))
    if params["relation"] == "at least":
        for _ in range(params["frequency"] - count):
            text = _append(text, f"Think about the {word} again.")
        return text
    matches = list(_word_pattern(word).finditer(text))
    for m in reversed(matches[params["frequency"] - 1:]):
        text = text[:m.start()] + "it" + text[m.end():]
    return text


def _letter_frequency(text, params, ctx):
    letter = params["letter"].lower()
    if params["relation"] == "at least":
        for filler in sorted(_FILLER, key=lambda f: -f.lower().count(letter)):
            if text.lower().count(letter) >= params["frequency"]:
                break
            text = _append(text, filler)
        return text
    # Drop the words that use the rare letter, beyond the allowed count.
    allowed = params["frequency"] - 1
    for m in reversed(list(re.finditer(rf"\b\w*{re.escape(letter)}\w*\b", text, re.IGNORECASE))):
        if text.lower().count(letter) <= allowed:
            break
        text = text[:m.start()] + text[m.end():]
    return re.sub(r"[ \t]{2,}", " ", text)


# Words and sentences that repairs later in the order add (an end phrase, a P.S., a keyword sentence): an
# answer cut to a length limit leaves room for them.
_ADDS_SENTENCE = {"startend:end_checker": 8, "detectable_content:postscript": 8, "keywords:existence": 6,
                  "keywords:letter_frequency": 9,
                  "detectable_content:number_placeholders": 9, "keywords:frequency": 5, "detectable_format:title": 5,
                  "startend:first_word": 1}


def _reserved(ctx, unit: str) -> int:
    others = [c["id"] for c in ctx.get("constraints", ()) if c["id"] in _ADDS_SENTENCE]
    return sum(_ADDS_SENTENCE[i] for i in others) if unit == "words" else sum(i != "startend:first_word" for i in others)


def _number_words(text, params, ctx):
    limit = params["num_words"]
    if params["relation"] == "at least":
        for filler in _FILLER * 4:
            if count_words(text) >= limit:
                break
            text = _append(text, filler)
        return text
    limit = max(limit - _reserved(ctx, "words"), 4)
    kept: list[str] = []
    for sentence in _sentences(text):
        if count_words(" ".join(kept + [sentence])) >= limit:
            break
        kept.append(sentence)
    if not kept:  # the first sentence alone is too long: cut it
        words = text.split()[: max(limit - 1, 1)]
        kept = [" ".join(words).rstrip(",;:") + "."]
        while count_words(kept[0]) >= limit and len(words) > 1:
            words = words[:-1]
            kept = [" ".join(words).rstrip(",;:") + "."]
    return " ".join(kept)


def _number_sentences(text, params, ctx):
    sentences, n = _sentences(text), params["num_sentences"]
    if params["relation"] == "at least":
        for filler in _FILLER:
            if len(sentences) >= n:
                break
            sentences.append(filler)
        return " ".join(sentences)
    keep = max(n - 1 - _reserved(ctx, "sentences"), 1)
    return " ".join(sentences[:keep]) if len(sentences) > keep else text


def _bullets(text, params, ctx):
    n = params["num_bullets"]
    sentences = _sentences(text) or [text.strip()]
    sentences += [f for f in _FILLER if f not in sentences][: max(0, n - len(sentences))]
    groups = [sentences[i::n] for i in range(n)]  # every sentence kept, spread over n points
    ordered = [" ".join(sentences[j] for j in range(len(sentences)) if j % n == i) for i in range(n)]
    return "\n".join(f"* {point}" for point, group in zip(ordered, groups) if group)


def _highlights(text, params, ctx):
    sentences = _sentences(text)
    need = params["num_highlights"] - sum(1 for h in re.findall(r"\*\*[^\n*]+\*\*|\*[^\n*]+\*", text)
                                          if h.strip("*").strip())
    for sentence in sentences:
        if need <= 0:
            break
        # The sentence's last words: at a line's start "* *phrase*" would read as a bullet, not a highlight.
        words = sentence.split()
        phrase = " ".join(words[-min(3, len(words)):]).strip(".,!?;:\"'")
        at = text.find(phrase) if phrase and "*" not in phrase else -1
        if at < 0 or re.fullmatch(r"[ \t]*[*-][ \t]*", text[text.rfind("\n", 0, at) + 1:at]):
            continue
        text = f"{text[:at]}*{phrase}*{text[at + len(phrase):]}"
        need -= 1
    for filler in _FILLER:
        if need <= 0:
            break
        text = _append(text, f"*{filler.rstrip('.')}*.")
        need -= 1
    return text


def _title(text, params, ctx):
    words = re.findall(r"[A-Za-z']+", ctx.get("task") or text)[:5]
    title = " ".join(words).strip() or "Answer"
    return f"<<{title}>>\n\n{text.lstrip()}"


def _placeholders(text, params, ctx):
    have = len(re.findall(r"\[[^\[\]\n]*\w[^\[\]\n]*\]", text))
    missing = [p for p in _PLACEHOLDERS if p not in text][: max(0, params["num_placeholders"] - have)]
    if missing:
        text = _append(text, f"Fill in {' and '.join(missing)} before you use it.")
    return text


def _constrained(text, params, ctx):
    first = text.strip().lower()
    option = "no" if re.match(r"\W*no\b", first) else "yes" if re.match(r"\W*yes\b", first) else "maybe"
    rest = [s for s in _sentences(text) if not re.match(r"\W*(yes|no)\W*$", s.lower())][:1]
    return " ".join([f"My answer is {option}."] + rest)


def _end_phrase(text, params, ctx):
    return f"{text.rstrip()}\n\n{params['end_phrase']}"


def _quotation(text, params, ctx):
    return f'"{text.strip().strip(chr(34))}"'


def _first_word(text, params, ctx):
    # After any leading markup ("* ", "# ", a quote): a bullet list stays a bullet list.
    lead = re.match(r"[\s\"'*#>_-]*", text).group(0)
    body = text[len(lead):]
    return f"{lead}{params['first_word']}, {body[:1].lower()}{body[1:]}" if body else params["first_word"]


def _no_comma(text, params, ctx):
    return re.sub(r"\s*,\s*", " ", text).replace(" .", ".")


def _postscript(text, params, ctx):
    return f"{text.rstrip()}\n\nP.S. I hope this is useful to you."


def _json(text, params, ctx):
    return "```json\n" + json.dumps({"answer": text.strip()}, ensure_ascii=False) + "\n```"


def _paragraphs(text, params, ctx):
    sentences, n = _sentences(text), params["num_paragraphs"]
    sentences += [f for f in _FILLER if f not in sentences][: max(0, n - len(sentences))]
    size = -(-len(sentences) // n)
    return "\n\n".join(" ".join(sentences[i * size:(i + 1) * size]) for i in range(n))


def _sections(text, params, ctx):
    sentences, n = _sentences(text), params["num_sections"]
    sentences += [f for f in _FILLER if f not in sentences][: max(0, n - len(sentences))]
    size = -(-len(sentences) // n)
    return "\n\n".join(f"SECTION {i + 1}\n" + " ".join(sentences[i * size:(i + 1) * size]) for i in range(n))


def _repeat_prompt(text, params, ctx):
    return f"{params['prompt_to_repeat']}\n\n{text}"


# In application order (see the module docstring). two_responses has no mechanical repair.
REPAIRS = {
    "keywords:forbidden_words": _forbidden_words,
    "length_constraints:number_sentences": _number_sentences,
    "length_constraints:number_words": _number_words,
    "keywords:existence": _include_keywords,
    "keywords:frequency": _keyword_frequency,
    "keywords:letter_frequency": _letter_frequency,
    "detectable_format:constrained_response": _constrained,
    "detectable_format:number_bullet_lists": _bullets,
    "length_constraints:number_paragraphs": _paragraphs,
    "detectable_format:multiple_sections": _sections,
    "detectable_format:number_highlighted_sections": _highlights,
    "detectable_content:number_placeholders": _placeholders,
    "detectable_format:title": _title,
    "startend:first_word": _first_word,
    "combination:repeat_prompt": _repeat_prompt,
    "detectable_content:postscript": _postscript,
    "startend:end_checker": _end_phrase,
    "change_case:capital_word_frequency": _capital_words,
    "change_case:english_lowercase": _lowercase,
    "change_case:english_capital": _uppercase,
    "punctuation:no_comma": _no_comma,
    "startend:quotation": _quotation,
    "detectable_format:json_format": _json,
}
_ORDER = {cid: i for i, cid in enumerate(REPAIRS)}
assert set(REPAIRS) <= set(CONSTRAINTS), "a repair names an unknown constraint"


def repair_answer(text: str, constraints: list[dict], stopped: bool = True, task: str = "") -> tuple[str, list[str]]:
    """`text` edited until it satisfies as many of `constraints` as the repairs can reach; returns the new
    text and the ids that were repaired. A runaway (`stopped=False`) is first cut back to its last sentence.
    Each failing constraint is repaired once, in `REPAIRS` order; the verifier has the last word."""
    repaired: list[str] = []
    ctx = {"task": task, "constraints": constraints}
    if not stopped:
        text = trim_to_sentence(text)
    failing = [c for c in constraints if not check_constraint(text, c)]
    for constraint in sorted(failing, key=lambda c: _ORDER.get(c["id"], len(_ORDER))):
        repair = REPAIRS.get(constraint["id"])
        if repair is None:
            continue
        text = repair(text, constraint.get("params") or {}, ctx)
        repaired.append(constraint["id"])
    # A later repair can undo an earlier one (a bullet list rewrites the text a keyword was added to):
    # one more pass over what still fails, in the same order.
    for constraint in sorted(constraints, key=lambda c: _ORDER.get(c["id"], len(_ORDER))):
        repair = REPAIRS.get(constraint["id"])
        if repair is not None and not check_constraint(text, constraint):
            text = repair(text, constraint.get("params") or {}, ctx)
    return text.strip(), repaired
