"""The judge audit: its arithmetic on hand-built pairs, a planted position bias found with its size, the
verifier agreeing with itself, an LLM pairwise judge's single-order verdicts read from its raw record, and
`arena judge audit` end to end on the embedded model."""

from __future__ import annotations

import hashlib
import json

import pytest

from offline_arena.evals.judge_audit import audit_pairs, swapped
from offline_arena.judges import VerifierJudge
from offline_arena.judges.audit import (AuditPair, audit_report, binomial_two_sided, format_report, shown_first,
                                        wilson)
from offline_arena.judges.base import Verdict
from offline_arena.judges.llm_pairwise import PairwiseJudge
from offline_arena.prompts import load_prompts
from offline_arena.prompts.constraints import check_all
from offline_arena.prompts.repair import repair_answer
from offline_arena.records import Battle, Completion
from offline_arena.store import Store


def test_the_report_arithmetic_on_hand_built_pairs():
    pairs = [
        # truth, winner, orders (a first, b first), words a, words b
        AuditPair("model_a", "model_a", ("model_a", "model_a"), 10, 20),   # right, consistent
        AuditPair("model_a", "model_b", ("model_b", "model_a"), 10, 20),   # wrong, inconsistent
        AuditPair("model_b", "tie", ("model_a", "model_b"), 10, 20),       # a tie on a decisive pair
        AuditPair("tie", "model_b", ("model_b", "model_b"), 10, 30),       # even: the longer one (b) won
        AuditPair("tie", "model_a", ("model_a", "model_a"), 5, 5),         # even, equal lengths: not counted
        AuditPair("model_b", "error", None, 1, 2),                         # no verdict
    ]
    report = audit_report("scripted", pairs)
    assert (report.pairs, report.decisive, report.errors) == (6, 4, 1)  # decisive: by the verifier, errors too
    # Decisive and decided: rows 1-3; right on row 1 only; decided (no judge tie): rows 1-2.
    assert (report.agreement.hits, report.agreement.n) == (1, 3)
    assert (report.agreement_decided.hits, report.agreement_decided.n) == (1, 2)
    assert report.agreement_decided.p_vs_half == 1.0
    assert (report.tie_rate.hits, report.tie_rate.n) == (1, 5)
    # Orders of the 5 decided pairs: consistent on rows 1, 4, 5.
    assert (report.position_consistency.hits, report.position_consistency.n) == (3, 5)
    # Single-order calls naming the side shown first: order 1 shows a first, order 2 shows b first.
    # Row 1: a (first) / a (second); row 2: b (second) / a (second); row 3: a (first) / b (first);
    # row 4: b (second) / b (first); row 5: a (first) / a (second) -> 5 of 10 pick the first shown.
    assert (report.first_position_wins.hits, report.first_position_wins.n) == (5, 10)
    assert (report.longer_wins_when_even.hits, report.longer_wins_when_even.n) == (1, 1)
    assert report.own_wins_by_judge is None


def test_wilson_and_the_binomial_test_against_hand_values():
    low, high = wilson(8, 10)
    assert abs(low - 0.4902) < 1e-3 and abs(high - 0.9433) < 1e-3  # Wilson 95% for 8/10
    assert abs(binomial_two_sided(9, 10) - 22 / 1024) < 1e-12       # 2 * (1 + 10) / 2^10
    assert binomial_two_sided(5, 10) == 1.0


def test_self_preference_compares_the_judges_share_with_the_verifiers():
    pairs = [AuditPair("model_b", "model_a", ("model_a", "model_a"), 5, 6, own_side="model_a"),
             AuditPair("model_a", "model_a", ("model_a", "model_a"), 5, 6, own_side="model_a"),
             AuditPair("model_a", "model_b", ("model_b", "model_b"), 5, 6, own_side="model_b")]
    report = audit_report("self", pairs)
    assert (report.own_wins_by_judge.hits, report.own_wins_by_judge.n) == (3, 3)
    assert (report.own_wins_by_verifier.hits, report.own_wins_by_verifier.n) == (1, 3)
    assert "self-preference" in format_report(report)


