"""Checkable instructions ("constraints") in the spirit of IFEval (Zhou et al. 2023, "Instruction-Following
Evaluation for Large Language Models", arXiv 2311.07911).

Each constraint is a small class registered by id in `CONSTRAINTS` (a plain name -> class dict, like
mergekit's merge-method registry). A class knows three things:

- `sample_params(rng, task=None)`: random parameters, sized so that a tiny model can satisfy them in
  roughly 64-128 new tokens; `task` (a base-task dict with `text` and optional `keywords`) lets keyword
  constraints pick words that fit the task;
- `instruction(params)`: the sentence appended to the task, naming every parameter;
- `check(response, params)`: the strict verdict.

The ids and most checks follow IFEval's `instructions.py` so that numbers are comparable; where we deviate,
a comment says why. The pack covers IFEval's 25 instruction types (plus our `startend:first_word`).
Everything is pure Python (`re`, `json`), no NLTK or spaCy, so checks run offline and in microseconds; the
one exception is `language:response_language`, which needs language identification and uses `langdetect`,
as IFEval does (its profiles ship inside the package: nothing is downloaded; the first check loads them,
about a second). `check_constraint(..., loose=True)` is IFEval's loose mode.

`CONFLICTS` lists pairs that a single prompt must never combine (lowercase + uppercase, JSON + title, ...);
`compatible()` also rejects parameter clashes such as forbidding a word that another constraint requires.
A constraint added later conflicts only through a row of its own, so a pack restricted to the earlier ids
(`constraint_ids`) deals what it dealt before.
"""

from __future__ import annotations

import functools
import json
import random
import re
from typing import ClassVar

from .languages import LANGUAGES, UNSPACED_LANGUAGES

CONSTRAINTS: dict[str, type["Constraint"]] = {}


def register(cls: type["Constraint"]) -> type["Constraint"]:
    if cls.id in CONSTRAINTS:
        raise ValueError(f"constraint id {cls.id!r} registered twice")
    CONSTRAINTS[cls.id] = cls
    return cls


class Constraint:
    """Base class. Subclasses set `id` and override the static methods they need."""

    id: ClassVar[str]
    # False when satisfying the constraint takes more than ~64 new tokens (several paragraphs, two answers,
    # repeating the request): such prompts are unfair to a tiny model with a short token budget.
    fits_short_answer: ClassVar[bool] = True

    @staticmethod
    def sample_params(rng: random.Random, task: dict | None = None) -> dict:
        return {}

    @staticmethod
    def instruction(params: dict) -> str:
        raise NotImplementedError

    @staticmethod
    def check(response: str, params: dict) -> bool:
        raise NotImplementedError

    @staticmethod
    def applies_to(task: dict | None) -> bool:
        """Whether the constraint makes sense for this base task at all."""
        return True

    @staticmethod
    def required_words(params: dict) -> set[str]:
        """Words (lowercase) any passing response must contain; used to spot clashes with forbidden words."""
        return set()


# --- text helpers ---------------------------------------------------------------------------------------

def count_words(text: str) -> int:
    """Words as IFEval counts them (NLTK's RegexpTokenizer(r"\\w+")): "don't" is two words."""
    return len(re.findall(r"\w+", text))


# Abbreviations whose period does not end a sentence. IFEval's splitter handles more cases (it is a
# regex port of a Stack Overflow answer); these are the ones short English answers actually contain.
# "No." and "mg." are left out on purpose: in short answers and clinical text they usually do end a sentence.
_ABBREVIATIONS = re.compile(r"\b(?:e\.g|i\.e|vs|Dr|Mr|Mrs|Ms|Prof|approx)\.", re.IGNORECASE)


def split_sentences(text: str) -> list[str]:
    """Sentences end at ., ! or ? followed by whitespace or the end. A piece counts only if it has a letter,
    so list numbers such as "1." are not sentences of their own."""
    protected = _ABBREVIATIONS.sub(lambda m: m.group(0)[:-1] + "\x00", text)
    pieces = re.split(r"(?<=[.!?])[\"')\]]*\s+", protected)
    return [p.replace("\x00", ".").strip() for p in pieces if re.search(r"[A-Za-z]", p)]


def split_paragraphs(text: str) -> list[str]:
    """Paragraphs are separated by a blank line or by the markdown divider *** (IFEval uses only ***;
    we accept both because small models write blank lines far more often)."""
    text = re.sub(r"[ \t]*\*\*\*[ \t]*", "\n\n", text.strip())
    return [p.strip() for p in re.split(r"\n[ \t]*\n", text) if p.strip()]


