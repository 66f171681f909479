"""PHI de-identification before data leaves the machine: `deidentify(text)` and the wrappers that redact
what a generator or a judge is sent. Needs the `[privacy]` extra (presidio-analyzer, names)."""

from .deidentify import (Finding, Redacted, default_output_path, deidentify, deidentify_messages,
                         deidentify_prompt_file, deidentify_row, deidentify_together)
from .wrappers import DeidentifyingGenerator, DeidentifyingJudge

__all__ = ["Finding", "Redacted", "default_output_path", "deidentify", "deidentify_messages",
           "deidentify_prompt_file", "deidentify_row", "deidentify_together", "DeidentifyingGenerator",
           "DeidentifyingJudge"]
