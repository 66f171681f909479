"""`rm_ppo` with `ppo.engine: openrlhf` (train/openrlhf.py): the command line against OpenRLHF's real flag
names, the exported prompt file, and whole runs against a stand-in engine (tests/fake_openrlhf_engine.py,
which parses our command with OpenRLHF's flag list and saves the starting model as the "trained" one), with
our stop-token guard around them."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
import fake_openrlhf_engine as fake  # noqa: E402

from offline_arena.config import PPO, OpenRLHFEngine, Recipe  # noqa: E402
from offline_arena.run_folder import StageFolder  # noqa: E402
from offline_arena.train.guard import StopTokenGuardError  # noqa: E402
from offline_arena.train.openrlhf import (LOG_NAME, OPENRLHF_COMMIT, OpenRLHFError, build_command,  # noqa: E402
                                          check_reward_model, export_stage, reward_pooling, run_openrlhf)
from offline_arena.train.ppo import PPOSettings  # noqa: E402

FAKE = Path(fake.__file__)
PROMPTS = [[{"role": "user", "content": q}] for q in ("Name a colour.", "Say yes.", "What is 2+2?")]
PROBES = PROMPTS[:2]


def ppo_settings(**overrides) -> PPOSettings:
    base = dict(steps=2, rollouts_per_step=4, samples_per_prompt=2, minibatch_size=2, adaptive_kl=False,
                probe_prompts=2, probe_max_new_tokens=8, seed=3)
    return PPOSettings(**{**base, **overrides})


def fake_engine(*extra: str, gpus: int = 1) -> OpenRLHFEngine:
    return OpenRLHFEngine(launcher=[sys.executable, str(FAKE)], gpus_per_node=gpus, extra_args=list(extra))


@pytest.fixture(scope="module")
def trained_reward_dir(pico_model_dir, tmp_path_factory) -> Path:
    """A reward model as the rm_ppo stage trains one (train/reward.py): read at the end-of-turn token."""
    from offline_arena.train.common import TrainSettings
    from offline_arena.train.reward import train_reward

    rows = [{"prompt": m, "chosen": [{"role": "assistant", "content": "Blue."}],
             "rejected": [{"role": "assistant", "content": "No idea."}]} for m in PROMPTS]
    settings = TrainSettings(max_steps=1, batch_size=2, max_length=64, probe_prompts=0)
    return train_reward(pico_model_dir, rows, tmp_path_factory.mktemp("rm"), settings).checkpoint


def engine_flags(command: list[str], engine: OpenRLHFEngine) -> list[str]:
    return command[len(engine.launcher):]


# --- the command line ------------------------------------------------------------------------------------

def test_the_stand_in_knows_the_flags_of_the_commit_we_read():
    assert fake.OPENRLHF_COMMIT == OPENRLHF_COMMIT
    assert len(fake.TRAIN_PPO_RAY_FLAGS) == 164  # train_ppo_ray.py at that commit defines 164 options


def test_every_flag_we_emit_is_openrlhfs_and_carries_our_knobs(tmp_path, pico_model_dir, pico_reward_dir):
    settings = ppo_settings(rollouts_per_step=16, minibatch_size=8, lora=True, lora_r=8, learning_rate=3e-6,
                            init_kl_coef=0.02, missing_eos_penalty=1.0, max_new_tokens=96)
    export = export_stage(PROMPTS, tmp_path, settings, pico_reward_dir)
    engine = OpenRLHFEngine()  # the default layout: one node of 8 GPUs, python -m openrlhf.cli.train_ppo_ray
    command = build_command(export, pico_model_dir, tmp_path, settings, engine)
    assert command[:3] == ["python", "-m", "openrlhf.cli.train_ppo_ray"]
    flags = [a for a in engine_flags(command, engine) if a.startswith("--")]
    assert flags and not set(flags) - set(fake.TRAIN_PPO_RAY_FLAGS), set(flags) - set(fake.TRAIN_PPO_RAY_FLAGS)
    assert len(flags) == len(set(flags))  # each once: a repeated flag would hide which value wins
    args = vars(fake.parser().parse_args(engine_flags(command, engine)))  # the value types OpenRLHF declares
    fake.check(args)  # and what OpenRLHF asserts about the layout and batches
    assert (args["rollout.batch_size"], args["rollout.n_samples_per_prompt"], args["train.batch_size"]) == (8, 2, 8)
    assert (args["train.max_epochs"], args["train.num_episodes"], args["train.seed"]) == (settings.ppo_epochs, 1, 3)
    assert args["actor.adam.lr"] == args["critic.adam.lr"] == 3e-6 and args["algo.kl.init_coef"] == 0.02
    assert args["reward.stop_properly_penalty_coef"] == -1.0  # a negative coefficient: the runaway's reward
    assert (args["ds.lora.rank"], args["ds.lora.alpha"], args["rollout.max_new_tokens"]) == (8, 32, 96)
    assert (args["rollout.temperature"], args["actor.eps_clip"], args["algo.advantage.lambd"]) == (0.7, 0.2, 0.95)
    assert args["vllm.num_engines"] == 8 and args["train.colocate_all"] and args["data.apply_chat_template"]
    assert args["data.input_key"] == "prompt" and args["data.prompt_dataset"] == str(export.prompt_file.resolve())
    assert args["actor.model_name_or_path"] == str(Path(pico_model_dir).resolve())
    assert args["reward.model_name_or_path"] == str(Path(pico_reward_dir).resolve())
    assert Path(args["ckpt.output_dir"]).is_absolute() and Path(args["ckpt.output_dir"]).parent == tmp_path.resolve()


def test_without_lora_or_penalty_those_flags_stay_out(tmp_path, pico_model_dir, pico_reward_dir):
    settings = ppo_settings(missing_eos_penalty=None)
    export = export_stage(PROMPTS, tmp_path, settings, pico_reward_dir)
    command = build_command(export, pico_model_dir, tmp_path, settings, fake_engine())
    assert "--ds.lora.rank" not in command and "--reward.stop_properly_penalty_coef" not in command


def test_extra_args_come_last_and_override(tmp_path, pico_model_dir, pico_reward_dir):
    settings = ppo_settings()
    export = export_stage(PROMPTS, tmp_path, settings, pico_reward_dir)
    engine = fake_engine("--train.seed", "7", "--ds.zero_stage", "3")
    command = build_command(export, pico_model_dir, tmp_path, settings, engine)
    assert command[-4:] == ["--train.seed", "7", "--ds.zero_stage", "3"]
    args = vars(fake.parser().parse_args(engine_flags(command, engine)))
    assert (args["train.seed"], args["ds.zero_stage"]) == (7, 3)


@pytest.mark.parametrize("settings, engine, message", [
    (dict(adaptive_kl=True), {}, "fixed KL"),
    (dict(vf_coef=0.5), {}, "vf_coef"),
    (dict(whiten_rewards=True), {}, "whiten_rewards"),
    (dict(minibatch_size=4), {"gpus": 8}, "multiple of 8 GPUs"),
    (dict(minibatch_size=8, rollouts_per_step=8), {"gpus": 8, "extra": ["--rollout.micro_batch_size=2"]},
     "fewer micro-batches"),
    (dict(missing_eos_penalty=-1.0), {}, "reward runaways"),
])
def test_what_openrlhf_would_not_do_as_we_do_is_refused(tmp_path, pico_model_dir, pico_reward_dir, settings, engine,
                                                        message):
    export = export_stage(PROMPTS, tmp_path, ppo_settings(), pico_reward_dir)
    with pytest.raises(OpenRLHFError, match=message):
        build_command(export, pico_model_dir, tmp_path, ppo_settings(**settings),
                      fake_engine(*engine.get("extra", []), gpus=engine.get("gpus", 1)))


def test_a_path_openrlhf_would_split_is_refused(tmp_path, pico_model_dir, pico_reward_dir):
    folder = tmp_path / "run,2"
    export = export_stage(PROMPTS, folder, ppo_settings(), pico_reward_dir)
    with pytest.raises(OpenRLHFError, match="splits paths"):
        build_command(export, pico_model_dir, folder, ppo_settings(), fake_engine())


# --- the recipe ------------------------------------------------------------------------------------------

def test_the_recipe_schema_of_the_engine():
    opponents = [{"name": "o", "model": "builtin:smollm2-135m-instruct"}]
    stage = {"kind": "rm_ppo", "ppo": {"engine": "openrlhf", "target_kl": None,
                                       "openrlhf": {"gpus_per_node": 4, "vllm_tensor_parallel_size": 2}}}
    recipe = Recipe.model_validate({"opponents": opponents, "stages": [stage]})
    assert recipe.stages[0].ppo.openrlhf.launcher == ["python", "-m", "openrlhf.cli.train_ppo_ray"]
    assert PPO().engine == "ours"
    with pytest.raises(ValueError, match="target_kl: null"):
        PPO(engine="openrlhf")
    with pytest.raises(ValueError, match="only reward rm"):
        PPO(engine="openrlhf", target_kl=None, reward="rm+verifier")
    with pytest.raises(ValueError, match="this stage runs engine ours"):
        PPO(openrlhf={"gpus_per_node": 2})
    with pytest.raises(ValueError, match="does not divide"):
        OpenRLHFEngine(gpus_per_node=4, vllm_tensor_parallel_size=3)


# --- the exported stage ----------------------------------------------------------------------------------

def test_the_prompt_file_is_what_openrlhf_reads(tmp_path, pico_reward_dir, smol_tokenizer_dir):
    from datasets import load_dataset
    from transformers import AutoTokenizer

    prompts = [[{"role": "user", "content": "Say no.", "name": "a stray key"}], *PROMPTS[:2]]
    settings = ppo_settings(steps=3, rollouts_per_step=4, samples_per_prompt=2)  # 2 prompts a step
    export = export_stage(prompts, tmp_path, settings, pico_reward_dir)
    lines = export.prompt_file.read_text(encoding="utf-8").splitlines()
    rows = [json.loads(line) for line in lines]
    assert export.rows == len(rows) == 3 * 2  # steps x prompts a step: OpenRLHF takes exactly 3 steps
    assert all(set(row) == {"prompt"} for row in rows)
    assert {"role": "user", "content": "Say no."} in [m for row in rows for m in row["prompt"]]
    assert all(set(m) == {"role", "content"} for row in rows for m in row["prompt"])  # the stray key is gone
    # every prompt in the first pass over the set (3 prompts): a shuffled walk, not a repeat of one prompt
    assert len({json.dumps(r["prompt"]) for r in rows[:3]}) == 3
    # As OpenRLHF loads it (datasets' json loader) and renders it (apply_chat_template with the generation prompt).
    data = load_dataset("json", data_files=str(export.prompt_file))["train"]
    tokenizer = AutoTokenizer.from_pretrained(smol_tokenizer_dir)
    text = tokenizer.apply_chat_template(data[0]["prompt"], tokenize=False, add_generation_prompt=True)
    assert text.endswith("<|im_start|>assistant\n") and data[0]["prompt"][-1]["content"] in text


def test_the_reward_model_is_one_openrlhf_loads(pico_reward_dir, tmp_path):
    check_reward_model(pico_reward_dir)  # LlamaForSequenceClassification: model.* + score.weight [1, hidden]
    two = tmp_path / "two_labels"
    config = json.loads((Path(pico_reward_dir) / "config.json").read_text())
    two.mkdir()
    (two / "config.json").write_text(json.dumps({**config, "id2label": {"0": "a", "1": "b"}}))
    with pytest.raises(OpenRLHFError, match="2 labels"):
        check_reward_model(two)
    headless = tmp_path / "headless"
    headless.mkdir()
    (headless / "config.json").write_text(json.dumps(config))  # no weights at all
    with pytest.raises(OpenRLHFError, match="score.weight"):
        check_reward_model(headless)


def test_where_the_reward_is_read_differs_for_chatml_with_pad_as_end_of_turn(pico_reward_dir):
    # A reward model trained on the full template (not ours), SmolLM2's "...Hello.<|im_end|>\n" with
    # pad == <|im_end|>: read at the newline, where OpenRLHF reads <|im_end|>.
    assert reward_pooling(pico_reward_dir) == {"trained_at": "Ċ", "openrlhf_reads": "<|im_end|>", "same": False}


def test_our_reward_model_is_read_where_openrlhf_reads_it(trained_reward_dir):
    """OpenRLHF scores prompt ids (the template with the generation prompt) + the rollout's ids, which end
    on the stop token; our reward model was trained on exactly those ids, and our scorers read the same."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from offline_arena.judges.reward_model import RewardModelJudge
    from offline_arena.models.chat import end_of_turn_token_id, reward_input_ids
    from offline_arena.train.ppo_scoring import RewardModelScorer

    assert reward_pooling(trained_reward_dir) == {"trained_at": "<|im_end|>", "openrlhf_reads": "<|im_end|>",
                                                  "same": True}
    tokenizer = AutoTokenizer.from_pretrained(str(trained_reward_dir))
    model = AutoModelForSequenceClassification.from_pretrained(str(trained_reward_dir)).eval()
    assert tokenizer.pad_token_id == model.config.pad_token_id != end_of_turn_token_id(tokenizer)
    prompt, answer = PROMPTS[0], "Blue, like the sky."
    rollout = (tokenizer(tokenizer.apply_chat_template(prompt, tokenize=False, add_generation_prompt=True),
                         add_special_tokens=False)["input_ids"]
               + tokenizer(answer, add_special_tokens=False)["input_ids"] + [end_of_turn_token_id(tokenizer)])
    conversation = [*prompt, {"role": "assistant", "content": answer}]
    assert reward_input_ids(tokenizer, conversation, end_at_end_of_turn=True) == rollout
    with torch.no_grad():  # OpenRLHF's reading: the value at the last attended position
        hidden = model.model(torch.tensor([rollout])).last_hidden_state
        openrlhf = model.score(hidden)[0, -1, 0].item()
    ours = RewardModelScorer(trained_reward_dir, torch.device("cpu"), batch_size=2)(
        [prompt, PROMPTS[1]], [answer, "Yes, certainly, yes, of course, yes indeed, always yes."], [True, True])[0]  # padded beside a longer one
    judged = RewardModelJudge(str(trained_reward_dir)).scores([conversation])[0]
    assert ours == pytest.approx(openrlhf, abs=1e-5) and judged == pytest.approx(openrlhf, abs=1e-5)


