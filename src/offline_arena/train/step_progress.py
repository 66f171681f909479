"""A training stage's progress as one bar (or, off a terminal, a line every half minute) with its loss.

It replaces transformers' own ProgressCallback, which also writes the dict of every logged metric at each
logging step (TRL's DPO logs fifteen: `{'loss': '0.6931', 'grad_norm': '27.02', 'logits/chosen': ...}`, a
screenful per stage of `make run`), and PrinterCallback, which prints the same dict where the bar is off.
The metrics are still in the trainer's log history, and so in the stage's metrics.json."""

from __future__ import annotations

from transformers import TrainerCallback

from ..progress import progress_bar


class StepProgress(TrainerCallback):
    def __init__(self, stage: str, loss_key: str = "loss"):
        self.stage, self.loss_key, self.bar = stage, loss_key, None

    def on_train_begin(self, args, state, control, **kwargs):
        if state.is_world_process_zero:
            self.bar = progress_bar(state.max_steps, f"train {self.stage}", "step")

    def on_step_end(self, args, state, control, **kwargs):
        if self.bar is not None:
            self.bar.update(1)

    def on_log(self, args, state, control, logs=None, **kwargs):
        value = (logs or {}).get(self.loss_key)
        if self.bar is not None and isinstance(value, (int, float)):
            self.bar.note(f"{self.loss_key} {value:.4g}")

    def on_train_end(self, args, state, control, **kwargs):
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def show_step_progress(trainer, stage: str, loss_key: str = "loss") -> None:
    """Swap the trainer's metric-dict printing for `StepProgress` (a trainer with no callbacks, such as a
    test's stand-in, trains as it is)."""
    from transformers.trainer_callback import PrinterCallback, ProgressCallback

    if not hasattr(trainer, "remove_callback"):
        return

    trainer.remove_callback(ProgressCallback)
    trainer.remove_callback(PrinterCallback)
    trainer.add_callback(StepProgress(stage, loss_key))
