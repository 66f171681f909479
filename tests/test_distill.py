"""Logit distillation (TRL's on-policy `DistillationTrainer`) on pico models that share the real SmolLM2
tokenizer: a pico teacher with other random weights, two steps, the parameters moved, the checkpoint loads
and generates; a teacher with another vocabulary is refused before any training."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from test_trainers import PROBES, QUESTIONS, assert_generates, assert_trained, settings, user


@pytest.fixture(scope="module")
def pico_teacher_dir(smol_tokenizer_dir, tmp_path_factory):
    from conftest import build_pico_model

    return build_pico_model(smol_tokenizer_dir, tmp_path_factory.mktemp("pico_teacher"), seed=11)


def prompt_rows() -> list[dict]:
    return [{"prompt": user(q), "prompt_id": f"p{i}"} for i, q in enumerate(QUESTIONS)]


def test_distill_trains_and_checkpoint_generates(pico_model_dir, pico_teacher_dir, tmp_path):
    from offline_arena.train.distill import train_distill

    result = train_distill(pico_model_dir, pico_teacher_dir, prompt_rows(), tmp_path,
                           settings(extra={"max_completion_length": 6}), PROBES)
    model = assert_trained(result, pico_model_dir)
    assert result.guard.runaway_before is not None and result.guard.runaway_after is not None
    assert_generates(model, result.checkpoint)


def test_teacher_with_another_vocabulary_is_refused(pico_model_dir, smol_tokenizer_dir, tmp_path):
    from conftest import build_pico_model
    from transformers import AutoTokenizer

    from offline_arena.train.distill import TokenizerMismatchError, train_distill

    teacher = build_pico_model(smol_tokenizer_dir, tmp_path / "teacher", seed=3)
    tokenizer = AutoTokenizer.from_pretrained(str(teacher))
    tokenizer.add_tokens(["<|teacher-only|>"])
    tokenizer.save_pretrained(teacher)
    with pytest.raises(TokenizerMismatchError, match=r"does not share the student's tokenizer \(49152 tokens vs 49153"):
        train_distill(pico_model_dir, teacher, prompt_rows(), tmp_path / "out", settings())
    assert not (tmp_path / "out" / "checkpoint").exists()


def test_vocabulary_difference_names_the_token():
    from offline_arena.models.vocab import vocabulary_difference

    def tokenizer(vocab):
        return SimpleNamespace(get_vocab=lambda: dict(vocab))

    assert vocabulary_difference(tokenizer({"a": 0, "b": 1}), tokenizer({"b": 1, "a": 0})) is None
    assert vocabulary_difference(tokenizer({"a": 0, "b": 1}), tokenizer({"a": 1, "b": 0})) == \
        "token 'a' is id 0 in one and id 1 in the other"
    assert "absent from the other" in vocabulary_difference(tokenizer({"a": 0}), tokenizer({"c": 0}))


def test_distill_guard_requires_end_of_turn_among_stop_ids(pico_model_dir):
    from transformers import AutoTokenizer

    from offline_arena.train.distill import guard_example
    from offline_arena.train.guard import StopTokenGuardError

    tokenizer = AutoTokenizer.from_pretrained(str(pico_model_dir))
    bad = SimpleNamespace(eos_token_ids=[0], processing_class=tokenizer, generation_config=None)
    with pytest.raises(StopTokenGuardError, match=r"distill stage: the end-of-turn token '<\|im_end\|>'"):
        guard_example(bad)
