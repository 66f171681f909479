"""What a run needs, checked before any model loads or any endpoint is asked: `arena run` (and its
`--dry-run`) call `preflight(recipe)` first, so a bad prompt file, a shard the source cannot fill, a
verifier over prompts without constraints or a key that may not travel fails in a second, with every
problem listed, instead of after the model loaded or hours into a run.

Checked: every prompt split the run will deal (parsed and counted; a file's bad rows all reported as
`file:line: problem`); that each scorer fits its prompts (the verifier judge, a best-of-n verifier scorer,
PPO against the verifier, GRPO and the held-out evaluation need checkable constraints); that endpoints
have a URL, a key where one is named and a transport the key may use; that local model folders exist.
Nothing here imports torch or transformers.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

from .config import Recipe
from .judges.spec import parse_judge_spec
from .models.spec import ModelSpec, parse_model_spec
from .stage_kinds import KINDS


class PreflightError(ValueError):
    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("the run cannot start:\n" + "\n".join(f"- {p}" for p in problems))


@dataclass
class Preflight:
    splits: dict[str, int] = field(default_factory=dict)   # split name -> prompts it holds
    problems: list[str] = field(default_factory=list)
    # What decontamination checked and removed: {"against": [...], "rules": [...], "checked": n,
    # "removed": {split: {evaluation set: count}}, "examples": [...]} (curation/recipe_checks.py); None: off
    decontamination: dict | None = None


def preflight(recipe: Recipe) -> Preflight:
    """Every check; raises PreflightError listing all problems, else returns the splits' sizes."""
    result = Preflight()
    _check_prompts(recipe, result)
    _check_models(recipe, result)
    _check_privacy(recipe, result)
    _check_trainer_extras(recipe, result)
    if result.problems:
        raise PreflightError(result.problems)
    return result


def _splits(recipe: Recipe) -> list[tuple[str, str, object]]:
    """(split name, what it is for, loader) of every prompt split the run deals, in run order; a loader
    gives (prompts, what decontamination removed or None)."""
    from .shards import heldout_prompts, stage_shard

    splits = [("heldout", "evaluation", lambda: (heldout_prompts(recipe), None))]
    for r in range(1, recipe.rounds + 1):
        for stage in recipe.stages_in_round(r):
            if KINDS[stage.kind].prompt_slot is not None:
                splits.append((f"round{r}/{stage.kind}", stage.kind,
                               lambda r=r, kind=stage.kind: stage_shard(recipe, r, kind)))
    return splits


def _needs_constraints(recipe: Recipe, split: str, purpose: str) -> list[str]:
    """Why the prompts of `split` must carry checkable constraints (empty: they need not)."""
    stage = next((s for s in recipe.stages if s.kind == purpose), None)
    battles = split == "heldout" and recipe.evaluation.leaderboard or stage is not None and KINDS[stage.kind].battles
    reasons = []
    if battles and parse_judge_spec(recipe.judge).needs_constraints:
        reasons.append(f"the judge {recipe.judge!r}")
    if battles:
        specs = [(o, parse_model_spec(o.model)) for o in recipe.opponents]
        reasons += [f"opponent {o.name!r}'s best-of-n scorer {o.scorer!r}" for o, spec in specs
                    if spec.best_of and o.scorer.startswith("verifier")]
        reasons += [f"opponent {o.name!r} (@revise repairs answers against them)" for o, spec in specs if spec.revise]
    if split == "heldout" and recipe.evaluation.heldout:
        reasons.append("evaluation.heldout (held-out accuracy is the share of constraints met; set it to false)")
    if stage is not None and stage.kind == "rm_ppo" and "verifier" in stage.ppo.reward:
        reasons.append(f"ppo.reward {stage.ppo.reward!r}")
    if stage is not None and stage.kind == "grpo":
        reasons.append("GRPO's reward (the constraints met)")
    return reasons


def _check_prompts(recipe: Recipe, result: Preflight) -> None:
    from .prompts import PromptFileError, load_prompts

    source = recipe.prompts.source
    if source != "builtin:verifiable":
        try:
            load_prompts(source)  # every bad row of the file at once; the splits below then only count
        except (PromptFileError, OSError) as error:
            result.problems.append(f"prompts.source: {error}")
            return
    dealt: dict[str, list] = {}
    for split, purpose, load in _splits(recipe):
        try:
            prompts, removed = load()
        except ValueError as error:
            result.problems.append(f"prompts ({split}): {error}")
            continue
        result.splits[split] = len(prompts)
        dealt[split] = prompts
        _count_decontamination(recipe, result, split, prompts, removed)
        missing = [p.id for p in prompts if not p.meta.get("constraints")]
        reasons = _needs_constraints(recipe, split, purpose)
        if missing and reasons:
            result.problems.append(
                f"prompts ({split}): {len(missing)} of {len(prompts)} prompts carry no checkable constraints "
                f"(e.g. {missing[0]!r}), which {', '.join(reasons)} need(s); give them `constraints` "
                "or use another judge/scorer")
    _check_heldout_overlap(recipe, result, dealt)


