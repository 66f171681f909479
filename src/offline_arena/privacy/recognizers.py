"""Our recognizers, only for what Presidio lacks when it runs offline (pattern recognizers, no NER model).

Presidio's own recognizers cover email, phone/fax, URL, IP, SSN, credit cards, US bank numbers, driver's
licences, passports, DEA and NPI numbers, Medicare MBIs, insurance member IDs, MAC addresses and numeric
dates. What it finds only through a spaCy NER model (PERSON, LOCATION, written-out dates) — and a few
kinds it has no recognizer for at all (MRN, street addresses, ZIP codes, VINs, device serials, ages over
89) — is added here, as Presidio `PatternRecognizer`s so that they run through the same analyzer, scores
and overlap handling. Each block says which gap it fills. Names are in names.py, the word lists they
consult in word_lists.py.

Patterns are written for the `regex` module Presidio compiles them with (variable-length look-behind).
Presidio's default flags include IGNORECASE; recognizers that rely on capital letters (names, VINs) pass
their own flags and mark case-insensitive parts with `(?i:...)`. Text written all in lowercase (a
lowercase constraint, an opponent that lowercases its answers) has lost those capitals: the Lowercase*
recognizers and the lowercase date and VIN patterns find what its cues still show.
"""

from __future__ import annotations

import regex
from presidio_analyzer import EntityRecognizer, LocalRecognizer, Pattern, PatternRecognizer, RecognizerResult

CASE_SENSITIVE = regex.MULTILINE | regex.DOTALL
IGNORE_CASE = CASE_SENSITIVE | regex.IGNORECASE

# The label part of "Label: value" patterns: optional "number"/"no."/"#"/"ID" and a separator.
NUMBER_WORD_REQUIRED = r"\s*(?:number|num\b\.?|no\b\.?|nbr\b|#|id\b)"
NUMBER_WORD = rf"(?:{NUMBER_WORD_REQUIRED})?"
SEP = r"\s*(?:[:#=]\s*|\s)\s*"
ID_VALUE = r"(?=[A-Z0-9-]*\d)[A-Z0-9][A-Z0-9-]{2,24}\b"  # an identifier holds at least one digit

# One capitalised word of a name or a place: capitalised or all capitals, with apostrophes and hyphens (O'Brien, Gonzalez-Vega).
NAME_TOKEN = r"[A-Z][A-Za-z]*(?:['’-][A-Z][A-Za-z]+)*"
# At least two letters: Smith, SMITH, McCarthy, DeShawn, O'Brien, Gonzalez-Vega.
NAME_TOKEN_LONG = r"(?:[A-Z]['’])?(?:[A-Z][a-z]+(?:[A-Z][a-z]+)*|[A-Z]{2,})(?:-(?:[A-Z][a-z]+|[A-Z]{2,}))*"

LOWER_WORD = regex.compile(r"[a-z][a-z'’]*(?:-[a-z][a-z'’]*)*(?![\w])")  # a lowercase word, hyphens and apostrophes inside


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
