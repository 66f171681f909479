"""The per-family regression guard (evals/family_guard.py): its arithmetic by hand, that it fires on a
constructed regression naming the family, stays quiet on noise (false-alarm rate measured over seeded
draws), and how a stage ends under "fail" and "warn" (finish_stage, with the evaluations already on disk)."""

from __future__ import annotations

import json
import random
from types import SimpleNamespace

import pytest

from offline_arena.config import Recipe
from offline_arena.evals.family_guard import (ENDS_BY_ITSELF, FamilyGuardError, enforce, family_guard,
                                              mcnemar_worse_p, paired_instructions, tarone_tests)
from offline_arena.evals.heldout import score_answers
from offline_arena.models.base import Completion
from offline_arena.prompts.sources import Prompt


def heldout(outcomes: dict[str, list[bool]]) -> dict:
    """A held-out result in score_answers's shape: one prompt per instance, family -> strict outcomes."""
    return {"per_prompt": [{"id": f"{family}#{i}", "prompt_strict": float(ok), "prompt_loose": float(ok),
                            "instruction_ids": [family], "strict": [ok], "loose": [ok]}
                           for family, values in outcomes.items() for i, ok in enumerate(values)]}


def drop(n: int, before: int, lost: int, gained: int = 0) -> tuple[list[bool], list[bool]]:
    """n instances, `before` followed; then `lost` of the followed ones fail and `gained` failed ones pass."""
    then = [i < before for i in range(n)]
    now = [(ok and i >= lost) or (not ok and i - before < gained) for i, ok in enumerate(then)]
    return then, now


def test_mcnemar_and_tarone_by_hand():
    assert mcnemar_worse_p(10, 0) == 1 / 1024
    assert mcnemar_worse_p(4, 2) == (15 + 6 + 1) / 64  # C(6,4) + C(6,5) + C(6,6) over 2^6
    assert mcnemar_worse_p(5, 0) == 1 / 32
    assert mcnemar_worse_p(0, 0) == 1.0 and mcnemar_worse_p(0, 5) == 1.0  # nothing lost: no evidence of worse
    assert mcnemar_worse_p(1, 1) == 3 / 4  # P(X >= 1), X ~ Bin(2, 1/2)
    # Tarone: d = [10, 6, 2, 5]; k = 1 admits d >= 5 (three families > 1); k = 2 admits d >= 6 (two <= 2).
    assert tarone_tests([10, 6, 2, 5], 0.05) == 2
    assert tarone_tests([4, 4, 4, 0], 0.05) == 1  # 1/16 > 0.05: none can be significant at all
    assert tarone_tests([], 0.05) == 1
    assert tarone_tests([20] * 7, 0.05) == 7  # all can: plain Holm over the seven


def test_the_docstrings_worked_example():
    """Module docstring: A 12/12 -> 2/12, B 6/10 -> 4/10 (4 lost, 2 gained), C 5/5 -> 3/5, D 5/5 -> 0/5.
    K = 2, A and B tested; A (p 1/1024) clears 0.05 / 2, B (22/64) misses 0.05: only A is named. D's 5/5
    losses (p 1/32 = 0.031) would pass an uncorrected 0.05, but cannot clear the bar of 0.025."""
    families = {"A": drop(12, 12, 10), "B": drop(10, 6, 4, 2), "C": drop(5, 5, 2), "D": drop(5, 5, 5)}
    report = family_guard(heldout({f: now for f, (_, now) in families.items()}),
                          heldout({f: then for f, (then, _) in families.items()}), alpha=0.05)
    rows = {r["id"]: r for r in report["families"]}
    assert [(rows[f]["before"], rows[f]["after"], rows[f]["lost"], rows[f]["gained"]) for f in "ABCD"] == \
        [(12, 2, 10, 0), (6, 4, 4, 2), (5, 3, 2, 0), (5, 0, 5, 0)]
    assert [rows[f]["p"] for f in "ABCD"] == [1 / 1024, 22 / 64, 1 / 4, 1 / 32]
    assert report["tests"] == 2 and [f for f in "ABCD" if rows[f]["tested"]] == ["A", "B"]
    assert [(r["id"], r["bar"]) for r in report["regressed"]] == [("A", 0.025)]


