"""Model merging through mergekit's Python API (`MergeConfiguration`, `run_merge`, `MergeOptions`).

We do no merge arithmetic here: mergekit's registry does it. This module picks the method by name, checks
what mergekit would otherwise report late or obscurely (model count, a base model, architectures and tensor
shapes, named), runs the merge on CPU from local folders only, copies the first model's tokenizer, chat
template and generation config next to the merged weights, and refuses a result with a missing or
non-finite tensor. The output folder loads with `AutoModelForCausalLM.from_pretrained`, so a merge can
battle in the arena or become the next target.

Offline by construction: mergekit downloads a model whose path does not exist on disk (it takes it for a
Hub id), so every input is resolved to an existing folder before mergekit sees it.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence


@dataclass(frozen=True)
class MergeMethod:
    mergekit_name: str        # the name in mergekit's merge-method registry
    needs_base: bool          # task-vector methods merge differences from a shared base model
    model_count: int | None   # exactly this many models (None: one or more)
    parameters: frozenset     # which of "weights", "t", "density" the method reads
    summary: str


MERGE_METHODS = {
    "linear": MergeMethod(
        "linear", False, None, frozenset({"weights"}),
        "weighted average of the weights, normalised by their sum (model soups, arXiv 2203.05482)"),
    "slerp": MergeMethod(
        "slerp", False, 2, frozenset({"t"}),
        "spherical interpolation between two models; t=0 gives the first, t=1 the second"),
    "task_arithmetic": MergeMethod(
        "task_arithmetic", True, None, frozenset({"weights"}),
        "base + weighted sum of task vectors (model - base) (arXiv 2212.04089)"),
    "ties": MergeMethod(
        "ties", True, None, frozenset({"weights", "density"}),
        "TIES: keep the top-density share of each task vector by magnitude, elect a sign per parameter, "
        "average the agreeing entries (arXiv 2306.01708)"),
    "dare_ties": MergeMethod(
        "dare_ties", True, None, frozenset({"weights", "density"}),
        "DARE: drop task-vector entries at random (keep a density share, rescaled by 1/density), then TIES "
        "sign election (arXiv 2311.03099)"),
    "dare_linear": MergeMethod(
        "dare_linear", True, None, frozenset({"weights", "density"}),
        "DARE drop-and-rescale, then a weighted sum of the task vectors, no sign election (arXiv 2311.03099)"),
}

DEFAULT_T = 0.5
# mergekit's own default density is 1.0, which makes TIES/DARE trim nothing; half is the papers' usual setting.
DEFAULT_DENSITY = 0.5


class MergeError(ValueError):
    pass


def merge_checkpoints(models: Sequence[str | Path], method: str, out_dir: str | Path, *,
                      weights: Sequence[float] | None = None, t: float | None = None,
                      density: float | Sequence[float] | None = None, base_model: str | Path | None = None,
                      seed: int = 0, overwrite: bool = False) -> Path:
    """Merge `models` (folders or builtin: specs) with `method` into `out_dir`; return `out_dir`.

    `weights` (one per model; default equal) apply to linear and the task-vector methods, `t` (default 0.5)
    to slerp, `density` (default 0.5; one value or one per model) to ties/dare_*; `base_model` is required by
    the task-vector methods. `seed` makes DARE's random drops reproducible."""
    spec = MERGE_METHODS.get(method)
    if spec is None:
        raise MergeError(f"unknown merge method {method!r}; known: {', '.join(MERGE_METHODS)}")
    models = [_local_folder(m) for m in models]
    _check_arguments(method, spec, models, weights, t, density, base_model)
    base = _local_folder(base_model) if base_model is not None else None
    check_compatible([*models, *([base] if base else [])])

    out_dir = Path(out_dir)
    if out_dir.exists() and any(out_dir.iterdir()):
        if not overwrite:
            raise MergeError(f"{out_dir} exists and is not empty; pick another output folder")
        shutil.rmtree(out_dir)
    # Merge into a side folder and move it in place last, so a crash never leaves a folder that looks merged.
    staging = out_dir.with_name(out_dir.name + ".merging")
    shutil.rmtree(staging, ignore_errors=True)
    config = _mergekit_config(spec, models, base, weights, t, density)
    _run_mergekit(config, staging, seed, method)
    _copy_tokenizer_and_generation_config(models[0], staging)
    _check_merged(models[0], staging, method)
    (staging / "merge.json").write_text(json.dumps(
        {"method": method, "models": [str(m) for m in models], "base_model": str(base) if base else None,
         "weights": list(weights) if weights is not None else None, "t": t,
         "density": density if not isinstance(density, Sequence) else list(density), "seed": seed}, indent=2))
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    os.replace(staging, out_dir)
    return out_dir


