"""`arena` — the command line. Subcommands import what they need when they run, so `arena --help`
never pays for torch or transformers."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

DEFAULT_MODEL = "builtin:smollm2-135m-instruct"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="arena", description="Post-train LLMs through an offline arena.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = commands.add_parser("run", help="run the main job (default: the quickstart on the embedded model)")
    run.add_argument("--run-dir", default="runs/quickstart", help="run folder (default: %(default)s)")
    run.set_defaults(handler=cmd_run)

    gen = commands.add_parser("generate", help="answer a prompt file with a model, through the run's store")
    gen.add_argument("model", help="model spec: builtin:NAME, a folder or Hub id, vllm:..., openai:URL#NAME")
    gen.add_argument("--prompts", default="builtin:sample", help="a .jsonl file or builtin:NAME (default: %(default)s)")
    gen.add_argument("--run-dir", default="runs/generate", help="run folder holding store.sqlite (default: %(default)s)")
    _add_sampling_args(gen)
    gen.add_argument("--out", help="also write the answers to this JSONL file")
    gen.set_defaults(handler=cmd_generate)

    args = parser.parse_args(argv)
    try:
        return args.handler(args) or 0
    except (ValueError, FileNotFoundError, RuntimeError) as error:
        # Errors we raise say what is wrong and where; a traceback would bury that.
        print(f"arena {args.command}: error: {error}", file=sys.stderr)
        return 2


def _add_sampling_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--samples", type=int, default=1, help="answers per prompt (default: %(default)s)")
    parser.add_argument("--max-new-tokens", type=int, default=128, help="(default: %(default)s)")
    parser.add_argument("--temperature", type=float, default=0.7, help="0 for greedy (default: %(default)s)")
    parser.add_argument("--top-p", type=float, default=1.0, help="(default: %(default)s)")
    parser.add_argument("--seed", type=int, default=0, help="(default: %(default)s)")
    parser.add_argument("--batch-size", type=int, default=32, help="(default: %(default)s)")


def cmd_generate(args) -> int:
    import json

    from .models import GenerationRequest, SamplingParams, load_generator
    from .prompts import load_prompts
    from .store import Store

    prompts = load_prompts(args.prompts)
    params = SamplingParams(max_new_tokens=args.max_new_tokens, temperature=args.temperature, top_p=args.top_p)
    requests = [GenerationRequest.of(p.messages, params=params, seed=args.seed, sample_index=s)
                for p in prompts for s in range(args.samples)]
    with Store(Path(args.run_dir) / "store.sqlite") as store:
        generator = load_generator(args.model, store=store, batch_size=args.batch_size)
        started = time.perf_counter()
        completions = generator.generate(requests)
        elapsed = time.perf_counter() - started
    fresh = generator.inner.num_generated
    runaways = sum(not c.stopped for c in completions)
    print(f"{len(completions)} answers ({fresh} generated, {len(completions) - fresh} from the store) "
          f"in {elapsed:.1f}s; runaway rate {runaways / len(completions):.2f}; store: {args.run_dir}/store.sqlite")
    if args.out:
        with open(args.out, "w", encoding="utf-8") as handle:
            for request, prompt, completion in zip(requests, [p for p in prompts for _ in range(args.samples)], completions):
                handle.write(json.dumps({"id": prompt.id, "sample_index": request.sample_index, "answer": completion.text,
                                         "stopped": completion.stopped, "num_tokens": completion.num_tokens}) + "\n")
    return 0


def cmd_run(args) -> int:
    """The main job. Until the arena pipeline lands this answers the built-in sample prompts with the
    embedded model, through the store (a second `arena run` is served from it)."""
    from .models import GenerationRequest, SamplingParams, load_generator
    from .prompts import load_prompts
    from .store import Store

    prompts = load_prompts("builtin:sample")
    params = SamplingParams(max_new_tokens=96, temperature=0.0)
    with Store(Path(args.run_dir) / "store.sqlite") as store:
        generator = load_generator(DEFAULT_MODEL, store=store)
        completions = generator.generate([GenerationRequest.of(p.messages, params=params) for p in prompts])
    for prompt, completion in zip(prompts, completions):
        flag = "" if completion.stopped else "  [hit the token limit]"
        print(f"--- {prompt.id}{flag}\n{completion.text}\n")
    print(f"{len(completions)} answers stored in {args.run_dir}/store.sqlite")
    return 0


if __name__ == "__main__":
    sys.exit(main())
