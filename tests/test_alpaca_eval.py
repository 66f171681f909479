"""The alpaca-eval suite: its data from the installed package, preferences from both orders, the reference's
win rate worked by hand, the length-controlled GLM by hand, on constructed data and against the reference's
own fit (alpaca_eval 0.6.6, metrics/glm_winrate.py, written out below, run with scikit-learn where it is
installed), and the suite end to end with a scripted judge model: once with a scripted contestant (fast),
once with the embedded model (slow, ci)."""

from __future__ import annotations

import re
import warnings

import numpy as np
import pytest

from offline_arena.evals import alpaca_eval
from offline_arena.judges.llm_pairwise import ARENA_HARD, MT_BENCH
from offline_arena.records import Completion


def test_the_instructions_and_baseline_come_from_the_installed_package():
    items = alpaca_eval.load_instructions()
    assert len(items) == 805 and [i["index"] for i in items] == list(range(805))
    assert {i["baseline"] for i in items} == {"gpt4_1106_preview"}  # GPT-4 Turbo: the AlpacaEval 2.0 baseline
    assert all(i["instruction"] and i["baseline_answer"] for i in items)
    assert len({i["uid"] for i in items}) == 805
    counts = {name: sum(i["dataset"] == name for i in items) for name in {i["dataset"] for i in items}}
    assert counts == {"selfinstruct": 252, "oasst": 188, "koala": 156, "helpful_base": 129, "vicuna": 80}
    # The reference leaderboard's avg_length for gpt4_1106_preview is 2049.
    assert int(np.mean([len(i["baseline_answer"]) for i in items])) == 2049
    assert items[0]["instruction"].startswith("What are the names of some famous actors")


def test_limit_takes_the_references_max_instances_subset():
    first = alpaca_eval.load_instructions(limit=20)
    assert [i["index"] for i in alpaca_eval.load_instructions(limit=8)] == [i["index"] for i in first[:8]]
    # main.evaluate shuffles with pandas' sample(frac=1, random_state=123) before taking max_instances.
    pd = pytest.importorskip("pandas")
    expected = pd.Series(range(805)).sample(frac=1, random_state=123).index[:20].tolist()
    assert [i["index"] for i in first] == expected


def test_preferences_from_both_orders():
    labels = MT_BENCH.labels
    assert alpaca_eval.preference("A", "B", labels) == 1.0   # the model preferred in both orders
    assert alpaca_eval.preference("B", "A", labels) == 0.0   # the baseline preferred in both
    assert alpaca_eval.preference("A", "A", labels) == 0.5   # a split (position bias) is a draw
    assert alpaca_eval.preference("C", "C", labels) == 0.5
    assert alpaca_eval.preference("A", "C", labels) == 0.5
    assert alpaca_eval.preference(None, "B", labels) is None
    assert alpaca_eval.preference("A>>B", "B>A", ARENA_HARD.labels) == 1.0


def test_the_win_rate_is_the_references_by_hand():
    result = alpaca_eval.win_rate([1.0, 1.0, 0.0, 0.5, None])
    assert result["win_rate"] == pytest.approx(62.5)
    # sem: sqrt(((.375^2) * 2 + .625^2 + .125^2) / 3) / sqrt(4) = 0.2393568...
    assert result["standard_error"] == pytest.approx(100 * np.sqrt(0.6875 / 3) / 2)
    assert (result["n_wins"], result["n_wins_base"], result["n_draws"], result["n_total"]) == (2, 1, 1, 4)
    assert alpaca_eval.win_rate([None])["win_rate"] is None


def test_the_l1_fit_solves_liblinears_objective_by_hand():
    # One constant column: d/dw [|w| + C sum(log(1 + e^w) - p_i w)] = 0 gives sigmoid(w) = mean(p) - 1/(C n).
    p = np.array([1.0] * 14 + [0.0] * 6)  # mean 0.7, n = 20
    w = alpaca_eval.fit_l1_logistic(np.ones((20, 1)), p, C=1.0)
    assert alpaca_eval._logistic(w[0]) == pytest.approx(0.65, abs=1e-9)
    # With C = 0.01 the penalty wins: mean(p) - 1/(C n) = 0.7 - 5 < 0.5, so w = 0.
    assert alpaca_eval.fit_l1_logistic(np.ones((20, 1)), p, C=0.01)[0] == 0.0


