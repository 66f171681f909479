"""Which texts a recipe's `privacy.deidentify` redacts, decided from model specs alone (no import of the
de-identifier, so runs that redact nothing never need the `[privacy]` extra):

- `off`: nothing.
- `external` (the default): whatever goes to an endpoint that is not this machine — `openai:` opponents
  and LLM judges on a host that is not loopback — is redacted before it is sent; local models (the
  target, builtin/folder opponents, a localhost server) see the prompts as they are, and the target
  trains on them.
- `all`: the prompts themselves are redacted as they are dealt, so every model, every judge, the stored
  battles and the training data only ever see redacted text.

What the target trained on is recorded in the run's manifest; a verdict made on redacted text carries
`"redacted": true` and its judge's fingerprint ends in `+deid`.
"""

from __future__ import annotations

from ..models.spec import ModelSpec, parse_model_spec

MODES = ("off", "external", "all")


def leaves_the_machine(spec: ModelSpec | str) -> bool:
    """An endpoint on another host (`ModelSpec.leaves_the_machine`)."""
    return (parse_model_spec(spec) if isinstance(spec, str) else spec).leaves_the_machine


def redacts_endpoint(mode: str, spec: ModelSpec | str) -> bool:
    return mode != "off" and leaves_the_machine(spec)


def redacts_judge(mode: str, judge: str) -> bool:
    """Whether an LLM judge's battles are redacted before they are sent (its endpoint is elsewhere)."""
    from ..judges.spec import parse_judge_spec

    return mode != "off" and parse_judge_spec(judge).leaves_the_machine


def needs_deidentifier(recipe) -> bool:
    mode = recipe.privacy.deidentify
    return mode == "all" or any(redacts_endpoint(mode, o.model) for o in recipe.opponents) or \
        redacts_judge(mode, recipe.judge)


def manifest_entry(recipe) -> dict:
    mode = recipe.privacy.deidentify
    return {"deidentify": mode,
            "target_trains_on": "redacted prompts" if mode == "all" else "the prompts as given",
            "redacted_endpoints": [o.name for o in recipe.opponents if redacts_endpoint(mode, o.model)]
            + (["judge"] if redacts_judge(mode, recipe.judge) else [])}
