"""`privacy.deidentify` in a real run: an opponent endpoint on another host (here: this machine reached by
its host name, which the policy cannot know is local) records every request. With the default
(`external`) none of the planted identifiers reaches it; with `off` they do — the control that shows the
test can fail."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import yaml

IDENTIFIERS = {"Maria Gonzalez": "Patient: Maria Gonzalez", "48213377": "MRN: 48213377",
               "04/12/1958": "DOB: 04/12/1958", "(617) 555-0142": "Phone: (617) 555-0142",
               "123-45-6789": "SSN: 123-45-6789", "maria.g@example.com": "email maria.g@example.com"}


class RecordingEndpoint:
    """An OpenAI-compatible endpoint on every interface that answers every chat request the same way and
    keeps each request body."""

    def __init__(self):
        self.bodies: list[str] = []
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"])).decode()
                endpoint.bodies.append(body)
                reply = json.dumps({"choices": [{"message": {"role": "assistant", "content": "a short summary"},
                                                 "finish_reason": "stop"}], "usage": {"completion_tokens": 3}})
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply.encode())

        self.httpd = ThreadingHTTPServer(("0.0.0.0", 0), Handler)
        self.url = f"http://{socket.gethostname()}:{self.httpd.server_address[1]}/v1"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def notes_file(path: Path) -> Path:
    lines = []
    for i in range(12):
        note = (f"Summarise this discharge note in one sentence. {' '.join(IDENTIFIERS.values())}. "
                f"Admitted for pneumonia, day {i + 2} of antibiotics, afebrile since yesterday.")
        lines.append(json.dumps({"id": f"note{i}", "prompt": note,
                                 "constraints": [{"id": "punctuation:no_comma", "params": {}}]}))
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.mark.parametrize("mode", ["external", "off"])
def test_an_external_endpoint_never_sees_the_planted_identifiers(tmp_path, pico_model_dir, mode):
    endpoint = RecordingEndpoint()
    try:
        recipe = tmp_path / "recipe.yaml"
        recipe.write_text(yaml.safe_dump({
            "name": "privacy", "target": str(pico_model_dir), "judge": "verifier",
            "opponents": [{"name": "remote", "model": f"openai:{endpoint.url}#scribe", "api_key_env": ""}],
            # The notes are one template (the same planted identifiers in each), near copies of each other on
            # purpose: the held-out split overlapping training is allowed here, privacy is the point.
            "prompts": {"source": str(notes_file(tmp_path / "notes.jsonl")), "per_stage": 4, "heldout": 4,
                        "heldout_overlap": "allow"},
            "generation": {"max_new_tokens": 8, "batch_size": 8},
            "stages": [{"kind": "sft", "min_rows": 100}],  # battles and judging only: training is not the point
            "evaluation": {"bootstrap_rounds": 10}, "privacy": {"deidentify": mode}}))
        run_dir = tmp_path / "run"
        done = subprocess.run([sys.executable, "-m", "offline_arena.cli", "run", str(recipe), "--run-dir",
                               str(run_dir)], capture_output=True, text=True, timeout=600)
    finally:
        endpoint.close()
    assert done.returncode == 0, done.stderr[-3000:]
    sent = "\n".join(endpoint.bodies)
    assert len(endpoint.bodies) >= 8  # held-out and stage prompts reached the endpoint
    arrived = [identifier for identifier in IDENTIFIERS if identifier in sent]
    manifest = json.loads((run_dir / "manifest.json").read_text())["privacy"]
    if mode == "external":
        assert arrived == [] and "[NAME]" in sent and "[MRN]" in sent
        assert manifest == {"deidentify": "external", "target_trains_on": "the prompts as given",
                            "redacted_endpoints": ["remote"]}
    else:
        assert arrived == list(IDENTIFIERS) and manifest["redacted_endpoints"] == []