def test_fires_on_a_constructed_regression_through_score_answers():
    """Real prompts and the real checkers: 12 prompts each asking for no commas and all lowercase. The stage's
    answers keep the lowercase but put a comma into 10 of them: no_comma 12/12 -> 2/12, lowercase stays."""
    two = [{"id": "punctuation:no_comma", "params": {}}, {"id": "change_case:english_lowercase", "params": {}}]
    prompts = [Prompt(f"p{i}", ({"role": "user", "content": "q"},), {"constraints": two}) for i in range(12)]
    before = score_answers(prompts, [Completion("all fine here", True, 3)] * 12, bootstrap_rounds=20)
    after = score_answers(prompts, [Completion("all, fine here", True, 3)] * 10
                          + [Completion("all fine here", True, 3)] * 2, bootstrap_rounds=20)
    # score_answers records each instruction's outcome, and accuracy per instruction type.
    assert after["per_prompt"][0]["instruction_ids"] == ["punctuation:no_comma", "change_case:english_lowercase"]
    assert after["per_prompt"][0]["strict"] == [False, True] and before["per_prompt"][0]["strict"] == [True, True]
    assert after["instruction_types"] == [
        {"id": "change_case:english_lowercase", "n": 12, "strict": 1.0, "loose": 1.0},
        {"id": "punctuation:no_comma", "n": 12, "strict": 2 / 12, "loose": 2 / 12}]
    # The guard reads them back from eval.json files.
    before, after = json.loads(json.dumps(before)), json.loads(json.dumps(after))
    report = family_guard(after, before)
    assert [r["id"] for r in report["regressed"]] == ["punctuation:no_comma"]
    with pytest.raises(FamilyGuardError) as error:
        enforce(report, "fail", "[round 1 sft]", "base", print)
    message = str(error.value)
    assert "punctuation:no_comma strict 12/12 -> 2/12 (10 lost, 0 gained, p = 0.00098)" in message
    assert "worse than base" in message and "lowercase" not in message and "family_guard: warn" in message


def test_fires_when_answers_stop_ending_by_themselves():
    """Stopping is a family too: 12 prompts whose answers all ended, then 8 of them run to their budget (the
    instructions still pass: only the stop token went) -> "ends by itself 12/12 -> 4/12", named alone; the
    same answers all ending again pair as no change."""
    one = [{"id": "punctuation:no_comma", "params": {}}]
    prompts = [Prompt(f"p{i}", ({"role": "user", "content": "q"},), {"constraints": one}) for i in range(12)]
    before = score_answers(prompts, [Completion("fine here", True, 3)] * 12, bootstrap_rounds=20)
    after = score_answers(prompts, [Completion("fine here and on", False, 300)] * 8
                          + [Completion("fine here", True, 3)] * 4, bootstrap_rounds=20)
    assert paired_instructions(after, before)[ENDS_BY_ITSELF] == [(True, False)] * 8 + [(True, True)] * 4
    report = family_guard(json.loads(json.dumps(after)), json.loads(json.dumps(before)))
    assert [r["id"] for r in report["regressed"]] == [ENDS_BY_ITSELF]
    with pytest.raises(FamilyGuardError, match=r"ends by itself 12/12 -> 4/12 \(8 lost, 0 gained, p = 0.0039\)"):
        enforce(report, "fail", "[round 1 dpo]", "r1-sft", print)
    assert family_guard(before, before)["regressed"] == []
    # IFEval's per-type verdict (`types_worse`) is about instruction types only.
    from offline_arena.evals.ifeval import types_worse

    by_type = types_worse(after["per_prompt"], before["per_prompt"])
    assert [r["id"] for r in by_type["families"]] == ["punctuation:no_comma"] and by_type["regressed"] == []


@pytest.mark.parametrize("lost", [1, 2, 3, 4])
def test_a_drop_of_a_few_instances_never_fires(lost):
    # Even alone (K = 1, bar alpha): 4 of 4 discordant lost is p = 1/16 > 0.05.
    then, now = drop(12, 12, lost)
    others = {f"f{i}": [True, False] * 4 for i in range(20)}
    report = family_guard(heldout({"x": now, **others}), heldout({"x": then, **others}))
    assert report["regressed"] == [] and report["tests"] == 1
    assert enforce(report, "fail", "[round 1 sft]", "base", lambda line: None)["regressed"] == []


