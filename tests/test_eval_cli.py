"""`arena eval MODEL --suite ...` and the suite registry, on pico models: the verifiable held-out split,
IFBench, and arena Elo against a panel with the verifier judge."""

from __future__ import annotations

import json
import re

import pytest

from offline_arena.cli import main
from offline_arena.evals.suites import SUITES, run_suite, run_suites


def test_cli_offers_exactly_the_registered_suites(capsys):
    with pytest.raises(SystemExit):
        main(["eval", "m", "--suite", "nonsense"])
    offered = capsys.readouterr().err.split("choose from")[1]
    assert set(re.findall(r"\w+", offered)) == set(SUITES)


def test_verifiable_suite_from_the_cli(pico_model_dir, tmp_path, capsys):
    out = tmp_path / "result.json"
    code = main(["eval", str(pico_model_dir), "--suite", "verifiable", "--limit", "3", "--max-new-tokens", "4",
                 "--run-dir", str(tmp_path / "run"), "--out", str(out)])
    assert code == 0
    printed = capsys.readouterr().out
    assert "prompt_strict" in printed and "instruction_loose" in printed and f"written: {out}" in printed
    result = json.loads(out.read_text())
    assert result["suite"] == "verifiable" and result["prompts"] == 3 and len(result["items"]) == 3
    assert 0 <= result["prompt_strict"] <= 1 and result["runaway_rate"] == 1.0  # 4 tokens never finish an answer


def test_ifbench_suite_from_the_cli(pico_model_dir, tmp_path, capsys):
    """Generated in one batch by the transformers generator, through the store (a rerun generates nothing)."""
    from offline_arena.store import Store

    out, run_dir = tmp_path / "ifbench.json", tmp_path / "run"
    args = ["eval", str(pico_model_dir), "--suite", "ifbench", "--limit", "4", "--max-new-tokens", "5",
            "--run-dir", str(run_dir), "--out", str(out)]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "IFBench" in printed and "strict" in printed and "loose" in printed
    result = json.loads(out.read_text())
    assert result["prompts"] == 4 and result["max_new_tokens"] == 5 and len(result["items"]) == 4
    for mode in ("strict", "loose"):
        counts = result[mode]
        assert counts["prompts_scored"] + counts["prompts_excluded"] == 4
        total = sum(len(item["instruction_ids"]) for item in result["items"])
        assert counts["instructions_scored"] + counts["instructions_unavailable"] == total
    with Store(run_dir / "store.sqlite") as store:
        assert store.count("completions") == 4
        before = store.conn.execute("SELECT MAX(created_at) FROM completions").fetchone()[0]
    assert main(args) == 0
    with Store(run_dir / "store.sqlite") as store:
        assert store.count("completions") == 4
        assert store.conn.execute("SELECT MAX(created_at) FROM completions").fetchone()[0] == before


def test_arena_suite_with_the_verifier_judge(pico_model_dir, smol_tokenizer_dir, tmp_path, capsys):
    from conftest import build_pico_model

    other = build_pico_model(smol_tokenizer_dir, tmp_path / "other", seed=5)
    out = tmp_path / "arena.json"
    code = main(["eval", str(pico_model_dir), "--suite", "arena", "--opponents", f"rival={other}", "--judge", "verifier",
                 "--limit", "3", "--max-new-tokens", "6", "--run-dir", str(tmp_path / "run"), "--out", str(out)])
    assert code == 0
    printed = capsys.readouterr().out
    assert "rival" in printed and "95% CI" in printed
    result = json.loads(out.read_text())
    assert result["battles"] == 3 and result["opponents"] == {"rival": str(other)}
    assert {row["model"] for row in result["leaderboard"]} <= {str(pico_model_dir), "rival"}
    low, high = result["rating_ci"]
    assert low <= result["rating"] <= high or result["judge_errors"] == 3


def test_options_a_suite_does_not_take_are_errors(pico_model_dir, tmp_path, capsys):
    with pytest.raises(ValueError, match="takes no option judge"):
        run_suite("ifbench", str(pico_model_dir), judge="verifier")
    with pytest.raises(ValueError, match="unknown evaluation suite"):
        run_suites(["verifiable", "helm"], str(pico_model_dir))
    assert main(["eval", str(pico_model_dir), "--suite", "verifiable", "--judge", "verifier",
                 "--run-dir", str(tmp_path)]) == 2
    assert "takes no option judge" in capsys.readouterr().err
    assert main(["eval", str(pico_model_dir), "--suite", "arena", "--run-dir", str(tmp_path)]) == 2
    assert "needs opponents" in capsys.readouterr().err


def test_run_suites_for_the_pipeline(pico_model_dir, tmp_path):
    from offline_arena.store import Store

    with Store(tmp_path / "store.sqlite") as store:
        results = run_suites(["verifiable"], str(pico_model_dir), store=store, limit=2, max_new_tokens=3,
                             options={"verifiable": {"seed": 1}})
    assert set(results) == {"verifiable"} and results["verifiable"]["prompts"] == 2
