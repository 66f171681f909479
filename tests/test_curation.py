"""Prompt curation (curation/): duplicates found and one of each kept, evaluation items found in training
prompts (verbatim and lightly edited), diverse and hard subsets, and `arena run` refusing a held-out split
that its training shards copy."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from offline_arena.curation.decontaminate import EvalIndex, Rule, decontaminate, parse_rule
from offline_arena.curation.dedup import deduplicate
from offline_arena.curation.eval_sets import EvalItem, load_eval_set
from offline_arena.curation.select import battle_losses, battle_scores, diverse, hard
from offline_arena.records import JudgedBattle, Prompt

LONG = ("Write a detailed guide for a first-time gardener who wants to grow tomatoes on a small city balcony, "
        "covering the choice of containers, soil, watering, sunlight and what to do when the leaves turn yellow.")


def test_exact_copies_after_normalisation_and_near_copies_are_grouped_under_the_first():
    texts = [LONG,
             "Explain how a refrigerator keeps food cold.",
             LONG.upper().replace(",", ""),                                   # exact after normalisation
             LONG.replace("small city balcony", "small balcony in the city"),  # near: a phrase reworded
             "Summarise the causes of the First World War for a history class."]
    result = deduplicate(texts)
    assert result.kept == [0, 1, 4]
    [group] = result.groups
    assert group.kept == 0 and sorted(zip(group.dropped, group.kinds)) == [(2, "exact"), (3, "near")]
    assert 0.7 <= group.similarity[group.dropped.index(3)] < 1.0
    assert result.dropped("exact") == 1 and result.dropped("near") == 1
    assert deduplicate(texts, near=False).kept == [0, 1, 3, 4]  # exact only


def test_distinct_prompts_on_one_template_are_not_near_duplicates():
    topics = ["volcanoes", "the stock market", "honey bees", "black holes", "the French revolution",
              "vaccines", "jazz music", "plate tectonics"]
    texts = [f"Write a short essay for a school magazine about {t}, with one surprising fact." for t in topics]
    assert deduplicate(texts).kept == list(range(len(texts)))


@pytest.mark.parametrize("bad", [dict(threshold=0), dict(threshold=1.5), dict(shingle=0), dict(num_perm=1)])
def test_bad_dedup_settings_are_refused(bad):
    with pytest.raises(ValueError):
        deduplicate(["a b c", "a b d"], **bad)


def test_rules_parse_and_bad_rules_say_what_is_expected():
    assert parse_rule("8:0.5") == Rule(8, 0.5) and parse_rule("13") == Rule(13, 0.0)
    for bad in ("eight:0.5", "8:1.5", "0:0.1", "8:x"):
        with pytest.raises(ValueError, match="N:SHARE"):
            parse_rule(bad)


@pytest.fixture(scope="module")
def ifeval_and_mtbench():
    items = load_eval_set("ifeval") + load_eval_set("mtbench")
    assert len(items) == 541 + 80
    return items, EvalIndex(items)


def test_eval_items_verbatim_and_lightly_edited_are_found_and_clean_prompts_are_not(ifeval_and_mtbench):
    items, index = ifeval_and_mtbench
    ifeval = max((i for i in items if i.suite == "ifeval"), key=lambda i: len(i.text))
    mtbench = next(i for i in items if i.suite == "mtbench")
    edited = ifeval.text.replace(",", "").replace(" the ", " a ", 3) + " Thanks!"
    prompts = [ifeval.text, f"Please help me with this: {edited}", mtbench.text,
               LONG, "Describe the water cycle to a ten-year-old in three short paragraphs."]
    result = decontaminate(prompts, index)
    assert result.kept == [3, 4]
    found = {m.prompt: m for m in result.removed}
    assert found[0].item == ifeval and found[0].share == 1.0
    assert found[1].item == ifeval and 0.5 < found[1].share < 1.0
    assert found[2].item == mtbench
    assert result.counts() == {"ifeval": 2, "mtbench": 1}


def test_a_prompt_s_own_instruction_wording_is_set_aside(ifeval_and_mtbench):
    """IFEval's instruction sentences are the vocabulary it measures: a prompt of our own that carries one
    (in IFEval's wording) is not a copy; the same sentence after an IFEval prompt's own question is."""
    from offline_arena.prompts.constraints import instruction_text

    _, index = ifeval_and_mtbench
    constraint = {"id": "change_case:english_lowercase", "params": {}}
    wording = instruction_text(constraint)
    ours = Prompt("ours", ({"role": "user", "content": f"Describe a rainy afternoon in a small harbour town. {wording}"},),
                  {"constraints": [constraint]})
    assert decontaminate([ours], index).kept == [0]
    # Read as plain text (no constraints known) the wording alone is shared: the 13-gram rule fires.
    assert decontaminate([ours.messages[0]["content"]], index).removed
    copied = next(i for i in index.items if wording.lower()[:40] in i.text.lower())
    leaked = Prompt("leak", ({"role": "user", "content": copied.text},), {"constraints": [constraint]})
    assert decontaminate([leaked], index).removed[0].item == copied


def test_the_built_in_pack_is_clean_against_every_installed_evaluation_set():
    """What `arena run` checks on every shard, over every prompt the pack deals for seed 0 (31K)."""
    from offline_arena.curation.eval_sets import installed_eval_sets
    from offline_arena.prompts.verifiable import MAX_PROMPTS_PER_TASK, base_tasks, build_pack

    found, _ = installed_eval_sets()
    assert {"ifeval", "mtbench", "arena-hard", "alpaca-eval", "healthbench"} <= set(found)
    pack = build_pack(len(base_tasks()) * MAX_PROMPTS_PER_TASK, seed=0)
    assert decontaminate(pack, EvalIndex([i for items in found.values() for i in items])).removed == []


def test_diverse_takes_from_every_topic():
    topics = {"cooking": ["A recipe to cook bread in the oven?", "Which oven recipe can I cook with lentils?",
                          "How long should I cook a chicken in the oven for this recipe?"],
              "astronomy": ["Which telescope shows a galaxy and a star cluster?", "Is that star in our galaxy?",
                            "Can a small telescope see a star in another galaxy?"],
              "finance": ["Does a savings account pay interest on a loan?", "How is interest on savings taxed?",
                          "Should my savings pay off the loan interest first?"]}
    prompts = [p for ps in topics.values() for p in ps]
    chosen = diverse(prompts, 3, per_cluster=1)
    assert len(chosen) == 3 and len({i // 3 for i in chosen}) == 3  # one from each topic
    assert diverse(prompts, 50) == list(range(9))


def _battle(prompt_id: str, winner: str, n: int) -> JudgedBattle:
    return JudgedBattle(f"b{prompt_id}{n}", "t", prompt_id, ({"role": "user", "content": "q"},), {},
                        "target", "opponent", "a", "b", 0, 0, winner=winner)


def test_hard_takes_the_prompts_the_model_lost_most():
    battles = [_battle("p1", "model_b", 0), _battle("p1", "model_b", 1),      # lost twice
               _battle("p2", "tie", 0), _battle("p2", "model_a", 1),          # a quarter lost
               _battle("p3", "model_a", 0), _battle("p3", "error", 1),        # won; the error does not count
               _battle("p4", "model_b", 0)]                                    # lost once
    losses = battle_losses(battles, "target")
    assert losses == {"p1": (1.0, 2), "p2": (0.25, 2), "p3": (0.0, 1), "p4": (1.0, 1)}
    prompts = [Prompt(pid, ({"role": "user", "content": pid},)) for pid in ("p0", "p1", "p2", "p3", "p4")]
    assert hard(prompts, 2, losses) == [1, 4]
    assert hard(prompts, 3, losses) == [1, 2, 4]
    with pytest.raises(ValueError, match="no prompt"):
        hard(prompts, 2, battle_losses(battles, "someone else"))


def test_hard_by_score_takes_the_prompts_the_judge_scored_lowest():
    """The verifier's score is the constraints met: the prompts the model met fewest of come first."""
    def scored(prompt_id, mine, theirs, swap=False):
        a, b = ("opponent", "target") if swap else ("target", "opponent")
        return JudgedBattle(f"s{prompt_id}{swap}", "t", prompt_id, ({"role": "user", "content": "q"},), {}, a, b,
                            "x", "y", 0, 0, winner="tie", score_a=theirs if swap else mine, score_b=mine if swap else theirs)

    battles = [scored("p1", 0, 2), scored("p1", 1, 2, swap=True), scored("p2", 2, 0), scored("p3", 1, 1),
               JudgedBattle("sp4", "t", "p4", ({"role": "user", "content": "q"},), {}, "target", "opponent",
                            "x", "y", 0, 0, winner="tie")]  # no score: not a candidate
    scores = battle_scores(battles, "target")
    assert scores == {"p1": (-0.5, 2), "p2": (-2.0, 1), "p3": (-1.0, 1)}
    prompts = [Prompt(pid, ({"role": "user", "content": pid},)) for pid in ("p1", "p2", "p3", "p4")]
    assert hard(prompts, 2, scores) == [0, 2]


def _arena(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "offline_arena.cli", *args], capture_output=True, text=True,
                          timeout=300)


