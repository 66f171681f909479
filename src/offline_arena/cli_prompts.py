"""`arena prompts stats | dedup | decontaminate | select`: a prompt file curated before it is trained on
(curation/). Each writes the prompts it keeps to --out (a .jsonl file's rows as they were written) and a
report of what it removed and why, beside it."""

from __future__ import annotations

import json
import time
from pathlib import Path


def add_prompt_commands(commands) -> None:
    prompts = commands.add_parser("prompts", help="curate a prompt file: stats, dedup, decontaminate, select")
    sub = prompts.add_subparsers(dest="prompts_command", required=True)

    stats = sub.add_parser("stats", help="counts, lengths, languages, duplicates, overlap with evaluation sets")
    _source(stats)
    _against(stats)
    _embedding(stats)
    stats.add_argument("--exact-only", action="store_true", help="count exact duplicates only (no MinHash)")
    stats.set_defaults(handler=cmd_stats)

    dedup = sub.add_parser("dedup", help="remove exact and near duplicates (MinHash-LSH), keeping the first of each group")
    _source(dedup)
    _out(dedup)
    _near_options(dedup)
    dedup.set_defaults(handler=cmd_dedup)

    decon = sub.add_parser("decontaminate", help="remove prompts that hold an evaluation item (token n-gram overlap)")
    _source(decon)
    _out(decon)
    _against(decon)
    decon.add_argument("--rule", action="append", metavar="N:SHARE",
                       help="flag a prompt holding more than SHARE of an item's N-grams (0: any); repeatable "
                            "(default: 8:0.5, Tulu 3's rule, and 13:0, lm-evaluation-harness's)")
    _embedding(decon)
    decon.set_defaults(handler=cmd_decontaminate)

    select = sub.add_parser("select", help="a diverse (k-means over TF-IDF) or hard (most battles lost) subset")
    _source(select)
    _out(select)
    how = select.add_mutually_exclusive_group(required=True)
    how.add_argument("--diverse", type=int, metavar="N", help="N prompts, so many per k-means cluster")
    how.add_argument("--hard", type=int, metavar="N", help="the N prompts MODEL lost most in RUN's battles")
    select.add_argument("--per-cluster", type=int, default=2, help="--diverse: prompts per cluster (default: %(default)s)")
    select.add_argument("--run", metavar="RUN", help="--hard: the run folder whose battles count")
    select.add_argument("--model", help="--hard: the model whose losses count (a contestant's name in RUN)")
    select.add_argument("--judge", help="--hard: judge fingerprint (or a unique part) when several judged RUN")
    select.add_argument("--by", choices=["outcome", "score"], default="outcome",
                        help="--hard: most battles lost (outcome), or lowest mean judge score (score: a "
                             "single-score judge's rating, the verifier's constraints met) (default: %(default)s)")
    select.add_argument("--seed", type=int, default=0)
    select.set_defaults(handler=cmd_select)


def _source(parser) -> None:
    parser.add_argument("file", metavar="FILE", help="a prompt source: .jsonl, .parquet, a datasets folder, builtin:...")


def _out(parser) -> None:
    parser.add_argument("--out", required=True, help="the .jsonl file of the prompts kept")
    parser.add_argument("--report", help="the .jsonl report of what was removed (default: OUT with .removed.jsonl)")


def _against(parser) -> None:
    parser.add_argument("--against", action="append", metavar="NAME|FILE",
                        help="an evaluation set (ifeval, ifbench, mtbench, arena-hard, alpaca-eval, healthbench) or a "
                             "prompt file; repeatable (default: every built-in set whose package is installed)")


def _embedding(parser) -> None:
    parser.add_argument("--embed-model", metavar="FOLDER",
                        help="also flag paraphrases: prompts the n-gram rules keep whose sentence embedding (mean-pooled, "
                             "L2-normalised) from this LOCAL encoder folder, e.g. a saved all-MiniLM-L6-v2, is close to an "
                             "item's (default: off; nothing is downloaded)")
    parser.add_argument("--embed-threshold", type=float, default=0.9, metavar="COSINE",
                        help="--embed-model: least cosine similarity that flags a prompt (default: %(default)s)")


def _embedding_rule(args):
    """The embedding check the flags ask for, or None (off)."""
    if not args.embed_model:
        return None
    from .curation.embeddings import EmbeddingRule

    return EmbeddingRule(args.embed_model, args.embed_threshold)


def _near_options(parser) -> None:
    from .curation.dedup import DEFAULT_NUM_PERM, DEFAULT_SHINGLE, DEFAULT_THRESHOLD

    parser.add_argument("--threshold", type=float, default=DEFAULT_THRESHOLD,
                        help="near duplicates: least estimated Jaccard similarity of word shingles (default: %(default)s)")
    parser.add_argument("--shingle", type=int, default=DEFAULT_SHINGLE, help="words per shingle (default: %(default)s)")
    parser.add_argument("--num-perm", type=int, default=DEFAULT_NUM_PERM, help="MinHash permutations (default: %(default)s)")
    parser.add_argument("--exact-only", action="store_true", help="remove exact duplicates only (after normalisation)")


def _load(source: str):
    from .prompts import load_prompts

    return load_prompts(source)


