"""The arena-hard suite: its data from the installed package, the reference's scoring worked by hand, style
control on constructed data, and the whole suite end to end with a scripted judge model (the code under
test is the suite: answers, both orders, labels to rows, scores)."""

from __future__ import annotations

import re

import numpy as np
import pytest

from offline_arena.evals import arena_hard
from offline_arena.records import Completion


def test_the_questions_and_baselines_come_from_the_installed_package():
    questions = arena_hard.load_questions()
    assert len(questions) == 750
    assert {q["category"] for q in questions} == {"hard_prompt", "creative_writing"}
    assert all(q["baseline"] == arena_hard.BASELINES[q["category"]] and q["baseline_answer"] for q in questions)
    first = arena_hard.load_questions(limit=20)
    assert len(first) == 20 and {q["category"] for q in first} == {"hard_prompt", "creative_writing"}
    assert [q["uid"] for q in arena_hard.load_questions(limit=10)] == [q["uid"] for q in first[:10]]


def test_labels_become_rows_as_the_reference_scores_them():
    # Model shown first: A>>B, a strong win, counts 3 times; baseline shown first: B>A, a win for the model.
    assert arena_hard.game_rows("A>>B", "B>A") == [1.0, 1.0, 1.0, 1.0]
    # A tie, then the baseline strongly better while shown first: 0.5, then 0 three times.
    assert arena_hard.game_rows("A=B", "A>>B") == [0.5, 0.0, 0.0, 0.0]
    assert arena_hard.game_rows("B>A", None) is None and arena_hard.game_rows("A", "A>B") is None


def test_the_score_is_the_mean_of_the_rows_with_a_90_percent_bootstrap_interval():
    rows = [1.0, 1.0, 0.0, 0.5] * 25
    result = arena_hard.score(rows, rounds=200, seed=0)
    assert abs(result["score"] - 62.5) < 1.5
    low, high = result["ci90"]
    assert low < 62.5 < high and high - low < 20
    assert arena_hard.score([1.0] * 10)["ci90"] == [100.0, 100.0]


def test_style_counts_and_features_by_hand():
    text = "# Title\n\n* one **bold**\n* two\n\n```\n# not a header\n```\nEnd."
    style = arena_hard.style_of(text)
    assert (style["header_count"], style["list_count"], style["bold_count"]) == (1, 2, 1)
    same = arena_hard.style_features(style, style)
    assert same == [0.0, 0.0, 0.0, 0.0]
    longer = arena_hard.style_features({**style, "token_len": 30}, {**style, "token_len": 10})
    assert longer[0] == pytest.approx(0.5)  # (30 - 10) / (30 + 10)


def test_style_control_matches_the_plain_score_when_style_explains_nothing():
    rng = np.random.default_rng(1)
    rows = list(rng.choice([0.0, 0.5, 1.0], size=300, p=[0.3, 0.1, 0.6]))
    features = rng.normal(size=(300, 4))
    plain = arena_hard.score(rows, rounds=50)["score"]
    controlled = arena_hard.style_controlled_score(rows, features, rounds=50)["score"]
    assert abs(controlled - plain) < 3
    # Without features the fit is exact: sigmoid(theta) is the mean label.
    assert arena_hard._fit_win_rate(np.asarray(rows), np.zeros((300, 0))) == pytest.approx(np.mean(rows), abs=1e-9)


class ShorterWins:
    """A judge *model* that prefers the shorter answer: [[A>B]] when A is shorter, else [[B>>A]]."""

    fingerprint = "scripted:shorter-wins"

    def render(self, messages):
        return str(messages)

    def generate(self, requests):
        outputs = []
        for r in requests:
            text = r.messages[-1]["content"]
            a, b = (re.search(rf"<<<ANSWER {x} BEGINS \w+>>>\n(.*?)\n<<<ANSWER {x} ENDS", text, re.DOTALL).group(1)
                    for x in "AB")
            outputs.append(Completion("[[A>B]]" if len(a) < len(b) else "[[B>>A]]", True, 4))
        return outputs


@pytest.mark.slow
@pytest.mark.ci
def test_the_suite_end_to_end_with_a_scripted_judge_model(tmp_path):
    from offline_arena.judges.llm_pairwise import PairwiseJudge
    from offline_arena.store import Store

    judge = PairwiseJudge(ShorterWins(), scale="arena-hard")
    with Store(tmp_path / "store.sqlite") as store:
        result = arena_hard.run("builtin:smollm2-135m-instruct", judge=judge, store=store, limit=4,
                                max_new_tokens=16, bootstrap_rounds=20, style_control=False)
    rows = []
    for item in result["items"]:
        answer, baseline = item["answer"], next(q for q in arena_hard.load_questions(4)
                                                if q["uid"] == item["uid"])["baseline_answer"]
        # Shown first, the model's (16-token) answer is shorter: A>B, one row of 1. Shown second it is
        # still the shorter one: B>>A, three rows of 1.
        shorter = len(answer) < len(baseline)
        assert item["verdicts"] == (["A>B", "B>>A"] if shorter else ["B>>A", "A>B"])
        rows += item["rows"]
    assert all(r == 1.0 for r in rows)
    assert sum(c["questions"] for c in result["categories"].values()) == 4
    assert "Arena-Hard arena-hard-v2.0" in arena_hard.format_result(result)
