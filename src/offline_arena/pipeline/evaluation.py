"""After each stage (and once for the base): held-out accuracy and runaway rate, the paired difference to
the base on the same prompts, and the leaderboard of every checkpoint so far against the opponents."""

from __future__ import annotations

from ..run_folder import StageFolder, read_json, write_json

EVAL_TAG = "eval"


def evaluate_stage(ctx, folder: StageFolder, model_name: str, model: str, log) -> dict:
    """`model`'s evaluation, written to the folder's eval.json (read back when it is there already)."""
    from ..battles import play, target_vs_opponents
    from ..evals.heldout import evaluate_generator, heldout_requests
    from ..loading import load_generator

    done = read_json(folder.eval)
    if done is not None:
        return done
    folder.path.mkdir(parents=True, exist_ok=True)
    recipe = ctx.recipe
    out: dict = {"model_name": model_name, "checkpoint": model}
    generator = load_generator(model, store=ctx.store, batch_size=recipe.generation.batch_size,
                               ray=recipe.generation.ray)
    # Held-out answers and the leaderboard's battles use the same (greedy) answers: one generation each.
    params = ctx.eval_params or ctx.params
    if recipe.evaluation.heldout:
        _generate_together(generator, heldout_requests(ctx.heldout, params, recipe.seed), recipe)
        out["heldout"], _ = evaluate_generator(generator, ctx.heldout, params, recipe.seed,
                                               recipe.evaluation.bootstrap_rounds)
    if recipe.evaluation.leaderboard:
        ctx.checkpoints[model_name] = model
        play(target_vs_opponents(model_name, list(ctx.opponents), ctx.heldout),
             {model_name: generator, **ctx.opponents}, ctx.judge, ctx.store, params, recipe.seed, EVAL_TAG)
        out["leaderboard"] = leaderboard_rows(ctx)
    if recipe.evaluation.suites:
        from ..evals.suites import run_suites

        log(f"[eval {model_name}] suites: {', '.join(recipe.evaluation.suites)}")
        # The suites' generations and judgments go through the run's store: a resumed run repeats none.
        out["suites"] = run_suites(list(recipe.evaluation.suites), model, options=recipe.evaluation.suites,
                                   store=ctx.store, seed=recipe.seed)
    write_json(folder.eval, out)
    return out


def _generate_together(generator, requests: list, recipe) -> None:
    """Generate the held-out prompts and the suites' plain-generation prompts (IFEval) in one call, into the
    store, where the held-out scoring and the suites then find them. Rows decoded together share each
    decode step's fixed cost (on 2 CPU cores ~60 ms a step against ~1.7 ms a row), and the few long-budget
    rows of one set no longer decode alone at the end: 96 held-out and 64 IFEval prompts took 54.7 s in
    one call against 82.8 s in two (bf16, 2-core EPYC; bench/eval_batching.py)."""
    from ..evals.suites import suite_requests

    suites = recipe.evaluation.suites or {}
    for name in suites:
        requests = requests + suite_requests(name, suites.get(name) or {}, recipe.seed)
    generator.generate(requests)


def leaderboard_rows(ctx) -> list[dict]:
    """Every evaluation battle of the run so far, rated; written to RUN/leaderboard.csv and .json."""
    from ..battles import rate
    from ..ratings import write_leaderboard

    # Anchored to the first opponent: a fixed reference, so a new checkpoint's battles do not shift every
    # other rating and the ratings of successive evaluations can be compared.
    rows = rate(ctx.store.judged_battles(ctx.judge.fingerprint, EVAL_TAG), rounds=ctx.recipe.evaluation.bootstrap_rounds,
                seed=ctx.recipe.seed, anchor=ctx.recipe.opponents[0].name)
    if rows:
        write_leaderboard(rows, ctx.folder.root)
    return rows


def vs_base(ctx, heldout: dict | None, suites: dict | None = None) -> dict:
    """Paired bootstrap CIs of (this model - base) on the same held-out prompts: the effect of the run so far,
    with the noise the two share (which prompts are hard) taken out. With an IFEval suite in the recipe, its
    four numbers paired the same way under "ifeval" (the benchmark users report, beside our own split)."""
    from ..evals.heldout import paired_vs

    base = read_json(ctx.folder.base.eval)
    if not isinstance(base, dict):
        return {}
    rounds, seed = ctx.recipe.evaluation.bootstrap_rounds, ctx.recipe.seed
    out = {}
    if heldout and "per_prompt" in heldout:
        out = {metric: paired_vs(heldout, base.get("heldout", {}), metric, rounds, seed)
               for metric in ("prompt_strict", "prompt_loose")}
    ifeval, base_ifeval = (suites or {}).get("ifeval"), (base.get("suites") or {}).get("ifeval")
    if ifeval and base_ifeval:
        from ..evals import ifeval as ifeval_suite

        out["ifeval"] = ifeval_suite.paired_vs(ifeval, base_ifeval, rounds, seed)
        if ifeval.get("items") and base_ifeval.get("items"):  # each instruction type, paired the same way
            out["ifeval"]["types_worse"] = ifeval_suite.types_worse(ifeval["items"], base_ifeval["items"])
    return out
