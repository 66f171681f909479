"""The per-family regression guard: a stage whose checkpoint follows one instruction family (a constraint id,
the instruction type IFEval reports, e.g. `detectable_format:number_highlighted_sections`) significantly
worse than the model the stage started from, on the same held-out prompts, fails (or warns).

Why the model the stage started from, not the base: like the stop-token guard, it asks what *this stage*
did, so the stage that broke a family is the one named; against the base, every later stage would inherit
an earlier stage's loss (and a gain could hide a later loss).

The test, per family, paired over the same instructions of the same prompts (strict verdicts):

1. **Exact McNemar, one-sided.** Only the discordant instances say anything about a change: `lost`
   (followed before, not after) and `gained` (the reverse). With no change each discordant instance is as
   likely to go either way, so lost ~ Binomial(lost + gained, 1/2), and
   p = P(X >= lost) = sum_{i=lost..d} C(d, i) / 2^d,  d = lost + gained.
   One-sided: the guard only looks for "worse".
2. **Only families that could be significant are counted as tests (Tarone 1990).** A family with d
   discordant instances can reach at best p = 1/2^d (all lost). K = the smallest k such that at most k
   families have 1/2^d <= alpha / k; the families with 1/2^d <= alpha / K are the ones tested. The others
   (too few instances moved) can never be significant, so they neither fire nor dilute the correction:
   with 23 families and Holm over all of them, even a family collapsing 8/8 -> 0/8 (p = 1/256) would pass
   unnoticed. Which families are tested depends on the discordant counts only, never on their direction,
   so under "no change" the test stays exact.
3. **Holm across the tested families** (many families at once would otherwise give false alarms): sort
   their p-values; the i-th smallest (i = 1, 2, ...) is significant while p <= alpha / (K - i + 1); stop
   at the first that is not. Whether the guard fires at all is decided by the first step (p <= alpha / K);
   the later steps only name further families.

Worked example, alpha = 0.05, four families:

    family  before  after  lost  gained  d   p
    A       12/12   2/12   10    0       10  1/1024 = 0.00098
    B       6/10    4/10   4     2       6   (C(6,4) + C(6,5) + C(6,6)) / 64 = 22/64 = 0.34
    C       5/5     3/5    2     0       2   1/4 = 0.25
    D       5/5     0/5    5     0       5   1/32 = 0.031

Tarone: k = 1, bar 0.05: 1/2^d <= 0.05 needs d >= 5: A, B, D -> 3 > 1. k = 2, bar 0.025: d >= 6: A, B
-> 2 <= 2, so K = 2 and A, B are tested (C can never be significant, nor D at bar 0.025: 1/32 > 0.025).
Holm: A 0.00098 <= 0.05 / 2 -> regressed; B 0.34 > 0.05 / 1 -> stop. The guard names A.

Stopping is tested as one more family, ENDS_BY_ITSELF: per held-out prompt, whether the answer ended by
itself (stop token) before and after. A stage that makes answers run on to their length budget more often
is named like a family that lost its instructions: the stop-token guard's probes ask the same of 8 prompts
with a tolerance of two answers; this asks it of every held-out prompt, paired, at the guard's alpha.

Two consequences to check by hand: with alpha = 0.05 a family needs at least 5 discordant instances (1/2^4
= 0.0625 > 0.05), so a drop of one to four instances never fires; and noise — flips both ways at equal
odds — fires with probability at most alpha per stage (tests/test_family_guard.py measures it).
"""

from __future__ import annotations

from math import comb
from typing import Callable, Sequence

MODES = ("fail", "warn", "off")


# The pseudo-family of answers that end by themselves (stop token before the length budget).
ENDS_BY_ITSELF = "ends by itself"


class FamilyGuardError(RuntimeError):
    pass


def paired_instructions(after: dict, before: dict, stopping: bool = True) -> dict[str, list[tuple[bool, bool]]]:
    """family -> (followed before, followed after) of each instruction both held-out results scored: prompts
    matched by id, a prompt's instructions by position (and only where both name the same constraint id).
    The results are `heldout.score_answers`'s, whose `per_prompt` rows carry `instruction_ids` and `strict`
    (and `stopped`: with `stopping`, ENDS_BY_ITSELF pairs whether each prompt's answer ended by itself)."""
    theirs = {p["id"]: p for p in before.get("per_prompt", []) if "instruction_ids" in p}
    pairs: dict[str, list[tuple[bool, bool]]] = {}
    for mine in after.get("per_prompt", []):
        other = theirs.get(mine["id"])
        if other is None or "instruction_ids" not in mine:
            continue
        if stopping and "stopped" in mine and "stopped" in other:
            pairs.setdefault(ENDS_BY_ITSELF, []).append((bool(other["stopped"]), bool(mine["stopped"])))
        for family, now, family_then, then in zip(mine["instruction_ids"], mine["strict"],
                                                  other["instruction_ids"], other["strict"]):
            if family == family_then:
                pairs.setdefault(family, []).append((bool(then), bool(now)))
    return pairs


def mcnemar_worse_p(lost: int, gained: int) -> float:
    """One-sided exact McNemar p-value for "worse": P(X >= lost), X ~ Binomial(lost + gained, 1/2). E.g.
    lost 4, gained 2: (C(6,4) + C(6,5) + C(6,6)) / 2^6 = (15 + 6 + 1) / 64 = 0.34; lost 10, gained 0: 1/1024;
    nothing discordant: 1."""
    d = lost + gained
    return sum(comb(d, i) for i in range(lost, d + 1)) / 2 ** d


