"""What every judge shares: the verdict record, the matchup it judges, and judging through the store."""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Callable, Protocol, Sequence, TypeVar

from ..models.base import Completion, GenerationRequest, SamplingParams, content_key, is_remote
from ..overlap import as_done
from ..records import WINNERS, Battle, JudgedBattle


@dataclass
class Verdict:
    """`error` means the judge could not decide (e.g. its output never parsed): it is recorded as such
    and left out of ratings — never silently turned into a tie."""

    winner: str
    score_a: float | None = None
    score_b: float | None = None
    explanation: str = ""
    raw: dict = field(default_factory=dict)

    def __post_init__(self):
        if self.winner not in WINNERS:
            raise ValueError(f"verdict winner must be one of {WINNERS}, got {self.winner!r}")


@dataclass(frozen=True)
class Matchup:
    """One battle as a judge sees it: the prompt, its context (constraints, reference answer) and the
    two answers."""

    messages: tuple
    context: dict
    answer_a: Completion
    answer_b: Completion


class Judge(Protocol):
    fingerprint: str

    def judge(self, matchups: Sequence[Matchup]) -> list[Verdict]:
        """One verdict per matchup, in order."""


Parsed = TypeVar("Parsed")
RETRY_TEMPERATURE = 0.7


def ask_until_parsed(generator, prompts: Sequence[list[dict]], params: SamplingParams,
                     parse: Callable[[str], Parsed | None], max_retries: int = 2,
                     retry_temperature: float = RETRY_TEMPERATURE) -> list[tuple[str, Parsed | None]]:
    """(judge output, parsed) for each judge prompt, all sent as one batch. A prompt whose output does not
    parse is asked again, up to `max_retries` times, sampling (at least `retry_temperature`, the same top_p,
    a new sample index so the retry can differ and is cached apart); after that its parsed value stays None,
    which the judge records as an error. The one loop both LLM judges (pairwise verdicts, 1-10 ratings) and
    MT-Bench use."""
    results: list[tuple[str, Parsed | None]] = [("", None)] * len(prompts)
    pending = list(range(len(prompts)))
    for attempt in range(max_retries + 1):
        attempt_params = params if attempt == 0 else SamplingParams(
            params.max_new_tokens, max(params.temperature, retry_temperature), params.top_p)
        outputs = generator.generate([GenerationRequest.of(prompts[i], params=attempt_params, sample_index=attempt)
                                      for i in pending])
        for i, output in zip(pending, outputs):
            results[i] = (output.text, parse(output.text))
        pending = [i for i in pending if results[i][1] is None]
        if not pending:
            break
    return results


def judgment_key(judge_fingerprint: str, messages, key_a: str, key_b: str) -> str:
    return content_key([judge_fingerprint, list(messages), key_a, key_b])


# Judge chunks under way at once for a judge served elsewhere: enough that a chunk's slowest answers do
# not leave the endpoint idle, few enough that a crash loses little (the store commits each chunk).
REMOTE_CHUNKS_AT_ONCE = 4


def judge_battles(judge: Judge, battles: Sequence[Battle], store, chunk_size: int = 32,
                  progress: bool = True) -> list[JudgedBattle]:
    """Judge battles, asking the judge only about pairs of answers it has not judged yet and committing
    each chunk as it is done. Returns the battles with their verdicts, in order. A judge served elsewhere
    (an LLM behind an endpoint) gets `REMOTE_CHUNKS_AT_ONCE` chunks at once; the endpoint's generator
    still holds each replica to its `concurrency`."""
    from ..progress import progress_bar

    keys = [judgment_key(judge.fingerprint, b.messages, b.answer_a, b.answer_b) for b in battles]
    found = store.get_judgments(keys)
    todo = list({k: b for k, b in zip(keys, battles) if k not in found}.items())
    chunks = [todo[start:start + chunk_size] for start in range(0, len(todo), chunk_size)]

    def verdicts_of(chunk) -> list[Verdict]:
        return judge.judge([Matchup(tuple(b.messages), b.context, b.completion_a, b.completion_b) for _, b in chunk])

    bar = progress_bar(len(todo), "judge", "battle", progress)
    calls = [functools.partial(verdicts_of, chunk) for chunk in chunks]
    try:
        for index, verdicts in as_done(calls, at_once=REMOTE_CHUNKS_AT_ONCE if is_remote(judge) else 1):
            chunk = chunks[index]
            store.put_judgments([(key, judge.fingerprint, v) for (key, _), v in zip(chunk, verdicts)])
            bar.update(len(chunk))
    finally:
        bar.close()
    store.link_judgments([(b.id, judge.fingerprint, k) for k, b in zip(keys, battles)])
    found = store.get_judgments(keys)
    return [b.judged(found[k]["winner"], found[k]["score_a"], found[k]["score_b"], found[k]["explanation"])
            for k, b in zip(keys, battles)]