def strip_json_fence(text: str) -> str:
    """Remove a ```json ... ``` fence around the text, as IFEval's JsonFormat check does."""
    text = text.strip()
    for prefix in ("```json", "```Json", "```JSON", "```"):
        if text.startswith(prefix):
            text = text[len(prefix):]
            break
    return text.removesuffix("```").strip()


def paragraph_first_word(paragraph: str) -> str:
    """A paragraph's first word as IFEval's nth_paragraph_first_word check reads it: the first whitespace
    token, leading quotes stripped, cut at the first . , ? ! ' or ", lowercased ("**Next**" stays as it is)."""
    words = paragraph.split()
    word = words[0].lstrip("'").lstrip('"') if words else ""
    return re.split(r"[.,?!'\"]", word)[0].lower()


def _word_pattern(word: str) -> re.Pattern:
    return re.compile(r"\b" + re.escape(word) + r"\b", re.IGNORECASE)


def _count_word(text: str, word: str) -> int:
    return len(_word_pattern(word).findall(text))


def _quoted(words) -> str:
    return ", ".join(f'"{w}"' for w in words)


def _noun(count: int, singular: str, plural: str | None = None) -> str:
    """ "1 section", "3 sections": the instruction a model reads should be grammatical."""
    return f"{count} {singular if count == 1 else plural or singular + 's'}"


def _compare(count: int, relation: str, threshold: int) -> bool:
    if relation == "at least":
        return count >= threshold
    if relation == "less than":
        return count < threshold
    raise ValueError(f"unknown relation {relation!r} (expected 'at least' or 'less than')")


RELATIONS = ("at least", "less than")

# Words for keyword constraints when the base task has no keywords of its own.
GENERAL_KEYWORDS = ("simple", "daily", "example", "plan", "careful", "friendly", "clear", "step", "habit",
                    "reason", "time", "help", "idea", "question", "change")
# Filler words a good answer can always do without: safe to forbid.
FORBIDDEN_CANDIDATES = ("very", "really", "just", "basically", "actually", "thing", "stuff", "good",
                        "important", "always", "never", "definitely", "literally", "great", "nice", "awesome",
                        "bad", "also", "many", "lot")
END_PHRASES = ("Any other questions?", "Is there anything else I can help with?",
               "Let me know if you have additional questions.", "I hope this helps.")
START_WORDS = ("Certainly", "Here", "First", "Today", "Overall", "Remember", "Well", "Yes")
CONSTRAINED_OPTIONS = ("My answer is yes.", "My answer is no.", "My answer is maybe.")
# First words for length_constraints:nth_paragraph_first_word, by where the paragraph stands: words that
# naturally open a first, a middle or a last paragraph, none of them a FORBIDDEN_CANDIDATES word.
PARAGRAPH_OPENERS = {"first": ("first", "today", "imagine", "here", "overall"),
                     "middle": ("next", "then", "however", "meanwhile", "besides", "moreover", "instead"),
                     "last": ("finally", "lastly", "ultimately", "together", "overall")}
# Letters a short English answer easily uses many times / can easily avoid.
COMMON_LETTERS = "etaoinsrl"
RARE_LETTERS = "kvjxqz"


def _task_keywords(task: dict | None) -> list[str]:
    return list((task or {}).get("keywords") or [])


def _task_words(task: dict | None) -> set[str]:
    return {w.lower() for w in re.findall(r"[A-Za-z']+", (task or {}).get("text", ""))}


# --- change_case ----------------------------------------------------------------------------------------

@register
class Lowercase(Constraint):
    id = "change_case:english_lowercase"

    @staticmethod
    def instruction(params):
        return ("Your entire response should be in English, and in all lowercase letters. "
                "No capital letters are allowed.")

    @staticmethod
    def check(response, params):
        # str.islower() is IFEval's test: at least one cased letter and none upper case.
        return response.islower()


@register
class Uppercase(Constraint):
    id = "change_case:english_capital"

    @staticmethod
    def instruction(params):
        return "Your entire response should be in English, and in all capital letters."

    @staticmethod
    def check(response, params):
        return response.isupper()


@register
class CapitalWordFrequency(Constraint):
    id = "change_case:capital_word_frequency"

    @staticmethod
    def sample_params(rng, task=None):
        return {"relation": rng.choice(RELATIONS), "frequency": rng.randint(2, 4)}

    @staticmethod
    def instruction(params):
        return (f"In your response, words with all capital letters should appear {params['relation']} "
                f"{params['frequency']} times.")

    @staticmethod
    def check(response, params):
        # Unlike IFEval (NLTK tokens, so "I" and "A" count) we count words of two or more letters: a
        # lone "I" is not the emphasis the instruction asks for, and NLTK is not available here.
        capital_words = [w for w in re.findall(r"\b[A-Za-z]{2,}\b", response) if w.isupper()]
        return _compare(len(capital_words), params["relation"], params["frequency"])


