"""Arena Learning's selection rule measured (arXiv 2407.10627, sec. 3.3 and its data-selection ablation): SFT on the
prompts the target LOST, against SFT on as many prompts drawn at random, on the quickstart; held-out and
IFEval differences, paired over the same prompts, side by side in one run.

The set-up is the quickstart's SFT stage (recipes/quickstart.yaml), read from the recipe itself:

1. one pool of P prompts of the built-in pack's `round1/sft` split with the quickstart's prompt settings (its
   constraint ids, 1-2 constraints a prompt, 3 phrasings, long answers allowed), each with its length budget
   and without the prompts that hold an IFEval item, exactly as `shards.stage_prompts` deals a stage;
2. the base (builtin:smollm2-135m-instruct, battling as `base`) against `target@revise` (the base's own
   answers, independently sampled and repaired) on every prompt of the pool, at the quickstart's generation
   settings (temperature 0.7, 128 new tokens, budgets up to 320), judged by the verifier: `battles.play`,
   everything through RUN/store.sqlite, so a rerun generates and judges nothing again;
3. two SFT datasets of the same number of rows R:
     by_outcome  the quickstart's rule, `flywheel.sft_rows` with the SFT stage's DataFilters: one row a prompt
                 the base LOST, the winner's (repaired) answer as the target, kept only if it ended by itself
                 and satisfies every constraint of its prompt;
     random      R prompts drawn at random (seeded) from the whole pool, each with the opponent's repaired
                 answer as the target, whatever the battle's outcome and whether or not it passes;
   R = the rows by_outcome yields (capped by --rows: then by_outcome is a seeded sample of its rows). Neither
   set has rehearsal rows (the quickstart's `rehearsal: 0.5` is set to 0 here), so only the selection differs;
4. SFT from the base on each, with the quickstart's SFT settings (learning rate 1e-4, 2 epochs, batch 4,
   grad_accum 2, max_length 640, the stop-token guard probing 8 of the pool's prompts): the pipeline's own
   `train_job` and SFT runner, each into its own folder (RUN/sft-by_outcome, RUN/sft-random). A guard that
   trips is reported, not fatal (the checkpoint is saved before the check), and both are still evaluated.
   A rerun with the same rows and settings reuses the checkpoint;
5. the base and both checkpoints evaluated as the pipeline evaluates a stage: the pack's held-out split (96
   prompts, 128 new tokens with length budgets) and IFEval's fixed stratified subset (64 prompts, 256 new
   tokens), greedy; printed per model, then paired differences (points, with paired bootstrap 95% CIs over
   the same prompts) of each selection against the base and of by_outcome - random, for held-out
   prompt-level strict and IFEval prompt- and instruction-level strict.

Everything lands in RUN/results.json. Wall times per phase are printed. On 2 CPU cores (AMD EPYC, bf16) the full
run took 12 min 20 s (P = 128 battles 2 min, two SFT runs 3 min each, 3 x (96 + 64) greedy answers 4 min). With one pool and one
training seed the CIs cover the prompt noise of the evaluation, not the noise of which rows were drawn:
repeat with --draw-seed (the random set only) or --seed (the whole set-up) for that.

    python bench/selection.py [--prompts 128] [--rows R] [--seed 0] [--draw-seed S] [--heldout 96] [--ifeval 64]
                              [--run-dir runs/bench-selection] [--smoke]

--smoke shrinks everything to check the path end to end on CPU in minutes: P = 8, held-out 8, IFEval 4, 1 epoch,
token limits 64 (budgets up to 96), 2 guard probes; default run dir runs/bench-selection-smoke.
"""

from __future__ import annotations

import argparse
import random
import time
from dataclasses import asdict
from pathlib import Path
from types import SimpleNamespace

RECIPE = Path(__file__).resolve().parents[1] / "recipes" / "quickstart.yaml"
OUTCOME, RANDOM = "by_outcome", "random"
TAG = "bench/selection"
PHASES: dict[str, float] = {}


class phase:
    """Times a phase of the run into PHASES and says when it starts and ends."""

    def __init__(self, name: str):
        self.name = name

    def __enter__(self):
        print(f"[{self.name}] ...", flush=True)
        self.started = time.perf_counter()

    def __exit__(self, *exc):
        PHASES[self.name] = time.perf_counter() - self.started
        print(f"[{self.name}] {PHASES[self.name]:.0f} s", flush=True)


