"""Waiting on several endpoints at once, against real scripted servers on 127.0.0.1: the contestants of a
battle are asked at the same time (a local model alongside), the chunks of one call and the chunks of a
judge overlap while each replica still holds `concurrency` requests at most, and a failed judge chunk
keeps what the others judged. Nothing asserts on wall-clock durations: overlap is seen from the servers'
side (requests that met, the most held at once)."""

from __future__ import annotations

import threading
import time

import pytest
from test_openai_backend import Reply, ScriptedServer, chat_reply, no_stray_key  # noqa: F401  (an autouse fixture)

from offline_arena.battles import run_battles, target_vs_opponents
from offline_arena.judges import judge_battles
from offline_arena.judges.llm_pairwise import PairwiseJudge
from offline_arena.models import GenerationRequest, SamplingParams
from offline_arena.loading import load_generator
from offline_arena.models.base import is_remote
from offline_arena.models.openai import HTTPGenerationError, OpenAIChatGenerator
from offline_arena.overlap import as_done
from offline_arena.prompts.sources import load_prompts
from offline_arena.store import Store

PARAMS = SamplingParams(max_new_tokens=8, temperature=0.0)


def endpoint(server: ScriptedServer, name: str, store=None, concurrency: int = 8):
    generator = OpenAIChatGenerator(server.url, name, concurrency=concurrency, timeout_s=10.0, max_retries=1,
                                    backoff_s=0.01, progress=False)
    if store is None:
        return generator
    from offline_arena.models.cached import CachedGenerator

    return CachedGenerator(generator, store, chunk_size=2)


def answers_after(delay_s: float, met: list | None = None, barrier: threading.Barrier | None = None,
                  who: str = "answer"):
    """A server's `respond`: waits `delay_s` (and, with a barrier, for the other server's first request),
    then answers with `who` and the prompt."""
    first = threading.Event()

    def respond(payload, headers):
        if barrier is not None and not first.is_set():
            first.set()
            try:
                barrier.wait(timeout=3)
                met.append(True)
            except threading.BrokenBarrierError:
                met.append(False)
        time.sleep(delay_s)
        return chat_reply(f"{who} to {payload['messages'][-1]['content'][:40]}")

    return respond


# --- as_done -----------------------------------------------------------------------------------------

def test_as_done_runs_at_most_at_once_and_returns_every_result():
    lock, running, most = threading.Lock(), [0], [0]

    def call(i):
        def run():
            with lock:
                running[0] += 1
                most[0] = max(most[0], running[0])
            time.sleep(0.05)
            with lock:
                running[0] -= 1
            return i * i
        return run

    results = dict(as_done([call(i) for i in range(9)], at_once=3))
    assert results == {i: i * i for i in range(9)}
    assert most[0] == 3


def test_as_done_one_at_a_time_stays_in_the_calling_thread():
    threads = [r for _, r in as_done([threading.current_thread] * 3, at_once=1)]
    assert threads == [threading.current_thread()] * 3


def test_as_done_keeps_what_finished_and_then_raises_the_first_error():
    def fails():
        time.sleep(0.03)  # the others have started by now
        raise RuntimeError("endpoint gone")

    def slow(value):
        return lambda: (time.sleep(0.1), value)[1]

    got = []
    with pytest.raises(RuntimeError, match="endpoint gone"):
        for index, value in as_done([slow("a"), fails, slow("c")], at_once=3):
            got.append((index, value))
    # the calls already running when one failed still finish and are handed back
    assert sorted(got) == [(0, "a"), (2, "c")]
    with pytest.raises(ValueError, match="at_once"):
        list(as_done([fails], at_once=0))


# --- battles -----------------------------------------------------------------------------------------

def test_the_contestants_of_a_battle_are_asked_at_the_same_time(pico_model_dir, tmp_path):
    """Two served opponents and a local target: each opponent's first request waits (up to 3 s) for the
    other's, which only arrives when both are asked at once; the local target answers meanwhile, and its
    answers are the ones it gives alone."""
    prompts = load_prompts("builtin:verifiable:round1/sft:3")
    barrier, met = threading.Barrier(2), []
    with (ScriptedServer(answers_after(0.05, met, barrier)) as one,
          ScriptedServer(answers_after(0.05, met, barrier)) as two,
          Store(tmp_path / "s.sqlite") as store):
        target = load_generator(str(pico_model_dir), store=store, batch_size=4)
        contestants = {"t": target, "o1": endpoint(one, "o1", store), "o2": endpoint(two, "o2", store)}
        assert is_remote(contestants["o1"]) and not is_remote(target)
        battles = run_battles(target_vs_opponents("t", ["o1", "o2"], prompts), contestants, store, PARAMS)
        assert met == [True, True]
        assert len(battles) == 6 and len(one.arrivals) == len(two.arrivals) == 3  # each prompt asked once
        alone = load_generator(str(pico_model_dir), batch_size=4).generate(
            [GenerationRequest.of(p.messages, params=PARAMS, context=dict(p.meta)) for p in prompts])
        assert [b.completion_a.text for b in battles[::2]] == [c.text for c in alone]
        assert store.count() == 9


