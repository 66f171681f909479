"""`arena judge audit JUDGE`: two contestants answer prompts with checkable constraints, the verifier's
strict counts say which answer is better, and the judge is scored against that (judges/audit.py says what
is measured). Everything goes through the store: answers, the verifier's and the judge's verdicts, so a
rerun, or an audit of another judge on the same pairs, asks only for what is new."""

from __future__ import annotations

from dataclasses import replace
from typing import Sequence

from ..judges.audit import OTHER, AuditPair, AuditReport, audit_report, order_verdicts, shown_first
from ..records import Battle

DEFAULT_MODELS = ("builtin:smollm2-135m-instruct", "builtin:smollm2-135m-instruct@revise")
DEFAULT_PROMPTS = "builtin:verifiable:heldout:{pairs}"


def swapped(battle: Battle) -> Battle:
    """The same battle with the answers' places exchanged (judged on its own: its own judgment key)."""
    return replace(battle, id=f"{battle.id}/swapped", model_a=battle.model_b, model_b=battle.model_a,
                   answer_a=battle.answer_b, answer_b=battle.answer_a,
                   completion_a=battle.completion_b, completion_b=battle.completion_a)


def audit_pairs(judge, battles: Sequence[Battle], store, own_model: str | None = None) -> list[AuditPair]:
    """Judge `battles` with `judge` and with the verifier (strict counts, no tie-breaks), both through the
    store; a judge that keeps no single-order verdicts is asked the swapped battles too."""
    from ..judges import VerifierJudge, judge_battles
    from ..judges.base import judgment_key

    truth = judge_battles(VerifierJudge(rule="count-only"), battles, store, progress=False)
    judged = judge_battles(judge, battles, store)
    keys = [judgment_key(judge.fingerprint, b.messages, b.answer_a, b.answer_b) for b in battles]
    raw = store.get_judgments(keys)
    orders = [order_verdicts(judge, raw[key]["raw"]) for key in keys]
    if any(o is None for o in orders):
        back = judge_battles(judge, [swapped(b) for b in battles], store)
        orders = [(j.winner, OTHER.get(s.winner, "error")) for j, s in zip(judged, back)]
    members = [m.fingerprint for m in getattr(judge, "members", ())]
    pairs = []
    for battle, verdict, true, order, key in zip(battles, judged, truth, orders, keys):
        own = next((side for side in ("model_a", "model_b") if own_model and battle.side(side)[0] == own_model), None)
        votes = raw[key]["raw"]
        member_winners = tuple(votes.get("members", {}).get(m, {}).get("winner", "error") for m in members)
        pairs.append(AuditPair(truth=true.winner, winner=verdict.winner, orders=order,
                               words_a=len(battle.completion_a.text.split()),
                               words_b=len(battle.completion_b.text.split()), own_side=own,
                               member_winners=member_winners))
    return pairs


def run_audit(judge_spec: str, store, pairs: int = 200, models: Sequence[str] = DEFAULT_MODELS,
              prompts: str | None = None, params=None, seed: int = 0, batch_size: int | None = None,
              judge_max_new_tokens: int = 512, judge_max_retries: int = 2) -> AuditReport:
    """Audit the judge `judge_spec` on `pairs` prompts answered by the two `models` (alternating positions)."""
    from ..battles import run_battles
    from ..judges import parse_judge_spec
    from ..loading import load_generator, load_judge
    from ..prompts import load_prompts
    from ..records import SamplingParams

    if len(models) != 2 or models[0] == models[1]:
        raise ValueError(f"a judge audit needs two different contestants, got {list(models)}")
    prompt_list = load_prompts(prompts or DEFAULT_PROMPTS.format(pairs=pairs))[:pairs]
    if not all(p.meta.get("constraints") for p in prompt_list):
        raise ValueError("a judge audit needs prompts with checkable constraints (the verifier is its ground "
                         "truth), e.g. builtin:verifiable:heldout:200")
    params = params or SamplingParams(max_new_tokens=256, temperature=0.7)
    first, second = models
    contestants = {name: load_generator(name, store=store, batch_size=batch_size) for name in models}
    schedule = [(p, first, second) if shown_first(p.id, seed) else (p, second, first) for p in prompt_list]
    battles = run_battles(schedule, contestants, store, params, seed=seed, tag="audit")
    spec = parse_judge_spec(judge_spec)
    judge = load_judge(spec, store=store, max_new_tokens=judge_max_new_tokens, max_retries=judge_max_retries)
    own = next((j.model for j in spec.judges if j.asks_a_model and j.model in models), None)
    return audit_report(judge.fingerprint, audit_pairs(judge, battles, store, own_model=own),
                        members=[m.fingerprint for m in getattr(judge, "members", ())],
                        calls_per_verdict=spec.calls_per_battle)
