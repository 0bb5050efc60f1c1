"""`backtest run --html FILE`: one self-contained page (inline SVG, no script, nothing fetched).

The console draws its trend charts with uPlot on a canvas, which needs the library and a browser's
script; a report that is mailed or archived should open anywhere, so its charts are drawn here as SVG,
in the console's colours (the negative share in its purple, alerts in its red).
"""

from __future__ import annotations

import html
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from finsentry.alert_quality import Quality, RuleQuality
from finsentry.backtest import Fired, Options, read_history
from finsentry.history import Incident
from finsentry.sweep import SweepRow
from streams.scoring import event_scope_keys

HOUR_S = 3_600
CHART_SIZE = (900, 170)  # width, height of one chart, in pixels
NEGATIVE_SHARE = "#8e44ad"  # the console's negative-share line
ALERT = "#c0392b"  # the console's --neg
INCIDENT = "#f0b429"
STYLE = """
body { font: 14px/1.45 system-ui, sans-serif; color: #1d2733; margin: 24px; background: #f6f8fa; }
table { border-collapse: collapse; background: #fff; margin: 8px 0 24px; }
th, td { border: 1px solid #dde3ea; padding: 3px 8px; text-align: left; font-variant-numeric: tabular-nums; }
svg { background: #fff; border: 1px solid #dde3ea; display: block; margin: 4px 0 20px; }
svg text { font-size: 11px; fill: #1d2733; }
"""


@dataclass
class Hourly:
    """Events and negative events per hour (epoch of the hour's start) of one scope key."""

    count: dict[float, int] = field(default_factory=lambda: defaultdict(int))
    negative: dict[float, int] = field(default_factory=lambda: defaultdict(int))


def hourly_series(
    path: Path, options: Options, lateness_s: float, wanted: Callable[[str], bool]
) -> dict[str, Hourly]:
    """One streaming pass over the history: the hourly counts of every wanted scope key.

    Rows without a sentiment (raw rows a --model scored during the replay) are left out.
    """
    series: dict[str, Hourly] = defaultdict(Hourly)
    for at, row in read_history(path, options, lateness_s):
        if "sentiment" not in row:
            continue
        hour = at // HOUR_S * HOUR_S
        negative = row["sentiment"]["label"] == "negative"
        for key in event_scope_keys(row):
            if wanted(key):
                series[key].count[hour] += 1
                series[key].negative[hour] += negative
    return series


@dataclass(frozen=True)
class Line:
    name: str
    colour: str
    points: list[tuple[float, float | None]]  # None breaks the line


@dataclass(frozen=True)
class Band:
    start: float
    end: float
    colour: str
    title: str


