"""Keys come from the environment and go only to their endpoint: a planted key reaches the (local)
opponent server, and no file the run wrote — store, manifest, recipe, stage files, report, MLflow's
database, the lock — nor anything it printed holds it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import yaml
from test_openai_backend import ScriptedServer, chat_reply

PLANTED = "sk-planted-8f2c1e0b9d7a"
PLANTED_HF = "hf_planted_3b9e77c1d2"


def test_a_planted_key_reaches_its_endpoint_and_no_file_of_the_run(tmp_path: Path, pico_model_dir):
    seen_keys = []

    def opponent(payload, headers):
        seen_keys.append(headers.get("Authorization"))
        return chat_reply("A short answer without commas.")

    with ScriptedServer(opponent) as server:
        recipe = tmp_path / "recipe.yaml"
        recipe.write_text(yaml.safe_dump({
            "name": "secrets", "target": str(pico_model_dir),
            "opponents": [{"name": "api", "model": f"openai:{server.url}#scripted", "api_key_env": "PLANTED_ARENA_KEY"}],
            "judge": "verifier", "prompts": {"per_stage": 4, "heldout": 4},
            "generation": {"max_new_tokens": 8, "batch_size": 8},
            "stages": [{"kind": "sft", "min_rows": 1, "data": {"require_stopped": False},
                        "train": {"max_steps": 1, "batch_size": 2, "max_length": 96, "runaway_tolerance": 1.0}}],
            "evaluation": {"bootstrap_rounds": 10}, "tracking": {"mlflow": True}}))
        run_dir = tmp_path / "run"
        env = {**os.environ, "PLANTED_ARENA_KEY": PLANTED, "HF_TOKEN": PLANTED_HF}
        done = subprocess.run([sys.executable, "-m", "offline_arena.cli", "run", str(recipe), "--run-dir", str(run_dir)],
                              capture_output=True, text=True, timeout=600, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    assert seen_keys and set(seen_keys) == {f"Bearer {PLANTED}"}  # the key was used, and only there

    written = [p for p in run_dir.rglob("*") if p.is_file()]
    names = {p.name for p in written}
    assert {"store.sqlite", "manifest.json", "recipe.json", "report.html", "mlflow.db", "run.lock"} <= names
    for secret in (PLANTED, PLANTED_HF):
        holders = [str(p.relative_to(run_dir)) for p in written if secret.encode() in p.read_bytes()]
        assert holders == [], f"{secret} written to {holders}"
        assert secret not in done.stdout and secret not in done.stderr
