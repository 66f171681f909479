"""PERSON: without an NER model Presidio finds no names. These recognizers find them where clinical text
marks them — after a title, a label, a relation word, before a credential — and, through the census lists
(word_lists.py), "First Last" pairs anywhere; the Lowercase* ones do the same in text written all in
lowercase. `repeated_mentions` then finds the other mentions of a name or place already found."""

from __future__ import annotations

import regex
from presidio_analyzer import EntityRecognizer, LocalRecognizer, Pattern, PatternRecognizer, RecognizerResult

from .recognizers import CASE_SENSITIVE, LOWER_WORD, NAME_TOKEN_LONG
from .word_lists import census_name, common_surnames, given_names, lowercase_given_names, ordinary_words


# A word that starts the next field of a form ("DOB:", "MRN 123") ends a name.
NOT_A_FIELD = r"(?![A-Za-z]+[ \t]*:|(?:DOB|MRN|SSN|Age|Sex|Gender|Date|Phone|Tel|Fax|Email|Address)\b)"
# "First Last", "First M. Last", "Last, First", up to three tokens, one space apart.
FULL_NAME = (rf"{NAME_TOKEN_LONG}(?:,[ ]?{NOT_A_FIELD}{NAME_TOKEN_LONG})?"
             rf"(?:[ ](?:[A-Z]\.?[ ])?{NOT_A_FIELD}{NAME_TOKEN_LONG}){{0,2}}")

TITLES = r"(?:Dr|Doctor|Mr|Mrs|Ms|Mx|Miss|Prof|Professor|Nurse|Sister)"
NAME_LABELS = (r"(?i:patient(?:'s)?(?:\s+name)?|pt(?:\s+name)?|name|full\s+name|client|resident|"
               r"(?:electronically\s+)?signed(?:\s+by)?|attending(?:\s+physician)?|provider|pcp|"
               r"(?:referring|ordering|primary\s+care)\s+(?:physician|provider|doctor|clinician)|referred\s+by|"
               r"seen\s+by|dictated\s+by|cc:|contact|emergency\s+contact|guardian|next\s+of\s+kin|nok|"
               r"(?:his|her|their|the)\s+(?:daughter|son|husband|wife|partner|mother|father|sister|brother|"
               r"spouse|neighbou?r|friend|carer|caregiver|grandson|granddaughter|niece|nephew))")
CREDENTIALS = r"(?:MD|M\.D\.|DO|D\.O\.|NP|RN|PA-C|PA|PhD|DDS|DMD|PharmD|LCSW|MSW|APRN|CNM|FNP|DNP)\b"


def name_recognizers() -> list[EntityRecognizer]:
    """PERSON: without an NER model Presidio finds no names. These find names where clinical text marks
    them — after a title, a label, a relation word, before a credential — and, through the census lists
    of given names and surnames, "First Last" pairs anywhere."""
    return [
        PatternRecognizer(
            "PERSON", name="TitledNameRecognizer", global_regex_flags=CASE_SENSITIVE,
            patterns=[Pattern("after a title", rf"(?<=\b{TITLES}\.?[ \t]+)(?:[A-Z]\.[ \t]*)*{FULL_NAME}", 0.85)]),
        PatternRecognizer(
            "PERSON", name="LabelledNameRecognizer", global_regex_flags=CASE_SENSITIVE,
            patterns=[Pattern("after a label", rf"(?<=\b{NAME_LABELS}[ \t]*(?:[:\-][ \t]*|[ \t]))"
                                               rf"(?:{TITLES}\.?[ \t]+)?{FULL_NAME}", 0.8)]),
        PatternRecognizer(
            "PERSON", name="CredentialedNameRecognizer", global_regex_flags=CASE_SENSITIVE,
            patterns=[Pattern("before a credential", rf"\b{FULL_NAME}(?=,?[ \t]+{CREDENTIALS}|,[ \t]*{CREDENTIALS})", 0.8)]),
        GivenNameRecognizer(),
        SurnamePairRecognizer(),
        LowercaseNameRecognizer(),
        LowercaseNamePairRecognizer(),
    ]


