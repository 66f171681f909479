import json

from offline_arena.flywheel import DataFilters, dpo_rows, export_rows, kto_rows, sft_rows
from offline_arena.models.base import Completion
from offline_arena.records import JudgedBattle

Q = [{"role": "user", "content": "Q?"}]


def battle(pid, a, b, text_a, text_b, winner, score_a=None, score_b=None, stopped=(True, True), context=None):
    return JudgedBattle(id=f"{pid}:{a}:{b}", tag="test", prompt_id=pid,
                        messages=tuple(Q if pid == "p1" else [{"role": "user", "content": pid}]),
                        context=context or {}, model_a=a, model_b=b, answer_a=f"{a}:{pid}", answer_b=f"{b}:{pid}",
                        completion_a=Completion(text_a, stopped[0], 3), completion_b=Completion(text_b, stopped[1], 3),
                        winner=winner, score_a=score_a, score_b=score_b)


BATTLES = [
    battle("p1", "t", "o1", "weak", "strong one", "model_b", 0, 2),
    battle("p1", "t", "o2", "weak", "strongest", "model_b", 0, 3),
    battle("p2", "t", "o1", "target wins", "meh", "model_a", 2, 1),
    battle("p3", "t", "o1", "same", "same-ish", "tie", 1, 1),
    battle("p4", "t", "o1", "short", "runaway answer", "model_b", 0, 1, stopped=(True, False)),
    battle("p5", "t", "o1", "good stop", "rambling runaway", "model_a", 2, 0, stopped=(True, False)),
]


def test_sft_takes_the_best_winning_answer_of_each_lost_prompt():
    rows = sft_rows(BATTLES, target="t")
    assert rows == [{"messages": Q + [{"role": "assistant", "content": "strongest"}], "prompt_id": "p1",
                     "source_model": "o2"}]  # p2 won, p3 tie, p4's winner never stopped


def test_dpo_pairs_from_decisive_battles_with_filters():
    rows = dpo_rows(BATTLES)
    # p4's chosen answer never stopped: no pair; p5's rejected one ran away: a fine negative.
    assert [(r["chosen"][0]["content"], r["rejected"][0]["content"]) for r in rows] == [
        ("strong one", "weak"), ("strongest", "weak"), ("target wins", "meh"), ("good stop", "rambling runaway")]
    assert rows[0]["prompt"] == Q
    assert len(dpo_rows(BATTLES + BATTLES)) == 4  # deduplicated
    assert len(dpo_rows(BATTLES, DataFilters(min_margin=2))) == 3
    assert len(dpo_rows(BATTLES, DataFilters(require_stopped=False))) == 5
    assert len(dpo_rows(BATTLES, DataFilters(max_chars=6))) == 0


def test_kto_labels_and_conflicts():
    rows = kto_rows(BATTLES)
    labels = {r["completion"][0]["content"]: r["label"] for r in rows}
    # "weak" lost twice on p1: bad; winners good; nothing from the tie; in p4 the runaway winner is
    # filtered out but "short" still lost (KTO labels answers one by one, no pair needed).
    assert labels == {"weak": False, "strong one": True, "strongest": True, "target wins": True, "meh": False,
                      "short": False, "good stop": True, "rambling runaway": False}
    flip = [battle("p1", "x", "y", "A", "B", "model_a"), battle("p1", "y", "x", "B", "A", "model_a")]
    assert kto_rows(flip) == []  # each answer both won and lost: no label


def test_export_formats_round_trip(tmp_path):
    from datasets import load_from_disk

    rows = dpo_rows(BATTLES)
    path = export_rows(rows, tmp_path / "dpo.jsonl")
    assert [json.loads(line) for line in path.read_text().splitlines()] == rows
    from datasets import Dataset

    assert Dataset.from_parquet(str(export_rows(rows, tmp_path / "dpo.parquet"))).num_rows == len(rows) == 4
    assert load_from_disk(str(export_rows(rows, tmp_path / "dpo_ds")))[0]["chosen"] == rows[0]["chosen"]


LOWER = {"constraints": [{"id": "change_case:english_lowercase", "params": {}},
                         {"id": "punctuation:no_comma", "params": {}}]}


def constrained(pid, text_a, text_b, winner):
    return battle(pid, "t", "o", text_a, text_b, winner, context=LOWER)


def test_data_rules_on_checkable_prompts():
    """Issue 11's rules: lost & correct -> SFT row; lost but failing -> no SFT row; a passing tie -> a row
    only when enabled; both fail -> a DPO pair (the graded judge picked one), no SFT row."""
    battles = [constrained("lost-correct", "Upper, comma", "all good here", "model_b"),
               constrained("lost-failing", "Upper, comma", "lower, comma", "model_b"),
               constrained("tie-passing", "also fine", "fine too", "tie"),
               constrained("both-fail", "Upper, comma", "Upper no comma", "model_b")]
    rows = sft_rows(battles, target="t")
    assert [r["prompt_id"] for r in rows] == ["lost-correct"]
    assert sft_rows(battles, target="t", filters=DataFilters(require_passing=False))[1]["prompt_id"] == "lost-failing"
    with_ties = sft_rows(battles, target="t", filters=DataFilters(sft_from_ties=True))
    assert [r["prompt_id"] for r in with_ties] == ["lost-correct", "tie-passing"]
    both = sft_rows(battles, target="t", filters=DataFilters(sft_from_ties=True, sft_per_prompt=2))
    assert sorted(r["messages"][-1]["content"] for r in both if r["prompt_id"] == "tie-passing") == ["also fine", "fine too"]
    pairs = {r["prompt_id"]: (r["chosen"][0]["content"], r["rejected"][0]["content"]) for r in dpo_rows(battles)}
    assert pairs["both-fail"] == ("Upper no comma", "Upper, comma") and "tie-passing" not in pairs


def test_rehearsal_mixes_in_the_targets_own_passing_answers():
    """SFT rehearsal (issue 21): besides the lost battles' winning answers, up to `rehearsal` x as many of
    the target's own answers that already pass — battles it won or tied, answers that ended — so that SFT on
    its failures does not overwrite what it did right."""
    no_comma = {"constraints": [{"id": "punctuation:no_comma", "params": {}}]}
    battles = [battle(f"lost{i}", "t", "o", "bad, answer", "good answer", "model_b", context=no_comma) for i in range(4)]
    battles += [battle("won", "t", "o", "my good answer", "their, answer", "model_a", context=no_comma),
                battle("tied", "t", "o", "fine answer", "other answer", "tie", context=no_comma),
                battle("failing", "t", "o", "mine, failing", "theirs, failing", "tie", context=no_comma),
                battle("runaway", "t", "o", "never ends", "x, y", "model_a", context=no_comma, stopped=(False, True))]
    plain = sft_rows(battles, target="t")
    assert [r["prompt_id"] for r in plain] == ["lost0", "lost1", "lost2", "lost3"]
    mixed = sft_rows(battles, target="t", filters=DataFilters(rehearsal=0.5))
    assert mixed[:4] == plain and len(mixed) == 6  # round(0.5 * 4) = 2 rows, and only 2 qualify
    rehearsed = {r["prompt_id"]: r["messages"][-1]["content"] for r in mixed[4:]}
    assert rehearsed == {"won": "my good answer", "tied": "fine answer"}
    assert all(r["rehearsal"] and r["source_model"] == "t" for r in mixed[4:])
    assert len(sft_rows(battles, target="t", filters=DataFilters(rehearsal=0.25))) == 5
