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

References: see ppo_math.py.
"""

from __future__ import annotations

import copy
import json
import math
import random
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Callable, Sequence

from ..models.chat import end_of_turn_token_id, stop_token_ids
from ..run_folder import METRICS
from .common import TrainResult, train_default, load_policy, loss_summary, on_gpu, recipe_default, save_checkpoint
from .guard import GuardReport, StopTokenGuardError, check_runaway, runaway_rate

Messages = Sequence[dict]
RewardFn = Callable[[Messages, str], float]


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
    prompt's rollout token limit (its length budget; None: `settings.max_new_tokens` for all)."""
    import torch
    from tqdm.auto import tqdm

    from . import ppo_math as pm

    settings = settings or PPOSettings()
    _validate(settings, prompts, reward_fn, reward_model_path)
    if budgets is not None and len(budgets) != len(prompts):
        raise ValueError(f"train_ppo: {len(budgets)} token budgets for {len(prompts)} prompts")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(settings.seed)
    rng = random.Random(settings.seed)
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

    if settings.lora:
        from peft import LoraConfig, get_peft_model

        # No LoRA dropout: PPO's ratio must be exactly 1 before the first update ([N+]).
        model = get_peft_model(model, LoraConfig(r=settings.lora_r, lora_alpha=settings.lora_alpha,
                                                 lora_dropout=0.0, target_modules="all-linear",
                                                 task_type="CAUSAL_LM"))
        reference = None
    else:
        reference = copy.deepcopy(model).requires_grad_(False)
        reference.eval()
    model.eval()  # dropout off for rollouts *and* updates; gradients still flow

    hidden_size = model.config.get_text_config().hidden_size
    value_head = torch.nn.Linear(hidden_size, 1).to(device)  # float32 whatever the policy dtype
    torch.nn.init.zeros_(value_head.weight)
    torch.nn.init.zeros_(value_head.bias)
    trainable = [p for p in model.parameters() if p.requires_grad] + list(value_head.parameters())
    optimizer = torch.optim.AdamW(trainable, lr=settings.learning_rate, eps=settings.adam_eps, weight_decay=0.0)
    kl_controller = (pm.AdaptiveKLController(settings.init_kl_coef, settings.target_kl, settings.kl_gain)
                     if settings.adaptive_kl else pm.FixedKLController(settings.init_kl_coef))
    scorers = ([_RewardModelScorer(reward_model_path, device, settings.forward_batch_size)] if reward_model_path else []) + \
              ([_CallableScorer(reward_fn)] if reward_fn is not None else [])

    def score(prompts_, texts, stopped):  # reward model + reward function, when both are given
        return [sum(parts) for parts in zip(*(s(prompts_, texts, stopped) for s in scorers))]
    minibatch_order = torch.Generator().manual_seed(settings.seed)

    curve: list[dict] = []
    queue: list[int] = []
    started = time.perf_counter()
    bar = tqdm(range(settings.steps), desc="ppo", unit="step")
    for step in bar:
        step_started = time.perf_counter()
        batch_prompts, batch_budgets = [], []
        for _ in range(settings.rollouts_per_step // settings.samples_per_prompt):
            if not queue:  # walk the prompt set in a fresh shuffled order, epoch after epoch
                queue = list(range(len(prompts)))
                rng.shuffle(queue)
            index = queue.pop()
            batch_prompts.extend([list(prompts[index])] * settings.samples_per_prompt)
            batch_budgets.extend([budgets[index] if budgets else settings.max_new_tokens] * settings.samples_per_prompt)

        with compute_autocast(device):
            rollout = _sample_rollouts(model, tokenizer, batch_prompts, stop_ids, settings, device,
                                       seed=settings.seed * 1_000_003 + step, budgets=batch_budgets)
        mask = rollout.mask
        with torch.no_grad(), compute_autocast(device):
            old_logprobs, old_values, entropy = _batched_forward(model, value_head, rollout, settings, entropy=True)
            if reference is None:
                with model.disable_adapter():
                    ref_logprobs, _, _ = _batched_forward(model, None, rollout, settings)
            else:
                ref_logprobs, _, _ = _batched_forward(reference, None, rollout, settings)
            raw_scores = torch.tensor(score(batch_prompts, rollout.texts, rollout.stopped.tolist()),
                                      dtype=torch.float32, device=device)
            scores = pm.penalise_runaways(raw_scores, rollout.stopped, settings.missing_eos_penalty)
            beta = kl_controller.value
            rewards, kl = pm.kl_penalised_rewards(scores, old_logprobs, ref_logprobs, mask, beta)
            if settings.whiten_rewards:
                rewards = pm.masked_whiten(rewards, mask, shift_mean=False)
            advantages, returns = pm.gae(rewards, old_values, mask, settings.gamma, settings.lam)
            advantages = pm.masked_whiten(advantages, mask)

        step_stats: dict[str, list[float]] = {}
        count = len(batch_prompts)
        for _ in range(settings.ppo_epochs):
            order = torch.randperm(count, generator=minibatch_order).tolist()
            for start in range(0, count, settings.minibatch_size):
                rows = order[start:start + settings.minibatch_size]
                mb = rollout.select(rows)
                width = mb.responses.shape[1]
                with compute_autocast(device):  # bf16 compute where fast; the weights Adam updates stay float32
                    new_logprobs, new_values, _ = _forward(model, value_head, mb, settings.temperature)
                pg_loss, pg_stats = pm.policy_loss(new_logprobs, old_logprobs[rows, :width],
                                                   advantages[rows, :width], mb.mask, settings.cliprange)
                vf_loss, vf_stats = pm.value_loss(new_values, old_values[rows, :width], returns[rows, :width],
                                                  mb.mask, settings.cliprange_value)
                loss = pg_loss + settings.vf_coef * vf_loss
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                grad_norm = torch.nn.utils.clip_grad_norm_(trainable, settings.max_grad_norm)
                optimizer.step()
                for key, value in {"policy_loss": pg_loss.item(), "value_loss": vf_loss.item(),
                                   "grad_norm": float(grad_norm), **pg_stats, **vf_stats}.items():
                    step_stats.setdefault(key, []).append(value)

        mean_kl = kl.sum(1).mean().item()  # nats per completion, the quantity [Z19] control
        kl_controller.update(mean_kl)
        record = {
            "step": step + 1,
            "mean_score": raw_scores.mean().item(),
            "mean_kl": mean_kl,
            "kl_coef": beta,
            "mean_rlhf_reward": (scores - beta * kl.sum(1)).mean().item(),
            **{key: sum(values) / len(values) for key, values in step_stats.items()},
            "entropy": entropy,
            "mean_response_tokens": mask.sum(1).float().mean().item(),
            "stopped_rate": rollout.stopped.float().mean().item(),
            "seconds": time.perf_counter() - step_started,
            "sample": rollout.texts[0][:300],
        }
        curve.append(record)
        bar.set_postfix(score=f"{record['mean_score']:.3f}", kl=f"{mean_kl:.3f}", beta=f"{beta:.3f}")
        if not all(math.isfinite(record[k]) for k in ("policy_loss", "value_loss", "mean_kl")):
            break  # reported by loss_summary below, after the curve is written
    bar.close()

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
    checkpoint = save_checkpoint(model, tokenizer, out_dir / "checkpoint")
    metrics_path.write_text(json.dumps(
        {"stage": "ppo", **metrics, "guard": report.as_dict(), "settings": asdict(settings)}, indent=2))
    check_runaway(report, where="ppo stage")  # after saving, so a failed stage can be inspected
    return TrainResult(checkpoint, metrics, report)


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


@dataclass
class _Rollouts:
    """A batch of rollouts: left-padded prompts, right-padded responses (cut after the first stop token)."""

    queries: "object"          # (B, Q) long, left-padded with the pad id
    query_mask: "object"       # (B, Q) bool
    responses: "object"        # (B, R) long, right-padded with the pad id
    mask: "object"             # (B, R) bool, True up to and including the first stop token
    stopped: "object"          # (B,) bool
    texts: list[str]           # decoded completions (special tokens dropped), for the scorer

    def select(self, rows: Sequence[int]) -> "_Rollouts":
        """The given rows, with columns that are padding in all of them trimmed away (less compute on CPU;
        left trimming keeps every row's response columns aligned with the full batch)."""
        query_mask = self.query_mask[rows]
        first = int(query_mask.any(0).nonzero().min())
        mask = self.mask[rows]
        width = int(mask.any(0).nonzero().max()) + 1
        return _Rollouts(self.queries[rows][:, first:], query_mask[:, first:], self.responses[rows][:, :width],
                         mask[:, :width], self.stopped[rows], [self.texts[i] for i in rows])


def _sample_rollouts(model, tokenizer, prompts: list[list[dict]], stop_ids: list[int], settings: PPOSettings,
                     device, seed: int, budgets: Sequence[int] | None = None) -> _Rollouts:
    """Sampled responses through the pipeline's decoder (models/decode.py: chunked prefill, finished rows
    dropped), at the caller's compute dtype. Pure sampling: no top-k / top-p / repetition penalty from the
    model's defaults, so the tokens come from softmax(logits / temperature), the distribution whose
    log-probs PPO uses."""
    import torch

    from ..models.chat import render_prompt
    from ..models.decode import decode
    from .ppo_math import response_mask

    pad_id = tokenizer.pad_token_id
    query_ids = [tokenizer(render_prompt(tokenizer, m), add_special_tokens=False)["input_ids"] for m in prompts]
    responses: list[list[int]] = []
    for start in range(0, len(query_ids), settings.forward_batch_size):
        chunk = query_ids[start:start + settings.forward_batch_size]
        queries, query_mask = _left_pad(chunk, pad_id, device)
        limits = settings.max_new_tokens if budgets is None else list(budgets[start:start + settings.forward_batch_size])
        tokens, _ = decode(model, queries, query_mask.long(), limits, stop_ids,
                           temperature=settings.temperature, seed=seed + start)
        responses.extend(tokens)  # each ends at (and includes) its first stop token
    queries, query_mask = _left_pad(query_ids, pad_id, device)
    width = max(len(r) for r in responses)
    padded = torch.tensor([r + [pad_id] * (width - len(r)) for r in responses], dtype=torch.long, device=device)
    mask, stopped = response_mask(padded, stop_ids, [len(r) for r in responses])
    texts = [tokenizer.decode([t for t in r if t not in stop_ids], skip_special_tokens=True).strip()
             for r in responses]
    return _Rollouts(queries, query_mask, padded, mask, stopped, texts)


def _left_pad(sequences: list[list[int]], pad_id: int, device):
    import torch

    width = max(len(s) for s in sequences)
    ids = torch.tensor([[pad_id] * (width - len(s)) + s for s in sequences], dtype=torch.long, device=device)
    mask = torch.tensor([[False] * (width - len(s)) + [True] * len(s) for s in sequences], device=device)
    return ids, mask


def _forward(model, value_head, rollout: _Rollouts, temperature: float, entropy: bool = False):
    """Log-probs of the response tokens (B, R), values V(s_t) (B, R) or None, and optionally the mean
    token entropy. The logit at position i predicts token i+1, so the response's R tokens are predicted by
    the last R+1 positions minus the final one; only those logits are computed (`logits_to_keep`), which
    on a 49k vocabulary saves most of the LM head's work."""
    import torch

    from .ppo_math import masked_mean

    input_ids = torch.cat([rollout.queries, rollout.responses], dim=1)
    attention_mask = torch.cat([rollout.query_mask, rollout.mask], dim=1).long()
    # Positions count real tokens only, as generate() does for left-padded prompts.
    position_ids = (attention_mask.cumsum(1) - 1).clamp(min=0)
    width = rollout.responses.shape[1]
    output = model(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids,
                   logits_to_keep=width + 1, output_hidden_states=value_head is not None, use_cache=False)
    logits = output.logits[:, :-1].float() / temperature
    log_norm = torch.logsumexp(logits, dim=-1)
    chosen = logits.gather(-1, rollout.responses.unsqueeze(-1)).squeeze(-1)
    logprobs = (chosen - log_norm).masked_fill(~rollout.mask, 0.0)  # log softmax at the sampled token
    values = None
    if value_head is not None:
        hidden = output.hidden_states[-1][:, -(width + 1):-1].float()
        values = value_head(hidden).squeeze(-1).masked_fill(~rollout.mask, 0.0)
    mean_entropy = None
    if entropy:
        token_entropy = log_norm - (torch.softmax(logits, dim=-1) * logits).sum(-1)
        mean_entropy = masked_mean(token_entropy, rollout.mask).item()
    return logprobs, values, mean_entropy


def _batched_forward(model, value_head, rollout: _Rollouts, settings: PPOSettings, entropy: bool = False):
    """`_forward` in chunks of `forward_batch_size` rows, results padded back to the batch's width."""
    import torch

    width = rollout.responses.shape[1]
    logprobs, values, entropies, weights = [], [], [], []
    for start in range(0, rollout.responses.shape[0], settings.forward_batch_size):
        rows = list(range(start, min(start + settings.forward_batch_size, rollout.responses.shape[0])))
        chunk = rollout.select(rows)
        lp, v, ent = _forward(model, value_head, chunk, settings.temperature, entropy=entropy)
        logprobs.append(torch.nn.functional.pad(lp, (0, width - lp.shape[1])))
        if v is not None:
            values.append(torch.nn.functional.pad(v, (0, width - v.shape[1])))
        if ent is not None:
            entropies.append(ent)
            weights.append(float(chunk.mask.sum()))
    mean_entropy = sum(e * w for e, w in zip(entropies, weights)) / sum(weights) if entropies else None
    return torch.cat(logprobs), (torch.cat(values) if values else None), mean_entropy


class _CallableScorer:
    def __init__(self, reward_fn: RewardFn):
        self.reward_fn = reward_fn

    def __call__(self, prompts: list[list[dict]], texts: list[str], stopped: list[bool]) -> list[float]:
        scores = [float(self.reward_fn(p, t)) for p, t in zip(prompts, texts)]
        bad = [s for s in scores if not math.isfinite(s)]
        if bad:
            raise ValueError(f"reward_fn returned non-finite scores: {bad[:5]}")
        return scores


class _RewardModelScorer:
    """A sequence-classification reward model (num_labels=1) read as the `rm:` judge reads it
    (judges/reward_model.py): a finished rollout with its turn closed where the model was trained to be
    read, a rollout cut at the token limit as an open turn, never as if it had ended."""

    def __init__(self, path: str | Path, device, batch_size: int):
        from ..judges.reward_model import RewardModelJudge

        self.reader = RewardModelJudge(str(path), batch_size=batch_size, device=str(device))

    def __call__(self, prompts: list[list[dict]], texts: list[str], stopped: list[bool]) -> list[float]:
        return self.reader.scores([[*p, {"role": "assistant", "content": t}] for p, t in zip(prompts, texts)], stopped)
