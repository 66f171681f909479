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

Run:  PYTHONPATH=src .venv/bin/python bench/deidentify.py [--notes 200] [--seed 0] [--show-misses 3]
(needs the [privacy] extra; well under a minute on 2 cores).
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


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--notes", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--show-misses", type=int, default=3, help="missed values shown per kind")
    args = parser.parse_args(argv)

    from offline_arena.privacy import deidentify
    from offline_arena.prompts.verifiable import load_verifiable

    def spans_of(text):
        return [(f.start, f.end) for f in deidentify(text).findings]

    started = time.perf_counter()
    deidentify("warm-up: load the analyzer once")
    load_s = time.perf_counter() - started

    notes = make_notes(args.notes, args.seed)
    started = time.perf_counter()
    counts, uncued, misses = recall_table(notes, spans_of)
    notes_s = time.perf_counter() - started
    chars = sum(len(n.text) for n in notes)
    print(f"recall on {len(notes)} synthetic notes (seed {args.seed}, {chars / len(notes):.0f} characters each); "
          f"caught = every letter and digit of the identifier redacted")
    print(format_recall(counts))
    print("of which with no label, title or earlier mention (a name or city in running text):")
    print("  " + ", ".join(f"{kind} {c['caught']}/{sum(c.values())} = {c['caught'] / sum(c.values()):.1%}"
                           for kind, c in sorted(uncued.items())))
    for kind in sorted(misses):
        if args.show_misses:
            print(f"  missed {kind}: " + "; ".join(misses[kind][:args.show_misses]))

    prompts = load_verifiable("heldout", 200, 0)
    texts = [m["content"] for p in prompts for m in p.messages]
    started = time.perf_counter()
    share, words = false_removals(texts, spans_of)
    prompts_s = time.perf_counter() - started
    print(f"\nfalse removals on {len(texts)} ordinary prompts (verifiable pack, held-out split, 200, seed 0): "
          f"{share:.1%} changed, {sum(words.values())} words removed")
    print("  most common: " + (", ".join(f"{w!r} x{c}" for w, c in words.most_common(15)) or "none"))
    print(f"\ntime: analyzer load {load_s:.1f}s, notes {notes_s:.1f}s ({notes_s / len(notes) * 1000:.1f} ms/note), "
          f"prompts {prompts_s:.1f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
