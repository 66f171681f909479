"""PHI de-identification: recall per identifier kind on synthetic clinical notes, and what it wrongly
removes from ordinary prompts.

1. Recall. `make_notes(n, seed)` writes n synthetic clinical notes (fictional people, 555 phone numbers,
   example.* domains, documentation IP ranges) with identifiers of every HIPAA Safe Harbor kind that
   occurs in text planted at known character offsets, in varied formats: names (patients, doctors,
   relatives; "First Last", "Last, First", "Mr. Last", capitals, bare first names, names the census lists
   lack), dates, phone, fax, email, SSN, MRN, health plan numbers, account numbers, licence numbers,
   vehicle identifiers, device identifiers and serial numbers, URLs, IP addresses, street addresses,
   cities, ZIP codes, ages over 89 — mostly labelled as in real records ("MRN:", "Dr.", "Fax:"), some with
   nothing to give them away (a name or a city in running text, never mentioned before). A planted identifier counts as **caught** when every letter and
   digit of it lies inside a redacted span (spaces and punctuation inside it do not count); **partly**
   when some but not all do (a partial leak, counted as missed).
2. False removals. The built-in verifiable pack's held-out prompts (`load_verifiable("heldout", 200, 0)`)
   hold no identifiers, so everything removed from them is a false removal: the share of prompts changed
   and the most common removed words are printed.
3. Lowercase. 1 and 2 again on the same texts written all in lowercase (a lowercase constraint, an
   opponent that lowercases its answers): what the cues still find without their capitals.
4. Names in running text with no cue, and name lists. `make_sentences(n, seed)` writes one-sentence
   texts with a full name, a given name or a surname and nothing else to give it away ("I had lunch with
   Kofi Abernathy yesterday."), from name lists written for this bench (not drawn from the census lists
   under test; the share the census has is printed), and `NO_NAME` sentences whose capitalised words are
   given names or surnames used as ordinary words ("Will the results...", "Brown rice...", "Parkinson
   disease..."). Recall per form and the share of no-name sentences and pack prompts changed, side by
   side, for: the census given names only (the two recognizers that use the surname list removed),
   this module (plus census surnames), any census given name alone, and — when the `names-dataset` package is installed or its
   data folder is given with --names-dataset — its lists (a measurement only: not a dependency).

Run:  PYTHONPATH=src .venv/bin/python bench/deidentify.py [--notes 200] [--sentences 300] [--seed 0]
      [--show-misses 3] [--only notes|names] [--names-dataset DIR]
(needs the [privacy] extra; about two minutes on 2 cores, plus about 30 s to load names-dataset).
"""

from __future__ import annotations

import argparse
import random
import re
import sys
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field

# Names are hand-picked and varied on purpose (census-common, Hispanic, East/South Asian, African, Irish,
# hyphenated), so the recall of a dictionary-based name detector is not measured on its own dictionary.
GIVEN = ["John", "Mary", "Robert", "Linda", "Michael", "Susan", "David", "Karen", "Maria", "Jose", "Juan",
         "Guadalupe", "Wei", "Mei", "Hiroshi", "Yuki", "Priya", "Arjun", "Anjali", "Oluwaseun", "Chidi",
         "Amara", "Kwame", "Siobhan", "Niamh", "Thanh", "Minh", "Fatima", "Omar", "Aaliyah", "DeShawn",
         "Ekaterina", "Dmitri", "Ingrid", "Lars", "Zoe", "Liam", "Olivia", "Noah", "Emma"]
FAMILY = ["Smith", "Johnson", "Williams", "Garcia", "Martinez", "Rodriguez", "Nguyen", "Tran", "Kim", "Lee",
          "Chen", "Wang", "Patel", "Shah", "Okafor", "Adeyemi", "Mensah", "O'Brien", "McCarthy", "Kowalski",
          "Novak", "Haddad", "Rahman", "Schneider", "Johansson", "Ivanova", "Thompson", "Washington",
          "Brooks", "Rivera", "Gonzalez-Vega", "Fitzgerald", "Yamamoto", "Nakamura", "Banerjee", "Osei"]
STREETS = ["Oak", "Maple", "Cedar", "Elm", "Washington", "Lincoln", "Park", "Lake", "Hillcrest", "Sunset",
           "Martin Luther King Jr", "Riverside", "Birch", "Chestnut", "Willow Creek"]
STREET_TYPES = ["Street", "St", "Avenue", "Ave.", "Road", "Rd", "Boulevard", "Blvd", "Lane", "Drive", "Court",
                "Way", "Place", "Terrace", "Circle"]
