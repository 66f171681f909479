"""The stop-token guard (docs/architecture.md, "The stop-token lesson").

Fine-tuning regresses in ways loss curves never show: with pad == eos a collator masks the end-of-turn
token out of the labels, or a template change stops training it, and the model "never stops". So every
training stage (1) before training renders an example through the *same collator the trainer uses* and
fails unless the end-of-turn token is among the trained label positions, and (2) after training measures
the runaway rate — probe generations that hit the token limit without stopping — against the model it
started from, failing the stage when it regressed beyond a tolerance.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence


class StopTokenGuardError(RuntimeError):
    pass


@dataclass
class GuardReport:
    end_of_turn_in_labels: bool
    runaway_before: float | None = None
    runaway_after: float | None = None
    tolerance: float = 0.1
    examples_checked: int = 1  # rendered examples whose final end-of-turn token was found trained

    def as_dict(self) -> dict:
        return {"end_of_turn_in_labels": self.end_of_turn_in_labels, "runaway_before": self.runaway_before,
                "runaway_after": self.runaway_after, "runaway_tolerance": self.tolerance,
                "examples_checked": self.examples_checked}


def assert_end_of_turn_trained(token_ids: Sequence[int], trained: Sequence[bool], tokenizer, where: str,
                               attended: Sequence[bool] | None = None) -> None:
    """`token_ids` is one rendered example as the trainer's collator produced it, `trained` says which
    positions contribute to the loss (labels != -100, or a completion mask) and `attended` which are real
    tokens rather than padding (default: all). Raise unless the example's *final* end-of-turn token — the
    one that ends the answer — is at a trained position. Any trained end-of-turn is not enough: a
    multi-turn prompt's own turns end with the same token, and with pad == eos so does the padding."""
    from ..models.chat import end_of_turn_token_id

    eot = end_of_turn_token_id(tokenizer)
    ids = [int(t) for t in token_ids]
    attended = [True] * len(ids) if attended is None else [bool(a) for a in attended]
    if not len(ids) == len(trained) == len(attended):
        raise ValueError(f"{where}: {len(ids)} token ids, {len(trained)} mask entries, {len(attended)} attended")
    final = max((i for i, t in enumerate(ids) if t == eot and attended[i]), default=None)
    if final is not None and bool(trained[final]):
        return
    name = tokenizer.convert_ids_to_tokens(eot)
    # Look only inside the trained span: the prompt's own turns end with the same token (and with pad == eos
    # so does the padding), which says nothing about whether the answer's end is trained.
    positions = [i for i, m in enumerate(trained) if m]
    masked = bool(positions) and eot in ids[positions[0]:positions[-1] + 2]
    raise StopTokenGuardError(
        f"{where}: the end-of-turn token {name!r} (id {eot}) that ends the answer is "
        + ("in the example but masked out of the labels" if masked
           else "missing from the rendered example's trained span")
        + ". A model trained like this never learns to stop. Common causes: pad token == end-of-turn token "
          "and a collator that masks padding by id; a chat template that leaves the end-of-turn token outside "
          "the assistant span; truncation cutting it off (raise max_length).")


def assert_examples_end_trained(examples, tokenizer, where: str) -> int:
    """`assert_end_of_turn_trained` on every example of the first batches: (ids, trained) or (ids, trained,
    attended) tuples, or one such tuple. Returns how many examples were checked."""
    examples = [examples] if isinstance(examples, tuple) else list(examples)
    for index, (ids, trained, *rest) in enumerate(examples):
        assert_end_of_turn_trained(ids, trained, tokenizer, f"{where}, example {index}", rest[0] if rest else None)
    return len(examples)


def first_batches(trainer, count: int = 2):
    """The first `count` batches of the trainer's own dataloader (fewer if the data is shorter)."""
    batches = []
    for batch in trainer.get_train_dataloader():
        batches.append(batch)
        if len(batches) == count:
            break
    return batches


def runaway_rate(model, tokenizer, probe_messages: Sequence[Sequence[dict]], max_new_tokens: int | Sequence[int] = 64,
                 batch_size: int = 16) -> float:
    """Share of greedy probe generations that hit their token limit without emitting a stop token. The limit
    is one for all probes, or each probe's own (its prompt's length budget, `prompts/budget.py`: a probe
    that asks for 300 words is no runaway at 64 tokens); a longer list than the probes is cut to them."""
    from ..models.base import GenerationRequest, SamplingParams
    from ..models.hf import TransformersGenerator

    was_training, padding_side = model.training, tokenizer.padding_side
    model.eval()
    generator = TransformersGenerator.from_model(model, tokenizer, fingerprint="guard-probe", batch_size=batch_size)
    generator.progress = False
    limits = ([max_new_tokens] * len(probe_messages) if isinstance(max_new_tokens, int)
              else list(max_new_tokens)[:len(probe_messages)])
    if len(limits) != len(probe_messages):
        raise ValueError(f"{len(limits)} probe token limits for {len(probe_messages)} probes")
    completions = generator.generate([GenerationRequest.of(m, params=SamplingParams(max_new_tokens=n, temperature=0.0))
                                      for m, n in zip(probe_messages, limits)])
    # The generator pads on the left; the trainer shares this tokenizer and saves it with the checkpoint.
    tokenizer.padding_side = padding_side
    if was_training:
        model.train()
    return sum(not c.stopped for c in completions) / max(len(completions), 1)


def check_runaway(report: GuardReport, where: str) -> None:
    if report.runaway_before is None or report.runaway_after is None:
        return
    if report.runaway_after > report.runaway_before + report.tolerance:
        raise StopTokenGuardError(
            f"{where}: runaway rate regressed from {report.runaway_before:.2f} to {report.runaway_after:.2f} "
            f"(tolerance {report.tolerance:.2f}): the trained model stops generating less often than the one it "
            "started from. Check that the end-of-turn token is trained and the data's answers end properly.")


def on_policy_guard_example(trainer, where: str) -> tuple[list[int], list[bool]]:
    """The guard's "example" for trainers that sample their own answers (GRPO, on-policy distillation).
    They have no collator labels: in TRL 1.16 an answer's loss mask (`completion_mask` in
    `_generate_single_turn`) covers the tokens up to and including the first one in `trainer.eos_token_ids`
    — the stop ids handed to `generate` (`generation_config.eos_token_id`). So the end-of-turn token is
    trained exactly when it is one of them; otherwise answers run on past it, are cut at
    `max_completion_length`, and the model never learns to stop. We return those stop ids as the
    example, all of them counting as trained."""
    from ..models.chat import end_of_turn_token_id

    stop_ids = [int(i) for i in trainer.eos_token_ids]
    eot = end_of_turn_token_id(trainer.processing_class)
    generation_config = getattr(trainer, "generation_config", None)  # absent when vLLM generates
    generation_eos = generation_config.eos_token_id if generation_config is not None else stop_ids
    generation_eos = generation_eos if isinstance(generation_eos, (list, tuple)) else [generation_eos]
    if eot not in stop_ids or eot not in generation_eos:
        name = trainer.processing_class.convert_ids_to_tokens(eot)
        raise StopTokenGuardError(
            f"{where}: the end-of-turn token {name!r} (id {eot}) is not among the generation stop ids "
            f"{stop_ids}, so sampled answers never end on it and it is never trained. Add it to the model's "
            "generation_config.eos_token_id.")
    return stop_ids, [True] * len(stop_ids)