# --- keywords -------------------------------------------------------------------------------------------

@register
class IncludeKeywords(Constraint):
    id = "keywords:existence"

    @staticmethod
    def sample_params(rng, task=None):
        pool = _task_keywords(task) or list(GENERAL_KEYWORDS)
        return {"keywords": rng.sample(pool, min(len(pool), rng.randint(1, 2)))}

    @staticmethod
    def instruction(params):
        noun = "keyword" if len(params["keywords"]) == 1 else "keywords"
        return f"Include the {noun} {_quoted(params['keywords'])} in the response."

    @staticmethod
    def check(response, params):
        return all(_word_pattern(k).search(response) for k in params["keywords"])

    @staticmethod
    def required_words(params):
        return {w.lower() for k in params["keywords"] for w in re.findall(r"[A-Za-z']+", k)}


@register
class ForbiddenWords(Constraint):
    id = "keywords:forbidden_words"

    @staticmethod
    def sample_params(rng, task=None):
        # Never forbid a word of the task itself: the answer would have to dodge its own subject.
        in_task = _task_words(task) | {w.lower() for k in _task_keywords(task) for w in k.split()}
        pool = [w for w in FORBIDDEN_CANDIDATES if w not in in_task]
        return {"forbidden_words": rng.sample(pool, rng.randint(1, 3))}

    @staticmethod
    def instruction(params):
        noun = "word" if len(params["forbidden_words"]) == 1 else "words"
        return f"Do not include the {noun} {_quoted(params['forbidden_words'])} in the response."

    @staticmethod
    def check(response, params):
        return not any(_word_pattern(w).search(response) for w in params["forbidden_words"])


@register
class KeywordFrequency(Constraint):
    id = "keywords:frequency"

    @staticmethod
    def sample_params(rng, task=None):
        single_words = [k for k in _task_keywords(task) if " " not in k] or list(GENERAL_KEYWORDS)
        return {"keyword": rng.choice(single_words), "relation": rng.choice(RELATIONS),
                "frequency": rng.randint(2, 3)}

    @staticmethod
    def instruction(params):
        return (f'In your response, the word "{params["keyword"]}" should appear {params["relation"]} '
                f"{params['frequency']} times.")

    @staticmethod
    def check(response, params):
        return _compare(_count_word(response, params["keyword"]), params["relation"], params["frequency"])

    @staticmethod
    def required_words(params):
        return {params["keyword"].lower()} if params["relation"] == "at least" else set()


@register
class LetterFrequency(Constraint):
    id = "keywords:letter_frequency"

    @staticmethod
    def sample_params(rng, task=None):
        # "At least" with a common letter and "less than" with a rare one keep both directions achievable
        # within a short answer; a rare letter "at least 10 times" would force contortions.
        if rng.random() < 0.5:
            return {"letter": rng.choice(COMMON_LETTERS), "relation": "at least",
                    "frequency": rng.randint(5, 12)}
        # Avoid a rare letter that the task's own keywords use: the answer will want to say them.
        in_keywords = "".join(_task_keywords(task)).lower()
        letters = [c for c in RARE_LETTERS if c not in in_keywords] or list(RARE_LETTERS)
        return {"letter": rng.choice(letters), "relation": "less than", "frequency": rng.randint(2, 4)}

    @staticmethod
    def instruction(params):
        return (f'In your response, the letter "{params["letter"]}" should appear {params["relation"]} '
                f"{params['frequency']} times.")

    @staticmethod
    def check(response, params):
        count = response.lower().count(params["letter"].lower())
        return _compare(count, params["relation"], params["frequency"])


# --- length_constraints ---------------------------------------------------------------------------------

@register
class NumberWords(Constraint):
    id = "length_constraints:number_words"

    @staticmethod
    def sample_params(rng, task=None):
        # ~1.3 tokens a word: "at least 40" fits in 64 new tokens, "less than 30" still leaves room to answer.
        if rng.random() < 0.5:
            return {"relation": "at least", "num_words": rng.choice((15, 20, 25, 30, 40))}
        return {"relation": "less than", "num_words": rng.choice((30, 40, 50, 60, 80))}

    @staticmethod
    def instruction(params):
        return f"Answer with {params['relation']} {params['num_words']} words."

    @staticmethod
    def check(response, params):
        return _compare(count_words(response), params["relation"], params["num_words"])


