"""Ratings: hand-worked cases first, then simulations with known strengths."""

from __future__ import annotations

import csv
import json
import math
import subprocess
import sys

import numpy as np
import pytest

from offline_arena.ratings import (
    FASTCHAT_0_2_36_L2,
    LEADERBOARD_L2,
    PairOutcomes,
    RatingsWarning,
    active_sampling_weight,
    battles_from_records,
    bootstrap_ratings,
    compute_bradley_terry,
    compute_bradley_terry_style,
    compute_online_elo,
    format_leaderboard,
    leaderboard,
    normalized_style_differences,
    pair_outcomes,
    unmet_pair_outcomes,
    write_leaderboard,
)

ELO_PER_NAT = 400 / math.log(10)  # rating points per unit of θ with the default scale and base


def battles(*triples: tuple[str, str, str, int]) -> tuple[list[str], list[str], list[str]]:
    """battles(("A", "B", "model_a", 3)) → three battles in which A beats B."""
    a, b, w = [], [], []
    for model_a, model_b, winner, count in triples:
        a += [model_a] * count
        b += [model_b] * count
        w += [winner] * count
    return a, b, w


def simulate(theta: np.ndarray, n: int, rng: np.random.Generator, style_gamma: float = 0.0, verbosity=None):
    """Battles with P(A wins) + ½ P(tie) = σ(θ_A − θ_B + γ·d), d the relative length difference.

    Ties happen with probability 0.3 · 4p(1 − p) and take half their mass from each side, so the expected
    score of A is exactly p and the half-win tie convention is unbiased for θ.
    """
    m = len(theta)
    names = np.array([f"m{i}" for i in range(m)])
    a = rng.integers(0, m, n)
    b = (a + rng.integers(1, m, n)) % m
    logit = theta[a] - theta[b]
    length_a = length_b = None
    if verbosity is not None:
        length_a = rng.poisson(verbosity[a]) + 1
        length_b = rng.poisson(verbosity[b]) + 1
        logit = logit + style_gamma * (length_a - length_b) / (length_a + length_b + 1)
    p = 1 / (1 + np.exp(-logit))
    p_tie = 0.3 * 4 * p * (1 - p)
    u = rng.random(n)
    winner = np.where(u < p - p_tie / 2, "model_a", np.where(u < p + p_tie / 2, "tie", "model_b"))
    return names[a], names[b], winner, length_a, length_b


def true_ratings(theta: np.ndarray) -> dict[str, float]:
    centred = theta - theta.mean()  # the estimators' centring: mean rating = init
    return {f"m{i}": 1000 + ELO_PER_NAT * t for i, t in enumerate(centred)}


# ----------------------------------------------------------------------------------------------------
# Bradley–Terry, by hand.
# ----------------------------------------------------------------------------------------------------


def test_three_wins_in_four_is_odds_of_three():
    # p̂ = 3/4 → strength ratio 3 → gap 400·log10(3); the mean stays at 1000.
    ratings = compute_bradley_terry(*battles(("A", "B", "model_a", 3), ("A", "B", "model_b", 1)))
    assert ratings["A"] - ratings["B"] == pytest.approx(400 * math.log10(3), abs=1e-5)
    assert ratings["A"] - ratings["B"] == pytest.approx(190.8485, abs=1e-4)
    assert (ratings["A"] + ratings["B"]) / 2 == pytest.approx(1000, abs=1e-5)
    assert list(ratings) == ["A", "B"]  # best first


def test_a_tie_is_half_a_win_for_each_side():
    # One win and two ties in three battles: score 2 of 3 → odds 2 → gap 400·log10(2).
    ratings = compute_bradley_terry(*battles(("A", "B", "model_a", 1), ("A", "B", "tie", 2)))
    assert ratings["A"] - ratings["B"] == pytest.approx(400 * math.log10(2), abs=1e-5)
    both_bad = compute_bradley_terry(*battles(("A", "B", "model_a", 1), ("A", "B", "tie (bothbad)", 2)))
    assert both_bad == pytest.approx(ratings)


