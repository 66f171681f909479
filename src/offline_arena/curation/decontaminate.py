"""Training prompts that hold an evaluation item, found by token n-gram overlap.

A rule `n:share` flags a training prompt when more than `share` of an evaluation item's token n-grams appear
in it; share 0 means any shared n-gram. The defaults are the field's two:

- `8:0.5` — Tulu 3 (Lambert et al. 2024, arXiv 2411.15124, section 2.2.2): more than half of a test item's
  8-grams in the training text;
- `13:0` — lm-evaluation-harness's decontamination (after GPT-3, Brown et al. 2020): any shared 13-gram.

Tokens are lowercased \\w+ runs (case, punctuation and spacing do not hide a copy); a text shorter than n
is one n-gram of its own length. Paraphrases slip past n-grams (LMSYS's llm-decontaminator, arXiv
2311.04850): `embedding=` adds an opt-in check of the prompts they kept, by the cosine similarity of a local
encoder's sentence embeddings (embeddings.py).

Instruction wording is set aside. A prompt that carries checkable instructions (`meta["constraints"]`,
like the built-in pack's) has them worded like IFEval's own ("Your response should contain at least 3
sentences."): that is the instruction vocabulary the benchmark measures, not a leaked prompt, and an IFEval
prompt that is mostly instruction would otherwise match any prompt with the same instruction. So the prompt's own
instruction sentences are cut out of it (no n-gram spans a cut) and their n-grams left out of the evaluation
item's count: what is compared is what the item has beyond that wording (tests/test_pack_decontamination.py).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass
from typing import TYPE_CHECKING, Iterable, Sequence, Union

from .eval_sets import EvalItem
from .text import ngrams, prompt_text, words

if TYPE_CHECKING:
    from .embeddings import EmbeddingRule


@dataclass(frozen=True)
class Rule:
    n: int
    share: float

    def __str__(self) -> str:
        return f"{self.n}-gram {'any' if self.share == 0 else f'> {self.share:.0%}'}"


DEFAULT_RULES = (Rule(8, 0.5), Rule(13, 0.0))


def parse_rule(text: str) -> Rule:
    """"8:0.5" -> Rule(8, 0.5); a clear error for anything else."""
    n, sep, share = text.partition(":")
    try:
        rule = Rule(int(n), float(share) if sep else 0.0)
    except ValueError:
        raise ValueError(f"n-gram rule {text!r}: expected N:SHARE, e.g. 8:0.5 or 13:0") from None
    if rule.n < 1 or not 0 <= rule.share < 1:
        raise ValueError(f"n-gram rule {text!r}: N:SHARE needs N >= 1 and SHARE in [0, 1)")
    return rule


@dataclass(frozen=True)
class Match:
    prompt: int        # index of the training prompt
    item: EvalItem     # the evaluation item it holds
    rule: Union[Rule, "EmbeddingRule"]
    share: float       # share of the item's n-grams (beyond set-aside wording) in the prompt; an embedding's cosine


class EvalIndex:
    """Evaluation items as n-gram sets with an inverted index (which items hold a given n-gram), one per
    rule size, so a prompt is checked against every item at the cost of looking up its own n-grams."""

    def __init__(self, items: Sequence[EvalItem], rules: Sequence[Rule] = DEFAULT_RULES):
        if not rules:
            raise ValueError("decontamination needs at least one n-gram rule")
        self.items = list(items)
        self.rules = list(rules)
        self.holders: dict[int, dict[str, list[int]]] = {}
        self.sizes: dict[int, list[int]] = {}
        for n in {rule.n for rule in self.rules}:
            holders: dict[str, list[int]] = defaultdict(list)
            sizes = []
            for index, item in enumerate(self.items):
                grams = ngrams(words(item.text), n)
                sizes.append(len(grams))
                for gram in grams:
                    holders[gram].append(index)
            self.holders[n], self.sizes[n] = dict(holders), sizes

    def matches(self, text: str, set_aside: Iterable[str] = ()) -> list[Match]:
        """The best match per rule that fires on `text` (prompt index -1: the caller sets it)."""
        aside = [words(sentence) for sentence in set_aside]
        runs = _outside(words(text), aside)
        found = []
        for rule in self.rules:
            holders = self.holders[rule.n]
            grams = set().union(*(ngrams(run, rule.n) for run in runs)) if runs else set()
            shared: Counter = Counter()
            for gram in grams:
                for index in holders.get(gram, ()):
                    shared[index] += 1
            if not shared:
                continue
            lost: Counter = Counter()  # each item's n-grams that lie inside the set-aside wording
            for gram in set().union(*(ngrams(a, rule.n) for a in aside)) if aside else ():
                for index in holders.get(gram, ()):
                    lost[index] += 1
            best = None
            for index, count in shared.items():
                size = self.sizes[rule.n][index] - lost[index]
                share = count / size if size > 0 else 0.0
                if share > rule.share and (best is None or share > best.share):
                    best = Match(-1, self.items[index], rule, share)
            if best is not None:
                found.append(best)
        return found


def _outside(tokens: list[str], aside: list[list[str]]) -> list[list[str]]:
    """The runs of `tokens` left once every occurrence of each set-aside sentence is cut out: no n-gram is
    formed across a cut, so two instruction sentences side by side do not make a 13-gram of their own."""
    if not aside:
        return [tokens] if tokens else []
    inside = [False] * len(tokens)
    for sentence in aside:
        size = len(sentence)
        if not size:
            continue
        for start in range(len(tokens) - size + 1):
            if tokens[start:start + size] == sentence:
                inside[start:start + size] = [True] * size
    runs, current = [], []
    for token, cut in zip(tokens, inside):
        if cut:
            if current:
                runs.append(current)
            current = []
        else:
            current.append(token)
    if current:
        runs.append(current)
    return runs


def instruction_sentences(prompt) -> list[str]:
    """The wording of a prompt's checkable instructions (the constraint library's), set aside when comparing."""
    constraints = (getattr(prompt, "meta", None) or {}).get("constraints") or ()
    if not constraints:
        return []
    from ..prompts.constraints import instruction_text

    sentences = []
    for constraint in constraints:
        try:
            sentences.append(instruction_text(constraint))
        except (KeyError, ValueError, TypeError):  # a user's constraint the library cannot word: nothing set aside
            continue
    return sentences


@dataclass
class Decontamination:
    total: int
    kept: list[int]
    removed: list[Match]

    def counts(self) -> dict[str, int]:
        """Removed prompts per evaluation set (a prompt counts once, under its best match)."""
        return dict(Counter(m.item.suite for m in self.removed))


def decontaminate(prompts: Sequence, index: EvalIndex, progress: bool = False, embedding=None) -> Decontamination:
    """Prompts (Prompt objects or texts) checked against `index`: which to keep, and for each removed one its
    best match (the highest share over the rules that fired). `embedding` (an EmbeddingRule, or a
    (local model folder, threshold) pair; None: off) also checks the prompts the n-gram rules kept, each with
    its own instruction sentences cut out, against the same items."""
    from tqdm import tqdm

    if embedding is not None:
        from .embeddings import EmbeddingRule, paraphrase_matches

        if not isinstance(embedding, EmbeddingRule):
            embedding = EmbeddingRule(str(embedding[0]), float(embedding[1]))
    kept, removed = [], []
    for position, prompt in enumerate(tqdm(prompts, desc="decontaminate", unit="prompt", disable=not progress)):
        found = index.matches(prompt_text(prompt), instruction_sentences(prompt))
        if found:
            best = max(found, key=lambda m: m.share)
            removed.append(Match(position, best.item, best.rule, best.share))
        else:
            kept.append(position)
    if embedding is not None and kept:
        texts = [_without(prompt_text(prompts[p]), instruction_sentences(prompts[p])) for p in kept]
        paraphrased = {kept[i]: Match(kept[i], item, embedding, cosine) for i, item, cosine in paraphrase_matches(
            texts, index.items, embedding.model_path, embedding.threshold, progress=progress)}
        kept = [p for p in kept if p not in paraphrased]
        removed = sorted(removed + list(paraphrased.values()), key=lambda m: m.prompt)
    return Decontamination(len(prompts), kept, removed)


def _without(text: str, sentences: Iterable[str]) -> str:
    for sentence in sentences:
        text = text.replace(sentence, " ")
    return text
