"""Prompt curation (curation/): how well planted copies are found, and what Arena Learning's scale costs here.

Part 1, detection. A file of real, distinct prompts that are in no evaluation set we check against — the
pack's own base tasks, AlpacaEval's 805 instructions and Arena-Hard's 750 questions — with planted:

  exact copies   a clean prompt again, its case, punctuation and spacing changed
  near copies    a clean prompt lightly edited: one word replaced, one word dropped, a word inserted, or a
                 short sentence added
  eval verbatim  an IFEval or MT-Bench item as it is (sometimes after "Question: ")
  eval edited    an IFEval or MT-Bench item lightly edited as above

`deduplicate` runs on the whole file and `decontaminate` against IFEval + MT-Bench; for each kind the share
of planted prompts found (recall), and among the clean prompts the share flagged (false positives: a clean
prompt dropped as a copy of another clean one, or flagged as holding an evaluation item).

Part 2, scale. N synthetic prompts (words drawn from the clean prompts' vocabulary by frequency, lengths
from their length distribution; 1% exact and 1% near copies, 500 evaluation items planted), deduplicated and
decontaminated against every installed evaluation set, at N/10 and N: wall times, the ratio (linear
scaling is 10x), and the process's peak memory.

Run:  .venv/bin/python bench/curation.py [--n 276000] [--seed 0]
"""

from __future__ import annotations

import argparse
import random
import resource
import time
from collections import Counter

from offline_arena.curation.decontaminate import EvalIndex, decontaminate
from offline_arena.curation.dedup import deduplicate
from offline_arena.curation.eval_sets import installed_eval_sets, load_eval_set
from offline_arena.curation.text import words
from offline_arena.prompts.verifiable import base_tasks

FILLERS = ["really", "please", "quickly", "also", "today", "here", "now", "simply"]


def light_edit(text: str, rng: random.Random) -> str:
    tokens = text.split()
    how = rng.choice(["replace", "drop", "insert", "append"])
    if how == "append" or len(tokens) < 4:
        return text + rng.choice([" Please answer briefly.", " Thanks in advance!", " Keep it simple."])
    at = rng.randrange(1, len(tokens) - 1)
    if how == "replace":
        tokens[at] = rng.choice(FILLERS)
    elif how == "drop":
        del tokens[at]
    else:
        tokens.insert(at, rng.choice(FILLERS))
    return " ".join(tokens)


def case_and_punctuation(text: str, rng: random.Random) -> str:
    changed = text.upper() if rng.random() < 0.5 else text.lower()
    return "  ".join(changed.replace(",", "").replace("?", " ?").split(" "))


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def detection(seed: int) -> None:
    rng = random.Random(seed)
    clean = [t["text"] for t in base_tasks()] + [i.text for i in load_eval_set("alpaca-eval")] + \
        [i.text for i in load_eval_set("arena-hard")]
    evals = load_eval_set("ifeval") + load_eval_set("mtbench")
    rows = [(text, "clean", None) for text in clean]
    originals = rng.sample(range(len(clean)), 400)
    rows += [(case_and_punctuation(clean[i], rng), "exact copy", i) for i in originals[:200]]
    rows += [(light_edit(clean[i], rng), "near copy", i) for i in originals[200:]]
    planted = rng.sample(evals, 200)
    rows += [(("Question: " if rng.random() < 0.5 else "") + item.text, "eval verbatim", None) for item in planted[:100]]
    rows += [(light_edit(item.text, rng), "eval edited", None) for item in planted[100:]]
    order = list(range(len(rows)))
    rng.shuffle(order)
    rows = [rows[i] for i in order]
    position = {old: new for new, old in enumerate(order)}  # a clean prompt's row before -> after the shuffle
    texts = [t for t, _, _ in rows]
    kinds = [k for _, k, _ in rows]

    started = time.perf_counter()
    dedup = deduplicate(texts)
    dedup_s = time.perf_counter() - started
    started = time.perf_counter()
    decon = decontaminate(texts, EvalIndex(evals))
    decon_s = time.perf_counter() - started
    group_of = {i: g.kept for g in dedup.groups for i in [g.kept, *g.dropped]}
    flagged = {m.prompt for m in decon.removed}
    total = Counter(kinds)
    print(f"Part 1: {len(texts)} prompts ({', '.join(f'{k} {v}' for k, v in sorted(total.items()))}); "
          f"dedup {dedup_s:.1f}s, decontamination against IFEval + MT-Bench ({len(evals)} items) {decon_s:.1f}s")
    print(f"{'kind':<14} {'n':>5} {'dedup found':>12} {'decontamination found':>22}")
    for kind in ("exact copy", "near copy", "eval verbatim", "eval edited", "clean"):
        members = [i for i, k in enumerate(kinds) if k == kind]
        if kind in ("exact copy", "near copy"):  # found: the copy and its original end in one group
            found_dup = sum(i in group_of and group_of.get(position[rows[i][2]]) == group_of[i] for i in members)
        elif kind == "clean":  # false positive: grouped with anything but its own planted copy
            copied = {position[o] for o in originals}
            found_dup = sum(i in group_of and i not in copied for i in members)
        else:
            found_dup = sum(i in group_of for i in members)
        found_eval = sum(i in flagged for i in members)
        print(f"{kind:<14} {len(members):>5} {found_dup / len(members):>12.3f} {found_eval / len(members):>22.3f}")
    for short in (True, False):  # a light edit weighs more in a short prompt
        members = [i for i, k in enumerate(kinds) if k == "near copy" and (len(words(texts[i])) < 20) == short]
        found = sum(i in group_of and group_of.get(position[rows[i][2]]) == group_of[i] for i in members)
        print(f"  near copies of {'fewer than' if short else 'at least'} 20 words: {found}/{len(members)} found")
    print("  clean rows: the share grouped with another clean prompt, and the share flagged as holding an "
          "evaluation item, are the false-positive rates")
    copied = {position[o] for o in originals}
    for i in [i for i, k in enumerate(kinds) if k == "clean" and i in group_of and i not in copied][:4]:
        print(f"  clean prompt grouped: {texts[i][:90]!r} ~ {texts[group_of[i]][:90]!r}")
    for m in [m for m in decon.removed if kinds[m.prompt] in ("clean", "exact copy", "near copy")][:4]:
        print(f"  clean prompt flagged ({m.rule}, {m.share:.2f}): {texts[m.prompt][:90]!r} ~ {m.item.suite} {m.item.text[:90]!r}")
    for text in [texts[i] for i, k in enumerate(kinds) if k == "eval edited" and i not in flagged][:3]:
        print(f"  missed eval edit: {text[:120]!r}")


