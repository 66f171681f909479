"""PPO for language models, our own (TRL 1.x removed its PPO trainer).

One PPO step ([Z19] sec. 2, [N+] for the details that matter in practice):

1. Rollouts: sample one completion per prompt from the policy (left-padded prompts, pure sampling at
   `temperature` with no top-k/top-p so the sampling distribution is exactly the π we differentiate),
   stopping on the end-of-turn token. Everything after the first stop token is masked out; the stop token
   itself stays in, so emitting it is an action the policy is credited for.
2. Under no grad: per-token log-probs of the sampled tokens under the policy and the frozen reference,
   and value estimates V(s_t) from the value head; logits are divided by the sampling temperature
   everywhere ([N+] detail), so old and new log-probs describe the distribution actually sampled from.
3. Score each completion (a Python `reward_fn` or a reward model), subtract `missing_eos_penalty` from
   completions that never stopped, build per-token rewards r_t = -β·(log π - log π_ref), plus the score
   at the last token ([Z19] eq. 2); optionally whiten the rewards.
4. GAE advantages and λ-returns ([GAE]); advantages whitened over valid tokens.
5. `ppo_epochs` passes over shuffled minibatches: clipped policy loss ([PPO] eq. 7) + vf_coef × clipped
   value loss, gradient-norm clipping, one Adam step per minibatch.
6. β update: fixed, or the adaptive controller of [Z19] sec. 2.2.

Design choices (CPU first):
- The value head is a scalar linear layer on the policy's final hidden states: a *shared trunk*. One
  forward pass gives log-probs and values, and only one model's weights and Adam state sit in memory —
  what a 2-core, 24 GiB machine can afford (a separate value model doubles both). The cost is that the
  value loss also moves the policy's trunk; the head starts at zero (so V = 0 and, at first, no value
  gradient reaches the trunk) and `vf_coef` keeps the value loss small. The head is not saved: the
  checkpoint is a plain causal LM.
- The reference model is a frozen deep copy of the initial policy; with `lora=True` it is the same model
  with the adapters switched off (no copy at all).
- Dropout is off throughout (model.eval()), so the first minibatch sees ratio = 1 exactly ([N+]).
- The response mask is built from the stop ids, not from the pad id. TRL's PPOv2 derived it from the pad
  id, which with pad == eos (SmolLM2) drops the end-of-turn token from the policy loss — the stop-token
  lesson in docs/architecture.md.

Modules: ppo_rollout.py (rollouts, forward passes), ppo_scoring.py (reward function / reward model),
ppo_math.py (losses, GAE, KL control; its references).
"""

from __future__ import annotations

import copy
import json
import math
import random
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Sequence

from ..models.chat import end_of_turn_token_id, stop_token_ids
from ..progress import progress_bar
from ..run_folder import CHECKPOINT, METRICS
from .common import TrainResult, train_default, load_policy, loss_summary, on_gpu, recipe_default, save_checkpoint
from .guard import GuardReport, StopTokenGuardError, check_runaway, runaway_rate
from .ppo_rollout import Rollouts, batched_forward, forward, sample_rollouts
from .ppo_scoring import CombinedScorer, Messages, RewardFn


def _ppo_default(name: str):
    from ..config import PPO

    return recipe_default(PPO, name)


