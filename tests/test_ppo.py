"""PPO: hand-worked maths (torchtune/TRL style), pico-model runs in seconds (one of them a learning check that
the normal suite runs), one slow real-model run."""

from __future__ import annotations

import json
import math
import time

import pytest
import torch

from offline_arena.train import ppo_math as pm

T, F = True, False


# ---------------------------------------------------------------------------------------------- pure maths

def test_masked_mean_ignores_padding():
    values = torch.tensor([[1.0, 2.0, 99.0], [4.0, 99.0, 99.0]])
    mask = torch.tensor([[T, T, F], [T, F, F]])
    assert pm.masked_mean(values, mask).item() == pytest.approx((1 + 2 + 4) / 3)
    assert pm.masked_mean(values, mask, dim=1).tolist() == pytest.approx([1.5, 4.0])


def test_masked_whiten_by_hand():
    # valid values 1, 2, 3: mean 2, squared deviations 1, 0, 1 -> biased var 2/3, unbiased (×3/2) 1
    values = torch.tensor([[1.0, 2.0, 3.0, 100.0]])
    mask = torch.tensor([[T, T, T, F]])
    assert pm.masked_var(values, mask).item() == pytest.approx(1.0)
    assert pm.masked_whiten(values, mask).tolist()[0] == pytest.approx([-1.0, 0.0, 1.0, 0.0], abs=1e-6)
    # without centring: (x - 2) / 1 + 2 = x; padding still 0
    assert pm.masked_whiten(values, mask, shift_mean=False).tolist()[0] == pytest.approx([1.0, 2.0, 3.0, 0.0], abs=1e-6)
    # scale: values 2, 4, 6 have unbiased var 4 -> (x - 4) / 2
    assert pm.masked_whiten(2 * values, mask).tolist()[0] == pytest.approx([-1.0, 0.0, 1.0, 0.0], abs=1e-6)


def test_response_mask_keeps_the_stop_token_even_when_pad_is_the_stop_token():
    eot = pad = 2  # SmolLM2: pad == eos == <|im_end|>
    responses = torch.tensor([[5, 7, eot, pad, pad], [5, 7, 8, 9, 10], [eot, pad, pad, pad, pad]])
    mask, stopped = pm.response_mask(responses, [eot, 0])
    assert mask.tolist() == [[T, T, T, F, F], [T, T, T, T, T], [T, F, F, F, F]]
    assert stopped.tolist() == [T, F, T]
    assert pm.last_valid_index(mask).tolist() == [2, 4, 0]
    # A row cut at a budget of its own (2 tokens) is padded like a finished one: its pad is no stop.
    mask, stopped = pm.response_mask(responses[:1].clone().index_fill_(1, torch.tensor([2]), pad), [eot], lengths=[2])
    assert mask.tolist() == [[T, T, F, F, F]] and stopped.tolist() == [F]


def test_kl_penalised_rewards_by_hand():
    # kl = logp - ref = [0.5, -1.0]; r = -0.1 * kl = [-0.05, 0.1]; score 1.0 lands on the last valid token
    logprobs = torch.tensor([[-1.0, -2.0, -7.0]])
    ref = torch.tensor([[-1.5, -1.0, -3.0]])
    mask = torch.tensor([[T, T, F]])
    rewards, kl = pm.kl_penalised_rewards(torch.tensor([1.0]), logprobs, ref, mask, kl_coef=0.1)
    assert kl.tolist()[0] == pytest.approx([0.5, -1.0, 0.0])
    assert rewards.tolist()[0] == pytest.approx([-0.05, 1.1, 0.0])


