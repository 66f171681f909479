"""Read prompts from files. Each row has a `messages` list (role/content dicts) or a `prompt` string,
and optionally an `id`; everything else is kept as metadata. A bad row raises PromptFileError naming the
file, the line and the problem — never a bare KeyError from deep inside a run."""

from __future__ import annotations

import json
from pathlib import Path

from ..models.base import content_key, validate_messages
from ..records import Prompt  # noqa: F401  (prompts.sources.Prompt: where readers have long found it)


class PromptFileError(ValueError):
    pass


def prompt_from_row(row, where: str) -> Prompt:
    """Build a Prompt from one parsed row; `where` ("file.jsonl:12") prefixes every error."""
    if not isinstance(row, dict):
        raise PromptFileError(f"{where}: expected a JSON object, got {type(row).__name__}")
    if "messages" in row:
        messages = row["messages"]
        try:
            validate_messages(messages, "messages")
        except ValueError as error:
            raise PromptFileError(f"{where}: {error}") from None
    elif "prompt" in row:
        if not isinstance(row["prompt"], str) or not row["prompt"].strip():
            raise PromptFileError(f"{where}: 'prompt' must be a non-empty string")
        messages = [{"role": "user", "content": row["prompt"]}]
    else:
        raise PromptFileError(f"{where}: row has neither 'messages' nor 'prompt' (keys: {sorted(row)})")
    prompt_id = row.get("id")
    if prompt_id is None:  # stable across runs: derived from the content
        prompt_id = content_key(messages)[:12]
    meta = {k: v for k, v in row.items() if k not in ("id", "messages", "prompt")}
    return Prompt(str(prompt_id), tuple(dict(m) for m in messages), meta)


MAX_REPORTED_PROBLEMS = 20  # a file broken on every line is reported by its first problems and a count


def _raise_problems(problems: list[str]) -> None:
    """All of a file's bad rows in one error (a user fixes them in one pass, not one run per line)."""
    if problems:
        shown = problems[:MAX_REPORTED_PROBLEMS]
        more = len(problems) - len(shown)
        raise PromptFileError("\n".join(shown) + (f"\n... and {more} more problem(s)" if more else ""))


def load_jsonl(path: str | Path) -> list[Prompt]:
    return [prompt for _, prompt in _jsonl_rows(path)]


def read_prompt_rows(path: str | Path) -> list[dict]:
    """The rows of a JSONL prompt file as they are written, each checked as `load_jsonl` checks it (for
    tools that rewrite the file, e.g. `arena deidentify`)."""
    return [row for row, _ in _jsonl_rows(path)]


def _jsonl_rows(path: str | Path) -> list[tuple[dict, Prompt]]:
    """(row, prompt) of every line; every bad line reported at once."""
    path = Path(path)
    if not path.is_file():
        raise PromptFileError(f"{path}: prompt file not found")
    problems: list[str] = []

    def parsed_lines():
        with open(path, encoding="utf-8") as handle:
            for number, line in enumerate(handle, 1):
                if not line.strip():
                    continue
                try:
                    yield number, f"{path}:{number}", json.loads(line)
                except json.JSONDecodeError as error:
                    problems.append(f"{path}:{number}: not valid JSON ({error.msg} at column {error.colno})")

    return _checked_prompts(parsed_lines(), problems, "on line", f"{path}: no prompts in file")


def _from_rows(rows, where_prefix: str) -> list[Prompt]:
    """Prompts from an iterable of dict rows (Parquet, datasets); errors name `<source> row N`."""
    numbered = ((number, f"{where_prefix} row {number}", dict(row)) for number, row in enumerate(rows))
    return [prompt for _, prompt in _checked_prompts(numbered, [], "at row", f"{where_prefix}: no prompts")]


