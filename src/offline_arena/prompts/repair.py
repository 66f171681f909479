"""Mechanical repair of an answer so that it satisfies a prompt's checkable constraints.

Why this exists. Arena Learning (arXiv 2407.10627) trains the target on the answers of *stronger* models.
On a laptop the only model at hand is the target itself, and self-play cannot teach what the model never
samples: SmolLM2-135M practically never writes all-lowercase text, a JSON object or an exact end phrase,
so no best-of-n sample ever shows it how (the project's measurements: 0 of 36 lowercase answers in 256
samples). Most IFEval-style constraints are, however, *mechanically* satisfiable: lowercase the text, drop
the commas, append the end phrase, wrap it in quotes, turn sentences into bullets, cut it to a word limit.
`repair_answer` does that to the model's own answer, and `revise.py` serves the result as an
opponent (`<model>@revise`): an answer that keeps the model's content and follows the instructions, i.e.
the kind of answer a stronger model would give. It stands in for the 70B opponents of the paper in the CPU
quickstart; real opponents (endpoints, local checkpoints) remain the main path.

Repairs run in a fixed order — content (keywords, lengths), structure (bullets, paragraphs, sections, two
responses, highlights, placeholders, title), start and end, case, punctuation, and the wrappers (quotes,
JSON) last — because a later repair must not undo an earlier one: casing after the end phrase keeps "P.S."
checkable, the quotes go around everything, and a P.S. or an end phrase joins the last paragraph when the
prompt counts paragraphs. A second pass repairs whatever a later repair still broke. The result is
re-checked by the verifier like any other answer; nothing here decides who wins. The response language has
no mechanical repair (translation is not mechanical): the answer is left as it was and fails it honestly.
"""

from __future__ import annotations

import json
import re

from .constraints import CONSTRAINTS, _word_pattern, check_constraint, count_words, paragraph_first_word
from .repair_text import (FILLER, add_fillers, add_sentence, counts_paragraphs, sentence_capped, sentences_of,
                          split_longest, spread, trim_to_sentence, with_first_word, word_capped)

_PLACEHOLDERS = ("[name]", "[date]", "[address]", "[phone number]", "[location]")
_SECTION_LINE = re.compile(r"^[ \t#*]*SECTION[ \t]*\d", re.MULTILINE)  # a line that opens a section


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
        if need <= 0:
            return text

        def others(t):
            return [m for m in re.finditer(r"\b[A-Za-z]{2,}\b", t) if not m.group(0).isupper()]

        # Words of four letters or more first; a short answer ("Yes.") gets filler words to raise.
        text = add_fillers(text, FILLER, lambda t: len(others(t)) >= need, ctx)
        picks = sorted(others(text), key=lambda m: (len(m.group(0)) <= 3, m.start()))[:need]
        for m in sorted(picks, key=lambda m: -m.start()):
            text = text[:m.start()] + m.group(0).upper() + text[m.end():]
        return text
    for m in sorted(capital[params["frequency"] - 1:], key=lambda m: -m.start()):
        text = text[:m.start()] + m.group(0).capitalize() + text[m.end():]
    return text


def _include_keywords(text, params, ctx):
    # No FORBIDDEN_CANDIDATES word ("also") in what a repair adds: forbidden words are removed first.
    missing = [k for k in params["keywords"] if not _word_pattern(k).search(text)]
    return add_sentence(text, f"This touches on {' and '.join(missing)} too.", ctx) if missing else text


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
        # One sentence however many are missing: a sentence cap elsewhere in the prompt reserved one.
        missing = params["frequency"] - count
        sentence = f"Think about the {' and the '.join([word] * missing)} again."
        return add_sentence(text, sentence, ctx) if missing > 0 else text
    matches = list(_word_pattern(word).finditer(text))
    for m in reversed(matches[params["frequency"] - 1:]):
        text = text[:m.start()] + "it" + text[m.end():]
    return text


def _letter_frequency(text, params, ctx):
    letter = params["letter"].lower()
    if params["relation"] == "at least":
        # Densest fillers first: the fewest added words for the letters, should a word cap apply too.
        fillers = sorted(FILLER, key=lambda f: -f.lower().count(letter) / len(f.split()))
        return add_fillers(text, fillers, lambda t: t.lower().count(letter) >= params["frequency"], ctx)
    # Drop the words that use the rare letter, beyond the allowed count.
    allowed = params["frequency"] - 1
    for m in reversed(list(re.finditer(rf"\b\w*{re.escape(letter)}\w*\b", text, re.IGNORECASE))):
        if text.lower().count(letter) <= allowed:
            break
        text = text[:m.start()] + text[m.end():]
    return re.sub(r"[ \t]{2,}", " ", text)