@register
class NumberSentences(Constraint):
    id = "length_constraints:number_sentences"

    @staticmethod
    def sample_params(rng, task=None):
        if rng.random() < 0.5:
            return {"relation": "at least", "num_sentences": rng.randint(2, 4)}
        return {"relation": "less than", "num_sentences": rng.randint(3, 6)}

    @staticmethod
    def instruction(params):
        return f"Your response should contain {params['relation']} {params['num_sentences']} sentences."

    @staticmethod
    def check(response, params):
        return _compare(len(split_sentences(response)), params["relation"], params["num_sentences"])


@register
class NumberParagraphs(Constraint):
    id = "length_constraints:number_paragraphs"
    fits_short_answer = False

    @staticmethod
    def sample_params(rng, task=None):
        return {"num_paragraphs": rng.randint(2, 4)}

    @staticmethod
    def instruction(params):
        return (f"There should be exactly {params['num_paragraphs']} paragraphs. Separate paragraphs with "
                "a blank line or the markdown divider ***.")

    @staticmethod
    def check(response, params):
        return len(split_paragraphs(response)) == params["num_paragraphs"]


@register
class NthParagraphFirstWord(Constraint):
    id = "length_constraints:nth_paragraph_first_word"
    fits_short_answer = False  # two to four paragraphs do not fit in ~64 tokens

    @staticmethod
    def sample_params(rng, task=None):
        # IFEval: the first word is lowercased and compared with the paragraph's lowercased first word.
        num_paragraphs = rng.randint(2, 4)
        nth = rng.randint(1, num_paragraphs)
        place = "first" if nth == 1 else "last" if nth == num_paragraphs else "middle"
        return {"num_paragraphs": num_paragraphs, "nth_paragraph": nth,
                "first_word": rng.choice(PARAGRAPH_OPENERS[place])}

    @staticmethod
    def instruction(params):
        return (f"There should be exactly {params['num_paragraphs']} paragraphs, separated from each other by one "
                f'blank line and by nothing else. Paragraph {params["nth_paragraph"]} must start with the word '
                f'"{params["first_word"]}".')

    @staticmethod
    def check(response, params):
        # IFEval's ParagraphFirstWordCheck (arXiv 2311.07911), rule for rule: paragraphs are the pieces
        # between "\n\n" (not ***, unlike number_paragraphs), empty pieces do not count but the n-th is
        # still taken from the raw split, and the first word is the paragraph's first whitespace token,
        # stripped of leading quotes and cut at the first . , ? ! ' or ".
        paragraphs = re.split(r"\n\n", response)
        count = sum(1 for p in paragraphs if p.strip())
        nth = params["nth_paragraph"]
        if nth > count or not paragraphs[nth - 1].strip():
            return False
        first_word = paragraph_first_word(paragraphs[nth - 1])
        return count == params["num_paragraphs"] and first_word == params["first_word"].lower()

    @staticmethod
    def required_words(params):
        return {params["first_word"].lower()}


# --- detectable_format ----------------------------------------------------------------------------------

_BULLET = re.compile(r"^[ \t]*[*-][ \t]+\S", re.MULTILINE)
# Markdown emphasis *like this* or **like this** on one line, as IFEval's HighlightSectionChecker finds it.
_HIGHLIGHT = re.compile(r"\*\*[^\n*]+\*\*|\*[^\n*]+\*")
_SECTION = re.compile(r"^[ \t#*]*SECTION[ \t]*\d+", re.MULTILINE)
_TITLE = re.compile(r"<<([^\n]+?)>>")


@register
class BulletCount(Constraint):
    id = "detectable_format:number_bullet_lists"

    @staticmethod
    def sample_params(rng, task=None):
        return {"num_bullets": rng.randint(2, 5)}

    @staticmethod
    def instruction(params):
        return (f"Your answer must contain exactly {params['num_bullets']} bullet points. Use markdown bullet "
                'points such as "* This is a point." or "- This is a point."')

    @staticmethod
    def check(response, params):
        # A marker followed by a space: "*emphasis*" at the start of a line and "***" dividers are not
        # bullets (IFEval's r"^\s*\*[^\*]" counts "*emphasis*" as one).
        return len(_BULLET.findall(response)) == params["num_bullets"]


