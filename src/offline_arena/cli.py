"""`arena` — the command line. Subcommands import what they need when they run, so `arena --help`
never pays for torch or transformers."""

from __future__ import annotations

import argparse
import contextlib
import signal
import sys
import threading
import time
from pathlib import Path

from .cli_pieces import cmd_battle, cmd_export, cmd_generate, cmd_judge, cmd_leaderboard
from .cli_prompts import add_prompt_commands
from .logs import setup_logging
from .run_folder import RunFolder

DEFAULT_MODEL = "builtin:smollm2-135m-instruct"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="arena", description="Post-train LLMs through an offline arena.")
    parser.add_argument("--verbose", action="store_true",
                        help="debug lines, and the ML libraries' own progress bars and warnings (quieted by default)")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = commands.add_parser("run", help="run a recipe: rounds of battle -> judge -> data -> train -> evaluate")
    run.add_argument("recipe", nargs="?", default="quickstart",
                     help="a recipe file, or the name of a bundled one: quickstart, gpu-trial, arena-learning-7b, merge-distill "
                          "(default: %(default)s)")
    run.add_argument("--run-dir", help="run folder (default: runs/<recipe name>); an existing one is resumed")
    run.add_argument("--rounds", type=int, help="override the recipe's number of rounds")
    run.add_argument("--dry-run", action="store_true", help="validate and print the plan and cost; touch no model")
    run.set_defaults(handler=cmd_run)

    doctor = commands.add_parser("doctor", help="what differs between two runs' environments and recipes")
    doctor.add_argument("run_a")
    doctor.add_argument("run_b")
    doctor.set_defaults(handler=cmd_doctor)

    gen = commands.add_parser("generate", help="answer a prompt file with a model, through the run's store")
    gen.add_argument("model", help="model spec: builtin:NAME, a folder or Hub id, vllm:..., openai:URL[,URL...]#NAME")
    gen.add_argument("--prompts", default="builtin:sample", help="a .jsonl file or builtin:NAME (default: %(default)s)")
    gen.add_argument("--run-dir", default="runs/generate", help="run folder holding store.sqlite (default: %(default)s)")
    _add_sampling_args(gen)
    gen.add_argument("--samples", type=int, default=1, help="answers per prompt (default: %(default)s)")
    gen.add_argument("--out", help="also write the answers to this JSONL file")
    gen.set_defaults(handler=cmd_generate)

    battle = commands.add_parser("battle", help="let models answer prompts and record their battles")
    battle.add_argument("--models", nargs="+", required=True, metavar="[NAME=]SPEC",
                        help="contestants, e.g. base=builtin:smollm2-135m-instruct bo4=builtin:smollm2-135m-instruct@best-of-4")
    battle.add_argument("--target", help="with --policy target: the model that meets every other (default: the first)")
    battle.add_argument("--policy", choices=["target", "all-pairs", "active"], default="target",
                        help="who meets whom (default: %(default)s)")
    battle.add_argument("--prompts", default="builtin:verifiable:round1/sft:32", help="(default: %(default)s)")
    battle.add_argument("--run-dir", default="runs/arena", help="(default: %(default)s)")
    battle.add_argument("--scorer", default="verifier", help="best-of-n scorer (default: %(default)s)")
    battle.add_argument("--judge", help="with --policy active: the judge that decides battles between steps")
    battle.add_argument("--budget", type=int, default=64, help="with --policy active: battles to run (default: %(default)s)")
    battle.add_argument("--tag", default="arena", help="label stored with the battles (default: %(default)s)")
    _add_sampling_args(battle)
    _add_judge_budget_args(battle)
    battle.set_defaults(handler=cmd_battle)

    judge = commands.add_parser("judge", help="judge the battles recorded in a run folder; `arena judge audit "
                                "JUDGE`: how far a judge agrees with the verifier, its position and length bias")
    judge.add_argument("action", nargs="?", choices=["audit"], help="audit: measure the judge JUDGE (below)")
    judge.add_argument("audited", nargs="?", metavar="JUDGE", help="audit: the judge spec to measure")
    judge.add_argument("--judge", default="verifier",
                       help="verifier[:loose][:graded|:complete-wins-ties|:count-only], pairwise:<model>, pairwise-arena-hard:<model>, score:<model>, rm:<folder> "
                            "(default: %(default)s)")
    judge.add_argument("--run-dir", help="(default: runs/arena; audit: runs/audit)")
    judge.add_argument("--tag", help="only battles with this tag")
    judge.add_argument("--pairs", type=int, default=200, help="audit: prompts, one pair each (default: %(default)s)")
    judge.add_argument("--models", nargs=2, metavar=("A", "B"), help="audit: the two contestants (default: the "
                       "embedded model and its @revise, which differ in how many constraints they meet)")
    judge.add_argument("--prompts", help="audit: prompts with checkable constraints (default: "
                       "builtin:verifiable:heldout:PAIRS)")
    judge.add_argument("--out", help="audit: write the report as JSON to this file")
    _add_sampling_args(judge, max_new_tokens=256)
    _add_judge_budget_args(judge)
    judge.set_defaults(handler=cmd_judge)

    board = commands.add_parser("leaderboard", help="ratings with bootstrap CIs from a run folder's judged battles")
    board.add_argument("--run-dir", default="runs/arena", help="(default: %(default)s)")
    board.add_argument("--judge", help="judge fingerprint (or a unique part of it) when several judged the run")
    board.add_argument("--tag", help="only battles with this tag")
    board.add_argument("--rounds", type=int, default=100, help="bootstrap rounds (default: %(default)s)")
    board.add_argument("--style", action="store_true", help="style control: answer length as a covariate")
    board.add_argument("--battles", help="rate a battle log of your own instead of a run folder: JSON (a list) or "
                                         "JSONL of FastChat-style records {model_a, model_b, winner}; winner is "
                                         "model_a, model_b, tie or 'tie (bothbad)'; results land beside the file")
    board.add_argument("--anchor", help="pin this model at 1000 (default: none; run folders anchor nothing either)")
    board.add_argument("--compare", metavar="REF.csv", help="also report how this board agrees with a reference "
                       "board (a CSV with model, rating[, lower, upper]): Spearman, Kendall tau-b, separability, "
                       "Arena-Hard's agreement with confidence")
    board.set_defaults(handler=cmd_leaderboard)

    export = commands.add_parser("export", help="turn judged battles into SFT/DPO/RM/KTO data files (TRL formats)")
    export.add_argument("kind", choices=["sft", "dpo", "rm", "kto"])
    export.add_argument("--out", required=True, help=".jsonl, .parquet, or a folder (datasets save_to_disk)")
    export.add_argument("--run-dir", default="runs/arena", help="(default: %(default)s)")
    export.add_argument("--target", help="sft: the model whose lost battles become data")
    export.add_argument("--judge", help="judge fingerprint (or a unique part of it) when several judged the run")
    export.add_argument("--tag", help="only battles with this tag")
    export.add_argument("--min-margin", type=float, help="dpo/rm/kto: minimum |score_a - score_b|")
    export.add_argument("--keep-runaways", action="store_true", help="keep answers that hit the token limit")
    export.set_defaults(handler=cmd_export)

    merge = commands.add_parser("merge", help="merge checkpoints with mergekit (linear, slerp, ties, dare_ties, ...)")
    merge.add_argument("--method", required=True,
                       help="linear, slerp, task_arithmetic, ties, dare_ties or dare_linear")
    merge.add_argument("--models", nargs="+", required=True, metavar="MODEL",
                       help="local model folders or builtin: specs; the first one's tokenizer and chat template are kept")
    merge.add_argument("--out", required=True, help="output folder (must not exist or be empty)")
    merge.add_argument("--base", help="ties/dare_*/task_arithmetic: the base model the task vectors start from")
    merge.add_argument("--t", type=float, help="slerp: 0 = the first model, 1 = the second (default: 0.5)")
    merge.add_argument("--weights", type=float, nargs="+", help="one per model (default: equal)")
    merge.add_argument("--density", type=float, nargs="+",
                       help="ties/dare_*: share of each task vector kept, one value or one per model (default: 0.5)")
    merge.add_argument("--seed", type=int, default=0, help="DARE's random drops (default: %(default)s)")
    merge.set_defaults(handler=cmd_merge)

    evaluate = commands.add_parser("eval", help="run an evaluation suite on a model: ifeval, ifbench, verifiable, "
                                   "mtbench, arena, arena-hard, alpaca-eval, healthbench")
    evaluate.add_argument("model", help="model spec: builtin:NAME, a folder or Hub id, vllm:..., openai:URL[,URL...]#NAME")
    evaluate.add_argument("--suite", required=True, choices=["ifeval", "ifbench", "verifiable", "mtbench", "arena", "arena-hard",
                                                              "alpaca-eval", "healthbench"])
    evaluate.add_argument("--judge", help="mtbench: the judge model spec (openai:URL#NAME, a folder, ...); "
                                          "arena: a judge spec (default verifier); arena-hard: "
                                          "pairwise-arena-hard:<model spec> (or a model spec); alpaca-eval: "
                                          "pairwise:<model spec> (or a model spec); healthbench: the grader's model spec")
    evaluate.add_argument("--opponents", nargs="+", metavar="[NAME=]SPEC", help="arena: the fixed panel of opponents")
    evaluate.add_argument("--prompts", help="arena: prompt source (default: the verifiable held-out split)")
    evaluate.add_argument("--limit", type=int, help="evaluate only the first N prompts/questions (ifeval: of a fixed order "
                                                       "stratified by instruction type; default all 541)")
    evaluate.add_argument("--baseline", metavar="SPEC", help="ifeval: answer the same prompts with this model too "
                                                             "and report the paired differences and any instruction "
                                                             "type significantly worse (e.g. the base of a checkpoint)")
    evaluate.add_argument("--max-new-tokens", type=int, help="answer length limit (default: the suite's)")
    evaluate.add_argument("--batch-size", type=int, default=16, help="(default: %(default)s)")
    evaluate.add_argument("--seed", type=int, default=0, help="(default: %(default)s)")
    evaluate.add_argument("--run-dir", default="runs/eval",
                          help="folder of the store.sqlite that caches answers and judgments (default: %(default)s)")
    evaluate.add_argument("--out", help="write the full result (with every answer) to this JSON file")
    _add_judge_budget_args(evaluate, max_new_tokens=None)  # None: the suite's own (MT-Bench: FastChat's 2048)
    evaluate.set_defaults(handler=cmd_eval)

    report = commands.add_parser("report", help="write a run's HTML report: leaderboards, metric curves, win rates, battles")
    report.add_argument("run_dir", metavar="RUN", help="the run folder (finished or still running)")
    report.add_argument("--out", help="the HTML file to write (default: RUN/report.html)")
    report.add_argument("--judge", help="judge fingerprint (or a unique part of it) when several judged the run")
    report.add_argument("--max-battles", type=int, default=5000,
                        help="latest battles included in the battle browser (default: %(default)s)")
    report.set_defaults(handler=cmd_report)

    deid = commands.add_parser("deidentify", help="redact PHI (names, dates, phone numbers, MRNs, ...) from a prompt file "
                                                  "before it is sent to an external model or judge")
    deid.add_argument("file", metavar="FILE", help="a .jsonl prompt file (rows with messages or prompt)")
    deid.add_argument("--out", help="where to write the redacted file (default: FILE with .deid before the suffix)")
    deid.set_defaults(handler=cmd_deidentify)

    add_prompt_commands(commands)

    fields_ = commands.add_parser("fields", help="every recipe field with its type, default and description; "
                                                 "with --kind, what train.extra / ppo.extra accept")
    fields_.add_argument("section", nargs="?", default="",
                         help="a dotted section path, e.g. generation, prompts, train (a stage's), ppo, evaluation "
                              "(default: the recipe's top level)")
    fields_.add_argument("--kind", help="a stage kind: list what its train.extra (its TRL config) accepts")
    fields_.add_argument("--ppo", action="store_true", help="with --kind rm_ppo: list what ppo.extra accepts")
    fields_.set_defaults(handler=cmd_fields)

    args = parser.parse_args(argv)
    setup_logging(args.verbose)
    with _sigterm_unwinds(args.command):
        try:
            return args.handler(args) or 0
        except (ValueError, FileNotFoundError, RuntimeError) as error:
            # Errors we raise say what is wrong and where; a traceback would bury that.
            print(f"arena {args.command}: error: {error}", file=sys.stderr)
            return 2


