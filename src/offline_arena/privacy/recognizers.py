"""Our recognizers, only for what Presidio lacks when it runs offline (pattern recognizers, no NER model).

Presidio's own recognizers cover email, phone/fax, URL, IP, SSN, credit cards, US bank numbers, driver's
licences, passports, DEA and NPI numbers, Medicare MBIs, insurance member IDs, MAC addresses and numeric
dates. What it finds only through a spaCy NER model (PERSON, LOCATION, written-out dates) — and a few
kinds it has no recognizer for at all (MRN, street addresses, ZIP codes, VINs, device serials, ages over
89) — is added here, as Presidio `PatternRecognizer`s so that they run through the same analyzer, scores
and overlap handling. Each block says which gap it fills.

Patterns are written for the `regex` module Presidio compiles them with (variable-length look-behind).
Presidio's default flags include IGNORECASE; recognizers that rely on capital letters (names, VINs) pass
their own flags and mark case-insensitive parts with `(?i:...)`. Text written all in lowercase (a
lowercase constraint, an opponent that lowercases its answers) has lost those capitals: the Lowercase*
recognizers and the lowercase date and VIN patterns find what its cues still show.
"""

from __future__ import annotations

import functools
from importlib import resources

import regex
from presidio_analyzer import EntityRecognizer, LocalRecognizer, Pattern, PatternRecognizer, RecognizerResult

CASE_SENSITIVE = regex.MULTILINE | regex.DOTALL
IGNORE_CASE = CASE_SENSITIVE | regex.IGNORECASE

# The label part of "Label: value" patterns: optional "number"/"no."/"#"/"ID" and a separator.
NUMBER_WORD_REQUIRED = r"\s*(?:number|num\b\.?|no\b\.?|nbr\b|#|id\b)"
NUMBER_WORD = rf"(?:{NUMBER_WORD_REQUIRED})?"
SEP = r"\s*(?:[:#=]\s*|\s)\s*"
ID_VALUE = r"(?=[A-Z0-9-]*\d)[A-Z0-9][A-Z0-9-]{2,24}\b"  # an identifier holds at least one digit

# One name token: capitalised or all capitals, with apostrophes and hyphens (O'Brien, Gonzalez-Vega).
NAME_TOKEN = r"[A-Z][A-Za-z]*(?:['’-][A-Z][A-Za-z]+)*"
# At least two letters: Smith, SMITH, McCarthy, DeShawn, O'Brien, Gonzalez-Vega.
NAME_TOKEN_LONG = r"(?:[A-Z]['’])?(?:[A-Z][a-z]+(?:[A-Z][a-z]+)*|[A-Z]{2,})(?:-(?:[A-Z][a-z]+|[A-Z]{2,}))*"
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


def presidio_recognizers() -> list[EntityRecognizer]:
    """Presidio's own recognizers for the kinds it covers without a model: generic ones and the US ones
    (several healthcare ones ship disabled in its default configuration; enabled here)."""
    from presidio_analyzer import predefined_recognizers as p

    classes = [p.CreditCardRecognizer, p.DateRecognizer, p.IbanRecognizer, p.IpRecognizer,
               p.MacAddressRecognizer, p.PhoneRecognizer, p.UrlRecognizer, p.UuidRecognizer,
               p.UsSsnRecognizer, p.UsItinRecognizer, p.UsLicenseRecognizer, p.UsPassportRecognizer,
               p.UsBankRecognizer, p.AbaRoutingRecognizer, p.MedicalLicenseRecognizer, p.UsNpiRecognizer,
               p.UsMbiRecognizer, p.UsHealthInsuranceMemberIdRecognizer, p.UsPriorAuthorizationNumberRecognizer,
               p.UsClaimNumberRecognizer, p.UsPrescriptionNumberRecognizer, p.UsReferralNumberRecognizer,
               p.UsProviderTaxIdRecognizer]
    return [cls() for cls in classes] + [OfflineEmailRecognizer()]