@register
class HighlightedSections(Constraint):
    id = "detectable_format:number_highlighted_sections"

    @staticmethod
    def sample_params(rng, task=None):
        return {"num_highlights": rng.randint(1, 3)}

    @staticmethod
    def instruction(params):
        sections = _noun(params["num_highlights"], "section")
        return f"Highlight at least {sections} in your answer with markdown, i.e. *highlighted section*."

    @staticmethod
    def check(response, params):
        # A bullet line "* a *b*" yields the match "* a *"; strip("*") of it is still text, so it counts,
        # which is what IFEval does too.
        highlights = [h for h in _HIGHLIGHT.findall(response) if h.strip("*").strip()]
        return len(highlights) >= params["num_highlights"]


@register
class MultipleSections(Constraint):
    id = "detectable_format:multiple_sections"
    fits_short_answer = False

    @staticmethod
    def sample_params(rng, task=None):
        return {"num_sections": rng.randint(2, 3)}

    @staticmethod
    def instruction(params):
        return (f"Your response must have exactly {params['num_sections']} sections. Mark the beginning of "
                "each section with SECTION X, such as: SECTION 1.")

    @staticmethod
    def check(response, params):
        # IFEval splits on the marker anywhere and asks for at least N; we ask for exactly N markers at the
        # start of a line (markdown "#" or "**" allowed), which is what the instruction says.
        return len(_SECTION.findall(response)) == params["num_sections"]


@register
class Title(Constraint):
    id = "detectable_format:title"

    @staticmethod
    def instruction(params):
        return "Your answer must contain a title, wrapped in double angular brackets, such as <<poem of joy>>."

    @staticmethod
    def check(response, params):
        return any(t.strip() for t in _TITLE.findall(response))


@register
class JsonFormat(Constraint):
    id = "detectable_format:json_format"

    @staticmethod
    def instruction(params):
        return "Entire output should be wrapped in JSON format. You can use markdown ticks such as ```."

    @staticmethod
    def check(response, params):
        try:
            value = json.loads(strip_json_fence(response))
        except ValueError:
            return False
        # IFEval accepts any JSON value; a bare number or string is not "wrapped in JSON" in any useful
        # sense and would let a model pass by answering "1", so we ask for an object or an array.
        return isinstance(value, (dict, list))


@register
class ConstrainedResponse(Constraint):
    id = "detectable_format:constrained_response"

    @staticmethod
    def applies_to(task):
        return bool((task or {}).get("yes_no"))  # only yes/no questions can be answered this way

    @staticmethod
    def instruction(params):
        return f"Answer with one of the following options: {_quoted(CONSTRAINED_OPTIONS)}."

    @staticmethod
    def check(response, params):
        return any(option in response for option in CONSTRAINED_OPTIONS)  # IFEval: a substring suffices


# --- startend -------------------------------------------------------------------------------------------

@register
class EndPhrase(Constraint):
    id = "startend:end_checker"

    @staticmethod
    def sample_params(rng, task=None):
        return {"end_phrase": rng.choice(END_PHRASES)}

    @staticmethod
    def instruction(params):
        return (f'Finish your response with this exact phrase "{params["end_phrase"]}". '
                "No other words should follow this phrase.")

    @staticmethod
    def check(response, params):
        # As IFEval: case-insensitive, and a closing quotation mark after the phrase is forgiven.
        return response.strip().strip('"').lower().endswith(params["end_phrase"].strip().lower())

    @staticmethod
    def required_words(params):
        return set(re.findall(r"[a-z']+", params["end_phrase"].lower()))


@register
class Quotation(Constraint):
    id = "startend:quotation"

    @staticmethod
    def instruction(params):
        return "Wrap your entire response with double quotation marks."

    @staticmethod
    def check(response, params):
        response = response.strip()
        return len(response) > 1 and response[0] == '"' and response[-1] == '"'


@register
class FirstWord(Constraint):
    # Not an IFEval id (IFEval only has the first word of the n-th paragraph); the simplest start check.
    id = "startend:first_word"

    @staticmethod
    def sample_params(rng, task=None):
        return {"first_word": rng.choice(START_WORDS)}

    @staticmethod
    def instruction(params):
        return f'Start your response with the word "{params["first_word"]}".'

    @staticmethod
    def check(response, params):
        # Leading quotes and markdown are not words; case is ignored (so lowercase answers can comply).
        first = re.match(r"[\s\"'*#>_]*([A-Za-z']+)", response)
        return bool(first) and first.group(1).lower() == params["first_word"].lower()

    @staticmethod
    def required_words(params):
        return {params["first_word"].lower()}


# --- punctuation ----------------------------------------------------------------------------------------

@register
class NoComma(Constraint):
    id = "punctuation:no_comma"

    @staticmethod
    def instruction(params):
        return "In your entire response, refrain from the use of any commas."

    @staticmethod
    def check(response, params):
        return "," not in response