def test_the_glm_design_by_hand():
    train, test, names = alpaca_eval.glm_design([10, 20, 30], [20, 20, 20])
    # baseline - model = [10, 0, -10], std (ddof 1) = 10
    assert train[:, 0] == pytest.approx(np.tanh([1.0, 0.0, -1.0]))
    assert train[:, 1].tolist() == [1.0, 1.0, 1.0] and test[:, 0].tolist() == [0.0, 0.0, 0.0]
    assert names == ["np.tanh(std_delta_len)", "not_gamed_baseline.astype(float)"]
    train, _, names = alpaca_eval.glm_design([10, 20, 30], [20, 20, 20], difficulty=[0.1, 0.2, 0.3])
    assert names[1] == "instruction_difficulty" and train[:, 1].tolist() == [0.1, 0.2, 0.3]
    same, _, _ = alpaca_eval.glm_design([5, 5], [7, 7])  # lengths that never differ: no length signal
    assert same[:, 0].tolist() == [0.0, 0.0]


def _constructed(n, longer_share, length_effect, bias, seed):
    """Baseline ~2000 characters; the model longer on `longer_share` of the instructions; its preference
    drawn from sigmoid(bias + length_effect * tanh(model - baseline over their std))."""
    rng = np.random.default_rng(seed)
    baseline = rng.integers(1500, 2500, n)
    longer = rng.random(n) < longer_share
    model = baseline + np.where(longer, 1, -1) * rng.integers(200, 1500, n)
    gap = (model - baseline) / np.std(model - baseline, ddof=1)
    prefs = rng.binomial(1, alpaca_eval._logistic(bias + length_effect * np.tanh(gap))).astype(float)
    return list(prefs), model, baseline


def test_lc_moves_towards_50_when_the_model_wins_only_by_being_longer():
    prefs, model, baseline = _constructed(805, longer_share=0.85, length_effect=3.0, bias=0.0, seed=1)
    raw = alpaca_eval.win_rate(prefs)["win_rate"]
    lc = alpaca_eval.length_controlled_win_rate(prefs, model, baseline, bootstrap_rounds=30)
    assert raw > 70  # 75.6 here
    assert abs(lc["lc_win_rate"] - 50) < 4 and lc["lc_ci90"][0] < 50 < lc["lc_ci90"][1]
    assert lc["glm"] == "length_controlled_minimal" and lc["glm_C"] in alpaca_eval.CS
    assert lc["glm_weights"]["np.tanh(std_delta_len)"] < -1  # longer model = negative baseline - model gap
    assert alpaca_eval.is_extreme_change(raw, lc["lc_win_rate"])


def test_lc_keeps_a_win_that_length_does_not_explain():
    prefs, model, baseline = _constructed(805, longer_share=0.5, length_effect=0.0, bias=1.2, seed=2)
    raw = alpaca_eval.win_rate(prefs)["win_rate"]
    lc = alpaca_eval.length_controlled_win_rate(prefs, model, baseline, bootstrap_rounds=0)
    assert raw > 70 and abs(lc["lc_win_rate"] - raw) < 3 and lc["lc_ci90"] is None


def test_lc_equals_the_win_rate_when_lengths_are_equal():
    prefs = [1.0] * 300 + [0.0] * 150 + [0.5] * 50 + [None] * 5
    lc = alpaca_eval.length_controlled_win_rate(prefs, [100] * 505, [100] * 505, bootstrap_rounds=0)
    # Only the constant column: sigmoid(w) = mean(p) - 1/(C n) at the chosen C.
    assert lc["lc_win_rate"] == pytest.approx(100 * (325 / 500 - 1 / (lc["glm_C"] * 500)), abs=1e-6)
    assert lc["lc_standard_error"] == pytest.approx(0.0)  # one prediction for every instruction
    few = alpaca_eval.length_controlled_win_rate([1.0, 0.0, None], [1, 2, 3], [3, 2, 1])
    assert few["lc_win_rate"] is None and "5 decided" in few["lc_note"]
    assert alpaca_eval.is_extreme_change(20, 9.9) and not alpaca_eval.is_extreme_change(20, 10.1)
    assert alpaca_eval.is_extreme_change(50, 62.6) and not alpaca_eval.is_extreme_change(50, 62.4)


# The reference's soft-label fit, from alpaca_eval 0.6.6 src/alpaca_eval/metrics/glm_winrate.py
# (fit_LogisticRegressionCV with is_ytrue_proba=True, n_splits=5, logloss, logloss_continuous), unchanged
# but for sklearn.set_config becoming a context manager below.
def _reference_logloss(y_true, y_pred, sample_weight=None):
    epsilon = 1e-15
    y_pred = np.clip(y_pred, epsilon, 1 - epsilon)
    all_logloss = y_true * np.log(y_pred) + (1 - y_true) * np.log(1 - y_pred)
    if sample_weight is not None:
        all_logloss = all_logloss * sample_weight
    return -np.mean(all_logloss)


def _reference_logloss_continuous(y_true, y_pred, true_prob, true_sample_weight=None):
    y_true = np.where(y_true == 1, true_prob, 1 - true_prob)
    return _reference_logloss(y_true, y_pred, sample_weight=true_sample_weight)


