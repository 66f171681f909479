"""`arena report RUN`: one self-contained HTML file about a run folder — leaderboards with CIs after each
evaluation, held-out metric and training curves, win-rate matrices, and a browser over the battles.

    collect.py      the run folder's JSON files (recipe, eval.json, done.json, metrics.json)
    battle_data.py  store.sqlite, read-only: every battle's outcome; the latest battles' texts, size-capped
    snapshots.py    the leaderboard as it stood after each evaluation
    judges.py       every judge audited from its stored verdicts (agreement with the verifier, position bias)
    matrix.py       pairwise win rates (pure)
    svg.py          line / error-bar charts as inline SVG
    render.py       the page; static/ holds its inline CSS and script

The page loads nothing from anywhere (a Content-Security-Policy forbids it), so it can be mailed,
archived or opened offline. Only numpy (through ratings/, and only when a folder has no leaderboard
of its own) is imported; no torch.
"""

from __future__ import annotations

import time
from pathlib import Path

from ..run_folder import RunFolder
from .battle_data import BattleLimits


def write_report(run_dir: str | Path, out: str | Path | None = None, judge: str | None = None,
                 limits: BattleLimits | None = None) -> Path:
    """Write the report of `run_dir` (finished or not) to `out` (default RUN/report.html); return the path."""
    from .battle_data import read_battles
    from .collect import collect_run_files
    from .judges import judge_audits
    from .render import render_report
    from .snapshots import leaderboard_snapshots

    folder = RunFolder(run_dir)
    run_dir = folder.root
    if not run_dir.is_dir():
        raise FileNotFoundError(f"{run_dir}: no such run folder")
    if not folder.is_run():
        raise ValueError(f"{run_dir} is not a run folder (no {folder.store.name}, no {folder.recipe.name})")
    files = collect_run_files(run_dir)
    battles = read_battles(folder.store, judge, limits)
    seed = int((files.recipe or {}).get("seed") or 0)
    snapshots = leaderboard_snapshots(files, battles.outcomes, seed=seed)
    html = render_report(files, battles, snapshots, time.strftime("%Y-%m-%d %H:%M:%S %Z"), judge_audits(folder.store))
    out = Path(out) if out else folder.report
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text(html, encoding="utf-8")
    tmp.replace(out)  # a browser reloading the report never sees half a file
    return out


def write_report_quietly(run_dir: str | Path, log=print) -> Path | None:
    """For the end of `arena run`: the run has succeeded whatever happens here, so a report that cannot
    be written is logged, not raised."""
    try:
        path = write_report(run_dir)
    except Exception as error:  # noqa: BLE001 - any failure is reported and the run's result stands
        log(f"report not written ({type(error).__name__}: {error}); retry with: arena report {run_dir}")
        return None
    log(f"report: {path}")
    return path