def OfflineEmailRecognizer():
    """Presidio's EmailRecognizer, but its domain check uses tldextract's bundled public-suffix snapshot:
    the stock check fetches the list from the internet on first use."""
    import tldextract
    from presidio_analyzer.predefined_recognizers import EmailRecognizer

    extract = tldextract.TLDExtract(suffix_list_urls=(), cache_dir=None)

    class Offline(EmailRecognizer):
        def validate_result(self, pattern_text: str):
            return extract(pattern_text).fqdn != ""

    return Offline()


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


@functools.lru_cache(maxsize=1)
def given_names() -> frozenset[str]:
    """The US Census 1990 given names (5,494), as shipped by the `names` package (MIT; the data is public
    domain). Names that are also common English words are left out: a capitalised "May" or "Will"
    starting a sentence is no name."""
    found = set()
    for file in ("dist.male.first", "dist.female.first"):
        text = (resources.files("names") / file).read_text(encoding="utf-8")
        found.update(line.split()[0].capitalize() for line in text.splitlines() if line.strip())
    # The census also lists "In", "My", "An", "So", "See" and "Many": "In Python" is no name.
    return frozenset(n for n in found - COMMON_WORD_NAMES if n.lower() not in ordinary_words())


# Census given names that are everyday English words (or months/days), which capitalised at the start of
# a sentence or in a title ("Will Power", "May Day") would otherwise be taken for names.
COMMON_WORD_NAMES = frozenset("""
Will May June April August Mark Bill Grant Hope Faith Joy Rose Summer Autumn Dawn Eve Max Page Sky Star
Art Rich Ray Pat Sue Don Guy Earl Frank Grace Lane Chance Hunter Major Royal Sterling Son Young Long
Love Rock Ruby Pearl Ivy Holly Iris Jewel Angel Crystal Destiny Harmony Melody Precious Sunshine Wood
Carol Else Gay Gene Lily Olive Violet Heather Sandy Misty Stormy Colt Cash Reed Rod Dean Rusty Chase
Drew Dale Glen Glenn Lee Ben Bud Buck Clay Cliff Cole Dick Doc Ed Hal Jack Jay Kit Mack Noble Pierce
Price Ransom Rex Russell Sonny Van Wade Ward West Wiley Will Willy Winter Brook Brooke Fern Flora Ginger
Honey Lacy Lark Linen Marvel Merry Mercy Mina Nova Patience Prudence Queen Rain Robin Sage Shelby Spring
Tempest Trinity Unique Velvet Worthy Zion Christian Lou Neil Major Freeman Carter Mason Parker Tucker
Cooper Porter Tanner Taylor Hunter Fisher Baker Miller Walker Marshall Sherman Ellis Ezra Monday
Tuesday Wednesday Thursday Friday Saturday Sunday January February March October December
Windy Penny Sunny Candy Cherry Happy Dusty
""".split())


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


@functools.lru_cache(maxsize=1)
def lowercase_given_names() -> frozenset[str]:
    """`given_names`, lowercase: for text written in lowercase."""
    return frozenset(n.lower() for n in given_names())


@functools.lru_cache(maxsize=1)
def surname_ranks() -> dict[str, int]:
    """The US Census 1990 surnames (88,799, shipped by the same `names` package), lowercase, with their
    rank (1 = Smith)."""
    text = (resources.files("names") / "dist.all.last").read_text(encoding="utf-8")
    return {row[0].lower(): int(row[3]) for row in (line.split() for line in text.splitlines() if line.strip())}


@functools.lru_cache(maxsize=1)
def common_surnames() -> frozenset[str]:
    """The 30,000 most common census surnames that are no everyday word. The rarer ones are mostly
    everyday words ("from", "pain", "care", "plan" rank 38,000-80,000); this cut keeps Chen, Nakamura,
    Johansson, Osei and Okafor (rank 24,358)."""
    return frozenset(name for name, rank in surname_ranks().items() if rank <= 30000) - ordinary_words()