def _reference_fit(data, col_y_true, n_splits=5, sample_weight=None):
    import pandas as pd
    from sklearn.linear_model import LogisticRegressionCV
    from sklearn.metrics import make_scorer
    from sklearn.model_selection import GroupKFold

    dflt_kwargs = dict(random_state=123, dual=False, penalty="l1", solver="liblinear", n_jobs=None,
                       fit_intercept=False)
    data = data.reset_index(drop=True).reset_index(drop=False, names=["group"])
    data_1 = data.copy()
    data_1["y"] = 1
    data_0 = data.copy()
    data_0[col_y_true] = 1 - data_0[col_y_true]
    data_0["y"] = 0
    data_dup = pd.concat([data_1, data_0], axis=0).reset_index(drop=True)
    true_prob = data_dup[col_y_true]
    true_sample_weight = None
    sample_weight = true_prob
    cv = GroupKFold(n_splits=n_splits)
    scorer = make_scorer(_reference_logloss_continuous, response_method="predict_proba",
                         greater_is_better=False).set_score_request(true_sample_weight=True, true_prob=True)
    model = LogisticRegressionCV(cv=cv, scoring=scorer, **dflt_kwargs)
    fit_kwargs = dict(groups=data_dup["group"], true_sample_weight=true_sample_weight, true_prob=true_prob)
    model.set_fit_request(sample_weight=True)
    model.fit(X=data_dup.drop(columns=[col_y_true, "y", "group"]), y=data_dup["y"], sample_weight=sample_weight,
              **fit_kwargs)
    return model


@pytest.mark.parametrize("with_difficulty", [False, True])
def test_the_lc_win_rate_matches_the_references_own_fit(with_difficulty):
    sklearn = pytest.importorskip("sklearn")
    pd = pytest.importorskip("pandas")
    rng = np.random.default_rng(7)
    n = 400
    baseline = rng.integers(800, 3000, n)
    model = np.maximum(1, baseline + rng.normal(300, 900, n)).astype(int)
    difficulty = rng.normal(0, 1, n) if with_difficulty else None
    train, test, names = alpaca_eval.glm_design(model, baseline, difficulty)
    eta = -1.2 * train[:, 0] + (0.7 * difficulty if with_difficulty else 0) - 0.2
    prefs = rng.binomial(1, alpaca_eval._logistic(eta)).astype(float)
    prefs[rng.random(n) < 0.1] = 0.5
    frame = pd.DataFrame(train, columns=names)
    frame["preference"] = prefs
    with sklearn.config_context(enable_metadata_routing=True), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # sklearn 1.8+ deprecates penalty="l1", which the reference passes
        reference = _reference_fit(frame, "preference")
    expected = 100 * reference.predict_proba(pd.DataFrame(test, columns=names))[:, 1].mean()
    ours = alpaca_eval.length_controlled_win_rate(list(prefs), model, baseline, difficulty, bootstrap_rounds=0)
    assert ours["glm_C"] == pytest.approx(reference.C_[0])
    assert ours["lc_win_rate"] == pytest.approx(expected, abs=0.02)  # liblinear stops at tol 1e-4
    assert list(ours["glm_weights"].values()) == pytest.approx(list(reference.coef_[0]), abs=2e-3)
    assert ours["glm"] == ("length_controlled_noreg" if with_difficulty else "length_controlled_minimal")


class ShorterWins:
    """A judge *model* (MT-Bench verdicts) that prefers the shorter answer; it gives no verdict when an
    answer says UNDECIDED, nor when the two answers are the same."""

    fingerprint = "scripted:shorter-wins"

    def render(self, messages):
        return str(messages)

    def generate(self, requests):
        outputs = []
        for r in requests:
            text = r.messages[-1]["content"]
            a, b = (re.search(rf"<<<ANSWER {x} BEGINS \w+>>>\n(.*?)\n<<<ANSWER {x} ENDS", text, re.DOTALL).group(1)
                    for x in "AB")
            if a == b or "UNDECIDED" in a + b:
                outputs.append(Completion("I cannot decide.", True, 4))
            else:
                outputs.append(Completion("[[A]]" if len(a) < len(b) else "[[B]]", True, 4))
        return outputs


# What the scripted contestant does with each of the first 8 instructions of the limit order.
PLAN = ["short", "long", "same", "undecided", "short", "long", "short", "short"]