class GivenNameRecognizer(LocalRecognizer):
    """PERSON: a census given name followed by a capitalised surname ("Robert Mensah", "Mary J. Chen").
    Matches are searched overlapped, so "Yesterday John Smith" still yields "John Smith"."""

    PATTERN = regex.compile(rf"\b([A-Z][a-z]+)(?:[ ][A-Z]\.?)?[ ]{NOT_A_FIELD}{NAME_TOKEN_LONG}\b", CASE_SENSITIVE)

    def __init__(self):
        super().__init__(supported_entities=["PERSON"], name="GivenNameRecognizer")

    def load(self) -> None:
        pass

    def analyze(self, text, entities, nlp_artifacts=None):
        return [RecognizerResult("PERSON", m.start(), m.end(), 0.6)
                for m in self.PATTERN.finditer(text, overlapped=True) if m.group(1) in given_names()]


class SurnamePairRecognizer(LocalRecognizer):
    """PERSON: a capitalised word followed by one of the 30,000 commonest census surnames ("Kwame
    Johnson", "Aoife O'Sullivan"): given names the census lacks, with a surname it has. The first word must
    be no everyday word (`ordinary_words`: "The Johnson", "Will Smith", "Explain Newton" are left). On
    bench/deidentify.py's running-text sentences this took full names with no cue from 43% to 81% (and
    the notes' uncued names from 47% to 62%), with no more of its no-name sentences, and no prompt of the
    verifiable pack, changed."""

    PATTERN = regex.compile(r"\b([A-Z][a-z]+)(?:[ ][A-Z]\.)?[ ]((?:[A-Z]['’])?[A-Z][a-z]+(?:-[A-Z][a-z]+)?)\b",
                            CASE_SENSITIVE)

    def __init__(self):
        super().__init__(supported_entities=["PERSON"], name="SurnamePairRecognizer")

    def load(self) -> None:
        pass

    def analyze(self, text, entities, nlp_artifacts=None):
        out = []
        for m in self.PATTERN.finditer(text, overlapped=True):
            surname = regex.sub(r"['’]", "", m.group(2).lower())  # the census writes O'Brien as OBRIEN
            if m.group(1).lower() not in ordinary_words() and (
                    surname in common_surnames() or any(p in common_surnames() for p in surname.split("-"))):
                out.append(RecognizerResult("PERSON", m.start(), m.end(), 0.5))
        return out


LOWER_GAP = regex.compile(r"[ \t](?:[a-z]\.[ \t])?")  # one space, or a middle initial: "mary j. chen"
COMMA_GAP = regex.compile(r"[ \t]*,[ \t]*")  # "patel, karen"
INFLECTED = regex.compile(r"(?:ed|ing|ly|[^s']s)$")  # "reviewed", "lives": a verb, not a surname
INFLECTED_FIRST = regex.compile(r"(?:ed|ing|ly)$")  # a name's first word may end in s: "lars", "agnes"


def lowercase_words_from(text: str, pos: int, limit: int = 3) -> list:
    """The lowercase words from `pos` on that could be a name: up to `limit`, one space (or an initial)
    apart, up to the first everyday word; "last, first" when the census lists one of the two. A word that
    looks inflected ("dr. okafor reviewed", "her son james works") ends the name unless the census lists
    it as a given name or among its 5,000 commonest surnames ("jones", "fields"; "works" is rank 10,398)."""
    found = []
    while len(found) < limit:
        m = LOWER_WORD.match(text, pos)
        if not m or m.group() in ordinary_words():
            break
        if (INFLECTED if found else INFLECTED_FIRST).search(m.group()) and not census_name(m.group()):
            break
        found.append(m)
        gap = LOWER_GAP.match(text, m.end())
        if not gap and len(found) == 1:
            comma = COMMA_GAP.match(text, m.end())
            given = comma and LOWER_WORD.match(text, comma.end())
            if given and (given.group() in lowercase_given_names() or m.group() in common_surnames()):
                found.append(given)
            break
        if not gap:
            break
        pos = gap.end()
    return found


def looks_like_a_name(words) -> bool:
    """One of the first two words is a census given name, or the second a common census surname, or the
    first one before a comma ("patel, ekaterina")."""
    if any(w.group() in lowercase_given_names() for w in words[:2]):
        return True
    if len(words) > 1 and "," in words[0].string[words[0].end():words[1].start()]:
        return words[0].group() in common_surnames()
    return len(words) > 1 and words[1].group() in common_surnames()


