"""PPO's rollouts and the forward passes over them (train/ppo.py runs the loop).

A rollout batch holds left-padded prompts and right-padded responses cut after their first stop token
(which stays in: emitting it is an action the policy is credited for). `forward` gives the per-token
log-probs of the sampled tokens, at the sampling temperature ([N+] detail: old and new log-probs then
describe the distribution actually sampled from), and the value head's V(s_t) on the shared trunk.
`settings` is train/ppo.py's PPOSettings: its temperature, max_new_tokens and forward_batch_size are read."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence


@dataclass
class Rollouts:
    """A batch of rollouts: left-padded prompts, right-padded responses (cut after the first stop token)."""

    queries: "object"          # (B, Q) long, left-padded with the pad id
    query_mask: "object"       # (B, Q) bool
    responses: "object"        # (B, R) long, right-padded with the pad id
    mask: "object"             # (B, R) bool, True up to and including the first stop token
    stopped: "object"          # (B,) bool
    texts: list[str]           # decoded completions (special tokens dropped), for the scorer

    def select(self, rows: Sequence[int]) -> "Rollouts":
        """The given rows, with columns that are padding in all of them trimmed away (less compute on CPU;
        left trimming keeps every row's response columns aligned with the full batch)."""
        query_mask = self.query_mask[rows]
        first = int(query_mask.any(0).nonzero().min())
        mask = self.mask[rows]
        width = int(mask.any(0).nonzero().max()) + 1
        return Rollouts(self.queries[rows][:, first:], query_mask[:, first:], self.responses[rows][:, :width],
                         mask[:, :width], self.stopped[rows], [self.texts[i] for i in rows])


def sample_rollouts(model, tokenizer, prompts: list[list[dict]], stop_ids: list[int], settings,
                     device, seed: int, budgets: Sequence[int] | None = None) -> Rollouts:
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
        queries, query_mask = left_pad(chunk, pad_id, device)
        limits = settings.max_new_tokens if budgets is None else list(budgets[start:start + settings.forward_batch_size])
        tokens, _ = decode(model, queries, query_mask.long(), limits, stop_ids,
                           temperature=settings.temperature, seed=seed + start)
        responses.extend(tokens)  # each ends at (and includes) its first stop token
    queries, query_mask = left_pad(query_ids, pad_id, device)
    width = max(len(r) for r in responses)
    padded = torch.tensor([r + [pad_id] * (width - len(r)) for r in responses], dtype=torch.long, device=device)
    mask, stopped = response_mask(padded, stop_ids, [len(r) for r in responses])
    texts = [tokenizer.decode([t for t in r if t not in stop_ids], skip_special_tokens=True).strip()
             for r in responses]
    return Rollouts(queries, query_mask, padded, mask, stopped, texts)


def left_pad(sequences: list[list[int]], pad_id: int, device):
    import torch

    width = max(len(s) for s in sequences)
    ids = torch.tensor([[pad_id] * (width - len(s)) + s for s in sequences], dtype=torch.long, device=device)
    mask = torch.tensor([[False] * (width - len(s)) + [True] * len(s) for s in sequences], device=device)
    return ids, mask


def forward(model, value_head, rollout: Rollouts, temperature: float, entropy: bool = False):
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


def batched_forward(model, value_head, rollout: Rollouts, settings, entropy: bool = False):
    """`forward` in chunks of `forward_batch_size` rows, results padded back to the batch's width."""
    import torch

    width = rollout.responses.shape[1]
    logprobs, values, entropies, weights = [], [], [], []
    for start in range(0, rollout.responses.shape[0], settings.forward_batch_size):
        rows = list(range(start, min(start + settings.forward_batch_size, rollout.responses.shape[0])))
        chunk = rollout.select(rows)
        lp, v, ent = forward(model, value_head, chunk, settings.temperature, entropy=entropy)
        logprobs.append(torch.nn.functional.pad(lp, (0, width - lp.shape[1])))
        if v is not None:
            values.append(torch.nn.functional.pad(v, (0, width - v.shape[1])))
        if ent is not None:
            entropies.append(ent)
            weights.append(float(chunk.mask.sum()))
    mean_entropy = sum(e * w for e, w in zip(entropies, weights)) / sum(weights) if entropies else None
    return torch.cat(logprobs), (torch.cat(values) if values else None), mean_entropy
