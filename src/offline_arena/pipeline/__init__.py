"""Rounds x stages: the main job (`arena run`).

Each stage of a round, as in Arena Learning (arXiv 2407.10627, sec. 3.3-3.4): take a fresh prompt shard;
let the *current* model battle the opponents; judge; build the stage's data; train (with the stop-token
guard); evaluate on the held-out split; promote the new checkpoint for the next stage.

    loop.py        the run: set-up, the round x stage loop, promotion, the final summary
    stages.py      one stage: battles -> data -> trainer, driven by the stage-kind table (stage_kinds.py);
                   the merge stage
    evaluation.py  held-out accuracy, paired difference to the base, the anchored leaderboard
    summary.py     the text table and the final line
    tracking.py    MLflow, when the recipe asks for it

Everything a stage produces lives in its folder (run_folder.py) and the stage writes `done.json` as its
very last act: a killed run restarts at the first stage without it. Generation and judging go through the
store, so the restarted stage repeats no battle and no judgment; training restarts from the stage's
starting checkpoint (a short stage is cheaper to redo than to checkpoint). Which prompts each stage and the
evaluation get is `shards.py`, one floor down, where the preflight reads it too.
"""

from .loop import RunContext, run
from ..shards import heldout_prompts, stage_prompts

__all__ = ["RunContext", "heldout_prompts", "run", "stage_prompts"]
