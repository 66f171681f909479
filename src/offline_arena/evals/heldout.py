"""Held-out evaluation on the verifiable pack: IFEval's prompt- and instruction-level accuracy, strict and
loose (Zhou et al. 2023, arXiv 2311.07911, sec. 3), each with a bootstrap 95% CI over prompts, the
runaway rate (answers that hit the token limit), accuracy per instruction type, and each prompt's
per-instruction outcomes (for paired comparisons: `paired_vs`, evals/family_guard.py)."""

from __future__ import annotations

import random
from typing import Sequence

from ..models.base import GenerationRequest, SamplingParams
from ..prompts.budget import with_budget
from ..prompts.sources import Prompt
from ..prompts.verifiable import score_response


def bootstrap_mean_ci(values: Sequence[float], rounds: int = 1000, seed: int = 0) -> tuple[float, float]:
    """2.5th and 97.5th percentiles of the mean over `rounds` resamples (with replacement)."""
    if not values:
        return (float("nan"), float("nan"))
    rng = random.Random(seed)
    n = len(values)
    means = sorted(sum(values[rng.randrange(n)] for _ in range(n)) / n for _ in range(rounds))
    return means[int(0.025 * (rounds - 1))], means[int(0.975 * (rounds - 1))]


def bootstrap_ratio_ci(numerators: Sequence[float], denominators: Sequence[float], rounds: int = 1000,
                       seed: int = 0) -> tuple[float, float]:
    """95% CI of a ratio of sums, sum(numerators) / sum(denominators), resampling items (prompts) with
    replacement: instruction-level accuracy is instructions followed over instructions given, and the
    instructions of one prompt stand or fall together, so prompts are the unit to resample. E.g. prompts
    2/2 and 0/1: the resamples (A, A), (A, B), (B, A), (B, B) give 4/4, 2/3, 2/3, 0/2, so the CI is [0, 1]."""
    if not numerators or len(numerators) != len(denominators):
        raise ValueError(f"ratio CI of {len(numerators)} numerators and {len(denominators)} denominators")
    rng = random.Random(seed)
    n = len(numerators)
    ratios = []
    for _ in range(rounds):
        picks = [rng.randrange(n) for _ in range(n)]
        given = sum(denominators[i] for i in picks)
        ratios.append(sum(numerators[i] for i in picks) / given if given else 0.0)
    ratios.sort()
    return ratios[int(0.025 * (rounds - 1))], ratios[int(0.975 * (rounds - 1))]


def paired_bootstrap_diff(values: Sequence[float], baseline: Sequence[float], rounds: int = 1000,
                          seed: int = 0) -> dict:
    """Mean of (value - baseline) over the same items, with a paired bootstrap 95% CI: resample items,
    keep each item's pair together, so the prompt-to-prompt spread that both models share cancels out.
    E.g. values [1, 1, 0, 1] and baseline [0, 1, 0, 0]: differences [1, 0, 0, 1], mean 0.5. With
    differences [1, 0] the resampled means are 0, 0.5, 1 with odds 1/4, 1/2, 1/4, so the CI is [0, 1]."""
    if len(values) != len(baseline):
        raise ValueError(f"paired difference of {len(values)} values and {len(baseline)} baseline values")
    diffs = [v - b for v, b in zip(values, baseline)]
    if not diffs:
        return {"diff": float("nan"), "ci": (float("nan"), float("nan")), "n": 0}
    return {"diff": sum(diffs) / len(diffs), "ci": bootstrap_mean_ci(diffs, rounds, seed), "n": len(diffs)}


def paired_vs(result: dict, baseline: dict, metric: str = "prompt_strict", rounds: int = 1000, seed: int = 0) -> dict:
    """`paired_bootstrap_diff` of one per-prompt metric of two `score_answers` results, over the prompts both
    answered (matched by id)."""
    mine = {p["id"]: p[metric] for p in result.get("per_prompt", [])}
    theirs = {p["id"]: p[metric] for p in baseline.get("per_prompt", [])}
    shared = [i for i in mine if i in theirs]
    return paired_bootstrap_diff([mine[i] for i in shared], [theirs[i] for i in shared], rounds, seed)