def test_prompts_commands_write_what_they_keep_and_why_the_rest_went(tmp_path):
    ifeval = load_eval_set("ifeval")[7].text
    rows = [{"id": "a", "prompt": LONG, "note": "kept as written"}, {"id": "b", "prompt": LONG.lower()},
            {"id": "c", "prompt": ifeval}, {"id": "d", "prompt": "Explain how tides work."}]
    source = tmp_path / "p.jsonl"
    source.write_text("".join(json.dumps(r) + "\n" for r in rows))
    done = _arena("prompts", "dedup", str(source), "--out", str(tmp_path / "dedup.jsonl"))
    assert done.returncode == 0, done.stderr
    assert [json.loads(line) for line in (tmp_path / "dedup.jsonl").read_text().splitlines()] == [rows[0], rows[2], rows[3]]
    [group] = [json.loads(line) for line in (tmp_path / "dedup.removed.jsonl").read_text().splitlines()]
    assert (group["dropped"], group["kept"], group["kind"]) == ("b", "a", "exact")

    done = _arena("prompts", "decontaminate", str(source), "--against", "ifeval", "--out", str(tmp_path / "clean.jsonl"))
    assert done.returncode == 0, done.stderr
    assert [json.loads(line)["id"] for line in (tmp_path / "clean.jsonl").read_text().splitlines()] == ["a", "b", "d"]
    [why] = [json.loads(line) for line in (tmp_path / "clean.removed.jsonl").read_text().splitlines()]
    assert (why["id"], why["suite"], why["share"], why["item_text"]) == ("c", "ifeval", 1.0, ifeval)

    done = _arena("prompts", "stats", str(source), "--against", "ifeval")
    assert done.returncode == 0 and "4 prompts" in done.stdout and "1 exact" in done.stdout and "ifeval 1" in done.stdout

    done = _arena("prompts", "decontaminate", str(source), "--against", "no-such-set", "--out", str(tmp_path / "x.jsonl"))
    assert done.returncode == 2 and "neither a known evaluation set" in done.stderr


