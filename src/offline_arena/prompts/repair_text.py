"""The text surgery the repairs share (repair.py): sentences and how to split them, filler sentences for
when a repair must add words, and the caps other constraints of the same prompt set ("less than N words"
or sentences), which decide whether an added sentence may stand alone or must join the last one."""

from __future__ import annotations

import re

from .constraints import split_sentences

# A generic sentence per purpose, used when a repair must add words: plain, true of any answer, and free of
# the filler words the forbidden-words constraint picks from.
FILLER = ("This point matters for the whole answer.", "Each part of this advice can be used on its own.",
           "Keep these ideas in mind when you apply them.", "Small steps like these add up over time.",
           "It helps to come back to this when needed.", "These details make the answer easier to use.")


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


def sentences_of(text: str) -> list[str]:
    """Sentences, with list markers dropped and each line ending as a sentence ("1. Eat well" -> "Eat well.")."""
    lines = [re.sub(r"^[ \t]*(?:[*-]|\d+[.)])[ \t]+", "", line).strip() for line in text.splitlines()]
    lines = [line if re.search(r"[.!?][\"')\]]*$", line) else line.rstrip(":;,") + "." for line in lines if line]
    return [s.strip() for line in lines for s in split_sentences(line)]


def append_sentence(text: str, sentence: str) -> str:
    text = text.rstrip()
    if re.search(r"\w$", text):  # "... drink water" + "Fill in ..." would run two sentences together
        text += "."
    return f"{text} {sentence}".strip()


def split_longest(sentences: list[str]) -> bool:
    """Split the longest sentence in two, at the clause boundary nearest its middle (a comma, "and", "but")
    or else at its middle word; False when no sentence has words enough."""
    longest = max(range(len(sentences)), key=lambda i: len(sentences[i].split()), default=None)
    words = sentences[longest].split() if longest is not None else []
    if len(words) < 4:
        return False
    cuts = [i for i in range(1, len(words)) if words[i - 1].endswith((",", ";")) or words[i] in ("and", "but")]
    cut = min(cuts or [len(words) // 2], key=lambda i: abs(i - len(words) / 2))
    sentences[longest:longest + 1] = [" ".join(words[:cut]).rstrip(",;"), " ".join(words[cut:])]
    return True


def capped(ctx, constraint_id: str) -> bool:
    """Whether the prompt caps a count ("less than N ...") with this constraint."""
    return any(c["id"] == constraint_id and (c.get("params") or {}).get("relation") == "less than"
               for c in ctx.get("constraints", ()))


def sentence_capped(ctx) -> bool:
    return capped(ctx, "length_constraints:number_sentences")


def word_capped(ctx) -> bool:
    return capped(ctx, "length_constraints:number_words")


def add_sentence(text: str, sentence: str, ctx) -> str:
    """A sentence appended; under a sentence cap ("less than N sentences") it joins the last sentence as a
    clause ("...clear; fill in [name] ..."), so what later repairs add never breaks the cap."""
    if sentence_capped(ctx) and text.rstrip().endswith("."):
        return f"{text.rstrip()[:-1]}; {sentence[:1].lower()}{sentence[1:]}"
    return append_sentence(text, sentence)


def add_fillers(text: str, fillers, enough, ctx) -> str:
    """Filler sentences appended until `enough(text)` (each through `add_sentence`)."""
    chosen: list[str] = []

    def joined() -> str:
        result = text
        for filler in chosen:
            result = add_sentence(result, filler, ctx)
        return result

    for filler in fillers:
        if enough(joined()):
            break
        chosen.append(filler)
    return joined()


def spread(sentences: list[str], n: int, ctx=None) -> list[str]:
    """The sentences in order over n non-empty groups (sizes differ by at most one), filler sentences added
    when there are fewer than n: a paragraph, section or response must never come out empty. Under a word
    or sentence cap ("less than N words") sentences are split first, since every filler costs words and a
    sentence, and a piece of a sentence is neither."""
    sentences = list(sentences)
    if ctx is not None and (word_capped(ctx) or sentence_capped(ctx)):
        while len(sentences) < n and split_longest(sentences):
            pass
    sentences += [f for f in FILLER if f not in sentences][: max(0, n - len(sentences))]
    size, extra = divmod(len(sentences), n)
    groups, start = [], 0
    for i in range(n):
        end = start + size + (i < extra)
        groups.append(" ".join(sentences[start:end]))
        start = end
    return groups


def with_first_word(word: str, body: str) -> str:
    """"Word, body": the body's first letter lowered only where it starts an ordinary capitalised word
    ("Drink" -> "drink"; "I", "DNA" and an all-caps answer stay as they are)."""
    if re.match(r"[A-Z][a-z]", body):
        body = body[:1].lower() + body[1:]
    return f"{word}, {body}" if body else word


def counts_paragraphs(ctx) -> bool:
    """Whether the prompt counts paragraphs: then a P.S. or an end phrase must join the last paragraph
    rather than open one of its own."""
    return any(c["id"] in ("length_constraints:number_paragraphs", "length_constraints:nth_paragraph_first_word")
               for c in ctx.get("constraints", ()))
