"""Trainers keep float32 master weights whatever the compute dtype (a bf16 optimiser step rounds small
updates away), and LoRA changes only what its adapters can express."""

import torch

from offline_arena.train.common import load_policy

PROMPTS = [[{"role": "user", "content": f"Write about the letter {c}."}] for c in "abcd"]


def test_master_weights_are_float32_when_compute_is_bf16(pico_model_dir, monkeypatch, tmp_path):
    monkeypatch.setenv("OFFLINE_ARENA_DTYPE", "bfloat16")  # as on a GPU or a CPU with bf16 units
    trained, _ = load_policy(pico_model_dir)
    assert {p.dtype for p in trained.parameters()} == {torch.float32}
    frozen, tokenizer = load_policy(pico_model_dir, for_training=False)  # a teacher: stored as it computes
    assert {p.dtype for p in frozen.parameters()} == {torch.bfloat16}
    base, _ = load_policy(pico_model_dir, lora=True)  # the frozen base under float32 adapters: as stored,
    assert {p.dtype for p in base.parameters()} == {torch.float32}  # since it is merged and saved
    frozen.save_pretrained(tmp_path / "bf16")
    tokenizer.save_pretrained(tmp_path / "bf16")
    stored_bf16, _ = load_policy(tmp_path / "bf16", lora=True)  # a bf16 checkpoint (most 7B ones) stays bf16
    assert {p.dtype for p in stored_bf16.parameters()} == {torch.bfloat16}

    from offline_arena.train.common import TrainSettings, lora_config
    from peft import get_peft_model

    adapted = get_peft_model(base, lora_config(TrainSettings(lora=True, lora_r=2)))
    assert {p.dtype for p in adapted.parameters() if p.requires_grad} == {torch.float32}


def test_ppo_with_lora_changes_only_what_its_adapters_express(pico_model_dir, tmp_path):
    from safetensors.torch import load_file

    from offline_arena.train.ppo import PPOSettings, train_ppo

    rank = 2
    settings = PPOSettings(steps=2, rollouts_per_step=4, minibatch_size=2, learning_rate=1e-2, max_new_tokens=8,
                           temperature=1.0, probe_prompts=0, lora=True, lora_r=rank, adaptive_kl=False)
    result = train_ppo(pico_model_dir, PROMPTS, tmp_path, settings,
                       reward_fn=lambda prompt, text: text.lower().count("a") / max(len(text), 1))
    assert result.metrics["curve"][0]["mean_kl"] == 0.0  # the reference is the policy with its adapters off
    before, after = load_file(str(pico_model_dir / "model.safetensors")), load_file(str(result.checkpoint / "model.safetensors"))
    changed = {name for name in before if not torch.equal(before[name], after[name].to(before[name].dtype))}
    assert changed and all(name.endswith("proj.weight") for name in changed)  # linear layers only: no norm, no embedding
    for name in changed:  # merged adapters: every change is a product B @ A of rank <= r
        delta = after[name].double() - before[name].double()
        # float32 rounding of the merge leaves singular values ~1e-7 of the largest: not a direction learnt
        assert torch.linalg.matrix_rank(delta, rtol=1e-5).item() <= rank, name


def test_a_trainers_float32_policy_decodes_in_bf16_autocast_where_bf16_is_fast(pico_model_dir, monkeypatch):
    """Guard probes run on the trainer's policy, whose master weights are float32: where the machine
    computes in bf16 they decode under bf16 autocast (as the policy trains), elsewhere in plain float32."""
    from offline_arena.models import GenerationRequest, SamplingParams
    from offline_arena.models.hf import TransformersGenerator

    policy, tokenizer = load_policy(pico_model_dir)
    request = [GenerationRequest.of(PROMPTS[0], params=SamplingParams(max_new_tokens=4, temperature=0.0))]
    monkeypatch.setenv("OFFLINE_ARENA_DTYPE", "bfloat16")
    probe = TransformersGenerator.from_model(policy, tokenizer, fingerprint="probe")
    assert probe.autocast == "bfloat16"
    seen = []
    hook = policy.lm_head.register_forward_hook(lambda module, args, out: seen.append(out.dtype))
    assert probe.generate(request)[0].num_tokens == 4
    monkeypatch.setenv("OFFLINE_ARENA_DTYPE", "float32")
    plain = TransformersGenerator.from_model(policy, tokenizer, fingerprint="probe")
    assert plain.autocast is None
    plain.generate(request)
    hook.remove()
    assert seen[0] == torch.bfloat16 and seen[-1] == torch.float32  # what each decode computed in
    assert {p.dtype for p in policy.parameters()} == {torch.float32}  # the weights were never converted
