"""`arena fields`: every recipe field with its type, default and description, read from the recipe schema
(config.py) itself, so the help cannot drift from what a recipe accepts. `train.extra` and `ppo.extra` are
open dicts; for them it lists what the stage kind's trainer takes: the fields its installed TRL config adds
to transformers' TrainingArguments (with TRL's own help text), or PPOSettings' fields."""

from __future__ import annotations

import dataclasses
import textwrap
import typing

from pydantic import BaseModel

from .config import Recipe
from .stage_kinds import KINDS

WIDTH = 110


def _model_of(annotation) -> type[BaseModel] | None:
    """The pydantic model inside an annotation (`Train`, `Train | None`, `list[Stage]`), if any."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for argument in typing.get_args(annotation):
        found = _model_of(argument)
        if found is not None:
            return found
    return None


def full_path(path: str) -> str:
    """"train" is short for "stages.train": only a stage has one (likewise data, ppo, merge, ...)."""
    names = [p for p in path.split(".") if p]
    if names and names[0] not in Recipe.model_fields and names[0] in section("stages").model_fields:
        names = ["stages", *names]
    return ".".join(names)


def section(path: str) -> type[BaseModel]:
    """The schema class at a dotted path of field names: "" is the recipe, "stages.train" a stage's
    training settings (list items are entered silently)."""
    names = [p for p in full_path(path).split(".") if p] if path else []
    model: type[BaseModel] = Recipe
    walked = []
    for name in names:
        field = model.model_fields.get(name)
        inner = _model_of(field.annotation) if field is not None else None
        if inner is None:
            where = ".".join(walked) or "the recipe"
            sections = sorted(n for n, f in model.model_fields.items() if _model_of(f.annotation) is not None)
            raise ValueError(f"{path}: {name!r} is not a section of {where}; its sections: {', '.join(sections)}")
        model, walked = inner, walked + [name]
    return model


def _type_name(annotation) -> str:
    import re

    text = getattr(annotation, "__name__", None) if isinstance(annotation, type) else None
    text = text or str(annotation).replace("typing.", "").replace("NoneType", "None")
    return re.sub(r"\b(?:[a-z_]+\.)+([A-Z]\w*)", r"\1", text)  # offline_arena.config.Stage -> Stage


def _default(field) -> str:
    if field.is_required():
        return "required"
    value = field.get_default(call_default_factory=True)
    if isinstance(value, BaseModel):
        return "{...}"
    return repr(value)


def _rows(rows: list[tuple[str, str, str, str]]) -> str:
    """name  type  default, then the description indented below."""
    lines = []
    for name, kind, default, description in rows:
        lines.append(f"  {name:<24} {kind:<32} default {default}")
        if description:
            lines.extend(textwrap.wrap(description, WIDTH, initial_indent=" " * 6, subsequent_indent=" " * 6))
    return "\n".join(lines)


def describe_section(path: str = "") -> str:
    path = full_path(path)
    model = section(path)
    rows = [(name, _type_name(f.annotation), _default(f), f.description or "")
            for name, f in model.model_fields.items()]
    subsections = [n for n, f in model.model_fields.items() if _model_of(f.annotation) is not None]
    head = f"{path or 'recipe'} ({model.__name__})"
    more = ("\nsections: " + ", ".join(f"{path + '.' if path else ''}{n}" for n in subsections)
            + "  (arena fields SECTION)") if subsections else ""
    return f"{head}\n{_rows(rows)}{more}"


def describe_extras(kind: str, which: str = "train") -> str:
    """What `train.extra` (the stage kind's TRL config) or `ppo.extra` (PPOSettings) accepts."""
    if kind not in KINDS:
        raise ValueError(f"unknown stage kind {kind!r}; kinds: {', '.join(KINDS)}")
    if which == "ppo":
        from .train.ppo import PPOSettings

        recipe_set = set(section("stages.ppo").model_fields) | set(section("stages.train").model_fields)
        rows = [(f.name, _type_name(f.type), repr(f.default), "") for f in dataclasses.fields(PPOSettings)
                if f.name not in recipe_set]
        return (f"ppo.extra (PPOSettings, train/ppo.py: each field's comment there says what it does); "
                f"the fields the recipe does not set itself:\n{_rows(rows)}")
    config_name = KINDS[kind].trl_config
    if config_name is None:
        return f"train.extra: stage kind {kind!r} trains with no TRL config; it takes no extras"
    import trl
    from transformers import TrainingArguments

    config = getattr(trl, config_name)
    base = {f.name for f in dataclasses.fields(TrainingArguments)}
    rows = [(f.name, _type_name(f.type), repr(f.default) if f.default is not dataclasses.MISSING else "(factory)",
             " ".join(str(f.metadata.get("help", "")).split()))
            for f in dataclasses.fields(config) if f.name not in base]
    return (f"train.extra for {kind} (trl.{config_name} {trl.__version__}: its own fields; any field of "
            f"transformers' TrainingArguments is accepted too):\n{_rows(rows)}")