LOWER_WORD = regex.compile(r"[a-z][a-z'’]*(?:-[a-z][a-z'’]*)*(?![\w])")
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


def census_name(word: str) -> bool:
    return word in lowercase_given_names() or surname_ranks().get(word, 88800) <= 5000


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


MONTH = (r"(?:Jan(?:uary)?|Feb(?:ruary)?|Mar(?:ch)?|Apr(?:il)?|May|June?|July?|Aug(?:ust)?|"
         r"Sep(?:t(?:ember)?)?|Oct(?:ober)?|Nov(?:ember)?|Dec(?:ember)?)\.?")
DAY = r"(?:[12]\d|3[01]|0?[1-9])(?:st|nd|rd|th)?"


def date_recognizers() -> list[EntityRecognizer]:
    """DATE_TIME: Presidio's DateRecognizer knows numeric dates and 14-MAR-2024, but written-out months
    ("March 14, 2024", "14 Mar 2024", "March 14th") come only from the NER model. Text written all in
    lowercase keeps its dates: any month with a year ("march 14, 2024"), and without a year the full month
    names that are no everyday word ("november 9"; not "may 5", "march 3", "august 2" without "th")."""
    return [PatternRecognizer(
        "DATE_TIME", name="WrittenDateRecognizer", global_regex_flags=CASE_SENSITIVE,
        patterns=[Pattern("month day, year", rf"\b{MONTH}[ \t]+{DAY}(?:,?[ \t]+(?:19|20)\d\d)?\b", 0.6),
                  Pattern("day month year", rf"\b{DAY}[ \t]+(?:of[ \t]+)?{MONTH}(?:,?[ \t]+(?:19|20)\d\d)?\b", 0.6),
                  Pattern("month year", rf"\b{MONTH}[ \t]+(?:19|20)\d\d\b", 0.5),
                  Pattern("lowercase, with a year", rf"\b(?i:{MONTH})[ \t]+{DAY},?[ \t]+(?:19|20)\d\d\b|"
                                                    rf"\b{DAY}[ \t]+(?:of[ \t]+)?(?i:{MONTH}),?[ \t]+(?:19|20)\d\d\b|"
                                                    rf"\b(?i:{MONTH})[ \t]+(?:19|20)\d\d\b", 0.6),
                  Pattern("lowercase, full month name", rf"\b{LOWER_MONTH}[ \t]+{DAY}\b|\b{DAY}[ \t]+(?:of[ \t]+)?{LOWER_MONTH}\b", 0.6),
                  Pattern("lowercase, ordinal day", rf"\b(?i:{MONTH})[ \t]+{ORDINAL_DAY}\b|\b{ORDINAL_DAY}[ \t]+(?:of[ \t]+)?(?i:{MONTH})\b", 0.6)])]


# Month names that are no everyday word, for text written in lowercase; with an ordinal day any month is
# a date ("may 24th", "3rd of march").
LOWER_MONTH = r"(?:january|february|april|june|july|september|october|november|december)"
ORDINAL_DAY = r"(?:[12]\d|3[01]|0?[1-9])(?:st|nd|rd|th)"


STATES = ("AL AK AZ AR CA CO CT DE DC FL GA HI ID IL IN IA KS KY LA ME MD MA MI MN MS MO MT NE NV NH NJ NM NY "
          "NC ND OH OK OR PA RI SC SD TN TX UT VT VA WA WV WI WY PR GU VI").split()
STATE = "(?:" + "|".join(STATES) + ")"
STREET_TYPE = (r"(?i:street|st|avenue|ave|road|rd|boulevard|blvd|lane|ln|drive|dr|court|ct|place|pl|way|"
               r"terrace|ter|circle|cir|parkway|pkwy|highway|hwy|square|sq|trail|trl|row|alley|loop|crescent)\b\.?")


