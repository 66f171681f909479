"""The built-in verifiable instruction pack: our own base tasks, each with 1-3 checkable constraints appended
(the recipe of IFEval, Zhou et al. 2023, arXiv 2311.07911), so a verifier judge can score answers without a
model and a held-out split measures instruction following the way IFEval does.

How prompts are made. Every base task (data/prompts/base_tasks.jsonl: general writing, explanation,
everyday advice, yes/no questions and synthetic clinical documents) owns a seeded sequence of distinct
constraint sets: its 0th, 1st, 2nd ... prompt. Prompts are handed out in *cycles*: in cycle c every base
task gives its c-th prompt. That makes three guarantees cheap:

- `build_pack(n, seed)` is reproducible: the same seed gives the same prompts with the same ids;
- held-out base tasks (a seeded ~20 % of each category) never appear in a training shard, so no training
  prompt shares a base task with the evaluation;
- training shards are disjoint: in each cycle the training tasks are shuffled and dealt out to the shard
  slots like cards, so a (task, cycle) pair belongs to one shard, and a task's prompts differ across
  cycles. A shard depends only on its own name and size, never on which other shards a run asks for.

Shard names are "round<r>/<slot>" with r in 1..MAX_ROUNDS and slot in SHARD_SLOTS, plus "heldout"; each stage
kind takes one slot (its `prompt_slot` in stage_kinds.py).
"""

from __future__ import annotations

import functools
import hashlib
import json
import random
import re
from collections import Counter
from pathlib import Path

from .budget import needed_tokens
from .constraints import CONSTRAINTS, check_all, compatible, conflicts, instruction_text, short_answer_ids
from ..records import Prompt

BASE_TASKS_PATH = Path(__file__).resolve().parent.parent / "data" / "prompts" / "base_tasks.jsonl"
SOURCE_NAME = "builtin:verifiable"

# The slots a round's training shards are dealt to, in dealing order. Fixed: another order or another slot
# would deal every shard differently, and so change the prompts of every existing run.
SHARD_SLOTS = ("sft", "dpo", "rm", "ppo", "kto", "grpo")
MAX_ROUNDS = 8
HELDOUT = "heldout"
HELDOUT_FRACTION = 0.2        # of each category's base tasks, kept for evaluation only
MAX_PROMPTS_PER_TASK = 64     # cycles; beyond this a pack of a few hundred tasks repeats itself too much
_SAMPLING_ATTEMPTS = 50       # tries to find a constraint set a task has not used yet


# --- base tasks -----------------------------------------------------------------------------------------

@functools.lru_cache(maxsize=None)
def base_tasks(path: str | Path = BASE_TASKS_PATH) -> tuple[dict, ...]:
    """The base tasks, validated: each has a unique `id`, a `category` and a `text`; `keywords` (words a
    natural answer contains, used by keyword constraints) and `yes_no` (a yes/no question) are optional."""
    tasks, seen = [], set()
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            task = json.loads(line)
            missing = [k for k in ("id", "category", "text") if not task.get(k)]
            if missing:
                raise ValueError(f"{path}:{number}: base task lacks {missing}")
            if task["id"] in seen:
                raise ValueError(f"{path}:{number}: duplicate base task id {task['id']!r}")
            seen.add(task["id"])
            tasks.append(task)
    return tuple(tasks)


def heldout_task_ids(seed: int, tasks=None) -> frozenset[str]:
    """A seeded HELDOUT_FRACTION of each category (at least one task each), so the evaluation covers every
    kind of task in proportion."""
    tasks = base_tasks() if tasks is None else tasks
    by_category: dict[str, list[dict]] = {}
    for task in tasks:
        by_category.setdefault(task["category"], []).append(task)
    chosen = set()
    for category, members in by_category.items():
        members = sorted(members, key=lambda t: _digest(f"{seed}|heldout|{t['id']}"))
        chosen.update(t["id"] for t in members[:max(1, round(HELDOUT_FRACTION * len(members)))])
    return frozenset(chosen)


