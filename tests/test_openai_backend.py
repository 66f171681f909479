"""The OpenAI-compatible backend against a real server: `transformers serve` on 127.0.0.1 serving a pico
model, behind a small real HTTP proxy that can inject failures (429/503) to exercise the retries."""

from __future__ import annotations

import pytest
from conftest import LocalHTTPServer, forward, free_port

from offline_arena.models import GenerationRequest, SamplingParams, load_generator
from offline_arena.models.openai_http import HTTPGenerationError, OpenAIChatGenerator


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