class LowercaseNameRecognizer(LocalRecognizer):
    """PERSON in text written in lowercase ("dear siobhan okafor,", "patient: mary chen", "dr. okafor",
    "paul okonkwo, md"), whose capitals the recognizers above need. Lowercase, a cue alone says less
    ("patient: chest pain", "her daughter lives nearby"), so the words after it must look like a name:
    none is an everyday word (`ordinary_words`) or looks inflected. After a salutation the name runs to
    the comma or the line's end; after a title, a "name:" or a signature label it is taken as it is; after
    the other labels, a relation word, or before a credential it must also pass `looks_like_a_name`."""

    SALUTATION, STRONG, WEAK = "salutation", "strong", "weak"
    TITLE = r"(?:dr|mr|mrs|ms|mx|prof)"
    SIGNATURE_LABELS = (r"(?i:(?:(?:patient(?:'s)?|pt|full)\s+)?name|(?:electronically\s+)?signed(?:\s+by)?|"
                        r"attending(?:\s+physician)?|provider|pcp|(?:referring|ordering|primary\s+care)\s+"
                        r"(?:physician|provider|doctor|clinician)|referred\s+by|seen\s+by|dictated\s+by|guardian|"
                        r"next\s+of\s+kin|nok|emergency\s+contact)")
    CUES = [
        (regex.compile(rf"(?:^|(?<=[\n.!?:\"“]))[ \t]*(?i:dear|hi|hello)[ \t]+(?:(?i:{TITLE})\.?[ \t]+)?", CASE_SENSITIVE),
         SALUTATION),
        (regex.compile(rf"\b(?i:{TITLE})\.[ \t]*|\b(?i:mrs)[ \t]+", CASE_SENSITIVE), STRONG),
        (regex.compile(rf"\b{SIGNATURE_LABELS}[ \t]*:[ \t]*(?:(?i:{TITLE})\.?[ \t]+)?|"
                       rf"\b(?i:(?:electronically\s+)?signed\s+by|dictated\s+by)[ \t]+(?:(?i:{TITLE})\.?[ \t]+)?",
                       CASE_SENSITIVE), STRONG),
        (regex.compile(rf"\b{NAME_LABELS}[ \t]*(?::[ \t]*|[ \t]+)(?:(?i:{TITLE})\.?[ \t]+)?", CASE_SENSITIVE), WEAK),
    ]
    SALUTATION_END = regex.compile(r"[ \t]*(?:[,!:;\n]|$)")
    CREDENTIAL = regex.compile(r"(?<=[a-z]),?[ \t]*(?:md|m\.d\.|do|d\.o\.|np|rn|pa-c|pa|phd|dds|dmd|pharmd|lcsw|msw|"
                               r"aprn|cnm|fnp|dnp)(?=[ \t]*(?:[.,;:)\n]|$))", CASE_SENSITIVE)
    BEFORE_CREDENTIAL = regex.compile(r"(?:[a-z][a-z'’-]*[ \t]+(?:[a-z]\.[ \t]+)?){0,2}[a-z][a-z'’-]*$")

    def __init__(self):
        super().__init__(supported_entities=["PERSON"], name="LowercaseNameRecognizer")

    def load(self) -> None:
        pass

    def analyze(self, text, entities, nlp_artifacts=None):
        spans = set()
        for cue, strength in self.CUES:
            for c in cue.finditer(text):
                words = lowercase_words_from(text, c.end())
                if not words:
                    continue
                if strength == self.SALUTATION and not self.SALUTATION_END.match(text, words[-1].end()):
                    continue
                if strength == self.WEAK and not looks_like_a_name(words):
                    continue
                spans.add((words[0].start(), words[-1].end()))
        for c in self.CREDENTIAL.finditer(text):
            before = self.BEFORE_CREDENTIAL.search(text, max(0, c.start() - 80), c.start())
            if not before:
                continue
            words = [w for w in LOWER_WORD.finditer(text, before.start(), c.start()) if len(w.group()) > 1]
            while words and any(w.group() in ordinary_words() for w in words):
                words.pop(0)  # "dictated by paul okonkwo": the name starts after the last everyday word
            if words and looks_like_a_name(words):
                spans.add((words[0].start(), words[-1].end()))
        return [RecognizerResult("PERSON", start, end, 0.6) for start, end in sorted(spans)]