SHARED_DOCUMENT_SHARE = 0.3  # of either task's 8-grams: below the 50% that makes a prompt a copy (Tulu 3's rule)


def _grams8(text: str) -> set[str]:
    words = re.findall(r"\w+", text.lower())
    return {" ".join(words[i:i + 8]) for i in range(max(1, len(words) - 7))}


@functools.lru_cache(maxsize=8)
def evaluation_task_ids(seed: int) -> frozenset[str]:
    """The held-out tasks the evaluation deals from: `heldout_task_ids` less those that share their document
    with a training task (the same clinical note asked about another way: "write three questions about this
    note" held out, "rewrite this note in plain words" trained on). Such a task is dealt to neither side, so
    the training shards stay as they were; `arena run` refuses a held-out split that a training prompt copies
    (curation/recipe_checks.py), and 39-43 of the 99 held-out tasks of seeds 0-2 share a document (more than 30% of
    either text's 8-grams)."""
    tasks = base_tasks()
    held = heldout_task_ids(seed, tasks)
    training = [_grams8(t["text"]) for t in tasks if t["id"] not in held]
    holders: dict[str, list[int]] = {}
    for index, grams in enumerate(training):
        for gram in grams:
            holders.setdefault(gram, []).append(index)
    kept = set()
    for task in tasks:
        if task["id"] not in held:
            continue
        grams = _grams8(task["text"])
        shared: dict[int, int] = {}
        for gram in grams:
            for index in holders.get(gram, ()):
                shared[index] = shared.get(index, 0) + 1
        if all(count <= SHARED_DOCUMENT_SHARE * min(len(grams), len(training[index]))
               for index, count in shared.items()):
            kept.add(task["id"])
    return frozenset(kept)


# --- one prompt -----------------------------------------------------------------------------------------

def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def _signature(constraints: list[dict]) -> str:
    """Order-free identity of a constraint set: the same constraints in another order are the same prompt."""
    return json.dumps(sorted(constraints, key=lambda c: c["id"]), sort_keys=True)


def sample_constraints(task: dict, rng: random.Random, count: int, candidate_ids, weights=None) -> list[dict]:
    """Up to `count` mutually compatible constraints for `task`, in a random order. `weights` ({id: w},
    missing ids weigh 1) makes a constraint w times as likely to be drawn first; without it every order is
    equally likely, exactly as before weights existed (the same seed gives the same prompts)."""
    ids = [cid for cid in candidate_ids if CONSTRAINTS[cid].applies_to(task)]
    if weights:
        ids = _weighted_order(ids, weights, rng)
    else:
        rng.shuffle(ids)
    chosen: list[dict] = []
    for cid in ids:
        if len(chosen) == count:
            break
        if any(conflicts(cid, c["id"]) for c in chosen):
            continue
        spec = {"id": cid, "params": CONSTRAINTS[cid].sample_params(rng, task)}
        if compatible(chosen + [spec]):
            chosen.append(spec)
    return chosen


def _weighted_order(ids: list[str], weights: dict[str, float], rng: random.Random) -> list[str]:
    """A random order of `ids` drawn without replacement in proportion to their weights: each id gets the key
    u ** (1 / w) for a uniform u, and the largest keys come first (Efraimidis and Spirakis 2006, "Weighted
    random sampling with a reservoir"). An id of weight 0 is never drawn."""
    keyed = []
    for cid in ids:
        weight = weights.get(cid, 1.0)
        u = rng.random()
        if weight > 0:
            keyed.append((u ** (1.0 / weight), cid))
    return [cid for _, cid in sorted(keyed, reverse=True)]


