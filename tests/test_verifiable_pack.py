"""The built-in verifiable pack: reproducible, never self-contradictory, split without leaks, and scored
with IFEval's four accuracies (arXiv 2311.07911)."""

from collections import Counter
from itertools import combinations

import pytest

from offline_arena.prompts.constraints import CONSTRAINTS, compatible, conflicts, instruction_text
from offline_arena.prompts.sources import Prompt
from offline_arena.prompts.verifiable import (
    HELDOUT,
    accuracy,
    base_tasks,
    build_pack,
    evaluation_task_ids,
    heldout_task_ids,
    load_verifiable,
    make_prompt,
    pack_splits,
    score_response,
)

SHARDS = {f"round{r}/{stage}": 40 for r in (1, 2, 3) for stage in ("sft", "dpo", "rm")}


def as_data(prompts):
    return [(p.id, p.messages, p.meta) for p in prompts]


@pytest.fixture(scope="module")
def pack():
    return build_pack(2000, seed=0)


@pytest.fixture(scope="module")
def splits():
    return pack_splits(0, SHARDS, heldout=60)


def test_base_tasks_are_many_distinct_and_cover_the_categories():
    tasks = base_tasks()
    assert len(tasks) >= 300
    assert len({t["id"] for t in tasks}) == len(tasks)
    assert len({t["text"] for t in tasks}) == len(tasks)
    categories = Counter(t["category"] for t in tasks)
    assert set(categories) == {"writing", "explanation", "advice", "question", "healthcare"}
    assert categories["healthcare"] >= 50
    for task in tasks:
        assert task["keywords"] and all(isinstance(k, str) and k.strip() for k in task["keywords"])


def test_same_seed_same_prompts_and_ids(pack):
    assert as_data(build_pack(2000, seed=0)) == as_data(pack)
    assert as_data(build_pack(50, seed=0)) == as_data(pack[:50])  # a smaller pack is a prefix


def test_distinct_seeds_differ():
    first, second = build_pack(100, seed=0), build_pack(100, seed=1)
    assert len({p.id for p in first} & {p.id for p in second}) < 10


def test_prompts_are_well_formed(pack):
    assert all(isinstance(p, Prompt) for p in pack)
    assert len({p.id for p in pack}) == len(pack)
    tasks = {t["id"]: t for t in base_tasks()}
    for prompt in pack:
        (message,) = prompt.messages
        assert message["role"] == "user"
        task = tasks[prompt.meta["base_task"]]
        assert prompt.meta["category"] == task["category"]
        assert message["content"].startswith(task["text"])
        for constraint in prompt.meta["constraints"]:
            assert instruction_text(constraint) in message["content"]


def test_first_pass_uses_every_base_task_once():
    tasks = base_tasks()
    assert Counter(p.meta["base_task"] for p in build_pack(len(tasks), seed=3)) == Counter(t["id"] for t in tasks)


def test_no_prompt_carries_conflicting_constraints(pack):
    counts = Counter()
    for prompt in pack:
        constraints = prompt.meta["constraints"]
        ids = [c["id"] for c in constraints]
        assert 1 <= len(ids) <= 3
        assert len(set(ids)) == len(ids)
        for a, b in combinations(ids, 2):
            assert not conflicts(a, b), (prompt.id, a, b)
        assert compatible(constraints), prompt.id
        counts.update(ids)
    assert set(counts) == set(CONSTRAINTS)  # every constraint shows up somewhere


def test_constraints_respect_their_tasks(pack):
    tasks = {t["id"]: t for t in base_tasks()}
    for prompt in pack:
        task = tasks[prompt.meta["base_task"]]
        for constraint in prompt.meta["constraints"]:
            if constraint["id"] == "detectable_format:constrained_response":
                assert task.get("yes_no")
            if constraint["id"] == "combination:repeat_prompt":
                assert constraint["params"]["prompt_to_repeat"] == task["text"] and "\n" not in task["text"]


def test_constraint_count_bounds_and_short_answers():
    prompts = build_pack(300, seed=2, min_constraints=2, max_constraints=2, short_answers=True)
    for prompt in prompts:
        ids = [c["id"] for c in prompt.meta["constraints"]]
        assert len(ids) == 2
        assert all(CONSTRAINTS[i].fits_short_answer for i in ids)
    with pytest.raises(ValueError, match="min_constraints"):
        build_pack(5, min_constraints=3, max_constraints=2)


def test_splits_have_the_asked_sizes_and_are_disjoint(splits):
    assert {name: len(prompts) for name, prompts in splits.items()} == {**SHARDS, HELDOUT: 60}
    ids = [p.id for prompts in splits.values() for p in prompts]
    assert len(ids) == len(set(ids))  # no prompt in two splits


