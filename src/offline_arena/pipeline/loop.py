"""The run: set up the store, opponents and judge; evaluate the base; run each round's stages in order,
promoting each stage's model as the next stage's target; write the summary and the report."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from ..config import Recipe
from ..run_folder import RunFolder, write_json
from .contestants import BASE_NAME, load_opponent
from .evaluation import evaluate_stage
from ..shards import heldout_prompts
from .stages import run_stage
from .summary import final_vs_base_line, summary_table

if TYPE_CHECKING:
    from ..judges.base import Judge
    from ..models.base import Generator, SamplingParams
    from ..prompts.sources import Prompt
    from ..store import Store

@dataclass
class RunContext:
    recipe: Recipe
    folder: RunFolder
    store: "Store"
    judge: "Judge"
    opponents: dict[str, "Generator"]            # name -> generator
    params: "SamplingParams"                     # battle sampling
    heldout: list["Prompt"]                      # held-out prompts
    eval_params: "SamplingParams | None" = None  # held-out sampling (greedy by default)
    checkpoints: dict[str, str] = field(default_factory=dict)  # contestant name -> model, in promotion order
    round_starts: dict[int, str] = field(default_factory=dict)  # round index -> the model that round started from
    tracker: Callable[[dict], None] | None = None


def run(recipe: Recipe, run_dir: Path, log: Callable[[str], None] | None = None) -> dict:
    """Run (or resume) every round and stage; return the final summary. `log` receives each line of the
    run's story (stage starts, tables, the final lines); by default the `offline_arena.pipeline` logger,
    which `arena run` writes to standard output (logs.setup_logging)."""
    log = log or logging.getLogger("offline_arena.pipeline").info

    from ..preflight import preflight

    checks = preflight(recipe)  # every problem the recipe and its inputs have, before anything loads
    folder = RunFolder(run_dir)
    folder.root.mkdir(parents=True, exist_ok=True)
    with folder.lock():  # one run per folder
        return _run_locked(recipe, folder, log, checks.decontamination)


def _run_locked(recipe: Recipe, folder: RunFolder, log, decontamination: dict | None = None) -> dict:
    from ..loading import load_judge
    from ..manifest import collect_manifest
    from ..models import SamplingParams
    from ..privacy.policy import manifest_entry, redacts_judge
    from ..store import Store
    from .tracking import stage_tracker

    save_recipe(recipe, folder)
    write_json(folder.manifest, {**collect_manifest(recipe.seed), "privacy": manifest_entry(recipe),
                                 "decontamination": decontamination})
    if decontamination:
        from ..preflight import format_decontamination

        log(format_decontamination(decontamination))
    mode = recipe.privacy.deidentify
    g, ev = recipe.generation, recipe.evaluation
    params = SamplingParams(max_new_tokens=g.max_new_tokens, temperature=g.temperature, top_p=g.top_p)
    eval_params = SamplingParams(max_new_tokens=ev.max_new_tokens or g.max_new_tokens, temperature=ev.temperature,
                                 top_p=g.top_p if ev.temperature > 0 else 1.0)
    with Store(folder.store) as store:
        # An opponent that follows the target (`target@revise`) is the base here: the evaluation's fixed
        # anchor; each stage's battles meet the current target's version of it (stages.stage_opponents).
        opponents = {o.name: load_opponent(o, recipe.target, store, recipe) for o in recipe.opponents}
        judge = load_judge(recipe.judge, store=store, max_new_tokens=recipe.judge_max_new_tokens,
                           max_retries=recipe.judge_max_retries, api_key_env=recipe.judge_api_key_env)
        if redacts_judge(mode, recipe.judge):
            from ..privacy.wrappers import DeidentifyingJudge

            judge = DeidentifyingJudge(judge)  # its verdicts say so; its fingerprint ends in +deid
        ctx = RunContext(recipe, folder, store, judge, opponents, params,
                         heldout_prompts(recipe), eval_params=eval_params, tracker=stage_tracker(recipe, folder))
        ctx.checkpoints[BASE_NAME] = recipe.target
        history = [evaluate_stage(ctx, folder.base, BASE_NAME, recipe.target, log)]
        current_name, current_model = BASE_NAME, recipe.target
        for round_index in range(1, recipe.rounds + 1):
            ctx.round_starts[round_index] = current_model
            for stage in recipe.stages_in_round(round_index):
                summary = run_stage(ctx, round_index, stage, current_name, current_model, log)
                history.append(summary)
                if summary.get("promoted", True):  # a merge may only join the leaderboard
                    current_name, current_model = summary["model_name"], summary["checkpoint"]
                    ctx.checkpoints[current_name] = current_model
        final = {"final_model": current_model, "final_name": current_name, "stages": history}
        last = next((s for s in reversed(history) if s.get("model_name") == current_name and "vs_base" in s), None)
        if last is not None:
            final["final_vs_base"] = last["vs_base"]
        write_json(folder.summary, final)
        log(summary_table(history))
        if last is not None:
            log(final_vs_base_line(last["vs_base"]))
        from ..report import write_report_quietly  # RUN/report.html; a failure there is logged, never raised

        write_report_quietly(folder.root, log)
        return final


# Recipe fields that say where or how long the work runs, not what it computes: the same answers under the
# same store keys either way, so a run may resume with them changed (begun in this process, finished on Ray;
# a launched stage given more time), and what the family guard does about a regression it found (a user
# accepts one by resuming with `family_guard: warn`). The second tuple matches a field under any stage.
WHERE_IT_RUNS = ("generation.ray", "evaluation.family_guard", "evaluation.family_guard_alpha")
WHERE_IT_RUNS_IN_ANY_STAGE = ("train.launch.timeout_s",)


def _where_it_runs(key: str) -> bool:
    return any(key == field or key.startswith(field + ".") for field in WHERE_IT_RUNS) or \
        any(key == field or key.endswith("." + field) for field in WHERE_IT_RUNS_IN_ANY_STAGE)


def save_recipe(recipe: Recipe, folder: RunFolder) -> None:
    """The resolved recipe is saved once; resuming with a different recipe is refused (name the
    differences) rather than silently mixing two experiments in one folder."""
    import json

    from ..manifest import diff

    resolved = recipe.model_dump(mode="json")
    if folder.recipe.is_file():
        saved = json.loads(folder.recipe.read_text())
        try:  # a field added to the schema since the run began is no difference when it holds its default
            saved = Recipe.model_validate(saved).model_dump(mode="json")
        except ValueError:
            pass  # a field the schema no longer has: the differences below name it
        changes = [c for c in diff(saved, resolved) if not _where_it_runs(c[0])]
        more_rounds = [c for c in changes if c[0] == "rounds"]
        changes = [c for c in changes if c[0] != "rounds"]
        if changes:
            listed = "; ".join(f"{k}: {a!r} -> {b!r}" for k, a, b in changes[:10])
            raise ValueError(f"{folder.root} holds a run of a different recipe ({listed}); use a new --run-dir")
        if not more_rounds:
            return
        # Another number of rounds continues the same run (`arena run --rounds 3 --run-dir RUN` after a
        # one-round run): round r's shards are dealt by its name, not by how many rounds there are
        # (shards.file_slots deals round by round), so rounds already done keep their answers and data.
        # The saved recipe then says how many rounds the folder's last run asked for.
    write_json(folder.recipe, resolved)
