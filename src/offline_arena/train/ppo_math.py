"""The arithmetic of PPO for language models, as pure functions of tensors (tested by hand-worked cases in
tests/test_ppo.py). `ppo.py` wires them to models.

Shapes: a batch of B rollouts with R response positions is a (B, R) tensor; `mask` is a (B, R) bool tensor,
True at the generated tokens up to and including the first stop token. Everything at a masked-out position
is ignored (and, where a function returns a tensor, set to 0 there).

References:
  [PPO]  Schulman et al. 2017, "Proximal Policy Optimization Algorithms", arXiv:1707.06347.
  [GAE]  Schulman et al. 2016, "High-Dimensional Continuous Control Using Generalized Advantage
         Estimation", arXiv:1506.02438.
  [Z19]  Ziegler et al. 2019, "Fine-Tuning Language Models from Human Preferences", arXiv:1909.08593.
  [N+]   Huang et al. 2024, "The N+ Implementation Details of RLHF with PPO: A Case Study on TL;DR
         Summarization", arXiv:2403.17031.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch


def masked_mean(values: torch.Tensor, mask: torch.Tensor, dim: int | None = None) -> torch.Tensor:
    """Mean of `values` over positions where `mask` is True (over everything, or along `dim`).

    masked_mean([[1, 2, 99]], [[T, T, F]]) = (1 + 2) / 2 = 1.5"""
    mask = mask.to(values.dtype)
    if dim is None:
        return (values * mask).sum() / mask.sum().clamp(min=1)
    return (values * mask).sum(dim) / mask.sum(dim).clamp(min=1)


def masked_var(values: torch.Tensor, mask: torch.Tensor, unbiased: bool = True) -> torch.Tensor:
    """Variance over the masked positions, with Bessel's correction n/(n-1) by default (as TRL and
    lm-human-preferences do). masked_var([1, 2, 3, 99], [T, T, T, F]) = ((1 + 0 + 1) / 3) * 3/2 = 1."""
    mean = masked_mean(values, mask)
    variance = masked_mean((values - mean) ** 2, mask)
    if unbiased:
        count = mask.sum()
        if count < 2:
            return torch.zeros((), dtype=values.dtype, device=values.device)
        variance = variance * count / (count - 1)
    return variance


def masked_whiten(values: torch.Tensor, mask: torch.Tensor, shift_mean: bool = True, eps: float = 1e-8) -> torch.Tensor:
    """(x - mean) / sqrt(var + eps) with statistics over the masked positions only ([N+] detail: whiten
    advantages over valid tokens, never over padding). `shift_mean=False` scales without centring, which
    is how rewards are whitened (centring would change which completions are rewarded on average).
    Masked-out positions come back as 0.

    masked_whiten([1, 2, 3, 99], [T, T, T, F]) = [-1, 0, 1, 0]   (mean 2, unbiased var 1)"""
    mean, variance = masked_mean(values, mask), masked_var(values, mask)
    whitened = (values - mean) * torch.rsqrt(variance + eps)
    if not shift_mean:
        whitened = whitened + mean
    return whitened.masked_fill(~mask, 0.0)


def response_mask(responses: torch.Tensor, stop_ids: Sequence[int],
                  lengths: Sequence[int] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """(mask, stopped) for right-padded generated tokens: mask is True up to and including the first stop
    token, `stopped` says whether a row contains one. Built from the stop ids, never from the pad id:
    with pad == eos (SmolLM2) a mask built by `token != pad` would drop the end-of-turn token from the
    policy loss, and the model would never be rewarded for stopping (the stop-token lesson, docs/architecture.md).
    `lengths`: how many tokens each row generated, for rows cut at limits of their own (length budgets):
    a row cut short is padded like a finished one, and its first pad (== EOT) must not read as its stop.

    responses [[5, 7, EOT, PAD], [5, 7, 8, 9]] -> mask [[T, T, T, F], [T, T, T, T]], stopped [T, F];
    responses [[5, 7, PAD, PAD]] with lengths [2] -> mask [[T, T, F, F]], stopped [F]"""
    is_stop = torch.zeros_like(responses, dtype=torch.bool)
    for stop in stop_ids:
        is_stop |= responses == stop
    inside = None
    if lengths is not None:
        limit = torch.as_tensor(list(lengths), device=responses.device).unsqueeze(-1)
        inside = torch.arange(responses.shape[1], device=responses.device).unsqueeze(0) < limit
        is_stop &= inside
    stopped = is_stop.any(dim=1)
    # Number of stop tokens strictly before each position: 0 means "still inside the answer".
    stops_before = torch.cumsum(is_stop.long(), dim=1) - is_stop.long()
    mask = stops_before == 0
    return (mask if inside is None else mask & inside), stopped


def last_valid_index(mask: torch.Tensor) -> torch.Tensor:
    """Index of the last True position in each row (0 for an empty row): where the score goes."""
    positions = torch.arange(mask.shape[1], device=mask.device).expand_as(mask)
    return (positions * mask.long()).max(dim=1).values


def kl_penalised_rewards(scores: torch.Tensor, logprobs: torch.Tensor, ref_logprobs: torch.Tensor,
                         mask: torch.Tensor, kl_coef: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-token rewards ([Z19] eq. 2; [N+] "reward = score at EOS + per-token KL penalty"):

        r_t = -β · (log π(a_t|s_t) - log π_ref(a_t|s_t))        for every generated token,
        r_T += score                                             at the last valid token T.

    Returns (rewards, kl) with kl_t = log π - log π_ref (the k1 estimator; its sum over a completion is
    an unbiased estimate of KL(π || π_ref) for that prompt). Both are 0 at masked-out positions.

    scores [1.0], logprobs [[-1, -2]], ref [[-1.5, -1]], β = 0.1 -> kl [[0.5, -1]], rewards [[-0.05, 1.1]]"""
    kl = (logprobs - ref_logprobs).masked_fill(~mask, 0.0)
    rewards = -kl_coef * kl
    rows = torch.arange(rewards.shape[0], device=rewards.device)
    rewards[rows, last_valid_index(mask)] += scores.to(rewards.dtype)
    return rewards.masked_fill(~mask, 0.0), kl