def score_answers(prompts: Sequence[Prompt], answers: Sequence, bootstrap_rounds: int = 1000, seed: int = 0) -> dict:
    """Accuracy numbers with CIs for answers (Completions) to verifiable prompts; prompts without
    constraints count only toward the runaway rate."""
    runaway = [float(not a.stopped) for a in answers]
    result = {"prompts": len(prompts), "runaway_rate": sum(runaway) / max(len(runaway), 1)}
    scored = [(p, a) for p, a in zip(prompts, answers) if p.meta.get("constraints")]
    if not scored:
        return result
    per_prompt = [score_response(a.text, p) for p, a in scored]
    columns = {
        "prompt_strict": [float(s["prompt_strict"]) for s in per_prompt],
        "prompt_loose": [float(s["prompt_loose"]) for s in per_prompt],
    }
    # Instruction-level accuracy is a ratio over instructions; resampling prompts keeps their grouping.
    instr = [(sum(s["strict"]), sum(s["loose"]), len(s["strict"])) for s in per_prompt]
    given = [i[2] for i in instr]
    for column, name in ((0, "instruction_strict"), (1, "instruction_loose")):
        followed = [i[column] for i in instr]
        result[name] = sum(followed) / sum(given)
        result[f"{name}_ci"] = bootstrap_ratio_ci(followed, given, bootstrap_rounds, seed)
    for name, values in columns.items():
        result[name] = sum(values) / len(values)
        result[f"{name}_ci"] = bootstrap_mean_ci(values, bootstrap_rounds, seed)
    # Per prompt, so a checkpoint can be compared with the base on the same prompts (`paired_vs`), and each
    # instruction's own outcome with it, so the same instruction can be paired between two checkpoints
    # (evals/family_guard.py) and accuracy counted per instruction type.
    result["per_prompt"] = [{"id": p.id, "prompt_strict": float(s["prompt_strict"]),
                             "prompt_loose": float(s["prompt_loose"]), "stopped": a.stopped,
                             "instruction_ids": list(s["instruction_ids"]), "strict": [bool(v) for v in s["strict"]],
                             "loose": [bool(v) for v in s["loose"]]}
                            for (p, a), s in zip(scored, per_prompt)]
    result["instruction_types"] = instruction_type_accuracy(result["per_prompt"])
    return result


def instruction_type_accuracy(per_prompt: Sequence[dict]) -> list[dict]:
    """Accuracy per instruction type (constraint id), as IFEval reports it: for each id, the share of its
    instances followed, strict and loose, sorted by id. A list of rows rather than a dict keyed by id: the
    ids hold colons, which MLflow refuses in metric names (the tracker flattens the held-out numbers).
    E.g. prompts with ids [a, b] passing [True, False] and [a] passing [False]: a 1/2, b 0/1."""
    counts: dict[str, list[int]] = {}
    for prompt in per_prompt:
        for family, strict, loose in zip(prompt.get("instruction_ids", ()), prompt.get("strict", ()),
                                         prompt.get("loose", ())):
            row = counts.setdefault(family, [0, 0, 0])
            row[0] += 1
            row[1] += bool(strict)
            row[2] += bool(loose)
    return [{"id": family, "n": n, "strict": strict / n, "loose": loose / n}
            for family, (n, strict, loose) in sorted(counts.items())]


def heldout_requests(prompts: Sequence[Prompt], params: SamplingParams, seed: int = 0) -> list:
    """One request a prompt, each with its length budget (`with_budget`)."""
    return [GenerationRequest.of(p.messages, params=with_budget(params, p.meta), seed=seed, context=dict(p.meta))
            for p in prompts]


def evaluate_generator(generator, prompts: Sequence[Prompt], params: SamplingParams, seed: int = 0,
                       bootstrap_rounds: int = 1000) -> tuple[dict, list]:
    answers = generator.generate(heldout_requests(prompts, params, seed))
    return score_answers(prompts, answers, bootstrap_rounds, seed), answers


DEFAULT_LIMIT = 48  # the recipes' default held-out size


def run(model: str, *, store=None, limit: int | None = None, max_new_tokens: int | None = None,
        temperature: float = 0.0, batch_size: int = 16, seed: int = 0, bootstrap_rounds: int = 1000) -> dict:
    """The `verifiable` suite: `limit` prompts of the built-in pack's held-out split (never trained on;
    the split depends on `seed`, as in a recipe), greedy by default."""
    from ..loading import load_generator
    from ..prompts import load_prompts

    prompts = load_prompts(f"builtin:verifiable:heldout:{limit or DEFAULT_LIMIT}:{seed}")
    params = SamplingParams(max_new_tokens=max_new_tokens or 256, temperature=temperature)
    generator = load_generator(model, store=store, batch_size=batch_size)
    metrics, answers = evaluate_generator(generator, prompts, params, seed, bootstrap_rounds)
    return {"suite": "verifiable", "model": model, "max_new_tokens": params.max_new_tokens, **metrics,
            "items": [{"id": p.id, "response": a.text, "stopped": a.stopped} for p, a in zip(prompts, answers)]}


def format_result(result: dict) -> str:
    lines = [f"Verifiable held-out  model: {result['model']}  prompts: {result['prompts']}  "
             f"runaway rate: {result['runaway_rate']:.2f}",
             f"{'metric':<20} {'value':>6}  95% CI"]
    for name in ("prompt_strict", "prompt_loose", "instruction_strict", "instruction_loose"):
        if name in result:
            ci = result.get(f"{name}_ci")
            lines.append(f"{name:<20} {100 * result[name]:6.1f}" + (f"  [{100 * ci[0]:.1f}, {100 * ci[1]:.1f}]" if ci else ""))
    return "\n".join(lines)
