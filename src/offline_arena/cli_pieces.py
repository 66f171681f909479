"""The `arena` commands that run the loop's pieces one at a time on a run folder's store: answer prompts
(`generate`), let models battle (`battle`), judge recorded battles (`judge`), turn verdicts into training
files (`export`) and rate them (`leaderboard`). Each imports what it needs when it runs."""

from __future__ import annotations

import time

from .run_folder import RunFolder


def cmd_generate(args) -> int:
    import json

    from .models import GenerationRequest, SamplingParams
    from .loading import load_generator
    from .prompts import load_prompts
    from .prompts.budget import with_budget
    from .store import Store

    prompts = load_prompts(args.prompts)
    params = SamplingParams(max_new_tokens=args.max_new_tokens, temperature=args.temperature, top_p=args.top_p)
    # A row's own max_new_tokens (its length budget) wins over --max-new-tokens.
    requests = [GenerationRequest.of(p.messages, params=with_budget(params, p.meta), seed=args.seed, sample_index=s)
                for p in prompts for s in range(args.samples)]
    with Store(RunFolder(args.run_dir).store) as store:
        generator = load_generator(args.model, store=store, batch_size=args.batch_size)
        started = time.perf_counter()
        completions = generator.generate(requests)
        elapsed = time.perf_counter() - started
    fresh = generator.inner.num_generated
    runaways = sum(not c.stopped for c in completions)
    print(f"{len(completions)} answers ({fresh} generated, {len(completions) - fresh} from the store) "
          f"in {elapsed:.1f}s; runaway rate {runaways / len(completions):.2f}; store: {RunFolder(args.run_dir).store}")
    if args.out:
        with open(args.out, "w", encoding="utf-8") as handle:
            for request, prompt, completion in zip(requests, [p for p in prompts for _ in range(args.samples)], completions):
                handle.write(json.dumps({"id": prompt.id, "sample_index": request.sample_index, "answer": completion.text,
                                         "stopped": completion.stopped, "num_tokens": completion.num_tokens}) + "\n")
    return 0


def cmd_battle(args) -> int:
    from .battles import all_pairs, play_active, run_battles, target_vs_opponents
    from .judges import load_scorer
    from .loading import load_generator
    from .models import SamplingParams, named_specs, parse_model_spec
    from .prompts import load_prompts
    from .store import Store

    models = named_specs(args.models, what="--models")
    specs = {name: parse_model_spec(spec) for name, spec in models.items()}  # fail fast on a bad spec
    if len(models) < 2:
        raise ValueError("--models: a battle needs at least two models")
    if args.policy == "active" and not args.judge:
        raise ValueError("--policy active needs --judge: it decides battles between steps")
    prompts = load_prompts(args.prompts)
    params = SamplingParams(max_new_tokens=args.max_new_tokens, temperature=args.temperature, top_p=args.top_p)
    with Store(RunFolder(args.run_dir).store) as store:
        contestants = {name: load_generator(spec, store=store, batch_size=args.batch_size,
                                            scorer=load_scorer(args.scorer) if spec.best_of else None,
                                            scorer_name=args.scorer) for name, spec in specs.items()}
        names = list(models)
        if args.policy == "target":
            target = args.target or names[0]
            if target not in models:
                raise ValueError(f"--target {target!r} is not one of --models {names}")
            battles = run_battles(target_vs_opponents(target, [n for n in names if n != target], prompts),
                                  contestants, store, params, args.seed, args.tag)
        elif args.policy == "all-pairs":
            battles = run_battles(all_pairs(names, prompts), contestants, store, params, args.seed, args.tag)
        else:
            battles = play_active(names, prompts, contestants, _judge_of(args, args.judge, store), store, params,
                                  args.budget, seed=args.seed, tag=args.tag)
    print(f"{len(battles)} battles among {len(models)} models on {len(prompts)} prompts recorded in "
          f"{RunFolder(args.run_dir).store} (tag {args.tag!r})")
    return 0


def cmd_judge(args) -> int:
    from collections import Counter

    from .judges import judge_battles
    from .records import WINNERS
    from .store import Store

    if args.action == "audit":
        return _audit(args)
    if args.audited:
        raise ValueError(f"unexpected argument {args.audited!r}; did you mean `arena judge audit {args.audited}`?")
    with Store(RunFolder(args.run_dir or "runs/arena").store) as store:
        battles = store.battles(args.tag)
        if not battles:
            raise ValueError(f"{args.run_dir or 'runs/arena'}: no battles recorded" + (f" with tag {args.tag!r}" if args.tag else "")
                             + "; run `arena battle` first")
        judge = _judge_of(args, args.judge, store)
        judgments = judge_battles(judge, battles, store)
    counts = Counter(j.winner for j in judgments)
    print(f"{len(judgments)} battles judged by {judge.fingerprint}: " +
          ", ".join(f"{k} {counts.get(k, 0)}" for k in WINNERS))
    return 0


def _judge_of(args, spec: str, store):
    """The judge a command names, with the command's budget for an LLM judge."""
    from .loading import load_judge

    return load_judge(spec, store=store, max_new_tokens=args.judge_max_new_tokens, max_retries=args.judge_retries)