def _local_folder(model: str | Path) -> str:
    """An absolute folder for a model spec. Hub ids are refused: mergekit would download them."""
    from .models import parse_model_spec, resolve_local_path

    spec = parse_model_spec(str(model))
    if spec.wrapped or spec.kind not in ("builtin", "hf"):
        raise MergeError(f"{model}: only local checkpoints (folders or builtin: models) can be merged")
    path = Path(resolve_local_path(spec))
    if not (path / "config.json").is_file():
        raise MergeError(f"{model}: not a local model folder (no config.json); merging never downloads, so "
                         "download a Hub model first (e.g. `hf download <id> --local-dir <folder>`)")
    return str(path.resolve())


def _check_arguments(method, spec: MergeMethod, models, weights, t, density, base_model) -> None:
    if not models:
        raise MergeError("nothing to merge: pass at least one model")
    if spec.model_count is not None and len(models) != spec.model_count:
        raise MergeError(f"{method} merges exactly {spec.model_count} models, got {len(models)}")
    if spec.needs_base and base_model is None:
        raise MergeError(f"{method} merges task vectors (model - base) and needs a base model (--base)")
    if not spec.needs_base and base_model is not None:
        raise MergeError(f"{method} takes no base model; the task-vector methods "
                         f"({', '.join(n for n, s in MERGE_METHODS.items() if s.needs_base)}) do")
    given = {"weights": weights, "t": t, "density": density}
    for name, value in given.items():
        if value is not None and name not in spec.parameters:
            raise MergeError(f"{method} does not use {name}; it takes {', '.join(sorted(spec.parameters)) or 'none'}")
    if weights is not None and len(weights) != len(models):
        raise MergeError(f"{len(weights)} weights for {len(models)} models: give one weight per model")
    if weights is not None and method == "linear" and abs(sum(weights)) < 1e-12:
        raise MergeError("linear weights sum to zero; the average is undefined")
    if t is not None and not 0.0 <= t <= 1.0:
        raise MergeError(f"t must lie in [0, 1], got {t}")
    densities = [density] if isinstance(density, (int, float)) else list(density or [])
    if density is not None and not isinstance(density, (int, float)) and len(densities) != len(models):
        raise MergeError(f"{len(densities)} densities for {len(models)} models: give one, or one per model")
    if any(not 0.0 < d <= 1.0 for d in densities):
        raise MergeError(f"density must lie in (0, 1], got {density}")


def _tensor_shapes(folder: str) -> dict[str, tuple] | None:
    """Tensor name -> shape from the safetensors headers (no weights are read); None without safetensors."""
    from safetensors import safe_open

    files = sorted(Path(folder).glob("*.safetensors"))
    if not files:
        return None
    shapes = {}
    for file in files:
        with safe_open(str(file), framework="pt") as handle:
            for name in handle.keys():
                shapes[name] = tuple(handle.get_slice(name).get_shape())
    return shapes