def verifiable_battles(n: int) -> list[Battle]:
    """Battles on the pack's held-out prompts between a plain answer and the same answer repaired to meet
    the constraints (so the verifier usually prefers the repaired one), positions alternated as the audit
    alternates them."""
    battles = []
    for prompt in load_prompts(f"builtin:verifiable:heldout:{n}"):
        constraints = prompt.meta["constraints"]
        draft = "Sleep well, eat well and walk every day. Drink water, and rest when you are tired."
        fixed, _ = repair_answer(draft, constraints, True, prompt.messages[-1]["content"])
        plain, good = Completion(draft, True, 20), Completion(fixed, True, 30)
        a, b = (("plain", plain), ("repaired", good)) if shown_first(prompt.id) else (("repaired", good), ("plain", plain))
        battles.append(Battle(f"b{prompt.id}", "audit", prompt.id, tuple(prompt.messages), dict(prompt.meta),
                              a[0], b[0], f"k-{a[0]}-{prompt.id}", f"k-{b[0]}-{prompt.id}", a[1], b[1]))
    return battles


class FirstPositionBias:
    """A scripted judge with a planted bias: on a share of its calls (picked by a hash of what it is shown,
    so each order of a pair draws on its own) it names whichever answer is shown first; otherwise the
    answer that meets more constraints (a tie when they meet as many)."""

    fingerprint = "scripted:first-position-bias"

    def __init__(self, share: float):
        self.share = share

    def judge(self, matchups):
        verdicts = []
        for m in matchups:
            coin = hashlib.sha256((m.answer_a.text + "|" + m.answer_b.text).encode()).digest()[0] / 256
            if coin < self.share:
                verdicts.append(Verdict("model_a"))
                continue
            a = sum(check_all(m.answer_a.text, m.context["constraints"]))
            b = sum(check_all(m.answer_b.text, m.context["constraints"]))
            verdicts.append(Verdict("model_a" if a > b else "model_b" if b > a else "tie"))
        return verdicts


def test_a_planted_position_bias_is_found_with_its_size(tmp_path):
    battles = verifiable_battles(60)
    with Store(tmp_path / "store.sqlite") as store:
        fair = audit_report("verifier", audit_pairs(VerifierJudge(rule="count-only"), battles, store))
        biased = audit_report("biased", audit_pairs(FirstPositionBias(0.6), battles, store))
    # The verifier agrees with itself and has no position bias.
    assert fair.decisive >= 40 and fair.agreement.share == 1.0 and fair.position_consistency.share == 1.0
    assert fair.first_position_wins.p_vs_half > 0.05
    # The biased judge: first position ~ 0.6 + 0.4 * 0.5 = 0.8 of the calls that pick a side.
    assert 0.68 <= biased.first_position_wins.share <= 0.92, biased.first_position_wins
    assert biased.first_position_wins.p_vs_half < 0.001
    assert biased.position_consistency.share < 0.7
    assert biased.agreement.share < fair.agreement.share
    assert any(note.startswith("position bias: the answer shown first wins") for note in biased.notes)


class AlwaysA:
    """A judge *model* that always answers [[A]] (the code under test is the audit reading its verdicts)."""

    fingerprint = "always-a"

    def render(self, messages):
        return str(messages)

    def generate(self, requests):
        return [Completion("The first one. [[A]]", True, 5) for _ in requests]


def test_a_pairwise_judges_orders_come_from_its_raw_verdicts(tmp_path):
    """An LLM pairwise judge asks both orders itself; the audit reads them instead of asking again. A judge
    model that always answers [[A]] is consistent never and picks the first position always."""

    battles = verifiable_battles(12)
    with Store(tmp_path / "store.sqlite") as store:
        report = audit_report("always-a", audit_pairs(PairwiseJudge(AlwaysA()), battles, store))
        assert not store.judges() or all("swapped" not in b for b in store.judges())
    assert report.first_position_wins.share == 1.0 and report.first_position_wins.n == 24
    assert report.position_consistency.share == 0.0
    assert report.tie_rate.share == 1.0  # MT-Bench's rule: orders that disagree make a tie


def test_the_swapped_battle_exchanges_everything_but_the_prompt():
    [battle] = verifiable_battles(1)
    back = swapped(battle)
    assert (back.model_a, back.answer_a, back.completion_a) == (battle.model_b, battle.answer_b, battle.completion_b)
    assert back.messages == battle.messages and back.id != battle.id