def test_a_template_that_leaves_the_answer_open_has_no_reading_point(smol_tokenizer_dir):
    """Cutting after the last end-of-turn token must never cut after the question instead: with a template
    that closes user turns but not the assistant's, there is no token to read the answer's score at."""
    from transformers import AutoTokenizer

    from offline_arena.models.chat import reward_input_ids

    tokenizer = AutoTokenizer.from_pretrained(str(smol_tokenizer_dir))
    tokenizer.chat_template = ("{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}"
                               "{% if m['role'] != 'assistant' %}<|im_end|>\n{% endif %}{% endfor %}"
                               "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")
    conversation = [*PROMPTS[0], {"role": "assistant", "content": "Blue."}]
    assert tokenizer.decode(reward_input_ids(tokenizer, conversation)).endswith("Blue.")  # read as rendered
    with pytest.raises(ValueError, match="closes no answer"):
        reward_input_ids(tokenizer, conversation, end_at_end_of_turn=True)


def test_reward_training_refuses_settings_that_would_retokenize(tmp_path, pico_model_dir):
    from offline_arena.train.common import TrainSettings
    from offline_arena.train.reward import train_reward

    rows = [{"prompt": PROMPTS[0], "chosen": [{"role": "assistant", "content": "Blue."}],
             "rejected": [{"role": "assistant", "content": "No."}]}]
    with pytest.raises(ValueError, match=r"\['pad_token'\]"):
        train_reward(pico_model_dir, rows, tmp_path, TrainSettings(extra={"pad_token": "<|im_end|>"}))
    assert not (tmp_path / "checkpoint").exists()


