"""The report page: one self-contained HTML file.

Static parts (overview, leaderboards, metric tables and plots, win-rate matrices) are rendered here in
Python, every run-supplied string through `html.escape`. The battle browser is drawn by the inline
script from the embedded JSON, and it only ever puts run text into the page via `textContent`, so a
model answer such as `<script>…` stays text. The JSON sits in a `<script type="application/json">`
block with `<`, `>` and `&` written as \\u003c, \\u003e and \\u0026: a `</script>` inside an answer cannot
end the block early, and the parsed strings are unchanged.
"""

from __future__ import annotations

import json
import math
from html import escape
from importlib import resources

from ..records import WINNERS
from .battle_data import BattleData
from .collect import Checkpoint, RunFiles
from .matrix import Cell, model_order, win_matrix
from .snapshots import Snapshot
from .svg import Chart, Series, render_chart

HELDOUT_SERIES = (("prompt strict", "prompt_strict", False), ("prompt loose", "prompt_loose", False),
                  ("instruction strict", "instruction_strict", True), ("instruction loose", "instruction_loose", True))


def embed_json(obj) -> str:
    """JSON safe to place inside a <script> element (see the module docstring)."""
    text = json.dumps(obj, ensure_ascii=False, separators=(",", ":"), allow_nan=False, default=str)
    for char, code in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026"), ("\u2028", "\\u2028"), ("\u2029", "\\u2029")):
        text = text.replace(char, code)
    return text


def _static(name: str) -> str:
    return resources.files(__package__).joinpath("static", name).read_text(encoding="utf-8")


def render_report(files: RunFiles, battles: BattleData, snapshots: list[Snapshot], generated_at: str,
                  audits: list | None = None) -> str:
    title = f"offline-arena report: {files.name}"
    sections = [_overview(files, battles, generated_at), _leaderboards(files, snapshots), _metrics(files),
                _win_rates(battles, snapshots), _judges(audits or []), _battle_browser(files, battles)]
    browser = {**battles.browser, "opponents": files.opponents}
    return "\n".join([
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        # No network at all: a report opened years later, offline, must look the same.
        "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'; "
        "script-src 'unsafe-inline'; img-src data:\">",
        f"<title>{escape(title)}</title>",
        f"<style>{_static('report.css')}</style>",
        "</head><body>",
        f"<header class=\"top\"><h1>{escape(title)}</h1><nav>"
        + "".join(f'<a href="#{a}">{t}</a>' for a, t in (("overview", "Overview"), ("leaderboard", "Leaderboard"),
                                                           ("metrics", "Metrics"), ("win-rates", "Win rates"),
                                                           ("judges", "Judges"), ("battles", "Battles")))
        + "</nav></header><main>",
        *sections,
        "</main>",
        f'<script type="application/json" id="battle-data">{embed_json(browser)}</script>',
        f"<script>{_static('report.js')}</script>",
        "</body></html>",
    ])


def _fmt(value, digits: int = 3) -> str:
    if isinstance(value, bool) or value is None:
        return "–"
    if isinstance(value, (int, float)):
        return "–" if isinstance(value, float) and not math.isfinite(value) else f"{value:.{digits}f}"
    return escape(str(value))


def _table(head: list[str], rows: list[list[str]], cls: str = "", attrs: str = "") -> str:
    """A table from already-escaped cells."""
    thead = "".join(f"<th>{h}</th>" for h in head)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    return f'<table class="{cls}"{attrs}><thead><tr>{thead}</tr></thead><tbody>{body}</tbody></table>'


# -- overview ---------------------------------------------------------------------------------------------