CITIES = [("Springfield", "IL"), ("Worcester", "MA"), ("Boston", "MA"), ("Dayton", "OH"), ("Fresno", "CA"),
          ("Tulsa", "OK"), ("Albany", "NY"), ("Macon", "GA"), ("Provo", "UT"), ("Duluth", "MN"),
          ("San Antonio", "TX"), ("Baton Rouge", "LA"), ("Ann Arbor", "MI"), ("Spokane", "WA")]
MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
          "November", "December"]
SENTENCES = ["Presents with shortness of breath on exertion for 3 weeks.",
             "Blood pressure 142/88, heart rate 76, afebrile.",
             "Metformin 500 mg twice daily, lisinopril 10 mg once daily.",
             "HbA1c 7.9% (previously 8.4%). eGFR 61 mL/min.",
             "Plan: chest X-ray, repeat labs in 6 weeks, follow up in clinic.",
             "No known drug allergies. Non-smoker, drinks 4 units a week.",
             "Reports improved sleep since starting CPAP.",
             "Diagnosis: community-acquired pneumonia, CURB-65 score 1."]


@dataclass
class Note:
    text: str
    planted: list = field(default_factory=list)  # (kind, start, end, cued)


class NoteBuilder:
    """Concatenates literal text and planted identifiers, recording each identifier's offsets."""

    def __init__(self):
        self.parts, self.planted, self.length = [], [], 0

    def say(self, text: str) -> "NoteBuilder":
        self.parts.append(text)
        self.length += len(text)
        return self

    def plant(self, kind: str, value: str, cued: bool = True) -> "NoteBuilder":
        """`cued`: a label, title or earlier mention gives the identifier away; False for the hard cases."""
        self.planted.append((kind, self.length, self.length + len(value), cued))
        return self.say(value)

    def note(self) -> Note:
        return Note("".join(self.parts), self.planted)


def _digits(rng, n):
    return "".join(rng.choice("0123456789") for _ in range(n))


def _alnum(rng, n, alphabet="ABCDEFGHJKLMNPRSTUVWXYZ0123456789"):
    return "".join(rng.choice(alphabet) for _ in range(n))


def fake_date(rng):
    y, m, d = rng.randint(1930, 2025), rng.randint(1, 12), rng.randint(1, 28)
    return rng.choice([f"{m:02d}/{d:02d}/{y}", f"{m}/{d}/{str(y)[2:]}", f"{y}-{m:02d}-{d:02d}",
                       f"{MONTHS[m - 1]} {d}, {y}", f"{d} {MONTHS[m - 1][:3]} {y}", f"{MONTHS[m - 1]} {d}th",
                       f"{m}-{d}-{y}"])


def fake_phone(rng):
    a, b = rng.choice(["617", "312", "415", "503", "212", "713"]), f"555-01{_digits(rng, 2)}"
    return rng.choice([f"({a}) {b}", f"{a}-{b}", f"{a}.{b.replace('-', '.')}", f"+1 {a} {b.replace('-', ' ')}",
                       f"{a}{b.replace('-', '')}", f"1-{a}-{b}"])


def fake_ssn(rng):
    area = rng.choice([n for n in range(1, 900) if n != 666])
    ssn = f"{area:03d}{rng.randint(1, 99):02d}{rng.randint(1, 9999):04d}"
    return rng.choice([f"{ssn[:3]}-{ssn[3:5]}-{ssn[5:]}", f"{ssn[:3]} {ssn[3:5]} {ssn[5:]}", ssn])


def fake_vin(rng):
    return _alnum(rng, 3, "1234JKLMNPRSTWXYZ") + _alnum(rng, 5) + _digits(rng, 1) + _alnum(rng, 2) + _digits(rng, 6)


def fake_name(rng):
    return rng.choice(GIVEN), rng.choice(FAMILY)