# --- detectable_content ---------------------------------------------------------------------------------

@register
class Postscript(Constraint):
    id = "detectable_content:postscript"

    @staticmethod
    def instruction(params):
        return "At the end of your response, please explicitly add a postscript starting with P.S."

    @staticmethod
    def check(response, params):
        # IFEval matches "p.s." anywhere on a line, lowercased; we want it to start a line (that is what a
        # postscript is) and to say something.
        return bool(re.search(r"^[ \t*]*p\.\s?s\..*\w", response.lower(), re.MULTILINE))


@register
class Placeholders(Constraint):
    id = "detectable_content:number_placeholders"

    @staticmethod
    def sample_params(rng, task=None):
        return {"num_placeholders": rng.randint(1, 3)}

    @staticmethod
    def instruction(params):
        placeholders = _noun(params["num_placeholders"], "placeholder")
        return (f"The response must contain at least {placeholders} represented by square brackets, "
                "such as [address].")

    @staticmethod
    def check(response, params):
        return len(re.findall(r"\[[^\[\]\n]*\w[^\[\]\n]*\]", response)) >= params["num_placeholders"]


# --- combination ----------------------------------------------------------------------------------------

def _normalise_space(text: str) -> str:
    return " ".join(text.split()).lower()


@register
class RepeatPrompt(Constraint):
    id = "combination:repeat_prompt"
    fits_short_answer = False

    @staticmethod
    def applies_to(task):
        # Repeating a clinical note or a long request would eat the whole token budget.
        text = (task or {}).get("text", "")
        return bool(text) and "\n" not in text and count_words(text) <= 25

    @staticmethod
    def sample_params(rng, task=None):
        return {"prompt_to_repeat": (task or {}).get("text", "")}

    @staticmethod
    def instruction(params):
        return ("First repeat the request word for word without change, then give your answer. Do not say "
                "anything before repeating the request; the request to repeat is only the first paragraph "
                "of this message, not these instructions.")

    @staticmethod
    def check(response, params):
        # IFEval compares lowercased text; we also forgive differences in whitespace.
        return _normalise_space(response).startswith(_normalise_space(params["prompt_to_repeat"]))

    @staticmethod
    def required_words(params):
        return set(re.findall(r"[a-z']+", params["prompt_to_repeat"].lower()))


@register
class TwoResponses(Constraint):
    id = "combination:two_responses"
    fits_short_answer = False

    @staticmethod
    def instruction(params):
        return ("Give two different responses. Responses and only responses should be separated by 6 "
                "asterisk symbols: ******.")

    @staticmethod
    def check(response, params):
        # IFEval's rule: an empty piece is allowed only before the first or after the last separator.
        pieces = response.split("******")
        answers = []
        for index, piece in enumerate(pieces):
            if piece.strip():
                answers.append(piece.strip())
            elif 0 < index < len(pieces) - 1:
                return False
        return len(answers) == 2 and answers[0] != answers[1]


# --- language -------------------------------------------------------------------------------------------

@functools.lru_cache(maxsize=1)
def _language_factory():
    try:
        from langdetect.detector_factory import PROFILES_DIRECTORY, DetectorFactory
    except ImportError as error:  # a core dependency; only a hand-made environment lacks it
        raise ImportError("language:response_language is checked with langdetect, as IFEval does: "
                          "pip install langdetect") from error
    factory = DetectorFactory()
    factory.load_profile(PROFILES_DIRECTORY)
    # langdetect samples character n-grams at random, and IFEval leaves it unseeded, so the same text can
    # get two verdicts. Verdicts are cached by content (store.py): ours must be a function of the text.
    factory.set_seed(0)
    return factory


def detect_language(text: str) -> str | None:
    """The ISO 639-1 code langdetect gives the text (seeded: the same text, the same answer), or None when
    the text has no letters it can use."""
    from langdetect.lang_detect_exception import LangDetectException

    detector = _language_factory().create()
    detector.append(text)
    try:
        return detector.detect()
    except LangDetectException:
        return None