def test_one_call_sends_its_chunks_together_and_the_store_gets_them_all(tmp_path):
    """Twelve requests in chunks of two: before, each chunk waited for the last; now the server holds as
    many as `concurrency` allows, across chunks, and every chunk is committed."""
    with ScriptedServer(answers_after(0.2)) as server, Store(tmp_path / "s.sqlite") as store:
        generator = endpoint(server, "m", store, concurrency=6)
        requests = [GenerationRequest.of([{"role": "user", "content": f"q{i}"}], params=PARAMS) for i in range(12)]
        out = generator.generate(requests)
        assert [c.text for c in out] == [f"answer to q{i}" for i in range(12)]
        assert server.max_in_flight == 6
        assert store.count() == 12 and len(server.arrivals) == 12


def test_calls_from_several_threads_share_one_limit():
    with ScriptedServer(answers_after(0.1)) as server:
        generator = endpoint(server, "m", concurrency=2)
        results = {}

        def ask(tag):
            results[tag] = generator.generate(
                [GenerationRequest.of([{"role": "user", "content": f"{tag}{i}"}], params=PARAMS) for i in range(4)])

        threads = [threading.Thread(target=ask, args=(tag,)) for tag in "xyz"]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert server.max_in_flight == 2
        assert {tag: [c.text for c in out] for tag, out in results.items()} == {
            tag: [f"answer to {tag}{i}" for i in range(4)] for tag in "xyz"}
        generator.close()
        assert generator.generate([GenerationRequest.of([{"role": "user", "content": "again"}])])[0].text == \
            "answer to again"  # a closed generator starts its loop again


# --- judges ------------------------------------------------------------------------------------------

def judge_reply(fail_on: str | None = None, delay_s: float = 0.15):
    """Prefers the first answer shown; a 400 for any battle whose prompt holds `fail_on`."""

    def respond(payload, headers):
        time.sleep(delay_s)
        text = payload["messages"][-1]["content"]
        if fail_on and fail_on in text:
            return Reply(status=400, body=b'{"error": "rejected"}')
        return chat_reply("The first is better.\n[[A]]")

    return respond


def served_battles(store, n: int):
    """`n` battles between two scripted contestants (their servers are closed once the answers are stored)."""
    prompts = load_prompts(f"builtin:verifiable:round1/sft:{n}")
    with ScriptedServer(answers_after(0.0, who="a")) as one, ScriptedServer(answers_after(0.0, who="b")) as two:
        contestants = {"a": endpoint(one, "a", store), "b": endpoint(two, "b", store)}
        return run_battles(target_vs_opponents("a", ["b"], prompts), contestants, store, PARAMS)


def test_judge_chunks_overlap_within_the_judges_limit(tmp_path):
    """Four chunks of two battles (four requests each, both orders): judged one chunk at a time the
    judge's server never held more than four; overlapped it holds its limit, six, and no more."""
    with Store(tmp_path / "s.sqlite") as store, ScriptedServer(judge_reply()) as server:
        battles = served_battles(store, 8)
        judge = PairwiseJudge(load_generator(f"openai:{server.url}#judge", store=store, concurrency=6))
        assert is_remote(judge)
        judged = judge_battles(judge, battles, store, chunk_size=2, progress=False)
        assert server.max_in_flight == 6
        # both orders preferred the first shown: the orders disagree, so every battle is a tie
        assert [b.winner for b in judged] == ["tie"] * 8
        assert len(server.arrivals) == 16 and store.count("judgments") == 8


def test_a_failed_judge_chunk_keeps_the_others_and_a_rerun_judges_only_it(tmp_path):
    with Store(tmp_path / "s.sqlite") as store:
        battles = served_battles(store, 8)
        doomed = battles[5].messages[-1]["content"]  # battle 5 sits in chunk 2 (of 0..3)
        with ScriptedServer(judge_reply(fail_on=doomed)) as server:
            judge = PairwiseJudge(load_generator(f"openai:{server.url}#judge", store=store, concurrency=8))
            with pytest.raises(HTTPGenerationError, match="refused the request"):
                judge_battles(judge, battles, store, chunk_size=2, progress=False)
        assert store.count("judgments") == 6  # chunks 0, 1 and 3, all under way when chunk 2 failed
        with ScriptedServer(judge_reply()) as server:
            judge = PairwiseJudge(load_generator(f"openai:{server.url}#judge", store=store, concurrency=8))
            judged = judge_battles(judge, battles, store, chunk_size=2, progress=False)
            assert len(server.arrivals) == 4  # chunk 2's two battles, both orders: nothing judged twice
        assert store.count("judgments") == 8 and all(b.winner == "tie" for b in judged)