def check_compatible(folders: Sequence[str]) -> None:
    """Every model has the first one's architecture and exactly its tensors and shapes; the error names the
    first tensor that differs."""
    first = folders[0]
    first_config = json.loads((Path(first) / "config.json").read_text())
    first_shapes = _tensor_shapes(first)
    for other in folders[1:]:
        config = json.loads((Path(other) / "config.json").read_text())
        for key in ("architectures", "model_type"):
            if config.get(key) != first_config.get(key):
                raise MergeError(f"cannot merge {other} into {first}: {key} {config.get(key)} != {first_config.get(key)}")
        shapes = _tensor_shapes(other)
        if first_shapes is None or shapes is None:
            continue  # not safetensors: mergekit checks what it loads
        for name in sorted(first_shapes.keys() | shapes.keys()):
            if name not in shapes or name not in first_shapes:
                holder, lacking = (first, other) if name not in shapes else (other, first)
                raise MergeError(f"cannot merge: tensor {name!r} is in {holder} but not in {lacking}")
            if shapes[name] != first_shapes[name]:
                raise MergeError(f"cannot merge: tensor {name!r} has shape {list(shapes[name])} in {other} "
                                 f"but {list(first_shapes[name])} in {first}")


def _mergekit_config(spec: MergeMethod, models, base, weights, t, density):
    from mergekit.config import MergeConfiguration

    n = len(models)
    weights = list(weights) if weights is not None else [1.0 / n] * n
    densities = [density] * n if isinstance(density, (int, float)) else list(density or [DEFAULT_DENSITY] * n)
    entries = []
    for i, model in enumerate(models):
        parameters = {}
        if "weights" in spec.parameters:
            parameters["weight"] = float(weights[i])
        if "density" in spec.parameters:
            parameters["density"] = float(densities[i])
        entries.append({"model": model, **({"parameters": parameters} if parameters else {})})
    config = {"merge_method": spec.mergekit_name, "models": entries,
              # Merge arithmetic in float32 (exact for float32 inputs); the output keeps the first model's dtype.
              "dtype": "float32", "out_dtype": _model_dtype(models[0])}
    if spec.mergekit_name == "slerp":
        # mergekit's SLERP interpolates from its base (t=0) towards the other model (t=1).
        config["base_model"] = models[0]
        config["parameters"] = {"t": float(DEFAULT_T if t is None else t)}
    elif base is not None:
        config["base_model"] = base
    return MergeConfiguration.model_validate(config)


def _model_dtype(folder: str) -> str:
    config = json.loads((Path(folder) / "config.json").read_text())
    dtype = config.get("dtype") or config.get("torch_dtype") or "float32"
    return dtype if dtype in ("float32", "bfloat16", "float16") else "float32"


def _run_mergekit(config, out_dir: Path, seed: int, method: str) -> None:
    from mergekit.merge import run_merge
    from mergekit.options import MergeOptions

    # copy_tokenizer=False: we copy the first model's tokenizer ourselves; mergekit copies the base model's,
    # which for task-vector merges may predate the chat template the merged models were trained with.
    options = MergeOptions(device="cpu", copy_tokenizer=False, random_seed=seed, quiet=True,
                           lazy_unpickle=False, trust_remote_code=False)
    try:
        run_merge(config, str(out_dir), options)
    except Exception as error:  # mergekit raises bare RuntimeError/AssertionError from deep inside
        shutil.rmtree(out_dir, ignore_errors=True)
        raise MergeError(f"mergekit's {method} merge failed: {type(error).__name__}: {error}") from error


def _copy_tokenizer_and_generation_config(source: str, out_dir: Path) -> None:
    from transformers import AutoTokenizer

    AutoTokenizer.from_pretrained(source).save_pretrained(out_dir)  # includes the chat template
    generation_config = Path(source) / "generation_config.json"
    if generation_config.is_file():  # the stop ids and pad id generation relies on
        shutil.copy(generation_config, out_dir / "generation_config.json")


def _check_merged(reference: str, out_dir: Path, method: str) -> None:
    """Every tensor of the first input is in the output, and every value is finite."""
    import torch
    from safetensors import safe_open

    expected = _tensor_shapes(reference)
    found = _tensor_shapes(str(out_dir)) or {}
    if expected is not None:
        missing = sorted(expected.keys() - found.keys())
        if missing:
            raise MergeError(f"{method} merge lost {len(missing)} tensors, e.g. {missing[:3]}")
    for file in sorted(out_dir.glob("*.safetensors")):
        with safe_open(str(file), framework="pt") as handle:
            for name in handle.keys():
                if not torch.isfinite(handle.get_tensor(name)).all():
                    raise MergeError(f"{method} merge produced non-finite values in tensor {name!r}")
