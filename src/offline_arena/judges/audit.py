"""How far a judge can be trusted, measured against ground truth we have: on prompts with checkable
constraints the verifier knows which of two answers meets more of them.

For any judge (LLM pairwise, single-score, reward model, scripted) over pairs of answers:

- **agreement with the verifier** on the decisive pairs (the verifier's strict counts differ): the share
  the judge gives to the answer that meets more constraints — once with the judge's ties counted as misses,
  once among the pairs it decided (MT-Bench reports the second, "without ties"). Chance is 0.5 on the
  decided pairs: a two-sided binomial test says whether the judge is distinguishable from a coin;
- **position consistency**: the same winner when the two answers swap places (MT-Bench: GPT-4 65%). An LLM
  pairwise judge already asks both orders (its raw verdicts are read); any other judge is asked the
  swapped pair as well;
- **position bias**: of the single-order calls that pick a side, the share that pick the first answer
  (0.5 = none), with a binomial test;
- **tie rate** and **errors** (no verdict parsed);
- **length bias**: on the pairs the verifier calls even, how often the longer answer wins a decided verdict
  (0.5 = none);
- **self-preference**, when the judge's model is also a contestant: its own answer's share of the judge's
  decided verdicts against its share of the verifier's decisive ones;
- for a **panel**: each member's agreement with the verifier, the members' agreement with one another
  beyond chance (Cohen's kappa per pair of members, Fleiss' kappa over all), and model calls per verdict.

Pairs are built with the two contestants' positions alternated by a hash of the prompt, so a judge that
always names one position is not mistaken for one that knows which answer is better.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import asdict, dataclass, field
from typing import Sequence

SIDES = ("model_a", "model_b")
OTHER = {"model_a": "model_b", "model_b": "model_a", "tie": "tie"}


@dataclass(frozen=True)
class AuditPair:
    """One judged pair. Sides are the battle's; `orders` are the single-order verdicts mapped back to sides
    (the pair as shown, then swapped), None where the judge gave no such pair of verdicts."""

    truth: str                       # the verifier's strict count: model_a, model_b, tie, or unknown
                                     # (a prompt without checkable constraints)
    winner: str                      # the judge's verdict: model_a, model_b, tie or error
    orders: tuple[str, str] | None   # (verdict with a first, verdict with b first), as sides
    words_a: int
    words_b: int
    own_side: str | None = None      # the side the judge's own model answered, if any
    member_winners: tuple[str, ...] = ()  # a panel's members' verdicts, in the panel's order


@dataclass
class Rate:
    hits: int
    n: int
    p_vs_half: float | None = None   # two-sided exact binomial test against 0.5, where that is the question

    @property
    def share(self) -> float | None:
        return self.hits / self.n if self.n else None

    @property
    def ci(self) -> tuple[float, float] | None:
        return wilson(self.hits, self.n) if self.n else None

    def text(self) -> str:
        if not self.n:
            return "n/a (no pairs)"
        low, high = self.ci
        test = f", p = {self.p_vs_half:.3g} vs 0.5" if self.p_vs_half is not None else ""
        return f"{self.share:.3f} [{low:.3f}, {high:.3f}] ({self.hits}/{self.n}{test})"


@dataclass
class AuditReport:
    judge: str
    pairs: int
    decisive: int
    errors: int
    agreement: Rate                  # on decisive pairs, judge ties count as misses
    agreement_decided: Rate          # on decisive pairs the judge decided (chance 0.5)
    tie_rate: Rate
    position_consistency: Rate
    first_position_wins: Rate
    longer_wins_when_even: Rate
    own_wins_by_judge: Rate | None = None
    own_wins_by_verifier: Rate | None = None
    members: dict | None = None      # a panel: per-member agreement, kappas, calls per verdict
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        def plain(value):
            if isinstance(value, Rate):
                return {**asdict(value), "share": value.share, "ci": value.ci}
            if isinstance(value, dict):
                return {k: plain(v) for k, v in value.items()}
            return value

        return {name: plain(value) for name, value in vars(self).items()}


def wilson(hits: int, n: int, z: float = 1.959964) -> tuple[float, float]:
    """Wilson's 95% interval for a share (sensible at 0 and n, unlike the normal one)."""
    p = hits / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def binomial_two_sided(hits: int, n: int) -> float:
    """Exact two-sided p-value of `hits` in `n` against a fair coin."""
    if n == 0:
        return 1.0
    tail = sum(math.comb(n, k) for k in range(min(hits, n - hits) + 1)) / 2 ** n
    return min(1.0, 2 * tail)