def test_gae_by_hand_lambda_one_and_one_half():
    # rewards r = [0.1, 0, 1], values V = [0.2, 0.4, 0.6], γ = 1, V after the end = 0:
    #   δ2 = 1   + 0   - 0.6 = 0.4
    #   δ1 = 0   + 0.6 - 0.4 = 0.2
    #   δ0 = 0.1 + 0.4 - 0.2 = 0.3
    # λ = 1:   A2 = 0.4, A1 = 0.2 + 0.4 = 0.6, A0 = 0.3 + 0.6 = 0.9; R = A + V = [1.1, 1.0, 1.0]
    #          (= the undiscounted sums of future rewards, as Monte Carlo returns must be)
    # λ = 0.5: A2 = 0.4, A1 = 0.2 + 0.5·0.4 = 0.4, A0 = 0.3 + 0.5·0.4 = 0.5; R = [0.7, 0.8, 1.0]
    # A fourth, padded position holds junk that must not leak into the valid ones.
    rewards = torch.tensor([[0.1, 0.0, 1.0, 50.0]])
    values = torch.tensor([[0.2, 0.4, 0.6, -30.0]])
    mask = torch.tensor([[T, T, T, F]])
    adv, ret = pm.gae(rewards, values, mask, gamma=1.0, lam=1.0)
    assert adv.tolist()[0] == pytest.approx([0.9, 0.6, 0.4, 0.0])
    assert ret.tolist()[0] == pytest.approx([1.1, 1.0, 1.0, 0.0])
    adv, ret = pm.gae(rewards, values, mask, gamma=1.0, lam=0.5)
    assert adv.tolist()[0] == pytest.approx([0.5, 0.4, 0.4, 0.0])
    assert ret.tolist()[0] == pytest.approx([0.7, 0.8, 1.0, 0.0])


def test_gae_discount():
    # γ = 0.5, λ = 1, values 0, rewards [0, 0, 1]: A = [0.25, 0.5, 1]
    adv, _ = pm.gae(torch.tensor([[0.0, 0.0, 1.0]]), torch.zeros(1, 3), torch.ones(1, 3, dtype=torch.bool),
                    gamma=0.5, lam=1.0)
    assert adv.tolist()[0] == pytest.approx([0.25, 0.5, 1.0])


@pytest.mark.parametrize("ratio, advantage, expected, clipped", [
    (1.1, 1.0, -1.1, False),   # inside [0.8, 1.2]: -A·ρ
    (1.5, 1.0, -1.2, True),    # ρ above 1+ε with A > 0: max(-1.5, -1.2) = -1.2, clipped (no gradient)
    (0.5, 1.0, -0.5, False),   # ρ below 1-ε with A > 0: max(-0.5, -0.8) = -0.5, the pessimistic unclipped term
    (1.5, -1.0, 1.5, False),   # ρ above 1+ε with A < 0: max(1.5, 1.2) = 1.5, unclipped
    (0.5, -1.0, 0.8, True),    # ρ below 1-ε with A < 0: max(0.5, 0.8) = 0.8, clipped
])
def test_policy_loss_clipping_by_hand(ratio, advantage, expected, clipped):
    old = torch.tensor([[-1.0, -5.0]])
    new = torch.tensor([[-1.0 + math.log(ratio), 3.0]], requires_grad=True)  # second position is padding
    mask = torch.tensor([[T, F]])
    loss, stats = pm.policy_loss(new, old, torch.tensor([[advantage, 100.0]]), mask, cliprange=0.2)
    assert loss.item() == pytest.approx(expected, rel=1e-5)
    assert stats["clipfrac"] == (1.0 if clipped else 0.0)
    loss.backward()
    grad = new.grad[0, 0].item()
    # d(-A·ρ)/d logπ = -A·ρ when unclipped, 0 when clipped
    assert grad == pytest.approx(0.0 if clipped else -advantage * ratio, abs=1e-6)
    assert new.grad[0, 1].item() == 0.0


def test_value_loss_clipping_by_hand():
    old = torch.tensor([[0.0]])
    returns = torch.tensor([[1.0]])
    mask = torch.tensor([[T]])
    # V = 0.5 moved 0.5 > ε_v = 0.2 from V_old: V_clip = 0.2; max((0.5-1)², (0.2-1)²) = 0.64; ½·0.64 = 0.32
    loss, stats = pm.value_loss(torch.tensor([[0.5]]), old, returns, mask, cliprange_value=0.2)
    assert loss.item() == pytest.approx(0.32)
    assert stats["value_clipfrac"] == 1.0
    # V = 0.1 inside the range: ½·(0.1-1)² = 0.405
    loss, stats = pm.value_loss(torch.tensor([[0.1]]), old, returns, mask, cliprange_value=0.2)
    assert loss.item() == pytest.approx(0.405)
    assert stats["value_clipfrac"] == 0.0


def test_adaptive_kl_controller_by_hand():
    # β = 0.1, KL target 6, K_β = 0.1 ([Z19] sec. 2.2)
    controller = pm.AdaptiveKLController(0.1, target=6.0, gain=0.1)
    assert controller.update(9.0) == pytest.approx(0.102)        # e = clip(0.5) = 0.2: β·1.02
    controller.value = 0.1
    assert controller.update(6.6) == pytest.approx(0.101)        # e = 0.1: β·1.01
    controller.value = 0.1
    assert controller.update(3.0) == pytest.approx(0.098)        # e = clip(-0.5) = -0.2: β·0.98
    controller.value = 0.1
    assert controller.update(6.0) == pytest.approx(0.1)          # on target: unchanged
    assert pm.FixedKLController(0.05).update(100.0) == 0.05


