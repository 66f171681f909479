"""One stage of a round, driven by the stage-kind table (stage_kinds.py): battles on a fresh shard when the
kind battles, its data builder, its trainer, then the evaluation; a merge stage merges instead of training.
"""

from __future__ import annotations

import time

from ..records import WINNERS
from ..run_folder import StageFolder, read_json, stage_folder_name, stage_model_name, write_json
from ..stage_kinds import KINDS, stage_kind
from .contestants import BASE_NAME, load_opponent, opponent_model
from .stage_runners import RUNNERS, StageInputs, TrainJob
from .evaluation import evaluate_stage, vs_base
from ..shards import stage_prompts
from .summary import summary_table


def run_stage(ctx, round_index: int, stage, current_name: str, current_model: str, log) -> dict:
    """Run (or, when its done.json is there, skip) one stage; return its summary."""
    folder = ctx.folder.stage(round_index, stage.kind)
    done = read_json(folder.done)
    if done is not None:
        log(f"[round {round_index} {stage.kind}] already done, skipped")
        return done
    folder.path.mkdir(parents=True, exist_ok=True)
    kind = stage_kind(stage.kind)
    if not kind.trains:
        return run_merge_stage(ctx, round_index, stage, current_name, current_model, folder, log)
    started = time.perf_counter()
    prompts = stage_prompts(ctx.recipe, round_index, stage.kind)
    judged, outcomes = [], {}
    if kind.battles:
        judged = play_stage(ctx, round_index, stage.kind, prompts, current_name, current_model, log)
        outcomes = {w: sum(b.winner == w for b in judged) for w in WINNERS}
    else:
        log(f"[round {round_index} {stage.kind}] {kind.summary}: {len(prompts)} prompts, no battles")
    from ..flywheel import DataFilters, export_rows

    rows = RUNNERS[stage.kind].build(StageInputs(judged, current_name, DataFilters(**stage.data.model_dump()), prompts))
    export_rows(rows, folder.data)
    if kind.needs_rows(stage) and len(rows) < stage.min_rows:
        log(f"[round {round_index} {stage.kind}] only {len(rows)} data rows (< min_rows {stage.min_rows}): "
            "training skipped, the current model carries on")
        checkpoint, train_metrics = current_model, {"skipped": True}
    else:
        checkpoint, train_metrics = RUNNERS[stage.kind].train(train_job(ctx, stage, current_model, rows, prompts, folder))
    summary = {"round": round_index, "stage": stage.kind, "model_name": stage_model_name(round_index, stage.kind),
               "checkpoint": str(checkpoint), "battles": len(judged), "outcomes": outcomes,
               "train": {**train_metrics, "rows": len(rows)}}
    if stage.teacher:
        summary["teacher"] = stage.teacher
    return finish_stage(ctx, folder, summary, started, log)


def play_stage(ctx, round_index: int, kind: str, prompts: list, current_name: str, current_model: str, log) -> list:
    """The current model against every opponent on the stage's prompts, judged."""
    from ..battles import play, target_vs_opponents
    from ..loading import load_generator

    log(f"[round {round_index} {kind}] battles: {current_name} vs {list(ctx.opponents)}")
    target = load_generator(current_model, store=ctx.store, batch_size=ctx.recipe.generation.batch_size,
                            ray=ctx.recipe.generation.ray)
    opponents = stage_opponents(ctx, current_model)
    return play(target_vs_opponents(current_name, list(opponents), prompts),
                {current_name: target, **opponents}, ctx.judge, ctx.store, ctx.params, ctx.recipe.seed,
                stage_folder_name(round_index, kind))


def stage_opponents(ctx, current_model: str) -> dict:
    """The opponents a stage's battles meet: the run's, with those that follow the target (`target@revise`,
    `contestants.opponent_model`) built on the model the stage starts from."""
    opponents = dict(ctx.opponents)
    for o in ctx.recipe.opponents:
        if opponent_model(o.model, current_model) != opponent_model(o.model, ctx.recipe.target):
            opponents[o.name] = load_opponent(o, current_model, ctx.store, ctx.recipe)
    return opponents


def train_job(ctx, stage, current_model: str, rows: list, prompts: list, folder: StageFolder) -> TrainJob:
    from ..models import parse_model_spec, resolve_local_path
    from ..train.common import TrainSettings

    # The guard probes each prompt at its length budget: a long answer it asked for is no runaway.
    floor = ctx.recipe.generation.max_new_tokens
    limits = [p.meta.get("max_new_tokens", floor) for p in prompts]
    settings = TrainSettings.from_recipe(stage.train, seed=ctx.recipe.seed,
                                         probe_max_new_tokens=limits if set(limits) - {floor} else floor)
    return TrainJob(stage, str(resolve_local_path(parse_model_spec(current_model))), rows, prompts,
                    [list(p.messages) for p in prompts], folder, settings, ctx.recipe.seed)


