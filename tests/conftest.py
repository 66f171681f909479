"""Shared fixtures: pico random models that use the real SmolLM2 tokenizer, so tests exercise the real
chat template, special tokens and padding, yet run in seconds on 2 cores."""

from __future__ import annotations

import logging
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

# Nothing in the test suite may reach the network.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_UPDATE_CHECK", "1")  # `transformers serve` would ask PyPI for a newer version

BUILTIN = "smollm2-135m-instruct"


def nltk_has(resource: str) -> bool:
    import nltk

    try:
        nltk.data.find(resource)
        return True
    except LookupError:
        return False


@pytest.fixture(autouse=True)
def _our_logging_put_back():
    """`arena`'s logging setup (logs.setup_logging, which an in-process `main()` runs) does not outlive the test:
    it stops the `offline_arena` logger propagating to the root logger, where pytest's caplog listens."""
    ours = logging.getLogger("offline_arena")
    handlers, level, propagate = ours.handlers[:], ours.level, ours.propagate
    yield
    for handler in ours.handlers[:]:
        if handler not in handlers:
            ours.removeHandler(handler)
    ours.setLevel(level)
    ours.propagate = propagate


@pytest.fixture
def no_network(monkeypatch):
    """Any connection attempt fails the test (and is recorded, in case something swallows the error)."""
    attempts = []

    def refuse(*args, **kwargs):
        attempts.append(args)
        raise AssertionError(f"network access attempted: {args}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    return attempts


@pytest.fixture(scope="session")
def smol_tokenizer_dir() -> Path:
    from offline_arena.models.builtin import materialise

    return materialise(BUILTIN, tokenizer_only=True)


def build_pico_model(tokenizer_dir: Path, out_dir: Path, seed: int = 0) -> Path:
    """A 2-layer, hidden-64 Llama with the SmolLM2 vocabulary and random weights, saved with the real
    tokenizer and chat template."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    torch.manual_seed(seed)
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=1024,
                         tie_word_embeddings=True, bos_token_id=tokenizer.bos_token_id,
                         eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)
    model = LlamaForCausalLM(config)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    return out_dir


def build_pico_reward_model(tokenizer_dir: Path, out_dir: Path, seed: int = 1) -> Path:
    """A pico sequence-classification model with one output (a random reward model)."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForSequenceClassification

    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    torch.manual_seed(seed)
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, num_labels=1,
                         pad_token_id=tokenizer.pad_token_id)
    LlamaForSequenceClassification(config).save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    return out_dir


@pytest.fixture(scope="session")
def pico_reward_dir(smol_tokenizer_dir, tmp_path_factory) -> Path:
    return build_pico_reward_model(smol_tokenizer_dir, tmp_path_factory.mktemp("pico_rm"))


@pytest.fixture(scope="session")
def pico_model_dir(smol_tokenizer_dir, tmp_path_factory) -> Path:
    return build_pico_model(smol_tokenizer_dir, tmp_path_factory.mktemp("pico"))


@pytest.fixture(scope="module")
def lively_generator(smol_tokenizer_dir):
    """A pico Llama with a wide initialisation: unlike the default pico (which repeats one token whatever
    the prompt), each row says something different, so rows can stop at different steps."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    from offline_arena.models.hf import TransformersGenerator

    tokenizer = AutoTokenizer.from_pretrained(smol_tokenizer_dir)
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, initializer_range=1.0,
                         tie_word_embeddings=True, pad_token_id=tokenizer.pad_token_id)
    return TransformersGenerator.from_model(LlamaForCausalLM(config).eval(), tokenizer, fingerprint="lively")


@pytest.fixture(scope="session")
def pico_generator(pico_model_dir):
    from offline_arena.models.hf import TransformersGenerator

    return TransformersGenerator(pico_model_dir, batch_size=4, progress=False)


class LocalHTTPServer:
    """A real HTTP server on 127.0.0.1 for tests. Every POST goes to `respond(path, body, headers)`, which
    returns (status, payload bytes, extra headers); `url` ends in /v1 like an OpenAI-compatible base URL."""

    def __init__(self, respond):
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                status, payload, headers = respond(self.path, body, self.headers)
                self.send_response(status)
                for name, value in {"Content-Type": "application/json", **headers}.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def forward(upstream: str, path: str, body: bytes, timeout: float = 120) -> bytes:
    """POST `body` to the same /v1 path of `upstream` (a base URL ending in /v1); the response body."""
    request = urllib.request.Request(upstream + path.removeprefix("/v1"), data=body,
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return response.read()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def pico_server(pico_model_dir):
    """A real OpenAI-compatible server (`transformers serve`) on 127.0.0.1 serving the pico model;
    yields (base_url, served model name). Session-wide: starting it costs seconds of the 2 cores."""
    port = free_port()
    serve = shutil.which("transformers", path=str(Path(sys.executable).parent)) or "transformers"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HUB_DISABLE_UPDATE_CHECK": "1"}  # no PyPI version check
    process = subprocess.Popen([serve, "serve", str(pico_model_dir), "--host", "127.0.0.1", "--port", str(port),
                                "--device", "cpu"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    try:
        deadline = time.time() + 120
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1)
                break
            except OSError:
                if process.poll() is not None or time.time() > deadline:
                    raise RuntimeError(f"transformers serve did not start: {process.stderr.read().decode()[-2000:]}")
                time.sleep(0.3)
        yield f"http://127.0.0.1:{port}/v1", str(pico_model_dir)
    finally:
        process.terminate()
        process.wait(timeout=30)