def test_a_perfectly_fitting_chain_of_three():
    # A:B = 3:1, B:C = 3:1, A:C = 9:1 is exactly a BT table, so the MLE reproduces it.
    ratings = compute_bradley_terry(
        *battles(
            ("A", "B", "model_a", 3), ("A", "B", "model_b", 1),
            ("B", "C", "model_a", 3), ("B", "C", "model_b", 1),
            ("A", "C", "model_a", 9), ("A", "C", "model_b", 1),
        )
    )
    assert ratings["A"] - ratings["B"] == pytest.approx(400 * math.log10(3), abs=1e-5)
    assert ratings["B"] - ratings["C"] == pytest.approx(400 * math.log10(3), abs=1e-5)
    assert sum(ratings.values()) / 3 == pytest.approx(1000, abs=1e-5)


def test_fit_solves_the_likelihood_equations():
    # At the MLE each model's actual score equals its expected score: Σ_j S[i, j] = Σ_j G[i, j] · p_ij.
    rng = np.random.default_rng(0)
    a, b, w, *_ = simulate(np.array([0.0, 0.7, -0.5, 1.2, 0.1, -1.0]), 3000, rng)
    ratings = compute_bradley_terry(a, b, w)
    theta = {m: (r - 1000) / ELO_PER_NAT for m, r in ratings.items()}
    p_a = 1 / (1 + np.exp(-(np.array([theta[x] for x in a]) - np.array([theta[x] for x in b]))))
    score_a = np.select([w == "model_a", w == "tie"], [1.0, 0.5], 0.0)
    for model in ratings:
        as_a, as_b = a == model, b == model
        actual = score_a[as_a].sum() + (1 - score_a[as_b]).sum()
        expected = p_a[as_a].sum() + (1 - p_a[as_b]).sum()
        assert actual == pytest.approx(expected, abs=1e-6)


def test_scale_base_and_init_change_only_the_units():
    data = battles(("A", "B", "model_a", 3), ("A", "B", "model_b", 1))
    natural = compute_bradley_terry(*data, scale=1.0, base=math.e, init=0.0)
    assert natural["A"] - natural["B"] == pytest.approx(math.log(3), abs=1e-7)
    assert natural["A"] + natural["B"] == pytest.approx(0.0, abs=1e-7)


def test_anchor_pins_one_model_and_keeps_the_gaps():
    data = battles(("A", "B", "model_a", 3), ("A", "B", "model_b", 1))
    ratings = compute_bradley_terry(*data, anchor=("B", 1200))
    assert ratings["B"] == pytest.approx(1200)
    assert ratings["A"] == pytest.approx(1200 + 400 * math.log10(3), abs=1e-5)


def test_swapping_sides_and_reordering_changes_nothing():
    rng = np.random.default_rng(1)
    a, b, w, *_ = simulate(np.array([0.0, 0.5, -0.3, 1.0]), 400, rng)
    reference = compute_bradley_terry(a, b, w)
    flipped = {"model_a": "model_b", "model_b": "model_a", "tie": "tie"}
    swapped = compute_bradley_terry(b, a, [flipped[x] for x in w])
    order = rng.permutation(len(a))
    shuffled = compute_bradley_terry(a[order], b[order], w[order])
    for model in reference:
        assert swapped[model] == pytest.approx(reference[model], abs=1e-5)
        assert shuffled[model] == pytest.approx(reference[model], abs=1e-5)


def test_weights_act_like_repeated_battles():
    once = battles(("A", "B", "model_a", 1), ("A", "B", "model_b", 1), ("B", "C", "model_a", 1), ("C", "B", "tie", 1))
    weighted = compute_bradley_terry(*once, weights=[3, 1, 2, 1])
    repeated = compute_bradley_terry(
        *battles(("A", "B", "model_a", 3), ("A", "B", "model_b", 1), ("B", "C", "model_a", 2), ("C", "B", "tie", 1))
    )
    assert weighted == pytest.approx(repeated)


def test_fastchat_0_2_36_penalty_shrinks_towards_init():
    data = battles(("A", "B", "model_a", 3), ("A", "B", "model_b", 1))
    mle = compute_bradley_terry(*data)
    shrunk = compute_bradley_terry(*data, l2=FASTCHAT_0_2_36_L2)
    assert 0 < shrunk["A"] - shrunk["B"] < mle["A"] - mle["B"]
    # Stationarity of 2·NLL + ‖θ‖²/(2 ln²10) for two models: 2·(3 − 4p) = θ_A / ln²10 ... with θ_B = −θ_A.
    theta_a = (shrunk["A"] - 1000) / ELO_PER_NAT
    p = 1 / (1 + math.exp(-2 * theta_a))
    assert 2 * (3 - 4 * p) == pytest.approx(2 * FASTCHAT_0_2_36_L2 * theta_a, abs=1e-5)


