"""Random batches against length-grouped ones (and DPO's reference log-probabilities computed once, before
training), side by side in one run, on a quickstart run's own SFT and DPO rows with the quickstart's stage
settings: seconds per stage and the loss curves.

On a CPU padding is compute: the quickstart's answers run from one line to 320 tokens, and a random batch of
four is padded to its longest. `group_by_length` batches rows of similar length (random megabatches, sorted
inside); `precompute_ref_log_probs` runs the frozen reference once over the data instead of once per epoch.

Grouping is not free for SFT, though: its loss is averaged over the trained tokens of an optimizer step
(transformers' `num_items_in_batch`), so a row's tokens weigh 1 / (tokens of its step). In a random step a
short answer shares the step with long ones and weighs little; in a grouped step it shares it with other
short answers and weighs several times more. Before timing, the script prints each length quartile's
expected share of an epoch's SFT gradient weight under both samplers (transformers' own samplers, averaged
over shuffles; no model runs), and the padded tokens of SFT's steps cut by length (train/sft.py) against random
micro-batches; `--weights-only` prints only those.

    python bench/length_grouping.py RUN_DIR     # a folder of `arena run` (quickstart), round 1 done
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("run", type=Path, help="a quickstart run folder holding round1/{sft,dpo}/data.jsonl")
    parser.add_argument("--weights-only", action="store_true", help="print the SFT weight shares, train nothing")
    args = parser.parse_args()

    from offline_arena.cli import resolve_recipe_path
    from offline_arena.config import load_recipe
    from offline_arena.models.builtin import materialise
    from offline_arena.models.dtype import compute_dtype
    from offline_arena.train.common import TrainSettings
    from offline_arena.train.dpo import train_dpo
    from offline_arena.train.sft import train_sft

    recipe = load_recipe(resolve_recipe_path("quickstart"))
    base = materialise("smollm2-135m-instruct")
    print(f"compute dtype {compute_dtype('cpu')}", flush=True)

    def rows(kind: str) -> list[dict]:
        return [json.loads(line) for line in (args.run / "round1" / kind / "data.jsonl").open()]

    def settings(kind: str, **changes) -> TrainSettings:
        stage = next(s for s in recipe.stages if s.kind == kind)
        trained = TrainSettings.from_recipe(stage.train, seed=recipe.seed)
        trained.probe_prompts = 0
        for name, value in changes.items():
            setattr(trained, name, value)
        return trained

    sft = settings("sft")
    print_weight_shares(rows("sft"), base, sft.batch_size * sft.grad_accum)
    print_balanced_padding(rows("sft"), base, sft.batch_size, sft.grad_accum, int(sft.epochs))
    if args.weights_only:
        return

    dpo_extra = settings("dpo").extra
    plain_extra = {k: v for k, v in dpo_extra.items() if k != "precompute_ref_log_probs"}
    variants = [
        ("sft", train_sft, "random batches", settings("sft", group_by_length=False)),
        ("sft", train_sft, "grouped by length", settings("sft", group_by_length=True)),
        ("dpo", train_dpo, "random batches", settings("dpo", group_by_length=False, extra=plain_extra)),
        ("dpo", train_dpo, "grouped by length", settings("dpo", group_by_length=True, extra=plain_extra)),
        ("dpo", train_dpo, "grouped + reference precomputed",
         settings("dpo", group_by_length=True, extra={**plain_extra, "precompute_ref_log_probs": True})),
    ]
    seconds: dict[tuple[str, str], float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for kind, train, label, trained in variants:
            data = rows(kind)
            started = time.perf_counter()
            result = train(base, data, Path(tmp) / f"{kind}-{len(seconds)}", trained, [])
            seconds[kind, label] = time.perf_counter() - started
            curve = result.metrics["loss_curve"]
            ratio = seconds[kind, "random batches"] / seconds[kind, label]
            print(f"{kind} {len(data)} rows, {label}: {seconds[kind, label]:.0f} s ({ratio:.2f}x random), "
                  f"{len(curve)} steps, loss first/mean/last {curve[0]:.3f}/{sum(curve) / len(curve):.3f}/"
                  f"{curve[-1]:.3f}", flush=True)


def print_weight_shares(rows: list[dict], model_dir, step_rows: int, shuffles: int = 2000) -> None:
    """Each answer-length quartile's expected share of an epoch's SFT gradient weight, random steps against
    length-grouped ones (transformers' `RandomSampler` and `LengthGroupedSampler`, `shuffles` seeds each).
    A row's weight in a step is its trained (answer) tokens over the step's; rows are grouped by their whole
    length, prompt included, as the sampler does."""
    import torch
    from torch.utils.data import RandomSampler
    from transformers import AutoTokenizer
    from transformers.trainer_pt_utils import LengthGroupedSampler

    tokenizer = AutoTokenizer.from_pretrained(model_dir)

    def tokens(messages) -> int:
        return len(tokenizer.apply_chat_template(messages, tokenize=True, return_dict=True)["input_ids"])

    whole = [tokens(row["messages"]) for row in rows]
    answer = [w - tokens(row["messages"][:-1]) for w, row in zip(whole, rows)]

    def shares(sampler_for) -> list[float]:
        weight = [0.0] * len(rows)
        for seed in range(shuffles):
            order = list(sampler_for(torch.Generator().manual_seed(seed)))
            for start in range(0, len(order), step_rows):
                step = order[start:start + step_rows]
                trained = sum(answer[i] for i in step)
                for i in step:
                    weight[i] += answer[i] / trained
        total = sum(weight)
        return [w / total for w in weight]

    random_shares = shares(lambda g: RandomSampler(range(len(rows)), generator=g))
    grouped_shares = shares(lambda g: LengthGroupedSampler(step_rows, lengths=whole, generator=g))
    by_length = sorted(range(len(rows)), key=lambda i: answer[i])
    quarter = len(rows) / 4
    print(f"SFT gradient weight by answer length ({len(rows)} rows, {step_rows} a step, {shuffles} shuffles):")
    for q in range(4):
        members = by_length[round(q * quarter):round((q + 1) * quarter)]
        low, high = answer[members[0]], answer[members[-1]]
        share_random = sum(random_shares[i] for i in members)
        share_grouped = sum(grouped_shares[i] for i in members)
        print(f"  quartile {q + 1}, answers of {low}-{high} tokens: {share_random:.1%} of the weight in random "
              f"steps, {share_grouped:.1%} grouped ({share_grouped / share_random:.2f}x)", flush=True)


def print_balanced_padding(rows: list[dict], model_dir, batch_size: int, grad_accum: int, epochs: int,
                           shuffles: int = 50) -> None:
    """Padded tokens of SFT's micro-batches when each optimizer step's rows are cut by length (transformers'
    `BatchRebalanceSampler`, what train/sft.py uses without group_by_length) against random micro-batches
    (`RandomSampler`), over `epochs` epochs, averaged over `shuffles` seeds. Same rows per step either way in
    distribution, and SFT's loss is averaged over the step's tokens, so only the padding differs."""
    import torch
    from torch.utils.data import RandomSampler
    from transformers import AutoTokenizer
    from transformers.trainer_pt_utils import BatchRebalanceSampler

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    lengths = [len(tokenizer.apply_chat_template(row["messages"], tokenize=True, return_dict=True)["input_ids"])
               for row in rows]
    balanced = randomly = 0
    for seed in range(shuffles):
        for epoch in range(epochs):
            sampler = BatchRebalanceSampler(lengths, batch_size * grad_accum, 1, grad_accum, seed=seed)
            sampler.set_epoch(epoch)
            balanced += sum(len(batch) * max(lengths[i] for i in batch) for batch in sampler)
            shuffled = torch.Generator().manual_seed(seed * epochs + epoch)
            order = list(RandomSampler(range(len(rows)), generator=shuffled))
            randomly += sum(len(b) * max(lengths[i] for i in b)
                            for b in (order[k:k + batch_size] for k in range(0, len(order), batch_size)))
    print(f"SFT padded tokens over {epochs} epochs ({len(rows)} rows, {sum(lengths) * epochs} real, {shuffles} "
          f"shuffles): random micro-batches {randomly / shuffles:.0f}, steps cut by length {balanced / shuffles:.0f} "
          f"({randomly / balanced:.2f}x fewer)", flush=True)


if __name__ == "__main__":
    main()