def test_a_reward_model_read_elsewhere_is_refused_before_launch(tmp_path, pico_model_dir, pico_reward_dir):
    with pytest.raises(OpenRLHFError, match="not trained at"):
        run_openrlhf(pico_model_dir, PROMPTS, tmp_path, ppo_settings(probe_prompts=0), pico_reward_dir, fake_engine())
    assert not (tmp_path / LOG_NAME).exists()  # never launched


# --- whole runs against the stand-in ---------------------------------------------------------------------

def tensors(path):
    from safetensors.torch import load_file

    return {k: v for f in sorted(Path(path).glob("*.safetensors")) for k, v in load_file(str(f)).items()}


def test_a_run_returns_the_guarded_checkpoint(tmp_path, pico_model_dir, trained_reward_dir):
    from transformers import AutoTokenizer

    result = run_openrlhf(pico_model_dir, PROMPTS, tmp_path / "ppo", ppo_settings(), trained_reward_dir,
                          fake_engine(), probe_messages=PROBES)
    out = tmp_path / "ppo"
    assert result.checkpoint == out / "checkpoint" and not (out / "openrlhf_model").exists()  # moved, not copied
    start, trained = tensors(pico_model_dir), tensors(result.checkpoint)
    assert start.keys() == trained.keys() and all((start[k] == trained[k]).all() for k in start)
    # OpenRLHF saved a left-padding tokenizer; the checkpoint carries the starting model's again.
    assert AutoTokenizer.from_pretrained(str(result.checkpoint)).padding_side == \
        AutoTokenizer.from_pretrained(str(pico_model_dir)).padding_side == "right"
    assert result.guard.runaway_before is not None and result.guard.runaway_after == result.guard.runaway_before
    assert result.metrics["steps"] == 2 and result.metrics["planned_steps"] == 2  # 2 "Global step" lines logged
    assert result.metrics["engine"] == "openrlhf" and result.metrics["reward_read_where_trained"] is True
    log = (out / "openrlhf.log").read_text(encoding="utf-8")
    assert log.startswith("$ ") and "--actor.model_name_or_path" in log and "Global step 2:" in log
    seen = json.loads((out / "openrlhf_ckpt" / "fake_engine_args.json").read_text())
    assert seen["data.prompt_dataset"] == str((out / "prompts.jsonl").resolve())
    assert json.loads((out / "command.json").read_text()) == result.metrics["command"]
    assert json.loads((out / "metrics.json").read_text())["guard"]["runaway_after"] == result.guard.runaway_after