# ---------------------------------------------------------------------------------------------- pico models

PROMPTS = [[{"role": "user", "content": text}] for text in
           ["Say hello.", "Name a colour.", "What is two plus two?", "Write a short greeting for a friend."]]


def letter_a_share(messages, text):
    letters = [c for c in text.lower() if c.isalpha()]
    return sum(c == "a" for c in letters) / len(letters) if letters else 0.0


def _pico_settings(**overrides):
    from offline_arena.train.ppo import PPOSettings

    base = dict(steps=2, rollouts_per_step=4, minibatch_size=2, ppo_epochs=2, learning_rate=1e-3,
                max_new_tokens=8, temperature=1.0, probe_prompts=2, probe_max_new_tokens=4,
                runaway_tolerance=1.0, missing_eos_penalty=0.5)
    base.update(overrides)
    return PPOSettings(**base)


def _weights(path):
    from safetensors.torch import load_file

    return load_file(str(path / "model.safetensors"))


def _assert_loads_and_generates(checkpoint):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(checkpoint)
    tokenizer = AutoTokenizer.from_pretrained(checkpoint)
    ids = tokenizer.apply_chat_template(PROMPTS[0], add_generation_prompt=True, return_tensors="pt", return_dict=True)
    out = model.generate(**ids, max_new_tokens=3, do_sample=False, pad_token_id=tokenizer.pad_token_id)
    assert out.shape[1] > ids["input_ids"].shape[1]


def test_ppo_pico_callable_reward(pico_model_dir, tmp_path):
    from offline_arena.train.ppo import train_ppo

    started = time.perf_counter()
    seen = []

    def reward(messages, text):
        seen.append(messages[-1]["content"])
        return letter_a_share(messages, text)

    result = train_ppo(pico_model_dir, PROMPTS, tmp_path, _pico_settings(samples_per_prompt=2), reward_fn=reward,
                       probe_messages=PROMPTS[:2])
    # 2 steps x 4 rollouts = 2 prompts x 2 samples per step, all 4 prompts once over the run
    assert len(seen) == 8 and seen[0] == seen[1] and seen[2] == seen[3]
    assert sorted(set(seen)) == sorted(p[0]["content"] for p in PROMPTS)
    curve = result.metrics["curve"]
    assert len(curve) == 2
    for record in curve:
        for key in ("mean_score", "mean_kl", "kl_coef", "policy_loss", "value_loss", "entropy"):
            assert math.isfinite(record[key]), (key, record)
    # the first step's rollouts come from the reference itself: KL exactly 0 (same weights, same inputs)
    assert curve[0]["mean_kl"] == pytest.approx(0.0, abs=1e-5)

    before, after = _weights(pico_model_dir), _weights(result.checkpoint)
    assert set(before) == set(after), "the checkpoint must hold the causal LM only (no value head)"
    changed = [name for name in before if not torch.equal(before[name], after[name])]
    assert len(changed) >= len(before) // 2, changed
    _assert_loads_and_generates(result.checkpoint)

    saved = json.loads((tmp_path / "metrics.json").read_text())
    assert saved["stage"] == "ppo" and len(saved["curve"]) == 2
    assert saved["guard"]["runaway_before"] is not None and saved["guard"]["runaway_after"] is not None
    assert saved["settings"]["steps"] == 2
    assert time.perf_counter() - started < 60


def test_ppo_pico_lora_adaptive_kl(pico_model_dir, tmp_path):
    from offline_arena.train.ppo import train_ppo

    settings = _pico_settings(lora=True, lora_r=4, adaptive_kl=True, target_kl=0.01, init_kl_coef=0.1,
                              whiten_rewards=True, probe_prompts=0, learning_rate=1e-2)
    result = train_ppo(pico_model_dir, PROMPTS, tmp_path, settings, reward_fn=letter_a_share)
    curve = result.metrics["curve"]
    assert curve[0]["kl_coef"] == pytest.approx(0.1)
    # step 1 has KL 0 (< target): e = -0.2 at most -> β = 0.1 · (1 - 0.1·0.2) = 0.098
    assert curve[1]["kl_coef"] == pytest.approx(0.098)
    before, after = _weights(pico_model_dir), _weights(result.checkpoint)
    assert set(before) == set(after)  # LoRA merged away
    assert any(not torch.equal(before[n], after[n]) for n in before)
    _assert_loads_and_generates(result.checkpoint)