def _audit(args) -> int:
    import json

    from .evals.judge_audit import DEFAULT_MODELS, run_audit
    from .judges.audit import format_report
    from .records import SamplingParams
    from .store import Store

    if not args.audited:
        raise ValueError("expected the judge to audit: arena judge audit JUDGE (e.g. pairwise:builtin:smollm2-135m-instruct)")
    params = SamplingParams(args.max_new_tokens, args.temperature, args.top_p)
    with Store(RunFolder(args.run_dir or "runs/audit").store) as store:
        report = run_audit(args.audited, store, pairs=args.pairs, models=args.models or DEFAULT_MODELS,
                           prompts=args.prompts, params=params, seed=args.seed, batch_size=args.batch_size,
                           judge_max_new_tokens=args.judge_max_new_tokens, judge_max_retries=args.judge_retries)
    print(format_report(report))
    if args.out:
        with open(args.out, "w", encoding="utf-8") as handle:
            json.dump(report.as_dict(), handle, indent=1)
        print(f"written: {args.out}")
    return 0


def run_judged_battles(run_dir: str, judge: str | None, tag: str | None) -> tuple[str, list[dict]]:
    """The one judge's fingerprint and its judged battles in a run folder."""
    from .store import Store

    with Store(RunFolder(run_dir).store) as store:
        judges = store.judges()
        if judge:
            judges = [j for j in judges if judge in j]
        if len(judges) != 1:
            raise ValueError(f"{run_dir}: " + ("no judged battles; run `arena judge` first" if not judges else
                             f"several judges match, pick one with --judge: {judges}"))
        return judges[0], store.judged_battles(judges[0], tag)


def cmd_export(args) -> int:
    from .flywheel import DataFilters, dpo_rows, export_rows, kto_rows, reward_rows, sft_rows

    _, battles = run_judged_battles(args.run_dir, args.judge, args.tag)
    filters = DataFilters(require_stopped=not args.keep_runaways, min_margin=args.min_margin)
    if args.kind == "sft":
        if not args.target:
            raise ValueError("export sft needs --target: the model whose lost battles become data")
        rows = sft_rows(battles, args.target, filters)
    else:
        rows = {"dpo": dpo_rows, "rm": reward_rows, "kto": kto_rows}[args.kind](battles, filters)
    path = export_rows(rows, args.out)
    print(f"{len(rows)} {args.kind} rows from {len(battles)} judged battles written to {path}")
    return 0


def read_battle_log(path: str) -> list[dict]:
    """Battle records from a JSON list or a JSONL file; a bad line is reported as `file:line: problem`."""
    import json
    from pathlib import Path

    text = Path(path).read_text(encoding="utf-8")
    if text.lstrip().startswith("["):
        try:
            records = json.loads(text)
        except json.JSONDecodeError as error:
            raise ValueError(f"{path}: not valid JSON: {error}") from None
    else:
        records = []
        for number, line in enumerate(text.splitlines(), 1):
            if line.strip():
                try:
                    records.append(json.loads(line))
                except json.JSONDecodeError as error:
                    raise ValueError(f"{path}:{number}: not valid JSON: {error.msg}") from None
    for number, record in enumerate(records, 1):
        if not isinstance(record, dict) or not {"model_a", "model_b", "winner"} <= set(record):
            raise ValueError(f"{path}: record {number} needs model_a, model_b and winner, got {record!r:.200}")
    return records


def _log_leaderboard(args) -> int:
    from pathlib import Path

    from .ratings import battles_from_records, format_leaderboard, leaderboard, write_leaderboard

    records = read_battle_log(args.battles)
    a, b, w = battles_from_records(records)
    style = None
    if args.style:  # FastChat's logs carry token counts in conv_metadata
        try:
            style = ([r["conv_metadata"]["sum_assistant_a_tokens"] for r in records],
                     [r["conv_metadata"]["sum_assistant_b_tokens"] for r in records])
        except (KeyError, TypeError):
            raise ValueError(f"{args.battles}: --style needs conv_metadata.sum_assistant_a_tokens/_b_tokens in "
                             "every record (as FastChat's battle logs have)") from None
    rows = leaderboard(a, b, w, rounds=args.rounds, style=style,
                       anchor=(args.anchor, 1000.0) if args.anchor else None)
    csv_path, json_path = write_leaderboard(rows, Path(args.battles).resolve().parent)
    print(f"battles: {len(a)} from {args.battles}")
    print(format_leaderboard(rows))
    print(f"written: {csv_path}, {json_path}")
    _compare(rows, args.compare)
    return 0


def cmd_leaderboard(args) -> int:
    from .battles import rate
    from .ratings import format_leaderboard, write_leaderboard

    if args.battles:
        return _log_leaderboard(args)
    judge, battles = run_judged_battles(args.run_dir, args.judge, args.tag)
    battles = [b for b in battles if b.decided]
    if not battles:
        raise ValueError(f"{args.run_dir}: every judged battle is an error; nothing to rate")
    names = sorted({m for b in battles for m in (b.model_a, b.model_b)})
    if args.anchor and args.anchor not in names:
        raise ValueError(f"--anchor {args.anchor!r} fought no battle here; models: {names}")
    rows = rate(battles, rounds=args.rounds, anchor=args.anchor, style=args.style)
    csv_path, json_path = write_leaderboard(rows, args.run_dir)
    print(f"judge: {judge}  battles: {len(battles)}")
    print(format_leaderboard(rows))
    print(f"written: {csv_path}, {json_path}")
    _compare(rows, args.compare)
    return 0


def _compare(rows: list[dict], reference: str | None) -> None:
    """With --compare: how this board agrees with a reference board (ratings/compare.py)."""
    if not reference:
        return
    from .ratings.compare import compare_boards, format_comparison, read_board

    ours = {row["model"]: (row["rating"], row["lower"], row["upper"]) for row in rows}
    print(f"against {reference}:")
    print(format_comparison(compare_boards(ours, read_board(reference))))