def cohen_kappa(x: Sequence[str], y: Sequence[str]) -> float | None:
    """Cohen's kappa of two raters' labels on the same items: (observed - chance) / (1 - chance)."""
    n = len(x)
    if n == 0:
        return None
    observed = sum(a == b for a, b in zip(x, y)) / n
    chance = sum((list(x).count(c) / n) * (list(y).count(c) / n) for c in set(x) | set(y))
    return None if chance == 1 else (observed - chance) / (1 - chance)


def fleiss_kappa(rows: Sequence[Sequence[str]]) -> float | None:
    """Fleiss' kappa: each row holds every rater's label of one item (the same number of raters each)."""
    if not rows or len(rows[0]) < 2:
        return None
    raters, items = len(rows[0]), len(rows)
    categories = sorted({label for row in rows for label in row})
    counts = [[list(row).count(c) for c in categories] for row in rows]
    agreement = sum((sum(k * k for k in row) - raters) / (raters * (raters - 1)) for row in counts) / items
    shares = [sum(row[j] for row in counts) / (items * raters) for j in range(len(categories))]
    chance = sum(p * p for p in shares)
    return None if chance == 1 else (agreement - chance) / (1 - chance)


def _rate(hits: int, n: int, test: bool = False) -> Rate:
    return Rate(hits, n, binomial_two_sided(hits, n) if test and n else None)


def audit_report(judge: str, pairs: list[AuditPair], members: Sequence[str] = (),
                 calls_per_verdict: int | None = None) -> AuditReport:
    decided = [p for p in pairs if p.winner != "error"]
    decisive = [p for p in decided if p.truth in SIDES]
    sure = [p for p in decisive if p.winner != "tie"]
    ordered = [p for p in decided if p.orders is not None and "error" not in p.orders]
    # A single-order call "picks the first answer" when it names the side shown first: order 1 shows a first.
    calls = [(first, "model_a") for p in ordered for first in [p.orders[0]] if first != "tie"] + \
            [(second, "model_b") for p in ordered for second in [p.orders[1]] if second != "tie"]
    even = [p for p in decided if p.truth == "tie" and p.winner != "tie" and p.words_a != p.words_b]
    longer = lambda p: "model_a" if p.words_a > p.words_b else "model_b"  # noqa: E731
    report = AuditReport(
        judge=judge, pairs=len(pairs), decisive=len([p for p in pairs if p.truth in SIDES]),
        errors=len(pairs) - len(decided),
        agreement=_rate(sum(p.winner == p.truth for p in decisive), len(decisive)),
        agreement_decided=_rate(sum(p.winner == p.truth for p in sure), len(sure), test=True),
        tie_rate=_rate(sum(p.winner == "tie" for p in decided), len(decided)),
        position_consistency=_rate(sum(p.orders[0] == p.orders[1] for p in ordered), len(ordered)),
        first_position_wins=_rate(sum(side == shown_first for side, shown_first in calls), len(calls), test=True),
        longer_wins_when_even=_rate(sum(p.winner == longer(p) for p in even), len(even), test=True))
    own = [p for p in decided if p.own_side]
    if own:
        judged = [p for p in own if p.winner != "tie"]
        truthful = [p for p in own if p.truth in SIDES]
        report.own_wins_by_judge = _rate(sum(p.winner == p.own_side for p in judged), len(judged))
        report.own_wins_by_verifier = _rate(sum(p.truth == p.own_side for p in truthful), len(truthful))
    if members:
        report.members = _panel(members, pairs, calls_per_verdict)
    report.notes = _notes(report)
    return report


def _panel(members: Sequence[str], pairs: list[AuditPair], calls_per_verdict: int | None) -> dict:
    """Each member's agreement with the verifier, and the members' agreement with one another on the
    pairs every member decided."""
    voted = [p for p in pairs if len(p.member_winners) == len(members)]
    complete = [p.member_winners for p in voted if "error" not in p.member_winners]
    agreement = {}
    for i, name in enumerate(members):
        sure = [p for p in voted if p.truth in SIDES and p.member_winners[i] not in ("tie", "error")]
        agreement[name] = _rate(sum(p.member_winners[i] == p.truth for p in sure), len(sure), test=True)
    pairwise = {f"{members[i]} ~ {members[j]}": cohen_kappa([r[i] for r in complete], [r[j] for r in complete])
                for i in range(len(members)) for j in range(i + 1, len(members))}
    return {"agreement_with_verifier": agreement, "cohen_kappa": pairwise, "fleiss_kappa": fleiss_kappa(complete),
            "pairs_all_members_decided": len(complete), "calls_per_verdict": calls_per_verdict}


