"""Model merging through mergekit on pico models with the real SmolLM2 tokenizer: two "fine-tunes" (random
seeds) and a base. Results checked against the definitions: linear is the weighted mean (weights 1/0 give
the first model bit for bit), SLERP's ends are the two models and its midpoint the spherical interpolation
of each tensor, TIES on tiny hand-made tensors; every method's output finite and complete, the merged
folder loads and generates, and the clear errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from offline_arena.cli import main
from offline_arena.merge import MergeError, merge_checkpoints


@pytest.fixture(scope="module")
def trio(smol_tokenizer_dir, tmp_path_factory):
    from conftest import build_pico_model

    root = tmp_path_factory.mktemp("merge_inputs")
    return {name: build_pico_model(smol_tokenizer_dir, root / name, seed=seed)
            for name, seed in (("a", 1), ("b", 2), ("base", 3))}


def tensors(folder: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    out = {}
    for file in sorted(Path(folder).glob("*.safetensors")):
        out.update(load_file(str(file)))
    return out


def assert_complete_and_finite(merged: Path, reference: Path) -> dict:
    got, want = tensors(merged), tensors(reference)
    assert got.keys() == want.keys()
    for name, value in got.items():
        assert value.shape == want[name].shape and torch.isfinite(value).all(), name
    return got


def differs(x: dict, y: dict) -> bool:
    return any(not torch.equal(x[k], y[k]) for k in x)


def test_linear_with_all_weight_on_a_is_a(trio, tmp_path):
    out = merge_checkpoints([trio["a"], trio["b"]], "linear", tmp_path / "m", weights=[1.0, 0.0])
    merged = assert_complete_and_finite(out, trio["a"])
    a = tensors(trio["a"])
    assert all(torch.equal(merged[k], a[k]) for k in a)


def assert_all_close(got: dict, want: dict):
    assert got.keys() == want.keys()
    for name in want:
        torch.testing.assert_close(got[name], want[name], rtol=1e-6, atol=1e-7, msg=lambda m: f"{name}: {m}")


@pytest.mark.parametrize("weights, mix", [((0.5, 0.5), (0.5, 0.5)), ((3.0, 1.0), (0.75, 0.25))])
def test_linear_is_the_weighted_mean_normalised_by_the_weights_sum(trio, tmp_path, weights, mix):
    out = merge_checkpoints([trio["a"], trio["b"]], "linear", tmp_path / "m", weights=list(weights))
    a, b = tensors(trio["a"]), tensors(trio["b"])
    assert_all_close(tensors(out), {k: mix[0] * a[k] + mix[1] * b[k] for k in a})


@pytest.mark.parametrize("t, end", [(0.0, "a"), (1.0, "b")])
def test_slerp_ends_are_the_two_models(trio, tmp_path, t, end):
    """Our wrapper makes the first model mergekit's SLERP base: t=0 must give it back, t=1 the second."""
    out = merge_checkpoints([trio["a"], trio["b"]], "slerp", tmp_path / "m", t=t)
    assert_all_close(tensors(out), tensors(trio[end]))


