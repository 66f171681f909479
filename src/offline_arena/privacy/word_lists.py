"""The word lists the name recognizers consult: the US Census 1990 given names and surnames (shipped by the
`names` package) and the everyday words that are parts of names or places too ("Grace", "Lake")."""

from __future__ import annotations

import functools
from importlib import resources


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


def census_name(word: str) -> bool:
    return word in lowercase_given_names() or surname_ranks().get(word, 88800) <= 5000


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
