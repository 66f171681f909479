"""Rounds x stages: the main job.

Each stage of a round, as in Arena Learning (arXiv 2407.10627, sec. 3.3-3.4): take a fresh prompt
shard; let the *current* model battle the opponents; judge; build the stage's data; train (with the
stop-token guard); evaluate on the held-out split; promote the new checkpoint for the next stage.

Everything a stage produces lives in RUN_DIR/round<r>/<stage>/ and the stage writes `done.json` as its
very last act: a killed run restarts at the first stage without it. Generation and judging go through
the store, so the restarted stage repeats no battle and no judgment; training restarts from the stage's
starting checkpoint (a short stage is cheaper to redo than to checkpoint).
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

from .config import Recipe

BASE_NAME = "base"


@dataclass
class RunContext:
    recipe: Recipe
    run_dir: Path
    store: object
    judge: object
    opponents: dict                       # name -> generator
    params: object                        # battle SamplingParams
    heldout: list                         # held-out prompts
    eval_params: object = None            # held-out SamplingParams (greedy by default)
    checkpoints: dict = field(default_factory=dict)  # contestant name -> model folder/spec, in promotion order
    round_starts: dict = field(default_factory=dict)  # round index -> the model that round started from
    tracker: object = None


def stage_prompts(recipe: Recipe, round_index: int, kind: str) -> list:
    """The fresh shard of one stage (disjoint from every other stage's and from held-out)."""
    from .config import stage_prompt_count

    return _split(recipe, f"round{round_index}/{_shard_stage(kind)}", stage_prompt_count(recipe, kind))


def heldout_prompts(recipe: Recipe) -> list:
    return _split(recipe, "heldout", recipe.prompts.heldout)


def _shard_stage(kind: str) -> str:
    # distill takes the built-in pack's "ppo" slot, which no stage uses (rm_ppo's PPO rolls out on its "rm"
    # shard): a new slot would change how the pack deals every shard, and so every existing run's prompts.
    return {"rm_ppo": "rm", "distill": "ppo"}.get(kind, kind)


def _split(recipe: Recipe, split: str, n: int) -> list:
    source = recipe.prompts.source
    if source == "builtin:verifiable":
        from .prompts.verifiable import load_verifiable

        p = recipe.prompts
        return load_verifiable(split, n, recipe.seed, short_answers=p.short_answers, constraint_ids=p.constraints,
                               min_constraints=p.min_constraints, max_constraints=p.max_constraints,
                               phrasings=p.phrasings)
    return _file_split(source, split, n, recipe)


def _file_split(source: str, split: str, n: int, recipe: Recipe) -> list:
    """Disjoint shards of a user's prompt file: a seeded shuffle, held-out first, then each
    (round, stage) slot in a fixed order, so a shard never depends on which stages a run has."""
    import random

    from .config import STAGE_KINDS, stage_prompt_count
    from .prompts import load_prompts

    prompts = load_prompts(source)
    order = list(range(len(prompts)))
    random.Random(recipe.seed).shuffle(order)
    slots = [("heldout", recipe.prompts.heldout)] + [
        (f"round{r}/{_shard_stage(k)}", stage_prompt_count(recipe, k))
        for r in range(1, recipe.rounds + 1) for k in STAGE_KINDS if k != "merge"]  # a merge battles on no prompts
    start = 0
    for slot, size in slots:
        if slot == split:
            if start + size > len(prompts):
                raise ValueError(f"{source}: {len(prompts)} prompts cannot fill split {split!r} "
                                 f"({size} prompts after {start} used by earlier splits)")
            return [prompts[i] for i in order[start:start + size]][:n]
        start += size
    raise ValueError(f"unknown split {split!r}")


def run(recipe: Recipe, run_dir: Path, log=print) -> dict:
    """Run (or resume) every round and stage; return the final summary."""
    from .judges import load_judge, load_scorer
    from .manifest import collect_manifest
    from .models import SamplingParams, load_generator
    from .store import Store

    run_dir.mkdir(parents=True, exist_ok=True)
    _save_recipe(recipe, run_dir)
    _write_json(run_dir / "manifest.json", collect_manifest(recipe.seed))
    g = recipe.generation
    params = SamplingParams(max_new_tokens=g.max_new_tokens, temperature=g.temperature, top_p=g.top_p)
    with Store(run_dir / "store.sqlite") as store:
        opponents = {o.name: load_generator(o.model, store=store, batch_size=g.batch_size, api_key_env=o.api_key_env,
                                            scorer=load_scorer(o.scorer) if "@best-of-" in o.model else None,
                                            scorer_name=o.scorer)
                     for o in recipe.opponents}
        ev = recipe.evaluation
        eval_params = SamplingParams(max_new_tokens=ev.max_new_tokens or g.max_new_tokens, temperature=ev.temperature,
                                     top_p=g.top_p if ev.temperature > 0 else 1.0)
        ctx = RunContext(recipe, run_dir, store, load_judge(recipe.judge, store=store), opponents, params,
                         heldout_prompts(recipe), eval_params=eval_params, tracker=_tracker(recipe, run_dir))
        ctx.checkpoints[BASE_NAME] = recipe.target
        history = [evaluate_stage(ctx, run_dir / "round0" / "base", BASE_NAME, recipe.target, log)]
        current_name, current_model = BASE_NAME, recipe.target
        for round_index in range(1, recipe.rounds + 1):
            ctx.round_starts[round_index] = current_model
            for stage in recipe.stages:
                summary = run_stage(ctx, round_index, stage, current_name, current_model, log)
                history.append(summary)
                if summary.get("promoted", True):  # a merge may only join the leaderboard
                    current_name, current_model = summary["model_name"], summary["checkpoint"]
                    ctx.checkpoints[current_name] = current_model
        final = {"final_model": current_model, "final_name": current_name, "stages": history}
        last = next((s for s in reversed(history) if s.get("model_name") == current_name and "vs_base" in s), None)
        if last is not None:
            final["final_vs_base"] = last["vs_base"]
        _write_json(run_dir / "summary.json", final)
        log(summary_table(history))
        if last is not None:
            log(final_vs_base_line(last["vs_base"]))
        from .report import write_report_quietly  # RUN/report.html; a failure there is logged, never raised

        write_report_quietly(run_dir, log)
        return final


def run_stage(ctx: RunContext, round_index: int, stage, current_name: str, current_model: str, log) -> dict:
    from .battles import run_battles, target_vs_opponents
    from .flywheel import DataFilters, dpo_rows, export_rows, kto_rows, reward_rows, sft_rows
    from .judges import judge_battles
    from .models import load_generator

    stage_dir = ctx.run_dir / f"round{round_index}" / stage.kind
    done = stage_dir / "done.json"
    if done.is_file():
        summary = json.loads(done.read_text())
        log(f"[round {round_index} {stage.kind}] already done, skipped")
        return summary
    stage_dir.mkdir(parents=True, exist_ok=True)
    if stage.kind == "merge":
        return run_merge_stage(ctx, round_index, stage, current_name, current_model, stage_dir, log)
    if stage.kind == "distill":
        return run_distill_stage(ctx, round_index, stage, current_name, current_model, stage_dir, log)
    tag = f"round{round_index}/{stage.kind}"
    started = time.perf_counter()
    log(f"[round {round_index} {stage.kind}] battles: {current_name} vs {list(ctx.opponents)}")

    prompts = stage_prompts(ctx.recipe, round_index, stage.kind)
    target = load_generator(current_model, store=ctx.store, batch_size=ctx.recipe.generation.batch_size)
    contestants = {current_name: target, **ctx.opponents}
    rows = run_battles(target_vs_opponents(current_name, list(ctx.opponents), prompts), contestants, ctx.store,
                       ctx.params, ctx.recipe.seed, tag)
    judge_battles(ctx.judge, ctx.store.battles_by_id(rows), ctx.store)
    judged = ctx.store.judged_battles(ctx.judge.fingerprint, tag)
    outcomes = {w: sum(b["winner"] == w for b in judged) for w in ("model_a", "model_b", "tie", "error")}

    filters = DataFilters(**stage.data.model_dump())
    builders = {"sft": lambda: sft_rows(judged, current_name, filters), "dpo": lambda: dpo_rows(judged, filters),
                "kto": lambda: kto_rows(judged, filters), "rm_ppo": lambda: reward_rows(judged, filters),
                "grpo": lambda: [{"prompt": list(p.messages), "constraints": p.meta.get("constraints", [])}
                                 for p in prompts]}
    data = builders[stage.kind]()
    export_rows(data, stage_dir / "data.jsonl")
    model_name = f"r{round_index}-{stage.kind}"
    probe = [list(p.messages) for p in prompts]
    # PPO against the verifier needs no battle pairs (its reward is checked, not learned).
    needs_rows = not (stage.kind == "rm_ppo" and stage.ppo.reward == "verifier")
    if needs_rows and len(data) < stage.min_rows:
        log(f"[round {round_index} {stage.kind}] only {len(data)} data rows (< min_rows {stage.min_rows}): "
            "training skipped, the current model carries on")
        checkpoint, train_metrics = current_model, {"skipped": True, "rows": len(data)}
    else:
        checkpoint, train_metrics = _train(stage, current_model, data, prompts, probe, stage_dir, ctx)
        train_metrics["rows"] = len(data)
    summary = {"round": round_index, "stage": stage.kind, "model_name": model_name, "checkpoint": str(checkpoint),
               "battles": len(judged), "outcomes": outcomes, "train": train_metrics}
    return _finish_stage(ctx, stage_dir, summary, started, log)


def _train(stage, current_model: str, data, prompts, probe, stage_dir: Path, ctx: RunContext):
    from .models import parse_model_spec, resolve_local_path
    from .train.common import TrainSettings

    t = stage.train
    settings = TrainSettings(learning_rate=t.learning_rate, epochs=t.epochs, max_steps=t.max_steps,
                             batch_size=t.batch_size, grad_accum=t.grad_accum, max_length=t.max_length, lora=t.lora,
                             lora_r=t.lora_r, gradient_checkpointing=t.gradient_checkpointing,
                             runaway_tolerance=t.runaway_tolerance, seed=ctx.recipe.seed, extra=dict(t.extra),
                             probe_prompts=t.probe_prompts, probe_max_new_tokens=ctx.recipe.generation.max_new_tokens)
    model_path = resolve_local_path(parse_model_spec(current_model))
    if stage.kind == "sft":
        from .train.sft import train_sft

        result = train_sft(model_path, data, stage_dir, settings, probe)
    elif stage.kind == "dpo":
        from .train.dpo import train_dpo

        result = train_dpo(model_path, data, stage_dir, settings, probe)
    elif stage.kind == "kto":
        from .train.kto import train_kto

        result = train_kto(model_path, data, stage_dir, settings, probe)
    elif stage.kind == "grpo":
        from .train.grpo import train_grpo

        result = train_grpo(model_path, data, stage_dir, settings, probe)
    elif stage.kind == "distill":
        from .train.distill import train_distill

        teacher_path = resolve_local_path(parse_model_spec(stage.teacher))
        result = train_distill(model_path, teacher_path, data, stage_dir, settings, probe)
    else:  # rm_ppo: a reward model on the battle pairs, then PPO against it
        from .train.ppo import PPOSettings, train_ppo
        from .train.reward import train_reward

        p = stage.ppo
        rm = train_reward(model_path, data, stage_dir / "reward_model", settings, []) if "rm" in p.reward else None
        reward_fn = None
        if "verifier" in p.reward:
            from .judges.verifier import verifier_reward

            reward_fn = verifier_reward(prompts)
        kl = {"adaptive_kl": True, "target_kl": p.target_kl} if p.target_kl is not None else {"adaptive_kl": False}
        ppo_settings = PPOSettings(steps=p.steps, rollouts_per_step=p.rollouts_per_step, learning_rate=p.learning_rate,
                                   init_kl_coef=p.init_kl_coef, max_new_tokens=p.max_new_tokens, seed=ctx.recipe.seed,
                                   missing_eos_penalty=p.missing_eos_penalty, runaway_tolerance=t.runaway_tolerance,
                                   probe_prompts=t.probe_prompts,
                                   probe_max_new_tokens=ctx.recipe.generation.max_new_tokens, **kl, **p.extra)
        result = train_ppo(model_path, [list(pr.messages) for pr in prompts], stage_dir / "ppo", ppo_settings,
                           reward_fn=reward_fn, reward_model_path=str(rm.checkpoint) if rm else None,
                           probe_messages=probe)
        metrics = {**({"reward_model": _metrics_of(rm)} if rm else {}), **_metrics_of(result)}
        return result.checkpoint, metrics
    return result.checkpoint, _metrics_of(result)


def run_distill_stage(ctx: RunContext, round_index: int, stage, current_name: str, current_model: str,
                      stage_dir: Path, log) -> dict:
    """Logit distillation from `stage.teacher` on the stage's prompt shard. No battles: the student samples
    its own answers and the teacher scores them token by token (see train/distill.py)."""
    from .flywheel import export_rows

    started = time.perf_counter()
    prompts = stage_prompts(ctx.recipe, round_index, stage.kind)
    rows = [{"prompt": list(p.messages), "prompt_id": p.id} for p in prompts]
    export_rows(rows, stage_dir / "data.jsonl")
    log(f"[round {round_index} distill] {current_name} learns the next-token distributions of {stage.teacher} "
        f"on {len(rows)} prompts")
    if len(rows) < stage.min_rows:
        checkpoint, train_metrics = current_model, {"skipped": True, "rows": len(rows)}
    else:
        probe = [list(p.messages) for p in prompts]
        checkpoint, train_metrics = _train(stage, current_model, rows, prompts, probe, stage_dir, ctx)
        train_metrics["rows"] = len(rows)
    summary = {"round": round_index, "stage": stage.kind, "model_name": f"r{round_index}-distill",
               "checkpoint": str(checkpoint), "teacher": stage.teacher, "battles": 0, "outcomes": {},
               "train": train_metrics}
    return _finish_stage(ctx, stage_dir, summary, started, log)


def merge_inputs(ctx: RunContext, round_index: int, merge, current_name: str, current_model: str) -> dict:
    """name -> checkpoint of the models a merge stage merges, in order, each distinct checkpoint once (a
    stage that skipped training passed its input on unchanged)."""
    if merge.models == "previous_round":
        start = ctx.round_starts[round_index]
        start_name = next((n for n, m in ctx.checkpoints.items() if m == start), BASE_NAME)
        candidates = [(current_name, current_model), (start_name, start)]
    else:
        prefix = f"r{round_index}-"
        candidates = [(n, m) for n, m in ctx.checkpoints.items() if n.startswith(prefix) and n != f"{prefix}merge"]
    models: dict = {}
    for name, model in candidates:
        if model not in models.values():
            models[name] = model
    return models


def run_merge_stage(ctx: RunContext, round_index: int, stage, current_name: str, current_model: str,
                    stage_dir: Path, log) -> dict:
    """Merge checkpoints with mergekit (merge.py), evaluate the merge like any checkpoint, and promote it
    as the next target unless `merge.promote` is false (then it only joins the leaderboard)."""
    from .merge import MERGE_METHODS, merge_checkpoints

    started = time.perf_counter()
    m = stage.merge
    models = merge_inputs(ctx, round_index, m, current_name, current_model)
    needed = MERGE_METHODS[m.method].model_count
    summary = {"round": round_index, "stage": stage.kind, "model_name": f"r{round_index}-merge", "battles": 0,
               "outcomes": {}, "promoted": m.promote}
    reason = None
    if len(models) < 2:
        reason = f"only {len(models)} distinct checkpoint(s) to merge ({list(models)})"
    elif needed is not None and len(models) != needed:
        reason = f"{m.method} merges exactly {needed} models, got {list(models)}"
    elif m.weights is not None and len(m.weights) != len(models):
        reason = f"{len(m.weights)} weights for the {len(models)} distinct checkpoints {list(models)}"
    if reason:
        # Earlier stages skipped training: nothing new to merge, the current model carries on.
        log(f"[round {round_index} merge] {reason}: merge skipped, the current model carries on")
        summary.update(checkpoint=current_model, promoted=False, train={"skipped": True, "reason": reason})
        _write_json(stage_dir / "done.json", summary)
        return summary
    base = None
    if MERGE_METHODS[m.method].needs_base:
        base = ctx.recipe.target if m.base == "target" else ctx.round_starts[round_index]
    log(f"[round {round_index} merge] {m.method} of {list(models)}" + (f" on base {base}" if base else ""))
    checkpoint = merge_checkpoints(list(models.values()), m.method, stage_dir / "checkpoint", weights=m.weights,
                                   t=m.t, density=m.density, base_model=base, seed=ctx.recipe.seed, overwrite=True)
    summary.update(checkpoint=str(checkpoint),
                   train={"method": m.method, "models": list(models), "seconds": time.perf_counter() - started})
    if not m.promote:
        log(f"[round {round_index} merge] not promoted: {current_name} stays the target; the merge joins the leaderboard")
    return _finish_stage(ctx, stage_dir, summary, started, log)


def _finish_stage(ctx: RunContext, stage_dir: Path, summary: dict, started: float, log) -> dict:
    """Evaluate the stage's model, then mark the stage done (its last act)."""
    summary.update(evaluate_stage(ctx, stage_dir, summary["model_name"], summary["checkpoint"], log, register=True))
    vs_base = _vs_base(ctx, summary.get("heldout"))
    if vs_base:
        summary["vs_base"] = vs_base
    summary["seconds"] = time.perf_counter() - started
    if ctx.tracker:
        ctx.tracker(summary)
    _write_json(stage_dir / "done.json", summary)  # last act: the stage is done
    log(summary_table([summary]))
    return summary


def _vs_base(ctx: RunContext, heldout: dict | None) -> dict:
    """Paired bootstrap CIs of (this model - base) on the same held-out prompts: the effect of the run so far,
    with the noise the two share (which prompts are hard) taken out."""
    from .evals.heldout import paired_vs

    base_eval = ctx.run_dir / "round0" / "base" / "eval.json"
    if not heldout or "per_prompt" not in heldout or not base_eval.is_file():
        return {}
    base = json.loads(base_eval.read_text()).get("heldout", {})
    rounds, seed = ctx.recipe.evaluation.bootstrap_rounds, ctx.recipe.seed
    return {metric: paired_vs(heldout, base, metric, rounds, seed) for metric in ("prompt_strict", "prompt_loose")}


def final_vs_base_line(vs_base: dict) -> str:
    d = vs_base["prompt_strict"]
    return (f"final vs base: {d['diff']:+.3f} [{d['ci'][0]:+.3f}, {d['ci'][1]:+.3f}] prompt-level strict accuracy "
            f"on {d['n']} held-out prompts (paired bootstrap 95% CI)")


def _metrics_of(result) -> dict:
    metrics = {k: v for k, v in result.metrics.items() if not isinstance(v, (list, dict))}
    return {**metrics, "guard": result.guard.as_dict()}


def evaluate_stage(ctx: RunContext, stage_dir: Path, model_name: str, model: str, log, register: bool = False) -> dict:
    """Held-out accuracy and runaway rate of `model`, and the leaderboard of every checkpoint so far
    against the opponents on the held-out prompts."""
    from .battles import run_battles, target_vs_opponents
    from .evals.heldout import evaluate_generator
    from .judges import judge_battles
    from .models import load_generator

    done = stage_dir / "eval.json"
    if done.is_file():
        return json.loads(done.read_text())
    stage_dir.mkdir(parents=True, exist_ok=True)
    recipe = ctx.recipe
    out: dict = {"model_name": model_name, "checkpoint": model}
    generator = load_generator(model, store=ctx.store, batch_size=recipe.generation.batch_size)
    # Held-out answers and the leaderboard's battles use the same (greedy) answers: one generation each.
    params = ctx.eval_params or ctx.params
    if recipe.evaluation.heldout:
        out["heldout"], _ = evaluate_generator(generator, ctx.heldout, params, recipe.seed,
                                               recipe.evaluation.bootstrap_rounds)
    if recipe.evaluation.leaderboard:
        ctx.checkpoints[model_name] = model
        rows = run_battles(target_vs_opponents(model_name, list(ctx.opponents), ctx.heldout),
                           {model_name: generator, **ctx.opponents}, ctx.store, params, recipe.seed, "eval")
        judge_battles(ctx.judge, ctx.store.battles_by_id(rows), ctx.store)
        out["leaderboard"] = leaderboard_rows(ctx)
    if recipe.evaluation.suites:
        from .evals.suites import run_suites

        log(f"[eval {model_name}] suites: {', '.join(recipe.evaluation.suites)}")
        # The suites' generations and judgments go through the run's store: a resumed run repeats none.
        out["suites"] = run_suites(list(recipe.evaluation.suites), model, options=recipe.evaluation.suites,
                                   store=ctx.store, seed=recipe.seed)
    _write_json(done, out)
    return out


def leaderboard_rows(ctx: RunContext) -> list[dict]:
    from .ratings import leaderboard, write_leaderboard

    battles = [b for b in ctx.store.judged_battles(ctx.judge.fingerprint, "eval") if b["winner"] != "error"]
    if not battles:
        return []
    # Anchored to the first opponent: a fixed reference, so a new checkpoint's battles do not shift every
    # other rating and the ratings of successive evaluations can be compared.
    reference = ctx.recipe.opponents[0].name
    names = {m for b in battles for m in (b["model_a"], b["model_b"])}
    rows = leaderboard([b["model_a"] for b in battles], [b["model_b"] for b in battles], [b["winner"] for b in battles],
                       rounds=ctx.recipe.evaluation.bootstrap_rounds, seed=ctx.recipe.seed,
                       anchor=(reference, 1000.0) if reference in names else None)
    write_leaderboard(rows, ctx.run_dir)
    return rows


def summary_table(stages: list[dict]) -> str:
    """A short text table: one line per evaluated model."""
    head = f"{'model':<12} {'rows':>5} {'loss first->last':>17} {'EOT':>4} {'runaway b->a':>13} " \
           f"{'prompt-strict [95% CI]':>24} {'vs base [paired 95% CI]':>25} {'instr-loose':>11} {'rating':>7}"
    lines = [head, "-" * len(head)]
    for s in stages:
        train, guard = s.get("train", {}), s.get("train", {}).get("guard", {})
        loss = f"{train['first_loss']:.3f}->{train['last_loss']:.3f}" if "first_loss" in train else "-"
        runaway = (f"{guard['runaway_before']:.2f}->{guard['runaway_after']:.2f}"
                   if guard.get("runaway_before") is not None else "-")
        h = s.get("heldout", {})
        acc = (f"{h['prompt_strict']:.3f} [{h['prompt_strict_ci'][0]:.2f},{h['prompt_strict_ci'][1]:.2f}]"
               if "prompt_strict" in h else "-")
        rating = next((f"{r['rating']:.0f}" for r in s.get("leaderboard", []) if r["model"] == s["model_name"]), "-")
        d = s.get("vs_base", {}).get("prompt_strict")
        vs = f"{d['diff']:+.3f} [{d['ci'][0]:+.2f},{d['ci'][1]:+.2f}]" if d else "-"
        lines.append(f"{s['model_name']:<12} {train.get('rows', '-')!s:>5} {loss:>17} "
                     f"{('yes' if guard.get('end_of_turn_in_labels') else '-'):>4} {runaway:>13} {acc:>24} {vs:>25} "
                     f"{h.get('instruction_loose', float('nan')):>11.3f} {rating:>7}")
    return "\n".join(lines)


def _save_recipe(recipe: Recipe, run_dir: Path) -> None:
    """The resolved recipe is saved once; resuming with a different recipe is refused (name the
    differences) rather than silently mixing two experiments in one folder."""
    from .manifest import diff

    path = run_dir / "recipe.json"
    resolved = recipe.model_dump(mode="json")
    if path.is_file():
        saved = json.loads(path.read_text())
        changes = diff(saved, resolved)
        if changes:
            listed = "; ".join(f"{k}: {a!r} -> {b!r}" for k, a, b in changes[:10])
            raise ValueError(f"{run_dir} holds a run of a different recipe ({listed}); use a new --run-dir")
        return
    _write_json(path, resolved)


def _write_json(path: Path, obj) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(obj, indent=2, default=str))
    os.replace(tmp, path)  # atomic: a crash never leaves a half-written marker


def _tracker(recipe: Recipe, run_dir: Path):
    """MLflow logging per stage, if the recipe asks for it (local SQLite tracking store in the run)."""
    if not recipe.tracking.mlflow:
        return None
    try:
        import mlflow
    except ImportError:
        raise ValueError("tracking.mlflow is on but mlflow is not installed: pip install 'offline-arena[track]'") from None
    mlflow.set_tracking_uri(f"sqlite:///{(run_dir / 'mlflow.db').resolve()}")
    mlflow.set_experiment(recipe.name)

    def log_stage(summary: dict) -> None:
        from .manifest import flatten

        with mlflow.start_run(run_name=f"round{summary['round']}/{summary['stage']}"):
            mlflow.log_params({k: v for k, v in flatten(recipe.model_dump(mode="json")).items()
                               if isinstance(v, (int, float, str, bool))})
            mlflow.log_metrics({k: float(v) for k, v in flatten({"train": summary["train"],
                                                                  "heldout": summary.get("heldout", {})}).items()
                                if isinstance(v, (int, float)) and not isinstance(v, bool)})

    return log_stage
