"""The TRL trainers on pico models with the real SmolLM2 tokenizer (pad == eos == <|im_end|>).

TRL's own pattern: train a couple of steps, then assert the parameters changed; plus the saved checkpoint
loads with plain `from_pretrained` and generates (or scores), and the stop-token guard catches the
collator and runaway regressions it exists for. The preference trainers must also learn the direction of
their data: DPO/KTO widen the implicit-reward margin of chosen over rejected, the reward model ranks
chosen first, and each does the opposite on swapped data (a moved weight passes either way)."""

from __future__ import annotations

import json
import math
import re

import pytest
import torch

from offline_arena.train.common import TrainSettings, run_guarded
from offline_arena.train.guard import GuardReport, StopTokenGuardError, check_runaway

QUESTIONS = ["Name a colour.", "Say yes.", "What is 2+2?", "Greet me."]
GOOD = ["Blue.", "Yes.", "4", "Hello!"]
BAD = ["I do not know, sorry.", "No.", "5", "Go away."]
PROBES = [[{"role": "user", "content": q}] for q in QUESTIONS[:2]]
WEIGHT = "model.layers.0.self_attn.q_proj.weight"


def user(text: str) -> list[dict]:
    return [{"role": "user", "content": text}]


def assistant(text: str) -> list[dict]:
    return [{"role": "assistant", "content": text}]


def sft_rows(answers=GOOD) -> list[dict]:
    return [{"messages": [*user(q), *assistant(a)], "prompt_id": f"p{i}"}
            for i, (q, a) in enumerate(zip(QUESTIONS, answers))]


def preference_rows() -> list[dict]:
    return [{"prompt": user(q), "chosen": assistant(g), "rejected": assistant(b), "chosen_model": "opponent"}
            for q, g, b in zip(QUESTIONS, GOOD, BAD)]


def kto_rows() -> list[dict]:
    # Interleaved so every batch of 2 has a desirable and an undesirable example.
    rows = []
    for q, g, b in zip(QUESTIONS, GOOD, BAD):
        rows += [{"prompt": user(q), "completion": assistant(g), "label": True},
                 {"prompt": user(q), "completion": assistant(b), "label": False}]
    return rows


def settings(**overrides) -> TrainSettings:
    # lr 1e-3 so two steps visibly move a pico model; short probes keep the runaway check cheap.
    base = dict(learning_rate=1e-3, max_steps=2, batch_size=2, max_length=128, probe_prompts=2,
                probe_max_new_tokens=4)
    return TrainSettings(**{**base, **overrides})


def weights(path, cls_name="AutoModelForCausalLM"):
    import transformers

    model, info = getattr(transformers, cls_name).from_pretrained(str(path), output_loading_info=True)
    assert not info["missing_keys"], f"checkpoint lacks {info['missing_keys']}"
    return model


def assert_trained(result, pico_model_dir, cls_name="AutoModelForCausalLM"):
    """Finite losses, metrics on disk, end-of-turn checked, and a weight that moved."""
    assert all(math.isfinite(x) for x in result.metrics["loss_curve"]) and result.metrics["steps"] >= 1
    assert result.guard.end_of_turn_in_labels
    saved = json.loads((result.checkpoint.parent / "metrics.json").read_text())
    assert saved["guard"]["end_of_turn_in_labels"] is True
    before = weights(pico_model_dir).state_dict()[WEIGHT]
    after = weights(result.checkpoint, cls_name)
    assert not torch.equal(before, after.state_dict()[WEIGHT]), "training did not change the weights"
    return after


def assert_generates(model, tokenizer_dir):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(tokenizer_dir))
    inputs = tokenizer.apply_chat_template(user("Hi"), add_generation_prompt=True, return_tensors="pt",
                                           return_dict=True)
    out = model.generate(**inputs, max_new_tokens=3, do_sample=False, pad_token_id=tokenizer.pad_token_id)
    assert out.shape[1] > inputs["input_ids"].shape[1]


# --- SFT ---------------------------------------------------------------------------------------------------

def test_sft_trains_and_checkpoint_generates(pico_model_dir, tmp_path):
    from offline_arena.train.sft import train_sft

    from transformers import AutoTokenizer

    result = train_sft(pico_model_dir, sft_rows(), tmp_path, settings(), PROBES)
    model = assert_trained(result, pico_model_dir)
    assert result.guard.runaway_before is not None and result.guard.runaway_after is not None
    assert_generates(model, result.checkpoint)
    # The probes pad on the left; the saved tokenizer must still be the one the stage started from.
    padding = [AutoTokenizer.from_pretrained(str(d)).padding_side for d in (pico_model_dir, result.checkpoint)]
    assert padding[0] == padding[1]


