"""Active sampling against uniform pairing: judge calls until the leaderboard's intervals are narrow.

A simulated truth: eight models with known Bradley–Terry ratings, ties allowed (a tie takes half its
mass from each side, so a model's expected score stays the Bradley–Terry p). Two policies pick the
battles, on the same truth, repetition seeds and prompts:

  uniform  every battle a pair drawn uniformly, then a free prompt of that pair;
  active   `battles.active_schedule` (Chatbot Arena's rule, Chiang et al. 2024, sec. 5).

Both run as the CLI's active loop does: schedule a batch, judge it (here: draw the outcome from the
truth), refit, schedule the next batch from the judged history. After every batch the project's
`ratings.leaderboard` (FastChat-like L2, percentile bootstrap) gives each model's 95% interval, and we
record the first battle count (= judge calls) at which

  max   the widest interval of the eight (the criterion this bench is about),
  mean  the average interval width, and
  pair  the largest standard error of a pair's win rate, sqrt(variance / battles) with the truth's
        variance: the quantity Chatbot Arena's rule shrinks (its "win matrix" precision, Figure 7),

fall below their targets. Printed per repetition, then the median over repetitions, the ratio
uniform / active of the medians (above 1: active needs fewer judge calls) and in how many repetitions
active needed fewer / as many / more.

Why active need not win on the rating intervals: the rule equalises the pairs' win-rate errors, so it
sends fewer battles to lopsided pairs (small variance). But a model's Bradley–Terry information is
Σ_j n_ij · p_ij(1 − p_ij): the outlying model, whose pairs are all lopsided, has the widest interval and
needs more battles, not fewer. The paper, too, reports a large gain for the win matrix and a small one
(about 5%) for the Bradley–Terry scores.

Run:  .venv/bin/python bench/active_sampling.py [--repetitions 30] [--batch 32] [--rounds 100] [--seed 0]
"""

from __future__ import annotations

import argparse
import itertools
import math
import random
import statistics
import sys
import time
import warnings
from collections import Counter

from offline_arena.battles import Schedule, active_schedule
from offline_arena.prompts.sources import Prompt
from offline_arena.ratings import RatingsWarning, leaderboard

# Spread like a small arena: a close cluster at the top, a long tail below. Ratings on the Elo scale.
TRUTH = {"m0": 1250.0, "m1": 1200.0, "m2": 1180.0, "m3": 1120.0, "m4": 1060.0, "m5": 1000.0, "m6": 900.0,
         "m7": 760.0}
TIE_RATE = 0.3  # ties at an even match; fewer as the gap grows (0.3 · 4p(1 − p))
MAX_WIDTH_TARGET = 100.0  # rating points, the widest 95% interval
MEAN_WIDTH_TARGET = 80.0  # rating points, the average 95% interval
PAIR_ERROR_TARGET = 0.075  # the largest standard error of a pair's win rate
CRITERIA = ("max", "mean", "pair")
MAX_BATTLES = 2400  # a run that has not reached both targets by then is reported as "> MAX_BATTLES"


def win_probability(rating_a: float, rating_b: float) -> float:
    return 1.0 / (1.0 + 10.0 ** ((rating_b - rating_a) / 400.0))


def tie_probability(p: float) -> float:
    return TIE_RATE * 4 * p * (1 - p)


def judge(model_a: str, model_b: str, rng: random.Random) -> str:
    p = win_probability(TRUTH[model_a], TRUTH[model_b])
    tie, u = tie_probability(p), rng.random()
    return "model_a" if u < p - tie / 2 else "tie" if u < p + tie / 2 else "model_b"


def true_score_variance(model_a: str, model_b: str) -> float:
    """Variance of one battle's score for model_a (win 1, tie ½, loss 0) under the truth."""
    p = win_probability(TRUTH[model_a], TRUTH[model_b])
    tie = tie_probability(p)
    return (p - tie / 2) + 0.25 * tie - p**2


def largest_pair_error(history: list[dict]) -> float:
    counts = Counter(tuple(sorted((h["model_a"], h["model_b"]))) for h in history)
    pairs = list(itertools.combinations(sorted(TRUTH), 2))
    if any(counts[pair] == 0 for pair in pairs):
        return math.inf
    return max(math.sqrt(true_score_variance(*pair) / counts[pair]) for pair in pairs)