class ScriptedContestant:
    fingerprint = "scripted:contestant"

    def __init__(self, items):
        self.plan = {i["instruction"]: (kind, i["baseline_answer"]) for i, kind in zip(items, PLAN)}

    def render(self, messages):
        return str(messages)

    def generate(self, requests):
        outputs = []
        for r in requests:
            kind, baseline = self.plan[r.messages[-1]["content"]]
            text = {"short": "A short answer.", "long": baseline + " And more.", "same": baseline,
                    "undecided": "UNDECIDED"}[kind]
            outputs.append(Completion(text, True, 3))
        return outputs


def test_the_suite_end_to_end_with_a_scripted_contestant_and_judge_model(tmp_path, monkeypatch):
    from offline_arena import loading
    from offline_arena.judges.llm_pairwise import PairwiseJudge
    from offline_arena.models.cached import CachedGenerator
    from offline_arena.store import Store

    items = alpaca_eval.load_instructions(len(PLAN))
    monkeypatch.setattr(loading, "load_generator", lambda spec, store=None, **_: CachedGenerator(
        ScriptedContestant(items), store))
    judge = PairwiseJudge(ShorterWins(), scale="mt-bench", max_retries=0)
    difficulty = tmp_path / "instruction_difficulty.csv"
    difficulty.write_text("index,instruction_difficulty\n" + "".join(f"{i},{(i % 7) / 7 - 0.5}\n" for i in range(805)))
    with Store(tmp_path / "store.sqlite") as store:
        result = alpaca_eval.run("scripted", judge=judge, store=store, limit=len(PLAN), bootstrap_rounds=10)
        with_difficulty = alpaca_eval.run("scripted", judge=judge, store=store, limit=len(PLAN), bootstrap_rounds=0,
                                          instruction_difficulty=difficulty)
    by_kind = {kind: [] for kind in PLAN}
    for kind, row in zip(PLAN, result["items"]):
        by_kind[kind].append(row)
    # Model shown first and shorter: [[A]]; shown second and shorter: [[B]]; both prefer the model.
    assert all(r["verdicts"] == ["A", "B"] and r["preference"] == 1.0 for r in by_kind["short"])
    assert all(r["verdicts"] == ["B", "A"] and r["preference"] == 0.0 for r in by_kind["long"])
    # The same answer as the baseline's is a draw without a verdict (the reference's annotator's rule).
    assert by_kind["same"][0]["verdicts"] == [None, None] and by_kind["same"][0]["preference"] == 0.5
    assert by_kind["undecided"][0]["preference"] is None and result["undecided"] == 1
    assert result["instructions"] == 8 and result["n_total"] == 7
    assert result["win_rate"] == pytest.approx(100 * 4.5 / 7)
    assert (result["n_wins"], result["n_wins_base"], result["n_draws"]) == (4, 2, 1)
    assert result["lc_win_rate"] is not None and 0 <= result["lc_win_rate"] <= 100
    assert result["avg_length"] == int(np.mean([r["length"] for r in result["items"]]))
    assert with_difficulty["glm"] == "length_controlled_noreg"
    assert "instruction_difficulty" in with_difficulty["glm_weights"]
    assert with_difficulty["win_rate"] == result["win_rate"]  # the same battles, read back from the store
    text = alpaca_eval.format_result(result)
    assert "AlpacaEval 2.0" in text and "LC win rate" in text and "undecided: 1" in text


def test_the_suite_needs_a_pairwise_judge_and_a_store(tmp_path):
    with pytest.raises(ValueError, match="pairwise"):
        alpaca_eval._judge("score:builtin:smollm2-135m-instruct", None, 512, 2)
    with pytest.raises(ValueError, match="needs a judge"):
        alpaca_eval.run("builtin:smollm2-135m-instruct", store=object())
    with pytest.raises(ValueError, match="needs a store"):
        alpaca_eval.run("builtin:smollm2-135m-instruct", judge="pairwise:builtin:smollm2-135m-instruct")


@pytest.mark.slow
@pytest.mark.ci
def test_the_suite_end_to_end_with_a_scripted_judge_model(tmp_path):
    from offline_arena.judges.llm_pairwise import PairwiseJudge
    from offline_arena.store import Store

    judge = PairwiseJudge(ShorterWins(), scale="mt-bench")
    with Store(tmp_path / "store.sqlite") as store:
        result = alpaca_eval.run("builtin:smollm2-135m-instruct", judge=judge, store=store, limit=5,
                                 max_new_tokens=16, bootstrap_rounds=10)
    # The model's 16-token answers are shorter than GPT-4 Turbo's: preferred in both orders.
    for item in result["items"]:
        assert item["length"] < item["baseline_length"]
        assert item["verdicts"] == ["A", "B"] and item["preference"] == 1.0
    assert result["instructions"] == 5 and result["undecided"] == 0 and result["win_rate"] == 100.0
    assert result["lc_win_rate"] is not None
    assert "AlpacaEval 2.0" in alpaca_eval.format_result(result)