def location_recognizers() -> list[EntityRecognizer]:
    """Street addresses, cities and ZIP codes: Presidio has no US address recognizer (its LOCATION comes
    from the NER model, its ZIP-like recognizers are for other countries)."""
    unit = r"(?i:apt|apartment|suite|ste|unit|room|rm)\.?[ \t]*#?[ \t]*[A-Z0-9-]{1,6}\b|#[ \t]*[A-Z0-9-]{1,6}\b"
    return [
        PatternRecognizer(
            "STREET_ADDRESS", name="StreetAddressRecognizer", global_regex_flags=CASE_SENSITIVE,
            patterns=[Pattern("number street type",
                              rf"\b\d{{1,6}}[A-Z]?[ \t]+(?:(?:[NSEW]\.?|North|South|East|West)[ \t]+)?"
                              rf"(?:(?:\d{{1,3}}(?:st|nd|rd|th)|{NAME_TOKEN})[ \t]+){{1,4}}{STREET_TYPE}"
                              rf"(?:,?[ \t]*(?:{unit}))?", 0.85),
                      Pattern("PO box", r"\b(?i:p\.?[ \t]?o\.?[ \t]*box|post[ \t]+office[ \t]+box)[ \t]*\d{1,6}\b", 0.85),
                      Pattern("unit", rf"(?<=,[ \t]*)(?:{unit})", 0.5)]),
        PatternRecognizer(
            "LOCATION", name="CityStateRecognizer", global_regex_flags=CASE_SENSITIVE,
            patterns=[Pattern("City, ST", rf"\b{NAME_TOKEN_LONG}(?:[ \t]+{NAME_TOKEN_LONG}){{0,2}}(?=,[ \t]*{STATE}\b)", 0.7),
                      Pattern("labelled city", rf"(?<=\b(?i:city|town|hometown)[ \t]*:[ \t]*){NAME_TOKEN_LONG}(?:[ \t]+{NAME_TOKEN_LONG}){{0,2}}", 0.7)]),
        PatternRecognizer(
            "ZIP_CODE", name="ZipCodeRecognizer", global_regex_flags=CASE_SENSITIVE,
            patterns=[Pattern("after a state", rf"(?<=\b{STATE},?[ \t]+)\d{{5}}(?:-\d{{4}})?\b", 0.85),
                      Pattern("labelled", r"(?<=\b(?i:zip|zip[ \t]*code|postal[ \t]+code)[ \t]*[:#]?[ \t]*)\d{5}(?:-\d{4})?\b", 0.85)]),
        LowercasePlaceRecognizer(),
    ]


class LowercasePlaceRecognizer(LocalRecognizer):
    """Street addresses, cities and ZIP codes in text written in lowercase ("48 birch lane, duluth, mn
    55802"). A lowercase state code is taken only between a comma and a ZIP code ("in", "or", "me", "hi"
    are words), and the city is the words before that comma back to the first everyday word. A street is
    a house number, words that are no everyday word or measure ("2 hours drive", "a 3 lane road") and a
    street type."""

    STATE_ZIP = regex.compile(rf",[ \t]*(?i:{STATE}),?[ \t]+(\d{{5}}(?:-\d{{4}})?)\b", CASE_SENSITIVE)
    CITY = regex.compile(r"(?:[a-z][a-z'’.-]*[ \t]+){0,2}[a-z][a-z'’.-]*$")
    STREET = regex.compile(
        rf"\b\d{{1,6}}[a-z]?[ \t]+(?:(?:[nsew]\.?|north|south|east|west)[ \t]+)?"
        rf"((?:(?:\d{{1,3}}(?:st|nd|rd|th)|[a-z][a-z'’-]*)[ \t]+){{1,4}}){STREET_TYPE}"
        r"(?:,?[ \t]*(?:(?:apt|apartment|suite|ste|unit|room|rm)\.?[ \t]*#?[ \t]*[a-z0-9-]{1,6}\b|#[ \t]*[a-z0-9-]{1,6}\b))?",
        CASE_SENSITIVE)
    MEASURES = frozenset("hour hours hr hrs minute minutes min mins mile miles km block blocks day days week weeks "
                         "month months year years time times mg ml tablet tablets puff puffs cup cups step steps "
                         "lane lanes foot feet meter meters".split())

    def __init__(self):
        super().__init__(supported_entities=["LOCATION", "ZIP_CODE", "STREET_ADDRESS"], name="LowercasePlaceRecognizer")

    def load(self) -> None:
        pass

    def analyze(self, text, entities, nlp_artifacts=None):
        from spacy.lang.en.stop_words import STOP_WORDS

        out = []
        for m in self.STATE_ZIP.finditer(text):
            out.append(RecognizerResult("ZIP_CODE", m.start(1), m.end(1), 0.85))
            city = self.CITY.search(text, max(0, m.start() - 60), m.start())
            words = list(LOWER_WORD.finditer(text, city.start(), m.start())) if city else []
            while words and any(w.group() in STOP_WORDS for w in words):
                words.pop(0)  # "moved to duluth": the city starts after the last stop word
            if words:
                out.append(RecognizerResult("LOCATION", words[0].start(), words[-1].end(), 0.7))
        for m in self.STREET.finditer(text):
            words = m.group(1).split()
            if not any(w in STOP_WORDS or w in self.MEASURES for w in words):
                out.append(RecognizerResult("STREET_ADDRESS", m.start(), m.end(), 0.7))
        return out


