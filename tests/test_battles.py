"""Battles end to end on pico models: schedules, answers through the store, judging, leaderboard CLI."""

from __future__ import annotations

import json
from collections import Counter

import pytest

from offline_arena.battles import active_schedule, all_pairs, run_battles, target_vs_opponents
from offline_arena.cli import main
from offline_arena.models import GenerationRequest, SamplingParams
from offline_arena.loading import load_generator
from offline_arena.prompts import load_prompts
from offline_arena.prompts.budget import with_budget
from offline_arena.store import Store


def test_pairing_policies():
    prompts = load_prompts("builtin:verifiable:round1/sft:4")
    schedule = target_vs_opponents("t", ["o1", "o2"], prompts)
    assert len(schedule) == 8 and all(a == "t" for _, a, _ in schedule)
    assert len(all_pairs(["a", "b", "c"], prompts)) == 4 * 3
    with pytest.raises(ValueError, match="also listed as an opponent"):
        target_vs_opponents("t", ["t"], prompts)


def test_active_schedule_spends_battles_where_ratings_are_uncertain():
    prompts = load_prompts("builtin:verifiable:round1/sft:60")
    # a and b are settled far apart (a always wins); c has never played: its pairs are the uncertain ones.
    history = [{"model_a": "a", "model_b": "b", "winner": "model_a"} for _ in range(60)] + \
              [{"model_a": "a", "model_b": "b", "winner": "model_b"} for _ in range(2)]
    schedule = active_schedule(["a", "b", "c"], prompts, history, budget=60, seed=1)
    pairs = Counter((a, b) for _, a, b in schedule)
    assert pairs[("a", "c")] + pairs[("b", "c")] > 3 * pairs[("a", "b")]
    assert len({(p.id, a, b) for p, a, b in schedule}) == 60  # never the same battle twice
    with pytest.raises(ValueError, match="exceeds"):
        active_schedule(["a", "b"], prompts[:2], [], budget=3)


def judged(model_a: str, model_b: str, winner: str, count: int) -> list[dict]:
    return [{"model_a": model_a, "model_b": model_b, "winner": winner}] * count


def test_active_schedule_gives_most_battles_to_the_pair_that_never_met_and_spreads_the_rest():
    """Chatbot Arena's rule (issue 10): weight by the fall in a pair's win-rate error, which shrinks as the
    pair's battles accumulate, so (b, c) leads; the picks already scheduled count, so it does not take all."""
    prompts = load_prompts("builtin:verifiable:round1/sft:60")
    split = lambda a, b: judged(a, b, "model_a", 10) + judged(a, b, "model_b", 10)  # noqa: E731
    history = split("a", "b") + split("c", "a")  # (c, a) seated the other way round: the same pair
    for seed in range(5):
        pairs = Counter((a, b) for _, a, b in active_schedule(["a", "b", "c"], prompts, history, budget=40, seed=seed))
        assert pairs[("b", "c")] >= 15 and pairs[("b", "c")] > max(pairs[("a", "b")], pairs[("a", "c")])
        assert pairs[("a", "b")] >= 3 and pairs[("a", "c")] >= 3


def test_active_schedule_counts_only_decided_battles_and_never_repeats_a_taken_slot():
    prompts = load_prompts("builtin:verifiable:round1/sft:30")
    history = (judged("b", "a", "model_a", 15) + judged("b", "a", "tie", 15) + judged("c", "b", "model_b", 30)
               + judged("a", "c", "error", 30))  # a judge's errors leave (a, c) unmet
    pairs = Counter((a, b) for _, a, b in active_schedule(["a", "b", "c"], prompts, history, budget=10, seed=0))
    assert pairs[("a", "c")] >= 8
    taken = {(p.id, "a", "c") for p in prompts}
    schedule = active_schedule(["a", "b", "c"], prompts, history, budget=10, seed=0, taken=taken)
    assert all((a, b) != ("a", "c") for _, a, b in schedule)
    with pytest.raises(ValueError, match="budget 61 exceeds the 60"):
        active_schedule(["a", "b", "c"], prompts, history, budget=61, taken=taken)


def test_active_schedule_is_deterministic_for_a_seed():
    prompts = load_prompts("builtin:verifiable:round1/sft:20")
    history = judged("a", "b", "model_a", 5) + judged("b", "c", "tie", 3)

    def ids(seed):
        return [(p.id, a, b) for p, a, b in active_schedule(["a", "b", "c", "d"], prompts, history, 25, seed=seed)]

    assert ids(3) == ids(3)
    assert ids(3) != ids(4)


