"""Fault injection against the OpenAI-compatible backend, through the real judging path.

A local server plays an LLM judge (it prefers the answer holding "GOOD"), but on each attempt, at set
rates, injects a fault instead: a hang past the backend's timeout, 429 with Retry-After: 30, a 5xx, a
malformed 200 body, a connection dropped before or in the middle of the answer. The draw depends only on
(seed, request, attempt), so the figures repeat run after run. Battles are judged one at a time by the
pairwise judge (both orders: two requests a battle) through a store, as a run does. Printed: per fault
kind, how often it was injected and retried and how the requests it hit ended (answered, error, or
abandoned: cancelled because the other order of the same battle failed); then the battles, and the checks
that no fault was recorded as a win or a tie and that each stored verdict is the server's.

    .venv/bin/python bench/http_faults.py [--battles 100] [--max-retries 2] [--seed 0]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import tempfile
import threading
import time
from collections import Counter, defaultdict
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from offline_arena.judges import judge_battles
from offline_arena.judges.base import judgment_key
from offline_arena.judges.llm_pairwise import PairwiseJudge
from offline_arena.models import Completion
from offline_arena.models.openai import HTTPGenerationError, OpenAIChatGenerator
from offline_arena.store import Store

TIMEOUT_S = 0.25
RATES = {"timeout": 0.04, "429 + Retry-After": 0.08, "5xx": 0.08, "malformed 200": 0.06, "dropped": 0.06}
MALFORMED = [b"<html><body>502 Bad Gateway</body></html>", b'{"error": {"message": "upstream overloaded"}}',
             b'{"choices": []}', b'{"choices": [{"message": {"content": null}, "finish_reason": "stop"}]}']


class FaultyJudgeServer:
    """A real HTTP server on 127.0.0.1 answering chat requests as a judge would, with injected faults.
    `attempts[request]` lists what each attempt of a request got ("ok" or a fault kind)."""

    def __init__(self, seed: int):
        self.seed, self.attempts, self.seeds = seed, defaultdict(list), Counter()
        self.lock, self.closing = threading.Lock(), threading.Event()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                payload = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                request = json.dumps(payload["messages"], sort_keys=True) + f"|{payload['seed']}"
                with server.lock:
                    attempt = len(server.attempts[request])
                    fault = server.draw(request, attempt)
                    server.attempts[request].append(fault)
                    server.seeds[payload["seed"]] += 1
                try:
                    server.answer(self, fault, attempt, payload)
                except OSError:
                    pass  # the client gave up first (its timeout)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def draw(self, request: str, attempt: int) -> str:
        point = random.Random(f"{self.seed}|{request}|{attempt}").random()
        for kind, rate in RATES.items():
            if point < rate:
                return kind
            point -= rate
        return "ok"

    def answer(self, handler, fault: str, attempt: int, payload: dict) -> None:
        variant = random.Random(f"{self.seed}|variant|{attempt}|{payload['seed']}")
        if fault == "timeout":
            self.closing.wait(TIMEOUT_S * 8)  # far past the backend's timeout
            return
        if fault == "dropped" and variant.random() < 0.5:
            return  # closed before a byte of answer
        status, headers, body = 200, {}, judge_answer(payload)
        if fault == "429 + Retry-After":
            status, headers, body = 429, {"Retry-After": "30"}, b'{"error": "rate limited"}'
        elif fault == "5xx":
            status, body = variant.choice([500, 502, 503, 504]), b'{"error": "server error"}'
        elif fault == "malformed 200":
            body = variant.choice(MALFORMED)
        handler.send_response(status)
        for name, value in {"Content-Type": "application/json", **headers}.items():
            handler.send_header(name, value)
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body[:len(body) // 2] if fault == "dropped" else body)  # dropped mid-answer

    def close(self) -> None:
        self.closing.set()
        self.httpd.shutdown()
        self.httpd.server_close()


def judge_answer(payload: dict) -> bytes:
    """The judge's verdict: the slot (A = shown first) that holds the GOOD answer."""
    prompt = payload["messages"][-1]["content"]
    verdict = "[[A]]" if prompt.index("GOOD") < prompt.index("BAD") else "[[B]]"
    text = f"One answer is plainly better.\n{verdict}"
    return json.dumps({"choices": [{"message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
                       "usage": {"completion_tokens": 8}}).encode()


def make_battles(n: int) -> list[dict]:
    """Battles whose good answer alternates sides, so both winners occur; `good` is the right verdict."""
    battles = []
    for i in range(n):
        good, bad = Completion(f"GOOD answer {i}", True, 3), Completion(f"BAD answer {i}", True, 3)
        a, b = (good, bad) if i % 2 == 0 else (bad, good)
        battles.append({"id": f"b{i}", "messages": [{"role": "user", "content": f"Question {i}?"}], "context": {},
                        "answer_a": f"a{i}", "answer_b": f"b{i}", "completion_a": a, "completion_b": b,
                        "good": "model_a" if i % 2 == 0 else "model_b"})
    return battles


class RecordedSleep:
    """The backend's sleep: waits for real, and keeps each wait for the report."""

    def __init__(self):
        self.waits: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)
        await asyncio.sleep(seconds)


def request_outcome(attempts: list[str], max_attempts: int) -> str:
    if attempts[-1] == "ok":
        return "answered"
    return "error" if len(attempts) == max_attempts else "abandoned"


def fault_table(attempts: dict[str, list[str]], max_attempts: int) -> list[tuple]:
    rows = []
    for kind, rate in RATES.items():
        injected = sum(a.count(kind) for a in attempts.values())
        retried = sum(a[:-1].count(kind) for a in attempts.values())  # a later attempt followed
        hit = [request_outcome(a, max_attempts) for a in attempts.values() if kind in a]
        outcomes = Counter(hit)
        rows.append((kind, rate, injected, retried, len(hit), outcomes["answered"], outcomes["error"],
                     outcomes["abandoned"]))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--battles", type=int, default=100, help="battles to judge (two requests each)")
    parser.add_argument("--max-retries", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    started = time.perf_counter()
    server, sleep = FaultyJudgeServer(args.seed), RecordedSleep()
    generator = OpenAIChatGenerator(server.url, "faulty-judge", api_key_env="", concurrency=2, timeout_s=TIMEOUT_S,
                                    max_retries=args.max_retries, backoff_s=0.005, max_backoff_s=0.05,
                                    max_retry_after_s=0.02, progress=False, sleep=sleep,
                                    rng=random.Random(args.seed))
    judge = PairwiseJudge(generator)
    battles, failed, verdicts = make_battles(args.battles), set(), {}
    with tempfile.TemporaryDirectory() as folder, Store(Path(folder) / "store.sqlite") as store:
        for battle in battles:
            try:
                [judged] = judge_battles(judge, [battle], store, chunk_size=1, progress=False)
                verdicts[battle["id"]] = judged["winner"]
            except HTTPGenerationError:
                failed.add(battle["id"])
        stored = store.get_judgments([judgment_key(judge.fingerprint, b["messages"], b["answer_a"], b["answer_b"])
                                      for b in battles])
        stored_winners = Counter(j["winner"] for j in stored.values())
        n_stored = store.count("judgments")
    server.close()
    elapsed = time.perf_counter() - started

    max_attempts = args.max_retries + 1
    attempts = dict(server.attempts)
    outcomes = Counter(request_outcome(a, max_attempts) for a in attempts.values())
    n_attempts = sum(len(a) for a in attempts.values())
    print(f"{len(attempts)} judge requests ({args.battles} battles x 2 orders), one fault draw per attempt, "
          f"max_retries={args.max_retries}, timeout_s={TIMEOUT_S}")
    print(f"{'fault kind':<18} {'rate':>5} {'injected':>8} {'retried':>8} {'requests hit':>12} {'answered':>8} "
          f"{'error':>6} {'abandoned':>9}")
    for kind, rate, injected, retried, hit, answered, error, abandoned in fault_table(attempts, max_attempts):
        print(f"{kind:<18} {rate:>5.2f} {injected:>8} {retried:>8} {hit:>12} {answered:>8} {error:>6} {abandoned:>9}")
    print(f"all requests: answered {outcomes['answered']}, error {outcomes['error']}, abandoned "
          f"{outcomes['abandoned']}; attempts {n_attempts}; retries seen by the server {n_attempts - len(attempts)}, "
          f"counted by the backend {generator.num_retries} (it also counts a retry cancelled in its wait)")
    print(f"waits: {len(sleep.waits)}, longest {max(sleep.waits, default=0):.3f} s "
          f"(429s asked for 30 s; max_retry_after_s=0.02, max_backoff_s=0.05)")

    judged_right = sum(verdicts[b["id"]] == b["good"] for b in battles if b["id"] in verdicts)
    checks = {
        "no judgment stored for a failed battle": not any(
            judgment_key(judge.fingerprint, b["messages"], b["answer_a"], b["answer_b"]) in stored
            for b in battles if b["id"] in failed),
        "no fault recorded as a win or a tie (every stored verdict is the server's)": judged_right == len(verdicts)
        and n_stored == len(verdicts) and stored_winners["tie"] == stored_winners["error"] == 0,
        "the judge never saw a fault as text (no re-ask for an unparseable verdict)": set(server.seeds) == {0},
    }
    print(f"battles: judged {len(verdicts)} (model_a {stored_winners['model_a']}, model_b {stored_winners['model_b']}, "
          f"tie {stored_winners['tie']}, error {stored_winners['error']}), failed {len(failed)} (HTTPGenerationError, "
          f"nothing stored); {elapsed:.1f} s")
    for name, ok in checks.items():
        print(f"check: {name}: {'yes' if ok else 'NO'}")
    if not all(checks.values()):
        raise SystemExit(1)


if __name__ == "__main__":
    main()
