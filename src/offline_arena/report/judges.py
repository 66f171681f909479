"""The report's Judges section: every judge of the run audited from the battles it already judged — no
judge is asked anything again. Where a prompt has checkable constraints the verifier's strict counts are
the ground truth (judges/audit.py); an LLM pairwise judge's two single-order verdicts are in its stored
raw record, so its position consistency and bias come for free; a judge that keeps no orders (the
verifier, a reward model, single scores) has none to report."""

from __future__ import annotations

import json
import re
from pathlib import Path

from ..judges.audit import AuditPair, AuditReport, audit_report, orders_from_raw
from ..store import ReadOnlyStore


def _labels(judge: str) -> dict | None:
    """The verdict labels of an LLM pairwise judge, from its fingerprint ("pairwise[mt-bench]:...")."""
    from ..judges.llm_pairwise import SCALES

    match = re.match(r"pairwise\[([\w-]+)\]:", judge)
    return SCALES[match.group(1)].labels if match and match.group(1) in SCALES else None


def _truth(context: dict, text_a: str, text_b: str) -> str:
    from ..prompts.constraints import check_all

    constraints = context.get("constraints")
    if not constraints:
        return "unknown"
    met_a, met_b = sum(check_all(text_a, constraints)), sum(check_all(text_b, constraints))
    return "model_a" if met_a > met_b else "model_b" if met_b > met_a else "tie"


def judge_audits(store_path: str | Path) -> list[AuditReport]:
    """One audit per judge in the store, the judge with most battles first."""
    store_path = Path(store_path)
    if not store_path.is_file():
        return []
    reports = []
    with ReadOnlyStore(store_path) as store:
        for judge in store.judge_counts():
            labels = _labels(judge)
            pairs = []
            for context, text_a, text_b, winner, raw in store.judged_texts(judge):
                orders = orders_from_raw(json.loads(raw), labels) if labels else None
                pairs.append(AuditPair(_truth(json.loads(context), text_a, text_b), winner, orders,
                                       len(text_a.split()), len(text_b.split())))
            if pairs:
                reports.append(audit_report(judge, pairs))
    return reports
