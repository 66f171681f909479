"""Leaderboard quality as Arena-Hard reports it: every measure on a board worked by hand, and
`arena leaderboard --compare` end to end."""

from __future__ import annotations

import json

import pytest

from offline_arena.ratings.compare import (agreement_with_confidence, compare_boards, format_comparison,
                                           kendall_tau_b, read_board, separability, spearman)

OURS = {"A": (1100, 1080, 1120), "B": (1050, 1040, 1090), "C": (1000, 980, 1010), "D": (900, 850, 950)}
REFERENCE = {"A": (1200, 1190, 1210), "B": (1150, 1140, 1160), "C": (1160, 1155, 1170), "D": (1000, 990, 1010),
             "E": (900, 890, 910)}


def test_every_measure_against_a_hand_computation():
    # Ranks (low to high): ours D C B A, reference D B C A: d^2 sums to 2, rho = 1 - 6 * 2 / (4 * 15) = 0.8.
    shared = ["A", "B", "C", "D"]
    assert spearman([OURS[m][0] for m in shared], [REFERENCE[m][0] for m in shared]) == pytest.approx(0.8)
    # Six pairs, only B-C discordant: (5 - 1) / 6.
    assert kendall_tau_b([OURS[m][0] for m in shared], [REFERENCE[m][0] for m in shared]) == pytest.approx(4 / 6)
    # Our intervals: only A [1080, 1120] and B [1040, 1090] overlap.
    assert separability({m: OURS[m][1:] for m in OURS}) == (5, 6)
    # The reference separates every pair but B-C; of those five ours orders four the same way and cannot
    # separate A-B (0): (1 + 1 + 1 + 1 + 0) / 5.
    assert agreement_with_confidence(OURS, REFERENCE) == (pytest.approx(0.8), 5)
    result = compare_boards(OURS, REFERENCE)
    assert result["only_reference"] == ["E"] and result["same_order_pairs"] == [5, 6]
    assert "agreement with confidence (-1..1, over the pairs the reference separates) 0.800 on 5 pairs" in \
        format_comparison(result)


def test_opposite_orders_score_minus_one_and_ties_share_ranks():
    flipped = {m: (-r, -high, -low) for m, (r, low, high) in OURS.items()}
    assert agreement_with_confidence(flipped, OURS) == (-1.0, 5)
    assert spearman([1, 2, 2, 3], [1, 2, 2, 3]) == pytest.approx(1.0)
    assert kendall_tau_b([1, 1, 1], [1, 2, 3]) is None


def test_a_reference_file_is_read_and_checked(tmp_path):
    good = tmp_path / "ref.csv"
    good.write_text("model,rating,lower,upper\nA,1200,1190,1210\nB,1150,,\n")
    assert read_board(good) == {"A": (1200.0, 1190.0, 1210.0), "B": (1150.0, None, None)}
    bad = tmp_path / "bad.csv"
    bad.write_text("name,score\nA,1\nB,2\n")
    with pytest.raises(ValueError, match="needs the columns model and rating"):
        read_board(bad)
    worse = tmp_path / "worse.csv"
    worse.write_text("model,rating\nA,1\nB,high\n")
    with pytest.raises(ValueError, match="worse.csv:3"):
        read_board(worse)


def test_arena_leaderboard_compare_end_to_end(tmp_path, capsys):
    from offline_arena.cli import main

    strength = {"strong": 3, "middle": 2, "weak": 1}
    battles = []
    for i in range(60):
        for a, b in [("strong", "middle"), ("middle", "weak"), ("strong", "weak")]:
            upset = i % 5 == 0  # the weaker model wins one battle in five
            winner = "model_b" if (strength[a] > strength[b]) == upset else "model_a"
            battles.append({"model_a": a, "model_b": b, "winner": winner})
    log = tmp_path / "battles.json"
    log.write_text(json.dumps(battles))
    reference = tmp_path / "reference.csv"
    reference.write_text("model,rating,lower,upper\nstrong,1300,1290,1310\nmiddle,1200,1190,1210\nweak,1100,1090,1110\n")
    assert main(["leaderboard", "--battles", str(log), "--compare", str(reference)]) == 0
    printed = capsys.readouterr().out
    assert "Spearman rho 1.000, Kendall tau-b 1.000, pairs in the same order 3/3" in printed
    assert "separability" in printed and "agreement with confidence" in printed
