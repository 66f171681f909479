"""The target's generation fanned out over a pool of Ray actors (extra `[ray]`, recipe `generation.ray`).

Why Ray here, and asyncio for endpoints (models/openai/): an endpoint already is a server, so the
driver only has to keep many HTTP requests in flight. A local model is not: someone has to start processes
on other cores or hosts, load the weights once in each and keep them there, notice when one dies and hand
its work to another. That is what Ray actors do, and a cluster usually runs Ray already.

The pool sits *under* the store's cache (models/cached.py): the cache decides what is missing, cuts it into
chunks exactly as it does in-process, hands the chunks here, and commits each chunk when it comes back.
Actors only return completions; the driver alone writes the store. So the store keys, the de-duplication
and resume are those of the in-process path, and so are the answers: each actor runs the same
TransformersGenerator on the same chunk, hence the same batches and the same per-batch seeds.

A `vllm:` target runs one vLLM engine per actor, each actor holding `gpus_per_actor` GPUs, its engine
tensor-parallel over them (vLLM's own multiprocessing workers, inside the GPUs Ray gave the actor): one
engine per tensor-parallel group, as vLLM's offline engine runs in-process, so its answers and store keys
(`vllm:` fingerprints) are those of the in-process `vllm:` path too. Not run yet: no GPU was lent to this
project (bench/gpu_check.py has the check to run on one).

An actor that dies mid-chunk (killed, out of memory, its node lost) loses that chunk only: the chunk goes to
another actor, up to `chunk_retries` times, then the run stops with an error naming the chunk. Ray restarts
a dead actor (reloading its model) up to `max_restarts` times before it leaves the pool. Chunks committed
before are in the store, so a rerun never generates them again.
"""

from __future__ import annotations

import sys
from collections import deque
from typing import Iterator, Sequence

from .base import Completion, GenerationRequest
from .chat import render_prompt

# Actors Ray cannot place (the CPUs are taken) wait for them forever; loading a 7B model takes minutes.
ACTOR_START_TIMEOUT_S = 900
SHUTDOWN_TIMEOUT_S = 60
INSTALL_HINT = "generation.ray needs the ray extra: pip install 'offline-arena[ray]'"


def import_ray():
    try:
        import ray
    except ImportError as error:
        raise ImportError(INSTALL_HINT) from error
    return ray


class RayGenerationError(RuntimeError):
    """A chunk failed on every actor it was tried on, or no actor is left alive."""


BACKENDS = ("transformers", "vllm")


class GenerationActor:
    """What runs inside one Ray actor: the in-process generator, loaded once, fed chunk after chunk."""

    def __init__(self, backend: str, model_path: str, fingerprint: str | None, batch_size: int | None,
                 gpus: int = 0):
        if backend == "vllm":
            from .vllm_backend import VLLMGenerator

            # Ray set CUDA_VISIBLE_DEVICES to this actor's GPUs; "mp" keeps vLLM's tensor-parallel workers
            # on them, instead of asking Ray (which it finds initialised here) for a placement of its own.
            parallel = {"tensor_parallel_size": gpus, "distributed_executor_backend": "mp"} if gpus > 1 else {}
            self.generator = VLLMGenerator(model_path, fingerprint=fingerprint, **parallel)
            if gpus > 1:  # a tensor-parallel engine rounds otherwise than one GPU: its answers are keyed apart
                self.generator.fingerprint += f":tp{gpus}"
        else:
            from .hf import TransformersGenerator

            self.generator = TransformersGenerator(model_path, fingerprint=fingerprint, batch_size=batch_size,
                                                   progress=False)

    def fingerprint(self) -> str:
        return self.generator.fingerprint

    def shutdown(self) -> None:
        """Let go of the model before the actor is killed: a vLLM engine's worker processes hold GPU memory
        the next checkpoint's engine will ask for."""
        import gc

        del self.generator
        gc.collect()
        try:
            import torch

            if torch.cuda.is_available():
                torch.cuda.empty_cache()
        except ImportError:
            pass

    def gpu_ids(self) -> list:
        """The GPUs Ray assigned to this actor (none on CPU actors)."""
        import ray

        return [str(g) for g in ray.get_gpu_ids()]

    def generate(self, requests: list[GenerationRequest]) -> list[Completion]:
        return self.generator.generate(requests)


