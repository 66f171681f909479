"""Who meets whom on which prompt, and generating the answers through the store.

Pairing policies (each returns a schedule: a list of (prompt, model_a, model_b)):
- `target_vs_opponents`: the target against every opponent on every prompt (Arena Learning's set-up);
- `all_pairs`: every pair of models on every prompt (a round-robin leaderboard);
- `active_schedule`: spend a battle budget by Chatbot Arena's active-sampling rule (Chiang et al. 2024,
  arXiv 2403.04132, sec. 5): a pair is drawn in proportion to how much one more battle would
  shrink the standard error of its win rate, so unmet and under-sampled pairs come first.

Each model answers each prompt once (sample 0 of the run's seed), and that one answer serves in all of
its battles on the prompt, so a target meeting three opponents is asked once, not three times. The
contestants served elsewhere (endpoints, Ray actors) are asked at the same time as each other and as the
ones in this process (`_answering_calls`); a model and a wrapper drafting with it (`target@revise`) are decoded
in one call (`generate_shared_drafts`).

`play` is the one path from a schedule to judged battles (and `rate` from those to a leaderboard), used by
the pipeline, the arena suite and the CLI; `play_active` alternates active scheduling and judging.
"""

from __future__ import annotations

import functools
import itertools
import random
from typing import Sequence

from .models.base import Completion, GenerationRequest, SamplingParams, content_key, is_remote
from .overlap import as_done
from .prompts.budget import with_budget
from .prompts.sources import Prompt
from .records import Battle, JudgedBattle

Schedule = list[tuple[Prompt, str, str]]


def target_vs_opponents(target: str, opponents: Sequence[str], prompts: Sequence[Prompt]) -> Schedule:
    if target in opponents:
        raise ValueError(f"the target {target!r} is also listed as an opponent")
    return [(p, target, o) for p in prompts for o in opponents]


def all_pairs(models: Sequence[str], prompts: Sequence[Prompt]) -> Schedule:
    if len(set(models)) < 2:
        raise ValueError("all-pairs needs at least two distinct models")
    return [(p, a, b) for p in prompts for a, b in itertools.combinations(models, 2)]


def active_schedule(models: Sequence[str], prompts: Sequence[Prompt], history: Sequence[dict], budget: int,
                    seed: int = 0, taken: set | None = None) -> Schedule:
    """`budget` new battles, each pair drawn by Chatbot Arena's active-sampling rule (Chiang et al. 2024,
    arXiv 2403.04132, sec. 5): with probability proportional to

        sqrt(Σ̂_a / n_a) − sqrt(Σ̂_a / (n_a + 1)),

    the fall in the standard error of pair a's win rate from one more battle; n_a counts the
    pair's judged battles in `history` ({model_a, model_b, winner}, either order) and Σ̂_a is the variance
    of one battle's score (`ratings.pair_outcomes`, `ratings.active_sampling_weight`). The prompt is then
    drawn uniformly among the pair's free ones. `taken` holds the (prompt id, a, b) already scheduled,
    which are never repeated. The same arguments and seed give the same schedule.

    Σ̂_a is the pair's own empirical score variance, shrunk towards 1/4 by one pseudo-battle, rather than
    p(1 − p) from a Bradley–Terry fit: it is the quantity the paper's rule is written for (the win
    matrix's variance, no model assumed), it sees that a pair which keeps tying is already settled
    (a fit's p(1 − p) would call it a coin toss), it needs no refit per call, and its prior gives pairs
    that never met, and models never seen, the largest weight, finite.

    Each pick counts as one more battle of its pair before the next pick (its outcome is not known yet,
    but its share of the standard error is), so a batch spreads over the pairs instead of piling onto
    the one that was neediest when the batch began.
    """
    from .ratings import WINNER_CODES, active_sampling_weight, pair_outcomes, unmet_pair_outcomes

    models = list(dict.fromkeys(models))
    if len(models) < 2:
        raise ValueError("active pairing needs at least two distinct models")
    pairs = list(itertools.combinations(models, 2))
    taken = set(taken or ())
    free = {(a, b): [p for p in prompts if (p.id, a, b) not in taken] for a, b in pairs}
    free_slots = sum(len(slots) for slots in free.values())
    if budget > free_slots:
        raise ValueError(f"active pairing: budget {budget} exceeds the {free_slots} unscheduled (prompt, pair) slots")
    decided = [h for h in history if h["winner"] in WINNER_CODES]  # a judge's "error" decides nothing
    known = pair_outcomes([h["model_a"] for h in decided], [h["model_b"] for h in decided],
                          [h["winner"] for h in decided])
    outcomes = {pair: known.get(tuple(sorted(pair)), unmet_pair_outcomes()) for pair in pairs}
    rng = random.Random(seed)
    schedule: Schedule = []
    for _ in range(budget):
        open_pairs = [pair for pair in pairs if free[pair]]
        weights = [active_sampling_weight(outcomes[pair]) for pair in open_pairs]
        a, b = rng.choices(open_pairs, weights=weights)[0]
        slots = free[(a, b)]
        schedule.append((slots.pop(rng.randrange(len(slots))), a, b))
        outcomes[(a, b)] = outcomes[(a, b)]._replace(battles=outcomes[(a, b)].battles + 1)
    return schedule