def merge_inputs(ctx, round_index: int, merge, current_name: str, current_model: str) -> dict:
    """name -> checkpoint of the models a merge stage merges, in order, each distinct checkpoint once (a
    stage that skipped training passed its input on unchanged)."""
    if merge.models == "previous_round":
        start = ctx.round_starts[round_index]
        start_name = next((n for n, m in ctx.checkpoints.items() if m == start), BASE_NAME)
        candidates = [(current_name, current_model), (start_name, start)]
    else:
        same_round = {stage_model_name(round_index, kind) for kind in KINDS} - {stage_model_name(round_index, "merge")}
        candidates = [(n, m) for n, m in ctx.checkpoints.items() if n in same_round]
    models: dict = {}
    for name, model in candidates:
        if model not in models.values():
            models[name] = model
    return models


def run_merge_stage(ctx, round_index: int, stage, current_name: str, current_model: str, folder: StageFolder,
                    log) -> dict:
    """Merge checkpoints with mergekit (merge.py), evaluate the merge like any checkpoint, and promote it
    as the next target unless `merge.promote` is false (then it only joins the leaderboard)."""
    from ..merge import MERGE_METHODS, merge_checkpoints

    started = time.perf_counter()
    m = stage.merge
    models = merge_inputs(ctx, round_index, m, current_name, current_model)
    needed = MERGE_METHODS[m.method].model_count
    summary = {"round": round_index, "stage": stage.kind, "model_name": stage_model_name(round_index, "merge"), "battles": 0,
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
        write_json(folder.done, summary)
        return summary
    base = None
    if MERGE_METHODS[m.method].needs_base:
        base = ctx.recipe.target if m.base == "target" else ctx.round_starts[round_index]
    log(f"[round {round_index} merge] {m.method} of {list(models)}" + (f" on base {base}" if base else ""))
    checkpoint = merge_checkpoints(list(models.values()), m.method, folder.checkpoint, weights=m.weights,
                                   t=m.t, density=m.density, base_model=base, seed=ctx.recipe.seed, overwrite=True)
    summary.update(checkpoint=str(checkpoint),
                   train={"method": m.method, "models": list(models), "seconds": time.perf_counter() - started})
    if not m.promote:
        log(f"[round {round_index} merge] not promoted: {current_name} stays the target; the merge joins the leaderboard")
    return finish_stage(ctx, folder, summary, started, log)


def finish_stage(ctx, folder: StageFolder, summary: dict, started: float, log) -> dict:
    """Evaluate the stage's model, then mark the stage done (its last act)."""
    summary.update(evaluate_stage(ctx, folder, summary["model_name"], summary["checkpoint"], log))
    difference = vs_base(ctx, summary.get("heldout"), summary.get("suites"))
    if difference:
        summary["vs_base"] = difference
    # Before done.json: a stage that fails the family guard is not marked done (it raises, like the stop-token guard).
    summary.update(family_guard_vs_start(ctx, folder, summary, log))
    summary["seconds"] = time.perf_counter() - started
    if ctx.tracker:
        ctx.tracker(summary)
    write_json(folder.done, summary)  # last act: the stage is done
    log(summary_table([summary]))
    return summary


def started_from(ctx, folder: StageFolder) -> tuple[str, StageFolder]:
    """The name and folder of the model the stage in `folder` started from: the last stage before it (in
    round and recipe order) whose done.json says its model was promoted, else the base. Read from the run
    folder, so a resumed run finds it as the first run did."""
    order = [(r, s.kind) for r in range(1, ctx.recipe.rounds + 1) for s in ctx.recipe.stages_in_round(r)]
    for round_index, kind in reversed(order[:order.index((folder.round, folder.kind))]):
        prior = ctx.folder.stage(round_index, kind)
        done = read_json(prior.done)
        if done is not None and done.get("promoted", True):
            return done["model_name"], prior
    return BASE_NAME, ctx.folder.base


def family_guard_vs_start(ctx, folder: StageFolder, summary: dict, log) -> dict:
    """The per-family regression guard (evals/family_guard.py): the stage's held-out results against those
    of the model it started from, instruction by instruction. Returns {"family_guard": record} for the
    summary ({} when off or there is nothing to compare); raises FamilyGuardError in "fail" mode."""
    from ..evals.family_guard import enforce, family_guard

    ev = ctx.recipe.evaluation
    heldout = summary.get("heldout")
    if ev.family_guard == "off" or not heldout:
        return {}
    name, start = started_from(ctx, folder)
    before = (read_json(start.eval) or {}).get("heldout") or {}
    # A merge that is not promoted hands nothing on to later stages: its regression is recorded, not fatal.
    mode = "warn" if ev.family_guard == "fail" and not summary.get("promoted", True) else ev.family_guard
    report = family_guard(heldout, before, ev.family_guard_alpha)
    where = f"[round {folder.round} {folder.kind}]"
    return {"family_guard": enforce(report, mode, where, name, log)}