def _recipe(tmp_path: Path, source: str, **prompts) -> Path:
    recipe = {"name": "t", "target": "builtin:smollm2-135m-instruct",
              "opponents": [{"name": "o", "model": "builtin:smollm2-135m-instruct"}], "judge": "pairwise:builtin:smollm2-135m-instruct",
              "stages": [{"kind": "sft"}], "prompts": {"source": source, "per_stage": 6, "heldout": 4, **prompts},
              "evaluation": {"heldout": False, "leaderboard": False, "suites": {"mtbench": {"limit": 1}}}}
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe))
    return path


def test_a_run_drops_evaluation_items_from_its_shards_and_refuses_a_copied_heldout_split(tmp_path):
    from offline_arena.config import load_recipe
    from offline_arena.preflight import PreflightError, format_preflight, preflight
    from offline_arena.shards import heldout_prompts, stage_prompts

    mtbench = load_eval_set("mtbench")
    rows = [{"id": f"own{i}", "prompt": f"Tell me one thing about the number {i} that a child would enjoy."} for i in range(12)]
    rows += [{"id": f"mt{i}", "prompt": item.text} for i, item in enumerate(mtbench[:4])]
    source = tmp_path / "prompts.jsonl"
    source.write_text("".join(json.dumps(r) + "\n" for r in rows))

    recipe = load_recipe(_recipe(tmp_path, str(source)))
    checks = preflight(recipe)
    shard = stage_prompts(recipe, 1, "sft")
    dealt = stage_prompts(load_recipe(_recipe(tmp_path, str(source), decontaminate=False)), 1, "sft")
    planted = [p for p in dealt if p.id.startswith("mt")]
    assert len(dealt) == 6 and planted, "the seeded deal puts an MT-Bench item in the SFT shard (else this checks nothing)"
    assert [p.id for p in shard] == [p.id for p in dealt if not p.id.startswith("mt")]
    assert checks.decontamination["removed"]["round1/sft"] == {"mtbench": len(planted)}
    assert f"{len(planted)} of 6 training prompts removed (mtbench {len(planted)})" in format_preflight(checks)

    # The file's prompts all one held-out prompt reworded a little: the run cannot start.
    held = heldout_prompts(recipe)[0].messages[0]["content"]
    copied = [{"id": f"copy{i}", "prompt": f"{held.replace('Tell me', 'Tell us')} Variant {i}."} for i in range(12)]
    source.write_text("".join(json.dumps(r) + "\n" for r in copied))
    with pytest.raises(PreflightError, match="hold a held-out prompt.*heldout_overlap: allow"):
        preflight(load_recipe(_recipe(tmp_path, str(source))))
    assert preflight(load_recipe(_recipe(tmp_path, str(source), heldout_overlap="allow")))


