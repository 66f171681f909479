"""Several replicas behind one `openai:` spec, against real scripted servers on 127.0.0.1: a replica that
dies mid-run loses no request and changes no answer, the store is the same on 1 replica or 3, every
replica down is one clear error, a replica is used again after its cool-down, and the least-loaded choice
sends more to the faster replica. The cool-down clock and the backoff sleeps are injected; nothing asserts
on wall-clock durations."""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections import Counter

import pytest
from conftest import free_port
from test_openai_backend import (DROP_BEFORE_ANSWER, FixedRandom, RecordedSleeps, Reply, ScriptedServer,
                                 chat_reply, chat_requests, no_stray_key)  # noqa: F401  (an autouse fixture)

from offline_arena.models import parse_model_spec
from offline_arena.loading import load_generator
from offline_arena.models.openai import HTTPGenerationError, InsecureTransportError, OpenAIChatGenerator
from offline_arena.store import Store


def prompt_of(payload) -> str:
    return payload["messages"][0]["content"]


def scripted_answer(payload) -> Reply:
    """The same answer for the same request on any replica, so runs can be compared text for text."""
    return chat_reply(f"answer to {prompt_of(payload)} (seed {payload['seed']})")


class AnswerLog:
    """The 200 answers each replica gave, per request (its prompt names it), from the servers' side."""

    def __init__(self):
        self.lock, self.answers = threading.Lock(), Counter()

    def record(self, replica: int, payload) -> None:
        with self.lock:
            self.answers[(replica, prompt_of(payload))] += 1

    def per_request(self) -> Counter:
        counts = Counter()
        for (_, prompt), n in self.answers.items():
            counts[prompt] += n
        return counts

    def per_replica(self, replica: int) -> int:
        return sum(n for (r, _), n in self.answers.items() if r == replica)


def answering(log: AnswerLog, replica: int, delay_s: float = 0.0):
    def respond(payload, headers):
        time.sleep(delay_s)  # a little work, so requests overlap and the router has loads to compare
        log.record(replica, payload)
        return scripted_answer(payload)

    return respond


def dying_after(log: AnswerLog, replica: int, answers: int, how: str, server_box: list, delay_s: float):
    """Answers `answers` requests, then fails every one: it drops the connection, or ("refuse") closes
    its listening socket, so later connections are refused."""
    count, lock = 0, threading.Lock()

    def respond(payload, headers):
        nonlocal count
        with lock:
            count += 1
            alive = count <= answers
        if alive:
            time.sleep(delay_s)
            log.record(replica, payload)
            return scripted_answer(payload)
        if how == "refuse" and count == answers + 1:
            httpd = server_box[0].httpd
            threading.Thread(target=lambda: (httpd.shutdown(), httpd.server_close()), daemon=True).start()
        return Reply(fault=DROP_BEFORE_ANSWER)

    return respond


class FakeClock:
    def __init__(self, now: float = 0.0):
        self.now = now

    def __call__(self) -> float:
        return self.now


def routed(urls, **settings) -> OpenAIChatGenerator:
    defaults = dict(timeout_s=5.0, max_retries=3, backoff_s=0.1, max_backoff_s=1.0, progress=False,
                    sleep=RecordedSleeps(), rng=FixedRandom(0.0), api_key_env="ARENA_TEST_KEY", cooldown_s=60.0)
    return OpenAIChatGenerator(urls, "scripted", **{**defaults, **settings})


# --- The spec -----------------------------------------------------------------------------------------

def test_a_spec_names_several_replicas():
    spec = parse_model_spec("openai:http://127.0.0.1:8001/v1/, https://h2:8001/v1?a=1,2,http://h3/v1#m@best-of-2")
    assert spec.inner.urls == ("http://127.0.0.1:8001/v1", "https://h2:8001/v1?a=1,2", "http://h3/v1")
    assert spec.served_name == "m" and spec.best_of == 2
    assert parse_model_spec("openai:http://h/v1?x=1,2#m").urls == ("http://h/v1?x=1,2",)  # one URL, a comma in it
    for bad, message in [("openai:http://h1/v1,http://h1/v1/#m", "appears twice"),
                         ("openai:http://h1/v1,#m", "must start with http"),
                         ("openai:http://h1/v1,http://#m", "must start with http")]:
        with pytest.raises(ValueError, match=message):
            parse_model_spec(bad)


