"""What the run prints: a short table, one line per evaluated model, and the final line."""

from __future__ import annotations


def summary_table(stages: list[dict]) -> str:
    """`runaway`: the share of held-out answers that ran to their length budget without stopping (the family
    guard tests its change per stage as "ends by itself"; the stop-token guard's probe rates, where a recipe
    probes, are in the stage summary and the report)."""
    head = f"{'model':<12} {'rows':>5} {'loss first->last':>17} {'EOT':>4} {'runaway':>8} " \
           f"{'prompt-strict [95% CI]':>24} {'vs base [paired 95% CI]':>25} {'instr-loose':>11} {'rating':>7}"
    lines = [head, "-" * len(head)]
    for s in stages:
        train, guard = s.get("train", {}), s.get("train", {}).get("guard", {})
        loss = f"{train['first_loss']:.3f}->{train['last_loss']:.3f}" if "first_loss" in train else "-"
        h = s.get("heldout", {})
        runaway = f"{h['runaway_rate']:.2f}" if "runaway_rate" in h else "-"
        acc = (f"{h['prompt_strict']:.3f} [{h['prompt_strict_ci'][0]:.2f},{h['prompt_strict_ci'][1]:.2f}]"
               if "prompt_strict" in h else "-")
        rating = next((f"{r['rating']:.0f}" for r in s.get("leaderboard", []) if r["model"] == s["model_name"]), "-")
        d = s.get("vs_base", {}).get("prompt_strict")
        vs = f"{d['diff']:+.3f} [{d['ci'][0]:+.2f},{d['ci'][1]:+.2f}]" if d else "-"
        lines.append(f"{s['model_name']:<12} {train.get('rows', '-')!s:>5} {loss:>17} "
                     f"{('yes' if guard.get('end_of_turn_in_labels') else '-'):>4} {runaway:>8} {acc:>24} {vs:>25} "
                     f"{h.get('instruction_loose', float('nan')):>11.3f} {rating:>7}")
    return "\n".join(lines + family_lines(stages))


def family_lines(stages: list[dict]) -> list[str]:
    """Under the table, one line per family the family guard found worse (a stage in "warn" mode carries on
    with it): short, and only when there is something to say."""
    from ..evals.family_guard import describe

    return [f"{s['model_name']}: family worse than {s['family_guard']['against']}: {describe(r)}"
            for s in stages for r in s.get("family_guard", {}).get("regressed", [])]


def final_vs_base_line(vs_base: dict) -> str:
    """The run's last word: the final model minus the base on our held-out split and, when the recipe
    evaluates it, on IFEval (Google's prompts and checkers), each paired over the same prompts."""
    lines = []
    if "prompt_strict" in vs_base:
        d = vs_base["prompt_strict"]
        lines.append(f"final vs base: {d['diff']:+.3f} [{d['ci'][0]:+.3f}, {d['ci'][1]:+.3f}] prompt-level strict "
                     f"accuracy on {d['n']} held-out prompts (paired bootstrap 95% CI)")
    if "ifeval" in vs_base:
        i = vs_base["ifeval"]
        both = ", ".join(f"{label} {i[key]['diff']:+.3f} [{i[key]['ci'][0]:+.3f}, {i[key]['ci'][1]:+.3f}]"
                         for label, key in (("prompt", "prompt_strict"), ("instruction", "instruction_strict")))
        lines.append(f"final vs base on IFEval: {both} strict accuracy on {i['prompt_strict']['n']} IFEval "
                     "prompts (paired bootstrap 95% CI)")
        if i.get("types_worse"):
            from ..evals.ifeval import types_worse_line

            lines.append("IFEval per type vs base:" + types_worse_line(i["types_worse"]).removeprefix(" "))
    return "\n".join(lines)