def test_lora_adapters_are_merged_into_the_starting_model(tmp_path, pico_model_dir, trained_reward_dir):
    result = run_openrlhf(pico_model_dir, PROMPTS, tmp_path, ppo_settings(lora=True, lora_r=4), trained_reward_dir,
                          fake_engine(), probe_messages=PROBES)
    assert (tmp_path / "openrlhf_model" / "adapter_config.json").is_file()  # what OpenRLHF saved
    assert not (result.checkpoint / "adapter_config.json").exists()        # what the next stage loads
    start, merged = tensors(pico_model_dir), tensors(result.checkpoint)
    assert start.keys() == merged.keys()
    q = "model.layers.0.self_attn.q_proj.weight"
    assert not (start[q] == merged[q]).all()  # LoRA on every linear layer moved it
    assert (start["model.embed_tokens.weight"] == merged["model.embed_tokens.weight"]).all()  # and not the embeddings


def test_a_failing_engine_names_its_log(tmp_path, pico_model_dir, trained_reward_dir):
    with pytest.raises(OpenRLHFError, match="exited with status 1") as failure:
        run_openrlhf(pico_model_dir, PROMPTS, tmp_path, ppo_settings(probe_prompts=0), trained_reward_dir,
                     fake_engine("--fake.exit", "1"))
    assert str(tmp_path / "openrlhf.log") in str(failure.value)
    assert "fake engine failure" in str(failure.value)  # the log's tail, so the cause is in the error itself
    assert not (tmp_path / "checkpoint").exists()