def _eval_index(names, rules=None):
    """The evaluation sets named (or every installed one) as one n-gram index; a note per set left out."""
    from .curation.decontaminate import DEFAULT_RULES, EvalIndex, parse_rule
    from .curation.eval_sets import installed_eval_sets, load_eval_set

    if names:
        items = [item for name in names for item in load_eval_set(name)]
    else:
        found, missing = installed_eval_sets()
        for name, why in missing.items():
            print(f"note: not checked against {name}: {why}")
        items = [item for name_items in found.values() for item in name_items]
    rules = [parse_rule(r) for r in rules] if rules else list(DEFAULT_RULES)
    return EvalIndex(items, rules)


def _write(source: str, prompts, keep: list[int], out: str) -> Path:
    """The kept prompts: a .jsonl file's rows as they were written, other sources as {id, messages, ...meta}."""
    from .prompts.sources import read_prompt_rows

    rows = read_prompt_rows(source) if source.endswith(".jsonl") else \
        [{"id": p.id, "messages": list(p.messages), **(p.meta or {})} for p in prompts]
    path = Path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as handle:
        for index in keep:
            handle.write(json.dumps(rows[index], ensure_ascii=False) + "\n")
    return path


def _write_report(args, entries: list[dict]) -> Path:
    path = Path(args.report or Path(args.out).with_suffix(".removed.jsonl"))
    with open(path, "w", encoding="utf-8") as handle:
        for entry in entries:
            handle.write(json.dumps(entry, ensure_ascii=False) + "\n")
    return path


def cmd_stats(args) -> int:
    from .curation.decontaminate import decontaminate
    from .curation.dedup import deduplicate
    from .curation.stats import format_stats, prompt_stats
    from .curation.text import prompt_text

    prompts = _load(args.file)
    dedup = deduplicate([prompt_text(p) for p in prompts], near=not args.exact_only, progress=True)
    decontamination = decontaminate(prompts, _eval_index(args.against), progress=True, embedding=_embedding_rule(args))
    print(format_stats(prompt_stats(prompts, dedup=dedup, decontamination=decontamination), args.file))
    return 0


def cmd_dedup(args) -> int:
    from .curation.dedup import deduplicate
    from .curation.text import prompt_text

    started = time.perf_counter()
    prompts = _load(args.file)
    texts = [prompt_text(p) for p in prompts]
    result = deduplicate(texts, near=not args.exact_only, threshold=args.threshold, shingle=args.shingle,
                         num_perm=args.num_perm, progress=True)
    path = _write(args.file, prompts, result.kept, args.out)
    report = _write_report(args, [
        {"dropped": prompts[copy].id, "kept": prompts[group.kept].id, "kind": kind, "similarity": round(similarity, 3),
         "text": texts[copy], "kept_text": texts[group.kept]}
        for group in result.groups for copy, kind, similarity in zip(group.dropped, group.kinds, group.similarity)])
    print(f"{args.file}: {result.total} prompts, {result.dropped('exact')} exact and {result.dropped('near')} near "
          f"duplicates removed ({len(result.groups)} groups), {len(result.kept)} kept -> {path} "
          f"({time.perf_counter() - started:.1f}s); groups: {report}")
    return 0


def cmd_decontaminate(args) -> int:
    from .curation.decontaminate import decontaminate
    from .curation.text import prompt_text

    started = time.perf_counter()
    prompts = _load(args.file)
    embedding = _embedding_rule(args)
    index = _eval_index(args.against, args.rule)
    result = decontaminate(prompts, index, progress=True, embedding=embedding)
    path = _write(args.file, prompts, result.kept, args.out)
    report = _write_report(args, [
        {"id": prompts[m.prompt].id, "suite": m.item.suite, "item": m.item.id, "rule": str(m.rule),
         "share": round(m.share, 3), "text": prompt_text(prompts[m.prompt]), "item_text": m.item.text}
        for m in result.removed])
    counts = ", ".join(f"{k} {v}" for k, v in sorted(result.counts().items())) or "none"
    print(f"{args.file}: {result.total} prompts checked against {len(index.items)} evaluation items "
          f"({', '.join(str(r) for r in [*index.rules, *([embedding] if embedding else [])])}); "
          f"removed {len(result.removed)} ({counts}), "
          f"{len(result.kept)} kept -> {path} ({time.perf_counter() - started:.1f}s); why: {report}")
    return 0


def cmd_select(args) -> int:
    from .curation import select

    prompts = _load(args.file)
    if args.diverse is not None:
        keep = select.diverse(prompts, args.diverse, args.per_cluster, args.seed)
        how = f"diverse ({args.per_cluster} per k-means cluster over TF-IDF)"
    else:
        if not args.run or not args.model:
            raise ValueError("--hard needs --run RUN (its stored battles) and --model NAME (whose losses count)")
        from .cli_pieces import run_judged_battles

        _, battles = run_judged_battles(args.run, args.judge, None)
        rank = select.battle_losses if args.by == "outcome" else select.battle_scores
        keep = select.hard(prompts, args.hard, rank(battles, args.model))
        how = f"hard ({'most lost by' if args.by == 'outcome' else 'lowest judge scores of'} {args.model} in {args.run})"
    path = _write(args.file, prompts, keep, args.out)
    print(f"{args.file}: {len(keep)} of {len(prompts)} prompts selected, {how} -> {path}")
    return 0