@register
class ResponseLanguage(Constraint):
    id = "language:response_language"
    # Not for ~64-token answers: SmolLM2's English byte-level BPE spends 11 tokens on "Drink water every day
    # and sleep well at night.", 18-21 on it in German or Spanish, 35-46 in Russian, Korean or Hindi and
    # 83-87 in Thai or Tamil, and 20 of IFEval's 29 other languages are written in such scripts.
    fits_short_answer = False

    @staticmethod
    def sample_params(rng, task=None):
        return {"language": rng.choice(sorted(LANGUAGES))}

    @staticmethod
    def instruction(params):
        return (f"Your whole response must be written in {LANGUAGES[params['language']]}; "
                "no other language is allowed.")

    @staticmethod
    def check(response, params):
        # IFEval's ResponseLanguageChecker: langdetect's verdict for the whole response. Unlike IFEval we
        # fail a text in which langdetect finds nothing to go on (digits, symbols): IFEval counts it as
        # followed, which a policy trained on the verdict could learn to exploit.
        return detect_language(response) == params["language"]


# --- which constraints may share a prompt ---------------------------------------------------------------

def _ids(*names: str) -> tuple[str, ...]:
    for name in names:
        if name not in CONSTRAINTS:
            raise KeyError(f"conflict table names unknown constraint {name!r}")
    return names


_FORMAT_HEAVY = ("detectable_format:title", "detectable_format:multiple_sections",
                 "detectable_format:number_bullet_lists", "length_constraints:number_paragraphs",
                 "detectable_content:postscript", "startend:quotation", "combination:two_responses",
                 "combination:repeat_prompt", "startend:end_checker", "startend:first_word")

# Each row: a constraint and the constraints it cannot share a prompt with (the relation is symmetric).
_CONFLICT_ROWS = {
    "change_case:english_lowercase": _ids(
        "change_case:english_capital", "change_case:capital_word_frequency",
        "detectable_format:multiple_sections",      # the marker is "SECTION"
        "detectable_format:constrained_response"),  # "My answer is ..." has a capital M
    "change_case:english_capital": _ids(
        "change_case:capital_word_frequency", "detectable_format:constrained_response",
        "detectable_format:json_format"),           # JSON's true/false/null are lowercase
    "detectable_format:json_format": _ids(
        *_FORMAT_HEAVY, "detectable_format:number_highlighted_sections",
        "detectable_format:constrained_response",
        "punctuation:no_comma"),                    # an object with two keys needs a comma
    # "Answer with one of the options" leaves no room for structure around the answer.
    "detectable_format:constrained_response": _ids(
        *_FORMAT_HEAVY, "detectable_format:number_highlighted_sections",
        "detectable_content:number_placeholders", "length_constraints:number_sentences",
        "change_case:capital_word_frequency"),
    "combination:two_responses": _ids(
        "combination:repeat_prompt", "detectable_format:multiple_sections", "startend:quotation",
        "detectable_format:number_bullet_lists", "length_constraints:number_paragraphs",
        "detectable_format:title", "startend:first_word", "startend:end_checker",
        "detectable_content:postscript", "length_constraints:number_sentences"),
    # The repeated request fixes the start of the answer and carries its own words, commas and length.
    "combination:repeat_prompt": _ids(
        "startend:first_word", "startend:quotation", "punctuation:no_comma", "keywords:forbidden_words",
        "keywords:frequency", "keywords:letter_frequency", "change_case:capital_word_frequency",
        "length_constraints:number_words", "length_constraints:number_sentences"),
    "length_constraints:number_paragraphs": _ids(
        "detectable_format:multiple_sections", "detectable_format:title", "detectable_content:postscript",
        "detectable_format:number_bullet_lists", "length_constraints:number_sentences"),
    "detectable_format:number_bullet_lists": _ids(
        "detectable_format:multiple_sections", "length_constraints:number_sentences",
        "startend:quotation"),                      # '"* first point' is no longer a bullet
    "detectable_format:multiple_sections": _ids(
        "startend:quotation",
        "change_case:capital_word_frequency"),      # every "SECTION" marker is a capital word
    "detectable_format:title": _ids("startend:first_word"),
    "startend:end_checker": _ids("detectable_content:postscript"),  # both claim the last line
    # Paragraphs split at blank lines only; a title line, bullets, section markers or a second response
    # would each move the paragraph count or the paragraph's start. (A P.S. and an end phrase can sit in
    # the last paragraph: IFEval combines them, and so may we.)
    "length_constraints:nth_paragraph_first_word": _ids(
        "length_constraints:number_paragraphs", "length_constraints:number_sentences",
        "detectable_format:multiple_sections", "detectable_format:number_bullet_lists", "detectable_format:title",
        "detectable_format:json_format", "detectable_format:constrained_response",
        "combination:two_responses", "combination:repeat_prompt"),
    # Instructions whose check reads English text: English case, English words or letters, an English first
    # word or end phrase, "My answer is ...", the English request repeated, and sentences split at . ! ?
    # (Hindi ends them with a danda, Japanese with 。).
    "language:response_language": _ids(
        "change_case:english_lowercase", "change_case:english_capital", "change_case:capital_word_frequency",
        "keywords:existence", "keywords:frequency", "keywords:letter_frequency", "startend:first_word",
        "startend:end_checker", "detectable_format:constrained_response", "combination:repeat_prompt",
        "length_constraints:nth_paragraph_first_word", "length_constraints:number_sentences"),
}


