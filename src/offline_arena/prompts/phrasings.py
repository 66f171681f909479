"""Other ways of saying each constraint's instruction.

A model fine-tuned on one wording per constraint can learn the wording instead of the instruction:
"refrain from the use of any commas" passes, "do not use a single comma" does not. With
`phrasings: N` in a recipe (prompts.phrasings) the pack draws each constraint's wording from its first N
phrasings: phrasing 0 is the constraint class's own `instruction` (IFEval's wording, where IFEval has
the constraint), 1.. are the ones below. Every phrasing names every parameter, so the check is the same.
The held-out split is drawn the same way; what transfers to wordings the pack never uses is measured
outside it (README, "What `make run` does").
"""

from __future__ import annotations

from .languages import LANGUAGES


def _q(words) -> str:
    return ", ".join(f'"{w}"' for w in words)


def _times(n: int) -> str:
    return "once" if n == 1 else "twice" if n == 2 else f"{n} times"


PHRASINGS = {
    "change_case:english_lowercase": (
        lambda p: "Write everything in lowercase; do not use any capital letters at all.",
        lambda p: "Use only small letters in your reply, with no uppercase characters anywhere.",
    ),
    "change_case:english_capital": (
        lambda p: "Write your whole answer in CAPITAL LETTERS only.",
        lambda p: "Every letter of your reply must be uppercase.",
    ),
    "change_case:capital_word_frequency": (
        lambda p: f"Use {p['relation']} {p['frequency']} words written entirely in capital letters.",
        lambda p: f"The number of fully capitalized words in your reply must be {p['relation']} {p['frequency']}.",
    ),
    "keywords:existence": (
        lambda p: f"Make sure your answer mentions {_q(p['keywords'])}.",
        lambda p: f"Your reply has to use the word{'s' if len(p['keywords']) > 1 else ''} {_q(p['keywords'])}.",
    ),
    "keywords:forbidden_words": (
        lambda p: f"Avoid the word{'s' if len(p['forbidden_words']) > 1 else ''} {_q(p['forbidden_words'])} entirely.",
        lambda p: f"Never use {_q(p['forbidden_words'])} anywhere in your answer.",
    ),
    "keywords:frequency": (
        lambda p: f'Use the word "{p["keyword"]}" {p["relation"]} {_times(p["frequency"])}.',
        lambda p: f'The word "{p["keyword"]}" must occur {p["relation"]} {p["frequency"]} times in your reply.',
    ),
    "keywords:letter_frequency": (
        lambda p: f'The letter "{p["letter"]}" must be used {p["relation"]} {p["frequency"]} times.',
        lambda p: f'Count the letter "{p["letter"]}": it should appear {p["relation"]} {p["frequency"]} times in your answer.',
    ),
    "length_constraints:number_words": (
        lambda p: f"Keep your answer to {p['relation']} {p['num_words']} words.",
        lambda p: f"Your reply must be {p['relation']} {p['num_words']} words long.",
    ),
    "length_constraints:number_sentences": (
        lambda p: f"Write {p['relation']} {p['num_sentences']} sentences.",
        lambda p: f"Use {p['relation']} {p['num_sentences']} sentences in total.",
    ),
    "length_constraints:number_paragraphs": (
        lambda p: f"Write exactly {p['num_paragraphs']} paragraphs, separated from each other by a blank line.",
    ),
    "length_constraints:nth_paragraph_first_word": (
        lambda p: (f"Your answer needs {p['num_paragraphs']} paragraphs with a single blank line between "
                   f'neighbouring ones, and paragraph {p["nth_paragraph"]} has to open with the word '
                   f'"{p["first_word"]}".'),
        lambda p: (f"Split your reply into exactly {p['num_paragraphs']} paragraphs separated by blank lines; the "
                   f'first word of paragraph number {p["nth_paragraph"]} must be "{p["first_word"]}".'),
    ),
    "detectable_format:number_bullet_lists": (
        lambda p: f"Format your answer as a markdown list of exactly {p['num_bullets']} bullet points, each starting with \"* \".",
        lambda p: f"Give exactly {p['num_bullets']} points, each on its own line beginning with \"- \".",
    ),
    "detectable_format:number_highlighted_sections": (
        lambda p: f"Emphasize at least {p['num_highlights']} part{'s' if p['num_highlights'] > 1 else ''} of your answer by wrapping it in single asterisks, like *this*.",
        lambda p: f"Mark at least {p['num_highlights']} phrase{'s' if p['num_highlights'] > 1 else ''} as highlighted with markdown *italics*.",
    ),
    "detectable_format:multiple_sections": (
        lambda p: f"Split your answer into exactly {p['num_sections']} parts, each starting with a line such as SECTION 1.",
    ),
    "detectable_format:title": (
        lambda p: "Start with a title inside double angle brackets, like <<my title>>.",
        lambda p: "Give your answer a title and put it between << and >>.",
    ),
    "detectable_format:json_format": (
        lambda p: "Reply with valid JSON only (a markdown ``` fence around it is fine).",
        lambda p: "Your whole output must be a JSON object.",
    ),
    "detectable_format:constrained_response": (
        lambda p: 'Reply with exactly one of these: "My answer is yes.", "My answer is no.", "My answer is maybe."',
    ),
    "startend:end_checker": (
        lambda p: f'End your answer with the exact words "{p["end_phrase"]}" and nothing after them.',
        lambda p: f'The very last thing you write must be "{p["end_phrase"]}".',
    ),
    "startend:quotation": (
        lambda p: "Put your whole answer inside double quotes.",
        lambda p: 'Begin and end your reply with a double quotation mark (").',
    ),
    "startend:first_word": (
        lambda p: f'The first word of your answer must be "{p["first_word"]}".',
        lambda p: f'Begin your reply with "{p["first_word"]}".',
    ),
    "punctuation:no_comma": (
        lambda p: "Do not use a single comma in your answer.",
        lambda p: "Write your reply without any commas.",
    ),
    "detectable_content:postscript": (
        lambda p: "Add a postscript at the very end that begins with P.S.",
        lambda p: "Finish with a P.S. note.",
    ),
    "detectable_content:number_placeholders": (
        lambda p: f"Include at least {p['num_placeholders']} placeholder{'s' if p['num_placeholders'] > 1 else ''} in square brackets, like [name].",
        lambda p: f"Leave at least {p['num_placeholders']} blank{'s' if p['num_placeholders'] > 1 else ''} to fill in, written in square brackets such as [date].",
    ),
    "language:response_language": (
        lambda p: f"Reply only in {LANGUAGES[p['language']]}, without a word of any other language.",
        lambda p: f"The entire answer has to be in the {LANGUAGES[p['language']]} language.",
    ),
}


def phrasing_count(constraint_id: str) -> int:
    """How many phrasings a constraint has, its own instruction included."""
    return 1 + len(PHRASINGS.get(constraint_id, ()))


def phrase(constraint_id: str, params: dict, index: int) -> str:
    """Phrasing `index` of a constraint (0: its own instruction, handled by the caller)."""
    return PHRASINGS[constraint_id][index - 1](params)
