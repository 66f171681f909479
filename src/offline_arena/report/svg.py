"""Charts as inline SVG strings, drawn in Python so the report needs no plotting library and no script
to show its plots (they survive a browser with JavaScript off, and print).

One chart shape covers every plot of the report: categorical or numeric x positions, one or more
series of y values (None = no value there, the line breaks), each with an optional 95% interval drawn
as a shaded band (curves) or as whiskers (ratings). Every point carries a <title> tooltip.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from html import escape
from typing import Sequence

# Okabe & Ito's colour-blind-safe palette (without its yellow, which vanishes on white).
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#000000", "#999999")


@dataclass
class Series:
    name: str
    values: Sequence[float | None]
    interval: Sequence[tuple[float, float] | None] | None = None  # 95% CI per point, if any
    dashed: bool = False


@dataclass
class Chart:
    title: str
    x_labels: Sequence[str]
    series: Sequence[Series]
    y_label: str = ""
    y_range: tuple[float, float] | None = None   # fixed axis (e.g. 0..1 for accuracies); else fitted
    whiskers: bool = False                        # intervals as error bars instead of bands
    separators: Sequence[int] = field(default_factory=tuple)  # x indices before which a dashed rule goes
    width: int = 640
    height: int = 280


def nice_ticks(low: float, high: float, count: int = 5) -> list[float]:
    """Round tick values covering [low, high]: steps of 1, 2 or 5 times a power of ten.
    E.g. nice_ticks(0.13, 0.87) -> [0.2, 0.4, 0.6, 0.8]."""
    if not (math.isfinite(low) and math.isfinite(high)) or high <= low:
        return [low]
    raw = (high - low) / max(count, 1)
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw)
    first = math.ceil(low / step - 1e-9) * step
    ticks, value = [], first
    while value <= high + 1e-9 * step:
        ticks.append(round(value, 12))
        value += step
    return ticks


def _fmt(value: float) -> str:
    return f"{value:.4g}" if abs(value) < 1e4 else f"{value:.0f}"


def _y_extent(chart: Chart) -> tuple[float, float]:
    if chart.y_range:
        return chart.y_range
    values = [v for s in chart.series for v in s.values if v is not None and math.isfinite(v)]
    for s in chart.series:
        for ci in s.interval or ():
            if ci is not None:
                values += [c for c in ci if c is not None and math.isfinite(c)]
    if not values:
        return 0.0, 1.0
    low, high = min(values), max(values)
    pad = (high - low) * 0.08 or abs(high) * 0.05 or 1.0
    return low - pad, high + pad


def render_chart(chart: Chart) -> str:
    left, right, top = 56, 16, 34 + 16 * math.ceil(len(chart.series) / 4)
    n = len(chart.x_labels)
    rotate = n > 8 or max((len(x) for x in chart.x_labels), default=0) * n > 70
    bottom = 70 if rotate else 36
    width, height = chart.width, chart.height + top - 34
    plot_w, plot_h = width - left - right, height - top - bottom
    y_low, y_high = _y_extent(chart)

    def x_of(i: int) -> float:
        return left + (plot_w * (i + 0.5) / n if n else plot_w / 2)

    def y_of(v: float) -> float:
        return top + plot_h * (1 - (v - y_low) / (y_high - y_low))

    out = [f'<svg class="chart" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" '
           f'width="{width}" height="{height}" role="img" aria-label="{escape(chart.title)}">',
           f'<text x="{left}" y="16" class="chart-title">{escape(chart.title)}</text>']
    for k, s in enumerate(chart.series):  # legend, four entries a row
        lx, ly = left + 150 * (k % 4), 32 + 16 * (k // 4)
        colour = PALETTE[k % len(PALETTE)]
        dash = ' stroke-dasharray="5 3"' if s.dashed else ""
        out.append(f'<line x1="{lx}" y1="{ly - 4}" x2="{lx + 18}" y2="{ly - 4}" stroke="{colour}" stroke-width="2.5"{dash}/>'
                   f'<text x="{lx + 22}" y="{ly}" class="legend">{escape(s.name[:22])}</text>')
    for tick in nice_ticks(y_low, y_high):
        y = y_of(tick)
        out.append(f'<line x1="{left}" y1="{y:.1f}" x2="{width - right}" y2="{y:.1f}" class="grid"/>'
                   f'<text x="{left - 6}" y="{y + 4:.1f}" class="tick" text-anchor="end">{_fmt(tick)}</text>')
    if chart.y_label:
        out.append(f'<text transform="translate(14 {top + plot_h / 2:.0f}) rotate(-90)" class="tick" '
                   f'text-anchor="middle">{escape(chart.y_label)}</text>')
    label_every = max(1, math.ceil(n / 12))  # long step axes: label about a dozen positions
    for i, label in enumerate(chart.x_labels):
        if i % label_every and i != n - 1:
            continue
        x, y = x_of(i), top + plot_h + 14
        anchor = f'text-anchor="end" transform="rotate(-35 {x:.1f} {y})"' if rotate else 'text-anchor="middle"'
        out.append(f'<text x="{x:.1f}" y="{y}" class="tick" {anchor}>{escape(label)}</text>')
    for i in chart.separators:
        x = left + plot_w * i / n
        out.append(f'<line x1="{x:.1f}" y1="{top}" x2="{x:.1f}" y2="{top + plot_h}" class="separator"/>')
    out.append(f'<rect x="{left}" y="{top}" width="{plot_w}" height="{plot_h}" class="frame"/>')
    for k, s in enumerate(chart.series):
        # Error bars of several series at one x would hide each other: fan them out a little.
        # (within 70% of one x slot, however many series there are).
        step = min(5.0, 0.7 * plot_w / max(n, 1) / max(len(chart.series), 1))
        shift = (k - (len(chart.series) - 1) / 2) * step if chart.whiskers else 0.0
        out.append(_series_svg(s, PALETTE[k % len(PALETTE)], chart, lambda i, d=shift: x_of(i) + d, y_of))
    out.append("</svg>")
    return "".join(out)


def _series_svg(s: Series, colour: str, chart: Chart, x_of, y_of) -> str:
    points = [(i, v) for i, v in enumerate(s.values) if v is not None and math.isfinite(v)]
    intervals = list(s.interval or [None] * len(s.values))
    parts = [f'<g class="series" data-series="{escape(s.name)}">']
    if s.interval and not chart.whiskers:  # a band under each unbroken run of points
        for run in _runs([(i, intervals[i]) for i, _ in points if intervals[i] is not None]):
            upper = " ".join(f"{x_of(i):.1f},{y_of(ci[1]):.1f}" for i, ci in run)
            lower = " ".join(f"{x_of(i):.1f},{y_of(ci[0]):.1f}" for i, ci in reversed(run))
            parts.append(f'<polygon points="{upper} {lower}" fill="{colour}" fill-opacity="0.12" stroke="none"/>')
    dash = ' stroke-dasharray="5 3"' if s.dashed else ""
    for run in _runs(points):
        if len(run) > 1:
            path = " ".join(f"{x_of(i):.1f},{y_of(v):.1f}" for i, v in run)
            parts.append(f'<polyline points="{path}" fill="none" stroke="{colour}" stroke-width="2"{dash}/>')
    show_dots = len(points) <= 60
    for i, v in points:
        ci = intervals[i] if i < len(intervals) else None
        tip = f"{s.name} @ {chart.x_labels[i]}: {_fmt(v)}" + (f" [{_fmt(ci[0])}, {_fmt(ci[1])}]" if ci else "")
        whisker = ""
        if ci and chart.whiskers:
            x = x_of(i)
            whisker = (f'<line x1="{x:.1f}" y1="{y_of(ci[0]):.1f}" x2="{x:.1f}" y2="{y_of(ci[1]):.1f}" '
                       f'stroke="{colour}" stroke-width="1.5"/>')
        radius = 3.5 if show_dots else 0
        parts.append(f'<g>{whisker}<circle cx="{x_of(i):.1f}" cy="{y_of(v):.1f}" r="{radius}" fill="{colour}">'
                     f'<title>{escape(tip)}</title></circle></g>')
    parts.append("</g>")
    return "".join(parts)


def _runs(points: list) -> list[list]:
    """Split (index, value) pairs into runs of consecutive indices: a missing value breaks the line."""
    runs: list[list] = []
    for point in points:
        if runs and point[0] == runs[-1][-1][0] + 1:
            runs[-1].append(point)
        else:
            runs.append([point])
    return runs
