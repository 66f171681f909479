"""The OpenAI-compatible backend against real servers on 127.0.0.1: `transformers serve` with a pico model
(behind a small proxy that injects 429/503s), and a scripted server that plays the faults a real endpoint
shows (hangs, Retry-After, malformed bodies, dropped connections) and counts requests in flight. Then how
a failed endpoint flows through battles and judges, and where the API key may go and never appears."""

from __future__ import annotations

import json
import logging
import random
import threading
import time
import traceback
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from conftest import LocalHTTPServer, forward, free_port

from offline_arena.models import GenerationRequest, SamplingParams
from offline_arena.loading import load_generator
from offline_arena.models.openai import (ALLOW_INSECURE_HTTP_ENV, REDACTED, HTTPGenerationError,
                                         InsecureTransportError, OpenAIChatGenerator)


@pytest.fixture(scope="module")
def server(pico_server):
    """A real OpenAI-compatible server (conftest's `pico_server`); yields (base_url, served model name)."""
    return pico_server


class FaultyProxy(LocalHTTPServer):
    """Forwards to the server, but answers the first `failures` POSTs with `status` instead."""

    def __init__(self, upstream: str, failures: int, status: int = 503):
        self.failures_left, self.status, self.posts, self.auth_headers = failures, status, 0, []

        def respond(path, body, headers):
            self.posts += 1
            self.auth_headers.append(headers.get("Authorization"))
            if self.failures_left > 0:
                self.failures_left -= 1
                return self.status, b'{"error": "injected failure"}', {"Retry-After": "0"}
            return 200, forward(upstream, path, body, timeout=60), {}

        super().__init__(respond)


def chat_requests(n, max_new_tokens=6):
    params = SamplingParams(max_new_tokens=max_new_tokens, temperature=0.7)
    return [GenerationRequest.of([{"role": "user", "content": f"Say {i}"}], params=params, sample_index=i)
            for i in range(n)]


def test_completions_from_a_real_server(server):
    url, name = server
    generator = load_generator(f"openai:{url}#{name}", concurrency=3)
    out = generator.generate(chat_requests(4))
    assert len(out) == 4
    for completion in out:
        assert isinstance(completion.text, str)
        assert 1 <= completion.num_tokens <= 6
        assert completion.stopped == (completion.meta["finish_reason"] != "length")


def test_retries_after_injected_failures(server, monkeypatch):
    url, name = server
    proxy = FaultyProxy(url, failures=2, status=503)
    monkeypatch.setenv("ARENA_TEST_KEY", "sk-secret-123")
    try:
        generator = OpenAIChatGenerator(proxy.url, name, api_key_env="ARENA_TEST_KEY", backoff_s=0.01,
                                        max_retries=3, progress=False)
        out = generator.generate(chat_requests(1))
        assert len(out) == 1 and out[0].num_tokens >= 1
        assert proxy.posts == 3  # two injected 503s, then the real answer
        assert set(proxy.auth_headers) == {"Bearer sk-secret-123"}
        assert "sk-secret" not in generator.fingerprint
    finally:
        proxy.close()


def test_clear_error_after_the_last_retry(server):
    url, name = server
    proxy = FaultyProxy(url, failures=100, status=429)
    try:
        generator = OpenAIChatGenerator(proxy.url, name, backoff_s=0.01, max_retries=2, progress=False)
        with pytest.raises(HTTPGenerationError, match=r"failed after 3 attempts; last: HTTP 429"):
            generator.generate(chat_requests(1))
        assert proxy.posts == 3
    finally:
        proxy.close()


def test_client_errors_are_not_retried(server):
    url, name = server
    proxy = FaultyProxy(url, failures=100, status=400)
    try:
        generator = OpenAIChatGenerator(proxy.url, name, backoff_s=0.01, max_retries=5, progress=False)
        with pytest.raises(HTTPGenerationError, match="refused the request: HTTP 400"):
            generator.generate(chat_requests(1))
        assert proxy.posts == 1
    finally:
        proxy.close()


def test_unreachable_server_names_the_url():
    port = free_port()  # nothing listens here
    generator = OpenAIChatGenerator(f"http://127.0.0.1:{port}/v1", "m", backoff_s=0.01, max_retries=1, progress=False)
    with pytest.raises(HTTPGenerationError, match=f"127.0.0.1:{port}.*ConnectError"):
        generator.generate(chat_requests(1))