def bench_recipe(args):
    """The quickstart with its SFT stage only, the stage's shard P prompts, no rehearsal, no leaderboard
    battles, and the held-out and IFEval sizes asked for (--smoke: everything smaller)."""
    from offline_arena.config import Recipe, load_recipe

    data = load_recipe(RECIPE).model_dump()
    sft = next(s for s in data["stages"] if s["kind"] == "sft")
    sft["prompts"] = args.prompts
    sft["data"]["rehearsal"] = 0.0
    data.update(seed=args.seed, stages=[sft])
    data["prompts"]["heldout"] = args.heldout
    data["evaluation"]["leaderboard"] = False  # the base's and the checkpoints' own numbers only
    data["evaluation"]["suites"]["ifeval"]["limit"] = args.ifeval
    if args.smoke:
        sft["train"].update(epochs=min(1.0, sft["train"]["epochs"]), probe_prompts=2)
        data["generation"].update(max_new_tokens=64, max_budget=96)
        data["evaluation"]["max_new_tokens"] = 64
        data["evaluation"]["suites"]["ifeval"]["max_new_tokens"] = 64
    return Recipe.model_validate(data)


# --- 1-2: the pool and its battles -------------------------------------------------------------------------

def pool_and_battles(recipe, store, target_name: str) -> tuple[list, list, str]:
    """The stage's shard (shards.stage_prompts) and the base's judged battles against the recipe's opponent
    on it (battles.play), as the pipeline's first SFT stage plays them."""
    from offline_arena.battles import play, target_vs_opponents
    from offline_arena.loading import load_generator, load_judge
    from offline_arena.models import SamplingParams
    from offline_arena.pipeline.contestants import load_opponent
    from offline_arena.shards import stage_prompts

    with phase("pool"):
        prompts = stage_prompts(recipe, 1, "sft")
    (opponent,) = recipe.opponents
    g = recipe.generation
    params = SamplingParams(max_new_tokens=g.max_new_tokens, temperature=g.temperature, top_p=g.top_p)
    with phase("battles"):
        target = load_generator(recipe.target, store=store, batch_size=g.batch_size, ray=g.ray)
        opponents = {opponent.name: load_opponent(opponent, recipe.target, store, recipe)}
        judge = load_judge(recipe.judge, store=store, max_new_tokens=recipe.judge_max_new_tokens,
                           max_retries=recipe.judge_max_retries, api_key_env=recipe.judge_api_key_env)
        judged = play(target_vs_opponents(target_name, list(opponents), prompts), {target_name: target, **opponents},
                      judge, store, params, recipe.seed, TAG)
    return prompts, judged, opponent.name


# --- 3: the two datasets -----------------------------------------------------------------------------------

def outcome_of(battle, target: str) -> str:
    if battle.winner in ("model_a", "model_b"):
        return "won" if battle.side(battle.winner)[0] == target else "lost"
    return battle.winner  # tie, error


def datasets(judged: list, target: str, opponent: str, filters, rows_cap: int | None, draw_seed: int) -> tuple[dict, dict]:
    """{by_outcome, random} rows of the same count, and what each holds."""
    from offline_arena.flywheel import sft_rows

    chosen = sft_rows(judged, target, filters)  # the pipeline's rule (filters.rehearsal is 0: no rehearsal rows)
    if any(row.get("rehearsal") for row in chosen):
        raise RuntimeError("rehearsal rows in the by_outcome set; the bench needs rehearsal 0")
    rng = random.Random(draw_seed)
    if rows_cap is not None and rows_cap < len(chosen):
        keep = set(rng.sample(range(len(chosen)), rows_cap))
        chosen = [row for i, row in enumerate(chosen) if i in keep]
    count = len(chosen)
    by_prompt = {b.prompt_id: b for b in judged}
    drawn = sorted(rng.sample(range(len(judged)), count))
    randoms = []
    for i in drawn:
        battle = judged[i]
        side = "model_a" if battle.model_a == opponent else "model_b"
        answer = battle.side(side)[1]
        randoms.append({"messages": [*battle.messages, {"role": "assistant", "content": answer.text}],
                        "prompt_id": battle.prompt_id, "source_model": opponent})

    def described(rows: list) -> dict:
        battles = [by_prompt[row["prompt_id"]] for row in rows]
        outcomes = [outcome_of(b, target) for b in battles]
        answers = [b.side("model_a" if b.model_a == opponent else "model_b")[1] for b in battles]
        return {"rows": len(rows), **{o: outcomes.count(o) for o in ("lost", "won", "tie", "error")},
                "target_passes": sum(filters.passes(a, b) for a, b in zip(answers, battles)),
                "target_stopped": sum(a.stopped for a in answers),
                "mean_target_chars": sum(len(a.text) for a in answers) / max(len(answers), 1)}

    info = {OUTCOME: described(chosen), RANDOM: described(randoms)}
    info[RANDOM]["shared_prompts_with_by_outcome"] = len({r["prompt_id"] for r in chosen} & {r["prompt_id"] for r in randoms})
    return {OUTCOME: chosen, RANDOM: randoms}, info