def slerp(t: float, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Shoemake's SLERP of two tensors, each taken as one flat vector (as mergekit 0.1.5's `slerp` does: its
    leading axis is the batch of tensors it merges at once, not a weight's rows), falling back to linear
    interpolation for (anti)parallel ones (|cos| > 0.9995, mergekit's threshold), e.g. the norm weights,
    all ones in both models."""
    x, y = a.double().flatten(), b.double().flatten()
    cos = (x / x.norm()).dot(y / y.norm()).clamp(-1, 1)
    if cos.abs() > 0.9995:
        return ((1 - t) * x + t * y).reshape(a.shape).to(a.dtype)
    theta = torch.acos(cos)
    return ((torch.sin((1 - t) * theta) * x + torch.sin(t * theta) * y) / torch.sin(theta)).reshape(a.shape).to(a.dtype)


def test_slerp_midpoint_is_spherical_interpolation(trio, tmp_path):
    out = merge_checkpoints([trio["a"], trio["b"]], "slerp", tmp_path / "m", t=0.3)
    merged, a, b = assert_complete_and_finite(out, trio["a"]), tensors(trio["a"]), tensors(trio["b"])
    # Random weights are nearly orthogonal, so SLERP is far from the linear mix (checked, lest the test pass
    # for linear interpolation too).
    name = "model.layers.0.self_attn.q_proj.weight"
    assert not torch.allclose(merged[name], 0.7 * a[name] + 0.3 * b[name], atol=1e-4)
    for name in a:
        torch.testing.assert_close(merged[name], slerp(0.3, a[name], b[name]), rtol=1e-5, atol=1e-6,
                                   msg=lambda m: f"{name}: {m}")
    recorded = json.loads((out / "merge.json").read_text())
    assert recorded["method"] == "slerp" and recorded["t"] == 0.3


def tiny_model(tokenizer_dir: Path, out: Path, final_norm: list[float] | None = None, like: Path | None = None) -> Path:
    """A 1-layer Llama with hidden size 8 (every tensor tiny), optionally a copy of `like` whose final-norm
    weight is replaced by `final_norm`: models that differ from a base in that one 8-entry tensor only."""
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    if like is not None:
        model = LlamaForCausalLM.from_pretrained(str(like))
    else:
        torch.manual_seed(0)
        model = LlamaForCausalLM(LlamaConfig(vocab_size=16, hidden_size=8, intermediate_size=16, num_hidden_layers=1,
                                             num_attention_heads=2, num_key_value_heads=1, tie_word_embeddings=True))
    if final_norm is not None:
        with torch.no_grad():
            model.model.norm.weight.copy_(torch.tensor(final_norm))
    model.save_pretrained(out)
    AutoTokenizer.from_pretrained(str(tokenizer_dir)).save_pretrained(out)  # the merge copies the first's tokenizer
    return out


def test_ties_by_hand(smol_tokenizer_dir, tmp_path):
    """TIES as mergekit 0.1.5 defines it (merge_methods/generalized_task_arithmetic.py, sparsify.magnitude),
    with our defaults (equal weights 1/2, density 0.5): per model, keep the k = int(density * numel) task-vector
    entries of largest magnitude, no rescaling; weight them; elect each entry's sign from the *sum* of the
    weighted trimmed entries (>= 0 is +); average the entries that carry the elected sign, dividing by the sum
    of their weights (trimmed zeros carry no sign and are left out); add to the base."""
    base = tiny_model(smol_tokenizer_dir, tmp_path / "base", final_norm=[1.0] * 8)
    delta_a = [0.8, -0.6, 0.5, 0.1, -0.05, 0.2, -0.3, 0.7]   # top 4 by |.|: entries 0, 7, 1, 2
    delta_b = [0.4, 0.9, -0.7, 0.2, 0.6, -0.1, 0.3, -0.05]   # top 4 by |.|: entries 1, 2, 4, 0
    # trimmed a = [0.8, -0.6,  0.5, 0, 0,   0, 0, 0.7]
    # trimmed b = [0.4,  0.9, -0.7, 0, 0.6, 0, 0, 0  ]
    # entry 0: both +                                     -> (0.5·0.8 + 0.5·0.4) / (0.5 + 0.5) = 0.6
    # entry 1: 0.5·(-0.6) + 0.5·0.9 = +0.15, elect +      -> b alone: 0.9
    # entry 2: 0.5·0.5 + 0.5·(-0.7) = -0.1, elect -       -> b alone: -0.7 (a count vote, tied 1:1, would elect +)
    # entry 3, 5, 6: trimmed in both                       -> 0 (untrimmed, their mean would be 0.15, 0.05, 0)
    # entry 4: only b kept                                 -> 0.6 (not halved: a disjoint mean)
    # entry 7: only a kept                                 -> 0.7
    expected_delta = [0.6, 0.9, -0.7, 0.0, 0.6, 0.0, 0.0, 0.7]
    a = tiny_model(smol_tokenizer_dir, tmp_path / "a", [1 + d for d in delta_a], like=base)
    b = tiny_model(smol_tokenizer_dir, tmp_path / "b", [1 + d for d in delta_b], like=base)
    out = merge_checkpoints([a, b], "ties", tmp_path / "m", base_model=base)
    merged, base_tensors = tensors(out), tensors(base)
    torch.testing.assert_close(merged["model.norm.weight"], torch.tensor([1 + d for d in expected_delta]),
                               rtol=0, atol=1e-6)
    # Every other tensor has a zero task vector in both models: the merge leaves the base there.
    assert_all_close({k: v for k, v in merged.items() if k != "model.norm.weight"},
                     {k: v for k, v in base_tensors.items() if k != "model.norm.weight"})


@pytest.mark.parametrize("method", ["ties", "dare_ties", "dare_linear"])
def test_task_vector_methods_are_finite_and_new(trio, tmp_path, method):
    out = merge_checkpoints([trio["a"], trio["b"]], method, tmp_path / "m", base_model=trio["base"], density=0.5)
    merged = assert_complete_and_finite(out, trio["a"])
    for name in ("a", "b", "base"):
        assert differs(merged, tensors(trio[name])), f"{method} merge equals {name}"


def test_merged_checkpoint_loads_and_generates_with_the_first_models_template(trio, tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    out = merge_checkpoints([trio["a"], trio["b"]], "slerp", tmp_path / "m", t=0.3)
    model, info = AutoModelForCausalLM.from_pretrained(str(out), output_loading_info=True)
    assert not info["missing_keys"]
    tokenizer = AutoTokenizer.from_pretrained(str(out))
    assert tokenizer.chat_template == AutoTokenizer.from_pretrained(str(trio["a"])).chat_template
    inputs = tokenizer.apply_chat_template([{"role": "user", "content": "Hi"}], add_generation_prompt=True,
                                           return_tensors="pt", return_dict=True)
    generated = model.generate(**inputs, max_new_tokens=3, do_sample=False, pad_token_id=tokenizer.pad_token_id)
    assert generated.shape[1] > inputs["input_ids"].shape[1]


def odd_shaped_model(trio, out: Path) -> Path:
    """Model A's architecture with a wider MLP: same tensor names, different shapes."""
    from transformers import AutoConfig, AutoModelForCausalLM

    config = AutoConfig.from_pretrained(str(trio["a"]))
    config.intermediate_size = 96
    AutoModelForCausalLM.from_config(config).save_pretrained(out)
    return out


@pytest.mark.parametrize("args,kwargs,message", [
    (("a", "b"), {"method": "soup"}, r"unknown merge method 'soup'; known: linear, slerp"),
    (("a", "b", "base"), {"method": "slerp"}, r"slerp merges exactly 2 models, got 3"),
    (("a", "b"), {"method": "ties"}, r"ties merges task vectors .* needs a base model"),
    (("a", "b"), {"method": "dare_ties"}, r"dare_ties .* needs a base model"),
    (("a", "b"), {"method": "linear", "weights": [1.0]}, r"1 weights for 2 models"),
    (("a", "b"), {"method": "linear", "t": 0.5}, r"linear does not use t"),
    (("a", "b"), {"method": "slerp", "t": 1.5}, r"t must lie in \[0, 1\]"),
    (("a", "b"), {"method": "ties", "base_model": "base", "density": 0.0}, r"density must lie in \(0, 1\]"),
    (("a", "Qwen/Qwen2.5-7B"), {"method": "linear"}, r"Qwen/Qwen2.5-7B: not a local model folder.*never downloads"),
])
def test_bad_arguments_are_refused(trio, tmp_path, args, kwargs, message):
    models = [trio.get(name, name) for name in args]
    if "base_model" in kwargs:
        kwargs["base_model"] = trio[kwargs["base_model"]]
    method = kwargs.pop("method")
    with pytest.raises(MergeError, match=message):
        merge_checkpoints(models, method, tmp_path / "m", **kwargs)
    assert not (tmp_path / "m").exists()


def test_mismatched_shapes_name_the_tensor(trio, tmp_path):
    odd = odd_shaped_model(trio, tmp_path / "odd")
    with pytest.raises(MergeError, match=r"tensor 'model.layers.0.mlp.down_proj.weight' has shape \[64, 96\]"):
        merge_checkpoints([trio["a"], odd], "linear", tmp_path / "m")


def test_an_existing_output_folder_is_kept(trio, tmp_path):
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "precious.txt").write_text("keep me")
    with pytest.raises(MergeError, match="exists and is not empty"):
        merge_checkpoints([trio["a"], trio["b"]], "linear", tmp_path / "m")
    assert (tmp_path / "m" / "precious.txt").read_text() == "keep me"


def test_cli_merge(trio, tmp_path, capsys):
    out = tmp_path / "cli"
    assert main(["merge", "--method", "linear", "--models", str(trio["a"]), str(trio["b"]),
                 "--weights", "1", "0", "--out", str(out)]) == 0
    assert f"merged 2 models with linear into {out}" in capsys.readouterr().out
    assert not differs(tensors(out), tensors(trio["a"]))
    assert main(["merge", "--method", "ties", "--models", str(trio["a"]), str(trio["b"]),
                 "--out", str(tmp_path / "x")]) == 2
    assert "arena merge: error: ties merges task vectors" in capsys.readouterr().err
