"""Bradley–Terry leaderboard: ours (offline_arena.ratings) against FastChat's elo_analysis, in one run.

Simulates battles among models with known strengths (ties included), then rates them twice:

  ours      compute_bradley_terry + bootstrap_ratings (aggregated counts, batched Newton)
  FastChat  fastchat.serve.monitor.elo_analysis from fschat 0.2.36: compute_elo_mle_with_tie
            (sklearn LogisticRegression on the duplicated battles) + get_bootstrap_result
            (battles.sample(frac=1, replace=True), refit per round)

and prints the largest rating gap between the two point estimates (target < 1 point), the largest gap
between bootstrap medians (the two use different random resamples, so some Monte Carlo noise is
expected), both wall times and the speed ratio (target: ours >= 5x faster).

fschat 0.2.36 has no `compute_mle_elo` (a name from LMSYS's later notebooks and code); its Bradley–Terry
function is `compute_elo_mle_with_tie`, used here. It fits with sklearn's default C = 1.0, not C = 1e6;
FastChat's main branch later rewrote it with scipy's L-BFGS and no penalty at all.

Setup (FastChat itself is installed without its dependencies, which include torch and gradio):

    .venv/bin/pip install --no-deps fschat==0.2.36
    .venv/bin/pip install scikit-learn pandas tqdm

elo_analysis imports plotly, pytz, FastChat's model registry (which drags in torch and transformers via
fastchat.model) and its log-cleaning helpers at module level, but the two functions we call use none of
them. So we load the file directly and stand in empty modules for those names; plotly and pytz are
stood in only when they are not installed.

Run:  .venv/bin/python bench/ratings.py [--battles 50000] [--models 10] [--rounds 100] [--seed 0]
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import math
import os
import sys
import time
import types
import warnings
from pathlib import Path

import numpy as np

from offline_arena.ratings import FASTCHAT_0_2_36_L2, bootstrap_ratings, compute_bradley_terry

INSTALL_HINT = (
    "install FastChat without its heavy dependencies, plus what elo_analysis needs to run:\n"
    "    .venv/bin/pip install --no-deps fschat==0.2.36\n"
    "    .venv/bin/pip install scikit-learn pandas tqdm"
)

# Imported at module level by elo_analysis.py but used only by its plotting, report and log-reading code.
ALWAYS_STUBBED = (
    "fastchat.model.model_registry",  # importing it runs fastchat/model/__init__.py → torch, transformers
    "fastchat.serve.monitor.basic_stats",
    "fastchat.serve.monitor.clean_battle_data",
)
STUBBED_IF_MISSING = ("plotly.express", "pytz")


def _unused(*args, **kwargs):
    raise RuntimeError("stubbed out by bench/ratings.py: not needed for the Bradley–Terry functions")


def _stub_module(name: str) -> types.ModuleType:
    module = types.ModuleType(name)
    module.__getattr__ = lambda attribute: _unused  # any imported name resolves to the stub function
    return module


def _importable(name: str) -> bool:
    try:
        importlib.import_module(name)
        return True
    except ImportError:
        return False


def load_fastchat_elo_analysis() -> tuple[types.ModuleType, list[str]]:
    """Load fastchat/serve/monitor/elo_analysis.py with stand-ins for its unused module-level imports."""
    try:
        spec = importlib.util.find_spec("fastchat")
    except (ImportError, ValueError):
        spec = None
    if spec is None or not spec.submodule_search_locations:
        sys.exit(f"bench/ratings.py: fschat is not installed; {INSTALL_HINT}")
    missing = [name for name in ("pandas", "sklearn", "tqdm") if not _importable(name)]
    if missing:
        sys.exit(f"bench/ratings.py: FastChat's elo_analysis needs {', '.join(missing)}; {INSTALL_HINT}")
    path = Path(spec.submodule_search_locations[0]) / "serve" / "monitor" / "elo_analysis.py"
    if not path.is_file():
        sys.exit(f"bench/ratings.py: {path} not found; {INSTALL_HINT}")

    stubbed = list(ALWAYS_STUBBED) + [name for name in STUBBED_IF_MISSING if not _importable(name)]
    # `import plotly.express as px` also needs a `plotly` package to hang the submodule on.
    missing_parents = {
        parent
        for name in stubbed
        for parent in (name.rsplit(".", depth)[0] for depth in range(1, name.count(".") + 1))
        if not _importable(parent)
    }
    saved = {name: sys.modules.get(name) for name in [*stubbed, *missing_parents]}
    sys.modules.update({name: _stub_module(name) for name in [*missing_parents, *stubbed]})
    for name in stubbed:
        parent, _, child = name.rpartition(".")
        if parent in missing_parents:
            setattr(sys.modules[parent], child, sys.modules[name])
    try:
        module_spec = importlib.util.spec_from_file_location("fastchat_elo_analysis", path)
        module = importlib.util.module_from_spec(module_spec)
        module_spec.loader.exec_module(module)
    finally:
        for name, original in saved.items():
            if original is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = original
    return module, stubbed


def simulate_battles(num_models: int, num_battles: int, seed: int) -> tuple[list[str], np.ndarray, dict]:
    """Random pairings; P(A wins) = σ(θ_A − θ_B) in expectation, with ties.

    A tie happens with probability 0.4 · 4p(1 − p) (most often between equals) and takes half its
    probability from each side, so the expected score of A is still exactly p: the half-win tie
    convention estimates the true θ without bias.
    """
    rng = np.random.default_rng(seed)
    names = [f"model-{i:02d}" for i in range(num_models)]
    theta = rng.normal(0.0, 1.0, num_models)
    theta -= theta.mean()  # the same centring as both estimators
    a = rng.integers(0, num_models, num_battles)
    b = (a + rng.integers(1, num_models, num_battles)) % num_models  # never a model against itself
    p = 1.0 / (1.0 + np.exp(-(theta[a] - theta[b])))
    p_tie = 0.4 * 4.0 * p * (1.0 - p)
    u = rng.random(num_battles)
    winner = np.where(u < p - p_tie / 2, "model_a", np.where(u < p + p_tie / 2, "tie", "model_b"))
    true_ratings = {names[i]: 400.0 * theta[i] / math.log(10.0) + 1000.0 for i in range(num_models)}
    columns = {"model_a": np.array(names)[a], "model_b": np.array(names)[b], "winner": winner}
    return names, columns, true_ratings


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--battles", type=int, default=50_000)
    parser.add_argument("--models", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    os.environ.setdefault("TQDM_DISABLE", "1")  # FastChat's bootstrap loop draws a progress bar
    elo_analysis, stubbed = load_fastchat_elo_analysis()
    import fastchat
    import pandas as pd
    import sklearn

    names, columns, true_ratings = simulate_battles(args.models, args.battles, args.seed)
    battles = pd.DataFrame(columns)
    print(
        f"{args.battles} battles among {args.models} models, {(battles['winner'] == 'tie').mean():.1%} ties, "
        f"{args.rounds} bootstrap rounds; fschat {fastchat.__version__}, scikit-learn {sklearn.__version__}, "
        f"pandas {pd.__version__}"
    )
    print(f"elo_analysis loaded from its file with stand-ins for: {', '.join(stubbed)}")

    start = time.perf_counter()
    battle_columns = (battles["model_a"], battles["model_b"], battles["winner"])
    ours = compute_bradley_terry(*battle_columns)
    ours_boot = bootstrap_ratings(*battle_columns, rounds=args.rounds, seed=args.seed)
    ours_seconds = time.perf_counter() - start

    np.random.seed(args.seed)  # get_bootstrap_result draws from numpy's global generator
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        start = time.perf_counter()
        fastchat_point = elo_analysis.compute_elo_mle_with_tie(battles)
        fastchat_boot = elo_analysis.get_bootstrap_result(battles, elo_analysis.compute_elo_mle_with_tie, args.rounds)
        fastchat_seconds = time.perf_counter() - start
    sklearn_warnings = sorted({type(w.message).__name__ for w in caught})

    # Same objective as 0.2.36 (its C = 1.0 shrinkage), to show the remaining gap is only solver tolerance.
    ours_as_0_2_36 = compute_bradley_terry(*battle_columns, l2=FASTCHAT_0_2_36_L2)

    fastchat_median = fastchat_boot.median()
    print()
    print(f"{'model':<10} {'true':>8} {'ours':>9} {'FastChat':>9} {'gap':>7}   {'ours med':>9} {'FC med':>9} {'gap':>6}")
    for model in sorted(names, key=lambda name: -ours[name]):
        print(
            f"{model:<10} {true_ratings[model]:8.1f} {ours[model]:9.2f} {fastchat_point[model]:9.2f} "
            f"{ours[model] - fastchat_point[model]:7.3f}   {ours_boot[model]['median']:9.2f} "
            f"{fastchat_median[model]:9.2f} {ours_boot[model]['median'] - fastchat_median[model]:6.2f}"
        )

    point_gap = max(abs(ours[m] - fastchat_point[m]) for m in names)
    exact_gap = max(abs(ours_as_0_2_36[m] - fastchat_point[m]) for m in names)
    median_gap = max(abs(ours_boot[m]["median"] - fastchat_median[m]) for m in names)
    width_ours = np.mean([ours_boot[m]["upper"] - ours_boot[m]["lower"] for m in names])
    width_fastchat = float((fastchat_boot.quantile(0.975) - fastchat_boot.quantile(0.025)).mean())
    ratio = fastchat_seconds / ours_seconds
    print()
    print(f"max |ours - FastChat| point rating:           {point_gap:.4f}  (target < 1)")
    print(f"  same, ours with l2=FASTCHAT_0_2_36_L2:      {exact_gap:.4f}")
    print(f"max |ours - FastChat| bootstrap median:       {median_gap:.4f}  (independent resamples)")
    print(f"mean 95% interval width, ours / FastChat:     {width_ours:.2f} / {width_fastchat:.2f}")
    print(f"max |ours - true| point rating:               {max(abs(ours[m] - true_ratings[m]) for m in names):.2f}")
    print(f"wall time, point + {args.rounds} rounds, ours:         {ours_seconds:.3f} s")
    print(f"wall time, point + {args.rounds} rounds, FastChat:     {fastchat_seconds:.3f} s")
    print(f"speed ratio FastChat / ours:                  {ratio:.1f}x  (target >= 5)")
    if sklearn_warnings:
        print(f"warnings raised inside FastChat's fit: {', '.join(sklearn_warnings)}")

    failures = [text for ok, text in ((point_gap < 1.0, "point gap >= 1"), (ratio >= 5.0, "speed ratio < 5")) if not ok]
    if failures:
        print(f"TARGETS MISSED: {'; '.join(failures)}")
        return 1
    print("targets met")
    return 0


if __name__ == "__main__":
    sys.exit(main())