# --- 4: training -------------------------------------------------------------------------------------------

def train_arm(recipe, name: str, rows: list, prompts: list, run_dir: Path) -> dict:
    """SFT from the base on `rows` through the pipeline's own job builder and SFT runner; reused when the folder
    holds a checkpoint of the same rows and settings."""
    from offline_arena.flywheel import export_rows
    from offline_arena.models.base import content_key
    from offline_arena.pipeline.stage_runners import RUNNERS
    from offline_arena.pipeline.stages import train_job
    from offline_arena.run_folder import StageFolder, read_json, write_json
    from offline_arena.train.guard import StopTokenGuardError

    folder = StageFolder(run_dir / f"sft-{name}", 1, "sft")
    folder.path.mkdir(parents=True, exist_ok=True)
    export_rows(rows, folder.data)
    (stage,) = recipe.stages
    job = train_job(SimpleNamespace(recipe=recipe), stage, recipe.target, rows, prompts, folder)
    key = content_key([job.model_path, rows, asdict(job.settings)])
    record_path = folder.path / "bench.json"
    record = read_json(record_path)
    if record and record.get("key") == key and folder.checkpoint.is_dir():
        print(f"[train {name}] same rows and settings as before: {folder.checkpoint} reused", flush=True)
        return record
    with phase(f"train {name}"):
        guard = None
        try:
            checkpoint, metrics = RUNNERS["sft"].train(job)
        except StopTokenGuardError as error:
            if not (folder.checkpoint / "config.json").is_file():
                raise  # tripped before training: nothing to evaluate
            guard = str(error)  # the runaway check runs after saving: evaluate the checkpoint anyway, say so
            print(f"[train {name}] stop-token guard tripped (checkpoint kept, evaluated anyway): {error}", flush=True)
            checkpoint, metrics = folder.checkpoint, read_json(folder.path / "metrics.json") or {}
    summary = {k: metrics.get(k) for k in ("first_loss", "last_loss", "steps", "train_seconds")}
    record = {"key": key, "checkpoint": str(checkpoint), "rows": len(rows), **summary,
              "guard": metrics.get("guard"), "guard_tripped": guard}
    write_json(record_path, record)
    return record


# --- 5: evaluation -----------------------------------------------------------------------------------------

def evaluate(recipe, model: str, heldout: list, store) -> dict:
    """What pipeline.evaluation.evaluate_stage computes (held-out numbers, the recipe's suites), without its
    leaderboard battles and eval.json: the store makes a rerun free, and a retrained checkpoint is a new model."""
    from offline_arena.evals.heldout import evaluate_generator
    from offline_arena.evals.suites import run_suites
    from offline_arena.loading import load_generator
    from offline_arena.models import SamplingParams

    g, ev = recipe.generation, recipe.evaluation
    params = SamplingParams(max_new_tokens=ev.max_new_tokens or g.max_new_tokens, temperature=ev.temperature,
                            top_p=g.top_p if ev.temperature > 0 else 1.0)
    generator = load_generator(model, store=store, batch_size=g.batch_size, ray=g.ray)
    result, _ = evaluate_generator(generator, heldout, params, recipe.seed, ev.bootstrap_rounds)
    suites = run_suites(list(ev.suites), model, options=ev.suites, store=store, seed=recipe.seed)
    return {"model": model, "heldout": result, "ifeval": suites["ifeval"]}


