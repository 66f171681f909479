"""Per-prompt length budgets (prompts/budget.py): the arithmetic, and that a prompt's budget reaches every
decode of it — battles, the held-out evaluation, the decoder's rows, the guard's probes and PPO's rollouts."""

from __future__ import annotations

import pytest
import torch

from offline_arena.models.base import Completion, GenerationRequest, SamplingParams
from offline_arena.prompts.budget import apply_budgets, budget, needed_tokens, with_budget
from offline_arena.prompts.sources import Prompt

WORDS_300 = {"id": "length_constraints:number_words", "params": {"relation": "at least", "num_words": 300}}
FOUR_PARAGRAPHS = {"id": "length_constraints:number_paragraphs", "params": {"num_paragraphs": 4}}
NO_COMMA = {"id": "punctuation:no_comma", "params": {}}


def test_budget_arithmetic_by_hand():
    assert needed_tokens([WORDS_300]) == 1.5 * 300 + 32 == 482
    assert needed_tokens([NO_COMMA, FOUR_PARAGRAPHS]) == 4 * 70 + 32 == 312  # the most demanding one
    assert needed_tokens([NO_COMMA]) == 0
    assert budget({"needs_tokens": 482}, floor=64, cap=384) == 384           # capped
    assert budget({"needs_tokens": 50}, floor=64, cap=384) == 64             # never below the recipe's limit
    assert budget({"max_new_tokens": 200, "needs_tokens": 482}, 64, 384) == 200  # a row's own budget wins
    assert budget({"needs_tokens": 0}, 64, 384) == 64 and budget({}, 64, 384) is None


def test_apply_budgets_sets_each_prompt_and_leaves_budgets_off_alone():
    prompts = [Prompt("long", ({"role": "user", "content": "q"},), {"needs_tokens": 482}),
               Prompt("short", ({"role": "user", "content": "q"},), {"needs_tokens": 0}),
               Prompt("file", ({"role": "user", "content": "q"},), {"max_new_tokens": 32})]
    budgeted = apply_budgets(prompts, floor=64, cap=384)
    assert [p.meta.get("max_new_tokens") for p in budgeted] == [384, 64, 64]
    assert apply_budgets(prompts, 64, None) == prompts and "max_new_tokens" not in prompts[0].meta
    params = SamplingParams(max_new_tokens=64, temperature=0.7)
    assert with_budget(params, budgeted[0].meta) == SamplingParams(max_new_tokens=384, temperature=0.7)
    assert with_budget(params, budgeted[1].meta) is params and with_budget(params, {}) is params


def test_the_pack_records_what_its_constraints_need_and_the_recipe_caps_it(tmp_path):
    from offline_arena.config import Recipe
    from offline_arena.shards import heldout_prompts, stage_prompts

    settings = {"name": "t", "target": "x", "opponents": [{"name": "o", "model": "builtin:smollm2-135m-instruct"}],
                "stages": [{"kind": "sft"}], "prompts": {"per_stage": 24, "heldout": 24, "short_answers": False},
                "generation": {"max_new_tokens": 64, "max_budget": 256}}
    recipe = Recipe.model_validate(settings)
    shard = stage_prompts(recipe, 1, "sft")
    budgets = [p.meta.get("max_new_tokens") for p in shard]
    assert all(64 <= b <= 256 for b in budgets) and len(set(budgets)) > 1
    for prompt, b in zip(shard, budgets):
        assert b == min(max(64, needed_tokens(prompt.meta["constraints"])), 256)
    assert all(p.meta.get("max_new_tokens") for p in heldout_prompts(recipe))
    off = Recipe.model_validate({**settings, "generation": {"max_new_tokens": 64}})
    assert not any("max_new_tokens" in p.meta for p in stage_prompts(off, 1, "sft"))


class RecordingGenerator:
    """A contestant that records what it was asked (the pipeline under test is the request building)."""

    fingerprint = "recording"

    def __init__(self):
        self.asked: list[GenerationRequest] = []

    def render(self, messages):
        return str(messages)

    def generate(self, requests):
        self.asked.extend(requests)
        return [Completion("ok", True, 1) for _ in requests]

    def keys(self, requests):
        return [f"k{i}" for i, _ in enumerate(requests)]


def test_battles_and_the_heldout_evaluation_ask_each_prompt_for_its_budget():
    from offline_arena.battles import _answering_calls
    from offline_arena.evals.heldout import evaluate_generator

    prompts = {p.id: p for p in apply_budgets(
        [Prompt("long", ({"role": "user", "content": "a"},), {"needs_tokens": 482, "constraints": [WORDS_300]}),
         Prompt("short", ({"role": "user", "content": "b"},), {"needs_tokens": 0, "constraints": [NO_COMMA]})],
        floor=64, cap=384)}
    params = SamplingParams(max_new_tokens=64, temperature=0.7)
    contestant = RecordingGenerator()
    for call in _answering_calls({"t": prompts}, {"t": contestant}, params, seed=0):
        call()
    assert [r.params.max_new_tokens for r in contestant.asked] == [384, 64]
    evaluator = RecordingGenerator()
    evaluate_generator(evaluator, list(prompts.values()), SamplingParams(max_new_tokens=64, temperature=0.0))
    assert [r.params.max_new_tokens for r in evaluator.asked] == [384, 64]