def make_note(rng: random.Random) -> Note:
    """One note: a header block of labelled identifiers, then narrative with identifiers in running text.
    Each kind appears with probability about 0.5-0.9, in one of its formats."""
    b = NoteBuilder()
    first, last = fake_name(rng)
    doc_first, doc_last = fake_name(rng)
    rel_first, rel_last = fake_name(rng)
    city, state = rng.choice(CITIES)
    b.say(rng.choice(["PROGRESS NOTE\n", "Discharge summary\n", "Referral letter\n", "Clinic note\n"]))
    name_style = rng.randrange(4)
    b.say("Patient: ")
    if name_style == 0:
        b.plant("NAME", first).say(" ").plant("NAME", last)
    elif name_style == 1:
        b.plant("NAME", last).say(", ").plant("NAME", first)
    elif name_style == 2:
        b.plant("NAME", first.upper()).say(" ").plant("NAME", last.upper())
    else:
        b.plant("NAME", first).say(f" {rng.choice('ABCDEFGHJKLMNPRSTW')}. ").plant("NAME", last)
    b.say("   DOB: ").plant("DATE", fake_date(rng)).say("\n")
    b.say(rng.choice(["MRN: ", "MR#: ", "Medical record number ", "MRN "]))
    b.plant("MRN", rng.choice([_digits(rng, 7), "00" + _digits(rng, 6), f"{_digits(rng, 2)}-{_digits(rng, 3)}-{_digits(rng, 3)}",
                               rng.choice("ABCDEFGHK") + _digits(rng, 7)])).say("\n")
    if rng.random() < 0.8:
        b.say(rng.choice(["SSN: ", "Social Security number: ", "SS# "])).plant("SSN", fake_ssn(rng)).say("\n")
    b.say("Address: ").plant("ADDRESS", f"{rng.randint(1, 9999)} {rng.choice(['', 'N. ', 'West '])}"
                                        f"{rng.choice(STREETS)} {rng.choice(STREET_TYPES)}")
    if rng.random() < 0.4:
        b.say(", ").plant("ADDRESS", rng.choice(["Apt ", "Suite ", "Unit ", "#"]) + f"{rng.randint(1, 40)}{rng.choice(['', 'B', 'C'])}")
    b.say(", ").plant("CITY", city).say(f", {state} ").plant("ZIP", _digits(rng, 5) + rng.choice(["", "-" + _digits(rng, 4)])).say("\n")
    if rng.random() < 0.3:
        b.say("Mailing address: ").plant("ADDRESS", f"P.O. Box {rng.randint(10, 99999)}").say("\n")
    b.say(rng.choice(["Phone: ", "Tel ", "Cell: ", "Home phone "])).plant("PHONE", fake_phone(rng))
    if rng.random() < 0.7:
        b.say(rng.choice(["  Fax: ", "  fax ", "  FAX # "])).plant("FAX", fake_phone(rng))
    b.say("\n")
    if rng.random() < 0.8:
        user = rng.choice([f"{first[0].lower()}{last.lower()}", f"{first.lower()}.{last.lower()}{rng.randint(1, 99)}",
                           f"{last.lower()}_{rng.randint(100, 999)}"]).replace("'", "")
        b.say("Email: ").plant("EMAIL", f"{user}@{rng.choice(['example.com', 'mail.example.org', 'example.net'])}").say("\n")
    if rng.random() < 0.85:
        b.say(rng.choice(["Insurance member ID: ", "Member ID ", "Medicaid ID: ", "Health plan ID: ", "Policy #: ",
                          "Medicare MBI: ", "Subscriber no. "]))
        b.plant("HEALTH_PLAN", rng.choice([_alnum(rng, 3, "ABCDEFGHJKLMNPRSTUVWXYZ") + _digits(rng, 9), _digits(rng, 9) + "A",
                                           f"{rng.randint(1, 9)}{_alnum(rng, 3)}-{_alnum(rng, 3)}-{_alnum(rng, 4)}",
                                           _digits(rng, 11), "W" + _digits(rng, 8)])).say("\n")
    if rng.random() < 0.7:
        b.say(rng.choice(["Account #: ", "Acct no. ", "Billing account number ", "Encounter account: "]))
        b.plant("ACCOUNT", rng.choice([_digits(rng, 10), f"{_digits(rng, 4)}-{_digits(rng, 4)}-{_digits(rng, 2)}",
                                       "HAR" + _digits(rng, 8)])).say("\n")
    b.say("\n").say(" ".join(rng.sample(SENTENCES, 2))).say(" ")
    # Narrative: identifiers in running text.
    b.say(rng.choice(["Mr. ", "Ms. ", "Mrs. "])).plant("NAME", last).say(" was seen on ").plant("DATE", fake_date(rng))
    b.say(" by ").say(rng.choice(["Dr. ", "Dr "])).plant("NAME", doc_first).say(" ").plant("NAME", doc_last).say(". ")
    age = rng.random()
    if age < 0.3:
        b.plant("AGE", str(rng.randint(90, 104))).say("-year-old, ")
    elif age < 0.45:
        b.say("aged ").plant("AGE", str(rng.randint(90, 104))).say(", ")
    if rng.random() < 0.7:
        b.plant("NAME", first).say(rng.choice([" reports ", " says ", " states "])).say("that her ")
        b.say(rng.choice(["daughter ", "husband ", "son ", "neighbour "])).plant("NAME", rel_first).say(" ").plant("NAME", rel_last)
        b.say(" can be reached at ").plant("PHONE", fake_phone(rng)).say(". ")
    b.say(" ".join(rng.sample(SENTENCES, 2))).say(" ")
    if rng.random() < 0.6:
        b.say(rng.choice(["Lives alone in ", "Moved from ", "Works in "])).plant("CITY", city).say(". ")
    # Identifiers with no label, title or earlier mention to give them away: the hard cases.
    if rng.random() < 0.5:
        other_first, other_last = fake_name(rng)
        b.say("Discussed with ").plant("NAME", other_first, False).say(" ").plant("NAME", other_last, False)
        b.say(" from pharmacy. ")
    if rng.random() < 0.5:
        b.say(rng.choice(["Her sister, ", "A friend, "])).plant("NAME", rng.choice(GIVEN), False).say(", visits daily. ")
    if rng.random() < 0.5:
        b.say("Grew up in ").plant("CITY", rng.choice([c for c, _ in CITIES if c != city]), False).say(". ")
    if rng.random() < 0.6:
        b.say(rng.choice(["Pacemaker serial number ", "Insulin pump S/N: ", "Device ID: ", "Implant serial no. "]))
        b.plant("DEVICE", rng.choice([_alnum(rng, 3, "ABCDEFGHJKLMNPRSTUVWXYZ") + _digits(rng, 6) + rng.choice("ABCS"),
                                      f"{_digits(rng, 1)}{_alnum(rng, 2)}-{_digits(rng, 5)}", _digits(rng, 14)])).say(". ")
    if rng.random() < 0.3:
        b.say("UDI ").plant("DEVICE", f"(01){_digits(rng, 14)}(17){_digits(rng, 6)}(10){_alnum(rng, 7)}").say(". ")
    if rng.random() < 0.25:
        b.say("Glucose meter MAC ").plant("DEVICE", ":".join(_alnum(rng, 2, "0123456789ABCDEF") for _ in range(6))).say(". ")
    if rng.random() < 0.5:
        b.say(rng.choice(["Drives a car with VIN ", "Vehicle VIN: "])).plant("VEHICLE", fake_vin(rng)).say(", ")
        b.say(rng.choice(["licence plate ", "plate number ", "license plate no. "]))
        b.plant("VEHICLE", rng.choice([f"{rng.randint(1, 9)}{_alnum(rng, 3, 'ABCDEFGHJKLMNPRSTUVWXYZ')}{_digits(rng, 3)}",
                                       f"{_alnum(rng, 3, 'ABCDEFGHJKLMNPRSTUVWXYZ')}-{_digits(rng, 4)}"])).say(". ")
    if rng.random() < 0.6:
        b.say(rng.choice(["Driver's license: ", "DL# ", "Nursing license no. ", "State medical license "]))
        b.plant("LICENSE", rng.choice([rng.choice("ABCDSW") + _digits(rng, 7), f"{rng.choice('ABS')}{_digits(rng, 3)}-{_digits(rng, 4)}-{_digits(rng, 4)}",
                                       "RN" + _digits(rng, 6), _digits(rng, 8)])).say(". ")
    if rng.random() < 0.5:
        b.say(rng.choice(["Portal: ", "See ", "Results at "]))
        b.plant("URL", rng.choice([f"https://portal.example-health.org/patient/{_digits(rng, 6)}",
                                   f"www.{last.lower().replace(chr(39), '')}family.example.com",
                                   f"http://example.org/records?id={_digits(rng, 5)}"])).say(" ")
    if rng.random() < 0.5:
        b.say(rng.choice(["(logged in from IP ", "(remote monitoring device at ", "(telehealth session from "]))
        b.plant("IP", rng.choice([f"192.0.2.{rng.randint(1, 254)}", f"198.51.100.{rng.randint(1, 254)}",
                                  f"203.0.113.{rng.randint(1, 254)}", f"2001:db8::{_alnum(rng, 4, '0123456789abcdef')}:{rng.randint(1, 9999)}"]))
        b.say(").")
    b.say("\nFollow-up on ").plant("DATE", fake_date(rng)).say(". Electronically signed: ")
    b.plant("NAME", doc_first).say(" ").plant("NAME", doc_last).say(rng.choice([", MD", ", DO", " MD", ", NP"])).say("\n")
    return b.note()


