"""Read prompts from files. Each row has a `messages` list (role/content dicts) or a `prompt` string,
and optionally an `id`; everything else is kept as metadata. A bad row raises PromptFileError naming the
file, the line and the problem — never a bare KeyError from deep inside a run."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

from ..models.base import canonical_json, validate_messages


class PromptFileError(ValueError):
    pass


@dataclass(frozen=True)
class Prompt:
    id: str
    messages: tuple
    meta: dict = field(default_factory=dict, hash=False, compare=False)


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
        prompt_id = hashlib.sha256(canonical_json(messages).encode()).hexdigest()[:12]
    meta = {k: v for k, v in row.items() if k not in ("id", "messages", "prompt")}
    return Prompt(str(prompt_id), tuple(dict(m) for m in messages), meta)


def load_jsonl(path: str | Path) -> list[Prompt]:
    path = Path(path)
    if not path.is_file():
        raise PromptFileError(f"{path}: prompt file not found")
    prompts, seen = [], {}
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            where = f"{path}:{number}"
            try:
                row = json.loads(line)
            except json.JSONDecodeError as error:
                raise PromptFileError(f"{where}: not valid JSON ({error.msg} at column {error.colno})") from None
            prompt = prompt_from_row(row, where)
            if prompt.id in seen:
                raise PromptFileError(f"{where}: duplicate id {prompt.id!r} (first on line {seen[prompt.id]})")
            seen[prompt.id] = number
            prompts.append(prompt)
    if not prompts:
        raise PromptFileError(f"{path}: no prompts in file")
    return prompts


def load_prompts(source: str | Path) -> list[Prompt]:
    """Load prompts from a source:

    - a `.jsonl` file;
    - `builtin:verifiable:SPLIT:N[:SEED]` — N prompts of the built-in verifiable instruction pack, split
      `heldout` or `round<r>/<stage>` (e.g. `builtin:verifiable:heldout:32`);
    - `builtin:sample` — 32 everyday and clinical-document questions.
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
    raise PromptFileError(f"{source}: unsupported prompt source (expected a .jsonl file or builtin:NAME)")