def labelled(entity: str, name: str, labels: str, weak_labels: str | None = None, score: float = 0.85,
             value: str = ID_VALUE) -> PatternRecognizer:
    """An identifier introduced by its label ("MRN: 4482913"): the value is found, the label is kept.
    `weak_labels` are words that also occur in ordinary sentences ("group", "plan", "visit"): they count
    only with a number word ("Group no. 00412", "Plan ID: ...")."""
    label = rf"(?:{labels}){NUMBER_WORD}"
    if weak_labels:
        label = rf"(?:{label}|(?:{weak_labels}){NUMBER_WORD_REQUIRED})"
    return PatternRecognizer(entity, name=name, global_regex_flags=IGNORE_CASE,
                             patterns=[Pattern(f"{name} (labelled)", rf"(?<=\b{label}{SEP}){value}", score)])


def identifier_recognizers() -> list[EntityRecognizer]:
    """Numbers Presidio has no recognizer for (MRN, device serials, VINs, plates), or whose recognizer
    misses common US forms (purely numeric member IDs and licence numbers, SSNs after "SS#")."""
    return [
        labelled("MEDICAL_RECORD_NUMBER", "MrnRecognizer",
                 r"mrn|mr#?|medical\s+record|med\s+rec|patient\s+id|pt\s+id|hospital\s+number",
                 r"record|chart|patient"),
        labelled("HEALTH_PLAN_NUMBER", "HealthPlanRecognizer",
                 r"member|subscriber|policy|health\s+plan|insurance(?:\s+member)?|beneficiary|medicaid|"
                 r"medicare(?:\s+mbi)?|mbi|hicn", r"group|plan|payer|insurance"),
        labelled("ACCOUNT_NUMBER", "AccountRecognizer",
                 r"account|acct|billing\s+account|encounter\s+account|fin|csn|har", r"billing|encounter|visit|invoice|claim"),
        labelled("LICENSE_NUMBER", "LicenseRecognizer",
                 r"licen[cs]e|lic|driver'?s\s+licen[cs]e|dl#?|dea|npi", r"certificate|certification|registration"),
        labelled("DEVICE_ID", "DeviceRecognizer", r"serial|s/n|sn|udi|imei",
                 r"device|implant|pump|pacemaker|meter|lot|model|asset", 0.85,
                 r"(?=[A-Z0-9()-]*\d)[A-Z0-9(][A-Z0-9()-]{3,60}\b"),
        labelled("US_SSN", "LabelledSsnRecognizer", r"ssn|ss#|social\s+security", None, 0.9,
                 r"\d{3}[- .]?\d{2}[- .]?\d{4}\b"),
        labelled("VEHICLE_ID", "LicensePlateRecognizer", r"(?:licen[cs]e\s+)?plate|vin", r"tag", 0.85,
                 r"(?=[A-Z0-9 -]*\d)[A-Z0-9]{1,4}[ -]?[A-Z0-9]{2,5}\b"),
        # A VIN in any case after its label (text written in lowercase); unlabelled, only in capitals.
        labelled("VEHICLE_ID", "LabelledVinRecognizer", r"vin|vehicle\s+identification", None, 0.85,
                 r"(?=[A-HJ-NPR-Z0-9]*\d)(?=[A-HJ-NPR-Z0-9]*[A-HJ-NPR-Z])[A-HJ-NPR-Z0-9]{17}\b"),
        PatternRecognizer(
            "VEHICLE_ID", name="VinRecognizer", global_regex_flags=CASE_SENSITIVE,
            patterns=[Pattern("VIN", r"\b(?=[A-HJ-NPR-Z0-9]*\d)(?=[A-HJ-NPR-Z0-9]*[A-HJ-NPR-Z])[A-HJ-NPR-Z0-9]{17}\b", 0.7)]),
        PatternRecognizer(
            "DEVICE_ID", name="UdiRecognizer", global_regex_flags=CASE_SENSITIVE,
            patterns=[Pattern("GS1 UDI", r"\(01\)\d{14}(?:\(\d{2,4}\)[A-Za-z0-9]{1,20})*", 0.9)]),
        PatternRecognizer(
            "AGE_OVER_89", name="AgeOver89Recognizer", global_regex_flags=IGNORE_CASE,
            patterns=[Pattern("NN-year-old", r"\b(?:9\d|1[01]\d)(?=[ -]?(?:year|yr|y/?o\b|y\.o\.))", 0.85),
                      Pattern("aged NN", r"(?<=\b(?:aged?|age:)[ \t]*)(?:9\d|1[01]\d)\b", 0.85)]),
    ]


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