def test_the_fingerprint_names_the_served_model_not_its_replicas(caplog):
    name = "fingerprint-test-model"  # a name no other test serves: the check below is process-wide
    one = OpenAIChatGenerator("http://127.0.0.1:1/v1", name)
    three = OpenAIChatGenerator("http://127.0.0.2:1/v1,http://127.0.0.1:1/v1,http://127.0.0.3:1/v1", name)
    assert one.fingerprint == three.fingerprint == f"openai:#{name}"
    assert OpenAIChatGenerator("http://127.0.0.1:1/v1", name, revision="r7").fingerprint == f"openai:#{name}@r7"
    assert OpenAIChatGenerator("http://127.0.0.1:1/v1", "other").fingerprint != one.fingerprint
    assert not caplog.records  # replicas that share a URL: one model
    OpenAIChatGenerator("http://127.0.0.9:1/v1", name)  # the same name elsewhere: likely another model
    [warning] = caplog.records
    assert "also served at http://127.0.0.1:1/v1" in warning.getMessage()


def test_each_replica_is_checked_for_the_key_and_for_privacy(monkeypatch):
    from offline_arena.preflight import endpoint_problems, same_name_elsewhere
    from offline_arena.privacy.policy import leaves_the_machine

    mixed = "http://127.0.0.1:8001/v1,http://10.0.0.5:8001/v1"
    assert leaves_the_machine(f"openai:{mixed}#m")  # one remote replica is enough to leave the machine
    assert not leaves_the_machine("openai:http://127.0.0.1:8001/v1,http://localhost:8002/v1#m")
    monkeypatch.setenv("ARENA_TEST_KEY", "sk-planted")
    with pytest.raises(InsecureTransportError, match="10.0.0.5"):
        routed(mixed)
    [problem] = endpoint_problems(mixed.split(","), "ARENA_TEST_KEY")
    assert "http://10.0.0.5:8001/v1" in problem
    # one name at disjoint URLs is two models sharing one cache entry; sharing a replica is one model
    specs = [parse_model_spec(s) for s in ("openai:http://a/v1#m", "openai:http://a/v1,http://b/v1#m@revise",
                                           "openai:http://c/v1#m", "openai:http://c/v1#n")]
    [clash] = same_name_elsewhere([(f"opponent {i}", s) for i, s in enumerate(specs)])
    assert clash.startswith("opponent 2: serves 'm' like opponent 0")


# --- Routing against real servers ---------------------------------------------------------------------

@pytest.mark.parametrize("how", ["drop", "refuse"])
def test_a_replica_that_dies_mid_run_loses_no_request_and_changes_no_answer(how):
    requests, log = chat_requests(60), AnswerLog()
    with ScriptedServer(answering(AnswerLog(), 0)) as alone:
        expected = [c.text for c in routed(alone.url).generate(requests)]
    box: list = []
    with ScriptedServer(answering(log, 0, 0.005)) as first, \
            ScriptedServer(dying_after(log, 1, 4, how, box, 0.005)) as dying, \
            ScriptedServer(answering(log, 2, 0.005)) as third:
        box.append(dying)
        sleeps = RecordedSleeps()
        generator = routed([first.url, dying.url, third.url], concurrency=2, sleep=sleeps)
        out = generator.generate(requests)
    assert [c.text for c in out] == expected
    assert set(log.per_request().values()) == {1} and len(log.per_request()) == 60  # each answered once
    assert log.per_replica(1) == 4  # it answered 4 requests, then died
    for live in (0, 2):
        assert log.per_replica(live) >= 18  # the 56 others spread over both live replicas
    stats = generator.replica_stats
    answered = [stats[url]["answered"] for url in (first.url, dying.url, third.url)]
    assert answered == [log.per_replica(r) for r in range(3)]  # the client's counts match the servers'
    assert stats[dying.url]["failed"] >= 1 and stats[first.url]["failed"] == stats[third.url]["failed"] == 0
    assert sleeps == []  # a live replica was always there: no retry waited


def test_the_store_is_the_same_on_one_replica_or_three(tmp_path):
    requests, log = chat_requests(24), AnswerLog()
    servers = [ScriptedServer(answering(log, i, 0.005)) for i in range(3)]
    try:
        urls = [s.url for s in servers]
        with Store(tmp_path / "one.sqlite") as one, Store(tmp_path / "three.sqlite") as three:
            load_generator(f"openai:{urls[1]}#scripted", store=one).generate(requests)
            load_generator(f"openai:{','.join(urls)}#scripted", store=three).generate(requests)
        assert all(len(s.arrivals) > 0 for s in servers)  # the three-replica run used each of them
        asked_before = len(servers[1].arrivals)
        with Store(tmp_path / "three.sqlite") as three:  # resumed with one replica: nothing is asked again
            load_generator(f"openai:{urls[1]}#scripted", store=three).generate(requests)
        assert len(servers[1].arrivals) == asked_before
    finally:
        for server in servers:
            server.__exit__()

    def completions(path):
        with sqlite3.connect(path) as db:
            return db.execute("SELECT key, model, prompt, params, seed, sample_index, text, stopped, num_tokens "
                              "FROM completions ORDER BY key").fetchall()

    rows = completions(tmp_path / "one.sqlite")
    assert len(rows) == 24 and rows == completions(tmp_path / "three.sqlite")