def test_ppo_pico_reward_model(pico_model_dir, pico_reward_dir, tmp_path):
    from offline_arena.train.ppo import train_ppo

    reward_dir = pico_reward_dir
    settings = _pico_settings(steps=1, probe_prompts=0)
    result = train_ppo(pico_model_dir, PROMPTS, tmp_path / "run", settings, reward_model_path=reward_dir)
    record = result.metrics["curve"][0]
    assert math.isfinite(record["mean_score"]) and record["mean_score"] != 0.0
    assert math.isfinite(record["policy_loss"]) and math.isfinite(record["value_loss"])
    _assert_loads_and_generates(result.checkpoint)


def two_word_policy(src, dst):
    """A pico policy that answers with the words " yes" and " no", about evenly, and hardly anything else.
    Every token embedding (tied: input and output) gets 1 in residual dimension 0, the two words 3; the layers'
    norms ignore that dimension (weight 0), so nothing reads it and it stays a constant, dominant part of the
    residual stream. After the final norm it gives the two words logits ~3x everyone else's: ~15 nats ahead
    of each other token, ~4 nats beyond all 49k of them together. The random rest of the model still varies
    the logits a little by context, so PPO has a real, trainable choice to make at every token. (Letting the
    layers read dimension 0 amplifies every update through it and washes the margin out within a few steps;
    an untouched random pico model spreads its samples over 49k tokens, too thin for a few steps to learn.)"""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer, model = AutoTokenizer.from_pretrained(str(src)), AutoModelForCausalLM.from_pretrained(str(src))
    words = [tokenizer.convert_tokens_to_ids(t) for t in ("Ġyes", "Ġno")]
    assert tokenizer.decode(words) == " yes no"
    with torch.no_grad():
        embedding = model.get_input_embeddings().weight
        embedding[:, 0] = 1.0
        embedding[words, 0] = 3.0
        for layer in model.model.layers:
            layer.input_layernorm.weight[0] = 0.0
            layer.post_attention_layernorm.weight[0] = 0.0
    model.save_pretrained(dst)
    tokenizer.save_pretrained(dst)
    return dst


def word_share(word):
    def reward(messages, text):
        words = text.split()
        return sum(w == word for w in words) / len(words) if words else 0.0

    return reward


@pytest.mark.parametrize("word", ["yes", "no"])
def test_ppo_pico_learns_a_verifiable_reward(pico_model_dir, tmp_path, word):
    """PPO raises the reward it is given, whichever of the two symmetric rewards that is: the share of
    "yes" (or of "no") among the answer's words starts near 0.5 and, over 16 steps of 8 rollouts, climbs
    (+0.12 to +0.34 over seeds 0-11, both words, float32 and bf16, last five steps against the first two). Both
    directions must climb, so drift of the rigged policy towards one word cannot pass for learning. At the
    learning rate 1e-3 this test once used, 2 of 12 seeds blew the rigged policy up into noise (KL 34 in one
    step) after the rollouts' random stream changed. The CI suite's PPO learning check (the real-model one is
    `slow`: minutes on 2 cores)."""
    from offline_arena.train.ppo import PPOSettings, train_ppo

    started = time.perf_counter()
    policy = two_word_policy(pico_model_dir, tmp_path / "policy")
    settings = PPOSettings(steps=16, rollouts_per_step=8, samples_per_prompt=2, minibatch_size=4, ppo_epochs=2,
                           learning_rate=5e-4, init_kl_coef=0.05, max_new_tokens=6, temperature=1.0,
                           missing_eos_penalty=None, probe_prompts=0, seed=0)
    result = train_ppo(policy, PROMPTS, tmp_path / "run", settings, reward_fn=word_share(word))
    scores = [r["mean_score"] for r in result.metrics["curve"]]
    first, last = sum(scores[:2]) / 2, sum(scores[-5:]) / 5
    assert 0.3 < first < 0.7, scores  # the start really is a near-even choice
    assert last > first + 0.1, scores
    assert time.perf_counter() - started < 120