def battle_id(tag: str, prompt_id: str, model_a: str, model_b: str, answer_a: str, answer_b: str) -> str:
    """The answers' keys are part of the id: a name that now stands for another model (or other sampling
    settings) makes a new battle instead of silently reusing the old one; a rerun of the same battle
    (same answers, read back from the store) gets the same id, so nothing is recorded twice."""
    return content_key([tag, prompt_id, model_a, model_b, answer_a, answer_b])[:24]


def run_battles(schedule: Schedule, contestants: dict, store, params: SamplingParams, seed: int = 0,
                tag: str = "arena") -> list[Battle]:
    """Generate every answer the schedule needs (through the store: reruns are free) and record the
    battles. `contestants` maps a model name to its (store-cached) generator."""
    missing = {name for _, a, b in schedule for name in (a, b)} - set(contestants)
    if missing:
        raise ValueError(f"the schedule names models without a generator: {sorted(missing)}")
    needed: dict[str, dict[str, Prompt]] = {}
    for prompt, a, b in schedule:
        needed.setdefault(a, {})[prompt.id] = prompt
        needed.setdefault(b, {})[prompt.id] = prompt
    answers: dict[tuple[str, str], tuple[str, Completion]] = {}
    calls = _answering_calls(needed, contestants, params, seed)
    for _, answered in as_done(calls, at_once=max(1, len(calls))):
        answers.update(answered)
    battles = []
    for p, a, b in schedule:
        (key_a, answer_a), (key_b, answer_b) = answers[(a, p.id)], answers[(b, p.id)]
        battles.append(Battle(battle_id(tag, p.id, a, b, key_a, key_b), tag, p.id, tuple(p.messages), dict(p.meta),
                              a, b, key_a, key_b, answer_a, answer_b))
    store.put_battles(battles)
    return battles


def _answering_calls(needed: dict[str, dict[str, Prompt]], contestants: dict, params: SamplingParams, seed: int):
    """One call per contestant whose work is done elsewhere (an endpoint, Ray actors), and one for all
    those in this process, one after another: `as_done` runs the calls at once, so a local target against
    two served opponents takes as long as the slowest of the three, not the sum, and two local models never
    compete for this machine's cores. With no remote contestant, one call does everything, in this thread.
    Each answer is committed to the store by its generator's cache as it comes."""

    def answer(names: list[str]) -> dict[tuple[str, str], tuple[str, Completion]]:
        asked = {name: [GenerationRequest.of(p.messages, params=with_budget(params, p.meta), seed=seed,
                                             context=dict(p.meta)) for p in needed[name].values()]
                 for name in names}
        generate_shared_drafts([(contestants[name], asked[name]) for name in names])
        answered = {}
        for name in names:
            generator, prompts, requests = contestants[name], needed[name], asked[name]
            completions = generator.generate(requests)
            for prompt, key, completion in zip(prompts.values(), generator.keys(requests), completions):
                answered[(name, prompt.id)] = (key, completion)
        return answered

    remote = [name for name in needed if is_remote(contestants[name])]
    local = [name for name in needed if name not in remote]
    groups = ([local] if local else []) + [[name] for name in remote]
    return [functools.partial(answer, group) for group in groups]