def test_sft_trains_only_the_answer(pico_model_dir, tmp_path):
    """Prompt-completion rows: labels cover the answer and its <|im_end|>, never the prompt."""
    from trl import SFTConfig, SFTTrainer

    from offline_arena.train.common import load_policy, trl_args
    from offline_arena.train.sft import guard_example, sft_dataset

    model, tokenizer = load_policy(pico_model_dir)
    config = SFTConfig(**trl_args(settings(), tmp_path), max_length=128, completion_only_loss=True)
    trainer = SFTTrainer(model=model, args=config, train_dataset=sft_dataset(sft_rows()[:1]),
                         processing_class=tokenizer)
    [(ids, trained, attended)] = guard_example(trainer)
    trained_text = tokenizer.decode([t for t, m in zip(ids, trained) if m])
    assert trained_text == "Blue.<|im_end|>\n" and all(attended)


def test_guard_needs_the_final_end_of_turn_of_every_example_trained(smol_tokenizer_dir):
    """Issue 10: "some end-of-turn token is trained" passed an example whose prompt turn's <|im_end|> was
    trained but whose answer's end was masked; and one example stood for the whole batch."""
    from transformers import AutoTokenizer

    from offline_arena.train.guard import StopTokenGuardError, assert_examples_end_trained

    tokenizer = AutoTokenizer.from_pretrained(smol_tokenizer_dir)
    eot = tokenizer.convert_tokens_to_ids("<|im_end|>")
    good = ([5, 6, eot, 7, 8, eot, eot], [0, 0, 0, 1, 1, 1, 0], [1, 1, 1, 1, 1, 1, 0])  # last one is padding
    answer_end_masked = ([5, 6, eot, 7, 8, eot], [0, 0, 1, 1, 1, 0], [1] * 6)
    assert assert_examples_end_trained([good, good], tokenizer, "test") == 2
    with pytest.raises(StopTokenGuardError, match="example 1.*masked out of the labels"):
        assert_examples_end_trained([good, answer_end_masked], tokenizer, "test")


def test_sft_lora_checkpoint_is_a_plain_merged_model(pico_model_dir, tmp_path):
    from offline_arena.train.sft import train_sft

    result = train_sft(pico_model_dir, sft_rows(), tmp_path, settings(lora=True, lora_r=4, lora_alpha=8), [])
    assert not (result.checkpoint / "adapter_config.json").exists()
    model = assert_trained(result, pico_model_dir)
    assert type(model).__name__ == "LlamaForCausalLM"
    assert not any("lora" in name for name in model.state_dict())
    assert_generates(model, result.checkpoint)


# --- DPO / KTO ---------------------------------------------------------------------------------------------

