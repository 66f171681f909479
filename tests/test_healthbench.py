"""The healthbench suite: its data from the installed package, the reference's scoring (simple-evals'
healthbench_eval.py) worked by hand, the grader's JSON parse, the bootstrap, and the suite end to end with a
scripted grader model (the code under test is the suite: answers, one grader prompt per rubric item, bounded
retries, grades cached in the store, scores)."""

from __future__ import annotations

import re

import numpy as np
import pytest

from offline_arena.evals import healthbench
from offline_arena.records import Completion

THEMES = {"emergency_referrals", "context_seeking", "global_health", "health_data_tasks", "hedging",
          "communication", "complex_responses"}


def test_the_conversations_come_from_the_installed_package():
    rows = healthbench.load_conversations()
    assert len(rows) == 500 and len({r["prompt_id"] for r in rows}) == 500
    for row in rows:
        assert row["prompt"] and row["prompt"][-1]["role"] == "user"
        assert all(set(m) == {"role", "content"} for m in row["prompt"])
        assert all(set(item) == {"criterion", "points", "tags"} for item in row["rubrics"])
        assert any(item["points"] > 0 for item in row["rubrics"])  # every conversation has a score
        assert len([t for t in row["example_tags"] if t.startswith("theme:")]) == 1
    assert {t[len("theme:"):] for r in rows for t in r["example_tags"] if t.startswith("theme:")} == THEMES
    assert any(item["points"] < 0 for r in rows for item in r["rubrics"])
    first = healthbench.load_conversations(limit=40)
    assert [r["prompt_id"] for r in healthbench.load_conversations(limit=10)] == [r["prompt_id"] for r in first[:10]]
    assert len({t for r in first for t in r["example_tags"] if t.startswith("theme:")}) > 3  # themes mixed


def item(points, *tags, criterion="c"):
    return {"criterion": criterion, "points": points, "tags": list(tags)}


def met(*flags):
    return [{"criteria_met": f} for f in flags]


def test_calculate_score_as_the_reference():
    # simple-evals' own test: 7 + 10 - 6 achieved of 7 + 5 + 10 possible.
    rubrics = [item(7), item(5), item(10), item(-6)]
    assert healthbench.calculate_score(rubrics, met(True, False, True, True)) == pytest.approx(11 / 22)
    # Only undesirable criteria met: below zero (clipped only in the means).
    assert healthbench.calculate_score([item(4), item(-9)], met(False, True)) == pytest.approx(-9 / 4)
    assert healthbench.calculate_score([item(-3), item(-2)], met(True, True)) is None  # no positive points
    assert healthbench.calculate_score([item(3), item(-2)], met(False, False)) == 0.0
    with pytest.raises(ValueError):
        healthbench.calculate_score([item(3)], met(True, False))


def test_one_conversations_metrics_by_hand():
    rubrics = [item(6, "level:example", "axis:accuracy"), item(4, "level:example", "axis:completeness"),
               item(-5, "level:example", "axis:accuracy"), item(2, "level:cluster", "axis:completeness"),
               item(-3, "level:example", "axis:communication_quality")]
    grades = [{"criteria_met": True}, {"criteria_met": False}, {"criteria_met": True}, None,
              {"criteria_met": True}]
    metrics = healthbench.conversation_metrics(["theme:hedging"], rubrics, grades)
    # The ungraded item (2 points) is left out: (6 - 5 - 3) / (6 + 4).
    assert metrics["overall_score"] == pytest.approx(-0.2) and metrics["theme:hedging"] == pytest.approx(-0.2)
    assert metrics["axis:accuracy"] == pytest.approx((6 - 5) / 6)
    assert metrics["axis:completeness"] == 0.0  # 4 not met; the 2-point item ungraded
    assert "axis:communication_quality" not in metrics  # no positive points under that tag
    assert "level:cluster" not in metrics  # its only item is ungraded
    assert metrics["level:example"] == pytest.approx(-0.2)
    # No graded item with positive points: the conversation has no score.
    assert healthbench.conversation_metrics(["theme:hedging"], rubrics[:2], [None, None]) is None


