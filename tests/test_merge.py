"""Model merging through mergekit on pico models with the real SmolLM2 tokenizer: two "fine-tunes" (random
seeds) and a base. Hand-checkable ends (linear with weights 1/0 is the first model, bit for bit), every
method's output finite and complete, the merged folder loads and generates, and the clear errors."""

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


def test_slerp_midpoint_differs_from_both_ends(trio, tmp_path):
    out = merge_checkpoints([trio["a"], trio["b"]], "slerp", tmp_path / "m", t=0.5)
    merged = assert_complete_and_finite(out, trio["a"])
    assert differs(merged, tensors(trio["a"])) and differs(merged, tensors(trio["b"]))
    recorded = json.loads((out / "merge.json").read_text())
    assert recorded["method"] == "slerp" and recorded["t"] == 0.5


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
