"""A battle stage against served models, asked one at a time (the previous path) and overlapped (today's).

Three local servers play the target, two opponents, and a fourth the pairwise judge. Each answers after a
latency drawn per request (lognormal, median `--median-s`, so a few requests are slow, as on a loaded
server; the draw depends only on the request, so both paths meet the same latencies). The same schedule
is played twice through a fresh store each time, generation then judging, as `battles.play` does:

- one at a time: each contestant after the other, each chunk of a call after the previous one, and each
  judge chunk after the previous one (what the code did before; here by hiding `remote` and
  `generate_chunks` from the same generators);
- overlapped: contestants at once, a call's chunks together, `REMOTE_CHUNKS_AT_ONCE` judge chunks at once.

Every server holds each client to `--concurrency` requests either way. Printed: wall time of each, the
ratio, the most requests each server held at once, and whether the two stores hold the same answers and
verdicts.

    .venv/bin/python bench/overlap.py [--prompts 64] [--concurrency 8] [--median-s 0.1]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from offline_arena.battles import play, target_vs_opponents
from offline_arena.judges.llm_pairwise import PairwiseJudge
from offline_arena.models import SamplingParams
from offline_arena.models.cached import CachedGenerator
from offline_arena.models.openai import OpenAIChatGenerator
from offline_arena.prompts.sources import load_prompts
from offline_arena.store import Store


class LatencyServer:
    """Answers chat requests after a latency fixed by the request; counts the most held at once."""

    def __init__(self, name: str, median_s: float, judge: bool = False):
        self.in_flight = self.max_in_flight = 0
        self.lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                payload = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with server.lock:
                    server.in_flight += 1
                    server.max_in_flight = max(server.max_in_flight, server.in_flight)
                text = json.dumps(payload["messages"], sort_keys=True)
                digest = hashlib.sha256(f"{name}|{text}".encode()).digest()
                # Box-Muller from the request's hash: lognormal latency, sigma 0.8, at most 20 medians.
                u1, u2 = (int.from_bytes(digest[:4], "little") + 1) / 2**32, int.from_bytes(digest[4:8], "little") / 2**32
                normal = math.sqrt(-2 * math.log(u1)) * math.cos(2 * math.pi * u2)
                time.sleep(min(median_s * math.exp(0.8 * normal), 20 * median_s))
                answer = ("[[A]]" if digest[8] % 2 else "[[B]]") if judge else f"{name} answers {digest[:6].hex()}"
                body = json.dumps({"choices": [{"message": {"role": "assistant", "content": answer},
                                                "finish_reason": "stop"}], "usage": {"completion_tokens": 3}}).encode()
                with server.lock:
                    server.in_flight -= 1
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


class OneAtATime:
    """The same generator without `remote` and `generate_chunks`: chunks, contestants and judge chunks go
    one after another, as before overlapping was built."""

    def __init__(self, inner):
        # not `.inner`: `is_remote` must not see through it
        self.inner_generator, self.fingerprint = inner, inner.fingerprint

    def render(self, messages):
        return self.inner_generator.render(messages)

    def generate(self, requests):
        return self.inner_generator.generate(requests)


def play_stage(servers: dict, prompts, store_path: Path, concurrency: int, overlapped: bool) -> float:
    def generator(name):
        http = OpenAIChatGenerator(servers[name].url, name, concurrency=concurrency, progress=False)
        return CachedGenerator(http if overlapped else OneAtATime(http), store, chunk_size=32)

    with Store(store_path) as store:
        contestants = {name: generator(name) for name in ("target", "opponent-1", "opponent-2")}
        judge = PairwiseJudge(generator("judge"))
        schedule = target_vs_opponents("target", ["opponent-1", "opponent-2"], prompts)
        started = time.perf_counter()
        play(schedule, contestants, judge, store, SamplingParams(max_new_tokens=64, temperature=0.0), progress=False)
        return time.perf_counter() - started


def store_contents(path: Path):
    with Store(path) as store:
        answers = sorted(store.conn.execute("SELECT key, text FROM completions").fetchall())
        verdicts = sorted(store.conn.execute("SELECT key, winner FROM judgments").fetchall())
    return answers, verdicts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--prompts", type=int, default=64)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--median-s", type=float, default=0.1)
    args = parser.parse_args()
    prompts = load_prompts(f"builtin:verifiable:round1/sft:{args.prompts}")
    results = {}
    servers = {name: LatencyServer(name, args.median_s, judge=name == "judge")
               for name in ("target", "opponent-1", "opponent-2", "judge")}
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for overlapped in (False, True):
                for server in servers.values():
                    server.max_in_flight = 0
                seconds = play_stage(servers, prompts, Path(tmp) / f"{overlapped}.sqlite", args.concurrency, overlapped)
                results[overlapped] = seconds, {n: s.max_in_flight for n, s in servers.items()}
            same = store_contents(Path(tmp) / "False.sqlite") == store_contents(Path(tmp) / "True.sqlite")
    finally:
        for server in servers.values():
            server.close()
    requests = 3 * args.prompts + 2 * 2 * args.prompts
    print(f"{args.prompts} prompts x 2 opponents: {requests} requests to 4 servers, median latency "
          f"{args.median_s:g} s (lognormal, sigma 0.8), concurrency {args.concurrency} per server")
    for overlapped, label in ((False, "one at a time"), (True, "overlapped")):
        seconds, most = results[overlapped]
        print(f"  {label:14s} {seconds:6.2f} s   most held at once: "
              + ", ".join(f"{name} {n}" for name, n in most.items()))
    print(f"  speed-up {results[False][0] / results[True][0]:.2f}x; same answers and verdicts in both stores: {same}")


if __name__ == "__main__":
    main()