def gae(rewards: torch.Tensor, values: torch.Tensor, mask: torch.Tensor, gamma: float = 1.0,
        lam: float = 0.95) -> tuple[torch.Tensor, torch.Tensor]:
    """Generalised advantage estimation ([GAE] eqs. 11-16), run backwards over each completion:

        δ_t = r_t + γ · V(s_{t+1}) - V(s_t)               (TD residual; V = 0 after the last token)
        A_t = δ_t + γ · λ · A_{t+1}                        (= Σ_l (γλ)^l δ_{t+l})
        R_t = A_t + V(s_t)                                 (the value target, a λ-return)

    Rewards and values at masked-out positions are zeroed first, so nothing leaks back from padding.
    Returns (advantages, returns), 0 at masked-out positions."""
    rewards = rewards.masked_fill(~mask, 0.0)
    values = values.masked_fill(~mask, 0.0)
    length = rewards.shape[1]
    advantages = torch.zeros_like(rewards)
    last = torch.zeros_like(rewards[:, 0])
    for t in reversed(range(length)):
        next_value = values[:, t + 1] if t + 1 < length else torch.zeros_like(last)
        delta = rewards[:, t] + gamma * next_value - values[:, t]
        last = delta + gamma * lam * last
        advantages[:, t] = last
    returns = advantages + values
    return advantages.masked_fill(~mask, 0.0), returns.masked_fill(~mask, 0.0)