def synthetic(n: int, seed: int, clean: list[str], evals: list) -> list[str]:
    rng = random.Random(seed)
    counts = Counter(w for t in clean for w in words(t))
    vocabulary, weights = zip(*counts.items())
    lengths = [min(200, max(5, len(words(t)))) for t in clean]
    unique = n - n // 50 - 500
    texts = [" ".join(rng.choices(vocabulary, weights, k=rng.choice(lengths))) for _ in range(unique)]
    texts += [case_and_punctuation(t, rng) for t in rng.sample(texts[:unique], n // 100)]
    texts += [light_edit(t, rng) for t in rng.sample(texts[:unique], n // 100)]
    texts += [item.text for item in rng.sample(evals, min(500, len(evals)))]
    rng.shuffle(texts)
    return texts[:n]


def scale(n: int, seed: int) -> None:
    clean = [t["text"] for t in base_tasks()] + [i.text for i in load_eval_set("alpaca-eval")]
    found, _ = installed_eval_sets()
    evals = [item for items in found.values() for item in items]
    started = time.perf_counter()
    index = EvalIndex(evals)
    index_s = time.perf_counter() - started
    print(f"\nPart 2: scale; evaluation index over {len(evals)} items of {', '.join(found)} built in {index_s:.1f}s")
    times = {}
    for size in (n // 10, n):
        texts = synthetic(size, seed, clean, evals)
        started = time.perf_counter()
        dedup = deduplicate(texts, progress=False)
        dedup_s = time.perf_counter() - started
        after_dedup = peak_mb()
        started = time.perf_counter()
        decon = decontaminate(texts, index)
        decon_s = time.perf_counter() - started
        times[size] = (dedup_s, decon_s)
        print(f"{size:>7} prompts: dedup {dedup_s:6.1f}s ({dedup.dropped('exact')} exact, {dedup.dropped('near')} "
              f"near removed; peak RSS {after_dedup:.0f} MB), decontamination {decon_s:6.1f}s "
              f"({len(decon.removed)} removed; peak RSS {peak_mb():.0f} MB)")
    small, big = times[n // 10], times[n]
    print(f"ratio {n} / {n // 10} prompts: dedup {big[0] / small[0]:.1f}x, decontamination "
          f"{big[1] / small[1]:.1f}x (10x = linear)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=276_000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    detection(args.seed)
    scale(args.n, args.seed)


if __name__ == "__main__":
    main()
