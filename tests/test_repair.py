"""The mechanical repairs behind the @revise opponent: each repair makes its constraint pass, runaways are
cut back to a sentence, and over the whole pack almost every prompt becomes satisfiable."""

from __future__ import annotations

from collections import Counter

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
    {"id": "length_constraints:number_paragraphs", "params": {"num_paragraphs": 3}},
    {"id": "length_constraints:nth_paragraph_first_word",
     "params": {"num_paragraphs": 3, "nth_paragraph": 2, "first_word": "next"}},
    {"id": "length_constraints:nth_paragraph_first_word",
     "params": {"num_paragraphs": 4, "nth_paragraph": 4, "first_word": "finally"}},  # more paragraphs than sentences
    {"id": "detectable_format:multiple_sections", "params": {"num_sections": 2}},
    {"id": "detectable_format:constrained_response", "params": {}},
    {"id": "combination:two_responses", "params": {}},
    {"id": "combination:repeat_prompt", "params": {"prompt_to_repeat": "Give me a plan for healthy habits."}},
    {"id": "keywords:frequency", "params": {"keyword": "you", "relation": "less than", "frequency": 2}},
    {"id": "keywords:letter_frequency", "params": {"letter": "e", "relation": "at least", "frequency": 30}},
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


def test_capital_word_frequency_reaches_its_count_on_a_one_word_answer():
    constraint = {"id": "change_case:capital_word_frequency", "params": {"relation": "at least", "frequency": 4}}
    text, _ = repair_answer("Yes.", [constraint, {"id": "detectable_format:json_format", "params": {}}])
    assert check_constraint(text, constraint), text


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


def _repairable(constraints):
    return [c for c in constraints if c["id"] in REPAIRS]


def test_almost_every_pack_prompt_becomes_satisfiable():
    """Over 600 prompts of the short-answer pack, from three differently shaped drafts: every constraint
    with a repair passes (the response language has none)."""
    drafts = [(ANSWER, True), ("Yes. The heart pumps blood through the body, and it needs oxygen", False),
              ("1. Eat well\n2. Sleep\n3. Exercise daily, very important", True)]
    passed = total = 0
    for prompt in build_pack(600, seed=3, short_answers=True):
        constraints = prompt.meta["constraints"]
        for draft, stopped in drafts:
            text, _ = repair_answer(draft, constraints, stopped, prompt.messages[0]["content"].split("\n\n")[0])
            passed += all(check_all(text, _repairable(constraints)))
            total += 1
    assert passed / total > 0.97


# A plain draft of four sentences, as a model writes it, and the two case variants a model also produces.
PLAIN = ("Drinking enough water helps the body stay cool and keeps the mind clear. Most adults feel better when "
         "they sip water through the day, not only when they are thirsty. A bottle on the desk makes this easy to "
         "remember. Tea and fruit count too.")


def test_repairs_compose_over_the_whole_pack():
    """The full pack (every constraint id, long answers included; 1-3 constraints a prompt): for each prompt
    and each case variant of a plain draft, the repaired answer passes every constraint that has a repair.
    The residue (0-0.2 % of prompt x draft pairs, by seed) is combinations that pull against each other,
    "at least 12 l's" in "less than 30 words"; the failures are counted by id in the message."""
    failures, prompts_failed, total = Counter(), 0, 0
    for prompt in build_pack(1200, seed=11):
        constraints = _repairable(prompt.meta["constraints"])
        for draft in (PLAIN, PLAIN.lower(), PLAIN.upper()):
            text, _ = repair_answer(draft, prompt.meta["constraints"], True,
                                    prompt.messages[0]["content"].split("\n\n")[0])
            failed = [c["id"] for c in constraints if not check_constraint(text, c)]
            failures.update(failed)
            prompts_failed += bool(failed)
            total += 1
    assert {c["id"] for p in build_pack(1200, seed=11) for c in p.meta["constraints"]} == set(CONSTRAINTS)
    assert prompts_failed / total <= 0.01, dict(failures)


def test_nth_paragraph_repair_keeps_a_postscript_and_an_end_phrase_in_the_last_paragraph():
    constraints = [{"id": "length_constraints:nth_paragraph_first_word",
                    "params": {"num_paragraphs": 3, "nth_paragraph": 3, "first_word": "finally"}},
                   {"id": "detectable_content:postscript", "params": {}},
                   {"id": "startend:quotation", "params": {}}]
    text, _ = repair_answer(PLAIN, constraints)
    assert all(check_all(text, constraints)), text
    assert text.count("\n\n") == 2 and "\nP.S." in text


def test_two_responses_split_the_draft_and_keep_its_words():
    constraint = {"id": "combination:two_responses", "params": {}}
    text, _ = repair_answer(PLAIN, [constraint])
    first, second = text.split("\n******\n")
    assert first.startswith("Drinking") and second.endswith("count too.")
    assert sorted(text.replace("\n******\n", " ").split()) == sorted(PLAIN.split())
    one, _ = repair_answer("Yes.", [constraint])
    assert check_constraint(one, constraint), one


def test_every_repair_names_a_known_constraint_and_only_the_response_language_lacks_one():
    assert set(REPAIRS) <= set(CONSTRAINTS)
    assert set(CONSTRAINTS) - set(REPAIRS) == {"language:response_language"}
