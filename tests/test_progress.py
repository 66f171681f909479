"""Progress on long work: a bar on a terminal, plain timed lines anywhere else (a log file, CI)."""

import io
import logging

from offline_arena.logs import QUIET_ENVIRONMENT, setup_logging
from offline_arena.progress import _LogLines, _Silent, _TerminalBar, progress_bar


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


class Terminal(io.StringIO):
    def isatty(self):
        return True


def lines(caplog):
    return [r.getMessage() for r in caplog.records if r.name == "offline_arena.progress"]


def test_off_a_terminal_a_line_every_interval_with_what_is_left(caplog):
    caplog.set_level(logging.INFO, logger="offline_arena.progress")
    clock = Clock()
    bar = progress_bar(541, "generate base", "answer", stream=io.StringIO(), every_s=30, clock=clock)
    assert isinstance(bar, _LogLines)
    clock.now = 10
    bar.update(32)                      # 10 s since the start: too soon for a line
    assert lines(caplog) == []
    clock.now = 60
    bar.update(32)                      # 64 done in 60 s: 477 left at the same pace is 447 s
    bar.note("loss 0.69")
    clock.now = 70
    bar.update(32)                      # 10 s after the last line: quiet again
    clock.now = 600
    bar.update(541 - 96)                # done: the closing line comes with close(), once
    assert len(lines(caplog)) == 1
    bar.close()
    bar.close()
    assert lines(caplog) == ["generate base: 64/541 answers (12%) in 1m00s, about 7m27s left",
                             "generate base: 541/541 answers in 10m00s; loss 0.69"]


def test_a_bar_stopped_early_says_how_far_it_got(caplog):
    caplog.set_level(logging.INFO, logger="offline_arena.progress")
    clock = Clock()
    with progress_bar(10, "judge", "battle", stream=io.StringIO(), clock=clock) as bar:
        clock.now = 5
        bar.update(3)
    assert lines(caplog) == ["judge: 3/10 battles in 5s"]


def test_a_terminal_gets_tqdm_and_no_work_or_disabled_gets_nothing(caplog):
    caplog.set_level(logging.INFO, logger="offline_arena.progress")
    terminal = Terminal()
    bar = progress_bar(4, "train sft", "step", stream=terminal)
    assert isinstance(bar, _TerminalBar)
    bar.note("loss 1.2")
    bar.update(4)
    bar.close()
    assert "train sft" in terminal.getvalue() and lines(caplog) == []
    assert isinstance(progress_bar(0, "x", stream=io.StringIO()), _Silent)
    assert isinstance(progress_bar(5, "x", enabled=False, stream=io.StringIO()), _Silent)


def test_the_store_cache_reports_a_whole_call_not_each_chunk(tmp_path, caplog):
    """541 prompts through the cache: lines count all the answers the call generates, the cache hits
    excluded, and the model behind it is told to keep its own per-chunk bar off."""
    from offline_arena.models.base import Completion, GenerationRequest, SamplingParams
    from offline_arena.models.cached import CachedGenerator
    from offline_arena.store import Store

    class Echo:  # a model behind the cache; what is under test is the cache's reporting
        fingerprint, progress = "hf:echo:0", True

        def render(self, messages):
            return messages[-1]["content"]

        def generate(self, requests):
            return [Completion(text=r.messages[-1]["content"], stopped=True, num_tokens=1) for r in requests]

    caplog.set_level(logging.INFO, logger="offline_arena.progress")
    inner = Echo()
    cached = CachedGenerator(inner, Store(tmp_path / "store.sqlite"), chunk_size=32)
    assert inner.progress is False
    params = SamplingParams(max_new_tokens=8)
    requests = [GenerationRequest(messages=({"role": "user", "content": f"q{i}"},), params=params) for i in range(70)]
    cached.generate(requests[:6])
    caplog.clear()
    cached.generate(requests)
    assert lines(caplog)[-1].startswith("generate echo: 64/64 answers in ")