def test_disconnected_groups_warn_and_are_centred_separately():
    data = battles(("A", "B", "model_a", 3), ("A", "B", "model_b", 1), ("C", "D", "model_a", 1), ("C", "D", "model_b", 1))
    with pytest.warns(RatingsWarning, match="2 groups"):
        ratings = compute_bradley_terry(*data)
    assert ratings["A"] - ratings["B"] == pytest.approx(400 * math.log10(3), abs=1e-5)
    assert ratings["A"] + ratings["B"] == pytest.approx(2000, abs=1e-5)
    assert ratings["C"] == pytest.approx(1000, abs=1e-6) and ratings["D"] == pytest.approx(1000, abs=1e-6)


def test_an_unbeaten_model_warns_but_stays_finite():
    data = battles(("A", "B", "model_a", 5), ("B", "C", "model_a", 2), ("B", "C", "model_b", 2))
    with pytest.warns(RatingsWarning, match="never lost"):
        ratings = compute_bradley_terry(*data)
    assert all(math.isfinite(r) for r in ratings.values())
    # A's MLE is infinitely far up; B and C (2 wins each against each other) stay level.
    assert ratings["A"] > ratings["B"] + 1000
    assert ratings["B"] == pytest.approx(ratings["C"], abs=0.01)


# ----------------------------------------------------------------------------------------------------
# Online Elo, by hand.
# ----------------------------------------------------------------------------------------------------


def test_online_elo_one_battle_moves_k_over_two():
    assert compute_online_elo(["A"], ["B"], ["model_a"]) == {"A": 1002.0, "B": 998.0}
    assert compute_online_elo(["A"], ["B"], ["tie"]) == {"A": 1000.0, "B": 1000.0}
    assert compute_online_elo(["A"], ["B"], ["model_b"], k=32) == {"B": 1016.0, "A": 984.0}


def test_online_elo_second_battle_by_hand_and_order_matters():
    ratings = compute_online_elo(["A", "A"], ["B", "B"], ["model_a", "model_b"])
    expected_b = 1 / (1 + 10 ** ((1002 - 998) / 400))  # B's expected score after losing once
    assert ratings["B"] == pytest.approx(998 + 4 * (1 - expected_b), abs=1e-12)
    assert ratings["A"] == pytest.approx(1002 - 4 * (1 - expected_b), abs=1e-12)
    reversed_order = compute_online_elo(["A", "A"], ["B", "B"], ["model_b", "model_a"])
    assert reversed_order["A"] > 1000 > ratings["A"] - 0.03  # last result weighs more: A ends higher


# ----------------------------------------------------------------------------------------------------
# Bootstrap.
# ----------------------------------------------------------------------------------------------------


def test_bootstrap_is_reproducible_and_brackets_the_estimate():
    rng = np.random.default_rng(2)
    a, b, w, *_ = simulate(np.array([0.0, 0.4, -0.4]), 600, rng)
    point = compute_bradley_terry(a, b, w)
    first = bootstrap_ratings(a, b, w, rounds=200, seed=7)
    assert first == bootstrap_ratings(a, b, w, rounds=200, seed=7)
    assert first != bootstrap_ratings(a, b, w, rounds=200, seed=8)
    for model, summary in first.items():
        assert summary["lower"] < point[model] < summary["upper"]
        assert summary["median"] == pytest.approx(point[model], abs=0.25 * (summary["upper"] - summary["lower"]))


