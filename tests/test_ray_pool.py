"""The target's generation on a pool of Ray actors (models/ray_pool.py) against the in-process path, on a
local Ray cluster of two CPU actors holding the pico model: the same answers and store keys, an actor killed
mid-chunk costs nothing but the chunk's retry, and a rerun after a crash generates only what is missing.

The tests marked `ray` need the ray extra and are deselected by default (pyproject's addopts), as `vllm`'s
are: run them with `pytest -m ray tests/test_ray_pool.py`."""

from __future__ import annotations

import sqlite3
import sys
import threading
import time

import pytest

from offline_arena.models import GenerationRequest, SamplingParams
from offline_arena.loading import load_generator
from offline_arena.store import Store

BATCH = 4  # rows a batch; the cache commits chunks of 2 batches (8 requests), so 24 requests are 3 chunks


def requests_for_test() -> list[GenerationRequest]:
    """Three chunks: greedy, then sampled answers long enough that an actor can be killed in the middle
    (the random pico model rarely stops by itself), then sampled with another seed. One duplicate."""
    greedy = SamplingParams(max_new_tokens=12, temperature=0.0)
    long_sampled = SamplingParams(max_new_tokens=256, temperature=0.9)
    sampled = SamplingParams(max_new_tokens=12, temperature=0.9, top_p=0.9)
    ask = lambda i: ({"role": "user", "content": f"Question {i}: name a colour" + "!" * (i % 5)},)  # noqa: E731
    requests = [GenerationRequest.of(ask(i), params=greedy) for i in range(8)]
    requests += [GenerationRequest.of(ask(i), params=long_sampled, seed=7) for i in range(8, 16)]
    requests += [GenerationRequest.of(ask(i), params=sampled, seed=3, sample_index=i % 2) for i in range(16, 24)]
    return requests + [requests[0]]


def stored_rows(path) -> list[tuple]:
    """Every completion row but its creation time, in key order."""
    with sqlite3.connect(path) as conn:
        columns = [row[1] for row in conn.execute("PRAGMA table_info(completions)")]
        kept = ", ".join(c for c in columns if c != "created_at")
        return list(conn.execute(f"SELECT {kept} FROM completions ORDER BY key"))


@pytest.fixture(scope="module")
def ray_cluster():
    ray = pytest.importorskip("ray", reason="the ray tests need the ray extra: pip install 'offline-arena[ray]'")
    started = time.perf_counter()
    # Two logical GPUs (none is real): Ray hands them to actors that ask, as it would real ones.
    ray.init(address="local", num_cpus=2, num_gpus=2, include_dashboard=False)
    print(f"local Ray cluster up in {time.perf_counter() - started:.1f}s")
    yield ray
    ray.shutdown()


@pytest.fixture(scope="module")
def in_process(pico_model_dir, tmp_path_factory):
    """The reference: the same requests through the in-process path, and the store it fills."""
    import torch

    path = tmp_path_factory.mktemp("in_process") / "store.sqlite"
    # One thread, as each actor has (Ray sets OMP_NUM_THREADS to its num_cpus): beside another busy process
    # two torch threads on 2 cores took 44 s for the long chunk, one thread 3.5 s. The answers are the same.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with Store(path) as store:
            generator = load_generator(str(pico_model_dir), store=store, batch_size=BATCH)
            answers = generator.generate(requests_for_test())
            keys = generator.keys(requests_for_test())
    finally:
        torch.set_num_threads(threads)
    return answers, keys, path


@pytest.fixture(scope="module")
def pool(ray_cluster, pico_model_dir):
    from offline_arena.config import RayGeneration
    from offline_arena.loading import _ray_pool

    started = time.perf_counter()
    pool = _ray_pool(str(pico_model_dir), None, BATCH, 2 * BATCH, RayGeneration(actors=2))
    print(f"2 actors with the pico model loaded in {time.perf_counter() - started:.1f}s")
    return pool