def _overview(files: RunFiles, battles: BattleData, generated_at: str) -> str:
    recipe = files.recipe or {}
    done = len(files.done_stages)
    facts = [
        ("run folder", escape(str(files.run_dir))),
        ("report written", escape(generated_at)),
        ("target", escape(str(recipe.get("target", "–")))),
        ("opponents", escape(", ".join(f"{o.get('name')} = {o.get('model')}" for o in recipe.get("opponents", [])) or "–")),
        ("judge", escape(str(recipe.get("judge", "–"))) + (f" <span class=\"muted\">({escape(battles.judge)})</span>"
                                                           if battles.judge else "")),
        ("plan", escape(f"{recipe.get('rounds', '?')} round(s) of "
                        + " → ".join(s.get("kind", "?") for s in recipe.get("stages", []))) if recipe else "–"),
        ("progress", escape(f"{done} of {len(files.planned_stages)} stages done" if files.planned_stages else "–")
         + (f"; in progress: {escape(', '.join(files.in_progress))}" if files.in_progress else "")),
        ("battles", f"{battles.total} recorded, {sum(1 for o in battles.outcomes if o[3])} judged by the judge shown"),
    ]
    if len(battles.judges) > 1:
        others = ", ".join(f"{escape(j)} ({n})" for j, n in battles.judges.items() if j != battles.judge)
        facts.append(("other judges", f"{others} <span class=\"muted\">(choose with arena report --judge)</span>"))
    rows = "".join(f"<tr><th>{k}</th><td>{v}</td></tr>" for k, v in facts)
    return f'<section id="overview"><h2>Overview</h2><table class="facts">{rows}</table>{_stage_table(files)}</section>'


def _stage_table(files: RunFiles) -> str:
    if not files.checkpoints:
        return '<p class="muted">No checkpoint has been evaluated yet.</p>'
    rows = []
    for c in files.checkpoints:
        h, s = c.eval.get("heldout", {}), c.summary or {}
        train, outcomes = s.get("train", {}), s.get("outcomes", {})
        loss = (f"{train['first_loss']:.3f} → {train['last_loss']:.3f}" if "first_loss" in train else
                ("skipped" if train.get("skipped") else "–"))
        rows.append([escape(c.folder), f"<b>{escape(c.name)}</b>",
                     _fmt(s.get("battles"), 0) if s else "–",
                     escape(" / ".join(str(outcomes.get(k, 0)) for k in WINNERS))
                     if outcomes else "–",
                     _fmt(train.get("rows"), 0) if train else "–", loss,
                     _with_ci(h, "prompt_strict"), _vs_base(s), _with_ci(h, "prompt_loose"),
                     _with_ci(h, "instruction_strict"), _with_ci(h, "instruction_loose"), _fmt(h.get("runaway_rate")),
                     _fmt(s.get("seconds"), 0) if s else ("base" if c.round == 0 else "not done")])
    head = ["stage", "model", "battles", "A / B / tie / error", "data rows", "loss first → last",
            "prompt strict [95% CI]", "vs base [paired 95% CI]", "prompt loose [95% CI]", "instr. strict [95% CI]",
            "instr. loose [95% CI]", "runaway", "seconds"]
    return f'<div class="scroll">{_table(head, rows, "stages")}</div>'


def _vs_base(summary: dict) -> str:
    """Prompt-level strict accuracy minus the base's on the same held-out prompts (paired bootstrap CI);
    green when the whole interval is above zero, red when below."""
    d = (summary.get("vs_base") or {}).get("prompt_strict")
    if not d:
        return "–"
    lo, hi = d["ci"]
    tone = "good" if lo > 0 else "bad" if hi < 0 else "muted"
    return (f'<span class="{tone}">{d["diff"]:+.3f}</span> '
            f'<span class="muted">[{lo:+.2f}, {hi:+.2f}]</span>')


def _with_ci(heldout: dict, key: str) -> str:
    if key not in heldout:
        return "–"
    ci = heldout.get(f"{key}_ci") or [None, None]
    return f"{_fmt(heldout[key])} <span class=\"muted\">[{_fmt(ci[0], 2)}, {_fmt(ci[1], 2)}]</span>"


# -- leaderboards -----------------------------------------------------------------------------------------

def _model_kind(files: RunFiles, model: str) -> str:
    if model in files.opponents:
        return "opponent"
    if model == "base":
        return "base"
    return "checkpoint" if any(c.name == model for c in files.checkpoints) else "model"