def test_heldout_shares_no_base_task_with_training(splits):
    heldout_tasks = {p.meta["base_task"] for p in splits[HELDOUT]}
    training_tasks = {p.meta["base_task"] for name, ps in splits.items() if name != HELDOUT for p in ps}
    assert heldout_tasks <= heldout_task_ids(0)
    assert not heldout_tasks & training_tasks
    assert not heldout_task_ids(0) & training_tasks
    # every task the evaluation may deal is used before any is used twice: the most varied evaluation
    assert heldout_tasks == evaluation_task_ids(0) and len(heldout_tasks) < 60
    assert {p.meta["category"] for p in splits[HELDOUT]} >= {"writing", "explanation", "advice", "healthcare"}


def test_no_training_prompt_copies_a_heldout_prompt(splits):
    """Held-out tasks that share their document (a clinical note asked about another way) with a training
    task are dealt to neither side: no training prompt holds more than half of a held-out prompt's 8-grams,
    the rule `arena run` refuses a recipe by (curation/recipe_checks.py)."""
    from offline_arena.curation.decontaminate import EvalIndex, Rule, decontaminate
    from offline_arena.curation.eval_sets import EvalItem

    heldout = EvalIndex([EvalItem("heldout", p.id, p.messages[0]["content"]) for p in splits[HELDOUT]], [Rule(8, 0.5)])
    training = [p for name, ps in splits.items() if name != HELDOUT for p in ps]
    assert decontaminate(training, heldout).removed == []
    # ...which the held-out tasks alone (before the shared-document ones are set aside) would break
    every_heldout_task = [t for t in base_tasks() if t["id"] in heldout_task_ids(0) - evaluation_task_ids(0)]
    assert decontaminate([t["text"] for t in base_tasks() if t["id"] not in heldout_task_ids(0)],
                         EvalIndex([EvalItem("h", t["id"], t["text"]) for t in every_heldout_task], [Rule(8, 0.5)])).removed


def test_a_shard_does_not_depend_on_the_other_shards(splits):
    assert as_data(load_verifiable("round2/dpo", 40, 0)) == as_data(splits["round2/dpo"])
    alone = pack_splits(0, {"round2/dpo": 15}, heldout=10)
    assert as_data(alone["round2/dpo"]) == as_data(splits["round2/dpo"][:15])
    assert as_data(alone[HELDOUT]) == as_data(splits[HELDOUT][:10])


def test_splits_reject_what_the_pack_cannot_supply():
    with pytest.raises(ValueError, match=r"'round1/sft': asked for 100000 prompts"):
        pack_splits(0, {"round1/sft": 100000}, heldout=10)
    with pytest.raises(ValueError, match=r"'heldout': asked for 100000 prompts"):
        pack_splits(0, {"round1/sft": 10}, heldout=100000)
    with pytest.raises(ValueError, match="unknown split 'train'"):
        pack_splits(0, {"train": 10}, heldout=10)
    with pytest.raises(ValueError, match="pass the held-out size as `heldout`"):
        pack_splits(0, {HELDOUT: 10}, heldout=10)


def hand_made(task_id, *constraints):
    task = {"id": task_id, "category": "advice", "text": "Give one tip for drinking more water."}
    return make_prompt(task, [{"id": cid, "params": params} for cid, params in constraints])


def test_score_response_reports_each_instruction_and_the_prompt():
    prompt = hand_made("t", ("punctuation:no_comma", {}), ("startend:quotation", {}))
    score = score_response('Sure:\n"Keep a bottle on your desk."', prompt)
    assert score["instruction_ids"] == ["punctuation:no_comma", "startend:quotation"]
    assert score["strict"] == [True, False] and score["loose"] == [True, True]
    assert score["prompt_strict"] is False and score["prompt_loose"] is True
    with pytest.raises(ValueError, match="no meta\\['constraints'\\]"):
        score_response("x", Prompt("bare", ({"role": "user", "content": "hi"},), {}))


def test_accuracy_arithmetic_on_a_hand_made_case():
    prompts = [
        hand_made("a", ("punctuation:no_comma", {}), ("change_case:english_lowercase", {})),
        hand_made("b", ("startend:quotation", {})),
        hand_made("c", ("startend:end_checker", {"end_phrase": "Any other questions?"})),
    ]
    responses = [
        "drink water, often.",        # comma: fails no_comma (strict and loose); lowercase passes
        'Sure:\n"Drink water."',      # the intro breaks strict; loose drops the first line and passes
        "Drink water. Any other questions?",
    ]
    # Prompt level: strict passes only c (1/3); loose passes b and c (2/3).
    # Instruction level: strict 2 of 4 (lowercase, end phrase); loose 3 of 4 (plus the quotes).
    assert accuracy(responses, prompts) == {
        "prompt_strict": 1 / 3, "prompt_loose": 2 / 3,
        "instruction_strict": 2 / 4, "instruction_loose": 3 / 4,
        "num_prompts": 3, "num_instructions": 4,
    }
    with pytest.raises(ValueError, match="2 responses for 3 prompts"):
        accuracy(responses[:2], prompts)