def test_reward_model_scores_do_not_depend_on_batch_padding(pico_reward_dir):
    from offline_arena.train.ppo_scoring import RewardModelScorer

    scorer = RewardModelScorer(pico_reward_dir, torch.device("cpu"), batch_size=4)
    texts = ["ok", "a much longer answer with many more tokens in it than the first"]
    together = scorer(PROMPTS[:2], texts, [True, True])
    alone = [scorer([p], [t], [True])[0] for p, t in zip(PROMPTS[:2], texts)]
    assert together == pytest.approx(alone, abs=1e-5)


def test_a_rollout_that_hits_the_limit_scores_below_the_same_text_that_stopped(pico_reward_dir):
    """RL must reward stopping: the penalty lands on runaways only, and the reward model sees a truncated
    rollout as an open turn, never closed by the end-of-turn token as if it had ended."""
    from offline_arena.models.chat import reward_input_ids
    from offline_arena.train.ppo import PPOSettings
    from offline_arena.train.ppo_scoring import RewardModelScorer

    scores = pm.penalise_runaways(torch.tensor([0.7, 0.7]), torch.tensor([True, False]),
                                  PPOSettings().missing_eos_penalty)
    assert scores[1] < scores[0] and scores.tolist() == pytest.approx([0.7, -0.3])
    assert pm.penalise_runaways(torch.tensor([0.7]), torch.tensor([False]), None).tolist() == pytest.approx([0.7])
    scorer = RewardModelScorer(pico_reward_dir, torch.device("cpu"), batch_size=4)
    conversation = [*PROMPTS[0], {"role": "assistant", "content": "an answer"}]
    finished, cut = (reward_input_ids(scorer.reader.tokenizer, conversation, stopped) for stopped in (True, False))
    decode = scorer.reader.tokenizer.decode
    assert decode(finished).rstrip().endswith("<|im_end|>") and decode(cut).endswith("an answer")
    assert finished[:len(cut)] == cut
    assert scorer(PROMPTS[:1], ["an answer"], [True]) != scorer(PROMPTS[:1], ["an answer"], [False])


def test_logprobs_do_not_depend_on_batch_padding(pico_model_dir):
    """Log-probs of a rollout in a left/right-padded batch equal those of the rollout alone: positions and
    masks are right, so the ratio is 1 before the first update."""
    from offline_arena.models.chat import stop_token_ids
    from offline_arena.train.common import load_policy
    from offline_arena.train.ppo_rollout import batched_forward, sample_rollouts

    model, tokenizer = load_policy(pico_model_dir)
    model.eval()
    torch.manual_seed(0)
    settings = _pico_settings(max_new_tokens=6)
    stops = stop_token_ids(tokenizer, model.generation_config)
    rollout = sample_rollouts(model, tokenizer, [list(p) for p in PROMPTS], stops, settings, torch.device("cpu"), seed=0)
    value_head = torch.nn.Linear(model.config.hidden_size, 1)
    with torch.no_grad():
        batch_lp, batch_v, _ = batched_forward(model, value_head, rollout, settings)
        for row in range(len(PROMPTS)):
            alone = rollout.select([row])
            lp, v, _ = batched_forward(model, value_head, alone, settings)
            width = lp.shape[1]
            assert torch.allclose(batch_lp[row, :width], lp[0], atol=1e-4)
            assert torch.allclose(batch_v[row, :width], v[0], atol=1e-4)
            assert torch.all(batch_lp[row, width:] == 0)


def test_stop_token_guard_rejects_rollouts_that_cannot_stop_on_end_of_turn(smol_tokenizer_dir):
    from transformers import AutoTokenizer

    from offline_arena.models.chat import end_of_turn_token_id
    from offline_arena.train.guard import StopTokenGuardError
    from offline_arena.train.ppo import assert_end_of_turn_in_stop_ids

    tokenizer = AutoTokenizer.from_pretrained(smol_tokenizer_dir)
    eot = end_of_turn_token_id(tokenizer)
    assert_end_of_turn_in_stop_ids([eot], tokenizer)
    with pytest.raises(StopTokenGuardError, match="end-of-turn"):
        assert_end_of_turn_in_stop_ids([t for t in range(5) if t != eot], tokenizer)


def test_train_ppo_needs_a_reward(pico_model_dir, tmp_path):
    from offline_arena.train.ppo import train_ppo

    with pytest.raises(ValueError, match="needs a reward_fn, a reward_model_path, or both"):
        train_ppo(pico_model_dir, PROMPTS, tmp_path, _pico_settings())
    with pytest.raises(ValueError, match="samples_per_prompt"):
        train_ppo(pico_model_dir, PROMPTS, tmp_path, _pico_settings(samples_per_prompt=3), reward_fn=letter_a_share)