def _leaderboards(files: RunFiles, snapshots: list[Snapshot]) -> str:
    if not snapshots:
        return '<section id="leaderboard"><h2>Leaderboard</h2><p class="muted">No judged evaluation battles yet.</p></section>'
    options = "".join(f'<option value="{i}"{" selected" if i == len(snapshots) - 1 else ""}>{escape(s.label)}</option>'
                      for i, s in enumerate(snapshots))
    tables = []
    for i, snapshot in enumerate(snapshots):
        low = min((r["lower"] for r in snapshot.rows), default=0.0)
        high = max((r["upper"] for r in snapshot.rows), default=1.0)
        rows = []
        for r in snapshot.rows:
            kind = _model_kind(files, r["model"])
            rows.append([str(r["rank"]), f'<span class="model">{escape(r["model"])}</span> <span class="kind {kind}">{kind}</span>',
                         f'{r["rating"]:.1f}', f'{r["lower"]:.1f} – {r["upper"]:.1f}', _ci_bar(r, low, high),
                         str(r["battles"]), f'{r["wins"]} / {r["ties"]} / {r["losses"]}'])
        table = _table(["rank", "model", "rating", "95% CI", "", "battles", "W / T / L"], rows, "leaderboard")
        hidden = "" if i == len(snapshots) - 1 else " hidden"
        tables.append(f'<div class="snapshot" data-snapshot="{i}"{hidden}>{table}</div>')
    chart = ""
    if len(snapshots) > 1:
        models = list(dict.fromkeys(r["model"] for s in snapshots[::-1] for r in s.rows))
        series = []
        for model in models:
            by_model = [next((r for r in s.rows if r["model"] == model), None) for s in snapshots]
            series.append(Series(model, [r["rating"] if r else None for r in by_model],
                                 [(r["lower"], r["upper"]) if r else None for r in by_model],
                                 dashed=model in files.opponents))
        chart = render_chart(Chart("Bradley–Terry rating after each evaluation (95% bootstrap CI)",
                                   [s.short for s in snapshots], series, y_label="rating", whiskers=True,
                                   separators=_round_breaks(files.checkpoints, [s.short for s in snapshots])))
    return (f'<section id="leaderboard"><h2>Leaderboard</h2>'
            f'<p class="muted">Ratings of every checkpoint and opponent on the held-out battles, as they stood after '
            f'each evaluation; ranks are shared while 95% intervals overlap.</p>'
            f'<label>snapshot <select id="leaderboard-snapshot">{options}</select></label>'
            f'{"".join(tables)}<div class="charts">{chart}</div></section>')


def _ci_bar(row: dict, low: float, high: float, width: int = 140) -> str:
    span = (high - low) or 1.0

    def x(v: float) -> float:
        return 4 + (width - 8) * (v - low) / span

    return (f'<svg class="ci" width="{width}" height="12" viewBox="0 0 {width} 12">'
            f'<line x1="{x(row["lower"]):.1f}" y1="6" x2="{x(row["upper"]):.1f}" y2="6"/>'
            f'<circle cx="{x(row["rating"]):.1f}" cy="6" r="3"/></svg>')


def _round_breaks(checkpoints: list[Checkpoint], names: list[str]) -> list[int]:
    """x indices where a new round starts, for the dashed rules between rounds."""
    round_of = {c.name: c.round for c in checkpoints}
    rounds = [round_of.get(n) for n in names]
    return [i for i in range(1, len(rounds)) if rounds[i] is not None and rounds[i] != rounds[i - 1]]


# -- metrics ----------------------------------------------------------------------------------------------