def make_prompt(task: dict, constraints: list[dict]) -> Prompt:
    """The task, a blank line, then one sentence per constraint (IFEval appends them the same way)."""
    instructions = " ".join(instruction_text(c) for c in constraints)
    prompt_id = f"{task['id']}.{_digest(task['id'] + _signature(constraints))[:8]}"
    meta = {"constraints": constraints, "base_task": task["id"], "category": task["category"],
            "needs_tokens": needed_tokens(constraints)}
    return Prompt(prompt_id, ({"role": "user", "content": f"{task['text']}\n\n{instructions}"},), meta)


class _TaskPrompts:
    """The seeded sequence of distinct prompts of one base task: element c is its prompt in cycle c."""

    def __init__(self, task: dict, seed: int, min_constraints: int, max_constraints: int, candidate_ids,
                 phrasings: int = 1, weights=None):
        settings = f"{seed}|{task['id']}|{min_constraints}|{max_constraints}|{','.join(candidate_ids)}"
        if weights:
            settings += "|" + json.dumps(weights, sort_keys=True)
        self.rng = random.Random(settings)  # str seeds hash with SHA-512: stable across processes
        # Wordings come from a generator of their own: with phrasings=1 the prompts are exactly those of a
        # pack without phrasings, and more phrasings change the wording, never the constraints.
        self.phrasing_rng = random.Random(f"{settings}|phrasings|{phrasings}")
        self.phrasings = phrasings
        self.task, self.candidate_ids = task, candidate_ids
        self.min_constraints, self.max_constraints = min_constraints, max_constraints
        self.weights = weights
        self.prompts: list[Prompt] = []
        self.seen: set[str] = set()
        self.exhausted = False

    def get(self, cycle: int) -> Prompt | None:
        while len(self.prompts) <= cycle and not self.exhausted:
            self._grow()
        return self.prompts[cycle] if cycle < len(self.prompts) else None

    def _grow(self):
        for _ in range(_SAMPLING_ATTEMPTS):
            count = self.rng.randint(self.min_constraints, self.max_constraints)
            constraints = sample_constraints(self.task, self.rng, count, self.candidate_ids, self.weights)
            signature = _signature(constraints)
            if len(constraints) >= self.min_constraints and signature not in self.seen:
                self.seen.add(signature)
                self.prompts.append(make_prompt(self.task, self._phrased(constraints)))
                return
        self.exhausted = True  # this task has (practically) run out of new constraint sets


    def _phrased(self, constraints: list[dict]) -> list[dict]:
        if self.phrasings <= 1:
            return constraints
        from .phrasings import phrasing_count

        phrased = []
        for c in constraints:
            index = self.phrasing_rng.randrange(min(self.phrasings, phrasing_count(c["id"])))
            phrased.append({**c, "params": {**c["params"], "phrasing": index}} if index else c)
        return phrased


def _check_settings(min_constraints: int, max_constraints: int):
    if not 1 <= min_constraints <= max_constraints:
        raise ValueError(f"need 1 <= min_constraints <= max_constraints, got {min_constraints} and "
                         f"{max_constraints}")


def pack_constraint_ids(short_answers: bool, constraint_ids=None) -> tuple[str, ...]:
    """The constraint ids the pack draws from: all (or those a short answer can meet), narrowed to `constraint_ids`."""
    ids = tuple(short_answer_ids() if short_answers else CONSTRAINTS)
    if constraint_ids is None:
        return ids
    unknown = sorted(set(constraint_ids) - set(CONSTRAINTS))
    if unknown:
        raise ValueError(f"unknown constraint id(s) {unknown}; known: {sorted(CONSTRAINTS)}")
    chosen = tuple(i for i in ids if i in set(constraint_ids))
    if not chosen:
        raise ValueError(f"none of the constraint ids {sorted(constraint_ids)} fits "
                         f"{'a short answer' if short_answers else 'the pack'}")
    return chosen