def test_battles_share_answers_and_rerun_for_free(pico_model_dir, tmp_path):
    prompts = load_prompts("builtin:verifiable:round1/sft:3")
    params = SamplingParams(max_new_tokens=6, temperature=0.7)
    with Store(tmp_path / "s.sqlite") as store:
        target = load_generator(str(pico_model_dir), store=store, batch_size=4)
        opponent = load_generator(f"{pico_model_dir}@best-of-2", store=store, batch_size=4,
                                  scorer=lambda request, answers: [len(a.text) for a in answers])
        start = target.inner.num_generated  # the loaded model is shared within the process
        contestants = {"t": target, "o": opponent, "o2": opponent}
        schedule = target_vs_opponents("t", ["o", "o2"], prompts)
        rows = run_battles(schedule, contestants, store, params)
        # Target and best-of-2 share one loaded model. The target answers each prompt once for both
        # battles; the best-of-2 draws two candidates of its own (never the target's answer): 3 + 6.
        assert target.inner is opponent.inner.inner.inner
        assert target.inner.num_generated - start == 9
        assert store.count() == 3 + 6 + 3  # target answers, the opponent's candidates, best-of-2 picks
        assert len(store.battles()) == 6 and store.battles()[0].context["constraints"]
        run_battles(schedule, contestants, store, params)
        assert target.inner.num_generated - start == 9 and len(store.battles()) == 6
        assert rows[0].answer_a == rows[1].answer_a


def test_a_target_and_its_revise_drafts_decode_in_one_call(pico_model_dir, tmp_path):
    """`target@revise` drafts with the target's own model: a stage's battles ask that model for its answers and
    for the drafts in one call (one batch here, not two), and the wrapper then finds its drafts stored."""
    prompts = load_prompts("builtin:verifiable:round1/sft:4")
    params = SamplingParams(max_new_tokens=6, temperature=0.7)
    with Store(tmp_path / "s.sqlite") as store:
        target = load_generator(str(pico_model_dir), store=store, batch_size=8)
        revise = load_generator(f"{pico_model_dir}@revise", store=store, batch_size=8)
        model = target.inner
        assert revise.inner.inner.inner is model  # one loaded model behind both
        generated, batches = model.num_generated, model.batches_run
        rows = run_battles(target_vs_opponents("t", ["r"], prompts), {"t": target, "r": revise}, store, params)
        assert model.num_generated - generated == 8 and model.batches_run - batches == 1
        requests = [GenerationRequest.of(p.messages, params=with_budget(params, p.meta), context=dict(p.meta))
                    for p in prompts]
        draft_model, drafts = revise.inner.drafts(requests)
        assert set(draft_model.keys(drafts)) <= set(store.get_completions(draft_model.keys(drafts)))
        assert all("repaired" in row.completion_b.meta for row in rows)
        assert [row.completion_a.text for row in rows] == [c.text for c in target.generate(requests)]
        assert model.num_generated - generated == 8  # the wrapper's drafts and the answers were all stored
        run_battles(target_vs_opponents("t", ["r"], prompts), {"t": target, "r": revise}, store, params)
        assert model.num_generated - generated == 8 and model.batches_run - batches == 1  # a rerun asks for nothing


def target_and_best_of(model_dir, store, n: int, params, prompts: int):
    """A pico target, its best-of-n (a scorer that ranks nothing) and requests for `prompts` pack prompts."""
    target = load_generator(str(model_dir), store=store, batch_size=4)
    best = load_generator(f"{model_dir}@best-of-{n}", store=store, batch_size=4,
                          scorer=lambda request, answers: [0.0] * len(answers))
    requests = [GenerationRequest.of(p.messages, params=params, context=dict(p.meta))
                for p in load_prompts(f"builtin:verifiable:round1/sft:{prompts}")]
    return target, best, requests


def test_target_and_its_wrappers_never_share_a_completion(pico_model_dir, tmp_path):
    """Issue 11: with the request's own seed, the best-of-n's first candidate (and a @revise draft) was the
    target's cached answer, so the opponent tied whenever the best candidate was the target's own."""
    params = SamplingParams(max_new_tokens=6, temperature=0.7)
    with Store(tmp_path / "s.sqlite") as store:
        target, best, requests = target_and_best_of(pico_model_dir, store, 3, params, prompts=4)
        revise = load_generator(f"{pico_model_dir}@revise", store=store, batch_size=4)
        target.generate(requests)
        best.generate(requests)
        revise.generate(requests)
        target_keys = set(target.keys(requests))
        rows = store.conn.execute("SELECT key, seed FROM completions WHERE model = ?", (target.fingerprint,)).fetchall()
        own = {k for k, _ in rows} - target_keys
        assert len(own) == 4 * 3 + 4  # every candidate and every draft is a sample of its own
        assert {seed for k, seed in rows if k in own}.isdisjoint({0})