def test_every_replica_down_is_one_clear_error_naming_each():
    urls = [f"http://127.0.0.1:{free_port()}/v1" for _ in range(3)]  # nothing listens on these
    sleeps = RecordedSleeps()
    with pytest.raises(HTTPGenerationError) as caught:
        routed(urls, max_retries=5, sleep=sleeps).generate(chat_requests(1))
    message = str(caught.value)
    assert "failed after 6 attempts on 3 of 3 replicas" in message
    assert all(f"{url}/chat/completions: ConnectError" in message for url in urls)
    # The first three attempts go from replica to replica at once; only once all are down does the
    # backoff apply, counted from its first step (0.1 s ceiling, jitter at its floor: half of it).
    assert sleeps == pytest.approx([0.05, 0.1, 0.2])

    with pytest.raises(HTTPGenerationError, match=r"on 2 of 3 replicas.*not reached \(retry budget spent\): "
                                                  + urls[2].replace(".", r"\.")):
        routed(urls, max_retries=1).generate(chat_requests(1))


def test_a_client_error_is_not_retried_on_another_replica():
    with ScriptedServer(lambda payload, headers: Reply(400, b'{"error": "bad request"}')) as refusing, \
            ScriptedServer(answering(AnswerLog(), 1)) as other:
        refused = f"{refusing.url}/chat/completions .*refused the request: HTTP 400"
        with pytest.raises(HTTPGenerationError, match=refused):
            routed([refusing.url, other.url]).generate(chat_requests(1))
    assert len(refusing.arrivals) == 1 and other.arrivals == []


def test_a_replica_is_used_again_after_its_cool_down():
    clock, sleeps, log = FakeClock(), RecordedSleeps(), AnswerLog()
    failures = iter([Reply(503, b'{"error": "restarting"}')])

    def fails_once(payload, headers):
        reply = next(failures, None)
        if reply is None:
            log.record(0, payload)
            return scripted_answer(payload)
        return reply

    with ScriptedServer(fails_once) as flaky, ScriptedServer(answering(log, 1)) as steady:
        generator = routed([flaky.url, steady.url], cooldown_s=10.0, clock=clock, sleep=sleeps)
        [first] = generator.generate(chat_requests(1))  # to `flaky` (ties go to the first), 503, then `steady`
        assert first.text == "answer to Say 0 (seed 0)"
        assert (len(flaky.arrivals), len(steady.arrivals), sleeps) == (1, 1, [])  # retried elsewhere at once
        clock.now = 9.0  # still cooling down: everything goes to `steady`, even with `flaky` idle
        generator.generate(chat_requests(6))
        assert (len(flaky.arrivals), len(steady.arrivals)) == (1, 7)
        clock.now = 10.0  # back in the pool
        generator.generate(chat_requests(6))
    assert len(flaky.arrivals) > 1 and log.per_replica(0) == len(flaky.arrivals) - 1
    assert generator.replica_stats[flaky.url] == {"answered": log.per_replica(0), "failed": 1}


def test_an_answer_sent_before_the_failure_does_not_end_the_cool_down():
    # A holds "Say 0" while its "Say 2" fails; "Say 0" is answered only once the failure has been seen
    # (its retry reached B). That late answer says nothing of A's health since: A stays out.
    retried = threading.Event()

    def a_respond(payload, headers):
        if prompt_of(payload) == "Say 2":
            return Reply(503, b"{}")
        retried.wait(5)
        return scripted_answer(payload)

    def b_respond(payload, headers):
        if prompt_of(payload) == "Say 2":
            retried.set()
        return scripted_answer(payload)

    with ScriptedServer(a_respond) as a, ScriptedServer(b_respond) as b:
        generator = routed([a.url, b.url], concurrency=2, cooldown_s=10.0, clock=FakeClock())
        generator.generate(chat_requests(4))  # A gets Say 0 and Say 2, B Say 1 and Say 3 (least loaded)
        assert retried.is_set() and sorted(prompt_of(p) for p, _ in a.arrivals) == ["Say 0", "Say 2"]
        generator.generate(chat_requests(4))
    assert len(a.arrivals) == 2 and len(b.arrivals) == 7