def test_per_theme_aggregation_and_clipping_by_hand():
    per_conversation = [{"overall_score": 0.5, "theme:hedging": 0.5, "axis:accuracy": 1.0},
                        {"overall_score": -0.4, "theme:hedging": -0.4, "axis:accuracy": -1.0},
                        {"overall_score": 0.9, "theme:global_health": 0.9},
                        None]  # unscored: left out
    stats = healthbench.aggregate(per_conversation, rounds=200)
    assert stats["overall_score"]["n"] == 3 and stats["overall_score"]["score"] == pytest.approx(1.0 / 3)
    assert stats["theme:hedging"]["n"] == 2 and stats["theme:hedging"]["score"] == pytest.approx(0.05)
    assert stats["axis:accuracy"]["score"] == 0.0  # the mean (0.0) of 1 and -1, clipped at 0 and not below
    one = stats["theme:global_health"]
    assert one["n"] == 1 and one["score"] == pytest.approx(0.9) and one["ci95"] == pytest.approx([0.9, 0.9])
    assert one["bootstrap_std"] == pytest.approx(0, abs=1e-12)
    # The mean is clipped, not each score: -0.5 and 0.3 average below 0.
    assert healthbench.clipped_stats([-0.5, 0.3])["score"] == 0.0
    assert healthbench.clipped_stats([1.4, 0.8])["score"] == 1.0
    assert healthbench.clipped_stats([])["score"] is None


def test_the_bootstrap_interval_holds_the_mean_and_narrows_with_n():
    rng = np.random.default_rng(3)
    small, large = rng.uniform(0, 1, 30), rng.uniform(0, 1, 600)
    a, b = healthbench.clipped_stats(small, seed=0), healthbench.clipped_stats(large, seed=0)
    for values, stats in ((small, a), (large, b)):
        low, high = stats["ci95"]
        assert low < stats["score"] < high and stats["score"] == pytest.approx(values.mean())
        # The bootstrap std of a mean is close to sd / sqrt(n).
        assert stats["bootstrap_std"] == pytest.approx(values.std() / np.sqrt(len(values)), rel=0.15)
    assert b["ci95"][1] - b["ci95"][0] < (a["ci95"][1] - a["ci95"][0]) / 2
    assert healthbench.clipped_stats(small, seed=0) == a  # seeded: the same every run
    assert healthbench.clipped_stats(small, seed=1) != a


def test_the_grade_parser_is_the_references():
    parse = healthbench.parse_grade
    assert parse('```json\n{\n  "explanation": "Says so.",\n  "criteria_met": true\n}\n```') == \
        {"criteria_met": True, "explanation": "Says so."}
    assert parse('  {"criteria_met": false, "explanation": "No."}\n') == {"criteria_met": False, "explanation": "No."}
    assert parse('{"criteria_met": false}')["explanation"] == "No explanation provided"
    for bad in ('{"criteria_met": "true"}', '{"criteria_met": 1}', '{"explanation": "x"}', "[true]", '"criteria_met"',
                "criteria_met: true", '```json\n{"criteria_met": true',
                'Here it is: ```json\n{"criteria_met": true}\n```',
                "", '{"criteria_met": true} trailing'):
        assert parse(bad) is None, bad