@pytest.mark.ray
def test_same_answers_and_store_keys_as_in_process(pool, in_process, pico_model_dir, tmp_path):
    from offline_arena.config import RayGeneration
    from offline_arena.models.cached import CachedGenerator

    answers, keys, reference_store = in_process
    with Store(tmp_path / "store.sqlite") as store:
        generator = load_generator(str(pico_model_dir), store=store, batch_size=BATCH, ray=RayGeneration(actors=2))
        assert isinstance(generator, CachedGenerator) and generator.inner is pool  # one pool per process
        before = pool.num_generated
        got = generator.generate(requests_for_test())
        assert pool.num_generated - before == 24  # the duplicate request is generated once
        assert generator.keys(requests_for_test()) == keys
    assert [(a.text, a.stopped, a.num_tokens) for a in got] == [(a.text, a.stopped, a.num_tokens) for a in answers]
    assert stored_rows(tmp_path / "store.sqlite") == stored_rows(reference_store)


@pytest.mark.ray
def test_actor_killed_mid_chunk_the_chunk_goes_to_another(pool, ray_cluster, in_process, tmp_path):
    from offline_arena.models.cached import CachedGenerator

    answers, _, reference_store = in_process
    failures, before = pool.chunk_failures, pool.num_generated
    killed = []

    def kill_the_long_chunk():  # the actor on chunk 1 (256-token answers), once it is well into it
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not killed:
            for index, actor in list(pool.in_flight.values()):
                if index == 1:
                    time.sleep(0.3)
                    ray_cluster.kill(actor, no_restart=False)  # as if its process died: Ray restarts it
                    killed.append(actor)
                    break
            time.sleep(0.01)

    killer = threading.Thread(target=kill_the_long_chunk)
    killer.start()
    with Store(tmp_path / "store.sqlite") as store:
        got = CachedGenerator(pool, store, chunk_size=2 * BATCH).generate(requests_for_test())
    killer.join()
    assert killed and pool.chunk_failures == failures + 1  # the kill landed while chunk 1 was generated
    assert pool.num_generated - before == 24  # every request answered once; the lost chunk counted once
    assert [a.text for a in got] == [a.text for a in answers]
    assert stored_rows(tmp_path / "store.sqlite") == stored_rows(reference_store)
    assert len(pool.actors) == 2  # the killed actor was restarted and is still in the pool


class CrashingStore:
    """A store whose driver dies right after its `commits`-th commit."""

    def __init__(self, store: Store, commits: int):
        self.store, self.commits = store, commits

    def get_completions(self, keys):
        return self.store.get_completions(keys)

    def put_completions(self, rows):
        self.store.put_completions(rows)
        self.commits -= 1
        if self.commits == 0:
            raise KeyboardInterrupt("driver killed")


@pytest.mark.ray
def test_rerun_after_a_crash_generates_only_what_is_missing(pool, in_process, tmp_path):
    from offline_arena.models.cached import CachedGenerator

    answers, _, reference_store = in_process
    with Store(tmp_path / "store.sqlite") as store:
        with pytest.raises(KeyboardInterrupt):
            CachedGenerator(pool, CrashingStore(store, commits=2), chunk_size=2 * BATCH).generate(requests_for_test())
        assert store.count() == 16  # two chunks committed before the crash
        before = pool.num_generated
        got = CachedGenerator(pool, store, chunk_size=2 * BATCH).generate(requests_for_test())
        assert pool.num_generated - before == 8  # only the chunk that was lost
    assert [a.text for a in got] == [a.text for a in answers]
    assert stored_rows(tmp_path / "store.sqlite") == stored_rows(reference_store)


@pytest.mark.ray
def test_the_next_checkpoint_replaces_the_pool(pool, pico_model_dir, smol_tokenizer_dir, tmp_path):
    """The cluster holds two actors; the next checkpoint's pool gets them only if the last one lets go.
    (It ends the module's pool: this test runs after the ones that use it.)"""
    from conftest import build_pico_model

    from offline_arena.loading import _ray_pool
    from offline_arena.config import RayGeneration

    checkpoint = build_pico_model(smol_tokenizer_dir, tmp_path / "checkpoint", seed=1)
    nxt = _ray_pool(str(checkpoint), None, BATCH, 2 * BATCH, RayGeneration(actors=2))
    assert pool.actors == [] and len(nxt.actors) == 2
    assert nxt.fingerprint != pool.fingerprint
    assert len(nxt.generate(requests_for_test()[:3])) == 3