def _count_decontamination(recipe: Recipe, result: Preflight, split: str, kept: list, removed) -> None:
    if removed is None:
        return
    from .curation.recipe_checks import eval_set_names

    summary = result.decontamination = result.decontamination or {
        "against": eval_set_names(recipe), "rules": list(recipe.prompts.decontaminate_rules), "checked": 0,
        "removed": {}, "examples": []}
    summary["checked"] += removed.total
    summary["removed"][split] = removed.counts()
    for match in removed.removed[:3 - len(summary["examples"])]:
        summary["examples"].append(f"{split}: a prompt holds {match.item.suite} item {match.item.id} ({match.rule}, "
                                   f"{match.share:.0%})")


def _check_heldout_overlap(recipe: Recipe, result: Preflight, dealt: dict[str, list]) -> None:
    """A training prompt that holds a held-out prompt would make the held-out numbers a memory test."""
    from .curation.recipe_checks import heldout_overlap

    training = [(split, p) for split, prompts in dealt.items() if split != "heldout" for p in prompts]
    matches = heldout_overlap(recipe, dealt.get("heldout", []), [p for _, p in training])
    if matches:
        first = matches[0]
        split, prompt = training[first.prompt]
        result.problems.append(
            f"prompts: {len(matches)} training prompt(s) hold a held-out prompt (e.g. {prompt.id!r} in {split} holds "
            f"held-out {first.item.id!r}: {first.rule}, {first.share:.0%}); the held-out numbers would measure "
            "memory. Remove the copies from the prompt file (`arena prompts dedup`), or set "
            "prompts.heldout_overlap: allow")


def _check_models(recipe: Recipe, result: Preflight) -> None:
    specs = [("target", recipe.target, None)]
    specs += [(f"opponent {o.name!r}", o.model, o.api_key_env) for o in recipe.opponents]
    for judge in parse_judge_spec(recipe.judge).judges:  # a panel's members, or the one judge
        if judge.model is not None:  # an LLM judge's model spec, or a reward model's folder
            specs.append(("judge", judge.model, recipe.judge_api_key_env if judge.asks_a_model else None))
    specs += [(f"stage {s.kind} teacher", s.teacher, None) for s in recipe.stages if s.teacher]
    endpoints: list[tuple[str, ModelSpec]] = []
    for what, raw, key_env in specs:
        try:
            spec = parse_model_spec(raw)
        except ValueError as error:
            result.problems.append(f"{what}: {error}")
            continue
        if spec.kind == "openai":
            result.problems += [f"{what}: {p}" for p in endpoint_problems(spec.urls, key_env)]
            endpoints.append((what, spec))
        elif spec.kind in ("hf", "vllm") and _looks_like_a_path(spec.location) and not Path(spec.location).expanduser().exists():
            result.problems.append(f"{what}: no model folder {spec.location} (nothing is downloaded at run time)")
    result.problems += same_name_elsewhere(endpoints)


def same_name_elsewhere(endpoints: list[tuple[str, ModelSpec]]) -> list[str]:
    """Endpoints that serve one model name at URLs they do not share. Answers are cached under the served
    name, not the URLs (so replicas can come and go), so two such models would share cached answers."""
    problems, seen = [], {}
    for what, spec in endpoints:
        leaf = spec
        while leaf.wrapped:
            leaf = leaf.inner
        earlier = seen.setdefault(leaf.served_name, (what, set(leaf.urls)))
        if earlier[0] != what and not earlier[1] & set(leaf.urls):
            problems.append(f"{what}: serves {leaf.served_name!r} like {earlier[0]}, but at other URLs; answers "
                            "are cached by served name, so the two would share answers: serve them under "
                            "different names (vllm serve --served-model-name)")
    return problems


def _check_privacy(recipe: Recipe, result: Preflight) -> None:
    import importlib.util

    from .privacy.policy import needs_deidentifier

    if needs_deidentifier(recipe) and importlib.util.find_spec("presidio_analyzer") is None:
        result.problems.append(
            f"privacy.deidentify: {recipe.privacy.deidentify} redacts what this recipe sends to other hosts, which "
            "needs the [privacy] extra: pip install 'offline-arena[privacy]' (or set privacy.deidentify: off)")