@dataclass
class PPOSettings:
    """PPO knobs. Those a recipe sets (`config.PPO`) default to the recipe's defaults, which suit the 135M
    builtin model on 2 CPU cores (about 10 s per step); the rest are PPO details."""

    steps: int = _ppo_default("steps")                     # PPO iterations; each samples fresh rollouts
    rollouts_per_step: int = _ppo_default("rollouts_per_step")  # completions sampled per iteration
    samples_per_prompt: int = 1        # completions per prompt per iteration (divides rollouts_per_step)
    minibatch_size: int = 4            # rollouts per optimizer step
    ppo_epochs: int = 2                # passes over each iteration's rollouts
    learning_rate: float = _ppo_default("learning_rate")   # Adam learning rate (policy and value head)
    adam_eps: float = 1e-5             # Adam epsilon ([N+]: 1e-5 as in the original PPO code)
    max_grad_norm: float = 1.0         # clip the global gradient norm to this
    init_kl_coef: float = _ppo_default("init_kl_coef")     # β, weight of the per-token KL penalty
    # A recipe's `target_kl` (null: a fixed β) is both of these: adapt β towards it ([Z19] sec. 2.2).
    adaptive_kl: bool = _ppo_default("target_kl") is not None
    target_kl: float = _ppo_default("target_kl") or 6.0      # KL target in nats per completion
    kl_gain: float = 0.1               # K_β of the adaptive controller ([Z19] use 0.1)
    gamma: float = 1.0                 # discount γ in GAE (1: rewards are undiscounted within a completion)
    lam: float = 0.95                  # GAE λ (bias-variance trade-off of the advantage estimate)
    cliprange: float = 0.2             # ε of the clipped policy objective
    cliprange_value: float = 0.2       # ε_v of the clipped value loss
    vf_coef: float = 0.1               # weight of the value loss in the total loss
    max_new_tokens: int = _ppo_default("max_new_tokens")   # token limit of a rollout
    temperature: float = 0.7           # sampling temperature (log-probs use logits / temperature too)
    # Subtracted from the score of rollouts that never stop: a rollout cut at the token limit is no finished answer.
    missing_eos_penalty: float | None = _ppo_default("missing_eos_penalty")
    whiten_rewards: bool = False       # scale per-token rewards to unit variance over the batch
    forward_batch_size: int = 16       # rollouts per generation / no-grad forward pass
    lora: bool = train_default("lora")                    # LoRA adapters (merged when saved); reference = adapters off
    lora_r: int = train_default("lora_r")                 # LoRA rank
    lora_alpha: int = 32               # LoRA scaling
    seed: int = 0                      # prompt order, sampling and minibatch order
    probe_prompts: int = train_default("probe_prompts")   # runaway-rate probe size (0: no after-training check)
    probe_max_new_tokens: int | list[int] = 64  # token limit of a probe generation (or each probe's own)
    runaway_tolerance: float = train_default("runaway_tolerance")  # allowed rise of the runaway rate

    @classmethod
    def from_recipe(cls, ppo, train, **fixed) -> "PPOSettings":
        """Settings from a recipe's `config.PPO` (and its stage's `config.Train` for the guard and LoRA),
        plus `fixed` ones (the seed, the probes' token limit); `ppo.extra` sets any other field."""
        shared = {f.name for f in fields(cls)}
        values = {name: getattr(ppo, name) for name in shared & set(type(ppo).model_fields) if name != "target_kl"}
        values["adaptive_kl"] = ppo.target_kl is not None
        if ppo.target_kl is not None:
            values["target_kl"] = ppo.target_kl
        # The stage's training settings: the guard's, and LoRA (the reference is then the adapters-off model).
        values.update({name: getattr(train, name) for name in ("probe_prompts", "runaway_tolerance", "lora", "lora_r")})
        return cls(**{**values, **fixed, **ppo.extra})


def compute_autocast(device):
    """bf16 autocast where bf16 is fast (GPUs, CPUs with bf16 units), else nothing: the policy's weights are
    float32 master weights (`load_policy`), so small updates are not rounded away."""
    import contextlib

    import torch

    from ..models.dtype import compute_dtype

    if compute_dtype(device.type) == "bfloat16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def assert_end_of_turn_in_stop_ids(stop_ids: Sequence[int], tokenizer, where: str = "ppo stage") -> None:
    """PPO's pre-training stop-token check (there are no labels to inspect): rollouts must stop on the
    end-of-turn token, otherwise emitting it is never an action that ends an episode and gets credited,
    and the trained model learns to ramble past it."""
    eot = end_of_turn_token_id(tokenizer)
    if eot not in set(int(t) for t in stop_ids):
        name = tokenizer.convert_ids_to_tokens(eot)
        raise StopTokenGuardError(
            f"{where}: the end-of-turn token {name!r} (id {eot}) is not among the rollout stop tokens "
            f"{list(stop_ids)}; rollouts would run past the end of the answer and the policy would never be "
            "credited for stopping. Derive stop ids with offline_arena.models.chat.stop_token_ids.")