def _metrics(files: RunFiles) -> str:
    checkpoints = [c for c in files.checkpoints if c.eval.get("heldout")]
    charts = []
    if checkpoints:
        names = [c.name for c in checkpoints]
        breaks = _round_breaks(files.checkpoints, names)
        accuracy = []
        for label, key, dashed in HELDOUT_SERIES:
            values = [c.eval["heldout"].get(key) for c in checkpoints]
            if any(v is not None for v in values):
                cis = [tuple(c.eval["heldout"][f"{key}_ci"]) if c.eval["heldout"].get(f"{key}_ci") else None
                       for c in checkpoints]
                accuracy.append(Series(label, values, cis if any(cis) else None, dashed))
        if accuracy:
            charts.append(render_chart(Chart("Held-out accuracy (IFEval-style; bands: 95% CI over prompts)", names,
                                             accuracy, y_label="accuracy", y_range=(0, 1), separators=breaks)))
        guard = [((c.summary or {}).get("train") or {}).get("guard") or {} for c in checkpoints]
        runaway = [Series("held-out runaway rate", [c.eval["heldout"].get("runaway_rate") for c in checkpoints])]
        if any(g.get("runaway_after") is not None for g in guard):
            runaway.append(Series("probe: before training", [g.get("runaway_before") for g in guard], dashed=True))
            runaway.append(Series("probe: after training", [g.get("runaway_after") for g in guard], dashed=True))
        charts.append(render_chart(Chart("Runaway rate (answers that hit the token limit)", names, runaway,
                                         y_label="rate", y_range=(0, 1), separators=breaks)))
    curves = [curve for c in files.checkpoints for curve in c.curves]
    training = "".join(
        render_chart(Chart(curve.label, [str(i + 1) for i in range(len(curve.values))],
                           [Series(curve.label.rsplit(": ", 1)[-1], curve.values)], y_label="", width=400, height=220))
        for curve in curves)
    if not charts and not curves:
        return '<section id="metrics"><h2>Metrics</h2><p class="muted">No stage has been evaluated yet.</p></section>'
    return (f'<section id="metrics"><h2>Metrics</h2><div class="charts">{"".join(charts)}</div>'
            f'<h3>Training curves</h3>'
            + (f'<p class="muted">Per logged step, as the trainers recorded them in each stage\'s metrics.json.</p>'
               f'<div class="charts small">{training}</div>' if curves else
               '<p class="muted">No training curves recorded (training skipped or not run yet).</p>')
            + "</section>")


# -- win rates --------------------------------------------------------------------------------------------

def _win_rates(battles: BattleData, snapshots: list[Snapshot]) -> str:
    judged = [o for o in battles.outcomes if o[3] in ("model_a", "model_b", "tie")]
    if not judged:
        return '<section id="win-rates"><h2>Win rates</h2><p class="muted">No judged battles yet.</p></section>'
    preferred = [r["model"] for r in snapshots[-1].rows] if snapshots else []
    scopes = [("all", "all judged battles", judged)]
    for tag in dict.fromkeys(o[0] for o in judged):
        label = "held-out evaluation battles" if tag == "eval" else f"{tag} battles"
        scopes.append((tag, label, [o for o in judged if o[0] == tag]))
    options = "".join(f'<option value="{escape(key)}">{escape(label)} ({len(rows)})</option>' for key, label, rows in scopes)
    tables = []
    for i, (key, _, rows) in enumerate(scopes):
        cells = win_matrix((a, b, w) for _, a, b, w in rows)
        tables.append(_matrix_table(cells, model_order(cells, preferred), key, hidden=i > 0))
    return (f'<section id="win-rates"><h2>Win rates</h2>'
            f'<p class="muted">Row model against column model: (wins + ties / 2) / battles, from the judged battles '
            f'(judge errors left out). Hover a cell for wins / ties / losses.</p>'
            f'<label>battles <select id="matrix-scope">{options}</select></label>{"".join(tables)}</section>')


def _matrix_table(cells: dict[tuple[str, str], Cell], models: list[str], scope: str, hidden: bool) -> str:
    head = "".join(f'<th class="col">{escape(m)}</th>' for m in models)
    body = []
    for row in models:
        tds = []
        for col in models:
            cell = cells.get((row, col))
            attrs = f'data-row="{escape(row)}" data-col="{escape(col)}"'
            if row == col or cell is None or not cell.games:
                tds.append(f'<td class="empty" {attrs}>{"" if row == col else "–"}</td>')
                continue
            tip = f"{row} vs {col}: {cell.wins} W / {cell.ties} T / {cell.losses} L of {cell.games}"
            tds.append(f'<td {attrs} data-games="{cell.games}" style="background:{_rate_colour(cell.win_rate)}" '
                       f'title="{escape(tip)}">{cell.win_rate:.2f}<small>n={cell.games}</small></td>')
        body.append(f'<tr><th class="row">{escape(row)}</th>{"".join(tds)}</tr>')
    return (f'<div class="matrix scroll" data-scope="{escape(scope)}"{" hidden" if hidden else ""}><table class="win-matrix">'
            f'<thead><tr><th></th>{head}</tr></thead><tbody>{"".join(body)}</tbody></table></div>')