def make_notes(n: int, seed: int = 0) -> list[Note]:
    rng = random.Random(seed)
    return [make_note(rng) for _ in range(n)]


def covered_mask(length: int, spans) -> list[bool]:
    mask = [False] * length
    for start, end in spans:
        for i in range(start, end):
            mask[i] = True
    return mask


def grade(note: Note, removed_spans) -> list[tuple[str, bool, str, str]]:
    """(kind, cued, "caught" | "partly" | "missed", value) for each planted identifier."""
    mask = covered_mask(len(note.text), removed_spans)
    out = []
    for kind, start, end, cued in note.planted:
        letters = [i for i in range(start, end) if note.text[i].isalnum()]
        hit = sum(mask[i] for i in letters)
        outcome = "caught" if hit == len(letters) else "partly" if hit else "missed"
        out.append((kind, cued, outcome, note.text[start:end]))
    return out


def recall_table(notes, spans_of) -> tuple[dict, dict, dict]:
    """Per kind: counts of caught/partly/missed; the same for the uncued identifiers only; a few
    missed values per kind."""
    counts, uncued, misses = defaultdict(Counter), defaultdict(Counter), defaultdict(list)
    for note in notes:
        for kind, cued, outcome, value in grade(note, spans_of(note.text)):
            counts[kind][outcome] += 1
            if not cued:
                uncued[kind][outcome] += 1
            if outcome != "caught":
                misses[kind].append(f"{value!r} ({outcome})")
    return counts, uncued, misses