def train_ppo(model_path: str | Path, prompts: Sequence[Messages], out_dir: str | Path,
              settings: PPOSettings | None = None, reward_fn: RewardFn | None = None,
              reward_model_path: str | Path | None = None,
              probe_messages: Sequence[Messages] = (), budgets: Sequence[int] | None = None) -> TrainResult:
    """Train the causal LM at `model_path` with PPO on `prompts` (each a list of chat messages ending with
    a user turn) against `reward_fn(prompt_messages, completion_text) -> float` or the reward model at
    `reward_model_path` (AutoModelForSequenceClassification with num_labels=1). Writes
    `out_dir/metrics.json` (per-step curve) and `out_dir/checkpoint` (the policy without its value head,
    loadable with AutoModelForCausalLM), with the stop-token guard around training. `budgets`: each
    prompt's rollout token limit (its length budget; None: `settings.max_new_tokens` for all).

    Each step: rollouts (ppo_rollout.py), their scores and advantages (`_score_rollouts`), then the clipped
    updates (`_update`)."""
    import torch

    from . import ppo_math as pm

    settings = settings or PPOSettings()
    _validate(settings, prompts, reward_fn, reward_model_path)
    if budgets is not None and len(budgets) != len(prompts):
        raise ValueError(f"train_ppo: {len(budgets)} token budgets for {len(prompts)} prompts")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(settings.seed)
    device = torch.device("cuda" if on_gpu() else "cpu")

    model, tokenizer = load_policy(model_path, lora=settings.lora)
    model.to(device)
    stop_ids = stop_token_ids(tokenizer, model.generation_config)
    assert_end_of_turn_in_stop_ids(stop_ids, tokenizer)
    # For PPO "end-of-turn in labels" means: among the rollout stop tokens and inside the loss mask.
    report = GuardReport(end_of_turn_in_labels=True, tolerance=settings.runaway_tolerance)
    probes = list(probe_messages)[: settings.probe_prompts]
    if probes:
        report.runaway_before = runaway_rate(model, tokenizer, probes, settings.probe_max_new_tokens)

    model, reference = _with_reference(model, settings)
    model.eval()  # dropout off for rollouts *and* updates; gradients still flow
    hidden_size = model.config.get_text_config().hidden_size
    value_head = torch.nn.Linear(hidden_size, 1).to(device)  # float32 whatever the policy dtype
    torch.nn.init.zeros_(value_head.weight)
    torch.nn.init.zeros_(value_head.bias)
    trainable = [p for p in model.parameters() if p.requires_grad] + list(value_head.parameters())
    optimizer = torch.optim.AdamW(trainable, lr=settings.learning_rate, eps=settings.adam_eps, weight_decay=0.0)
    kl_controller = (pm.AdaptiveKLController(settings.init_kl_coef, settings.target_kl, settings.kl_gain)
                     if settings.adaptive_kl else pm.FixedKLController(settings.init_kl_coef))
    score = CombinedScorer(reward_fn, reward_model_path, device, settings.forward_batch_size)
    batches = _prompt_batches(prompts, budgets, settings)
    minibatch_order = torch.Generator().manual_seed(settings.seed)

    curve: list[dict] = []
    started = time.perf_counter()
    with progress_bar(settings.steps, "train ppo", "step") as bar:
        for step in range(settings.steps):
            step_started = time.perf_counter()
            batch_prompts, batch_budgets = next(batches)
            with compute_autocast(device):
                rollout = sample_rollouts(model, tokenizer, batch_prompts, stop_ids, settings, device,
                                          seed=settings.seed * 1_000_003 + step, budgets=batch_budgets)
            scored = _score_rollouts(model, reference, value_head, rollout, score(batch_prompts, rollout.texts,
                                     rollout.stopped.tolist()), kl_controller.value, settings, device)
            step_stats = _update(model, value_head, trainable, optimizer, rollout, scored, settings,
                                 minibatch_order, device)
            mean_kl = scored.kl.sum(1).mean().item()  # nats per completion, the quantity [Z19] control
            kl_controller.update(mean_kl)
            record = {
                "step": step + 1,
                "mean_score": scored.raw_scores.mean().item(),
                "mean_kl": mean_kl,
                "kl_coef": scored.beta,
                "mean_rlhf_reward": (scored.scores - scored.beta * scored.kl.sum(1)).mean().item(),
                **{key: sum(values) / len(values) for key, values in step_stats.items()},
                "entropy": scored.entropy,
                "mean_response_tokens": rollout.mask.sum(1).float().mean().item(),
                "stopped_rate": rollout.stopped.float().mean().item(),
                "seconds": time.perf_counter() - step_started,
                "sample": rollout.texts[0][:300],
            }
            curve.append(record)
            bar.note(f"score {record['mean_score']:.3f}, kl {mean_kl:.3f}, beta {scored.beta:.3f}")
            bar.update(1)
            if not all(math.isfinite(record[k]) for k in ("policy_loss", "value_loss", "mean_kl")):
                break  # reported by loss_summary below, after the curve is written

    train_seconds = time.perf_counter() - started
    metrics = {
        "steps": len(curve),
        "first_score": curve[0]["mean_score"], "last_score": curve[-1]["mean_score"],
        "score_curve": [r["mean_score"] for r in curve], "kl_curve": [r["mean_kl"] for r in curve],
        "kl_coef_curve": [r["kl_coef"] for r in curve],
        "train_seconds": train_seconds, "curve": curve,
    }
    metrics_path = out_dir / METRICS
    metrics_path.write_text(json.dumps({"stage": "ppo", **metrics, "settings": asdict(settings)}, indent=2))
    loss_summary(curve, "policy_loss")  # raises on a non-finite loss
    loss_summary(curve, "value_loss")

    if probes:
        report.runaway_after = runaway_rate(model, tokenizer, probes, settings.probe_max_new_tokens)
    checkpoint = save_checkpoint(model, tokenizer, out_dir / CHECKPOINT)
    metrics_path.write_text(json.dumps(
        {"stage": "ppo", **metrics, "guard": report.as_dict(), "settings": asdict(settings)}, indent=2))
    check_runaway(report, where="ppo stage")  # after saving, so a failed stage can be inspected
    return TrainResult(checkpoint, metrics, report)