def test_an_engine_that_saves_nothing_names_its_log(tmp_path, pico_model_dir, trained_reward_dir):
    with pytest.raises(OpenRLHFError, match="saved no model") as failure:
        run_openrlhf(pico_model_dir, PROMPTS, tmp_path, ppo_settings(probe_prompts=0), trained_reward_dir,
                     fake_engine("--fake.no_save"))
    assert str(tmp_path / "openrlhf.log") in str(failure.value)


def test_a_missing_launcher_is_a_clear_error(tmp_path, pico_model_dir, trained_reward_dir):
    engine = OpenRLHFEngine(launcher=[str(tmp_path / "no-such-openrlhf")], gpus_per_node=1)
    with pytest.raises(OpenRLHFError, match="could not start OpenRLHF's launcher"):
        run_openrlhf(pico_model_dir, PROMPTS, tmp_path, ppo_settings(probe_prompts=0), trained_reward_dir, engine)


def stopping_model(tokenizer_dir: Path, out_dir: Path) -> Path:
    """A pico model whose greedy answer is the end-of-turn token at once (runaway rate 0): dimension 0 of
    every input embedding is large, the final norm keeps only that dimension, and the untied output layer
    reads it only into the end-of-turn row."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, tie_word_embeddings=False,
                         bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                         pad_token_id=tokenizer.pad_token_id)
    model = LlamaForCausalLM(config)
    with torch.no_grad():
        model.model.embed_tokens.weight[:, 0] = 50.0
        model.model.norm.weight.zero_()
        model.model.norm.weight[0] = 1.0
        model.lm_head.weight.zero_()
        model.lm_head.weight[tokenizer.eos_token_id, 0] = 1.0
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    return out_dir


def test_a_checkpoint_that_runs_away_fails_the_stage(tmp_path, smol_tokenizer_dir, trained_reward_dir):
    start = stopping_model(smol_tokenizer_dir, tmp_path / "start")
    with pytest.raises(StopTokenGuardError, match="regressed from 0.00 to 1.00"):
        run_openrlhf(start, PROMPTS, tmp_path / "ppo", ppo_settings(), trained_reward_dir,
                     fake_engine("--fake.degrade"), probe_messages=PROBES)
    metrics = json.loads((tmp_path / "ppo" / "metrics.json").read_text())
    assert (metrics["guard"]["runaway_before"], metrics["guard"]["runaway_after"]) == (0.0, 1.0)
    assert (tmp_path / "ppo" / "checkpoint" / "config.json").is_file()  # kept, so the failure can be inspected


def test_rollouts_that_cannot_stop_on_end_of_turn_are_refused_before_launch(tmp_path, pico_model_dir,
                                                                           trained_reward_dir):
    import shutil

    from transformers import AutoTokenizer, GenerationConfig

    start = tmp_path / "start"
    shutil.copytree(pico_model_dir, start)
    tokenizer = AutoTokenizer.from_pretrained(str(start))
    tokenizer.eos_token = "<|endoftext|>"  # EOS and the generation config no longer name <|im_end|>
    tokenizer.save_pretrained(str(start))
    GenerationConfig(eos_token_id=tokenizer.eos_token_id).save_pretrained(str(start))
    with pytest.raises(StopTokenGuardError, match="not among the EOS ids"):
        run_openrlhf(start, PROMPTS, tmp_path / "ppo", ppo_settings(), trained_reward_dir, fake_engine(),
                     probe_messages=PROBES)
    assert not (tmp_path / "ppo" / "openrlhf.log").exists()  # nothing was launched


def test_the_rm_ppo_stage_hands_ppo_to_openrlhf(tmp_path, pico_model_dir):
    from offline_arena.config import Stage
    from offline_arena.prompts.sources import Prompt
    from offline_arena.pipeline.stage_runners import RUNNERS, TrainJob
    from offline_arena.train.common import TrainSettings

    stage = Stage(kind="rm_ppo", ppo={"engine": "openrlhf", "target_kl": None, "steps": 2, "rollouts_per_step": 4,
                                      "openrlhf": {"launcher": [sys.executable, str(FAKE)], "gpus_per_node": 1},
                                      "extra": {"minibatch_size": 2}})
    prompts = [Prompt(f"p{i}", tuple(m)) for i, m in enumerate(PROMPTS)]
    rows = [{"prompt": m, "chosen": [{"role": "assistant", "content": "Blue."}],
             "rejected": [{"role": "assistant", "content": "No idea."}]} for m in PROMPTS]
    settings = TrainSettings(max_steps=1, batch_size=2, max_length=64, probe_prompts=2, probe_max_new_tokens=8)
    checkpoint, metrics = RUNNERS["rm_ppo"].train(TrainJob(stage, str(pico_model_dir), rows, prompts, PROBES,
                                                         StageFolder(tmp_path, 1, "rm_ppo"), settings, seed=0))
    assert checkpoint == tmp_path / "ppo" / "checkpoint" and (checkpoint / "config.json").is_file()
    assert metrics["engine"] == "openrlhf" and metrics["steps"] == 2 and "reward_model" in metrics
    seen = json.loads((tmp_path / "ppo" / "openrlhf_ckpt" / "fake_engine_args.json").read_text())
    assert seen["reward.model_name_or_path"] == str((tmp_path / "reward_model" / "checkpoint").resolve())


def test_the_stage_refuses_settings_openrlhf_cannot_run_before_training_the_reward_model(tmp_path, pico_model_dir):
    from offline_arena.config import Stage
    from offline_arena.pipeline.stage_runners import RUNNERS, TrainJob
    from offline_arena.train.common import TrainSettings

    # 8 GPUs, 4 rollouts per optimizer step (the recipe default): DeepSpeed could not split them.
    stage = Stage(kind="rm_ppo", ppo={"engine": "openrlhf", "target_kl": None})
    with pytest.raises(OpenRLHFError, match="multiple of 8 GPUs"):
        RUNNERS["rm_ppo"].train(TrainJob(stage, str(pico_model_dir), [], [], PROBES, StageFolder(tmp_path, 1, "rm_ppo"),
                                       TrainSettings(), seed=0))
    assert not (tmp_path / "reward_model").exists()
