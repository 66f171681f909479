"""Evaluation suites by name, and the one entry point the CLI and the pipeline call:

    run_suite("ifbench", "runs/quickstart/round1/sft/model", limit=50, run_dir="runs/eval") -> dict
    run_suites(["verifiable", "ifbench"], checkpoint, store=store) -> {name: dict}

Every suite function takes the model spec and keyword options (`limit`, `max_new_tokens`, `batch_size`,
`seed`, `store`, and its own: `judge`, `opponents`, ...) and returns a JSON-able dict with at least
`suite` and `model`. Each suite module imports its heavy dependencies only when it runs.
"""

from __future__ import annotations

import inspect
import tempfile
from pathlib import Path
from typing import Callable, Sequence

from . import alpaca_eval, arena_elo, arena_hard, healthbench, heldout, ifbench, ifeval, mtbench

SUITES: dict[str, Callable[..., dict]] = {
    "verifiable": heldout.run,
    "ifbench": ifbench.run,
    "ifeval": ifeval.run,
    "mtbench": mtbench.run,
    "arena": arena_elo.run,
    "arena-hard": arena_hard.run,
    "alpaca-eval": alpaca_eval.run,
    "healthbench": healthbench.run,
}
FORMATTERS: dict[str, Callable[[dict], str]] = {
    "verifiable": heldout.format_result,
    "ifbench": ifbench.format_result,
    "ifeval": ifeval.format_result,
    "mtbench": mtbench.format_result,
    "arena": arena_elo.format_result,
    "arena-hard": arena_hard.format_result,
    "alpaca-eval": alpaca_eval.format_result,
    "healthbench": healthbench.format_result,
}


# Suites whose answers are the evaluated model's plain generations, with the requests they will make:
# a caller that generates other prompts with the same model can ask for these in the same call
# (`suite_requests`), and the suite finds its answers in the store.
REQUESTS: dict[str, Callable[..., list]] = {"ifeval": ifeval.requests}


def suite_requests(name: str, options: dict | None = None, seed: int = 0) -> list:
    """The generation requests suite `name` will make with `options` (the suite's own, as `run_suite` takes
    them) and `seed`; [] for a suite that is not a plain generation of the model (judged pairs, battles)."""
    function = REQUESTS.get(name)
    if function is None:
        return []
    accepted = inspect.signature(function).parameters
    return function(**{k: v for k, v in {**(options or {}), "seed": seed}.items() if k in accepted})


def suite_function(name: str) -> Callable[..., dict]:
    if name not in SUITES:
        raise ValueError(f"unknown evaluation suite {name!r}; known: {', '.join(SUITES)}")
    return SUITES[name]


def run_suite(name: str, model: str, *, run_dir: str | Path | None = None, store=None, **options) -> dict:
    """Run one suite on a model spec. Generations (and judgments) go through `store`, or through
    `run_dir`/store.sqlite, so a rerun costs nothing; with neither, a temporary store is used and dropped.
    Options the suite does not take are an error, not silently ignored."""
    function = suite_function(name)
    accepted = inspect.signature(function).parameters
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        raise ValueError(f"suite {name!r} takes no option {', '.join(unknown)}; "
                         f"its options: {', '.join(p for p in accepted if p not in ('model', 'store'))}")
    if store is not None:
        return function(model, store=store, **options)
    from ..store import Store

    with tempfile.TemporaryDirectory(prefix="arena-eval-") as scratch:
        with Store(Path(run_dir or scratch) / "store.sqlite") as opened:
            return function(model, store=opened, **options)


def run_suites(names: Sequence[str], model: str, *, options: dict[str, dict] | None = None, **common) -> dict[str, dict]:
    """Several suites on one model: {name: result}. `options` holds per-suite options (e.g.
    {"mtbench": {"judge": ...}}) on top of the `common` ones (store/run_dir, limit, ...)."""
    for name in names:
        suite_function(name)  # every name checked before the first suite spends time
    return {name: run_suite(name, model, **{**common, **(options or {}).get(name, {})}) for name in names}


def format_result(result: dict) -> str:
    return FORMATTERS[result["suite"]](result)