def test_a_retry_after_longer_than_the_cool_down_keeps_the_replica_out():
    clock = FakeClock()
    replies = iter([Reply(429, b"{}", {"Retry-After": "30"})])
    with ScriptedServer(lambda payload, headers: next(replies, None) or scripted_answer(payload)) as busy, \
            ScriptedServer(answering(AnswerLog(), 1)) as other:
        generator = routed([busy.url, other.url], cooldown_s=10.0, clock=clock)
        generator.generate(chat_requests(1))
        clock.now = 20.0
        generator.generate(chat_requests(2))
        assert len(busy.arrivals) == 1  # asked for 30 s: out past the 10 s cool-down
        clock.now = 30.0
        generator.generate(chat_requests(2))
        assert len(busy.arrivals) > 1


def test_requests_go_to_the_least_loaded_replica_ties_to_the_first_named():
    # 7 requests, room for 8 on each of 3 replicas: every choice is made before any answer comes back,
    # from the loads alone: A B C A B C A.
    log = AnswerLog()
    with ScriptedServer(answering(log, 0)) as a, ScriptedServer(answering(log, 1)) as b, \
            ScriptedServer(answering(log, 2)) as c:
        routed([a.url, b.url, c.url], concurrency=8).generate(chat_requests(7))
    assert [log.per_replica(r) for r in range(3)] == [3, 2, 2]
    assert sorted(prompt_of(p) for p, _ in a.arrivals) == ["Say 0", "Say 3", "Say 6"]


def test_a_replica_back_from_its_cool_down_takes_one_request_until_it_answers():
    clock, log = FakeClock(), AnswerLog()
    steady_answered = threading.Semaphore(0)
    state = {"failed": False}

    def flaky(payload, headers):
        if not state["failed"]:
            state["failed"] = True
            return Reply(503, b"{}")
        for _ in range(5):  # the probe is held until `steady` has answered 5 requests meanwhile
            steady_answered.acquire(timeout=5)
        log.record(0, payload)
        return scripted_answer(payload)

    def steady(payload, headers):
        log.record(1, payload)
        steady_answered.release()
        return scripted_answer(payload)

    with ScriptedServer(flaky) as a, ScriptedServer(steady) as b:
        generator = routed([a.url, b.url], concurrency=4, cooldown_s=10.0, clock=clock)
        generator.generate(chat_requests(1))  # a fails, b answers
        clock.now = 10.0
        generator.generate(chat_requests(6))
    assert (log.per_replica(0), log.per_replica(1)) == (1, 6)  # a: the probe alone; b: the rest
    assert a.max_in_flight == 1


def test_the_least_loaded_choice_sends_more_to_the_faster_replica():
    total, log = 30, AnswerLog()
    fast_done = threading.Event()

    def slow(payload, headers):
        # Slow as a replica can be: it holds each request until the fast one has answered 24 of them
        # (a router that split requests evenly would never get there: it would wait out the 10 s).
        fast_done.wait(10)
        log.record(1, payload)
        return scripted_answer(payload)

    def fast(payload, headers):
        log.record(0, payload)
        if log.per_replica(0) >= 24:
            fast_done.set()
        return scripted_answer(payload)

    with ScriptedServer(fast) as quick, ScriptedServer(slow) as sluggish:
        generator = routed([sluggish.url, quick.url], concurrency=2, timeout_s=15.0)
        out = generator.generate(chat_requests(total))
    assert len(out) == total and fast_done.is_set()
    assert log.per_replica(0) >= 24 and log.per_replica(1) <= 6
    assert sluggish.max_in_flight == 2  # the slow one was kept full, never over its limit


def test_replica_counts_are_logged_once_per_generate(caplog):
    caplog.set_level(logging.INFO, logger="offline_arena.models.openai.generator")
    with ScriptedServer(answering(AnswerLog(), 0)) as a, ScriptedServer(answering(AnswerLog(), 1)) as b:
        generator = routed([a.url, b.url])
        generator.generate(chat_requests(4))
        routed(a.url).generate(chat_requests(2))  # one URL: nothing to report
    [record] = [r for r in caplog.records if "replicas" in r.getMessage()]
    stats = generator.replica_stats
    assert sum(s["answered"] for s in stats.values()) == 4
    assert f"{a.url} {stats[a.url]['answered']}/0" in record.getMessage()