@pytest.mark.slow
@pytest.mark.ci
def test_arena_judge_audit_end_to_end_on_the_embedded_model(tmp_path, capsys):
    from offline_arena.cli import main

    out = tmp_path / "audit.json"
    assert main(["judge", "audit", "verifier:count-only", "--pairs", "6", "--max-new-tokens", "24",
                 "--run-dir", str(tmp_path / "audit"), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "Judge audit: verifier:strict" in printed and "position consistency" in printed
    report = json.loads(out.read_text())
    assert report["pairs"] == 6 and report["agreement"]["share"] in (None, 1.0)
    assert main(["judge", "audit"]) == 2  # no judge named: a clear error, not a traceback


def test_kappas_against_hand_values():
    from offline_arena.judges.audit import cohen_kappa, fleiss_kappa

    # p_o = 2/3, chance = 2/3 * 1/3 + 1/3 * 2/3 = 4/9: (2/3 - 4/9) / (5/9) = 0.4
    assert abs(cohen_kappa(["a", "b", "a"], ["a", "b", "b"]) - 0.4) < 1e-12
    # Fleiss (Scott's pi for two raters): P = (1 + 1 + 0) / 3, chance = 0.5^2 + 0.5^2: (2/3 - 1/2) / (1/2)
    assert abs(fleiss_kappa([["a", "a"], ["b", "b"], ["a", "b"]]) - 1 / 3) < 1e-12
    assert fleiss_kappa([["a", "a", "a"], ["b", "b", "b"]]) == 1.0
    assert cohen_kappa(["a", "a"], ["a", "a"]) is None  # all one label: agreement by chance is certain


def test_panel_specs_parse_once_with_their_members():
    from offline_arena.config import Recipe
    from offline_arena.judges.spec import parse_judge_spec

    spec = parse_judge_spec("panel:verifier,verifier:count-only,pairwise:openai:http://127.0.0.1:1/v1,http://127.0.0.1:2/v1#m")
    assert spec.kind == "panel" and [m.kind for m in spec.members] == ["verifier", "verifier", "pairwise"]
    assert spec.members[2].model == "openai:http://127.0.0.1:1/v1,http://127.0.0.1:2/v1#m"  # the replica comma stays
    assert spec.calls_per_battle == 2 and spec.needs_constraints and not spec.leaves_the_machine
    for bad, says in [("panel:verifier", "at least two members"), ("panel:verifier,panel:verifier,verifier", "cannot hold"),
                      ("panel:verifier,score:", "member 'score:'")]:
        with pytest.raises(ValueError, match=says):
            parse_judge_spec(bad)
    recipe = Recipe.model_validate({"name": "t", "opponents": [{"name": "o", "model": "builtin:smollm2-135m-instruct"}],
                                    "stages": [{"kind": "sft"}], "judge": ["verifier", "verifier:count-only"]})
    assert recipe.judge == "panel:verifier,verifier:count-only"


class Counting:
    """A scripted member that counts the matchups it is asked about."""

    def __init__(self, name: str, pick: str):
        self.fingerprint, self.pick, self.asked = name, pick, 0

    def judge(self, matchups):
        self.asked += len(matchups)
        return [Verdict(self.pick) for _ in matchups]


def test_a_panel_votes_by_majority_and_a_new_member_reuses_the_others_verdicts(tmp_path):
    from offline_arena.judges.base import Matchup
    from offline_arena.judges.panel import PanelJudge, majority

    assert majority(["model_a", "model_a", "model_b"]) == "model_a"
    assert majority(["model_a", "model_b", "tie"]) == "tie"
    assert majority(["model_b", "error", "error"]) == "model_b" and majority(["error"]) == "error"
    matchups = [Matchup(({"role": "user", "content": f"q{i}"},), {}, Completion(f"a{i}", True, 1),
                        Completion(f"b{i}", True, 1)) for i in range(5)]
    one, two, three = Counting("one", "model_a"), Counting("two", "model_b"), Counting("three", "model_b")
    with Store(tmp_path / "store.sqlite") as store:
        first = PanelJudge([one, two], store).judge(matchups)
        assert [v.winner for v in first] == ["tie"] * 5 and one.asked == two.asked == 5
        later = PanelJudge([one, two, three], store).judge(matchups)
    assert [v.winner for v in later] == ["model_b"] * 5
    assert (one.asked, two.asked, three.asked) == (5, 5, 5)  # only the new member was asked
    assert later[0].raw["members"]["three"]["winner"] == "model_b"


def test_the_audit_of_a_panel_of_three_reports_kappa(tmp_path):
    from offline_arena.judges.panel import PanelJudge

    battles = verifiable_battles(40)
    members = [VerifierJudge(rule="count-only"), FirstPositionBias(0.5), FirstPositionBias(0.9)]
    members[2].fingerprint = "scripted:strong-first-position-bias"
    with Store(tmp_path / "store.sqlite") as store:
        panel = PanelJudge(members, store)
        pairs = audit_pairs(panel, battles, store)
        report = audit_report(panel.fingerprint, pairs, members=[m.fingerprint for m in members], calls_per_verdict=0)
    kappas = report.members
    assert kappas["agreement_with_verifier"]["verifier:strict"].share == 1.0
    assert kappas["agreement_with_verifier"]["scripted:strong-first-position-bias"].share < 0.8
    assert kappas["fleiss_kappa"] is not None and -1 <= kappas["fleiss_kappa"] < 1
    assert len(kappas["cohen_kappa"]) == 3
    text = format_report(report)
    assert "Fleiss' kappa" in text and "Cohen's kappa verifier:strict ~ scripted:first-position-bias" in text


def test_the_reports_judges_section_audits_stored_verdicts_without_asking_again(tmp_path):
    """report/judges.py rebuilds the audit from the store alone: the pairwise judge's orders from its raw
    records, the truth from the prompts' constraints; the same numbers as auditing the live judge."""
    from offline_arena.judges import judge_battles
    from offline_arena.records import SamplingParams
    from offline_arena.report.judges import judge_audits

    battles = verifiable_battles(16)
    judge = PairwiseJudge(AlwaysA())
    params = SamplingParams(max_new_tokens=8)
    with Store(tmp_path / "store.sqlite") as store:
        store.put_completions([(key, name, b.prompt_id, params, 0, 0, completion) for b in battles
                               for key, name, completion in ((b.answer_a, b.model_a, b.completion_a),
                                                             (b.answer_b, b.model_b, b.completion_b))])
        store.put_battles(battles)
        judge_battles(judge, battles, store, progress=False)
        live = audit_report(judge.fingerprint, audit_pairs(judge, battles, store))
    audits = {a.judge: a for a in judge_audits(tmp_path / "store.sqlite")}
    assert set(audits) == {"pairwise[mt-bench]:always-a", "verifier:strict"}  # the audit's own truth is stored too
    stored = audits[judge.fingerprint]
    assert audits["verifier:strict"].agreement.share == 1.0
    for measure in ("agreement", "agreement_decided", "tie_rate", "position_consistency", "first_position_wins"):
        assert getattr(stored, measure) == getattr(live, measure), measure
    assert stored.first_position_wins.share == 1.0 and stored.position_consistency.share == 0.0


def test_a_judge_that_never_gives_a_verdict_costs_a_bounded_number_of_tokens():
    """Issue 22: the embedded model as a judge once rambled for minutes. A judge model that never writes a
    verdict is asked (1 + max_retries) times per order, each at most max_new_tokens, and the battle is an
    error — never a guess."""

    class Rambler:
        fingerprint = "rambler"

        def __init__(self):
            self.requests = []

        def render(self, messages):
            return str(messages)

        def generate(self, requests):
            self.requests += requests
            return [Completion("word " * r.params.max_new_tokens, False, r.params.max_new_tokens) for r in requests]

    from offline_arena.judges.base import Matchup
    from offline_arena.records import SamplingParams

    rambler = Rambler()
    judge = PairwiseJudge(rambler, max_retries=1, params=SamplingParams(max_new_tokens=24, temperature=0.0))
    matchups = [Matchup(({"role": "user", "content": f"q{i}"},), {}, Completion("a", True, 1), Completion("b", True, 1))
                for i in range(3)]
    verdicts = judge.judge(matchups)
    assert [v.winner for v in verdicts] == ["error"] * 3
    assert len(rambler.requests) == 3 * 2 * (1 + 1)  # matchups x orders x tries
    assert max(r.params.max_new_tokens for r in rambler.requests) == 24


def test_the_judge_budget_reaches_the_judge_from_a_spec_and_the_dry_run_plan_counts_it():
    from offline_arena.config import Recipe
    from offline_arena.loading import load_judge
    from offline_arena.plan import plan

    panel = load_judge("panel:score:builtin:smollm2-135m-instruct,pairwise:builtin:smollm2-135m-instruct",
                       max_new_tokens=32, max_retries=0)
    assert [(m.params.max_new_tokens, m.max_retries) for m in panel.members] == [(32, 0), (32, 0)]
    base = {"name": "t", "opponents": [{"name": "o", "model": "builtin:smollm2-135m-instruct"}],
            "judge": "pairwise:builtin:smollm2-135m-instruct", "stages": [{"kind": "sft"}]}
    cheap = plan(Recipe.model_validate({**base, "judge_max_new_tokens": 64, "judge_max_retries": 0}))
    dear = plan(Recipe.model_validate({**base, "judge_max_new_tokens": 64, "judge_max_retries": 2}))
    assert dear["totals"]["judge_tokens"] == 3 * cheap["totals"]["judge_tokens"] > 0