def _checked_prompts(numbered_rows, problems: list[str], first_seen: str,
                    when_empty: str) -> list[tuple[dict, Prompt]]:
    """(row, prompt) of each (number, where, row); a bad row or a repeated id is added to `problems`, and all
    of them are raised together at the end (with what the reader of `numbered_rows` found)."""
    prompts, seen = [], {}
    for number, where, row in numbered_rows:
        try:
            prompt = prompt_from_row(row, where)
        except PromptFileError as error:
            problems.append(str(error))
            continue
        if prompt.id in seen:
            problems.append(f"{where}: duplicate id {prompt.id!r} (first {first_seen} {seen[prompt.id]})")
            continue
        seen[prompt.id] = number
        prompts.append((row, prompt))
    _raise_problems(problems)
    if not prompts:
        raise PromptFileError(when_empty)
    return prompts


def load_parquet(path: str | Path) -> list[Prompt]:
    import pyarrow.parquet as pq  # comes with `datasets`

    path = Path(path)
    if not path.is_file():
        raise PromptFileError(f"{path}: prompt file not found")
    try:
        table = pq.read_table(path)
    except Exception as error:  # pyarrow raises several types for a corrupt file
        raise PromptFileError(f"{path}: not a readable Parquet file ({error})") from None
    return _from_rows(table.to_pylist(), str(path))


def load_dataset_folder(path: str | Path, split: str | None = None) -> list[Prompt]:
    """A Hugging Face `datasets` folder written by `save_to_disk` (a Dataset, or a DatasetDict with
    `split`). Local only: nothing is fetched."""
    from datasets import DatasetDict, load_from_disk

    path = Path(path)
    dataset = load_from_disk(str(path))
    if isinstance(dataset, DatasetDict):
        if split is None:
            if len(dataset) != 1:
                raise PromptFileError(f"{path}: has splits {sorted(dataset)}; name one as {path}::SPLIT")
            split = next(iter(dataset))
        if split not in dataset:
            raise PromptFileError(f"{path}: no split {split!r}; has {sorted(dataset)}")
        dataset = dataset[split]
    return _from_rows(dataset, f"{path}" + (f"::{split}" if split else ""))


def load_prompts(source: str | Path) -> list[Prompt]:
    """Load prompts from a source:

    - a `.jsonl` file;
    - `builtin:verifiable:SPLIT:N[:SEED]` — N prompts of the built-in verifiable instruction pack, split
      `heldout` or `round<r>/<stage>` (e.g. `builtin:verifiable:heldout:32`);
    - `builtin:sample` — 32 everyday and clinical-document questions;
    - a `.parquet` file;
    - a `datasets` folder saved with `save_to_disk` (`FOLDER` or `FOLDER::SPLIT`).
    """
    source = str(source)
    if source.startswith("builtin:verifiable"):
        from .verifiable import load_verifiable

        parts = source.split(":")[2:]
        if len(parts) not in (2, 3) or not all(p.isdigit() for p in parts[1:]):
            raise PromptFileError(f"{source}: expected builtin:verifiable:SPLIT:N[:SEED], e.g. builtin:verifiable:heldout:32")
        try:
            return load_verifiable(parts[0], int(parts[1]), int(parts[2]) if len(parts) == 3 else 0)
        except ValueError as error:
            raise PromptFileError(f"{source}: {error}") from None
    if source.startswith("builtin:"):
        name = source.removeprefix("builtin:")
        path = Path(__file__).resolve().parent.parent / "data" / "prompts" / f"{name}.jsonl"
        if name == "base_tasks" or not path.is_file():  # base tasks are the pack's raw material, not prompts
            raise PromptFileError(f"{source}: no built-in prompt set of that name")
        return load_jsonl(path)
    if source.endswith(".jsonl"):
        return load_jsonl(source)
    if source.endswith(".parquet"):
        return load_parquet(source)
    folder, _, split = source.partition("::")
    if Path(folder).is_dir() and ((Path(folder) / "dataset_info.json").is_file()
                                  or (Path(folder) / "dataset_dict.json").is_file()):
        return load_dataset_folder(folder, split or None)
    raise PromptFileError(f"{source}: unsupported prompt source (expected .jsonl, .parquet, a datasets folder "
                          "saved with save_to_disk, or builtin:NAME)")