def uniform_schedule(models: list[str], prompts: list[Prompt], budget: int, seed: int, taken: set) -> Schedule:
    rng = random.Random(seed)
    pairs = [(a, b) for i, a in enumerate(models) for b in models[i + 1:]]
    free = {pair: [p for p in prompts if (p.id, *pair) not in taken] for pair in pairs}
    schedule: Schedule = []
    for _ in range(budget):
        a, b = rng.choice([pair for pair in pairs if free[pair]])
        slots = free[(a, b)]
        schedule.append((slots.pop(rng.randrange(len(slots))), a, b))
    return schedule


def interval_widths(history: list[dict], rounds: int, seed: int) -> list[float]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RatingsWarning)  # early batches: unmet pairs, unbeaten models
        rows = leaderboard([h["model_a"] for h in history], [h["model_b"] for h in history],
                           [h["winner"] for h in history], rounds=rounds, seed=seed)
    return [r["upper"] - r["lower"] for r in rows]


def judge_calls_until_narrow(policy: str, prompts: list[Prompt], batch: int, rounds: int, seed: int) -> dict:
    """Battle counts at which each criterion first falls below its target (None: not by MAX_BATTLES)."""
    models, history, taken = list(TRUTH), [], set()
    judge_rng = random.Random(f"judge-{seed}")
    needed: dict[str, int | None] = dict.fromkeys(CRITERIA)
    step = 0
    while len(history) < MAX_BATTLES and None in needed.values():
        step_seed = seed * 10_000 + step
        if policy == "active":
            schedule = active_schedule(models, prompts, history, batch, seed=step_seed, taken=taken)
        else:
            schedule = uniform_schedule(models, prompts, batch, step_seed, taken)
        for prompt, a, b in schedule:
            taken.add((prompt.id, a, b))
            history.append({"model_a": a, "model_b": b, "winner": judge(a, b, judge_rng)})
        widths = interval_widths(history, rounds, seed=step)
        for criterion, value, target in (("max", max(widths), MAX_WIDTH_TARGET),
                                         ("mean", statistics.fmean(widths), MEAN_WIDTH_TARGET),
                                         ("pair", largest_pair_error(history), PAIR_ERROR_TARGET)):
            if needed[criterion] is None and value < target:
                needed[criterion] = len(history)
        step += 1
    return needed


def shown(count: float | None) -> str:
    return f"> {MAX_BATTLES}" if count is None else f"{count:.0f}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repetitions", type=int, default=30)
    parser.add_argument("--batch", type=int, default=32, help="battles judged between refits")
    parser.add_argument("--rounds", type=int, default=100, help="bootstrap rounds per leaderboard")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    prompts = [Prompt(id=f"p{i}", messages=()) for i in range(math.ceil(MAX_BATTLES / len(TRUTH)) + args.batch)]
    print(f"{len(TRUTH)} models, ratings {min(TRUTH.values()):.0f}..{max(TRUTH.values()):.0f}, tie rate "
          f"{TIE_RATE} at an even match; batches of {args.batch}, {args.rounds} bootstrap rounds; targets: "
          f"widest 95% interval < {MAX_WIDTH_TARGET:.0f}, mean < {MEAN_WIDTH_TARGET:.0f} rating points, "
          f"largest pair win-rate standard error < {PAIR_ERROR_TARGET}")
    start = time.perf_counter()
    results = {"uniform": [], "active": []}
    print("rep  " + "  ".join(f"{policy} {criterion}".rjust(12) for criterion in CRITERIA for policy in results))
    for rep in range(args.repetitions):
        seed = args.seed + rep
        row = {policy: judge_calls_until_narrow(policy, prompts, args.batch, args.rounds, seed) for policy in results}
        for policy in results:
            results[policy].append(row[policy])
        print(f"{rep:>3}  " + "  ".join(shown(row[policy][criterion]).rjust(12)
                                        for criterion in CRITERIA for policy in results))
    print(f"judge calls until each criterion falls below its target, median of {args.repetitions}:")
    for criterion in CRITERIA:
        # A run that never got there counts as the cap, so a median can only be too low, never too high.
        counts = {policy: [MAX_BATTLES if run[criterion] is None else run[criterion] for run in runs]
                  for policy, runs in results.items()}
        medians = {policy: statistics.median(values) for policy, values in counts.items()}
        paired = list(zip(counts["active"], counts["uniform"]))
        fewer, same = sum(a < u for a, u in paired), sum(a == u for a, u in paired)
        print(f"  {criterion:>4}: uniform {medians['uniform']:.0f}, active {medians['active']:.0f}, "
              f"ratio uniform/active {medians['uniform'] / medians['active']:.2f}; active needed fewer / as many "
              f"/ more in {fewer} / {same} / {len(paired) - fewer - same} repetitions")
    print(f"wall time {time.perf_counter() - start:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