def check_weights(weights, candidate_ids) -> dict[str, float] | None:
    """`constraint_weights` as the pack uses them, or ValueError naming the id or weight that is wrong."""
    if not weights:
        return None
    unknown = sorted(set(weights) - set(candidate_ids))
    if unknown:
        raise ValueError(f"constraint_weights: {unknown} not among the constraints the pack draws from "
                         f"({', '.join(candidate_ids)})")
    bad = {cid: w for cid, w in weights.items() if not isinstance(w, (int, float)) or w < 0}
    if bad:
        raise ValueError(f"constraint_weights: weights must be numbers >= 0, got {bad}")
    if all(weights.get(cid, 1.0) == 0 for cid in candidate_ids):
        raise ValueError("constraint_weights: every constraint has weight 0, so none can be drawn")
    return {cid: float(w) for cid, w in sorted(weights.items())}


def _deal(tasks: list[dict], n: int, seed: int, slot: int, slots: int, where: str, *, min_constraints,
          max_constraints, short_answers, constraint_ids=None, phrasings: int = 1,
          constraint_weights=None) -> list[Prompt]:
    """n prompts for `slot` of `slots`: in cycle c the tasks are shuffled and slot k takes every
    slots-th task from position k, each giving its c-th prompt."""
    _check_settings(min_constraints, max_constraints)
    if n < 0:
        raise ValueError(f"{where}: size must be >= 0, got {n}")
    candidate_ids = pack_constraint_ids(short_answers, constraint_ids)
    weights = check_weights(constraint_weights, candidate_ids)
    sequences = {task["id"]: _TaskPrompts(task, seed, min_constraints, max_constraints, candidate_ids, phrasings,
                                          weights)
                 for task in tasks}
    prompts: list[Prompt] = []
    for cycle in range(MAX_PROMPTS_PER_TASK):
        if len(prompts) == n:
            return prompts
        order = sorted(tasks, key=lambda t: t["id"])
        random.Random(f"{seed}|cycle|{cycle}").shuffle(order)
        for task in order[slot::slots]:
            prompt = sequences[task["id"]].get(cycle)
            if prompt is not None:
                prompts.append(prompt)
                if len(prompts) == n:
                    return prompts
    spread = f", dealt over {slots} shard slots" if slots > 1 else ""
    raise ValueError(
        f"{where}: asked for {n} prompts but the built-in pack can supply only {len(prompts)} ({len(tasks)} "
        f"base tasks to draw from, at most {MAX_PROMPTS_PER_TASK} prompts each{spread}); ask for fewer or "
        "use a prompt file")


# --- the public API -------------------------------------------------------------------------------------

def build_pack(n: int, seed: int = 0, min_constraints: int = 1, max_constraints: int = 3, *,
               short_answers: bool = False) -> list[Prompt]:
    """n prompts over all base tasks (no held-out split), one per task before any task repeats.
    `short_answers=True` keeps to constraints a ~64-token answer can satisfy."""
    return _deal(list(base_tasks()), n, seed, 0, 1, "build_pack", min_constraints=min_constraints,
                 max_constraints=max_constraints, short_answers=short_answers)


def shard_slot(name: str) -> int:
    """The fixed slot of a training shard name "round<r>/<stage>"."""
    match = re.fullmatch(r"round(\d+)/(\w+)", name)
    if not match or match.group(2) not in SHARD_SLOTS or not 1 <= int(match.group(1)) <= MAX_ROUNDS:
        raise ValueError(f"unknown split {name!r}: expected {HELDOUT!r} or 'round<r>/<stage>' with r in "
                         f"1..{MAX_ROUNDS} and stage in {list(SHARD_SLOTS)}")
    return (int(match.group(1)) - 1) * len(SHARD_SLOTS) + SHARD_SLOTS.index(match.group(2))