def answer_logprobs(model_dir, pairs) -> torch.Tensor:
    """Sum of the token log-probabilities of each answer given its prompt, rendered through the chat
    template: the tokens of the full conversation after those of the prompt with its generation prompt (the
    answer, its <|im_end|> and the template's newline). Computed here, not by the trainer under test."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
    model = AutoModelForCausalLM.from_pretrained(str(model_dir), dtype=torch.float32).eval()
    sums = []
    for question, answer in pairs:
        prompt = tokenizer.apply_chat_template(user(question), add_generation_prompt=True, return_dict=True)["input_ids"]
        full = tokenizer.apply_chat_template([*user(question), *assistant(answer)], return_dict=True)["input_ids"]
        assert full[:len(prompt)] == prompt and len(full) > len(prompt), "the template must extend the prompt"
        ids = torch.tensor([full])
        with torch.no_grad():
            logprobs = torch.log_softmax(model(input_ids=ids).logits[0, :-1].float(), dim=-1)
        targets = ids[0, 1:]
        token_lp = logprobs.gather(1, targets[:, None])[:, 0]
        sums.append(token_lp[len(prompt) - 1:].sum())  # position i predicts token i + 1
    return torch.stack(sums)


def implicit_reward_margins(policy_dir, reference_dir) -> torch.Tensor:
    """Per training question: (log π(GOOD) − log π_ref(GOOD)) − (log π(BAD) − log π_ref(BAD)), the DPO
    implicit-reward margin up to β. It is exactly 0 for the starting model, whatever its random weights."""
    good, bad = list(zip(QUESTIONS, GOOD)), list(zip(QUESTIONS, BAD))
    policy_good, policy_bad = answer_logprobs(policy_dir, good), answer_logprobs(policy_dir, bad)
    ref_good, ref_bad = answer_logprobs(reference_dir, good), answer_logprobs(reference_dir, bad)
    return (policy_good - ref_good) - (policy_bad - ref_bad)


def assert_prefers(margins: torch.Tensor, sign: int):
    """The trained model moved towards the answers it was told were better: on average clearly, and on at
    least 3 of the 4 training questions. `sign` +1: GOOD was chosen; -1: BAD was (the swapped data)."""
    margins = sign * margins
    assert margins.mean() > 0.1 and (margins > 0).sum() >= 3, f"margins (towards chosen) {margins.tolist()}"


def test_dpo_trains_and_checkpoint_generates(pico_model_dir, tmp_path):
    from offline_arena.train.dpo import train_dpo

    result = train_dpo(pico_model_dir, preference_rows(), tmp_path, settings(), PROBES)
    assert_generates(assert_trained(result, pico_model_dir), result.checkpoint)
    assert_prefers(implicit_reward_margins(result.checkpoint, pico_model_dir), +1)


def padded_tokens(trainer) -> tuple[int, list[int]]:
    """Tokens one epoch of `trainer`'s training batches holds, padding included, and the order of the
    examples (by the number of words in their prompt, which is their identity here)."""
    padded, order = 0, []
    for batch in trainer.get_train_dataloader():
        padded += batch["input_ids"].numel()
        order += [int((row != trainer.processing_class.pad_token_id).sum()) for row in batch["input_ids"]]
    return padded, order


def test_group_by_length_batches_preference_rows_of_similar_length(pico_model_dir, tmp_path):
    """transformers' length-grouped sampler measures `input_ids`, which DPO's rows do not have: ours measures
    every token-id column. On 32 pairs of 4 to 128 words, one epoch pads to fewer tokens than random batches
    do, and still visits every pair once; and a DPO stage trains with it (and with TRL's precomputed reference
    log-probabilities, which the quickstart uses)."""
    from trl import DPOConfig, DPOTrainer

    from offline_arena.train.common import length_grouping, load_policy, trl_args
    from offline_arena.train.dpo import preference_dataset, train_dpo

    rows = [{"prompt": user(" ".join(["word"] * 4 * n)), "chosen": assistant("Yes " * 4 * n),
             "rejected": assistant("No")} for n in range(1, 33)]
    epoch = {}
    for grouped in (False, True):
        trainer_cls, grouping = length_grouping(DPOTrainer, settings(group_by_length=grouped))
        model, tokenizer = load_policy(pico_model_dir)
        config = DPOConfig(max_length=512, **trl_args(settings(), tmp_path / str(grouped)), **grouping)
        trainer = trainer_cls(model=model, args=config, train_dataset=preference_dataset(rows),
                              processing_class=tokenizer)
        epoch[grouped] = padded_tokens(trainer)
    assert epoch[True][0] < 0.9 * epoch[False][0], epoch
    assert sorted(epoch[True][1]) == sorted(epoch[False][1]) and len(set(epoch[True][1])) > 16
    # a grouped stage, with the reference log-probabilities computed once before training (the quickstart's setting)
    stage = settings(group_by_length=True, probe_prompts=0, max_length=512, extra={"precompute_ref_log_probs": True})
    result = train_dpo(pico_model_dir, rows, tmp_path / "stage", stage)
    assert_trained(result, pico_model_dir)


def test_sft_cuts_each_step_into_micro_batches_of_similar_length_and_learns_the_same(pico_model_dir, tmp_path):
    """Without group_by_length, SFT draws each optimizer step's rows at random and cuts them into micro-batches
    of similar length (train/sft.balanced_steps). SFT's loss is averaged over a whole step's trained tokens, so
    that saves padding and changes nothing else: on 32 rows of 4 to 128 words, two accumulated micro-batches
    a step log the same losses as the same steps taken as one batch of 8 (same rows, same weighting), and an
    epoch pads to fewer tokens than random micro-batches, every row still seen once."""
    from trl import SFTConfig, SFTTrainer

    from offline_arena.train.common import load_policy, trl_args
    from offline_arena.train.sft import balanced_steps, sft_dataset, train_sft

    rows = [{"messages": [*user(" ".join(["word"] * 4 * n)), *assistant("Yes " * 4 * n)]} for n in range(1, 33)]
    stage = dict(max_steps=-1, epochs=1, probe_prompts=0, max_length=512, seed=3)
    curves = {accum: train_sft(pico_model_dir, rows, tmp_path / str(accum),
                               settings(batch_size=8 // accum, grad_accum=accum, **stage)).metrics["loss_curve"]
              for accum in (1, 2)}
    assert len(curves[1]) == len(curves[2]) == 4
    assert curves[2] == pytest.approx(curves[1], rel=0.01), curves

    epoch = {}
    for balanced in (False, True):
        trained = settings(batch_size=4, grad_accum=2, **stage)
        trainer_cls, sampling = balanced_steps(SFTTrainer, trained) if balanced else (SFTTrainer, {})
        model, tokenizer = load_policy(pico_model_dir)
        config = SFTConfig(max_length=512, completion_only_loss=True, **trl_args(trained, tmp_path / str(balanced)),
                           **sampling)
        trainer = trainer_cls(model=model, args=config, train_dataset=sft_dataset(rows), processing_class=tokenizer)
        epoch[balanced] = padded_tokens(trainer)
    assert epoch[True][0] < 0.9 * epoch[False][0], epoch
    assert sorted(epoch[True][1]) == sorted(epoch[False][1]) and len(set(epoch[True][1])) == 32


def test_dpo_with_the_chosen_answers_nll_keeps_them_likelier(pico_model_dir, tmp_path):
    """The quickstart's DPO adds the chosen answer's NLL to the loss (RPO, Pang et al. 2024; TRL's loss_type
    [sigmoid, sft]): against plain DPO from the same start and the same steps, the chosen answers (whose
    end-of-turn is what keeps a model stopping) end likelier, and the pairs are still told apart. The weights
    are the bundled quickstart's."""
    from offline_arena.cli import resolve_recipe_path
    from offline_arena.config import load_recipe
    from offline_arena.train.dpo import train_dpo

    quickstart = next(stage for stage in load_recipe(resolve_recipe_path("quickstart")).stages if stage.kind == "dpo")
    rpo = {key: quickstart.train.extra[key] for key in ("loss_type", "loss_weights")}
    assert rpo["loss_type"] == ["sigmoid", "sft"], rpo
    chosen = list(zip(QUESTIONS, GOOD))
    trained = {name: train_dpo(pico_model_dir, preference_rows(), tmp_path / name, settings(probe_prompts=0, extra=extra))
               for name, extra in (("dpo", {}), ("rpo", rpo))}
    assert trained["rpo"].metrics["first_loss"] > trained["dpo"].metrics["first_loss"] + 1  # log 2 + the NLL
    rpo, dpo = answer_logprobs(trained["rpo"].checkpoint, chosen), answer_logprobs(trained["dpo"].checkpoint, chosen)
    assert (rpo > dpo).all(), (rpo.tolist(), dpo.tolist())
    assert_prefers(implicit_reward_margins(trained["rpo"].checkpoint, pico_model_dir), +1)