def _notes(report: AuditReport) -> list[str]:
    """What a reader should take away, in words."""
    notes = []
    a = report.agreement_decided
    if a.n and a.p_vs_half is not None and a.p_vs_half >= 0.05:
        notes.append(f"agreement with the verifier ({a.share:.2f} of {a.n} decided pairs) is not distinguishable "
                     f"from chance (p = {a.p_vs_half:.2g}): this judge's verdicts are close to coin flips here")
    f = report.first_position_wins
    if f.n and f.p_vs_half is not None and f.p_vs_half < 0.05:
        notes.append(f"position bias: the answer shown {'first' if f.share > 0.5 else 'second'} wins "
                     f"{max(f.share, 1 - f.share):.2f} of single-order calls (p = {f.p_vs_half:.2g})")
    length = report.longer_wins_when_even
    if length.n and length.p_vs_half is not None and length.p_vs_half < 0.05:
        notes.append(f"length bias: on pairs the verifier calls even the {'longer' if length.share > 0.5 else 'shorter'} "
                     f"answer wins {max(length.share, 1 - length.share):.2f} (p = {length.p_vs_half:.2g})")
    if report.errors:
        notes.append(f"{report.errors} of {report.pairs} pairs got no verdict (counted as errors, left out above)")
    return notes


def format_report(report: AuditReport) -> str:
    lines = [f"Judge audit: {report.judge}",
             f"  pairs {report.pairs}, decisive by the verifier {report.decisive}, judge errors {report.errors}",
             f"  agreement with the verifier (decisive pairs, ties as misses)  {report.agreement.text()}",
             f"  agreement with the verifier (decided pairs; chance 0.5)       {report.agreement_decided.text()}",
             f"  position consistency (same winner after a swap)              {report.position_consistency.text()}",
             f"  first position wins (single-order calls; 0.5 = no bias)      {report.first_position_wins.text()}",
             f"  tie rate                                                     {report.tie_rate.text()}",
             f"  longer answer wins when the verifier calls it even           {report.longer_wins_when_even.text()}"]
    if report.own_wins_by_judge is not None:
        lines += [f"  self-preference: own answer wins by the judge                {report.own_wins_by_judge.text()}",
                  f"                   own answer wins by the verifier             {report.own_wins_by_verifier.text()}"]
    if report.members:
        panel = report.members
        lines.append(f"  panel: model calls per verdict {panel['calls_per_verdict']}, Fleiss' kappa "
                     f"{_number(panel['fleiss_kappa'])} over {panel['pairs_all_members_decided']} pairs every member decided")
        lines += [f"    {name}: agreement with the verifier (decided) {rate.text()}"
                  for name, rate in panel["agreement_with_verifier"].items()]
        lines += [f"    Cohen's kappa {pair}: {_number(kappa)}" for pair, kappa in panel["cohen_kappa"].items()]
    lines += [f"  - {note}" for note in report.notes]
    return "\n".join(lines)


def _number(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def shown_first(prompt_id: str, seed: int = 0) -> bool:
    """Whether the first contestant is shown first on this prompt: alternated by a hash, so each model sits
    in each position about half the time, the same on every machine."""
    return hashlib.sha256(f"audit:{seed}:{prompt_id}".encode()).digest()[0] % 2 == 0


def order_verdicts(judge, verdict_raw: dict) -> tuple[str, str] | None:
    """The two single-order verdicts of an LLM pairwise judge (kept in its raw record), as sides of the
    pair as shown: (verdict with a first, verdict with b first). None for a judge that keeps no orders
    (it is asked the swapped pair instead)."""
    scale = getattr(judge, "scale", None)
    return None if scale is None else orders_from_raw(verdict_raw, scale.labels)


def orders_from_raw(verdict_raw: dict, labels: dict) -> tuple[str, str]:
    """`order_verdicts` from a stored raw record and the judge's verdict labels (token -> (position, strength))."""
    first, second = verdict_raw.get("verdict_ab"), verdict_raw.get("verdict_ba")
    if first is None or second is None:  # a verdict that never parsed
        return "error", "error"
    position = {"A": "model_a", "B": "model_b", "tie": "tie"}
    return position[labels[first][0]], OTHER[position[labels[second][0]]]