@contextlib.contextmanager
def _sigterm_unwinds(command: str):
    """SIGTERM (a scheduler pre-empting the job, `kill`) ends the command the way Ctrl-C does, by an
    exception, instead of Python's default of dying on the spot: `finally` blocks run, so launched training
    jobs are stopped with every rank (train/launch.py) and the store's open transaction ends. What was
    committed stays; rerunning the command resumes. Exit status 143 (128 + SIGTERM), as a shell reports it."""
    def stop(signum, frame):
        print(f"\narena {command}: stopped by SIGTERM; what finished is kept, the same command resumes",
              file=sys.stderr)
        raise SystemExit(128 + signum)

    if threading.current_thread() is not threading.main_thread():  # signal handlers live in the main thread
        yield
        return
    previous = signal.signal(signal.SIGTERM, stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _add_judge_budget_args(parser: argparse.ArgumentParser, max_new_tokens: int | None = 512) -> None:
    parser.add_argument("--judge-max-new-tokens", type=int, default=max_new_tokens,
                        help="an LLM judge's output limit per call (default: %(default)s)")
    parser.add_argument("--judge-retries", type=int, default=2 if max_new_tokens else None,
                        help="asks again when a verdict does not parse; with the limit it bounds what a judge that "
                             "never gives a verdict costs (then: a judge error) (default: %(default)s)")


def _add_sampling_args(parser: argparse.ArgumentParser, max_new_tokens: int = 128) -> None:
    parser.add_argument("--max-new-tokens", type=int, default=max_new_tokens, help="(default: %(default)s)")
    parser.add_argument("--temperature", type=float, default=0.7, help="0 for greedy (default: %(default)s)")
    parser.add_argument("--top-p", type=float, default=1.0, help="(default: %(default)s)")
    parser.add_argument("--seed", type=int, default=0, help="(default: %(default)s)")
    parser.add_argument("--batch-size", type=int, default=32, help="(default: %(default)s)")


def cmd_merge(args) -> int:
    from .merge import merge_checkpoints

    density = args.density[0] if args.density and len(args.density) == 1 else args.density
    started = time.perf_counter()
    out = merge_checkpoints(args.models, args.method, args.out, weights=args.weights, t=args.t, density=density,
                            base_model=args.base, seed=args.seed)
    print(f"merged {len(args.models)} models with {args.method} into {out} in {time.perf_counter() - started:.1f}s; "
          f"load it with from_pretrained, or name it as a model spec (e.g. an opponent or the next target)")
    return 0


def cmd_eval(args) -> int:
    import json

    from .evals.suites import format_result, run_suite

    options = {"limit": args.limit, "max_new_tokens": args.max_new_tokens, "judge": args.judge,
               "opponents": args.opponents, "prompts": args.prompts, "baseline": args.baseline,
               "judge_max_new_tokens": args.judge_max_new_tokens, "judge_max_retries": args.judge_retries}
    # Only the options given reach the suite, so a suite that takes no --judge says so instead of ignoring it.
    options = {k: v for k, v in options.items() if v is not None}
    started = time.perf_counter()
    result = run_suite(args.suite, args.model, run_dir=args.run_dir, batch_size=args.batch_size, seed=args.seed,
                       **options)
    print(format_result(result))
    print(f"({time.perf_counter() - started:.0f}s; store: {RunFolder(args.run_dir).store})")
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        print(f"written: {args.out}")
    return 0


def cmd_deidentify(args) -> int:
    try:  # the [privacy] extra is optional; say so before any file is read
        import names  # noqa: F401
        import presidio_analyzer  # noqa: F401
    except ImportError as error:
        raise RuntimeError(f"needs the [privacy] extra (pip install -e '.[privacy]'): {error}") from None
    from .privacy import deidentify_prompt_file

    started = time.perf_counter()
    out, counts = deidentify_prompt_file(args.file, args.out)
    print(f"redacted {args.file} -> {out} in {time.perf_counter() - started:.1f}s; "
          f"{sum(counts.values())} identifiers removed")
    for kind, count in sorted(counts.items(), key=lambda item: (-item[1], item[0])):
        print(f"  {kind:<16} {count}")
    return 0


def resolve_recipe_path(name: str) -> Path:
    path = Path(name)
    if path.suffix in (".yaml", ".yml") or path.exists():
        return path
    bundled = Path(__file__).resolve().parent / "data" / "recipes" / f"{name}.yaml"
    if not bundled.is_file():
        known = sorted(p.stem for p in bundled.parent.glob("*.yaml"))
        raise ValueError(f"no recipe file {name!r} and no bundled recipe of that name; bundled: {known}")
    return bundled


def cmd_run(args) -> int:
    """The main job: a recipe's rounds of stages (bare `arena run` = the CPU quickstart)."""
    from .config import load_recipe

    overrides = {"rounds": args.rounds} if args.rounds else None
    recipe = load_recipe(resolve_recipe_path(args.recipe), overrides)
    if args.dry_run:
        from .plan import format_plan, plan
        from .preflight import format_preflight, preflight

        print(format_plan(plan(recipe)))  # from the recipe alone; then the checks a real run makes first
        print(format_preflight(preflight(recipe)))
        return 0
    from .pipeline import run

    run_dir = Path(args.run_dir or f"runs/{recipe.name}" + (f"-{recipe.rounds}rounds" if args.rounds else ""))
    started = time.perf_counter()
    final = run(recipe, run_dir)
    print(f"done in {time.perf_counter() - started:.0f}s; final model: {final['final_model']}; run folder: {run_dir}")
    return 0


def cmd_report(args) -> int:
    from .report import write_report
    from .report.battle_data import BattleLimits

    path = write_report(args.run_dir, args.out, judge=args.judge, limits=BattleLimits(max_battles=args.max_battles))
    print(f"report written: {path} ({path.stat().st_size / 1e6:.1f} MB)")
    return 0


def cmd_doctor(args) -> int:
    from .manifest import doctor_report

    print(doctor_report(Path(args.run_a), Path(args.run_b)))
    return 0


def cmd_fields(args) -> int:
    from .recipe_help import describe_extras, describe_section

    if args.kind:
        print(describe_extras(args.kind, "ppo" if args.ppo else "train"))
    else:
        print(describe_section(args.section))
    return 0


if __name__ == "__main__":
    sys.exit(main())