def policy_loss(logprobs: torch.Tensor, old_logprobs: torch.Tensor, advantages: torch.Tensor,
                mask: torch.Tensor, cliprange: float) -> tuple[torch.Tensor, dict]:
    """PPO-clip objective ([PPO] eq. 7), negated to a loss and averaged over valid tokens:

        ρ_t = exp(log π_θ(a_t|s_t) - log π_old(a_t|s_t))
        L   = mean_t max(-A_t · ρ_t, -A_t · clip(ρ_t, 1 - ε, 1 + ε))

    The max of the two negated terms is the pessimistic bound: once ρ leaves [1-ε, 1+ε] in the
    direction the advantage favours, the clipped term wins and its gradient is zero.
    Returns (loss, stats) with stats clipfrac (share of tokens where clipping bound) and approx_kl
    (½·mean (log ρ)², an estimate of KL(π_old || π_θ) used as a diagnostic)."""
    log_ratio = (logprobs - old_logprobs).masked_fill(~mask, 0.0)
    ratio = torch.exp(log_ratio)
    unclipped = -advantages * ratio
    clipped = -advantages * torch.clamp(ratio, 1.0 - cliprange, 1.0 + cliprange)
    loss = masked_mean(torch.max(unclipped, clipped), mask)
    with torch.no_grad():
        stats = {"clipfrac": masked_mean((clipped > unclipped).float(), mask).item(),
                 "approx_kl": 0.5 * masked_mean(log_ratio ** 2, mask).item()}
    return loss, stats


def value_loss(values: torch.Tensor, old_values: torch.Tensor, returns: torch.Tensor, mask: torch.Tensor,
               cliprange_value: float) -> tuple[torch.Tensor, dict]:
    """Clipped value loss (the PPO2 baselines/lm-human-preferences form, [N+] detail "value clipping"):

        V_clip = V_old + clip(V_θ - V_old, -ε_v, ε_v)
        L_V    = ½ · mean_t max((V_θ - R_t)², (V_clip - R_t)²)

    Returns (loss, stats) with stats value_clipfrac."""
    clipped_values = old_values + torch.clamp(values - old_values, -cliprange_value, cliprange_value)
    unclipped_loss = (values - returns) ** 2
    clipped_loss = (clipped_values - returns) ** 2
    loss = 0.5 * masked_mean(torch.max(unclipped_loss, clipped_loss), mask)
    with torch.no_grad():
        stats = {"value_clipfrac": masked_mean((clipped_loss > unclipped_loss).float(), mask).item()}
    return loss, stats


@dataclass
class FixedKLController:
    """β stays at its initial value."""

    value: float

    def update(self, current_kl: float) -> float:
        return self.value


@dataclass
class AdaptiveKLController:
    """Proportional controller of β that steers the observed KL towards a target ([Z19] sec. 2.2):

        e_t     = clip((KL_t - KL_target) / KL_target, -0.2, 0.2)
        β_{t+1} = β_t · (1 + K_β · e_t)

    [Z19] use K_β = 0.1. KL_t is the mean over a batch of the per-completion KL (summed over tokens).
    β=0.1, target 6, K_β=0.1: KL 9 -> e = clip(0.5) = 0.2 -> β = 0.1 · 1.02 = 0.102."""

    value: float
    target: float
    gain: float = 0.1

    def update(self, current_kl: float) -> float:
        error = min(max((current_kl - self.target) / self.target, -0.2), 0.2)
        self.value = self.value * (1.0 + self.gain * error)
        return self.value


def penalise_runaways(scores, stopped, penalty: float | None):
    """Scores with `penalty` subtracted where a rollout never stopped (hit the token limit): RL must reward
    finishing, or the policy learns that rambling past the end costs nothing. E.g. scores [1.0, 1.0],
    stopped [True, False], penalty 1 -> [1.0, 0.0]. `penalty=None` leaves the scores as they are."""
    scores = scores.clone()
    if penalty is not None:
        scores[~stopped] -= penalty
    return scores
