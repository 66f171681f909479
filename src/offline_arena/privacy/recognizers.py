"""Our recognizers, only for what Presidio lacks when it runs offline (pattern recognizers, no NER model).

Presidio's own recognizers cover email, phone/fax, URL, IP, SSN, credit cards, US bank numbers, driver's
licences, passports, DEA and NPI numbers, Medicare MBIs, insurance member IDs, MAC addresses and numeric
dates. What it finds only through a spaCy NER model (PERSON, LOCATION, written-out dates) — and a few
kinds it has no recognizer for at all (MRN, street addresses, ZIP codes, VINs, device serials, ages over
89) — is added here, as Presidio `PatternRecognizer`s so that they run through the same analyzer, scores
and overlap handling. Each block says which gap it fills.

Patterns are written for the `regex` module Presidio compiles them with (variable-length look-behind).
Presidio's default flags include IGNORECASE; recognizers that rely on capital letters (names, VINs) pass
their own flags and mark case-insensitive parts with `(?i:...)`.
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
    them — after a title, a label, a relation word, before a credential — and, through the census list
    of given names, "First Last" pairs anywhere."""
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
    return frozenset(found - COMMON_WORD_NAMES)


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


MONTH = (r"(?:Jan(?:uary)?|Feb(?:ruary)?|Mar(?:ch)?|Apr(?:il)?|May|June?|July?|Aug(?:ust)?|"
         r"Sep(?:t(?:ember)?)?|Oct(?:ober)?|Nov(?:ember)?|Dec(?:ember)?)\.?")
DAY = r"(?:[12]\d|3[01]|0?[1-9])(?:st|nd|rd|th)?"


def date_recognizers() -> list[EntityRecognizer]:
    """DATE_TIME: Presidio's DateRecognizer knows numeric dates and 14-MAR-2024, but written-out months
    ("March 14, 2024", "14 Mar 2024", "March 14th") come only from the NER model."""
    return [PatternRecognizer(
        "DATE_TIME", name="WrittenDateRecognizer", global_regex_flags=CASE_SENSITIVE,
        patterns=[Pattern("month day, year", rf"\b{MONTH}[ \t]+{DAY}(?:,?[ \t]+(?:19|20)\d\d)?\b", 0.6),
                  Pattern("day month year", rf"\b{DAY}[ \t]+(?:of[ \t]+)?{MONTH}(?:,?[ \t]+(?:19|20)\d\d)?\b", 0.6),
                  Pattern("month year", rf"\b{MONTH}[ \t]+(?:19|20)\d\d\b", 0.5)])]


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
    ]


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
    reports"; "Albany, NY" ... "lives in Albany"): each word, in its found, upper and capitalised forms,
    as a deny list over `text`."""
    out = []
    for kind in sorted(words):
        variants = sorted({v for w in words[kind] for v in (w, w.upper(), w.capitalize())})
        if variants:
            recognizer = PatternRecognizer(kind, name=f"Repeated{kind.title()}Recognizer", deny_list=variants,
                                           deny_list_score=0.75, global_regex_flags=CASE_SENSITIVE)
            out.extend(recognizer.analyze(text, [kind]))
    return out


# Words inside a found name span that must not be propagated on their own (titles, credentials, labels).
NOT_NAME_WORDS = frozenset("Dr Doctor Mr Mrs Ms Mx Miss Prof Professor Nurse Sister Md Do Np Rn Pa Phd Dds "
                           "Pharmd Jr Sr Ii Iii The And Of".split())