def noise_draws(draws: int, flip: float, seed: int, alpha: float = 0.05) -> float:
    """Share of draws where the guard fires when nothing changed: 23 families sized like the 96-prompt
    held-out split's (2 to 14 instances), each followed at its own rate; each instance is re-drawn at that
    same rate with probability `flip`, so it flips either way at equal odds."""
    rng = random.Random(seed)
    sizes = [2, 5, 6, 6, 7, 7, 7, 7, 8, 8, 8, 8, 9, 10, 10, 10, 10, 10, 11, 12, 12, 12, 14]
    fired = 0
    for _ in range(draws):
        before, after = {}, {}
        for f, n in enumerate(sizes):
            rate = rng.uniform(0.2, 0.9)
            before[f"f{f}"] = [rng.random() < rate for _ in range(n)]
            after[f"f{f}"] = [rng.random() < rate if rng.random() < flip else ok for ok in before[f"f{f}"]]
        fired += bool(family_guard(heldout(after), heldout(before), alpha)["regressed"])
    return fired / draws


@pytest.mark.parametrize("flip", [0.3, 1.0])
def test_noise_rarely_fires(flip):
    """False alarms per stage at alpha = 0.05, measured with 2000 draws for seeds 0, 1, 2: flip 0.1: 0.0005,
    0, 0; flip 0.3: 0.003, 0.002, 0.004; flip 0.6: 0.014, 0.0135, 0.016; flip 1.0 (after independent of
    before): 0.026, 0.019, 0.027. Here 1000 draws, seed 0: 0.001 and 0.031. Under alpha, as an exact test
    with Holm should be (discrete p-values make it conservative)."""
    rate = noise_draws(1000, flip, seed=0)
    assert rate <= 0.05, rate


def test_noise_alongside_a_real_regression_names_only_it():
    rng = random.Random(1)
    named = []
    for _ in range(200):
        before = {f"f{f}": [rng.random() < 0.6 for _ in range(10)] for f in range(22)}
        after = {f: [rng.random() < 0.6 if rng.random() < 0.3 else ok for ok in v] for f, v in before.items()}
        before["broken"], after["broken"] = drop(12, 12, 10)
        report = family_guard(heldout(after), heldout(before))
        named.append([r["id"] for r in report["regressed"]])
    assert all("broken" in n for n in named)
    assert sum(len(n) > 1 for n in named) <= 10  # another family named too: a false alarm, rare


def test_pairs_only_the_same_instruction_of_the_same_prompt():
    before = {"per_prompt": [{"id": "a", "instruction_ids": ["x", "y"], "strict": [True, True]},
                             {"id": "b", "instruction_ids": ["x"], "strict": [True]}]}
    after = {"per_prompt": [{"id": "b", "instruction_ids": ["x"], "strict": [False]},
                            {"id": "a", "instruction_ids": ["x", "z"], "strict": [True, False]},
                            {"id": "c", "instruction_ids": ["y"], "strict": [False]}]}
    assert paired_instructions(after, before) == {"x": [(True, False), (True, True)]}
    # An eval.json written before per-instruction outcomes were recorded: nothing to pair, no verdict.
    assert family_guard(after, {"per_prompt": [{"id": "a", "prompt_strict": 1.0}]}) is None
    with pytest.raises(ValueError, match="alpha"):
        family_guard(after, before, alpha=0)


def test_warn_records_and_off_is_silent():
    then, now = drop(12, 12, 10)
    report = family_guard(heldout({"x": now}), heldout({"x": then}))
    lines = []
    record = enforce(report, "warn", "[round 1 dpo]", "r1-sft", lines.append)
    assert record["mode"] == "warn" and record["against"] == "r1-sft"
    assert [r["id"] for r in record["regressed"]] == ["x"]
    assert len(lines) == 1 and lines[0].startswith("WARNING [round 1 dpo] family guard")
    assert "x strict 12/12 -> 2/12" in lines[0]
    assert enforce(report, "off", "[round 1 dpo]", "r1-sft", lines.append) == {} and len(lines) == 1
    with pytest.raises(ValueError, match="mode"):
        enforce(report, "loud", "", "", print)
    skipped = enforce(None, "fail", "[round 1 dpo]", "base", lines.append)
    assert skipped["skipped"] and "skipped" in lines[-1]