def test_resampling_cells_matches_resampling_battles():
    # The multinomial draw over (model_a, model_b, outcome) cells is the classic battle bootstrap in
    # disguise: compare interval widths with a naive loop that resamples battles and refits each time.
    rng = np.random.default_rng(5)
    a, b, w, *_ = simulate(np.array([0.0, 0.5, -0.5, 1.0]), 800, rng)
    fast = bootstrap_ratings(a, b, w, rounds=400, seed=0)
    naive_rng = np.random.default_rng(1)
    naive = []
    for _ in range(400):
        idx = naive_rng.integers(0, len(a), len(a))
        fitted = compute_bradley_terry(a[idx], b[idx], w[idx])
        naive.append([fitted[m] for m in sorted(fitted)])
    lower, upper = np.quantile(np.array(naive), [0.025, 0.975], axis=0)
    for model, naive_width in zip(sorted(fast), upper - lower):
        assert fast[model]["upper"] - fast[model]["lower"] == pytest.approx(naive_width, rel=0.2)


def test_bootstrap_anchor_and_elo_method():
    data = battles(("A", "B", "model_a", 30), ("A", "B", "model_b", 10), ("B", "C", "tie", 20), ("C", "A", "model_b", 5))
    anchored = bootstrap_ratings(*data, rounds=50, anchor=("C", 1100))
    assert anchored["C"]["lower"] == anchored["C"]["upper"] == pytest.approx(1100)
    elo = bootstrap_ratings(*data, rounds=50, method="elo")
    assert set(elo) == {"A", "B", "C"}
    assert elo["A"]["median"] > elo["B"]["median"]


def test_bootstrap_interval_covers_the_truth_at_about_95_percent():
    # 100 simulated data sets × 5 models: the 95% percentile intervals should cover the true (centred)
    # rating about 95% of the time. 500 intervals give a standard error of about 1 percentage point;
    # the band also fails intervals that are much too wide (coverage near 1). Takes about a second.
    rng = np.random.default_rng(12345)
    theta = np.array([-0.8, -0.2, 0.0, 0.3, 0.9])
    truth = true_ratings(theta)
    covered = total = 0
    for dataset in range(100):
        a, b, w, *_ = simulate(theta, 1500, rng)
        intervals = bootstrap_ratings(a, b, w, rounds=200, seed=dataset)
        for model, summary in intervals.items():
            covered += summary["lower"] <= truth[model] <= summary["upper"]
            total += 1
    assert 0.90 <= covered / total <= 0.99, f"coverage {covered}/{total}"


# ----------------------------------------------------------------------------------------------------
# Style control.
# ----------------------------------------------------------------------------------------------------


def test_normalized_style_differences_follow_lmarena():
    z = normalized_style_differences([10, 0, 30], [30, 0, 10])
    d = np.array([-20 / 41, 0.0, 20 / 41])
    assert z[:, 0] == pytest.approx((d - d.mean()) / d.std())
    assert normalized_style_differences(np.ones((3, 2)), np.ones((3, 2)) * [[1, 2], [2, 1], [3, 3]]).shape == (3, 2)


def test_style_control_removes_the_verbosity_bonus():
    # Longer answers win more often whoever wrote them; the weakest model is also the wordiest.
    rng = np.random.default_rng(3)
    theta = np.array([0.6, 0.3, 0.0, -0.3, -0.6])
    verbosity = np.array([100.0, 150.0, 200.0, 300.0, 900.0])
    a, b, w, length_a, length_b = simulate(theta, 20_000, rng, style_gamma=2.0, verbosity=verbosity)
    truth = true_ratings(theta)

    plain = compute_bradley_terry(a, b, w)
    fit = compute_bradley_terry_style(a, b, w, length_a, length_b)

    assert len(fit.style_coefficients) == 1 and fit.style_coefficients[0] > 0
    # γ̂ is per standard deviation of the relative difference: it should be about γ · std(d).
    d = (length_a - length_b) / (length_a + length_b + 1)
    assert fit.style_coefficients[0] == pytest.approx(2.0 * d.std(), rel=0.2)
    # Verbosity is nearly collinear with identity here, so style-controlled ratings are noisier (±15)
    # but unbiased, while plain ratings are off by well over 100 points.
    plain_error = max(abs(plain[m] - truth[m]) for m in truth)
    style_error = max(abs(fit.ratings[m] - truth[m]) for m in truth)
    assert plain_error > 100
    assert style_error < 0.25 * plain_error
    assert plain["m4"] > truth["m4"] + 100  # the wordy model is overrated without style control
    assert sum(fit.ratings.values()) / len(truth) == pytest.approx(1000, abs=1e-6)