def _with_reference(model, settings: PPOSettings):
    """The policy to train and the frozen reference: a deep copy of the initial policy, or with LoRA the
    same model with its adapters off (None here; `model.disable_adapter()` at use)."""
    if not settings.lora:
        reference = copy.deepcopy(model).requires_grad_(False)
        reference.eval()
        return model, reference
    from peft import LoraConfig, get_peft_model

    # No LoRA dropout: PPO's ratio must be exactly 1 before the first update ([N+]).
    return get_peft_model(model, LoraConfig(r=settings.lora_r, lora_alpha=settings.lora_alpha, lora_dropout=0.0,
                                            target_modules="all-linear", task_type="CAUSAL_LM")), None


def _prompt_batches(prompts: Sequence[Messages], budgets: Sequence[int] | None, settings: PPOSettings):
    """Each step's prompts and their token budgets, `samples_per_prompt` copies of each: the prompt set walked
    in a fresh shuffled order, epoch after epoch."""
    rng = random.Random(settings.seed)
    queue: list[int] = []
    while True:
        batch_prompts, batch_budgets = [], []
        for _ in range(settings.rollouts_per_step // settings.samples_per_prompt):
            if not queue:
                queue = list(range(len(prompts)))
                rng.shuffle(queue)
            index = queue.pop()
            batch_prompts.extend([list(prompts[index])] * settings.samples_per_prompt)
            batch_budgets.extend([budgets[index] if budgets else settings.max_new_tokens] * settings.samples_per_prompt)
        yield batch_prompts, batch_budgets


@dataclass
class _Scored:
    """A rollout batch's no-grad quantities: what the updates compare against and aim for."""

    old_logprobs: "object"   # (B, R) policy log-probs of the sampled tokens before any update
    old_values: "object"     # (B, R) value estimates before any update
    entropy: float           # mean token entropy of the policy over the responses
    raw_scores: "object"     # (B,) scorer's scores
    scores: "object"         # (B,) after the missing-end-of-turn penalty
    beta: float              # the KL coefficient this step used
    kl: "object"             # (B, R) per-token log π − log π_ref
    advantages: "object"     # (B, R) whitened GAE advantages
    returns: "object"        # (B, R) λ-returns (value targets)


def _score_rollouts(model, reference, value_head, rollout: Rollouts, raw_scores: list[float], beta: float,
                    settings: PPOSettings, device) -> _Scored:
    """Steps 2-4 of the module docstring, under no grad: log-probs and values, KL-penalised per-token
    rewards with the score at the last token, GAE advantages (whitened) and returns."""
    import torch

    from . import ppo_math as pm

    mask = rollout.mask
    with torch.no_grad(), compute_autocast(device):
        old_logprobs, old_values, entropy = batched_forward(model, value_head, rollout, settings, entropy=True)
        if reference is None:
            with model.disable_adapter():
                ref_logprobs, _, _ = batched_forward(model, None, rollout, settings)
        else:
            ref_logprobs, _, _ = batched_forward(reference, None, rollout, settings)
        raw = torch.tensor(raw_scores, dtype=torch.float32, device=device)
        scores = pm.penalise_runaways(raw, rollout.stopped, settings.missing_eos_penalty)
        rewards, kl = pm.kl_penalised_rewards(scores, old_logprobs, ref_logprobs, mask, beta)
        if settings.whiten_rewards:
            rewards = pm.masked_whiten(rewards, mask, shift_mean=False)
        advantages, returns = pm.gae(rewards, old_values, mask, settings.gamma, settings.lam)
        advantages = pm.masked_whiten(advantages, mask)
    return _Scored(old_logprobs, old_values, entropy, raw, scores, beta, kl, advantages, returns)


def _update(model, value_head, trainable, optimizer, rollout: Rollouts, scored: _Scored, settings: PPOSettings,
            minibatch_order, device) -> dict[str, list[float]]:
    """Step 5: `ppo_epochs` passes over shuffled minibatches, clipped policy loss + vf_coef × clipped value
    loss, one clipped-gradient Adam step per minibatch. Returns each statistic per minibatch."""
    import torch

    from . import ppo_math as pm

    step_stats: dict[str, list[float]] = {}
    count = rollout.responses.shape[0]
    for _ in range(settings.ppo_epochs):
        order = torch.randperm(count, generator=minibatch_order).tolist()
        for start in range(0, count, settings.minibatch_size):
            rows = order[start:start + settings.minibatch_size]
            mb = rollout.select(rows)
            width = mb.responses.shape[1]
            with compute_autocast(device):  # bf16 compute where fast; the weights Adam updates stay float32
                new_logprobs, new_values, _ = forward(model, value_head, mb, settings.temperature)
            pg_loss, pg_stats = pm.policy_loss(new_logprobs, scored.old_logprobs[rows, :width],
                                               scored.advantages[rows, :width], mb.mask, settings.cliprange)
            vf_loss, vf_stats = pm.value_loss(new_values, scored.old_values[rows, :width],
                                              scored.returns[rows, :width], mb.mask, settings.cliprange_value)
            loss = pg_loss + settings.vf_coef * vf_loss
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            grad_norm = torch.nn.utils.clip_grad_norm_(trainable, settings.max_grad_norm)
            optimizer.step()
            for key, value in {"policy_loss": pg_loss.item(), "value_loss": vf_loss.item(),
                               "grad_norm": float(grad_norm), **pg_stats, **vf_stats}.items():
                step_stats.setdefault(key, []).append(value)
    return step_stats


def _validate(settings: PPOSettings, prompts, reward_fn, reward_model_path) -> None:
    if reward_fn is None and reward_model_path is None:
        raise ValueError("train_ppo needs a reward_fn, a reward_model_path, or both (their scores add up)")
    if not prompts:
        raise ValueError("train_ppo needs at least one prompt")
    for name in ("steps", "rollouts_per_step", "samples_per_prompt", "minibatch_size", "ppo_epochs",
                 "max_new_tokens", "forward_batch_size"):
        if getattr(settings, name) < 1:
            raise ValueError(f"PPOSettings.{name} must be >= 1, got {getattr(settings, name)}")
    if settings.rollouts_per_step % settings.samples_per_prompt:
        raise ValueError(f"PPOSettings.samples_per_prompt ({settings.samples_per_prompt}) must divide "
                         f"rollouts_per_step ({settings.rollouts_per_step})")
    if settings.temperature <= 0:
        raise ValueError("PPOSettings.temperature must be > 0: PPO needs sampled rollouts and their log-probs")
    if settings.adaptive_kl and settings.target_kl <= 0:
        raise ValueError("PPOSettings.target_kl must be > 0 with adaptive_kl")