# (words, sentences) that repairs later in the order add (an end phrase, a P.S., a keyword sentence): an
# answer cut to a length limit leaves room for them. Under a sentence cap the keyword, letter and
# placeholder sentences join the last sentence as clauses (`add_sentence`), so only the end phrase and the
# P.S. need a sentence each; a title line has no period.
_ADDS = {"startend:end_checker": (8, 1), "detectable_content:postscript": (8, 1), "keywords:existence": (6, 0),
         "keywords:letter_frequency": (9, 0), "detectable_format:title": (5, 0), "startend:first_word": (1, 0),
         "length_constraints:nth_paragraph_first_word": (1, 0)}


def _adds(constraint: dict) -> tuple[int, int]:
    cid, params = constraint["id"], constraint.get("params") or {}
    if cid == "keywords:frequency":  # "Think about the x and the x ... again.", only to reach "at least"
        return (3 + 3 * params["frequency"], 0) if params.get("relation") == "at least" else (0, 0)
    if cid == "detectable_content:number_placeholders":  # "Fill in [name] and [date] ... before you use it."
        return 6 + 2 * params["num_placeholders"], 0
    return _ADDS.get(cid, (0, 0))


def _reserved(ctx, unit: str) -> int:
    adds = [_adds(c) for c in ctx.get("constraints", ())]
    return sum(words if unit == "words" else sentences for words, sentences in adds)


def _number_words(text, params, ctx):
    limit = params["num_words"]
    if params["relation"] == "at least":
        return add_fillers(text, FILLER * 4, lambda t: count_words(t) >= limit, ctx)
    limit = max(limit - _reserved(ctx, "words"), 4)
    kept: list[str] = []
    for sentence in sentences_of(text):
        if count_words(" ".join(kept + [sentence])) >= limit:
            break
        kept.append(sentence)
    if not kept:  # the first sentence alone is too long: cut it
        words = text.split()[: max(limit - 1, 1)]
        kept = [" ".join(words).rstrip(",;:") + "."]
        while count_words(kept[0]) >= limit and len(words) > 1:
            words = words[:-1]
            kept = [" ".join(words).rstrip(",;:") + "."]
    # "At least N sentences" too (its fillers came first): the kept words cut into N short sentences.
    wanted = max([c["params"]["num_sentences"] for c in ctx.get("constraints", ())
                  if c["id"] == "length_constraints:number_sentences" and c["params"]["relation"] == "at least"],
                 default=0)
    if len(kept) < wanted:
        while len(kept) < wanted and split_longest(kept):
            pass
        kept = [k if re.search(r"[.!?][\"')\]]*$", k) else k + "." for k in kept]
    return " ".join(kept)


def _number_sentences(text, params, ctx):
    sentences, n = sentences_of(text), params["num_sentences"]
    if params["relation"] == "at least":
        for filler in FILLER:
            if len(sentences) >= n:
                break
            sentences.append(filler)
        return " ".join(sentences)
    keep = max(n - 1 - _reserved(ctx, "sentences"), 1)
    return " ".join(sentences[:keep]) if len(sentences) > keep else text


def _bullets(text, params, ctx):
    n = params["num_bullets"]
    sentences = sentences_of(text) or [text.strip()]
    if word_capped(ctx) or sentence_capped(ctx):
        while len(sentences) < n and split_longest(sentences):
            pass
    sentences += [f for f in FILLER if f not in sentences][: max(0, n - len(sentences))]
    groups = [sentences[i::n] for i in range(n)]  # every sentence kept, spread over n points
    ordered = [" ".join(sentences[j] for j in range(len(sentences)) if j % n == i) for i in range(n)]
    return "\n".join(f"* {point}" for point, group in zip(ordered, groups) if group)


def _highlights(text, params, ctx):
    sentences = sentences_of(text)
    need = params["num_highlights"] - sum(1 for h in re.findall(r"\*\*[^\n*]+\*\*|\*[^\n*]+\*", text)
                                          if h.strip("*").strip())
    for sentence in sentences:
        if need <= 0:
            break
        # The sentence's last words: at a line's start "* *phrase*" would read as a bullet, not a highlight.
        # Nor at a line's start at all: a paragraph's first word must stay a plain word (nth_paragraph_first_word).
        words = sentence.split()
        if len(words) < 2:
            continue
        phrase = " ".join(words[-min(3, len(words) - 1):]).strip(".,!?;:\"'")
        # The first occurrence that is not highlighted already (a repeated sentence repeats its phrase).
        spots = [m.start() for m in re.finditer(re.escape(phrase), text) if phrase and "*" not in phrase
                 and text[m.start() - 1:m.start()] != "*" and text[m.end():m.end() + 1] != "*"]
        at = spots[0] if spots else -1
        if at < 0 or re.fullmatch(r"[ \t]*(?:[*-][ \t]*)?", text[text.rfind("\n", 0, at) + 1:at]):
            continue
        text = f"{text[:at]}*{phrase}*{text[at + len(phrase):]}"
        need -= 1
    for filler in FILLER:
        if need <= 0:
            break
        text = add_sentence(text, f"*{filler.rstrip('.')}*.", ctx)
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
        text = add_sentence(text, f"Fill in {' and '.join(missing)} before you use it.", ctx)
    return text