class LowercaseNamePairRecognizer(LocalRecognizer):
    """PERSON with no cue in lowercase text: a census given name followed by a common census surname
    ("discussed with john kim"). The lowercase counterpart of GivenNameRecognizer, which without capitals
    needs the surname list as well."""

    PATTERN = regex.compile(r"\b([a-z]+)[ ](?:[a-z]\.[ ])?([a-z]+(?:-[a-z]+)?)\b", CASE_SENSITIVE)

    def __init__(self):
        super().__init__(supported_entities=["PERSON"], name="LowercaseNamePairRecognizer")

    def load(self) -> None:
        pass

    def analyze(self, text, entities, nlp_artifacts=None):
        return [RecognizerResult("PERSON", m.start(), m.end(), 0.5) for m in self.PATTERN.finditer(text, overlapped=True)
                if m.group(1) in lowercase_given_names() and m.group(2) in common_surnames()]


WORD = regex.compile(r"[A-Za-z][A-Za-z'’-]+")


def mention_words(text: str, found: list[RecognizerResult]) -> dict[str, set[str]]:
    """The words of the names and places found in `text`, by entity type (titles and credentials left out)."""
    words: dict[str, set[str]] = {}
    for r in found:
        if r.entity_type in ("PERSON", "LOCATION"):
            words.setdefault(r.entity_type, set()).update(
                w for w in WORD.findall(text[r.start:r.end]) if w.capitalize() not in NOT_NAME_WORDS)
    return words


def repeated_mentions(text: str, words: dict[str, set[str]]) -> list[RecognizerResult]:
    """The other mentions of names and places already found ("Patient: Niamh Thompson" ... "Niamh
    reports"; "Albany, NY" ... "lives in Albany"), in any case: a model's answer may be all lowercase (a
    lowercase constraint, an opponent that lowercases) or all capitals, and still name the patient.

    A found word that is also an everyday word ("Grace", "Lee", the "Lake" and "City" of Salt Lake City)
    is taken lowercase only next to another word of a found name ("dear grace lee"); alone, only
    capitalised or in capitals, so that "with grace" and "we will" are left alone."""
    out = []
    for kind in sorted(words):
        found = {w.lower() for w in words[kind]}
        if not found:
            continue
        strong = sorted(w for w in found if w not in ordinary_words())
        weak = sorted(w for w in found if w in ordinary_words())
        alternatives = []
        if strong:
            alternatives.append(rf"(?i:{_words_regex(strong)})")
        if weak:
            weak_any_case = rf"(?i:{_words_regex(weak)})"
            any_found = rf"(?i:{_words_regex(sorted(found))})"
            alternatives += [_words_regex(sorted({v for w in weak for v in (w.upper(), w.capitalize())})),
                             rf"{weak_any_case}(?={MENTION_GAP}{any_found}\b)",
                             rf"(?<=\b{any_found}{MENTION_GAP}){weak_any_case}"]
        pattern = regex.compile(rf"(?<!\w)(?:{'|'.join(alternatives)})(?!\w)", CASE_SENSITIVE)
        out += [RecognizerResult(kind, m.start(), m.end(), 0.75) for m in pattern.finditer(text)]
    return out


# Between two words of one name: "Grace Lee", "Lee, Grace", "Grace M. Lee".
MENTION_GAP = r"(?:[ \t]*,[ \t]*|[ \t]+)(?:[A-Za-z]\.?[ \t]+)?"


def _words_regex(words) -> str:
    """An alternation of the words, longest first, with either apostrophe (O'Brien, O’Brien)."""
    return "|".join(regex.sub(r"\\?['’]", "['’]", regex.escape(w)) for w in sorted(words, key=lambda w: (-len(w), w)))


# Words inside a found name span that must not be propagated on their own (titles, credentials, labels).
NOT_NAME_WORDS = frozenset("Dr Doctor Mr Mrs Ms Mx Miss Prof Professor Nurse Sister Md Do Np Rn Pa Phd Dds "
                           "Pharmd Jr Sr Ii Iii The And Of".split())