def _symmetric(rows: dict[str, tuple[str, ...]]) -> dict[str, frozenset[str]]:
    table: dict[str, set[str]] = {name: set() for name in CONSTRAINTS}
    for name, others in rows.items():
        _ids(name)
        for other in others:
            if other != name:
                table[name].add(other)
                table[other].add(name)
    return {name: frozenset(others) for name, others in table.items()}


CONFLICTS: dict[str, frozenset[str]] = _symmetric(_CONFLICT_ROWS)


def conflicts(a: str, b: str) -> bool:
    """True when constraints `a` and `b` must not share a prompt (an id never shares with itself)."""
    return a == b or b in CONFLICTS[a]


def short_answer_ids() -> list[str]:
    """Constraint ids a response of ~64 new tokens can satisfy."""
    return [name for name, cls in CONSTRAINTS.items() if cls.fits_short_answer]


def compatible(constraints: list[dict]) -> bool:
    """Whether a list of {"id", "params"} can be satisfied together: no conflicting pair of ids, and no
    parameter clash (a forbidden word that another constraint requires; a rare letter capped below the
    number of times required words already use it)."""
    ids = [c["id"] for c in constraints]
    if any(conflicts(a, b) for i, a in enumerate(ids) for b in ids[i + 1:]):
        return False
    required = set()
    for c in constraints:
        required |= CONSTRAINTS[c["id"]].required_words(c["params"])
    for c in constraints:
        params = c["params"]
        if c["id"] == "keywords:forbidden_words" and required & {w.lower() for w in params["forbidden_words"]}:
            return False
        if c["id"] == "keywords:letter_frequency" and params["relation"] == "less than":
            if sum(w.count(params["letter"]) for w in required) >= params["frequency"]:
                return False
    by_id = {c["id"]: c["params"] for c in constraints}
    nth = by_id.get("length_constraints:nth_paragraph_first_word")
    first = by_id.get("startend:first_word")
    if nth and first and nth["nth_paragraph"] == 1 and nth["first_word"].lower() != first["first_word"].lower():
        return False  # two different first words for the same paragraph
    language = by_id.get("language:response_language")
    if language and language["language"] in UNSPACED_LANGUAGES and "length_constraints:number_words" in by_id:
        return False  # a Japanese or Thai sentence is one IFEval "word"
    return True


# --- checking -------------------------------------------------------------------------------------------

def loose_variants(response: str) -> list[str]:
    """IFEval's loose mode (arXiv 2311.07911, section 2.2): the response, the response without its first
    line, without its last line, without both, and each of those with markdown asterisks removed. The
    first-line and last-line cuts forgive "Sure, here it is:" intros and "Hope this helps!" outros."""
    lines = response.split("\n")
    cut = [response, "\n".join(lines[1:]).strip(), "\n".join(lines[:-1]).strip(),
           "\n".join(lines[1:-1]).strip()]
    return cut + [text.replace("*", "") for text in cut]


def _lookup(constraint_id: str) -> type[Constraint]:
    try:
        return CONSTRAINTS[constraint_id]
    except KeyError:
        raise ValueError(f"unknown constraint id {constraint_id!r}; known: {sorted(CONSTRAINTS)}") from None


def check_constraint(response: str, constraint: dict, loose: bool = False) -> bool:
    """Check one {"id": ..., "params": {...}} against a response; `loose` passes if any loose variant does."""
    cls = _lookup(constraint["id"])
    params = constraint.get("params") or {}
    if not loose:
        return bool(response.strip()) and cls.check(response, params)
    return any(text.strip() and cls.check(text, params) for text in loose_variants(response))


def check_all(response: str, constraints: list[dict], loose: bool = False) -> list[bool]:
    return [check_constraint(response, c, loose=loose) for c in constraints]


def instruction_text(constraint: dict) -> str:
    """The instruction sentence; `params["phrasing"]` > 0 picks another wording (prompts/phrasings.py)."""
    params = constraint.get("params") or {}
    index = params.get("phrasing", 0)
    if index:
        from .phrasings import phrase

        return phrase(constraint["id"], params, index)
    return _lookup(constraint["id"]).instruction(params)
