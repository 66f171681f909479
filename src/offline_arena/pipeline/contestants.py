"""Who a stage's battles are between: the base's name, and the opponents of the recipe with `target` in a
spec standing for the model being trained now (`target@revise`). Read by the loop and by each stage."""

from __future__ import annotations

BASE_NAME = "base"
FOLLOWS_TARGET = "target"


def load_opponent(opponent, current_model: str, store, recipe):
    """The generator of one recipe opponent, with `target` in its spec standing for `current_model`."""
    from ..judges import load_scorer
    from ..loading import load_generator

    model = opponent_model(opponent.model, current_model)
    return load_generator(model, store=store, batch_size=recipe.generation.batch_size, api_key_env=opponent.api_key_env,
                          scorer=load_scorer(opponent.scorer) if "@best-of-" in model else None,
                          scorer_name=opponent.scorer, deidentify=recipe.privacy.deidentify)


def opponent_model(spec: str, current_model: str) -> str:
    """An opponent's model spec, with the word `target` (the whole spec, or before its @wrappers) standing for
    the model being trained now: `target@revise` in round 2's DPO stage is that stage's starting checkpoint
    with its answers repaired, so later stages and rounds learn from repairs of the current model's own
    answers, not the base's. E.g. opponent_model("target@revise", "runs/q/round1/sft/checkpoint") ->
    "runs/q/round1/sft/checkpoint@revise"; other specs are returned as they are."""
    if spec == FOLLOWS_TARGET or spec.startswith(FOLLOWS_TARGET + "@"):
        return current_model + spec[len(FOLLOWS_TARGET):]
    return spec