# --- A scripted OpenAI-compatible server: the faults a real endpoint shows, on 127.0.0.1 -----------------
# These tests set tiny timeouts and record the backend's waits instead of sleeping them, so they run in a
# few seconds; nothing asserts on wall-clock durations.

HANG, DROP_BEFORE_ANSWER, DROP_MID_BODY = "hang", "drop before answer", "drop mid body"


@dataclass
class Reply:
    status: int = 200
    body: bytes = b""
    headers: dict = field(default_factory=dict)
    fault: str | None = None  # HANG: never answer; DROP_*: close the connection before/while answering


def chat_reply(text: str, finish: str = "stop") -> Reply:
    body = {"choices": [{"message": {"role": "assistant", "content": text}, "finish_reason": finish}],
            "usage": {"completion_tokens": len(text.split())}}
    return Reply(body=json.dumps(body).encode())


class ScriptedServer:
    """A real threaded HTTP server on 127.0.0.1. Each POST's JSON payload and headers go to
    `respond(payload, headers)`, which returns a Reply. Records every arrival and the most requests it
    ever held at once."""

    def __init__(self, respond):
        self.respond, self.arrivals = respond, []
        self.in_flight = self.max_in_flight = 0
        self.lock, self.closing = threading.Lock(), threading.Event()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                payload = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with server.lock:
                    server.arrivals.append((payload, dict(self.headers)))
                    server.in_flight += 1
                    server.max_in_flight = max(server.max_in_flight, server.in_flight)
                try:
                    self.answer(server.respond(payload, self.headers))
                except OSError:
                    pass  # the client gave up (timed out) first
                finally:
                    with server.lock:
                        server.in_flight -= 1

            def answer(self, reply: Reply):
                if reply.fault == HANG:
                    server.closing.wait(10)
                    return
                if reply.fault == DROP_BEFORE_ANSWER:
                    return  # the connection closes without a byte of answer
                self.send_response(reply.status)
                for name, value in {"Content-Type": "application/json", **reply.headers}.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(reply.body)))
                self.end_headers()
                self.wfile.write(reply.body[:len(reply.body) // 2] if reply.fault == DROP_MID_BODY else reply.body)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        # A short poll interval: shutdown() waits for it, and every test closes a server or two.
        threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True).start()

    def wait_for_arrivals(self, n: int, deadline_s: float = 10.0) -> int:
        """The arrival count once it reaches n (a handler thread may lag behind the client's timeout)."""
        end = time.monotonic() + deadline_s
        while len(self.arrivals) < n and time.monotonic() < end:
            time.sleep(0.01)
        return len(self.arrivals)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.closing.set()
        self.httpd.shutdown()
        self.httpd.server_close()


def replies(*script: Reply):
    """A respond function that plays `script` in order, repeating its last reply."""
    queue = list(script)
    lock = threading.Lock()

    def respond(payload, headers):
        with lock:
            return queue.pop(0) if len(queue) > 1 else queue[0]

    return respond


class FixedRandom(random.Random):
    """A jitter source that always draws the same point."""

    def __init__(self, value: float):
        super().__init__()
        self.value = value

    def random(self) -> float:
        return self.value


class RecordedSleeps(list):
    """The backend's `sleep`: records each wait and returns at once (so tests never sleep a backoff)."""

    async def __call__(self, seconds: float) -> None:
        self.append(seconds)


def fast_generator(url: str, model: str = "scripted", **settings) -> OpenAIChatGenerator:
    defaults = dict(timeout_s=5.0, max_retries=2, backoff_s=0.01, max_backoff_s=0.05, progress=False,
                    sleep=RecordedSleeps(), api_key_env="ARENA_TEST_KEY")  # waits recorded, never slept
    return OpenAIChatGenerator(url, model, **{**defaults, **settings})


@pytest.fixture(autouse=True)
def no_stray_key(monkeypatch):
    """No key from the developer's environment leaks into (or changes) these tests."""
    for name in ("ARENA_TEST_KEY", "OPENAI_API_KEY", ALLOW_INSECURE_HTTP_ENV):
        monkeypatch.delenv(name, raising=False)


def test_a_server_that_sleeps_past_the_timeout_is_retried_then_named():
    with ScriptedServer(replies(Reply(fault=HANG))) as server:
        generator = fast_generator(server.url, timeout_s=0.2, max_retries=2)
        with pytest.raises(HTTPGenerationError) as caught:
            generator.generate(chat_requests(1))
        assert server.wait_for_arrivals(3) == 3
    message = str(caught.value)
    assert f"{server.url}/chat/completions" in message
    assert "failed after 3 attempts" in message and "ReadTimeout" in message and "timeout_s=0.2" in message


def test_retry_after_is_honoured_and_capped():
    future = format_datetime(datetime.now(timezone.utc) + timedelta(hours=1), usegmt=True)
    past = format_datetime(datetime.now(timezone.utc) - timedelta(hours=1), usegmt=True)
    script = [Reply(429, b"{}", {"Retry-After": "7"}), Reply(503, b"{}", {"Retry-After": "1000"}),
              Reply(429, b"{}", {"Retry-After": future}), Reply(503, b"{}", {"Retry-After": past}),
              chat_reply("finally")]
    with ScriptedServer(replies(*script)) as server:
        sleeps = RecordedSleeps()
        generator = fast_generator(server.url, max_retries=4, max_retry_after_s=30.0, sleep=sleeps)
        [answer] = generator.generate(chat_requests(1))
    assert answer.text == "finally"
    assert sleeps == [7.0, 30.0, 30.0, 0.0]  # as asked; capped; an HTTP date, capped; a date gone by
    assert generator.num_retries == 4 and len(server.arrivals) == 5


@pytest.mark.parametrize("draw, expected", [
    (0.0, [0.05, 0.1, 0.2, 0.4, 0.5, 0.5]),     # the floor of equal jitter: half of each ceiling
    (0.5, [0.075, 0.15, 0.3, 0.6, 0.75, 0.75]),
])
def test_backoff_is_exponential_capped_and_jittered(draw, expected):
    # ceilings 0.1, 0.2, 0.4, 0.8, then the 1.0 cap; an unreadable Retry-After falls back to the backoff
    with ScriptedServer(replies(Reply(503, b"{}", {"Retry-After": "soon"}))) as server:
        sleeps = RecordedSleeps()
        generator = fast_generator(server.url, max_retries=6, backoff_s=0.1, max_backoff_s=1.0,
                                   rng=FixedRandom(draw), sleep=sleeps)
        with pytest.raises(HTTPGenerationError, match="failed after 7 attempts; last: HTTP 503"):
            generator.generate(chat_requests(1))
    assert sleeps == pytest.approx(expected)


def test_default_jitter_stays_in_the_upper_half_of_each_ceiling():
    with ScriptedServer(replies(Reply(502, b"{}"))) as server:
        sleeps = RecordedSleeps()
        generator = fast_generator(server.url, max_retries=8, backoff_s=0.1, max_backoff_s=2.0, sleep=sleeps)
        with pytest.raises(HTTPGenerationError):
            generator.generate(chat_requests(1))
    ceilings = [0.1, 0.2, 0.4, 0.8, 1.6, 2.0, 2.0, 2.0]
    assert len(sleeps) == 8 and all(c / 2 <= s <= c for s, c in zip(sleeps, ceilings))
    assert len(set(sleeps[-3:])) == 3  # drawn, not fixed: three waits under the same cap differ


MALFORMED_BODIES = {
    "not JSON": b"<html><body>502 Bad Gateway</body></html>",
    "no choices": b'{"object": "chat.completion"}',
    "empty choices": b'{"choices": []}',
    "an error object": b'{"error": {"message": "upstream overloaded"}}',
    "null content": b'{"choices": [{"message": {"role": "assistant", "content": null}, "finish_reason": "stop"}]}',
}


@pytest.mark.parametrize("kind", MALFORMED_BODIES)
def test_a_malformed_200_body_is_retried_then_a_clear_error(kind):
    # Retried: such a body is the server's (or a gateway's) fault, like a 5xx, and often passes; the last
    # one raises. Never an empty answer, which a judge would count as a loss.
    with ScriptedServer(replies(Reply(body=MALFORMED_BODIES[kind]))) as server:
        generator = fast_generator(server.url, max_retries=2)
        with pytest.raises(HTTPGenerationError) as caught:
            generator.generate(chat_requests(1))
    assert len(server.arrivals) == 3
    message = str(caught.value)
    assert server.url in message and "failed after 3 attempts" in message
    assert "HTTP 200 with an unexpected body" in message


def test_a_malformed_body_then_a_good_one_gives_the_good_answer():
    with ScriptedServer(replies(Reply(body=MALFORMED_BODIES["not JSON"]), chat_reply("recovered"))) as server:
        [answer] = fast_generator(server.url).generate(chat_requests(1))
    assert answer.text == "recovered" and len(server.arrivals) == 2


@pytest.mark.parametrize("status", [500, 501, 502, 503, 504, 507, 520, 521, 522, 523, 524, 529, 599])
def test_every_5xx_is_retried(status):
    # Standard ones (501 Not Implemented, 507 Insufficient Storage) and those of gateways and hosted APIs
    # (Cloudflare's 520-524, 529 overloaded): the server's fault, so the stage goes on when it passes.
    with ScriptedServer(replies(Reply(status, b'{"error": "server side"}'), chat_reply("recovered"))) as server:
        generator = fast_generator(server.url)
        [answer] = generator.generate(chat_requests(1))
    assert answer.text == "recovered" and len(server.arrivals) == 2 and generator.num_retries == 1


def test_no_text_at_the_token_limit_is_a_runaway_not_a_fault():
    body = b'{"choices": [{"message": {"role": "assistant", "content": null}, "finish_reason": "length"}]}'
    with ScriptedServer(replies(Reply(body=body))) as server:
        [answer] = fast_generator(server.url).generate(chat_requests(1))
    assert (answer.text, answer.stopped, len(server.arrivals)) == ("", False, 1)


def test_requests_in_flight_never_exceed_the_limit():
    limit, total = 3, 12
    arrived, gate = 0, threading.Condition()

    def hold_until_full(payload, headers):
        # Each request waits until `limit` are held (or no more will come): a client that keeps `limit`
        # in flight reaches the limit every time, one that sent more would be seen exceeding it.
        nonlocal arrived
        with gate:
            arrived += 1
            gate.notify_all()
            gate.wait_for(lambda: server.in_flight >= limit or arrived == total, timeout=2)
        return chat_reply(payload["messages"][0]["content"])

    with ScriptedServer(hold_until_full) as server:
        out = fast_generator(server.url, concurrency=limit).generate(chat_requests(total))
    assert len(out) == total and len(server.arrivals) == total
    assert server.max_in_flight == limit


def test_answers_come_back_in_request_order_under_random_delays():
    delays, lock = random.Random(0), threading.Lock()

    def echo_later(payload, headers):
        with lock:
            delay = delays.uniform(0, 0.03)
        time.sleep(delay)
        return chat_reply("answer to " + payload["messages"][0]["content"])

    requests = chat_requests(24)
    with ScriptedServer(echo_later) as server:
        out = fast_generator(server.url, concurrency=6).generate(requests)
    assert [c.text for c in out] == [f"answer to Say {i}" for i in range(24)]


@pytest.mark.parametrize("fault", [DROP_BEFORE_ANSWER, DROP_MID_BODY])
def test_a_dropped_connection_is_retried(fault):
    with ScriptedServer(replies(Reply(fault=fault), chat_reply("second try"))) as server:
        [answer] = fast_generator(server.url).generate(chat_requests(1))
    assert answer.text == "second try" and len(server.arrivals) == 2


def test_a_connection_dropped_every_time_is_an_error_naming_it():
    with ScriptedServer(replies(replace(chat_reply("never whole"), fault=DROP_MID_BODY))) as server:
        generator = fast_generator(server.url, max_retries=1)
        with pytest.raises(HTTPGenerationError, match=r"failed after 2 attempts; last: RemoteProtocolError"):
            generator.generate(chat_requests(1))
    assert len(server.arrivals) == 2


def test_a_failed_request_stops_the_batch():
    # One request is refused (400): the batch raises, and the requests behind it are not sent.
    def refuse_the_first(payload, headers):
        if payload["messages"][0]["content"] == "Say 0":
            return Reply(400, b'{"error": "bad request"}')
        time.sleep(0.05)
        return chat_reply("fine")

    with ScriptedServer(refuse_the_first) as server:
        with pytest.raises(HTTPGenerationError, match="refused the request: HTTP 400"):
            fast_generator(server.url, concurrency=1).generate(chat_requests(5))
    assert len(server.arrivals) == 1


# --- How a failed endpoint flows through battles and judges: never a win, loss or tie -----------------

def test_a_failed_opponent_records_no_answer_and_no_battle(tmp_path):
    from offline_arena.battles import run_battles
    from offline_arena.models.cached import CachedGenerator
    from offline_arena.prompts.sources import Prompt
    from offline_arena.store import Store

    prompts = [Prompt(f"p{i}", ({"role": "user", "content": f"Say {i}"},)) for i in range(3)]
    with ScriptedServer(replies(chat_reply("a real answer"))) as good, \
            ScriptedServer(replies(Reply(503, b"{}"))) as down, Store(tmp_path / "s.sqlite") as store:
        # Two models, two served names: answers are cached by served name, not by URL.
        target = CachedGenerator(fast_generator(good.url, model="target"), store)
        opponent = CachedGenerator(fast_generator(down.url.replace("127.0.0.1", "localhost"), model="opponent"), store)
        schedule = [(p, "target", "opponent") for p in prompts]
        with pytest.raises(HTTPGenerationError, match="failed after 3 attempts"):
            run_battles(schedule, {"target": target, "opponent": opponent}, store, SamplingParams(max_new_tokens=8))
        assert store.count("battles") == 0
        assert store.count("completions", model=opponent.fingerprint) == 0
        assert store.count("completions", model=target.fingerprint) == 3  # kept: a rerun asks only the opponent


def test_a_failed_judge_call_records_no_verdict_and_a_rerun_judges_it(tmp_path):
    from offline_arena.judges import judge_battles
    from offline_arena.judges.llm_pairwise import PairwiseJudge
    from offline_arena.models import Completion
    from offline_arena.store import Store

    healthy = threading.Event()

    def judge_endpoint(payload, headers):
        if not healthy.is_set():
            return Reply(503, b'{"error": "overloaded"}')
        prompt = payload["messages"][-1]["content"]  # the answer shown first is slot A
        return chat_reply("[[A]]" if prompt.index("GOOD") < prompt.index("BAD") else "[[B]]")

    from offline_arena.records import Battle

    battle = Battle("b1", "test", "p1", ({"role": "user", "content": "hi"},), {}, "a", "b", "ka", "kb",
                    Completion("GOOD answer", True, 2), Completion("BAD answer", True, 2))
    with ScriptedServer(judge_endpoint) as server, Store(tmp_path / "s.sqlite") as store:
        judge = PairwiseJudge(fast_generator(server.url))
        with pytest.raises(HTTPGenerationError):
            judge_battles(judge, [battle], store, progress=False)
        assert store.count("judgments") == 0  # no tie, no error verdict cached for good: nothing at all
        healthy.set()
        [judged] = judge_battles(judge, [battle], store, progress=False)
    assert judged.winner == "model_a"


# --- The API key --------------------------------------------------------------------------------------

KEY = "sk-planted-0123456789abcdef"


def test_the_key_comes_from_the_variable_the_recipe_names_only(monkeypatch):
    # A recipe's `api_key_env` reaches load_generator (pipeline.py passes each opponent's); the key is
    # looked up there and nowhere else: never the default variable in its place.
    monkeypatch.setenv("OPENAI_API_KEY", "sk-the-default-variable")
    monkeypatch.setenv("BIG_KEY", KEY)
    with ScriptedServer(replies(chat_reply("ok"))) as server:
        load_generator(f"openai:{server.url}#m", api_key_env="BIG_KEY").generate(chat_requests(1))
        fast_generator(server.url, api_key_env="UNSET_VARIABLE").generate(chat_requests(1))
    [(_, named), (_, unset)] = server.arrivals
    assert named["Authorization"] == f"Bearer {KEY}"
    assert "Authorization" not in unset  # an unset variable sends no key, not the default one


@pytest.mark.parametrize("url", ["http://example.com/v1", "http://10.0.0.5:8000/v1", "http://[2001:db8::1]:80/v1",
                                 "http://127.0.0.1.example.com/v1", "http://localhost.example.com/v1"])
def test_a_key_is_never_sent_over_plain_http_to_another_host(url, monkeypatch):
    monkeypatch.setenv("ARENA_TEST_KEY", KEY)
    with pytest.raises(InsecureTransportError) as caught:
        fast_generator(url)
    message = str(caught.value)
    assert url in message and ALLOW_INSECURE_HTTP_ENV in message and "https://" in message


def test_a_key_set_after_construction_is_refused_before_anything_is_sent(monkeypatch):
    generator = fast_generator("http://10.0.0.5:8000/v1")  # no key yet: nothing to protect
    monkeypatch.setenv("ARENA_TEST_KEY", KEY)
    with pytest.raises(InsecureTransportError):  # not a ConnectError: it never tried to connect
        generator.generate(chat_requests(1))


@pytest.mark.parametrize("url", ["https://api.example.com/v1", "http://127.0.0.1:8000/v1", "http://127.9.8.7/v1",
                                 "http://localhost:8000/v1", "http://LOCALHOST/v1", "http://[::1]:8000/v1"])
def test_https_anywhere_and_http_to_loopback_may_carry_a_key(url, monkeypatch):
    monkeypatch.setenv("ARENA_TEST_KEY", KEY)
    assert fast_generator(url)._api_key() == KEY


def test_plain_http_elsewhere_is_fine_without_a_key_or_with_the_opt_in(monkeypatch):
    url = "http://10.0.0.5:8000/v1"
    assert fast_generator(url)._api_key() is None
    monkeypatch.setenv("ARENA_TEST_KEY", KEY)
    assert fast_generator(url, allow_insecure_http=True)._api_key() == KEY
    monkeypatch.setenv(ALLOW_INSECURE_HTTP_ENV, "0")
    with pytest.raises(InsecureTransportError):
        fast_generator(url)
    monkeypatch.setenv(ALLOW_INSECURE_HTTP_ENV, "1")
    assert fast_generator(url)._api_key() == KEY


def test_a_loopback_endpoint_never_goes_through_an_environment_proxy(monkeypatch):
    monkeypatch.setenv("ARENA_TEST_KEY", KEY)
    for name in ("no_proxy", "NO_PROXY"):
        monkeypatch.delenv(name, raising=False)
    with ScriptedServer(replies(chat_reply("direct"))) as target, \
            ScriptedServer(replies(chat_reply("via the proxy"))) as proxy:
        for name in ("http_proxy", "HTTP_PROXY", "all_proxy", "ALL_PROXY"):
            monkeypatch.setenv(name, proxy.url.removesuffix("/v1"))
        [answer] = fast_generator(target.url).generate(chat_requests(1))
    assert answer.text == "direct" and proxy.arrivals == [] and len(target.arrivals) == 1


def echo_headers(status: int):
    """A server that echoes the request's headers (Authorization included) in its answer body."""
    return lambda payload, headers: Reply(status, json.dumps({"you sent": headers.get("Authorization"),
                                                              "headers": dict(headers)}).encode())


def test_the_key_never_appears_in_an_error_or_a_log(monkeypatch, caplog):
    monkeypatch.setenv("ARENA_TEST_KEY", KEY)
    caplog.set_level(logging.DEBUG)
    texts = []

    def failure_text(make_generator) -> str:
        with pytest.raises(HTTPGenerationError) as caught:
            make_generator().generate(chat_requests(2))
        text = "".join(traceback.format_exception(caught.value))  # chained causes included
        texts.append(text + repr(caught.value))
        return text

    echoed = {"refused (400)": echo_headers(400), "retries spent (503)": echo_headers(503),
              "malformed 200": echo_headers(200)}
    for path, respond in echoed.items():
        with ScriptedServer(respond) as server:
            assert REDACTED in failure_text(lambda: fast_generator(server.url)), path  # it was echoed
    for fault in (HANG, DROP_BEFORE_ANSWER, DROP_MID_BODY):
        with ScriptedServer(replies(Reply(body=json.dumps({"k": KEY}).encode(), fault=fault))) as server:
            failure_text(lambda: fast_generator(server.url, timeout_s=0.2))
    failure_text(lambda: fast_generator(f"http://127.0.0.1:{free_port()}/v1"))  # nothing listens there
    failure_text(lambda: fast_generator("http://10.0.0.5/v1"))  # refused: not loopback
    assert len(texts) == 8
    assert not [t for t in texts if KEY in t]
    assert not [r for r in caplog.records if KEY in r.getMessage()]
    assert KEY not in repr(vars(fast_generator("http://127.0.0.1:1/v1")))  # read when needed, never kept