def end_of_turn_logprobs(model_dir, pairs) -> torch.Tensor:
    """log P(end-of-turn | prompt, answer) for each (question, answer): how likely the model ends its turn
    right after that answer. Computed here, not by the trainer under test."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from offline_arena.models.chat import end_of_turn_token_id

    tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
    model = AutoModelForCausalLM.from_pretrained(str(model_dir), dtype=torch.float32).eval()
    eot = end_of_turn_token_id(tokenizer)
    out = []
    for question, answer in pairs:
        full = tokenizer.apply_chat_template([*user(question), *assistant(answer)], return_dict=True)["input_ids"]
        cut = len(full) - 1 - full[::-1].index(eot)  # the answer's tokens end here
        with torch.no_grad():
            logits = model(input_ids=torch.tensor([full[:cut]])).logits[0, -1].float()
        out.append(torch.log_softmax(logits, dim=-1)[eot])
    return torch.stack(out)


def test_dpo_with_open_rejected_turns_never_scores_their_ending(pico_model_dir, tmp_path):
    """`rejected_end_of_turn: false` (the quickstart's DPO): the rejected answers reach the loss and the
    reference without their end-of-turn, the chosen ones with it; so training pushes down what a rejected
    answer says but not that it ended there — after the same steps, the rejected answers end likelier than
    under TRL's default, and the pairs are still told apart."""
    from trl import DPOConfig, DPOTrainer

    from offline_arena.models.chat import end_of_turn_token_id
    from offline_arena.train.common import load_policy, trl_args
    from offline_arena.train.dpo import open_rejected_turns, preference_dataset, train_dpo

    reference = {}
    for scored in (True, False):
        stage = settings(rejected_end_of_turn=scored, extra={"precompute_ref_log_probs": True})
        model, tokenizer = load_policy(pico_model_dir)
        trainer = open_rejected_turns(DPOTrainer, stage)(
            model=model, args=DPOConfig(max_length=128, **trl_args(stage, tmp_path / str(scored))),
            train_dataset=preference_dataset(preference_rows()), processing_class=tokenizer)
        eot = end_of_turn_token_id(tokenizer)
        assert all(eot in ids for ids in trainer.train_dataset["chosen_ids"])
        assert all((eot in ids) == scored for ids in trainer.train_dataset["rejected_ids"])
        reference[scored] = {side: torch.tensor(trainer.train_dataset[f"ref_{side}_logps"]) for side in ("chosen", "rejected")}
    assert torch.allclose(reference[True]["chosen"], reference[False]["chosen"])
    assert (reference[False]["rejected"] > reference[True]["rejected"]).all(), reference  # fewer tokens scored

    rejected = list(zip(QUESTIONS, BAD))
    trained = {scored: train_dpo(pico_model_dir, preference_rows(), tmp_path / f"train-{scored}",
                                 settings(probe_prompts=0, max_steps=8, rejected_end_of_turn=scored))
               for scored in (True, False)}
    ends = {scored: end_of_turn_logprobs(result.checkpoint, rejected) for scored, result in trained.items()}
    assert (ends[False] > ends[True]).all() and ends[False].mean() > ends[True].mean() + 0.15, ends
    assert_prefers(implicit_reward_margins(trained[False].checkpoint, pico_model_dir), +1)


def test_dpo_on_swapped_pairs_prefers_the_other_answer(pico_model_dir, tmp_path):
    """The margin check above tells the orientations apart: with chosen and rejected swapped, the trained
    model prefers BAD over GOOD (a test of "some weight moved" would pass both)."""
    from offline_arena.train.dpo import train_dpo

    swapped = [{**row, "chosen": row["rejected"], "rejected": row["chosen"]} for row in preference_rows()]
    result = train_dpo(pico_model_dir, swapped, tmp_path, settings(probe_prompts=0), [])
    assert_prefers(implicit_reward_margins(result.checkpoint, pico_model_dir), -1)


def test_kto_trains_and_checkpoint_generates(pico_model_dir, tmp_path):
    from offline_arena.train.kto import train_kto

    # 4 steps of 2: one pass over the 8 rows, so every question's GOOD and BAD answer is trained on.
    result = train_kto(pico_model_dir, kto_rows(), tmp_path, settings(max_steps=4), PROBES)
    assert_generates(assert_trained(result, pico_model_dir), result.checkpoint)
    # KTO sees no pairs, only desirable GOOD and undesirable BAD answers; the same margin must grow.
    assert_prefers(implicit_reward_margins(result.checkpoint, pico_model_dir), +1)


def test_kto_on_flipped_labels_prefers_the_other_answer(pico_model_dir, tmp_path):
    from offline_arena.train.kto import train_kto

    flipped = [{**row, "label": not row["label"]} for row in kto_rows()]
    result = train_kto(pico_model_dir, flipped, tmp_path, settings(max_steps=4, probe_prompts=0), [])
    assert_prefers(implicit_reward_margins(result.checkpoint, pico_model_dir), -1)


def test_kto_refuses_batch_of_one(pico_model_dir, tmp_path):
    from offline_arena.train.kto import train_kto

    with pytest.raises(ValueError, match="batch_size >= 2"):
        train_kto(pico_model_dir, kto_rows(), tmp_path, settings(batch_size=1), [])


# --- reward model ------------------------------------------------------------------------------------------

def test_reward_model_trains_and_checkpoint_scores(pico_model_dir, tmp_path):
    from transformers import AutoTokenizer

    from offline_arena.models.chat import end_of_turn_token_id, reward_input_ids, scores_at_end_of_turn
    from offline_arena.train.reward import train_reward

    result = train_reward(pico_model_dir, preference_rows(), tmp_path, settings(), PROBES)
    assert result.guard.runaway_before is None  # a reward model does not generate
    model = assert_trained(result, pico_model_dir, "AutoModelForSequenceClassification")
    tokenizer = AutoTokenizer.from_pretrained(str(result.checkpoint))
    assert model.config.num_labels == 1 and model.config.pad_token_id == tokenizer.pad_token_id
    # Read at the end-of-turn token (where OpenRLHF reads it too): pad is another token, and the config says so.
    assert scores_at_end_of_turn(model.config) and tokenizer.pad_token_id != end_of_turn_token_id(tokenizer)
    ids = [reward_input_ids(tokenizer, [*user(q), *assistant(a)], end_at_end_of_turn=True)
           for q, a in [(QUESTIONS[0], GOOD[0]), (QUESTIONS[1], BAD[1])]]
    with torch.no_grad():
        scores = model(**tokenizer.pad({"input_ids": ids}, return_tensors="pt")).logits
    assert scores.shape == (2, 1) and torch.isfinite(scores).all()
    assert_ranks_good_first(model, tokenizer, pico_model_dir, sign=+1)


def reward_margins(model, tokenizer) -> torch.Tensor:
    """r(GOOD) − r(BAD) per training question, each conversation scored alone (no padding) as train_reward
    renders it: through the chat template, cut after the answer's end-of-turn token."""
    from offline_arena.models.chat import reward_input_ids

    def score(question, answer):
        ids = reward_input_ids(tokenizer, [*user(question), *assistant(answer)], end_at_end_of_turn=True)
        with torch.no_grad():
            return model(torch.tensor([ids])).logits[0, 0]

    return torch.stack([score(q, g) - score(q, b) for q, g, b in zip(QUESTIONS, GOOD, BAD)])


def assert_ranks_good_first(trained, tokenizer, pico_model_dir, sign: int):
    """The trained RM ranks the answer it was taught to prefer (GOOD for sign +1, BAD for -1) first on all
    4 training pairs, where the reward model it started from did not: that one is
    rebuilt as `train_reward` built it (same body, score head initialised under the same seed)."""
    from transformers import set_seed

    from offline_arena.train.reward import load_reward_model

    set_seed(settings().seed)
    start, _ = load_reward_model(pico_model_dir)
    before, after = sign * reward_margins(start.eval(), tokenizer), sign * reward_margins(trained.eval(), tokenizer)
    trace = f"margins towards chosen before {before.tolist()} after {after.tolist()}"
    # Precondition, not luck: a start that already ranked every pair right would prove nothing.
    assert (before > 0).sum() < 4, trace
    assert (after > 0).all(), trace
    # The random head's margins are ~0.01; two steps at lr 1e-3 widen them to ~0.05.
    assert after.mean() > before.mean() + 0.02 and (after > before).sum() >= 3, trace


def test_reward_model_on_swapped_pairs_ranks_the_other_answer_first(pico_model_dir, tmp_path):
    """The ranking check tells the orientations apart: trained on swapped pairs, the RM prefers BAD."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from offline_arena.train.reward import train_reward

    swapped = [{**row, "chosen": row["rejected"], "rejected": row["chosen"]} for row in preference_rows()]
    result = train_reward(pico_model_dir, swapped, tmp_path, settings(), [])
    model = AutoModelForSequenceClassification.from_pretrained(str(result.checkpoint))
    assert_ranks_good_first(model, AutoTokenizer.from_pretrained(str(result.checkpoint)), pico_model_dir, sign=-1)


def test_reward_model_trains_on_runaways_as_its_scorers_read_them(pico_model_dir, tmp_path):
    """Review of issue 24: rejected runaways were trained closed with <|im_end|> but read open by PPO and the
    rm: judge. Trained on pairs whose rejected answer is the same text cut off at the token limit, the model
    must score a runaway below the finished answer, read the way its scorers read it."""
    from offline_arena.loading import load_judge
    from offline_arena.judges.base import Matchup
    from offline_arena.models.base import Completion
    from offline_arena.models.chat import reward_input_ids
    from offline_arena.train.reward import load_reward_model, reward_dataset, train_reward

    rows = [{**row, "rejected": row["chosen"], "chosen_stopped": True, "rejected_stopped": False}
            for row in preference_rows()]
    _, tokenizer = load_reward_model(pico_model_dir)
    trained_on = reward_dataset(rows, tokenizer)[0]["rejected_ids"]
    assert trained_on == reward_input_ids(tokenizer, [*user(QUESTIONS[0]), *assistant(GOOD[0])], stopped=False,
                                          end_at_end_of_turn=True)
    result = train_reward(pico_model_dir, rows, tmp_path, settings(max_steps=4), [])
    judge = load_judge(f"rm:{result.checkpoint}")
    verdicts = judge.judge([Matchup(tuple(user(q)), {}, Completion(g, True, 2), Completion(g, False, 2))
                            for q, g in zip(QUESTIONS, GOOD)])
    assert all(v.score_a > v.score_b for v in verdicts), [(v.score_a, v.score_b) for v in verdicts]


# --- GRPO --------------------------------------------------------------------------------------------------

def test_constraint_reward_is_share_of_constraints_met():
    from offline_arena.train.grpo import constraint_reward

    both = json.dumps([{"id": "change_case:english_lowercase", "params": {}},
                       {"id": "startend:end_checker", "params": {"end_phrase": "I hope this helps."}}])
    completions = [assistant("all lowercase. i hope this helps."), assistant("all quiet here"),
                   assistant("Done. I hope this helps."), assistant("SHOUTING")]
    assert constraint_reward(completions, [both] * 4) == [1.0, 0.5, 0.5, 0.0]
    assert constraint_reward(["plain text, as a str"], [json.loads(both)]) == [0.5]  # lists work too
    assert constraint_reward(["plain text"], [[]]) == [None]


def test_grpo_trains_with_constraint_column(pico_model_dir, tmp_path):
    from offline_arena.train.grpo import constraint_reward, train_grpo

    seen = []

    def verifier(completions, constraints, **kwargs):
        seen.extend(constraints)
        return constraint_reward(completions, constraints)

    def longer(completions, **kwargs):  # random answers differ in length: non-zero group advantages
        return [len(c[-1]["content"]) / 100 for c in completions]

    lowercase = [{"id": "change_case:english_lowercase", "params": {}}]
    words = [{"id": "length_constraints:number_words", "params": {"relation": "less than", "num_words": 5}}]
    rows = [{"prompt": user(q), "constraints": c, "prompt_id": f"p{i}"}
            for i, (q, c) in enumerate(zip(QUESTIONS, [lowercase, words, lowercase, words]))]
    extra = {"num_generations": 2, "max_completion_length": 6}
    result = train_grpo(pico_model_dir, rows, tmp_path, settings(extra=extra), PROBES, [verifier, longer])
    # Each constraint set arrives as the JSON column, once per sampled answer.
    assert seen and {json.dumps(lowercase), json.dumps(words)} >= set(seen)
    assert_generates(assert_trained(result, pico_model_dir), result.checkpoint)


def test_grpo_guard_requires_end_of_turn_among_stop_ids(pico_model_dir):
    from types import SimpleNamespace

    from transformers import AutoTokenizer

    from offline_arena.train.grpo import guard_example

    tokenizer = AutoTokenizer.from_pretrained(str(pico_model_dir))
    good = SimpleNamespace(eos_token_ids=[tokenizer.eos_token_id], processing_class=tokenizer,
                           generation_config=SimpleNamespace(eos_token_id=tokenizer.eos_token_id))
    assert guard_example(good) == ([tokenizer.eos_token_id], [True])
    bad = SimpleNamespace(eos_token_ids=[0], processing_class=tokenizer, generation_config=None)
    with pytest.raises(StopTokenGuardError, match=re.escape("'<|im_end|>'")):
        guard_example(bad)


# --- the stop-token guard ----------------------------------------------------------------------------------

def test_pad_masking_collator_fails_before_training(pico_model_dir, tmp_path, monkeypatch):
    """The classic regression: pad == eos, and a collator masks every pad-id position out of the labels,
    so <|im_end|> disappears from them. The stage must fail before a single step."""
    from trl import SFTTrainer
    from trl.trainer.sft_trainer import DataCollatorForLanguageModeling

    from offline_arena.train.sft import train_sft

    class MaskPadByIdCollator(DataCollatorForLanguageModeling):
        def torch_call(self, examples):
            batch = super().torch_call(examples)
            batch["labels"][batch["input_ids"] == self.pad_token_id] = -100
            return batch

    def never(*args, **kwargs):
        raise AssertionError("training started despite the broken collator")

    monkeypatch.setattr(SFTTrainer, "train", never)
    from transformers import AutoTokenizer

    pad = AutoTokenizer.from_pretrained(str(pico_model_dir)).pad_token_id
    masked = re.escape("'<|im_end|>'") + ".*in the example but masked out of the labels"
    with pytest.raises(StopTokenGuardError, match=masked):
        train_sft(pico_model_dir, sft_rows(), tmp_path, settings(), PROBES,
                  data_collator=MaskPadByIdCollator(pad_token_id=pad))
    assert not (tmp_path / "checkpoint").exists()


def rows_cut_before_their_end(model_dir) -> tuple[list[dict], int]:
    """Preference rows and a max_length that keeps their prompt and cuts every answer before its end-of-turn."""
    from transformers import AutoTokenizer

    question = user("Name a colour.")
    rows = [{"prompt": question, "chosen": assistant("Blue, like the sky on a clear summer day."),
             "rejected": assistant("Red, like a fire engine racing down a busy street.")}] * 2
    tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
    prompt_tokens = len(tokenizer.apply_chat_template(question, add_generation_prompt=True, return_dict=True)
                        ["input_ids"])
    return rows, prompt_tokens + 3


def test_truncated_answers_fail_before_training(pico_model_dir, tmp_path):
    """max_length that cuts off the answer's end: <|im_end|> is not in the rendered example at all."""
    from offline_arena.train.dpo import train_dpo

    rows, max_length = rows_cut_before_their_end(pico_model_dir)
    missing = re.escape("'<|im_end|>'") + ".*missing from the rendered example's trained span"
    with pytest.raises(StopTokenGuardError, match=missing):
        train_dpo(pico_model_dir, rows, tmp_path, settings(max_length=max_length), [])


@pytest.mark.parametrize("before, after, fails", [(0.0, 0.1, False), (0.0, 0.5, True), (0.25, 0.3, False),
                                                  (1.0, 1.0, False), (0.5, 0.0, False)])
def test_check_runaway_numbers(before, after, fails):
    report = GuardReport(end_of_turn_in_labels=True, runaway_before=before, runaway_after=after, tolerance=0.1)
    assert report.as_dict() == {"end_of_turn_in_labels": True, "runaway_before": before,
                                "runaway_after": after, "runaway_tolerance": 0.1, "examples_checked": 1}
    if fails:
        with pytest.raises(StopTokenGuardError, match=f"from {before:.2f} to {after:.2f}"):
            check_runaway(report, where="test stage")
    else:
        check_runaway(report, where="test stage")
    check_runaway(GuardReport(end_of_turn_in_labels=True, runaway_before=None, runaway_after=1.0), "no probe")


def rig_to_stop_at_once(src, dst):
    """Save a pico model whose greedy answer is <|im_end|> at once: residual dimension 0 is always positive
    (every embedding has 1 there and no layer writes to it), the final norm keeps only that dimension, and
    the tied embedding of <|im_end|> has the largest entry in it."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from offline_arena.models.chat import end_of_turn_token_id

    tokenizer, model = AutoTokenizer.from_pretrained(str(src)), AutoModelForCausalLM.from_pretrained(str(src))
    with torch.no_grad():
        embedding = model.get_input_embeddings().weight
        embedding[:, 0] = 1.0
        embedding[end_of_turn_token_id(tokenizer), 0] = 2.0
        for layer in model.model.layers:
            layer.self_attn.o_proj.weight[0].zero_()
            layer.mlp.down_proj.weight[0].zero_()
        model.model.norm.weight.zero_()
        model.model.norm.weight[0] = 1.0
    model.save_pretrained(dst)
    tokenizer.save_pretrained(dst)
    return dst


def test_runaway_regression_fails_the_stage_after_saving(pico_model_dir, tmp_path):
    """run_guarded end to end with real probes: the stage starts from a model that always stops and its
    "training" leaves one that never does (the random pico model). The stage must fail, naming both rates,
    after writing the checkpoint and metrics so the regression can be inspected."""
    from types import SimpleNamespace

    from offline_arena.models.chat import end_of_turn_token_id
    from offline_arena.train.common import load_policy

    stopper, tokenizer = load_policy(rig_to_stop_at_once(pico_model_dir, tmp_path / "stopper"))
    runaway, _ = load_policy(pico_model_dir)
    trainer = SimpleNamespace(model=stopper, state=SimpleNamespace(log_history=[]))

    def train():
        trainer.model = runaway
        trainer.state.log_history.append({"loss": 1.0, "step": 1})

    trainer.train = train
    eot = end_of_turn_token_id(tokenizer)
    with pytest.raises(StopTokenGuardError, match="runaway rate regressed from 0.00 to 1.00"):
        run_guarded("sft", trainer, stopper, tokenizer, lambda t: ([eot], [True]), PROBES, settings(),
                    tmp_path / "stage")
    guard = json.loads((tmp_path / "stage" / "metrics.json").read_text())["guard"]
    assert (guard["runaway_before"], guard["runaway_after"]) == (0.0, 1.0)
    assert (tmp_path / "stage" / "checkpoint" / "config.json").exists()