def generate_shared_drafts(calls: Sequence[tuple[object, list[GenerationRequest]]]) -> None:
    """Where one contestant wraps another (`target@revise` drafts with the target itself), ask the inner model
    for its own answers and for the wrapper's drafts in one call, before the contestants are asked one by one:
    a decode step's fixed cost is then shared by both sets (the quickstart's 64 answers and 64 drafts: 48.0 s
    in one call against 62.4 s in two, bf16 on 2 cores, bench/battle_batching.py). Only where the store caches
    the inner model's answers, so the calls that follow find them all stored, and only for the wrapper's
    answers not stored yet (a rerun asks for nothing); otherwise, or when the inner model answers nothing here
    itself, the wrapper asks for its drafts as usual. `calls`: (generator, requests) per contestant."""
    cached = {generator.fingerprint: (generator, requests) for generator, requests in calls
              if hasattr(generator, "store")}
    together: dict[str, list[GenerationRequest]] = {}
    for generator, requests in calls:
        wrapper = getattr(generator, "inner", None)
        if not hasattr(wrapper, "drafts") or not hasattr(generator, "store"):
            continue
        keys = generator.keys(requests)
        stored = generator.store.get_completions(keys)
        inner, drafts = wrapper.drafts([r for r, key in zip(requests, keys) if key not in stored])
        if drafts and inner.fingerprint in cached and hasattr(inner, "store"):
            together.setdefault(inner.fingerprint, list(cached[inner.fingerprint][1])).extend(drafts)
    for fingerprint, requests in together.items():
        cached[fingerprint][0].generate(requests)


def play(schedule: Schedule, contestants: dict, judge, store, params: SamplingParams, seed: int = 0,
         tag: str = "arena", progress: bool = True) -> list[JudgedBattle]:
    """Schedule -> answers -> battles -> verdicts, everything through the store (a rerun asks no model and
    no judge again). The pipeline's stages and evaluations, the arena suite and `arena battle` all play
    through here; `rate` turns the result into a leaderboard."""
    from .judges import judge_battles

    return judge_battles(judge, run_battles(schedule, contestants, store, params, seed, tag), store, progress=progress)


def play_active(models: Sequence[str], prompts: Sequence[Prompt], contestants: dict, judge, store,
                params: SamplingParams, budget: int, seed: int = 0, tag: str = "arena",
                steps: int = 4) -> list[JudgedBattle]:
    """`budget` battles in `steps` rounds of `active_schedule`, judged between rounds so each round's
    pairs follow what the verdicts so far leave uncertain."""
    played: list[JudgedBattle] = []
    for step in range(steps):
        share = budget // steps + (step < budget % steps)
        if not share:
            continue
        taken = {(b.prompt_id, b.model_a, b.model_b) for b in played}
        history = [{"model_a": b.model_a, "model_b": b.model_b, "winner": b.winner} for b in played]
        schedule = active_schedule(models, prompts, history, share, seed=seed + step, taken=taken)
        played += play(schedule, contestants, judge, store, params, seed, tag)
    return played


def rate(judged: Sequence[JudgedBattle], rounds: int = 100, seed: int = 0, anchor: str | None = None,
         style: bool = False) -> list[dict]:
    """The leaderboard (Bradley-Terry with bootstrap CIs, ratings.leaderboard) of judged battles; judge
    errors are left out. `anchor`: a model pinned at 1000, when it took part, so that ratings of later
    fits (another checkpoint's battles added) stay on one scale. `style`: answer length as a covariate."""
    from .ratings import leaderboard

    decided = [b for b in judged if b.decided]
    if not decided:
        return []
    names = {m for b in decided for m in (b.model_a, b.model_b)}
    lengths = ([b.completion_a.num_tokens for b in decided], [b.completion_b.num_tokens for b in decided]) if style else None
    return leaderboard([b.model_a for b in decided], [b.model_b for b in decided], [b.winner for b in decided],
                       rounds=rounds, seed=seed, style=lengths,
                       anchor=(anchor, 1000.0) if anchor in names else None)
