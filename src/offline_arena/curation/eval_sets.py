"""The evaluation sets training prompts are decontaminated against, by name, each read from the package
that ships it (nothing copied into this repository): the items' user turns as text."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Callable


@dataclass(frozen=True)
class EvalItem:
    suite: str
    id: str
    text: str


def _ifeval() -> list[EvalItem]:
    from ..evals.ifeval import load_ifeval_prompts

    return [EvalItem("ifeval", str(r["key"]), r["prompt"]) for r in load_ifeval_prompts()]


def _ifbench() -> list[EvalItem]:
    from ..evals.ifbench import load_ifbench_prompts

    return [EvalItem("ifbench", str(r["key"]), r["prompt"]) for r in load_ifbench_prompts()]


def _mtbench() -> list[EvalItem]:
    from ..evals.mtbench import load_questions

    return [EvalItem("mtbench", str(q["question_id"]), "\n".join(q["turns"])) for q in load_questions()]


def _arena_hard() -> list[EvalItem]:
    from ..evals.arena_hard import load_questions

    return [EvalItem("arena-hard", q["uid"], q["prompt"]) for q in load_questions()]


def _alpaca_eval() -> list[EvalItem]:
    from ..evals.framework_data import task_dir

    path = task_dir("alpaca_eval", "decontamination against AlpacaEval") / "data" / "alpaca_eval_gpt4_baseline.json"
    rows = json.loads(path.read_text(encoding="utf-8"))
    return [EvalItem("alpaca-eval", str(i), r["instruction"]) for i, r in enumerate(rows)]


def _healthbench() -> list[EvalItem]:
    from ..evals.framework_data import task_dir

    path = task_dir("healthbench", "decontamination against HealthBench") / "data" / "healthbench_eval.jsonl"
    items = []
    for line in path.read_text(encoding="utf-8").split("\n"):
        if line.strip():
            row = json.loads(line)
            text = "\n".join(m["content"] for m in row["prompt"] if m.get("role") == "user")
            items.append(EvalItem("healthbench", row["prompt_id"], text))
    return items


EVAL_SETS: dict[str, Callable[[], list[EvalItem]]] = {
    "ifeval": _ifeval, "ifbench": _ifbench, "mtbench": _mtbench, "arena-hard": _arena_hard,
    "alpaca-eval": _alpaca_eval, "healthbench": _healthbench,
}


def load_eval_set(name: str) -> list[EvalItem]:
    """A built-in evaluation set by name, or any prompt source (`load_prompts`: .jsonl, .parquet, ...)."""
    if name in EVAL_SETS:
        return EVAL_SETS[name]()
    from ..prompts import PromptFileError, load_prompts
    from .text import prompt_text

    try:
        prompts = load_prompts(name)
    except (PromptFileError, OSError) as error:
        raise ValueError(f"{name!r} is neither a known evaluation set ({', '.join(EVAL_SETS)}) nor a prompt "
                         f"file: {error}") from None
    return [EvalItem(name, p.id, prompt_text(p)) for p in prompts]


def installed_eval_sets() -> tuple[dict[str, list[EvalItem]], dict[str, str]]:
    """Every built-in set whose package is installed: ({name: items}, {name: why it is missing})."""
    found, missing = {}, {}
    for name, load in EVAL_SETS.items():
        try:
            found[name] = load()
        except (RuntimeError, FileNotFoundError, ImportError) as error:
            missing[name] = str(error)
    return found, missing