def tarone_tests(discordant: Sequence[int], alpha: float) -> int:
    """K, the number of tests the correction counts (Tarone 1990): the smallest k such that at most k
    families could reach p <= alpha / k at all (best p 1/2^d, every discordant instance lost). E.g. d =
    [10, 6, 2, 5], alpha 0.05: k = 1 admits 10, 6, 5 (3 > 1); k = 2 admits 10, 6 (2 <= 2): K = 2."""
    k = 1
    while sum(0.5 ** d <= alpha / k for d in discordant) > k:
        k += 1
    return k


def family_guard(after: dict, before: dict, alpha: float = 0.05, stopping: bool = True) -> dict | None:
    """Which families `after` follows significantly worse than `before` (two `score_answers` results on the
    same held-out prompts), by the test in the module docstring; `stopping`: ENDS_BY_ITSELF is one of the
    families (a stage's guard), or not (instruction types alone). None when either result lacks the
    per-instruction outcomes (an eval.json written before they were recorded): nothing to pair.

    Returns {"alpha", "tests": K, "families": one row per family (id, n, before, after = instances
    followed, lost, gained, p, tested), "regressed": the rows found worse, each with the Holm `bar` it
    cleared, smallest p first}."""
    if not 0 < alpha < 1:
        raise ValueError(f"family guard alpha must lie in (0, 1), got {alpha}")
    if not any("instruction_ids" in p for p in before.get("per_prompt", [])) or \
            not any("instruction_ids" in p for p in after.get("per_prompt", [])):
        return None
    rows = []
    for family, pairs in sorted(paired_instructions(after, before, stopping).items()):
        lost = sum(then and not now for then, now in pairs)
        gained = sum(now and not then for then, now in pairs)
        rows.append({"id": family, "n": len(pairs), "before": sum(then for then, _ in pairs),
                     "after": sum(now for _, now in pairs), "lost": lost, "gained": gained,
                     "p": mcnemar_worse_p(lost, gained)})
    tests = tarone_tests([r["lost"] + r["gained"] for r in rows], alpha)
    for row in rows:
        row["tested"] = 0.5 ** (row["lost"] + row["gained"]) <= alpha / tests
    regressed = []
    for step, row in enumerate(sorted((r for r in rows if r["tested"]), key=lambda r: (r["p"], r["id"]))):
        bar = alpha / (tests - step)
        if row["p"] > bar:
            break  # Holm: the first family that misses its bar stops the walk
        regressed.append({**row, "bar": bar})
    return {"alpha": alpha, "tests": tests, "families": rows, "regressed": regressed}


def describe(row: dict) -> str:
    """One family's change, e.g. "a:b strict 12/12 -> 2/12 (10 lost, 0 gained, p = 0.00098)"."""
    outcome = "" if row["id"] == ENDS_BY_ITSELF else " strict"
    return (f"{row['id']}{outcome} {row['before']}/{row['n']} -> {row['after']}/{row['n']} "
            f"({row['lost']} lost, {row['gained']} gained, p = {row['p']:.2g})")


def enforce(report: dict | None, mode: str, where: str, against: str, log: Callable[[str], None]) -> dict:
    """Log the guard's verdict on `report` (from `family_guard`) and, in "fail" mode, raise
    FamilyGuardError naming each regressed family with its counts, p-value and bar. Returns what the stage
    summary records: the report with `against` (the model compared with) and `mode`, or a `skipped` note."""
    if mode not in MODES:
        raise ValueError(f"family guard mode {mode!r}; one of {MODES}")
    if mode == "off":
        return {}
    if report is None:
        log(f"{where} family guard: no per-instruction outcomes for {against} to pair with, skipped")
        return {"against": against, "mode": mode, "skipped": "no per-instruction outcomes to pair"}
    record = {**report, "against": against, "mode": mode}
    # The families that moved most towards worse, for the log line: the table itself is in the summary.
    moved = sorted((r for r in report["families"] if r["lost"] > r["gained"]),
                   key=lambda r: (r["gained"] - r["lost"], r["p"]))[:3]
    if not report["regressed"]:
        log(f"{where} family guard vs {against}: no family significantly worse (families: "
            f"{len(report['families'])}, counted as tests: {report['tests']}, alpha {report['alpha']})"
            + ("; lost most: " + "; ".join(describe(r) for r in moved) if moved else ""))
        return record
    named = "; ".join(f"{describe(r)} <= Holm bar {r['bar']:.2g}" for r in report["regressed"])
    message = (f"{where} family guard: significantly worse than {against} on the held-out split (exact McNemar "
               f"on the same instructions, Holm counting {report['tests']} test(s), alpha "
               f"{report['alpha']}): {named}")
    if mode == "warn":
        log(f"WARNING {message}")
        return record
    raise FamilyGuardError(
        f"{message}. The stage's checkpoint and eval.json are kept, but the stage is not marked done. Look at "
        "that family's training data (does it teach against the constraint?), or accept the loss with "
        "evaluation.family_guard: warn (or a lower family_guard_alpha) and run the same command again: the run "
        "resumes at this stage.")
