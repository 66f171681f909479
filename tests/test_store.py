import signal
import sqlite3
import subprocess
import sys
import time
import json

import pytest

from offline_arena.models import GenerationRequest, SamplingParams
from offline_arena.loading import load_generator
from offline_arena.models.base import Completion
from offline_arena.store import Store, completion_key

PARAMS = SamplingParams(max_new_tokens=8, temperature=0.7)


def test_key_depends_on_everything_that_determines_a_completion():
    base = completion_key("m", "p", PARAMS, 0, 0)
    assert base == completion_key("m", "p", PARAMS, 0, 0)
    variants = [completion_key("m2", "p", PARAMS, 0, 0), completion_key("m", "p2", PARAMS, 0, 0),
                completion_key("m", "p", SamplingParams(max_new_tokens=9, temperature=0.7), 0, 0),
                completion_key("m", "p", PARAMS, 1, 0), completion_key("m", "p", PARAMS, 0, 1)]
    assert len({base, *variants}) == 6


def test_put_twice_keeps_one_row(tmp_path):
    with Store(tmp_path / "s.sqlite") as store:
        row = ("k", "m", "p", PARAMS, 0, 0, Completion("first", True, 3))
        store.put_completions([row])
        store.put_completions([row[:-1] + (Completion("second", False, 8),)])
        assert store.count() == 1
        assert store.get_completions(["k"])["k"].text == "first"
        assert store.conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_cache_hits_skip_generation(pico_model_dir, tmp_path):
    with Store(tmp_path / "s.sqlite") as store:
        generator = load_generator(str(pico_model_dir), store=store, batch_size=4)
        model = generator.inner
        start = model.num_generated  # the loaded model is shared within the process
        reqs = [GenerationRequest.of([{"role": "user", "content": f"Question {i}"}], params=PARAMS) for i in range(6)]
        first = generator.generate(reqs + reqs[:2])  # duplicates inside one call are generated once
        assert model.num_generated - start == 6 and store.count() == 6
        again = generator.generate(reqs)
        assert model.num_generated - start == 6  # nothing new reached the model
        assert [c.text for c in again] == [c.text for c in first[:6]]
        generator.generate(reqs + [GenerationRequest.of(reqs[0].messages, params=PARAMS, sample_index=1)])
        assert model.num_generated - start == 7 and store.count() == 7


def test_best_of_n_keeps_the_top_scored_candidate(pico_model_dir, tmp_path):
    def count_a(request, answers):
        return [a.text.count("a") for a in answers]

    with Store(tmp_path / "s.sqlite") as store:
        generator = load_generator(f"{pico_model_dir}@best-of-3", store=store, scorer=count_a, batch_size=4)
        reqs = [GenerationRequest.of([{"role": "user", "content": f"Tell me about {x}"}],
                                     params=SamplingParams(max_new_tokens=16, temperature=1.0)) for x in "xyz"]
        out = generator.generate(reqs)
        for completion in out:
            scores = completion.meta["scores"]
            assert len(scores) == 3 and completion.text.count("a") == max(scores)
            assert completion.meta["chosen"] == scores.index(max(scores))
        assert store.count() == 3 * 3 + 3  # every candidate and every pick is stored
        assert "@best-of-3[count_a]" in generator.fingerprint


def test_best_of_n_without_scorer_is_an_error(pico_model_dir):
    with pytest.raises(ValueError, match="needs a scorer"):
        load_generator(f"{pico_model_dir}@best-of-3")


def _store_rows(path):
    if not path.exists():
        return (0, 0)
    try:  # read-only: the test must never create or touch the database the child writes
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            return conn.execute("SELECT COUNT(*), COUNT(DISTINCT key) FROM completions").fetchone()
        finally:
            conn.close()
    except sqlite3.OperationalError:  # not created yet
        return (0, 0)


def test_kill_9_during_generation_then_rerun_leaves_one_row_per_key(pico_model_dir, tmp_path):
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text("".join(json.dumps({"id": f"p{i}", "prompt": f"Count to {i}."}) + "\n" for i in range(40)))
    run_dir = tmp_path / "run"
    command = [sys.executable, "-m", "offline_arena.cli", "generate", str(pico_model_dir), "--prompts", str(prompts),
               "--run-dir", str(run_dir), "--batch-size", "2", "--max-new-tokens", "24"]
    store_path = run_dir / "store.sqlite"
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline and _store_rows(store_path)[0] < 8:
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    before, _ = _store_rows(store_path)
    assert 8 <= before < 40, "the kill should land in the middle of generation"

    rerun = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    assert f"({40 - before} generated, {before} from the store)" in rerun.stdout
    rows, distinct = _store_rows(store_path)
    assert rows == distinct == 40
    conn = sqlite3.connect(store_path)
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    conn.close()