# ----------------------------------------------------------------------------------------------------
# Leaderboard.
# ----------------------------------------------------------------------------------------------------


def test_leaderboard_rows_counts_files_and_text(tmp_path):
    data = battles(("A", "B", "model_a", 30), ("A", "B", "model_b", 10), ("B", "C", "tie", 20), ("C", "A", "model_b", 5))
    rows = leaderboard(*data, rounds=50)
    assert [row["model"] for row in rows] == ["A", "B", "C"]
    assert [row["rank"] for row in rows][0] == 1
    by_model = {row["model"]: row for row in rows}
    assert (by_model["A"]["wins"], by_model["A"]["ties"], by_model["A"]["losses"]) == (35, 0, 10)
    assert (by_model["C"]["wins"], by_model["C"]["ties"], by_model["C"]["losses"]) == (0, 20, 5)
    assert by_model["B"]["battles"] == 60
    assert sum(r["wins"] for r in rows) == sum(r["losses"] for r in rows)
    point = compute_bradley_terry(*data, l2=LEADERBOARD_L2)
    for row in rows:
        assert row["rating"] == pytest.approx(point[row["model"]])
        assert row["lower"] <= row["rating"] <= row["upper"]

    csv_path, json_path = write_leaderboard(rows, tmp_path / "out")
    assert json.loads(json_path.read_text()) == rows
    with csv_path.open() as handle:
        table = list(csv.DictReader(handle))
    assert [r["model"] for r in table] == ["A", "B", "C"]
    assert float(table[0]["rating"]) == pytest.approx(rows[0]["rating"], abs=0.01)

    text = format_leaderboard(rows)
    lines = text.splitlines()
    assert lines[0].split() == ["rank", "model", "rating", "95%", "CI", "battles", "wins", "ties", "losses"]
    assert len(lines) == 2 + len(rows)
    assert len({line.index(model) for line, model in zip(lines[2:], "ABC")}) == 1  # the model column lines up


def test_leaderboard_with_style_control():
    rng = np.random.default_rng(4)
    verbosity = np.array([50.0, 80.0, 300.0])
    a, b, w, length_a, length_b = simulate(np.array([0.5, 0.0, -0.5]), 1500, rng, style_gamma=1.0, verbosity=verbosity)
    rows = leaderboard(a, b, w, rounds=20, style=(length_a, length_b))
    fit = compute_bradley_terry_style(a, b, w, length_a, length_b, l2=LEADERBOARD_L2)
    assert [row["model"] for row in rows] == list(fit.ratings)
    for row in rows:
        assert row["rating"] == pytest.approx(fit.ratings[row["model"]])
        assert row["lower"] < row["upper"]


# ----------------------------------------------------------------------------------------------------
# Input handling and errors.
# ----------------------------------------------------------------------------------------------------


def test_battles_from_records_accepts_dicts_and_tuples():
    records = [{"model_a": "A", "model_b": "B", "winner": "model_a", "judge": "x"}, ("B", "A", "tie")]
    assert battles_from_records(records) == (["A", "B"], ["B", "A"], ["model_a", "tie"])
    with pytest.raises(ValueError, match="record 0 lacks winner"):
        battles_from_records([{"model_a": "A", "model_b": "B"}])
    with pytest.raises(ValueError, match="record 1 is neither"):
        battles_from_records([("A", "B", "tie"), ("A", "B")])