def _rate_colour(rate: float) -> str:
    """Red (0) through white (0.5) to green (1)."""
    loss, win, white = (215, 48, 39), (26, 152, 80), (255, 255, 255)
    end, t = (win, (rate - 0.5) * 2) if rate >= 0.5 else (loss, (0.5 - rate) * 2)
    t = 0.85 * t
    return "rgb({},{},{})".format(*(round(w + (e - w) * t) for w, e in zip(white, end)))


# -- battle browser ---------------------------------------------------------------------------------------

def _judges(audits: list) -> str:
    """Each judge audited from its stored verdicts (report/judges.py): agreement with the verifier where
    prompts have checkable constraints, position consistency and bias where it kept both orders."""
    if not audits:
        return '<section id="judges"><h2>Judges</h2><p class="muted">No judged battles yet.</p></section>'

    def rate(r) -> str:
        return "n/a" if not r.n else f"{r.share:.2f} [{r.ci[0]:.2f}, {r.ci[1]:.2f}] ({r.hits}/{r.n})"

    head = ["judge", "battles", "errors", "agreement with the verifier (decided)", "tie rate",
            "position consistency", "first position wins", "longer wins when even"]
    rows = [[escape(a.judge), str(a.pairs), str(a.errors), rate(a.agreement_decided), rate(a.tie_rate),
             rate(a.position_consistency), rate(a.first_position_wins), rate(a.longer_wins_when_even)]
            for a in audits]
    notes = "".join(f"<li>{escape(a.judge)}: {escape(note)}</li>" for a in audits for note in a.notes)
    return ('<section id="judges"><h2>Judges</h2>'
            '<p class="muted">Each judge measured against the verifier on the battles it judged whose prompts have '
            'checkable constraints (the answer that meets more of them is the better one; chance is 0.5), and, for '
            'an LLM pairwise judge, on the two orders it judged every battle in. n/a: nothing to measure (no '
            'constraints, or a judge that keeps no orders). <code>arena judge audit</code> measures a judge on pairs of its own.</p>'
            + _table(head, rows, "judges") + (f"<ul class=\"notes\">{notes}</ul>" if notes else "") + "</section>")


def _battle_browser(files: RunFiles, battles: BattleData) -> str:
    shown, total = len(battles.browser["battles"]), battles.total
    note = "" if shown == total else (f'<p class="note">The latest {shown} of {total} battles are included; the '
                                      f'win rates and leaderboards above use all of them.</p>')
    cap = battles.browser.get("answerCap")
    return (f'<section id="battles"><h2>Battles</h2>{note}'
            f'<p class="muted">Answers longer than {cap} characters are shortened here (the store keeps them whole).</p>'
            '<div class="filters">'
            '<label><span id="opponent-label">opponent</span> <select id="filter-opponent"><option value="">any</option></select></label>'
            '<label>stage <select id="filter-stage"><option value="">any</option></select></label>'
            '<label>verdict <select id="filter-verdict"><option value="">any</option>'
            '<option value="model_a">A (left) wins</option><option value="model_b">B (right) wins</option>'
            '<option value="tie">tie</option><option value="error">judge error</option>'
            '<option value="none">not judged</option></select></label>'
            '<label>text <input id="filter-text" type="search" placeholder="in prompt or answers"></label>'
            '</div>'
            '<div class="pager"><button id="page-prev" type="button">‹ previous</button>'
            '<span id="battle-count">loading…</span><button id="page-next" type="button">next ›</button></div>'
            '<div id="battle-list"></div>'
            '<noscript><p class="note">The battle browser needs JavaScript.</p></noscript></section>')