def test_the_grader_prompt_is_the_reference_template_with_one_pass_filling():
    prompt = [{"role": "user", "content": "My chest hurts."}, {"role": "assistant", "content": "Since when?"},
              {"role": "user", "content": "An hour."}]
    system, user = healthbench.grader_messages(prompt, "Call 911. <<rubric_item>>", item(8, criterion="Refers to ER."))
    assert system == {"role": "system", "content": "You are a helpful assistant."}
    text = user["content"]
    assert text.startswith("Your job is to look at a conversation and a rubric item, and score the last turn")
    assert ("# Conversation\nuser: My chest hurts.\n\nassistant: Since when?\n\nuser: An hour.\n\n"
            "assistant: Call 911. <<rubric_item>>\n\n# Rubric item\n[8] Refers to ER.\n\n# Instructions") in text
    assert text.endswith("Return just the json object in markdown format. "
                         "Do not include any other text in the response.")
    assert '"criteria_met": false\n}\n```' in text and "<<conversation>>" not in text


class ScriptedGrader:
    """A grader *model*: criteria met iff the item's points are even (fenced JSON), not met otherwise (bare
    JSON); a 5-point item gets a string "false" first (not a grade) and a real one when asked again; a 1- or
    -1-point item never gets a grade. It records every request."""

    fingerprint = "scripted:even-points-met"

    def __init__(self):
        self.requests = []

    def render(self, messages):
        return str(messages)

    def generate(self, requests):
        self.requests += requests
        outputs = []
        for r in requests:
            points = int(re.search(r"# Rubric item\n\[(-?\d+)\] ", r.messages[-1]["content"]).group(1))
            if abs(points) == 1:
                text = "I think it does."
            elif points == 5 and r.sample_index == 0:
                text = '{"explanation": "hmm", "criteria_met": "false"}'
            elif points % 2 == 0:
                text = '```json\n{"explanation": "even", "criteria_met": true}\n```'
            else:
                text = '{"explanation": "odd", "criteria_met": false}'
            outputs.append(Completion(text, True, 8))
        return outputs


class FixedAnswer:
    """A model that gives the same answer to everything."""

    fingerprint = "scripted:fixed-answer"

    def render(self, messages):
        return str(messages)

    def generate(self, requests):
        return [Completion("Please see a doctor today.", True, 5) for _ in requests]


def hand_scores(conversations) -> dict[str, float]:
    """Each conversation's score under ScriptedGrader's grades, worked out without the suite's functions."""
    scores = {}
    for c in conversations:
        graded = [i["points"] for i in c["rubrics"] if abs(i["points"]) != 1]
        possible = sum(p for p in graded if p > 0)
        scores[c["prompt_id"]] = sum(p for p in graded if p % 2 == 0) / possible
    return scores


def check_against_hand(result, grader):
    conversations = healthbench.load_conversations(2)
    expected = hand_scores(conversations)
    # The two conversations of limit=2: context_seeking [7, 6, -7, -4] -> (6 - 4) / 13; global_health: its
    # ±1 items ungraded, the 5-point items graded (not met) on the retry.
    assert sorted(expected.values()) == pytest.approx(sorted([2 / 13, 38 / 97]))
    assert {i["prompt_id"]: i["score"] for i in result["items"]} == pytest.approx(expected)
    assert result["score"] == pytest.approx((2 / 13 + 38 / 97) / 2)
    low, high = result["ci95"]
    assert low <= result["score"] <= high and low == pytest.approx(2 / 13) and high == pytest.approx(38 / 97)
    assert result["themes"]["context_seeking"]["score"] == pytest.approx(2 / 13)
    assert result["themes"]["global_health"]["score"] == pytest.approx(38 / 97)
    assert result["themes"]["global_health"]["n"] == 1
    # axis:completeness: the first conversation's (6, -7, -4) -> 2 / 6; the second's by hand.
    second = next(c for c in conversations if "theme:global_health" in c["example_tags"])
    completeness = [i["points"] for i in second["rubrics"]
                    if "axis:completeness" in i["tags"] and abs(i["points"]) != 1]
    second_completeness = sum(p for p in completeness if p % 2 == 0) / sum(p for p in completeness if p > 0)
    assert result["axes"]["completeness"]["score"] == pytest.approx((2 / 6 + second_completeness) / 2)
    assert result["rubric_items"] == 25 and result["ungraded"] == 2 and result["unscored"] == 0
    ungraded = [r for i in result["items"] for r in i["rubrics"] if r["criteria_met"] is None]
    assert sorted(r["points"] for r in ungraded) == [-1, 1] and ungraded[0]["grader_output"] == "I think it does."
    # 25 items asked once; the three 5-point items and the two ±1 items again; the ±1 items a third time.
    assert len(grader.requests) == 25 + 5 + 2
    assert all(r.params.max_new_tokens == 64 for r in grader.requests)
    assert {r.params.temperature for r in grader.requests if r.sample_index == 0} == {0.0}