def format_recall(counts) -> str:
    lines = [f"{'kind':<12} {'planted':>7} {'caught':>7} {'partly':>7} {'recall':>7}"]
    total = Counter()
    for kind in sorted(counts):
        c = counts[kind]
        n = sum(c.values())
        total.update(c)
        lines.append(f"{kind:<12} {n:>7} {c['caught']:>7} {c['partly']:>7} {c['caught'] / n:>7.1%}")
    n = sum(total.values())
    lines.append(f"{'all':<12} {n:>7} {total['caught']:>7} {total['partly']:>7} {total['caught'] / n:>7.1%}")
    return "\n".join(lines)


def false_removals(texts, spans_of) -> tuple[float, Counter]:
    """Share of texts with anything removed, and the removed words."""
    changed, words = 0, Counter()
    for text in texts:
        spans = spans_of(text)
        changed += bool(spans)
        for start, end in spans:
            words.update(re.findall(r"[\w'.-]+", text[start:end]) or [text[start:end]])
    return changed / len(texts), words


# Section 4: names in running text. Written for this bench: given names and surnames of many origins,
# about half of them in the census lists, the other half not.
RUNNING_GIVEN = """Aiyana Akosua Alejandro Amelia Anders Anouk Aoife Ayesha Bao Beatriz Bilal Bronwyn Carmen Cheng
Chiamaka Ciaran Dariusz Deepika Diego Dominika Eamon Efua Elif Emeka Esperanza Farhan Folasade Gareth Giulia Gustavo
Hamid Hana Ines Ishaan Jana Javier Jelena Joaquin Kalani Katarzyna Keanu Kemal Kofi Lakshmi Leilani Lorenzo Lucia
Malik Mateo Mehmet Mirela Nadia Nikhil Nkechi Oksana Pablo Paulina Rafael Ravi Rosalind Sanjay Seo-yeon Soren Tariq
Tomasz Valentina Vikram Xiomara Yaw Yusuf Zainab Zofia Barbara Charles Dorothy Edward Frances George Helen Kenneth
Margaret Patricia Richard Steven Timothy Virginia Walter""".split()
RUNNING_FAMILY = """Abernathy Achebe Agarwal Alvarez Andersen Asante Bakshi Baptiste Bergstrom Bianchi Castellanos
Chowdhury Ciobanu Dimitrov Dlamini Esposito Ferreira Fontaine Gallagher Gutierrez Hakimi Halvorsen Herrera Horvath
Ibrahim Iwu Jablonski Jovanovic Kamau Kaur Kowalczyk Kuznetsov Lindgren Lozano Mahlangu Mazur Moreau Mukherjee Murphy
Nakashima Nwosu O'Sullivan Ogunleye Oyelaran Pereira Petrovic Quispe Raghunathan Reyes Sato Sandoval Sokolov Suzuki
Tanaka Takahashi Teixeira Toure Uchenna Valdez Varga Vasquez Wojcik Xu Yilmaz Zhou Zielinski Anderson Baker Campbell
Clark Evans Harris Jackson Lewis Mitchell Morgan Parker Phillips Robinson Turner Walsh Wright""".split()
TEMPLATES = {
    "full name": ["{F} {L} called about the results this morning.", "I had lunch with {F} {L} yesterday.",
                  "Please forward the report to {F} {L} before the weekend.", "According to {F} {L}, the scan was normal.",
                  "We spoke with {F} {L} and her brother.", "The referral came from {F} {L} at the other practice.",
                  "Send a copy to {F} {L}, who manages the rota.", "{F} {L} will bring the forms tomorrow.",
                  "Yesterday {F} {L} asked for a repeat prescription.", "Thanks to {F} {L} for covering the shift."],
    "given name": ["{F} said the new dose helps.", "Ask {F} whether the dressing was changed.",
                   "The nurse told {F} to rest.", "After lunch, {F} felt dizzy again.", "Remind {F} about the blood test."],
    "surname": ["The letter from {L} arrived late.", "Ring {L} about the appointment.", "{L} has agreed to the plan."],
}
# Capitalised words that are given names or surnames, used as ordinary words; eponyms; places and brands
# named after people. No person is identified in any of them.
NO_NAME = """Will the results be ready by Monday?|May I ask a question about the dose?|Grace periods apply to late payments.
Bill the insurance company directly.|Mark the box if the patient consents.|Rose hip tea is popular in winter.
Frank discussion helps patients decide.|Hope is not a plan.|Young children need smaller doses.
Brown rice has more fibre than white rice.|Green tea contains caffeine.|Summer camps open in June.
Ruby on Rails is a web framework.|Amber lights mean caution.|Sterling silver tarnishes quickly.
Penny stocks are risky investments.|Chase the dog out of the kitchen.|Drew a diagram of the heart for the class.
Guy ropes keep the tent upright.|Sandy soil drains fast.|Jack up the car before changing the tyre.
Dawn breaks early in June.|Faith and reason are old themes.|Joy and grief can coexist.|Wade through the paperwork first.
Gene therapy is still expensive.|Don the gown before entering the room.|Lane closures are expected on the motorway.
Max dose is four grams a day.|Pat the skin dry after washing.|Sue the company if they refuse.
Rich foods can trigger reflux.|Price increases hit pensioners hardest.|Carol singers visited the ward.
Cliff edges are dangerous in fog.|Crystal clear instructions help adherence.|Violet light is used to sterilise surfaces.
Olive oil is a healthy fat.|Heather grows on the moors.|Rusty nails can cause tetanus.|Chance of rain is high tomorrow.
Major surgery needs careful consent.|Ray diagrams explain how lenses work.|Earl Grey tea has bergamot in it.
Austin is the capital of Texas.|Florence has many museums.|Georgia peaches are sweet.|Jordan borders Israel and Syria.
Chelsea won the match on Saturday.|Sydney has a famous opera house.|Paris is the capital of France.
Victoria sponge needs jam and cream.|Madison Avenue is known for advertising.|Lincoln Memorial is in Washington.
Harley Davidson makes motorcycles.|Ford Motor Company builds trucks.|Dell laptops are common in offices.
Mercedes Benz sells luxury cars.|Tiffany lamps are collectible.|Cooper Union is a college in New York.
Marshall Plan rebuilt Europe after the war.|Kelly Blue Book values used cars.|Taylor series approximate functions.
Fisher Scientific sells lab supplies.|Hunter wellies keep feet dry.|Baker Street is in London.
Parker pens were once popular.|Mason jars are good for pickles.|Sherman tanks were used in the war.
Walker frames help with balance.|Miller Lite is a beer.|Johnson & Johnson makes baby shampoo.|Gram stain shows the bacteria.
Hodgkin lymphoma is treatable.|Parkinson disease causes tremor.|Crohn disease affects the gut.
Addison disease needs steroid replacement.|Cushing syndrome raises cortisol.|Alzheimer disease affects memory.
Down syndrome is caused by an extra chromosome.|Bell palsy usually recovers.|Graves disease causes hyperthyroidism.
Apgar score is checked at birth.|Glasgow Coma Scale measures consciousness.|Write a haiku about Autumn Leaves.
Explain Newton's laws to a child.|Compare Python and Java for beginners.|Summarise the Treaty of Versailles.
Describe the Golden Gate Bridge.|Tell me about Mount Everest.|Write a limerick about a cat named Whiskers.
Describe a day at Grand Central Station.|Plan a trip to Lake Como.|Review the Samsung Galaxy phone.
List three facts about Saturn.|Translate Good Morning into Spanish.|Explain how Google Maps estimates traffic.
Write a short story titled Silent Night.|Discuss the Industrial Revolution in Britain.|In Python, lists are mutable.
""".replace("\n", "|").strip("|").split("|")