class RayGenerationPool:
    """Same interface as TransformersGenerator (`fingerprint`, `render`, `generate`), plus `generate_chunks`,
    which the store's cache uses to commit each chunk as soon as any actor finishes it."""

    remote = True  # the actors generate; this process waits (battles.py runs it alongside the opponents)

    def __init__(self, model_path: str, fingerprint: str | None = None, batch_size: int | None = None,
                 actors: int = 2, address: str | None = None, cpus_per_actor: float = 1,
                 max_restarts: int = 1, chunk_retries: int = 2, chunk_size: int | None = None,
                 gpus_per_actor: int = 0, backend: str = "transformers"):
        """`address`: a running cluster's (`ray://...`, `HOST:6379` or `auto`); None starts a local one on
        this machine with `actors * cpus_per_actor` CPUs (and the GPUs Ray finds). Every node must see
        `model_path` (a shared folder or a Hub id) and have offline-arena installed. A Ray already
        initialised in this process is used as is. `backend` "vllm": one vLLM engine per actor, tensor-parallel
        over its `gpus_per_actor` GPUs."""
        ray = import_ray()
        from transformers import AutoTokenizer

        from .hf import MAX_ROWS

        if actors < 1:
            raise ValueError(f"generation.ray.actors must be >= 1, got {actors}")
        if backend not in BACKENDS:
            raise ValueError(f"Ray actors run {' or '.join(BACKENDS)}, not {backend!r}")
        if backend == "vllm" and gpus_per_actor < 1:
            raise ValueError("a vllm: target on Ray needs generation.ray.gpus_per_actor >= 1 (the GPUs of each "
                             "actor's engine, its tensor-parallel size)")
        if not ray.is_initialized():
            if address is None:
                # (Ray 2.60 binds a local cluster to the machine's reachable IP even when asked for
                # 127.0.0.1: services.resolve_ip_for_localhost; its token authentication guards it.)
                ray.init(address="local", num_cpus=max(1, round(actors * cpus_per_actor)), include_dashboard=False)
            else:
                ray.init(address=address)
        self.ray = ray
        self.model_path = str(model_path)
        self.chunk_retries, self.max_restarts = chunk_retries, max_restarts
        self.deaths: dict = {}  # actor -> times it died (Ray restarts it max_restarts times)
        self.chunk_size = chunk_size or 2 * (batch_size or MAX_ROWS)  # as models/__init__.py cuts chunks
        # The cache keys hold the rendered prompt: rendered here, with the actors' own tokenizer files.
        self.tokenizer = AutoTokenizer.from_pretrained(self.model_path)
        # max_task_retries=0: a failed chunk is retried by us, on another actor, not by Ray on the same one.
        remote = ray.remote(GenerationActor).options(num_cpus=cpus_per_actor, num_gpus=gpus_per_actor,
                                                     max_restarts=max_restarts, max_task_retries=0)
        self.actors = [remote.remote(backend, self.model_path, fingerprint, batch_size, gpus_per_actor)
                       for _ in range(actors)]
        try:
            fingerprints = set(ray.get([a.fingerprint.remote() for a in self.actors], timeout=ACTOR_START_TIMEOUT_S))
            # Each actor's GPUs: disjoint by Ray's accounting, listed so a run's log says where it ran.
            self.placement = ray.get([a.gpu_ids.remote() for a in self.actors], timeout=ACTOR_START_TIMEOUT_S)
        except ray.exceptions.GetTimeoutError:
            self.close(let_go_first=False)  # actors still waiting for their resources have nothing to let go
            raise RayGenerationError(
                f"{actors} Ray actors with {cpus_per_actor} CPUs and {gpus_per_actor} GPUs each did not load "
                f"{self.model_path} within {ACTOR_START_TIMEOUT_S}s: does the cluster have them free "
                f"({ray.available_resources()})?") from None
        if gpus_per_actor:
            print(f"[ray] {actors} {backend} actors of {self.model_path} on GPUs {self.placement}", file=sys.stderr)
        if len(fingerprints) > 1:  # e.g. one node computes in bf16, another in float32: other answers
            raise RayGenerationError(f"the actors load {self.model_path} differently: {sorted(fingerprints)}")
        # What the in-process generator of this model would have (":bf16" included where the actors' CPUs
        # compute in bf16), so the store keys are the same either way.
        self.fingerprint = fingerprints.pop()
        self.num_generated = 0  # completions the actors returned (cache hits never reach the pool)
        self.chunk_failures = 0  # chunks lost to a dead actor and sent again
        self.in_flight: dict = {}  # ObjectRef -> (chunk index, actor): what each busy actor is doing now

    def render(self, messages) -> str:
        return render_prompt(self.tokenizer, messages)

    def generate(self, requests: Sequence[GenerationRequest]) -> list[Completion]:
        requests = list(requests)
        chunks = [requests[i:i + self.chunk_size] for i in range(0, len(requests), self.chunk_size)]
        done = dict(self.generate_chunks(chunks))
        return [completion for index in range(len(chunks)) for completion in done[index]]

    def generate_chunks(self, chunks: Sequence[Sequence[GenerationRequest]]) -> Iterator[tuple[int, list[Completion]]]:
        """(chunk index, its completions) for every chunk, in the order the actors finish them."""
        ray = self.ray
        pending = deque(range(len(chunks)))
        failed_on: dict[int, list] = {}  # chunk -> the actors it died on
        idle = deque(self.actors)
        self.in_flight = {}
        while pending or self.in_flight:
            while pending and idle:
                index = pending.popleft()
                actor = _pick(idle, avoid=failed_on.get(index, ()))
                self.in_flight[actor.generate.remote(list(chunks[index]))] = (index, actor)
            if not self.in_flight:
                raise RayGenerationError(f"no Ray actor of {self.model_path} is left alive; "
                                         f"{len(pending)} chunks were not generated")
            [ref], _ = ray.wait(list(self.in_flight), num_returns=1)
            index, actor = self.in_flight.pop(ref)
            try:
                completions = ray.get(ref)
            except ray.exceptions.RayActorError as error:
                self.chunk_failures += 1
                failed_on.setdefault(index, []).append(actor)
                if len(failed_on[index]) > self.chunk_retries:
                    raise RayGenerationError(
                        f"chunk {index} ({len(chunks[index])} requests) failed on {len(failed_on[index])} actors; "
                        f"last: {error}") from error
                pending.appendleft(index)
                self.deaths[actor] = self.deaths.get(actor, 0) + 1
                if self.deaths[actor] <= self.max_restarts:
                    idle.append(actor)  # Ray is restarting it; a chunk sent meanwhile waits for it
                else:
                    self.actors.remove(actor)  # out of restarts: Ray will not bring it back
                continue
            idle.append(actor)
            self.num_generated += len(completions)
            yield index, completions

    def close(self, let_go_first: bool = True) -> None:
        """End the actors, each first letting go of its model (a vLLM engine stops its workers)."""
        if let_go_first:
            try:
                self.ray.get([actor.shutdown.remote() for actor in self.actors], timeout=SHUTDOWN_TIMEOUT_S)
            except Exception:  # a dead or stuck actor: killing it is all that is left
                pass
        for actor in self.actors:
            self.ray.kill(actor)
        self.actors = []


def _pick(idle: deque, avoid: Sequence):
    """The first idle actor that has not failed on this chunk yet (else the first idle one)."""
    for actor in idle:
        if all(actor is not bad for bad in avoid):
            idle.remove(actor)
            return actor
    return idle.popleft()

