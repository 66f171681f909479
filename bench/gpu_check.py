"""The GPU check of issue 14, one script, under 10 minutes on one modern GPU: run it on a GPU machine with
`pip install -e '.[vllm]'` done (see README "Running at scale" for versions that install together).

1. vLLM's offline engine against our transformers decoder on the same GPU, on the embedded model
   (materialised to safetensors): useful tokens/s of each, greedy answers that agree, and held-out
   accuracy of both on the quickstart's 96 held-out prompts (within noise of each other, or a backend
   says something else).
2. One quickstart round (`arena run quickstart`) with bf16 training on the GPU: wall time and the run's
   last line (final vs base).
3. With more than one GPU: the same round with SFT and DPO launched on two processes
   (`train.launch.processes: 2`), if this checkout has the launched trainers.
4. With ray installed too: the same requests through `generation.ray` with a `vllm:` target (one actor,
   one GPU, its own engine): its greedy answers against the in-process vLLM engine's.

    python bench/gpu_check.py --out gpu-check.json [--skip-run]

It prints each part as it finishes and writes everything to --out. Not run yet: the GPU machines lent to
this project's sessions cannot fetch packages and carry at most 64 MiB, which neither vLLM (~400 MB of
wheels) nor the embedded model (~270 MB in bf16) fits; it needs a GPU machine of a user's own.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def backends_side_by_side(report: dict) -> None:
    import torch

    from offline_arena.cli import resolve_recipe_path
    from offline_arena.config import load_recipe
    from offline_arena.evals.heldout import evaluate_generator, paired_vs
    from offline_arena.models import GenerationRequest, SamplingParams
    from offline_arena.models.builtin import materialise
    from offline_arena.models.hf import TransformersGenerator
    from offline_arena.models.vllm_backend import VLLMGenerator
    from offline_arena.shards import heldout_prompts
    from offline_arena.prompts import load_prompts

    folder = str(materialise("smollm2-135m-instruct"))
    prompts = load_prompts("builtin:verifiable:round1/sft:256")
    params = SamplingParams(max_new_tokens=64, temperature=0.0)
    requests = [GenerationRequest.of(p.messages, params=params) for p in prompts]
    recipe = load_recipe(resolve_recipe_path("quickstart"))
    heldout = heldout_prompts(recipe)
    answers, rates, accuracy = {}, {}, {}
    for name, build in (("transformers", lambda: TransformersGenerator(folder, progress=False)),
                        ("vllm", lambda: VLLMGenerator(folder, gpu_memory_utilization=0.3))):
        generator = build()
        generator.generate(requests[:4])  # warm-up: CUDA graphs, kernels
        started = time.perf_counter()
        answers[name] = generator.generate(requests)
        seconds = time.perf_counter() - started
        rates[name] = sum(a.num_tokens for a in answers[name]) / seconds
        accuracy[name], _ = evaluate_generator(generator, heldout, params, recipe.seed, 1000)
        del generator
        torch.cuda.empty_cache()
    same = sum(a.text == b.text for a, b in zip(answers["transformers"], answers["vllm"]))
    if vllm_on_ray_available():
        report["vllm_on_ray"] = vllm_on_ray(folder, requests, answers["vllm"])
    report["backends"] = {
        "gpu": torch.cuda.get_device_name(0), "prompts": len(prompts),
        "useful_tok_per_s": rates, "vllm_over_transformers": rates["vllm"] / rates["transformers"],
        "identical_greedy_answers": f"{same}/{len(prompts)}",
        "heldout_prompt_strict": {k: v["prompt_strict"] for k, v in accuracy.items()},
        "vllm_minus_transformers": paired_vs(accuracy["vllm"], accuracy["transformers"], "prompt_strict", 1000, 0),
    }
    print(json.dumps(report["backends"], indent=1), flush=True)


def vllm_on_ray_available() -> bool:
    import importlib.util

    return importlib.util.find_spec("ray") is not None


def vllm_on_ray(folder: str, requests: list, in_process: list) -> dict:
    import ray

    from offline_arena.config import RayGeneration
    from offline_arena.loading import load_generator

    started = time.perf_counter()
    pool = load_generator(f"vllm:{folder}", ray=RayGeneration(actors=1, gpus_per_actor=1))
    loaded = time.perf_counter() - started
    answers = pool.generate(requests)
    same = sum(a.text == b.text for a, b in zip(answers, in_process))
    result = {"placement": pool.placement, "load_seconds": loaded,
              "generate_seconds": time.perf_counter() - started - loaded,
              "identical_to_in_process_vllm": f"{same}/{len(requests)}"}
    pool.close()
    ray.shutdown()
    print(json.dumps(result, indent=1), flush=True)
    return result


def quickstart_round(report: dict, key: str, recipe: str) -> None:
    run_dir = Path(tempfile.mkdtemp(prefix=f"gpu-check-{key}-"))
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "offline_arena.cli", "run", recipe, "--run-dir", str(run_dir)],
                          capture_output=True, text=True)
    last = [line for line in done.stdout.splitlines() if line.startswith("final vs base")]
    report[key] = {"returncode": done.returncode, "seconds": time.perf_counter() - started,
                   "final_line": last[-1] if last else None, "stderr_tail": done.stderr[-2000:] if done.returncode else ""}
    print(json.dumps(report[key], indent=1), flush=True)


def two_process_recipe() -> str | None:
    """The quickstart with SFT and DPO launched on two processes, where this checkout supports it."""
    import yaml

    from offline_arena.config import Train

    if "launch" not in Train.model_fields:
        return None
    from offline_arena.cli import resolve_recipe_path

    recipe = yaml.safe_load(resolve_recipe_path("quickstart").read_text())
    for stage in recipe["stages"]:
        if stage["kind"] in ("sft", "dpo"):
            stage.setdefault("train", {})["launch"] = {"processes": 2}
    path = Path(tempfile.mkdtemp()) / "quickstart-2proc.yaml"
    path.write_text(yaml.safe_dump(recipe))
    return str(path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default="gpu-check.json")
    parser.add_argument("--skip-run", action="store_true", help="only the backends comparison")
    args = parser.parse_args()

    import torch

    if not torch.cuda.is_available():
        sys.exit("gpu_check: no CUDA device visible to torch")
    report: dict = {"torch": torch.__version__, "gpus": torch.cuda.device_count()}
    try:
        import vllm

        report["vllm"] = vllm.__version__
        backends_side_by_side(report)
    except ImportError:
        report["vllm"] = None
        print("gpu_check: vllm is not installed (pip install -e '.[vllm]'): backends comparison skipped", flush=True)
    if not args.skip_run:
        quickstart_round(report, "quickstart_bf16", "quickstart")
        if report["gpus"] > 1:
            recipe = two_process_recipe()
            if recipe:
                quickstart_round(report, "quickstart_two_processes", recipe)
            else:
                report["quickstart_two_processes"] = "this checkout has no launched trainers"
    Path(args.out).write_text(json.dumps(report, indent=1, default=str))
    print(f"gpu_check: written to {args.out}")


if __name__ == "__main__":
    main()