def paired(a: dict, b: dict, rounds: int, seed: int) -> dict:
    """a - b over the same prompts: held-out prompt-level strict, IFEval prompt- and instruction-level strict."""
    from offline_arena.evals import ifeval
    from offline_arena.evals.heldout import paired_vs

    both = ifeval.paired_vs(a["ifeval"], b["ifeval"], rounds, seed)
    return {"heldout prompt_strict": paired_vs(a["heldout"], b["heldout"], "prompt_strict", rounds, seed),
            "ifeval prompt_strict": both["prompt_strict"], "ifeval instruction_strict": both["instruction_strict"]}


def pct(value) -> str:
    return "  n/a" if value is None else f"{100 * value:5.1f}"


def ci(pair) -> str:
    return "" if not pair else f"[{pct(pair[0]).strip()}, {pct(pair[1]).strip()}]"


def model_line(name: str, e: dict) -> str:
    h, f = e["heldout"], e["ifeval"]
    return (f"{name:<11} held-out prompt strict {pct(h.get('prompt_strict'))} {ci(h.get('prompt_strict_ci')):<13} "
            f"runaway {h['runaway_rate']:.2f} | IFEval prompt strict {pct(f['strict']['prompt_level'])} "
            f"{ci(f['strict']['prompt_level_ci']):<13} instr strict {pct(f['strict']['instruction_level'])} "
            f"{ci(f['strict']['instruction_level_ci']):<13} runaway {f['runaway_rate']:.2f} words {f['mean_words']:.0f}")


