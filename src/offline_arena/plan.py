"""`arena run RECIPE --dry-run`: what a recipe will do and roughly cost, computed from the recipe alone —
no model is loaded and nothing touches the network. Token counts are upper bounds (every answer runs to
its token limit); judge prompts are estimated as two answers plus a 400-token template."""

from __future__ import annotations

import math

from .config import Recipe, stage_prompt_count
from .judges.spec import parse_judge_spec
from .models.spec import parse_model_spec
from .stage_kinds import KINDS

JUDGE_TEMPLATE_TOKENS = 400


def plan(recipe: Recipe) -> dict:
    # The most an answer may take: with length budgets, a prompt may get up to max_budget (an upper bound;
    # which prompts need it is known only once their splits are dealt).
    max_tokens = max(recipe.generation.max_new_tokens, recipe.generation.max_budget or 0)
    samples = {o.name: parse_model_spec(o.model).best_of or 1 for o in recipe.opponents}
    calls_per_battle = parse_judge_spec(recipe.judge).calls_per_battle
    # Every try at its output limit: the most a judge that never gives a verdict can cost (then a judge error).
    judge_tokens_per_call = (2 * max_tokens + JUDGE_TEMPLATE_TOKENS + recipe.judge_max_new_tokens) * \
        (1 + recipe.judge_max_retries)
    stages, totals = [], {"generations": 0, "judge_calls": 0, "generated_tokens": 0, "judge_tokens": 0,
                          "opponent_cost": 0.0}

    def add(name: str, prompts: int, with_target: bool = True):
        gens_target = prompts if with_target else 0
        gens_opp = {o: prompts * n for o, n in samples.items()}
        battles = prompts * len(recipe.opponents)
        row = {"stage": name, "prompts": prompts, "battles": battles,
               "generations": gens_target + sum(gens_opp.values()), "judge_calls": battles * calls_per_battle}
        row["generated_tokens"] = row["generations"] * max_tokens
        row["judge_tokens"] = row["judge_calls"] * judge_tokens_per_call
        row["opponent_cost"] = sum(gens_opp[o.name] * max_tokens / 1000 * o.price_per_1k_tokens for o in recipe.opponents)
        append(row)

    def append(row: dict):
        stages.append(row)
        for key in totals:
            totals[key] += row[key]

    def add_without_battles(name: str, prompts: int, generations: int):
        """A stage that battles no opponent: a merge (no generation at all), or an on-policy stage whose
        model samples its own answers (distill: once a prompt an epoch, the teacher only scores; GRPO: a
        group of `num_generations` a prompt an epoch)."""
        append({"stage": name, "prompts": prompts, "battles": 0, "generations": generations, "judge_calls": 0,
                "generated_tokens": generations * max_tokens, "judge_tokens": 0, "opponent_cost": 0.0})

    # The opponents answer the held-out prompts once; each evaluated checkpoint adds its own answers.
    add("eval base (held-out)", recipe.prompts.heldout)
    rounds = [recipe.stages_in_round(r) for r in range(1, recipe.rounds + 1)]
    for r, stages_of_round in enumerate(rounds, 1):
        for stage in stages_of_round:
            kind = KINDS[stage.kind]
            if kind.battles:
                add(f"round{r}/{stage.kind}", stage_prompt_count(recipe, stage.kind))
            elif kind.prompt_slot is None:
                add_without_battles(f"round{r}/{stage.kind} ({stage.merge.method})", 0, 0)
            else:
                n = stage_prompt_count(recipe, stage.kind)
                per_prompt = 1
                if stage.kind == "grpo":
                    from .train.grpo import NUM_GENERATIONS

                    per_prompt = stage.train.extra.get("num_generations", NUM_GENERATIONS)
                add_without_battles(f"round{r}/{stage.kind}", n, n * per_prompt * math.ceil(stage.train.epochs))
            add(f"eval r{r}-{stage.kind} (held-out)", recipe.prompts.heldout)
    cached = sum(samples.values()) * recipe.prompts.heldout
    cached_cost = sum(samples[o.name] * recipe.prompts.heldout * max_tokens / 1000 * o.price_per_1k_tokens
                      for o in recipe.opponents)
    for row in stages[2::2]:  # opponents' held-out answers are cached after the first evaluation
        for key, amount in (("generations", cached), ("generated_tokens", cached * max_tokens),
                            ("opponent_cost", cached_cost)):
            row[key] -= amount
            totals[key] -= amount
    training_stages = sum(KINDS[s.kind].trains for stages_of_round in rounds for s in stages_of_round)
    gpu_hours = training_stages * recipe.gpu_hours_per_stage * recipe.prices.gpus
    cost = {"opponents": totals["opponent_cost"], "judge": totals["judge_tokens"] / 1000 * recipe.prices.judge_per_1k_tokens,
            "gpu": gpu_hours * recipe.prices.gpu_hour}
    cost["total"] = sum(cost.values())
    return {"recipe": recipe.name, "rounds": recipe.rounds, "stages_per_round": [s.kind for s in recipe.stages],
            "stages_by_round": [[s.kind for s in stages_of_round] for stages_of_round in rounds],
            "training_stages": training_stages, "rows": stages, "totals": totals, "gpu_hours": gpu_hours,
            "cost": cost, "suites": dict(recipe.evaluation.suites),
            "evaluated_checkpoints": 1 + sum(len(stages_of_round) for stages_of_round in rounds)}


def format_plan(p: dict) -> str:
    by_round = p["stages_by_round"]
    if all(kinds == p["stages_per_round"] for kinds in by_round):
        shape = f"{p['rounds']} round(s) of {' -> '.join(p['stages_per_round'])}"
    else:  # some stage skips some rounds (skip / from_round)
        shape = "; ".join(f"round {r}: {' -> '.join(kinds) or 'nothing'}" for r, kinds in enumerate(by_round, 1))
    lines = [f"recipe {p['recipe']}: {shape} ({p['training_stages']} training stages)",
             f"{'stage':<28} {'prompts':>7} {'battles':>7} {'generations':>11} {'judge calls':>11} {'max tokens':>11}"]
    for row in p["rows"]:
        lines.append(f"{row['stage']:<28} {row['prompts']:>7} {row['battles']:>7} {row['generations']:>11} "
                     f"{row['judge_calls']:>11} {row['generated_tokens'] + row['judge_tokens']:>11}")
    t = p["totals"]
    lines.append(f"{'total':<28} {'':>7} {'':>7} {t['generations']:>11} {t['judge_calls']:>11} "
                 f"{t['generated_tokens'] + t['judge_tokens']:>11}")
    c = p["cost"]
    lines.append(f"estimated cost: opponents ${c['opponents']:.2f} + judge ${c['judge']:.2f} + "
                 f"GPU ${c['gpu']:.2f} ({p['gpu_hours']:.1f} GPU-hours) = ${c['total']:.2f}")
    if p["suites"]:  # their sizes live in the suites' own data: listed, not counted
        suites = ", ".join(f"{name} {options}" if options else name for name, options in p["suites"].items())
        lines.append(f"plus evaluation suites on each of {p['evaluated_checkpoints']} checkpoints "
                     f"(not in the totals): {suites}")
    return "\n".join(lines)