@dataclass
class Sentence:
    text: str
    form: str  # "full name", "given name", "surname"
    spans: list  # (start, end) of each name part


def make_sentences(n: int, seed: int = 0) -> list[Sentence]:
    """n one-sentence texts, about 6 in 10 with a full name, 3 with a given name, 1 with a surname."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        form = rng.choices(list(TEMPLATES), [6, 3, 1])[0]
        values = {"{F}": rng.choice(RUNNING_GIVEN), "{L}": rng.choice(RUNNING_FAMILY)}
        text, spans = "", []
        for piece in re.split(r"(\{F\}|\{L\})", rng.choice(TEMPLATES[form])):
            if piece in values:
                spans.append((len(text), len(text) + len(values[piece])))
                piece = values[piece]
            text += piece
        out.append(Sentence(text, form, spans))
    return out


def name_recall(sentences, spans_of) -> dict[str, float]:
    """Per form (and "all"): the share of sentences whose every name letter was removed."""
    caught, total = Counter(), Counter()
    for s in sentences:
        mask = covered_mask(len(s.text), spans_of(s.text))
        total[s.form] += 1
        caught[s.form] += all(mask[i] for start, end in s.spans for i in range(start, end) if s.text[i].isalnum())
    out = {form: caught[form] / total[form] for form in TEMPLATES if total[form]}
    out["all"] = sum(caught.values()) / sum(total.values())
    return out


def names_dataset_lists(folder: str | None):
    """(first names, last names) of the `names-dataset` package with their best rank in any country, or
    None when neither the package nor `folder` (its v3/ data folder) is there. Its README asks for 3.2 GB
    of memory for the whole set."""
    import gzip
    import pickle
    from pathlib import Path

    if folder is None:
        try:
            import names_dataset
        except ImportError:
            return None
        folder = str(Path(names_dataset.__file__).parent / "v3")
    lists = []
    for file in ("first_names.pkl.gz", "last_names.pkl.gz"):
        with gzip.open(Path(folder) / file) as f:
            data = pickle.load(f)
        lists.append({name: min(info["rank"].values()) for name, info in data.items() if info.get("rank")})
        del data
    return tuple(lists)


def name_list_section(args, prompts) -> None:
    """Section 4: see the module's docstring."""
    from offline_arena.privacy import deidentify
    from offline_arena.privacy.deidentify import _analyzer
    from offline_arena.privacy.word_lists import given_names, surname_ranks

    sentences = make_sentences(args.sentences, args.seed)
    census_given = {n.lower() for n in given_names()}
    in_census = (sum(g.lower() in census_given for g in RUNNING_GIVEN) / len(RUNNING_GIVEN),
                 sum(surname_ranks().get(f.lower().replace("'", ""), 10**6) <= 30000 for f in RUNNING_FAMILY) / len(RUNNING_FAMILY))
    print(f"\nnames in running text, no cue: {len(sentences)} sentences ({Counter(s.form for s in sentences)}), "
          f"{len(NO_NAME)} sentences without a name, {len(prompts)} pack prompts; of the bench's names the census "
          f"lists {in_census[0]:.0%} of the given names and {in_census[1]:.0%} of the surnames (top 30,000)")

    # Capitalised words in text as written, lowercase words in lowercase text; looked up capitalised.
    token = {False: r"(?:[A-Z]['’])?[A-Z][a-z]+(?:-[A-Z][a-z]+)?", True: r"[a-z]+(?:['’-][a-z]+)?"}
    pair = {lower: re.compile(rf"(?=\b({t})[ ]({t})\b)") for lower, t in token.items()}
    single = {lower: re.compile(rf"\b{t}\b") for lower, t in token.items()}

    def name_case(word):
        return "-".join(p[:1].upper() + p[1:] for p in word.split("-"))

    def pairs(text, accept):
        return [(m.start(1), m.end(2)) for m in pair[text.islower()].finditer(text)
                if accept(name_case(m.group(1)), name_case(m.group(2)))]

    def singles(text, accept):
        return [(m.start(), m.end()) for m in single[text.islower()].finditer(text) if accept(name_case(m.group()))]

    def module_spans(text):
        return [(f.start, f.end) for f in deidentify(text).findings]

    # (label, spans_of, set-up): each configuration's spans; set-up runs before it is measured.
    def remove_surname_pairs():
        for name in ("SurnamePairRecognizer", "LowercaseNamePairRecognizer"):  # the two uncued uses of the list
            _analyzer().registry.remove_recognizer(name)

    configurations = [
        ("census given names only (before)", module_spans, remove_surname_pairs),
        ("+ census surnames (this module)", module_spans, _analyzer.cache_clear),
        ("+ any census given name alone", lambda t: module_spans(t) + singles(t, lambda w: w in given_names()), None),
    ]
    started = time.perf_counter()
    nd = names_dataset_lists(args.names_dataset)
    if nd:
        first, last = nd
        print(f"names-dataset: {len(first):,} first and {len(last):,} last names with a rank, loaded in "
              f"{time.perf_counter() - started:.0f}s")
        for rank in (1000, 5000):
            configurations += [
                (f"+ names-dataset pair (rank <= {rank})",
                 (lambda r: lambda t: module_spans(t) + pairs(t, lambda a, b: first.get(a, 10**9) <= r and last.get(b, 10**9) <= r))(rank), None),
                (f"+ names-dataset first name alone (rank <= {rank})",
                 (lambda r: lambda t: module_spans(t) + singles(t, lambda w: first.get(w, 10**9) <= r))(rank), None)]
    else:
        print("names-dataset: not installed (pip install names-dataset, or --names-dataset DIR) - left out")

    forms = list(TEMPLATES) + ["all"]
    header = f"{'':<44} " + " ".join(f"{f:>10}" for f in forms) + f" {'no-name':>8} {'pack':>6}"
    for case, lower in (("as written", False), ("all lowercase", True)):
        print(f"\n{case}: recall (every letter of the name removed) | share changed of no-name sentences, pack prompts")
        print(header)
        for label, spans_of, set_up in configurations:
            if set_up:
                set_up()
            texts = (lambda t: t.lower()) if lower else (lambda t: t)
            recall = name_recall([Sentence(texts(s.text), s.form, s.spans) for s in sentences], spans_of)
            no_name = [t for t in map(texts, NO_NAME) if spans_of(t)]
            pack, _ = false_removals([texts(t) for t in prompts], spans_of)
            print(f"{label:<44} " + " ".join(f"{recall[f]:>10.1%}" for f in forms)
                  + f" {len(no_name) / len(NO_NAME):>8.1%} {pack:>6.1%}")
            if args.show_misses and not lower and no_name:
                print(f"{'':<6}no-name changed: " + "; ".join(no_name[:args.show_misses]))
    _analyzer.cache_clear()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--notes", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--show-misses", type=int, default=3, help="missed values shown per kind")
    parser.add_argument("--sentences", type=int, default=300, help="running-text sentences with a name (section 4)")
    parser.add_argument("--only", choices=["notes", "names"], help="run sections 1-3 (notes) or 4 (names) only")
    parser.add_argument("--names-dataset", help="the v3/ folder of names-dataset's data, when it is not installed")
    args = parser.parse_args(argv)

    from offline_arena.privacy import deidentify
    from offline_arena.prompts.verifiable import load_verifiable

    def spans_of(text):
        return [(f.start, f.end) for f in deidentify(text).findings]

    started = time.perf_counter()
    deidentify("warm-up: load the analyzer once")
    print(f"analyzer load {time.perf_counter() - started:.1f}s")
    prompts = load_verifiable("heldout", 200, 0)
    texts = [m["content"] for p in prompts for m in p.messages]
    if args.only != "names":
        notes = make_notes(args.notes, args.seed)
        for case, lower in (("as written", False), ("all lowercase", True)):
            case_notes = [Note(n.text.lower(), n.planted) for n in notes] if lower else notes
            started = time.perf_counter()
            counts, uncued, misses = recall_table(case_notes, spans_of)
            notes_s = time.perf_counter() - started
            chars = sum(len(n.text) for n in notes)
            print(f"\n{case}: recall on {len(notes)} synthetic notes (seed {args.seed}, {chars / len(notes):.0f} "
                  f"characters each, {notes_s / len(notes) * 1000:.1f} ms/note); caught = every letter and digit of "
                  f"the identifier redacted")
            print(format_recall(counts))
            print("of which with no label, title or earlier mention (a name or city in running text):")
            print("  " + ", ".join(f"{kind} {c['caught']}/{sum(c.values())} = {c['caught'] / sum(c.values()):.1%}"
                                   for kind, c in sorted(uncued.items())))
            for kind in sorted(misses):
                if args.show_misses:
                    print(f"  missed {kind}: " + "; ".join(misses[kind][:args.show_misses]))

            started = time.perf_counter()
            share, words = false_removals([t.lower() for t in texts] if lower else texts, spans_of)
            print(f"{case}: false removals on {len(texts)} ordinary prompts (verifiable pack, held-out split, 200, "
                  f"seed 0): {share:.1%} changed, {sum(words.values())} words removed "
                  f"({time.perf_counter() - started:.1f}s)")
            print("  most common: " + (", ".join(f"{w!r} x{c}" for w, c in words.most_common(15)) or "none"))
    if args.only != "notes":
        name_list_section(args, texts)
    return 0

if __name__ == "__main__":
    sys.exit(main())