def test_logging_setup_is_idempotent_and_leaves_a_users_settings(monkeypatch):
    monkeypatch.setenv("HF_HUB_DISABLE_PROGRESS_BARS", "0")
    for name in QUIET_ENVIRONMENT:
        if name != "HF_HUB_DISABLE_PROGRESS_BARS":
            monkeypatch.delenv(name, raising=False)
    from offline_arena.logs import _Lines

    root = logging.getLogger("offline_arena")
    before = list(root.handlers)
    try:
        setup_logging()
        setup_logging()
        assert sorted(h.stream_name for h in root.handlers if isinstance(h, _Lines)) == ["stderr", "stdout"]
        import os

        assert os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] == "0"        # the user's choice stands
        assert os.environ["HF_DATASETS_DISABLE_PROGRESS_BARS"] == "1"
    finally:
        for handler in root.handlers[:]:
            if handler not in before:
                root.removeHandler(handler)
        root.setLevel(logging.NOTSET)


def test_the_runs_story_goes_to_stdout_and_progress_to_stderr(capsys):
    from offline_arena.logs import _Lines

    root = logging.getLogger("offline_arena")
    before = list(root.handlers)
    try:
        setup_logging()
        logging.getLogger("offline_arena.pipeline").info("final vs base: +0.1")
        logging.getLogger("offline_arena.progress").info("generate: 3/9 answers")
        captured = capsys.readouterr()
        assert captured.out == "final vs base: +0.1\n" and captured.err == "generate: 3/9 answers\n"
        assert all(isinstance(h, _Lines) for h in root.handlers if h not in before)
    finally:
        for handler in root.handlers[:]:
            if handler not in before:
                root.removeHandler(handler)
        root.setLevel(logging.NOTSET)


def test_a_training_stage_shows_steps_and_loss_not_every_metric(caplog, capsys):
    """transformers' ProgressCallback writes the dict of every metric at each logging step; the stage's
    progress replaces it: one bar (here, lines) with the loss."""
    from transformers import TrainerControl, TrainerState
    from transformers.trainer_callback import CallbackHandler, PrinterCallback, ProgressCallback

    from offline_arena.train.step_progress import StepProgress, show_step_progress

    class Trainer:  # the callback list of a real Trainer, which is what the swap edits
        def __init__(self):
            self.callback_handler = CallbackHandler([ProgressCallback(), PrinterCallback()], None, None, None, None)

        def add_callback(self, callback):
            self.callback_handler.add_callback(callback)

        def remove_callback(self, callback):
            self.callback_handler.remove_callback(callback)

    caplog.set_level(logging.INFO, logger="offline_arena.progress")
    trainer = Trainer()
    show_step_progress(trainer, "dpo")
    kinds = [type(c) for c in trainer.callback_handler.callbacks]
    assert kinds == [StepProgress]
    state, control = TrainerState(max_steps=3), TrainerControl()
    handler = trainer.callback_handler
    handler.on_train_begin(None, state, control)
    for step in range(3):
        handler.on_step_end(None, state, control)
        handler.on_log(None, state, control, logs={"loss": 0.7 - step / 10, "logits/chosen": 1.0})
    handler.on_train_end(None, state, control)
    assert lines(caplog)[-1].startswith("train dpo: 3/3 steps in ") and lines(caplog)[-1].endswith("loss 0.5")
    assert "logits/chosen" not in capsys.readouterr().out


def test_a_wrappers_bar_is_named_apart_from_the_model_behind_it():
    """A `@revise` call shows the drafts' bar and its own: the two must not read as one model generating
    twice (the quickstart's log showed three 'generate smollm2-135m-instruct' lines for two samples)."""
    from offline_arena.models.cached import _short_name

    assert _short_name("builtin:smollm2-135m-instruct:b179c9523d0e6a0f:bf16") == "smollm2-135m-instruct"
    assert _short_name("builtin:smollm2-135m-instruct:b179c9523d0e6a0f:bf16@revise[v3]") == "smollm2-135m-instruct@revise"
    assert _short_name("hf:checkpoint:020e9338:bf16@best-of-4[verifier]@revise[v3]") == "checkpoint@best-of-4@revise"
    assert _short_name("echo") == "echo"