def test_a_name_that_now_stands_for_another_model_makes_new_battles(pico_model_dir, smol_tokenizer_dir, tmp_path):
    """A stage's checkpoint keeps its display name across runs sharing a store: the battle must be the
    new model's, never the old battle row of the same name re-used."""
    from conftest import build_pico_model

    other_dir = build_pico_model(smol_tokenizer_dir, tmp_path / "other", seed=7)
    prompts = load_prompts("builtin:verifiable:round1/sft:2")
    params = SamplingParams(max_new_tokens=6, temperature=0.7)
    with Store(tmp_path / "s.sqlite") as store:
        opponent = load_generator(str(pico_model_dir), store=store, batch_size=4)
        schedule = target_vs_opponents("t", ["o"], prompts)
        first = run_battles(schedule, {"t": opponent, "o": opponent}, store, params, tag="eval")
        second = run_battles(schedule, {"t": load_generator(str(other_dir), store=store, batch_size=4),
                                        "o": opponent}, store, params, tag="eval")
        assert {r.id for r in first}.isdisjoint(r.id for r in second)
        assert len(store.battles("eval")) == 4
        stored = {b.id: b for b in store.battles("eval")}
        assert all(stored[r.id].answer_a == r.answer_a for r in second)


def test_cli_battle_judge_leaderboard(pico_model_dir, tmp_path, capsys):
    run = str(tmp_path / "run")
    common = ["--run-dir", run]
    assert main(["battle", "--models", f"pico={pico_model_dir}", f"pico4={pico_model_dir}@best-of-4",
                 "--prompts", "builtin:verifiable:round1/sft:6", "--max-new-tokens", "8", *common]) == 0
    assert main(["judge", "--judge", "verifier", *common]) == 0
    assert "6 battles judged by verifier:strict" in capsys.readouterr().out
    assert main(["leaderboard", *common, "--rounds", "20"]) == 0
    out = capsys.readouterr().out
    assert "pico4" in out and "pico" in out
    rows = json.loads((tmp_path / "run" / "leaderboard.json").read_text())
    assert {r["model"] for r in rows} == {"pico", "pico4"}
    assert all(r["battles"] == 6 and r["lower"] <= r["rating"] <= r["upper"] for r in rows)
    assert main(["export", "dpo", "--out", str(tmp_path / "dpo.jsonl"), "--keep-runaways", *common]) == 0
    decisive = sum(r["wins"] for r in rows)
    assert len((tmp_path / "dpo.jsonl").read_text().splitlines()) <= decisive
    assert main(["export", "sft", "--out", str(tmp_path / "sft.jsonl"), *common]) == 2
    assert "needs --target" in capsys.readouterr().err


def test_cli_errors_are_clear(tmp_path, capsys):
    assert main(["leaderboard", "--run-dir", str(tmp_path)]) == 2
    assert "no judged battles" in capsys.readouterr().err
    assert main(["judge", "--run-dir", str(tmp_path)]) == 2
    assert "no battles recorded" in capsys.readouterr().err
    assert main(["battle", "--models", "only=builtin:smollm2-135m-instruct", "--run-dir", str(tmp_path)]) == 2
    assert "at least two models" in capsys.readouterr().err
    assert main(["battle", "--models", "a=nope:x", "b=builtin:smollm2-135m-instruct", "--run-dir", str(tmp_path)]) == 2
    assert "unknown scheme" in capsys.readouterr().err


def test_a_greedy_best_of_n_asks_its_model_once(pico_model_dir, tmp_path):
    greedy = SamplingParams(max_new_tokens=6, temperature=0.0)
    with Store(tmp_path / "s.sqlite") as store:
        target, best, requests = target_and_best_of(pico_model_dir, store, 4, greedy, prompts=3)
        start = target.inner.num_generated
        answers = target.generate(requests)
        assert [a.text for a in best.generate(requests)] == [a.text for a in answers]
        assert target.inner.num_generated - start == 3  # the greedy answers, once, shared