def endpoint_problems(base_urls: str | Sequence[str], key_env: str | None) -> list[str]:
    """What would stop an OpenAI-compatible endpoint (one base URL, or each of its replicas') from being
    asked safely: no usable URL, a key variable named but unset (for a host that is not this machine), or a
    key that may not travel there."""
    urls = [base_urls] if isinstance(base_urls, str) else list(base_urls)
    return [problem for url in urls for problem in _one_endpoint_problems(url, key_env)]


def _one_endpoint_problems(base_url: str, key_env: str | None) -> list[str]:
    from urllib.parse import urlsplit

    from .models.openai import InsecureTransportError, api_key_for
    from .models.spec import is_loopback

    url = urlsplit(base_url)
    if url.scheme not in ("http", "https") or not url.hostname:
        return [f"{base_url!r} is not an http(s) URL with a host"]
    problems = []
    if key_env and not os.environ.get(key_env) and not is_loopback(url.hostname):
        problems.append(f"${key_env} is not set (the key for {base_url}; keys are read only from the environment)")
    try:
        api_key_for(base_url, key_env)
    except InsecureTransportError as error:
        problems.append(str(error))
    return problems


def _looks_like_a_path(location: str) -> bool:
    """A folder, not a Hub id: absolute, relative with ./ or ../, or under ~."""
    return location.startswith(("/", "./", "../", "~"))


def format_preflight(result: Preflight) -> str:
    lines = ["prompts: " + ", ".join(f"{split} {n}" for split, n in result.splits.items())]
    if result.decontamination:
        lines.append(format_decontamination(result.decontamination))
    return "\n".join(lines)


def format_decontamination(d: dict) -> str:
    by_set: dict[str, int] = {}
    for counts in d["removed"].values():
        for name, count in counts.items():
            by_set[name] = by_set.get(name, 0) + count
    line = (f"decontamination against {', '.join(d['against'])} ({', '.join(d['rules'])}): "
            f"{sum(by_set.values())} of {d['checked']} training prompts removed"
            + (" (" + ", ".join(f"{k} {v}" for k, v in sorted(by_set.items())) + ")" if by_set else ""))
    return "\n".join([line] + [f"  {example}" for example in d["examples"]])


def _check_trainer_extras(recipe: Recipe, result: Preflight) -> None:
    """`train.extra` goes to the stage's TRL config as is, and `ppo.extra` to PPOSettings: a misspelt key or a
    value of the wrong type would fail only when the stage trains, after its battles were spent. Checked here
    against the installed classes: each key must be one of their fields, and its value must fit the field's
    annotated type (pydantic's lax mode: 0.1 or "0.1" for a float, never "high")."""
    for recipe_stage in recipe.stages:  # round 1's settings and each later round's changed ones (from_round)
        for first in [1] + sorted(r for r in recipe_stage.from_round if r <= recipe.rounds):
            stage = recipe_stage.for_round(first)
            where = f"stage {stage.kind}" + (f" from round {first}" if first > 1 else "")
            config_name = KINDS[stage.kind].trl_config
            if stage.train.extra and config_name:
                import trl

                _check_extras(stage.train.extra, getattr(trl, config_name), f"TRL {trl.__version__}'s {config_name}",
                              f"{where}: train.extra", result)
            if stage.kind == "rm_ppo" and stage.ppo.extra:
                from .train.ppo import PPOSettings

                _check_extras(stage.ppo.extra, PPOSettings, "PPOSettings", f"{where}: ppo.extra", result)


def _check_extras(extra: dict, settings_class, what: str, where: str, result: Preflight) -> None:
    import dataclasses
    import difflib
    import typing

    from pydantic import TypeAdapter, ValidationError

    known = sorted(f.name for f in dataclasses.fields(settings_class))
    try:
        types = typing.get_type_hints(settings_class)
    except Exception:  # noqa: BLE001 - an annotation this Python cannot resolve: the names are still checked
        types = {}
    for key, value in sorted(extra.items()):
        if key not in known:
            close = difflib.get_close_matches(key, known, n=1)
            result.problems.append(f"{where}: {key!r} is not a field of {what}"
                                   + (f" (did you mean {close[0]!r}?)" if close else ""))
            continue
        if key not in types:
            continue
        try:
            TypeAdapter(types[key]).validate_python(value)
        except ValidationError as error:
            reason = error.errors()[0]["msg"]
            result.problems.append(f"{where}: {key}: {value!r} does not fit {what}'s field {key} "
                                   f"({_type_name(types[key])}): {reason}")
        except Exception:  # noqa: BLE001 - a type pydantic cannot build a validator for: left to the trainer
            continue


def _type_name(annotation) -> str:
    return annotation.__name__ if isinstance(annotation, type) else str(annotation).replace("typing.", "")