def test_clear_errors_for_bad_input():
    with pytest.raises(ValueError, match="equal lengths, got 2, 1 and 2"):
        compute_bradley_terry(["A", "B"], ["B"], ["model_a", "tie"])
    with pytest.raises(ValueError, match=r"battle 2: winner 'draw' is not one of"):
        compute_bradley_terry(["A"] * 3, ["B"] * 3, ["model_a", "tie", "draw"])
    with pytest.raises(ValueError, match=r"battle 0: winner None"):
        compute_online_elo(["A"], ["B"], [None])
    with pytest.raises(ValueError, match="no battles"):
        bootstrap_ratings([], [], [])
    with pytest.raises(ValueError, match="battle 1: model_a and model_b are both 'A'"):
        compute_bradley_terry(["A", "A"], ["B", "A"], ["model_a", "tie"])
    with pytest.raises(ValueError, match="anchor model 'Z'"):
        compute_bradley_terry(["A"], ["B"], ["tie"], anchor=("Z", 1000))
    with pytest.raises(ValueError, match="method must be"):
        bootstrap_ratings(["A"], ["B"], ["tie"], method="glicko")
    with pytest.raises(ValueError, match="battle 1: weight -1"):
        compute_bradley_terry(["A", "A"], ["B", "B"], ["tie", "tie"], weights=[1, -1])
    with pytest.raises(ValueError, match="style features have 2 rows but there are 3 battles"):
        compute_bradley_terry_style(["A"] * 3, ["B"] * 3, ["tie"] * 3, [1, 2], [2, 1])
    with pytest.raises(ValueError, match="same normalised difference"):
        compute_bradley_terry_style(["A"] * 3, ["B"] * 3, ["tie"] * 3, [1, 1, 1], [1, 1, 1])


def test_module_imports_neither_pandas_nor_sklearn():
    code = "import sys, offline_arena.ratings; print(sorted({'pandas', 'sklearn', 'scipy'} & set(sys.modules)))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


def test_a_model_that_never_wins_gets_a_finite_fastchat_like_rating():
    """Issue 10: with the near-zero L2 a 0-wins-in-48 checkpoint landed thousands of points away."""
    data = battles(("ref", "zero", "model_a", 48), ("ref", "mid", "model_a", 24), ("ref", "mid", "model_b", 24))
    rows = {r["model"]: r for r in leaderboard(*data, rounds=50, anchor=("ref", 1000.0))}
    assert rows["ref"]["rating"] == pytest.approx(1000.0)
    assert 0 < rows["zero"]["rating"] < rows["mid"]["rating"] - 500  # far below, but not thousands away
    assert all(math.isfinite(rows["zero"][key]) for key in ("rating", "lower", "upper"))
    assert rows["zero"]["upper"] - rows["zero"]["lower"] < 200
    with pytest.warns(RatingsWarning):
        unregularised = compute_bradley_terry(*data, anchor=("ref", 1000.0))
    assert unregularised["zero"] < -2000  # what the near-zero penalty gave: 3400 points below the reference


@pytest.mark.parametrize("opponents_of_new", [("ref",), ("ref", "a", "b")])
def test_anchored_ratings_stay_put_when_a_fourth_model_joins(opponents_of_new):
    """Issue 10: ratings anchored to a fixed reference (the first opponent) do not all shift when a new
    checkpoint's battles arrive, whether it meets the reference only or every model."""
    rng = np.random.default_rng(3)
    strength = {"ref": 0.0, "a": -0.5, "b": 0.4, "new": 1.0}

    def simulate(pairs, n=120):
        rows = []
        for x, y in pairs:
            p = 1 / (1 + math.exp(strength[y] - strength[x]))
            rows += [(x, y, "model_a" if rng.random() < p else "model_b", 1) for _ in range(n)]
        return battles(*rows)

    three = simulate([("a", "ref"), ("b", "ref"), ("a", "b")])
    extra = simulate([("new", opponent) for opponent in opponents_of_new])
    before = {r["model"]: r for r in leaderboard(*three, rounds=100, anchor=("ref", 1000.0))}
    after = {r["model"]: r for r in leaderboard(*(list(x) + list(y) for x, y in zip(three, extra)), rounds=100,
                                                anchor=("ref", 1000.0))}
    for model in ("ref", "a", "b"):
        assert before[model]["lower"] <= after[model]["rating"] <= before[model]["upper"]
    assert after["ref"]["rating"] == pytest.approx(1000.0)