# The opt-in embedding check (curation/embeddings.py), with the pico model folder as the local encoder.
NEVER = Rule(8, 1.0)  # more than all of an item's 8-grams: never fires, so only the embedding can see a copy


def test_an_eval_item_verbatim_has_cosine_one_and_the_embedding_check_flags_it(pico_model_dir, monkeypatch):
    from offline_arena.curation import embeddings
    from offline_arena.curation.embeddings import EmbeddingRule, embed, paraphrase_matches

    items = [EvalItem("t", "1", "Explain how tides work, in two short paragraphs."),
             EvalItem("t", "2", "Write a haiku about the first snow of the winter in the mountains.")]
    prompts = ["Summarise the plot of Hamlet for a ten-year-old.", items[1].text, "What is 17 times 23?"]
    vectors = embed([items[1].text, "Something else entirely, and longer than it is.", items[1].text], pico_model_dir,
                    batch_size=2)
    assert vectors.shape == (3, 64) and abs(float(vectors[0] @ vectors[2]) - 1.0) < 1e-5  # padding changes nothing
    assert abs(float((vectors ** 2).sum(axis=1)[1]) - 1.0) < 1e-5                        # unit length

    [(prompt, item, cosine)] = [m for m in paraphrase_matches(prompts, items, pico_model_dir, threshold=0.999)]
    assert (prompt, item) == (1, items[1]) and cosine == pytest.approx(1.0, abs=1e-5)
    monkeypatch.setattr(embeddings, "CHUNK", 2)  # prompts compared two at a time: the same answer
    assert [m[:2] for m in paraphrase_matches(prompts, items, pico_model_dir, threshold=0.999)] == [(1, items[1])]

    index = EvalIndex(items, [NEVER])
    assert decontaminate(prompts, index).removed == []   # the n-gram rule alone sees nothing
    rule = EmbeddingRule(str(pico_model_dir), 0.999)
    result = decontaminate(prompts, index, embedding=rule)
    [match] = result.removed
    assert result.kept == [0, 2] and (match.prompt, match.item, match.rule) == (1, items[1], rule)
    assert str(match.rule) == "embedding cosine >= 0.999" and match.share == pytest.approx(1.0, abs=1e-5)
    assert str(EmbeddingRule(str(pico_model_dir))) == "embedding cosine >= 0.90"
    # A (folder, threshold) pair does the same; a prompt the n-gram rules flag keeps its n-gram match.
    both = decontaminate(prompts, EvalIndex(items), embedding=(pico_model_dir, 0.999))
    assert both.kept == [0, 2] and isinstance(both.removed[0].rule, Rule) and both.removed[0].share == 1.0