# finish_stage itself, with each model's eval.json already on disk (evaluate_stage reads it back): no model.

def stage_ctx(tmp_path, **evaluation) -> SimpleNamespace:
    from offline_arena.run_folder import RunFolder

    recipe = Recipe.model_validate({
        "target": "builtin:smollm2-135m-instruct",
        "opponents": [{"name": "o", "model": "builtin:smollm2-135m-instruct"}],
        "stages": [{"kind": "sft"}, {"kind": "dpo"}],
        "evaluation": {"leaderboard": False, "bootstrap_rounds": 10, **evaluation}})
    return SimpleNamespace(recipe=recipe, folder=RunFolder(tmp_path), tracker=None)


def write_eval(folder, name: str, outcomes: dict) -> None:
    from offline_arena.run_folder import write_json

    folder.path.mkdir(parents=True, exist_ok=True)
    write_json(folder.eval, {"model_name": name, "checkpoint": name, "heldout": heldout(outcomes)})


def test_finish_stage_fails_against_the_model_the_stage_started_from(tmp_path):
    from offline_arena.pipeline.stages import finish_stage, started_from

    ctx = stage_ctx(tmp_path)
    sft, dpo = ctx.folder.stage(1, "sft"), ctx.folder.stage(1, "dpo")
    then, now = drop(12, 12, 10)
    steady = [True, False] * 6
    # The base already failed x; SFT taught it (12/12); DPO breaks it again. Against the base DPO would look
    # unchanged-ish (2/12 vs 2/12): only the comparison with SFT's model names what DPO did.
    write_eval(ctx.folder.base, "base", {"x": now, "y": steady})
    write_eval(sft, "r1-sft", {"x": then, "y": steady})
    write_eval(dpo, "r1-dpo", {"x": now, "y": steady})
    sft.done.write_text(json.dumps({"model_name": "r1-sft", "checkpoint": "c"}))
    assert started_from(ctx, sft) == ("base", ctx.folder.base)
    assert started_from(ctx, dpo) == ("r1-sft", sft)
    lines = []
    with pytest.raises(FamilyGuardError, match=r"worse than r1-sft .*x strict 12/12 -> 2/12"):
        finish_stage(ctx, dpo, {"model_name": "r1-dpo", "checkpoint": "d", "train": {}}, 0.0, lines.append)
    assert not dpo.done.exists()  # a failed stage is not done: a resumed run comes back to it

    # "warn": the stage is done, the summary records the family, the table names it.
    ctx = stage_ctx(tmp_path, family_guard="warn")
    summary = finish_stage(ctx, dpo, {"model_name": "r1-dpo", "checkpoint": "d", "train": {}}, 0.0, lines.append)
    assert [r["id"] for r in summary["family_guard"]["regressed"]] == ["x"]
    assert json.loads(dpo.done.read_text())["family_guard"]["against"] == "r1-sft"
    assert any(line.startswith("WARNING [round 1 dpo]") for line in lines)
    assert "r1-dpo: family worse than r1-sft: x strict 12/12 -> 2/12" in lines[-1]

    # "off": not even compared.
    dpo.done.unlink()
    ctx = stage_ctx(tmp_path, family_guard="off")
    summary = finish_stage(ctx, dpo, {"model_name": "r1-dpo", "checkpoint": "d", "train": {}}, 0.0, lines.append)
    assert "family_guard" not in summary


def test_a_merge_that_is_not_promoted_only_warns(tmp_path):
    from offline_arena.pipeline.stages import finish_stage

    ctx = stage_ctx(tmp_path)
    then, now = drop(12, 12, 10)
    write_eval(ctx.folder.base, "base", {"x": then})
    sft = ctx.folder.stage(1, "sft")
    write_eval(sft, "r1-sft", {"x": now})
    summary = finish_stage(ctx, sft, {"model_name": "r1-sft", "checkpoint": "m", "promoted": False, "train": {}},
                           0.0, lambda line: None)
    assert summary["family_guard"]["mode"] == "warn" and summary["family_guard"]["regressed"]