def _constrained(text, params, ctx):
    first = text.strip().lower()
    option = "no" if re.match(r"\W*no\b", first) else "yes" if re.match(r"\W*yes\b", first) else "maybe"
    rest = [s for s in sentences_of(text) if not re.match(r"\W*(yes|no)\W*$", s.lower())][:1]
    return " ".join([f"My answer is {option}."] + rest)


def _end_phrase(text, params, ctx):
    # IFEval's end_checker wants the response to end with the phrase; on a line of its own it reads as a
    # sign-off, but where paragraphs are counted it joins the last one.
    return f"{text.rstrip()}{' ' if counts_paragraphs(ctx) else chr(10) * 2}{params['end_phrase']}"


def _quotation(text, params, ctx):
    return f'"{text.strip().strip(chr(34))}"'


def _first_word(text, params, ctx):
    if _SECTION_LINE.match(text):  # "Word, SECTION 1" would break the marker: a line of its own first
        return f"{params['first_word']}, here is my answer.\n\n{text.lstrip()}"
    # After any leading markup ("* ", "# ", a quote): a bullet list stays a bullet list.
    lead = re.match(r"[\s\"'*#>_-]*", text).group(0)
    return lead + with_first_word(params["first_word"], text[len(lead):])


def _no_comma(text, params, ctx):
    return re.sub(r"\s*,\s*", " ", text).replace(" .", ".")


def _postscript(text, params, ctx):
    # A P.S. starts a line (our check; IFEval's finds "p.s." anywhere); where paragraphs are counted it is
    # a new line of the last paragraph, not a paragraph of its own. Our sentence splitter ends a sentence at
    # "P.S. ", so under a sentence cap the marker takes a colon: one sentence, not two.
    marker = "P.S.:" if sentence_capped(ctx) else "P.S."
    return f"{text.rstrip()}{chr(10) if counts_paragraphs(ctx) else chr(10) * 2}{marker} I hope this is useful to you."


def _json(text, params, ctx):
    return "```json\n" + json.dumps({"answer": text.strip()}, ensure_ascii=False) + "\n```"


def _paragraphs(text, params, ctx):
    return "\n\n".join(spread(sentences_of(text), params["num_paragraphs"], ctx))


def _sections(text, params, ctx):
    # A second pass rebuilds the sections of text that has some already: what stands before the first
    # marker (the first word's intro line) stays there, and the old markers are dropped.
    marker = _SECTION_LINE.search(text)
    preamble, body = (text[:marker.start()].strip(), text[marker.start():]) if marker else ("", text)
    sentences = [s for s in sentences_of(body) if not re.fullmatch(r"[ \t#*]*SECTION[ \t]*\d+\W*", s)]
    groups = spread(sentences, params["num_sections"], ctx)
    sections = "\n\n".join(f"SECTION {i + 1}\n{group}" for i, group in enumerate(groups))
    return f"{preamble}\n\n{sections}" if preamble else sections


def _nth_paragraph(text, params, ctx):
    # The sentences spread over the paragraphs, separated by blank lines only; the n-th one opens with the
    # word ("Next, drink ..."), unless it already does.
    paragraphs = spread(sentences_of(text), params["num_paragraphs"], ctx)
    k, word = params["nth_paragraph"] - 1, params["first_word"]
    if paragraph_first_word(paragraphs[k]) != word.lower():
        paragraphs[k] = with_first_word(word.capitalize(), paragraphs[k])
    return "\n\n".join(paragraphs)


def _two_responses(text, params, ctx):
    # The draft's sentences split into two halves, each a response of its own: the check wants two distinct
    # non-empty pieces around "******", and keeping the same words keeps word and letter counts as they were.
    first, second = spread(sentences_of(text), 2, ctx)
    if first == second:
        second = next(f for f in FILLER if f != first)
    return f"{first}\n******\n{second}"


def _repeat_prompt(text, params, ctx):
    return f"{params['prompt_to_repeat']}\n\n{text}"


# In application order (see the module docstring). language:response_language has no mechanical repair.
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
    "length_constraints:nth_paragraph_first_word": _nth_paragraph,
    "combination:two_responses": _two_responses,
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