@pytest.mark.ray
def test_actors_with_gpus_get_gpus_of_their_own(pool, pico_model_dir, in_process):
    """One engine per tensor-parallel group: each actor is given `gpus_per_actor` GPUs that no other actor
    holds (Ray's accounting, here of the fixture's two logical GPUs; the pico model still computes on the
    CPU). The answers are those of the in-process path. (It ends the module's pool.)"""
    from offline_arena.config import RayGeneration
    from offline_arena.loading import _ray_pool

    answers, _, _ = in_process
    on_gpus = _ray_pool(str(pico_model_dir), None, BATCH, 2 * BATCH, RayGeneration(actors=2, gpus_per_actor=1))
    assert sorted(on_gpus.placement) == [["0"], ["1"]]
    assert [a.text for a in on_gpus.generate(requests_for_test())] == [a.text for a in answers]


def test_without_ray_the_error_says_what_to_install(monkeypatch):
    from offline_arena.config import Generation
    from offline_arena.models.ray_pool import import_ray

    monkeypatch.setitem(sys.modules, "ray", None)  # import ray now fails, as where it is not installed
    with pytest.raises(ImportError, match=r"pip install 'offline-arena\[ray\]'"):
        import_ray()
    monkeypatch.setattr("importlib.util.find_spec", lambda name, *a: None)
    with pytest.raises(ValueError, match=r"offline-arena\[ray\]"):
        Generation(ray={"actors": 2})


def test_a_vllm_target_on_ray_needs_gpus_for_its_engines():
    from offline_arena.config import RayGeneration

    with pytest.raises(ValueError, match="gpus_per_actor >= 1"):
        load_generator("vllm:some/model", ray=RayGeneration())


def test_a_vllm_actor_runs_one_engine_over_its_gpus(monkeypatch, tmp_path):
    """What a `vllm:` actor asks of vLLM (a stand-in `vllm` module records it; vLLM itself needs a GPU):
    one engine, tensor-parallel over the actor's GPUs with vLLM's own worker processes, keyed apart from a
    one-GPU engine; one GPU, vLLM's defaults."""
    import types

    from offline_arena.models.ray_pool import GenerationActor

    engines = []

    class LLM:
        def __init__(self, model, **kwargs):
            engines.append((model, kwargs))

        def get_tokenizer(self):
            return None

    monkeypatch.setitem(sys.modules, "vllm", types.SimpleNamespace(LLM=LLM))
    (tmp_path / "config.json").write_text("{}")
    (tmp_path / "model.safetensors").write_bytes(b"weights")  # what the fingerprint hashes
    two, one = GenerationActor("vllm", str(tmp_path), None, None, gpus=2), GenerationActor("vllm", str(tmp_path), None, None, gpus=1)
    assert engines == [(str(tmp_path), {"tensor_parallel_size": 2, "distributed_executor_backend": "mp"}),
                       (str(tmp_path), {})]
    assert one.fingerprint().startswith("vllm:") and two.fingerprint() == one.fingerprint() + ":tp2"


def test_a_run_resumes_on_ray_after_beginning_in_process(tmp_path, monkeypatch):
    """generation.ray changes where answers are generated, not what they are: no recipe difference."""
    from offline_arena.config import Generation, Recipe
    from offline_arena.pipeline.loop import save_recipe
    from offline_arena.run_folder import RunFolder

    monkeypatch.setattr("importlib.util.find_spec", lambda name, *a: object())  # as if ray were installed
    recipe = Recipe.model_validate({"opponents": [{"name": "o", "model": "builtin:smollm2-135m-instruct"}],
                                    "stages": [{"kind": "sft"}]})
    save_recipe(recipe, RunFolder(tmp_path))
    on_ray = recipe.model_copy(update={"generation": Generation(ray={"actors": 4})})
    save_recipe(on_ray, RunFolder(tmp_path))  # not refused
    with pytest.raises(ValueError, match="different recipe"):  # what it computes still counts
        save_recipe(on_ray.model_copy(update={"seed": 1}), RunFolder(tmp_path))