def test_the_embedding_check_is_off_by_default_and_refuses_what_is_not_a_local_model_folder(tmp_path, ifeval_and_mtbench):
    from offline_arena.curation.embeddings import EmbeddingRule, embed

    items, index = ifeval_and_mtbench
    prompts = [items[3].text, LONG, "Describe the water cycle to a ten-year-old in three short paragraphs."]
    assert decontaminate(prompts, index, embedding=None) == decontaminate(prompts, index)
    (tmp_path / "empty").mkdir()
    for missing in (tmp_path / "nowhere", tmp_path / "empty", "sentence-transformers/all-MiniLM-L6-v2"):
        with pytest.raises(ValueError, match="not a local model folder"):
            embed(["a text"], missing)
        with pytest.raises(ValueError, match="not a local model folder"):
            decontaminate(prompts, index, embedding=(missing, 0.9))
    with pytest.raises(ValueError, match="threshold"):
        EmbeddingRule(str(tmp_path), 1.5)


def test_prompts_decontaminate_embed_model_writes_the_embedding_rule_and_cosine(tmp_path, pico_model_dir, capsys):
    """A prompt that is an item plus a word: the rule 50:0.99 misses it (each text shorter than 50 words is one
    n-gram of its own), the embedding check does not, and the report says so with the cosine as share."""
    from offline_arena.cli import main
    from offline_arena.curation.embeddings import embed

    item = "Write a haiku about the first snow of the winter in the mountains."
    rows = [{"id": "a", "prompt": "Summarise the plot of Hamlet for a ten-year-old."}, {"id": "b", "prompt": item + " Thanks!"}]
    (tmp_path / "eval.jsonl").write_text(json.dumps({"id": "e1", "prompt": item}) + "\n")
    (tmp_path / "p.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    args = ["prompts", "decontaminate", str(tmp_path / "p.jsonl"), "--against", str(tmp_path / "eval.jsonl"),
            "--rule", "50:0.99", "--out", str(tmp_path / "clean.jsonl")]
    assert main(args) == 0 and not (tmp_path / "clean.removed.jsonl").read_text()  # n-grams alone: nothing removed
    assert main([*args, "--embed-model", str(pico_model_dir), "--embed-threshold", "0.95"]) == 0
    assert [json.loads(line) for line in (tmp_path / "clean.jsonl").read_text().splitlines()] == [rows[0]]
    [why] = [json.loads(line) for line in (tmp_path / "clean.removed.jsonl").read_text().splitlines()]
    vectors = embed([rows[1]["prompt"], item], pico_model_dir)
    assert (why["id"], why["item"], why["rule"], why["item_text"]) == ("b", "e1", "embedding cosine >= 0.95", item)
    assert why["share"] == round(float(vectors[0] @ vectors[1]), 3) and 0.95 <= why["share"] < 1
    assert "embedding cosine >= 0.95" in capsys.readouterr().out
    assert main([*args, "--embed-model", str(tmp_path / "nowhere")]) == 2