# ---------------------------------------------------------------------------------------------- real model

def lowercase_share(messages, text):
    """Share of lowercase letters among the completion's letters; 0 for a completion with no letters."""
    letters = [c for c in text if c.isalpha()]
    return sum(c.islower() for c in letters) / len(letters) if letters else 0.0


@pytest.mark.slow
@pytest.mark.timeout(1800)  # ~5 min on a quiet 2-core machine; shared cores can make it several times slower
def test_ppo_real_model_learns_lowercase(tmp_path):
    """SmolLM2-135M answers ALL-CAPS shouting prompts by echoing capitals about half of the time (mean
    lowercase share ≈ 0.5-0.7 at the start): an early, per-sample choice that PPO can credit, so ten
    steps of 8 rollouts move the mean score clearly while the KL to the reference stays small."""
    from offline_arena.models.builtin import materialise
    from offline_arena.train.ppo import PPOSettings, train_ppo

    prompts = [[{"role": "user", "content": t}] for t in
               ["SHOUT SOMETHING ENCOURAGING AT ME!", "SHOUT A WARNING ABOUT A WET FLOOR!"]]
    probes = [[{"role": "user", "content": t}] for t in
              ["What is the capital of France?", "Name a fruit that is yellow.", "How many legs does a spider have?",
               "What colour is grass?", "Say hello in French.", "What is 3 plus 4?", "Name a large ocean.",
               "What do bees make?"]]
    settings = PPOSettings(steps=10, rollouts_per_step=8, samples_per_prompt=4, minibatch_size=4, ppo_epochs=2,
                           learning_rate=2e-5, init_kl_coef=0.05, max_new_tokens=24, temperature=0.7,
                           probe_prompts=8, probe_max_new_tokens=64, runaway_tolerance=0.25, seed=0)
    started = time.perf_counter()
    result = train_ppo(materialise("smollm2-135m-instruct"), prompts, tmp_path, settings,
                       reward_fn=lowercase_share, probe_messages=probes)
    wall = time.perf_counter() - started
    curve = result.metrics["curve"]
    print(f"\nPPO real-model curve (wall {wall:.0f} s, guard {result.guard.as_dict()}):")
    for r in curve:
        print(f"  step {r['step']:2d}  score {r['mean_score']:.3f}  kl {r['mean_kl']:6.3f}  beta {r['kl_coef']:.3f}  "
              f"pg {r['policy_loss']:+.3f}  vf {r['value_loss']:.3f}  stop {r['stopped_rate']:.2f}  "
              f"{r['seconds']:5.1f}s  {r['sample'][:50]!r}")
    scores = [r["mean_score"] for r in curve]
    first, last = sum(scores[:3]) / 3, sum(scores[-3:]) / 3
    print(f"  mean score first 3 steps {first:.3f} -> last 3 steps {last:.3f}")
    assert last > first + 0.05, scores
    assert max(r["mean_kl"] for r in curve) < 15.0  # nats per completion, summed over its tokens
    assert all(math.isfinite(r["policy_loss"]) and math.isfinite(r["value_loss"]) for r in curve)


def test_grpo_stop_penalty_scores_a_cut_answer_below_the_same_text_that_ended():
    from offline_arena.train.grpo import constraint_reward, stop_penalty

    penalty = stop_penalty([2], 1.0)
    text = [{"role": "assistant", "content": "all lowercase"}]
    rule = '[{"id": "change_case:english_lowercase", "params": {}}]'
    base = constraint_reward([text, text], [rule, rule])
    total = [b + p for b, p in zip(base, penalty([text, text], completion_ids=[[5, 6, 2], [5, 6, 7]]))]
    assert base == [1.0, 1.0] and total == [1.0, 0.0]


def test_verifier_reward_is_the_share_of_constraints_met():
    from offline_arena.judges.verifier import verifier_reward
    from offline_arena.prompts.sources import Prompt

    constraints = [{"id": "change_case:english_lowercase", "params": {}}, {"id": "punctuation:no_comma", "params": {}}]
    prompt = Prompt("p", ({"role": "user", "content": "hi"},), {"constraints": constraints})
    reward = verifier_reward([prompt])
    assert reward([{"role": "user", "content": "hi"}], "lower, comma") == 0.5
    assert reward([{"role": "user", "content": "hi"}], "lower no comma") == 1.0
    with pytest.raises(ValueError, match="checkable constraints"):
        verifier_reward([Prompt("q", ({"role": "user", "content": "x"},), {})])