def test_each_row_of_a_batch_stops_at_its_own_limit(lively_generator):
    """The decoder takes one limit per row: a row at 3 tokens says exactly the first 3 tokens it says at 9,
    and rows with other limits in the same batch say what they say alone."""
    from offline_arena.models.decode import decode

    g = lively_generator
    texts = [g.render([{"role": "user", "content": q}]) for q in ("Hi there", "Name a colour", "Say yes")]
    inputs = g.tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False)
    full, _ = decode(g.model, inputs["input_ids"], inputs["attention_mask"], 9, g.stop_ids)
    mixed, _ = decode(g.model, inputs["input_ids"], inputs["attention_mask"], [3, 9, 1], g.stop_ids)
    assert [len(t) for t in mixed] == [min(3, len(full[0])), len(full[1]), 1]
    assert mixed == [full[0][:3], full[1], full[2][:1]]
    with pytest.raises(ValueError, match="token limits"):
        decode(g.model, inputs["input_ids"], inputs["attention_mask"], [3, 9], g.stop_ids)


def test_a_generator_batches_prompts_of_different_budgets_together(lively_generator):
    requests = [GenerationRequest.of([{"role": "user", "content": q}], params=SamplingParams(n, temperature=0.0))
                for q, n in (("Hi there", 2), ("Name a colour", 7), ("Say yes", 4))]
    before = lively_generator.batches_run
    answers = lively_generator.generate(requests)
    assert lively_generator.batches_run - before == 1
    assert [a.num_tokens <= n for a, n in zip(answers, (2, 7, 4))] == [True] * 3
    alone = [lively_generator.generate([r])[0] for r in requests]
    assert [a.text for a in answers] == [a.text for a in alone]


def test_the_guard_probes_each_prompt_at_its_budget(lively_generator):
    from offline_arena.train.guard import runaway_rate

    g = lively_generator
    probes = [[{"role": "user", "content": q}] for q in ("Hi there", "Name a colour")]
    # The lively pico model never emits <|im_end|> within a few tokens: every probe is a runaway at any
    # small limit, so what differs is only whether per-probe limits are accepted and matched to probes.
    assert runaway_rate(g.model, g.tokenizer, probes, [2, 3, 99]) == 1.0
    with pytest.raises(ValueError, match="probe token limits"):
        runaway_rate(g.model, g.tokenizer, probes, [2])


def test_ppo_rollouts_honour_each_prompts_budget(pico_model_dir):
    from offline_arena.models.chat import stop_token_ids
    from offline_arena.train.common import load_policy
    from offline_arena.train.ppo import PPOSettings
    from offline_arena.train.ppo_rollout import sample_rollouts

    model, tokenizer = load_policy(pico_model_dir)
    prompts = [[{"role": "user", "content": q}] for q in ("Hi", "Name a colour", "Say yes")]
    rollout = sample_rollouts(model, tokenizer, prompts, stop_token_ids(tokenizer, model.generation_config),
                               PPOSettings(max_new_tokens=8), torch.device("cpu"), seed=0, budgets=[2, 8, 5])
    lengths = rollout.mask.sum(-1).tolist()
    assert all(n <= b for n, b in zip(lengths, [2, 8, 5])) and lengths[0] <= 2 < max(lengths), lengths
    # A rollout cut at its own budget is a runaway, though the batch pads it with <|im_end|> (pad == eos).
    cut = [n == b and not s for n, b, s in zip(lengths, [2, 8, 5], rollout.stopped.tolist())]
    assert cut[0] or rollout.stopped[0], (lengths, rollout.stopped)


def test_train_job_hands_the_guard_each_prompts_budget(tmp_path):
    from types import SimpleNamespace

    from offline_arena.config import Recipe
    from offline_arena.pipeline.stages import train_job

    recipe = Recipe.model_validate({"name": "t", "target": "x", "opponents": [{"name": "o", "model": "builtin:smollm2-135m-instruct"}],
                                    "stages": [{"kind": "sft"}], "generation": {"max_new_tokens": 64, "max_budget": 384}})
    prompts = apply_budgets([Prompt("a", ({"role": "user", "content": "q"},), {"needs_tokens": 482}),
                             Prompt("b", ({"role": "user", "content": "q"},), {})], 64, 384)
    ctx = SimpleNamespace(recipe=recipe)
    job = train_job(ctx, recipe.stages[0], str(tmp_path), [], prompts, SimpleNamespace())
    assert job.settings.probe_max_new_tokens == [384, 64]
    plain = train_job(ctx, recipe.stages[0], str(tmp_path), [], apply_budgets(prompts[1:], 64, 384), SimpleNamespace())
    assert plain.settings.probe_max_new_tokens == 64