@functools.lru_cache(maxsize=1)
def ordinary_words() -> frozenset[str]:
    """Lowercase words that are everyday English as well as parts of names or places: spaCy's English stop
    words (it comes with Presidio), the census given names that are also words (COMMON_WORD_NAMES), the
    generic words of place names, the words that follow "Dear" or a relation word without being a name,
    and the verbs prompts start with ("Explain Newton's laws")."""
    from spacy.lang.en.stop_words import STOP_WORDS

    return frozenset(STOP_WORDS | {w.lower() for w in COMMON_WORD_NAMES} | PLACE_WORDS | GENERIC_WORDS)


PLACE_WORDS = frozenset("""
city town county village lake park new old san santa saint st fort port mount mt north south east west grand
river valley heights hills falls springs beach bay harbor harbour island point creek rock little great green
white black red brown center centre grove rapids glen forest view
""".split())
GENERIC_WORDS = frozenset("""
sir madam colleague colleagues team everyone doctor doc nurse patient patients friend friends family parent
parents customer customers member members reader readers hiring manager mom mum dad mother father grandma
grandpa son daughter sister brother darling diary santa editor committee neighbour neighbor human humans user
users today tomorrow yesterday tonight morning afternoon evening staff all there dear hi hello mr mrs ms
dr prof dob mrn ssn age sex gender date phone tel fax email address al
write rewrite explain describe translate summarise summarize list compare tell give discuss review plan create
draft edit suggest imagine consider find define answer ask thank good happy
""".split())


# Words inside a found name span that must not be propagated on their own (titles, credentials, labels).
NOT_NAME_WORDS = frozenset("Dr Doctor Mr Mrs Ms Mx Miss Prof Professor Nurse Sister Md Do Np Rn Pa Phd Dds "
                           "Pharmd Jr Sr Ii Iii The And Of".split())
