"""The mechanical repairs behind the @revise opponent: each repair makes its constraint pass, runaways are
cut back to a sentence, and over the whole pack almost every prompt becomes satisfiable."""

from __future__ import annotations

import pytest

from offline_arena.prompts.constraints import CONSTRAINTS, check_all, check_constraint
from offline_arena.prompts.repair import REPAIRS, repair_answer, trim_to_sentence
from offline_arena.prompts.verifiable import build_pack

ANSWER = ("Sure, here is a plan. First, drink water every morning, and stretch for five minutes. Then walk to "
          "work if you can, since it is good for you. Finally, sleep early.")

CASES = [
    {"id": "change_case:english_lowercase", "params": {}},
    {"id": "change_case:english_capital", "params": {}},
    {"id": "change_case:capital_word_frequency", "params": {"relation": "at least", "frequency": 3}},
    {"id": "keywords:existence", "params": {"keywords": ["hydration", "sleep"]}},
    {"id": "keywords:forbidden_words", "params": {"forbidden_words": ["good", "first"]}},
    {"id": "keywords:frequency", "params": {"keyword": "water", "relation": "at least", "frequency": 3}},
    {"id": "keywords:letter_frequency", "params": {"letter": "k", "relation": "less than", "frequency": 2}},
    {"id": "length_constraints:number_words", "params": {"relation": "less than", "num_words": 12}},
    {"id": "length_constraints:number_words", "params": {"relation": "at least", "num_words": 60}},
    {"id": "length_constraints:number_sentences", "params": {"relation": "less than", "num_sentences": 3}},
    {"id": "detectable_format:number_bullet_lists", "params": {"num_bullets": 3}},
    {"id": "detectable_format:number_highlighted_sections", "params": {"num_highlights": 2}},
    {"id": "detectable_format:title", "params": {}},
    {"id": "detectable_format:json_format", "params": {}},
    {"id": "startend:end_checker", "params": {"end_phrase": "Any other questions?"}},
    {"id": "startend:quotation", "params": {}},
    {"id": "startend:first_word", "params": {"first_word": "Overall"}},
    {"id": "punctuation:no_comma", "params": {}},
    {"id": "detectable_content:postscript", "params": {}},
    {"id": "detectable_content:number_placeholders", "params": {"num_placeholders": 2}},
]


@pytest.mark.parametrize("constraint", CASES, ids=lambda c: f"{c['id']}:{c['params']}")
def test_each_repair_makes_its_constraint_pass(constraint):
    assert not check_constraint(ANSWER, constraint)  # the case is a real repair, not a no-op
    text, repaired = repair_answer(ANSWER, [constraint], task="Give me a plan for healthy habits.")
    assert check_constraint(text, constraint), text
    assert repaired == [constraint["id"]]


def test_an_answer_that_already_passes_is_left_alone():
    constraint = {"id": "startend:first_word", "params": {"first_word": "Sure"}}
    assert repair_answer(ANSWER, [constraint]) == (ANSWER, [])


def test_a_runaway_is_cut_back_to_its_last_sentence():
    assert trim_to_sentence("One idea. Another idea! And then the model went on and on wit") == "One idea. Another idea!"
    assert trim_to_sentence("no sentence ends here at all,") == "no sentence ends here at all."
    text, _ = repair_answer("Drink water. Sleep more and", [{"id": "punctuation:no_comma", "params": {}}], stopped=False)
    assert text == "Drink water."


def test_combined_repairs_do_not_undo_each_other():
    constraints = [{"id": "detectable_format:number_bullet_lists", "params": {"num_bullets": 3}},
                   {"id": "startend:first_word", "params": {"first_word": "Here"}},
                   {"id": "change_case:english_lowercase", "params": {}},
                   {"id": "startend:end_checker", "params": {"end_phrase": "I hope this helps."}}]
    text, _ = repair_answer(ANSWER, constraints)
    assert all(check_all(text, constraints)), text


def test_almost_every_pack_prompt_becomes_satisfiable():
    """Over 600 prompts of the short-answer pack, from three differently shaped drafts."""
    drafts = [(ANSWER, True), ("Yes. The heart pumps blood through the body, and it needs oxygen", False),
              ("1. Eat well\n2. Sleep\n3. Exercise daily, very important", True)]
    passed = total = 0
    for prompt in build_pack(600, seed=3, short_answers=True):
        constraints = prompt.meta["constraints"]
        for draft, stopped in drafts:
            text, _ = repair_answer(draft, constraints, stopped, prompt.messages[0]["content"].split("\n\n")[0])
            passed += all(check_all(text, constraints))
            total += 1
    assert passed / total > 0.93


def test_every_repair_names_a_known_constraint_and_only_two_responses_lacks_one():
    assert set(REPAIRS) <= set(CONSTRAINTS)
    assert set(CONSTRAINTS) - set(REPAIRS) == {"combination:two_responses"}