def svg_chart(
    lines: Sequence[Line],
    bands: Sequence[Band],
    x_range: tuple[float, float],
    y_max: float,
    x_text: Callable[[float], str],
    y_text: Callable[[float], str],
    size: tuple[int, int] = CHART_SIZE,
) -> str:
    """Lines over shaded bands, four x ticks, three y ticks, a legend."""
    width, height = size
    left, right, top, bottom = 48, 12, 18, 22
    (x0, x1), y_max = x_range, y_max or 1.0

    def x(value: float) -> float:
        return left + (value - x0) / ((x1 - x0) or 1) * (width - left - right)

    def y(value: float) -> float:
        return height - bottom - value / y_max * (height - top - bottom)

    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}">']
    for band in bands:
        start, end = x(max(band.start, x0)), x(min(band.end, x1))
        parts.append(
            f'<rect x="{start:.1f}" y="{top}" width="{max(end - start, 1.5):.1f}"'
            f' height="{height - top - bottom}" fill="{band.colour}" opacity="0.3">'
            f"<title>{html.escape(band.title)}</title></rect>"
        )
    for tick in (0, y_max / 2, y_max):
        parts.append(
            f'<line x1="{left}" x2="{width - right}" y1="{y(tick):.1f}" y2="{y(tick):.1f}" stroke="#dde3ea"/>'
        )
        parts.append(f'<text x="{left - 4}" y="{y(tick) + 4:.1f}" text-anchor="end">{y_text(tick)}</text>')
    for i, anchor in enumerate(("start", "middle", "middle", "end")):  # the end labels stay inside
        at = x0 + (x1 - x0) * i / 3
        parts.append(
            f'<text x="{x(at):.1f}" y="{height - 6}" text-anchor="{anchor}">{html.escape(x_text(at))}</text>'
        )
    for n, line in enumerate(lines):
        for run in _runs(line.points):
            if len(run) == 1:  # a polyline of one point draws nothing
                parts.append(
                    f'<circle cx="{x(run[0][0]):.1f}" cy="{y(run[0][1]):.1f}" r="2" fill="{line.colour}"/>'
                )
            else:
                path = " ".join(f"{x(a):.1f},{y(b):.1f}" for a, b in run)
                parts.append(
                    f'<polyline points="{path}" fill="none" stroke="{line.colour}" stroke-width="1.5"/>'
                )
        parts.append(
            f'<text x="{left + 8 + 160 * n}" y="12" fill="{line.colour}">{html.escape(line.name)}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


def _runs(points: list[tuple[float, float | None]]) -> Iterator[list[tuple[float, float]]]:
    """The unbroken stretches of a line."""
    run: list[tuple[float, float]] = []
    for a, b in [*points, (0.0, None)]:
        if b is not None:
            run.append((a, b))
        elif run:
            yield run
            run = []


def series_chart(
    key: str, hourly: Hourly, fired: Sequence[Fired], incidents: Sequence[Incident], span: tuple[float, float]
) -> str:
    hours = [span[0] // HOUR_S * HOUR_S + HOUR_S * i for i in range(int((span[1] - span[0]) // HOUR_S) + 2)]
    points = [
        (h + HOUR_S / 2, hourly.negative[h] / hourly.count[h] if hourly.count.get(h) else None) for h in hours
    ]
    bands = [
        Band(i.start, i.end, INCIDENT, f"incident {i.kind} {_time(i.start)}")
        for i in incidents
        if i.scope_key == key
    ]
    bands += [
        Band(f.fired_at, f.resolved_at or span[1], ALERT, f"{f.rule} {_time(f.fired_at)}")
        for f in fired
        if f.scope_key == key
    ]
    chart = svg_chart(
        [Line("negative share per hour", NEGATIVE_SHARE, points)], bands, span, 1.0, _time, _percent
    )
    return f"<h3>{html.escape(key)}</h3>{chart}"


def sweep_svg(label: str, rows: Sequence[SweepRow]) -> str:
    """The sweep's charts as one SVG document (a file of its own): a title, then the charts stacked."""
    title, (width, height) = 24, CHART_SIZE
    charts = sweep_chart_list(label, rows)
    stacked = "".join(
        f'<g transform="translate(0,{title + i * height})">{chart}</g>' for i, chart in enumerate(charts)
    )
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{title + len(charts) * height}">'
        f'<text x="4" y="16">sweep of {html.escape(label)}</text>{stacked}</svg>'
    )


def sweep_charts(label: str, rows: Sequence[SweepRow]) -> str:
    """The sweep's charts, for a page."""
    return "".join(sweep_chart_list(label, rows))


def sweep_chart_list(label: str, rows: Sequence[SweepRow]) -> list[str]:
    """Recall and precision on one chart, false alarms per day (another scale) on a second."""
    span = (rows[0].value, rows[-1].value)
    shares = [
        Line("recall", "#27ae60", [(r.value, r.quality.recall) for r in rows]),
        Line("precision", "#1d6fa5", [(r.value, r.quality.precision) for r in rows]),
    ]
    false = [Line("false alarms per day", ALERT, [(r.value, r.quality.false_alarms_per_day) for r in rows])]
    top = max((r.quality.false_alarms_per_day or 0.0 for r in rows), default=0.0)

    def x_text(value: float) -> str:
        return f"{value:.3g}"

    return [
        svg_chart(shares, [], span, 1.0, x_text, _percent),
        svg_chart(false, [], span, top, x_text, lambda v: f"{v:.2g}"),
    ]


ALERT_HEADER = ("rule", "scope key", "fired", "resolved", "figures", "evidence")
QUALITY_HEADER = (
    "rule", "incidents", "detected", "recall", "episodes", "false alarms", "false/day", "precision",
    "delay p50", "p90", "max",
)  # fmt: skip
SWEEP_HEADER = ("value", "episodes", "detected", "recall", "precision", "false/day", "delay p50", "p90")


def alert_rows(fired: Sequence[Fired]) -> list[list[str]]:
    rows = []
    for f in fired:
        figures = " ".join(f"{k}={v:.3g}" for k, v in f.values.items() if isinstance(v, int | float))
        rows.append(
            [f.rule, f.scope_key, stamp(f.fired_at), stamp(f.resolved_at), figures, " ".join(f.evidence)]
        )
    return rows


def quality_rows(quality: Quality) -> list[list[str]]:
    return [
        [q.rule, str(q.incidents), str(q.detected), _share(q.recall), str(q.episodes), str(q.false_alarms),
         _number(q.false_alarms_per_day), _share(q.precision), *_delays(q)]
        for q in [*quality.rules, quality.total]
    ]  # fmt: skip


def sweep_rows(rows: Sequence[SweepRow]) -> list[list[str]]:
    return [
        [f"{r.value:g}", str(r.quality.episodes), f"{r.quality.detected}/{r.quality.incidents}",
         _share(r.quality.recall), _share(r.quality.precision), _number(r.quality.false_alarms_per_day),
         *_delays(r.quality)[:2]]
        for r in rows
    ]  # fmt: skip


def table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def render(
    summary: dict[str, object],
    fired: Sequence[Fired],
    quality: Quality | None,
    sweep: tuple[str, Sequence[SweepRow]] | None,
    series: dict[str, Hourly],
    incidents: Sequence[Incident],
) -> str:
    """The whole page: summary, alerts, quality, sweep, then one chart per scope key."""
    sections = [
        ("Summary", table(("figure", "value"), [[k, _figure(k, v)] for k, v in summary.items()])),
        (f"Alerts ({len(fired)})", table(ALERT_HEADER, alert_rows(fired))),
    ]
    if quality is not None:
        outcomes = [
            [o.incident.kind, o.incident.scope_key, stamp(o.incident.start), stamp(o.incident.end),
             ", ".join(f"{rule} after {delay:.0f}s" for rule, delay in o.delay_s.items()) or "missed"]
            for o in quality.incidents
        ]  # fmt: skip
        sections += [
            (f"Quality (grace {quality.grace_s:g}s over {quality.days:.2f} days)",
             table(QUALITY_HEADER, quality_rows(quality))),
            ("Incidents", table(("kind", "scope key", "start", "end", "detected by"), outcomes)),
        ]  # fmt: skip
    if sweep is not None:
        label, rows = sweep
        sections.append(
            (f"Sweep of {label}", table(SWEEP_HEADER, sweep_rows(rows)) + sweep_charts(label, rows))
        )
    first, last = summary.get("first"), summary.get("last")
    if isinstance(first, float) and isinstance(last, float):
        charts = [series_chart(k, series[k], fired, incidents, (first, last)) for k in sorted(series)]
        sections.append(("Negative share per hour, alerts in red, incidents in yellow", "".join(charts)))
    title = "finsentry backtest"
    body = "".join(f"<h2>{html.escape(heading)}</h2>{content}" for heading, content in sections)
    return (
        f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{title}</title>'
        f"<style>{STYLE}</style></head><body><h1>{title}</h1>{body}</body></html>"
    )


def stamp(epoch: float | None) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%d %H:%M:%S") if epoch is not None else ""


def _figure(name: str, value: object) -> str:
    if name in ("first", "last") and isinstance(value, float):
        return stamp(value)
    return f"{value:.1f}" if isinstance(value, float) else str(value)


def _time(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%m-%d %H:%M")


def _percent(value: float) -> str:
    return f"{value:.0%}"


def _share(value: float | None) -> str:
    return "-" if value is None else f"{value:.0%}"


def _number(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def _delays(quality: RuleQuality) -> list[str]:
    d = quality.delays
    return [_seconds(d.median_s), _seconds(d.p90_s), _seconds(d.max_s)]


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}s"
