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
    assert set(re.findall(r"[\w-]+", offered)) == set(SUITES)


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


def arena_eval(target, rival, run_dir, out, prompts=None) -> int:
    extra = ["--prompts", str(prompts)] if prompts else []
    return main(["eval", str(target), "--suite", "arena", "--opponents", f"rival={rival}", "--judge", "verifier",
                 "--limit", "3", "--max-new-tokens", "6", "--run-dir", str(run_dir), "--out", str(out), *extra])


def test_arena_suite_with_the_verifier_judge(pico_model_dir, tmp_path, capsys):
    """The pico model against its own answers repaired to meet each prompt's constraints (`@revise`): the
    repaired answer satisfies at least as many constraints and, on equal counts, ends by itself while the
    random model runs into the token limit, so the graded verifier gives the rival every battle. (Two random
    pico models instead tie every battle: a leaderboard of ties and equal ratings shows nothing.) The
    default prompts all carry constraints, so a working verifier makes no errors."""
    out = tmp_path / "arena.json"
    assert arena_eval(pico_model_dir, f"{pico_model_dir}@revise", tmp_path / "run", out) == 0
    printed = capsys.readouterr().out
    assert "rival" in printed and "95% CI" in printed and "judge errors: 0" in printed
    result = json.loads(out.read_text())
    assert result["battles"] == 3 and result["judge_errors"] == 0
    assert result["opponents"] == {"rival": f"{pico_model_dir}@revise"}
    board = {row["model"]: row for row in result["leaderboard"]}
    assert set(board) == {str(pico_model_dir), "rival"}
    mine, rival = board[str(pico_model_dir)], board["rival"]
    assert (rival["rank"], rival["wins"], rival["ties"], rival["losses"], rival["battles"]) == (1, 3, 0, 0, 3)
    assert (mine["rank"], mine["wins"], mine["ties"], mine["losses"], mine["battles"]) == (2, 0, 0, 3, 3)
    # Ratings are anchored on the panel's first opponent at 1000; the model that lost everything is below it.
    assert rival["rating"] == 1000.0 and result["rating"] == mine["rating"] < 1000.0 - 100
    assert result["rating_ci"] == [mine["lower"], mine["upper"]] and mine["lower"] <= mine["rating"] <= mine["upper"]


def test_arena_suite_counts_exactly_the_battles_the_judge_cannot_decide(pico_model_dir, smol_tokenizer_dir,
                                                                        tmp_path, capsys):
    """The verifier cannot judge a prompt without checkable constraints: one such prompt among three makes
    exactly one judge error, recorded in the store, and the leaderboard rates the other two battles only.
    With no decidable battle at all the suite fails and says so instead of rating nothing. (The rival is a
    second random model: `@revise` itself refuses a prompt without constraints.)"""
    from conftest import build_pico_model

    from offline_arena.prompts import load_prompts
    from offline_arena.store import Store

    other = build_pico_model(smol_tokenizer_dir, tmp_path / "other", seed=5)
    rows = [{"id": p.id, "messages": list(p.messages), **p.meta} for p in load_prompts("builtin:verifiable:heldout:2")]
    mixed, plain = tmp_path / "mixed.jsonl", tmp_path / "plain.jsonl"
    free = {"id": "no-constraints", "prompt": "Tell me about the sea."}
    mixed.write_text("".join(json.dumps(r) + "\n" for r in [rows[0], free, rows[1]]))
    plain.write_text(json.dumps(free) + "\n")
    run_dir, out = tmp_path / "run", tmp_path / "arena.json"
    assert arena_eval(pico_model_dir, other, run_dir, out, prompts=mixed) == 0
    result = json.loads(out.read_text())
    assert result["prompts"] == 3 and result["battles"] == 3 and result["judge_errors"] == 1
    for row in result["leaderboard"]:
        assert row["battles"] == row["wins"] + row["ties"] + row["losses"] == 2, row
    with Store(run_dir / "store.sqlite") as store:
        errors = store.conn.execute("SELECT explanation FROM judgments WHERE winner = 'error'").fetchall()
        decided = store.conn.execute("SELECT COUNT(*) FROM judgments WHERE winner != 'error'").fetchone()[0]
    assert [e[0] for e in errors] == ["the prompt has no checkable constraints for the verifier"] and decided == 2
    capsys.readouterr()
    assert arena_eval(pico_model_dir, other, run_dir, tmp_path / "none.json", prompts=plain) == 2
    assert "all 1 battles were judge errors; nothing to rate" in capsys.readouterr().err
    assert not (tmp_path / "none.json").exists()


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