def test_leaderboard_cli_rates_a_fastchat_battle_log(tmp_path, capsys):
    """Issue 10: `arena leaderboard --battles FILE` rates arena data we did not make, with our CIs."""
    from offline_arena.cli import main

    records = ([{"model_a": "gpt", "model_b": "llama", "winner": "model_a", "judge": "x"}] * 30
               + [{"model_a": "llama", "model_b": "gpt", "winner": "model_a"}] * 10
               + [{"model_a": "llama", "model_b": "mistral", "winner": "tie (bothbad)"}] * 5)
    log = tmp_path / "clean_battle.json"
    log.write_text(json.dumps(records))
    assert main(["leaderboard", "--battles", str(log), "--anchor", "llama", "--rounds", "20"]) == 0
    rows = {r["model"]: r for r in json.loads((tmp_path / "leaderboard.json").read_text())}
    assert rows["llama"]["rating"] == pytest.approx(1000.0) and rows["gpt"]["rating"] > 1100
    assert (rows["gpt"]["wins"], rows["gpt"]["losses"]) == (30, 10)
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"model_a": "a", "model_b": "b", "winner": "tie"}\n{oops\n')
    capsys.readouterr()
    assert main(["leaderboard", "--battles", str(bad)]) == 2
    assert "bad.jsonl:2: not valid JSON" in capsys.readouterr().err


# ----------------------------------------------------------------------------------------------------
# Active sampling: Chatbot Arena's rule (Chiang et al. 2024, sec. 5).
# ----------------------------------------------------------------------------------------------------


def test_pair_outcomes_by_hand():
    # A beats B three times (once seated as model_b), B beats A once; A and C tie three times.
    data = battles(("A", "B", "model_a", 2), ("B", "A", "model_b", 1), ("A", "B", "model_b", 1), ("C", "A", "tie", 3))
    outcomes = pair_outcomes(*data, prior_battles=1.0)
    assert set(outcomes) == {("A", "B"), ("A", "C")}
    # Scores of A: 1, 1, 1, 0 → mean 3/4, variance 3/16; one pseudo-battle of 1/4: (4 · 3/16 + 1/4) / 5 = 1/5.
    assert outcomes[("A", "B")] == PairOutcomes(4, pytest.approx(0.2))
    assert outcomes[("A", "C")] == PairOutcomes(3, pytest.approx(0.25 / 4))  # ties vary not at all: prior only
    assert unmet_pair_outcomes(1.0) == PairOutcomes(0, 0.25)
    assert pair_outcomes([], [], []) == {}
    with pytest.raises(ValueError, match="prior_battles must be positive"):
        pair_outcomes(*data, prior_battles=0.0)


def test_active_sampling_weight_is_the_fall_in_the_standard_error():
    # sqrt(Σ̂ / n) − sqrt(Σ̂ / (n + 1)) with n = 3 battles + 1 pseudo-battle, Σ̂ = 1/5.
    assert active_sampling_weight(PairOutcomes(3, 0.2), prior_battles=1.0) == pytest.approx(
        math.sqrt(0.2 / 4) - math.sqrt(0.2 / 5))
    unmet = active_sampling_weight(unmet_pair_outcomes())
    assert math.isfinite(unmet) and unmet > 0
    by_battles = [active_sampling_weight(PairOutcomes(n, 0.2)) for n in range(1, 200)]
    assert all(more < fewer for fewer, more in zip(by_battles, by_battles[1:]))  # equal variance: more battles, less
    by_variance = [active_sampling_weight(PairOutcomes(10, v)) for v in (0.01, 0.1, 0.2, 0.25)]
    assert by_variance == sorted(by_variance) and len(set(by_variance)) == 4  # equal battles: more variance, more
    # 1/4 is the most a score in [0, 1] can vary: no pair that met outweighs one that did not.
    assert unmet > max(active_sampling_weight(PairOutcomes(n, 0.25)) for n in range(1, 200))


def test_a_pair_that_never_met_outweighs_one_that_met_often():
    rng = np.random.default_rng(0)
    winners = rng.choice(["model_a", "model_b", "tie"], size=80).tolist()
    outcomes = pair_outcomes(["A"] * 80, ["B"] * 80, winners)
    assert ("A", "C") not in outcomes
    assert active_sampling_weight(unmet_pair_outcomes()) > 10 * active_sampling_weight(outcomes[("A", "B")])
    # At equal battle counts a pair that keeps tying is settled; one that splits its wins is not.
    split = pair_outcomes(*battles(("A", "B", "model_a", 10), ("A", "B", "model_b", 10)))[("A", "B")]
    tied = pair_outcomes(*battles(("A", "B", "tie", 20)))[("A", "B")]
    assert active_sampling_weight(split) > 2 * active_sampling_weight(tied)