def load_verifiable(split: str, n: int, seed: int = 0, *, min_constraints: int = 1, max_constraints: int = 3,
                    short_answers: bool = False, constraint_ids=None, phrasings: int = 1,
                    constraint_weights=None) -> list[Prompt]:
    """n prompts of one split of the pack: "heldout" (evaluation only) or a training shard such as
    "round1/sft". The same arguments always give the same prompts, whatever other splits a run loads.
    `constraint_ids` restricts the constraints drawn; `phrasings` > 1 varies their wording
    (prompts/phrasings.py); `constraint_weights` ({id: w}) draws the training shards' constraints in
    proportion to w (1 where missing). The held-out split ignores the weights: it stays the one every recipe
    with the same other settings is measured on, so a reweighted run is compared with the same prompts."""
    settings = dict(min_constraints=min_constraints, max_constraints=max_constraints,
                    short_answers=short_answers, constraint_ids=constraint_ids, phrasings=phrasings)
    tasks = base_tasks()
    heldout_ids = heldout_task_ids(seed, tasks)
    if split == HELDOUT:
        pool = [t for t in tasks if t["id"] in evaluation_task_ids(seed)]
        return _deal(pool, n, seed, 0, 1, f"{SOURCE_NAME} split {split!r}", **settings)
    slot = shard_slot(split)
    pool = [t for t in tasks if t["id"] not in heldout_ids]
    return _deal(pool, n, seed, slot, MAX_ROUNDS * len(SHARD_SLOTS), f"{SOURCE_NAME} split {split!r}",
                 constraint_weights=constraint_weights, **settings)


def pack_splits(seed: int, sizes: dict[str, int], heldout: int, **settings) -> dict[str, list[Prompt]]:
    """Disjoint training shards ({"round1/sft": 64, "round1/dpo": 64, ...}) plus a "heldout" split whose
    base tasks no shard ever sees. Raises ValueError naming the split that the pack cannot fill."""
    if HELDOUT in sizes:
        raise ValueError(f"pass the held-out size as `heldout`, not as a shard named {HELDOUT!r}")
    splits = {name: load_verifiable(name, size, seed, **settings) for name, size in sizes.items()}
    splits[HELDOUT] = load_verifiable(HELDOUT, heldout, seed, **settings)
    return splits


def score_response(response: str, prompt: Prompt) -> dict:
    """Per-instruction strict and loose verdicts and the prompt-level all-pass verdicts (IFEval's
    follow_instruction_list and follow_all_instructions)."""
    constraints = (prompt.meta or {}).get("constraints")
    if not constraints:
        raise ValueError(f"prompt {prompt.id!r} has no meta['constraints'] to check")
    strict = check_all(response, constraints)
    loose = check_all(response, constraints, loose=True)
    return {"prompt_id": prompt.id, "instruction_ids": [c["id"] for c in constraints],
            "strict": strict, "loose": loose, "prompt_strict": all(strict), "prompt_loose": all(loose)}


def accuracy(responses: list[str], prompts: list[Prompt]) -> dict:
    """IFEval's four numbers. Prompt-level: the share of prompts whose every instruction passed.
    Instruction-level: the share of all instructions (pooled over prompts) that passed. E.g. two prompts
    with 2 and 1 instructions, passing [True, False] and [True]: prompt-level 1/2, instruction-level 2/3."""
    if len(responses) != len(prompts):
        raise ValueError(f"{len(responses)} responses for {len(prompts)} prompts")
    if not prompts:
        raise ValueError("accuracy of zero prompts is undefined")
    scores = [score_response(r, p) for r, p in zip(responses, prompts)]
    followed = Counter()
    for score in scores:
        followed["strict"] += sum(score["strict"])
        followed["loose"] += sum(score["loose"])
    num_instructions = sum(len(s["strict"]) for s in scores)
    return {
        "prompt_strict": sum(s["prompt_strict"] for s in scores) / len(scores),
        "prompt_loose": sum(s["prompt_loose"] for s in scores) / len(scores),
        "instruction_strict": followed["strict"] / num_instructions,
        "instruction_loose": followed["loose"] / num_instructions,
        "num_prompts": len(scores),
        "num_instructions": num_instructions,
    }