def test_phrasings_vary_the_wording_not_the_constraints():
    from offline_arena.prompts.constraints import check_all, instruction_text
    from offline_arena.prompts.verifiable import load_verifiable

    plain = load_verifiable("round1/sft", 40, 0, short_answers=True)
    assert [p.id for p in load_verifiable("round1/sft", 40, 0, short_answers=True, phrasings=1)] == [p.id for p in plain]
    varied = load_verifiable("round1/sft", 40, 0, short_answers=True, phrasings=3)
    strip = lambda p: [{"id": c["id"], "params": {k: v for k, v in c["params"].items() if k != "phrasing"}}
                       for c in p.meta["constraints"]]
    assert [strip(p) for p in varied] == [p.meta["constraints"] for p in plain]  # the same constraints...
    reworded = [(a, b) for a, b in zip(plain, varied) if a.messages != b.messages]
    assert len(reworded) > 20  # ...in other words, for most prompts
    for a, b in reworded:
        for c in b.meta["constraints"]:
            assert instruction_text(c)  # every phrasing renders
        answer = "all lowercase, but with a comma."
        assert check_all(answer, strip(b)) == check_all(answer, b.meta["constraints"])


def test_recipe_control_over_the_pack():
    from offline_arena.prompts.verifiable import load_verifiable

    ids = ["punctuation:no_comma", "startend:end_checker", "change_case:english_lowercase"]
    prompts = load_verifiable("round1/sft", 30, 0, short_answers=True, constraint_ids=ids, min_constraints=1,
                              max_constraints=1)
    assert all(len(p.meta["constraints"]) == 1 and p.meta["constraints"][0]["id"] in ids for p in prompts)
    with pytest.raises(ValueError, match="unknown constraint id"):
        load_verifiable("round1/sft", 3, 0, constraint_ids=["no:such"])


def test_constraint_weights_draw_the_weighted_families_more_and_leave_the_heldout_split_alone():
    from collections import Counter

    from offline_arena.prompts.verifiable import load_verifiable

    settings = dict(short_answers=False, min_constraints=1, max_constraints=2)
    heavy = {"change_case:english_capital": 6.0, "combination:two_responses": 6.0, "punctuation:no_comma": 0}
    count = lambda prompts: Counter(c["id"] for p in prompts for c in p.meta["constraints"])
    plain = count(load_verifiable("round1/sft", 200, 0, **settings))
    weighted = count(load_verifiable("round1/sft", 200, 0, constraint_weights=heavy, **settings))
    for cid in ("change_case:english_capital", "combination:two_responses"):
        assert weighted[cid] > 2.5 * plain[cid], (cid, plain[cid], weighted[cid])
    assert plain["punctuation:no_comma"] > 5 and weighted["punctuation:no_comma"] == 0
    # no weights, or all weights 1, is the pack as it always was (existing runs keep their prompts)
    ids = lambda **kw: [p.id for p in load_verifiable("round1/sft", 40, 0, **settings, **kw)]
    assert ids() == ids(constraint_weights=None) == ids(constraint_weights={})
    # the held-out split is what every recipe is measured on: weights do not touch it
    assert ([p.id for p in load_verifiable("heldout", 40, 0, **settings)]
            == [p.id for p in load_verifiable("heldout", 40, 0, constraint_weights=heavy, **settings)])


@pytest.mark.parametrize("weights, message", [
    ({"no:such": 2.0}, "not among the constraints"),
    ({"punctuation:no_comma": -1}, "numbers >= 0"),
])
def test_constraint_weights_that_cannot_be_used_are_refused_naming_them(weights, message):
    from offline_arena.prompts.verifiable import load_verifiable

    with pytest.raises(ValueError, match=message):
        load_verifiable("round1/sft", 3, 0, constraint_weights=weights)


def test_a_recipe_with_every_constraint_weighted_zero_is_refused():
    from offline_arena.config import Prompts
    from offline_arena.prompts.constraints import CONSTRAINTS

    with pytest.raises(ValueError, match="every constraint has weight 0"):
        Prompts(short_answers=False, constraint_weights={cid: 0 for cid in CONSTRAINTS})
    with pytest.raises(ValueError, match="not among the constraints"):
        Prompts(constraints=["punctuation:no_comma"], constraint_weights={"startend:end_checker": 2})


def test_a_recipes_constraint_weights_reach_its_stage_shards():
    from collections import Counter

    from offline_arena.config import Recipe
    from offline_arena.shards import heldout_prompts, stage_prompts

    settings = {"name": "t", "target": "x", "opponents": [{"name": "o", "model": "builtin:smollm2-135m-instruct"}],
                "stages": [{"kind": "sft"}], "prompts": {"per_stage": 64, "heldout": 24, "short_answers": False}}
    weighted = {**settings, "prompts": {**settings["prompts"], "constraint_weights": {"change_case:english_capital": 8}}}
    capitals = lambda recipe: Counter(c["id"] for p in stage_prompts(recipe, 1, "sft")
                                      for c in p.meta["constraints"])["change_case:english_capital"]
    plain, heavy = Recipe.model_validate(settings), Recipe.model_validate(weighted)
    assert capitals(heavy) > 2 * capitals(plain)
    assert [p.id for p in heldout_prompts(heavy)] == [p.id for p in heldout_prompts(plain)]