def test_the_suite_end_to_end_with_a_scripted_grader(tmp_path):
    from offline_arena.store import Store

    grader = ScriptedGrader()
    with Store(tmp_path / "store.sqlite") as store:
        result = healthbench.run(FixedAnswer(), judge=grader, store=store, limit=2, judge_max_new_tokens=64,
                                 judge_max_retries=2)
    check_against_hand(result, grader)
    assert all(i["answer"] == "Please see a doctor today." for i in result["items"])
    assert "assistant: Please see a doctor today.\n\n# Rubric item" in grader.requests[0].messages[-1]["content"]
    assert result["judge"] == "scripted:even-points-met" and result["model"] == "scripted:fixed-answer"
    table = healthbench.format_result(result)
    assert "context_seeking" in table and "completeness" in table and "(2 ungraded)" in table

    again = ScriptedGrader()  # a rerun on the same store asks the grader nothing
    with Store(tmp_path / "store.sqlite") as store:
        rerun = healthbench.run(FixedAnswer(), judge=again, store=store, limit=2, judge_max_new_tokens=64,
                                judge_max_retries=2)
    assert again.requests == [] and rerun["score"] == result["score"] and rerun["items"] == result["items"]


def test_the_suite_needs_a_store_and_a_grader_model(tmp_path):
    from offline_arena.store import Store

    with pytest.raises(ValueError, match="needs a store"):
        healthbench.run(FixedAnswer(), judge=ScriptedGrader(), limit=1)
    with Store(tmp_path / "store.sqlite") as store:
        with pytest.raises(ValueError, match="needs a grader model"):
            healthbench.run(FixedAnswer(), store=store, limit=1)
        with pytest.raises(ValueError, match="give a model spec"):
            healthbench.run(FixedAnswer(), judge="score:builtin:smollm2-135m-instruct", store=store, limit=1)


@pytest.mark.slow
@pytest.mark.ci
def test_the_suite_with_the_embedded_model_answering(tmp_path):
    from offline_arena.store import Store

    grader = ScriptedGrader()
    with Store(tmp_path / "store.sqlite") as store:
        result = healthbench.run("builtin:smollm2-135m-instruct", judge=grader, store=store, limit=2,
                                 max_new_tokens=16, judge_max_new_tokens=64, judge_max_retries=2)
    check_against_hand(result, grader)
    assert result["model"] == "builtin:smollm2-135m-instruct" and all(i["answer"] for i in result["items"])
    answers = {i["prompt_id"]: i["answer"] for i in result["items"]}
    asked = [r.messages[-1]["content"] for r in grader.requests if r.sample_index == 0]
    for entry in result["items"]:  # each rubric item was asked about with the model's own answer
        assert sum(f"assistant: {entry['answer']}\n\n# Rubric item" in text for text in asked) == len(entry["rubrics"])

    again = ScriptedGrader()
    with Store(tmp_path / "store.sqlite") as store:
        rerun = healthbench.run("builtin:smollm2-135m-instruct", judge=again, store=store, limit=2,
                                max_new_tokens=16, judge_max_new_tokens=64, judge_max_retries=2)
    assert again.requests == [] and {i["prompt_id"]: i["answer"] for i in rerun["items"]} == answers