def difference_line(label: str, d: dict) -> str:
    cells = [f"{metric} {100 * v['diff']:+6.1f} [{100 * v['ci'][0]:+.1f}, {100 * v['ci'][1]:+.1f}]"
             for metric, v in d.items()]
    return f"{label:<22} " + "   ".join(cells)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--prompts", type=int, default=None, help="P, the pool battled on (default 128; smoke 8)")
    parser.add_argument("--rows", type=int, default=None, help="cap R (default: every row by_outcome yields)")
    parser.add_argument("--seed", type=int, default=0, help="the recipe's seed: pool, held-out split, sampling, training")
    parser.add_argument("--draw-seed", type=int, default=None, help="the random set's draw (default: --seed)")
    parser.add_argument("--heldout", type=int, default=None, help="held-out prompts (default 96; smoke 8)")
    parser.add_argument("--ifeval", type=int, default=None, help="IFEval prompts, fixed subset (default 64; smoke 4)")
    parser.add_argument("--run-dir", type=Path, default=None,
                        help="store, data and checkpoints (default runs/bench-selection[-smoke])")
    parser.add_argument("--smoke", action="store_true", help="everything small: a check of the path, not a measurement")
    args = parser.parse_args()
    small = args.smoke
    args.prompts = args.prompts or (8 if small else 128)
    args.heldout = args.heldout or (8 if small else 96)
    args.ifeval = args.ifeval or (4 if small else 64)
    args.run_dir = args.run_dir or Path("runs/bench-selection" + ("-smoke" if small else ""))
    draw_seed = args.seed if args.draw_seed is None else args.draw_seed
    started = time.perf_counter()

    from offline_arena.flywheel import DataFilters
    from offline_arena.pipeline.contestants import BASE_NAME
    from offline_arena.shards import heldout_prompts
    from offline_arena.store import Store

    recipe = bench_recipe(args)
    (stage,) = recipe.stages
    t = stage.train
    print(f"quickstart SFT stage: lr {t.learning_rate}, {t.epochs} epochs, batch {t.batch_size} x grad_accum "
          f"{t.grad_accum}, max_length {t.max_length}, probes {t.probe_prompts}; battles at temperature "
          f"{recipe.generation.temperature}, {recipe.generation.max_new_tokens} tokens (budgets up to "
          f"{recipe.generation.max_budget}); rehearsal 0 in both sets" + ("  [SMOKE: not a measurement]" if small else ""))
    args.run_dir.mkdir(parents=True, exist_ok=True)
    with Store(args.run_dir / "store.sqlite") as store:
        prompts, judged, opponent = pool_and_battles(recipe, store, BASE_NAME)
        outcomes = {o: sum(outcome_of(b, BASE_NAME) == o for b in judged) for o in ("lost", "won", "tie", "error")}
        print(f"pool: {len(prompts)} prompts of round1/sft ({args.prompts} dealt; decontamination against IFEval "
              f"removed {args.prompts - len(prompts)}); {BASE_NAME} vs {opponent}: {outcomes}")
        filters = DataFilters(**stage.data.model_dump())
        rows, info = datasets(judged, BASE_NAME, opponent, filters, args.rows, draw_seed)
        for name in (OUTCOME, RANDOM):
            print(f"{name:<11} {info[name]}")
        if not rows[OUTCOME]:
            raise SystemExit("the by_outcome rule kept no row: nothing to train (more --prompts)")
        if len(rows[OUTCOME]) < stage.min_rows:
            print(f"note: {len(rows[OUTCOME])} rows < the stage's min_rows {stage.min_rows} (the pipeline would "
                  "skip training; the bench trains anyway)")
        if info[RANDOM]["shared_prompts_with_by_outcome"] == len(rows[OUTCOME]):
            print(f"note: the random draw is the by_outcome set itself ({len(rows[OUTCOME])} of {len(prompts)} prompts "
                  "kept): nothing to compare; cap --rows below the kept rows or battle more --prompts")
        elif len(rows[OUTCOME]) > len(prompts) // 2:
            print(f"note: by_outcome keeps {len(rows[OUTCOME])} of {len(prompts)} prompts, so the two sets share "
                  f"{info[RANDOM]['shared_prompts_with_by_outcome']}; --rows below that makes them differ more")
        trained = {OUTCOME: train_arm(recipe, OUTCOME, rows[OUTCOME], prompts, args.run_dir)}
        if rows[RANDOM] == rows[OUTCOME]:  # the same rows train the same model: once is enough
            trained[RANDOM] = trained[OUTCOME]
        else:
            trained[RANDOM] = train_arm(recipe, RANDOM, rows[RANDOM], prompts, args.run_dir)
        for name, record in trained.items():
            print(f"[train {name}] {record['rows']} rows, {record['steps']} logged steps, loss {record['first_loss']}"
                  f" -> {record['last_loss']}; guard {record['guard']}")
        heldout = heldout_prompts(recipe)
        models = {BASE_NAME: recipe.target, **{name: record["checkpoint"] for name, record in trained.items()}}
        evals, by_model = {}, {}
        for name, model in models.items():
            if model not in by_model:
                with phase(f"eval {name}"):
                    by_model[model] = evaluate(recipe, model, heldout, store)
            evals[name] = by_model[model]

    rounds, seed = recipe.evaluation.bootstrap_rounds, recipe.seed
    differences = {f"{OUTCOME} - {BASE_NAME}": paired(evals[OUTCOME], evals[BASE_NAME], rounds, seed),
                   f"{RANDOM} - {BASE_NAME}": paired(evals[RANDOM], evals[BASE_NAME], rounds, seed),
                   f"{OUTCOME} - {RANDOM}": paired(evals[OUTCOME], evals[RANDOM], rounds, seed)}
    print(f"\nheld-out: {len(heldout)} prompts, {recipe.evaluation.max_new_tokens} tokens with budgets; IFEval: first "
          f"{args.ifeval} of the fixed subset, {recipe.evaluation.suites['ifeval']['max_new_tokens']} tokens; greedy")
    for name, e in evals.items():
        print(model_line(name, e))
    print("paired differences, points [95% CI], same prompts:")
    for label, d in differences.items():
        print(difference_line(label, d))
    PHASES["total"] = time.perf_counter() - started
    print("wall times: " + ", ".join(f"{k} {v:.0f} s" for k, v in PHASES.items()))
    from offline_arena.run_folder import write_json

    write_json(args.run_dir / "results.json", {
        "args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()}, "draw_seed": draw_seed,
        "pool": len(prompts), "outcomes": outcomes, "datasets": info, "train": trained,
        "evals": {name: {"model": e["model"], "heldout": {k: v for k, v in e["heldout"].items() if k != "per_prompt"},
                         "ifeval": {k: v for k, v in e["ifeval"].items() if k not in ("items", "per_prompt")}}
                  for name, e in evals.items()},
        "differences": differences, "seconds": PHASES})
    print(f"results: {args.run_dir / 'results.json'}")


if __name__ == "__main__":
    main()
