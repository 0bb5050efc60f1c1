"""`finsentry backtest`: generate a history with known incidents, replay one through the alert rules."""

from __future__ import annotations

import json
import logging
import tempfile
import uuid
from collections.abc import Callable
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from finsentry.alert_quality import DEFAULT_GRACE_S
from finsentry.cli.options import console, redis_for_tests
from foundation.settings import Settings, get_settings

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from alerts.rules import Rule
    from alerts.windows import WindowStore
    from finsentry.alert_quality import Quality
    from finsentry.backtest import Fired, Options, Summary
    from finsentry.history import Incident
    from finsentry.sweep import Sweep, SweepRow
    from inference.entities import EntityMatcher
    from inference.languages import LanguageModels

app = typer.Typer(help="Backtest the alert rules on a recorded or generated history.", no_args_is_help=True)


@app.command("generate")
def backtest_generate(
    out: Annotated[Path, typer.Option(help="Folder for history.jsonl and incidents.csv")],
    days: Annotated[
        int, typer.Option(min=2, help="Days of history (the first is kept free of incidents)")
    ] = 30,
    companies: Annotated[int, typer.Option(min=2)] = 200,
    seed: Annotated[int, typer.Option(help="Same seed, same files")] = 7,
    per_day: Annotated[int, typer.Option(min=1, help="Background events on a weekday")] = 22_000,
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON summary, no progress")] = False,
) -> None:
    """A seeded history of scored news with injected bursts, sell-offs and drifts."""
    from finsentry import history

    out.mkdir(parents=True, exist_ok=True)
    events, incidents, names = history.generate(days, companies, seed, per_day)
    texts = history.load_texts()
    rows = history.rows(events, names, texts, seed)
    step = history.write_history(out, rows)
    with Progress(console=console, disable=as_json, transient=True) as progress:
        task = progress.add_task("writing history.jsonl", total=len(rows))
        while (written := step()) < len(rows):
            progress.update(task, completed=written)
    history.write_incidents(out, incidents)
    summary = {
        "history": str(out / "history.jsonl"),
        "incidents": str(out / "incidents.csv"),
        "events": len(rows),
        "by_kind": {k: sum(i.kind == k for i in incidents) for k in ("burst", "selloff", "drift")},
        "sources": sorted(texts.sources()),
    }
    if as_json:
        print(json.dumps(summary, indent=2))
    else:
        console.print(f"{len(rows):,} events, {len(incidents)} incidents in {out}")


@app.command("run")
def backtest_run(
    data: Annotated[Path, typer.Option(help="history.jsonl: scored (or raw, with --model) events by time")],
    rules_file: Annotated[
        Path | None, typer.Option("--rules", help="Rules YAML; default: the shipped")
    ] = None,
    model: Annotated[
        Path | None, typer.Option(help="A bundle to score raw rows (no sentiment) in every language")
    ] = None,
    models: Annotated[
        str | None,
        typer.Option(help="One bundle per language to score raw rows, as the worker's FINSENTRY_MODELS"),
    ] = None,
    watchlist: Annotated[
        Path | None,
        typer.Option(help="Companies to find in raw rows; default: the worker's (FINSENTRY_WATCHLIST)"),
    ] = None,
    since: Annotated[datetime | None, typer.Option("--from", help="Only events from this time")] = None,
    until: Annotated[datetime | None, typer.Option("--to", help="Only events before this time")] = None,
    batch: Annotated[int, typer.Option(min=1, help="At most this many events per window write")] = 1_000,
    evaluation_interval: Annotated[
        float, typer.Option(min=0.001, help="Seconds of event time between rule evaluations")
    ] = 60,
    allow_late: Annotated[
        bool, typer.Option(help="Count lines past the lateness as late, not an error")
    ] = False,
    incidents_file: Annotated[
        Path | None, typer.Option("--incidents", help="incidents.csv: score the alerts against it")
    ] = None,
    grace: Annotated[
        float, typer.Option(min=0, help="Seconds after an incident's end a detection still counts")
    ] = DEFAULT_GRACE_S,
    sweep_spec: Annotated[
        str | None,
        typer.Option(
            "--sweep", help="RULE.FIELD=START:STOP:STEP: replay that rule once per value (needs --incidents)"
        ),
    ] = None,
    sweep_chart: Annotated[
        Path | None, typer.Option(help="SVG of the sweep; default: sweep-RULE-FIELD.svg beside --data")
    ] = None,
    html_file: Annotated[
        Path | None, typer.Option("--html", help="Write a self-contained HTML report")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON report")] = False,
) -> None:
    """Replay the history through the rules in event time; list every alert it fires. Exit 2 on bad input.

    With --incidents, how many incidents each rule caught, how late, and its false alarms; with --sweep,
    the same for each value of one rule's number. Raw rows are scored as the worker scores them: with the
    worker's watchlist, backend, device and threads (FINSENTRY_WATCHLIST, FINSENTRY_BACKEND, ...).
    """
    from alerts.monitor import default_rules
    from alerts.rules import RulesError, load_rules
    from alerts.windows import WindowStore
    from finsentry.backtest import BacktestError, Options
    from finsentry.services.process import ServiceError
    from foundation.db import open_database

    settings = get_settings()
    logging.getLogger("alerts").setLevel(logging.WARNING)  # the report lists every change
    options = Options(
        batch, evaluation_interval, since=_epoch(since), until=_epoch(until), allow_late=allow_late
    )
    try:
        rules = load_rules(rules_file) if rules_file else default_rules()
        incidents = _incidents(incidents_file) if incidents_file else None
        sweep = _sweep(sweep_spec, rules, incidents_file)
        engine_model = _models(settings, model, models)
        matcher = _matcher(settings, watchlist) if engine_model else None
        with redis_for_tests(settings) as client, tempfile.TemporaryDirectory() as workdir:

            def replay(rules: list[Rule], label: str) -> tuple[list[Fired], Summary]:
                store = WindowStore(
                    client,
                    prefix=f"fs-backtest:{uuid.uuid4().hex}",
                    bucket_s=settings.window_bucket_s,
                    retention_s=settings.window_retention_s,
                    lateness_s=settings.window_lateness_s,
                )
                engine = open_database(f"sqlite:///{Path(workdir) / f'{uuid.uuid4().hex}.db'}")
                try:
                    return _run(data, rules, store, engine, options, engine_model, matcher, as_json, label)
                finally:
                    engine.dispose()

            fired, summary = replay(rules, "replaying")
            rows = _sweep_rows(sweep, rules, incidents, grace, replay) if sweep else None
    except (BacktestError, RulesError, ServiceError, OSError) as exc:
        console.print(f"[red]{exc}[/]", highlight=False, soft_wrap=True)
        raise typer.Exit(2) from exc
    quality = _quality(fired, summary, rules, incidents, grace) if incidents is not None else None
    label = f"{sweep.rule}.{sweep.field}" if sweep else ""
    if html_file:
        _write_html(
            html_file, data, options, settings.window_lateness_s, fired, summary, quality, label, rows
        )
    if rows:
        chart = sweep_chart or data.parent / f"sweep-{label.replace('.', '-')}.svg"
        _write_sweep_chart(chart, label, rows)
    if as_json:
        report: dict[str, object] = {"summary": _summary(summary), "alerts": [asdict(f) for f in fired]}
        if quality is not None:
            report["quality"] = asdict(quality)
        if sweep and rows is not None:
            report["sweep"] = {"rule": sweep.rule, "field": sweep.field, "rows": [asdict(r) for r in rows]}
        print(json.dumps(report, indent=2))
    else:
        _print(fired, summary, quality, label, rows)


def _incidents(path: Path) -> list[Incident]:
    """The labelled incidents; a file that is not incidents.csv is bad input (exit 2)."""
    from finsentry.history import read_incidents

    try:
        return read_incidents(path)
    except KeyError as exc:
        raise OSError(f"--incidents {path}: no column {exc} (expected scope_key,start,end,kind)") from exc
    except ValueError as exc:
        raise OSError(f"--incidents {path}: a start or end is not an ISO time ({exc})") from exc


def _sweep(spec: str | None, rules: list[Rule], incidents: Path | None) -> Sweep | None:
    from finsentry.sweep import SweepError, parse_sweep

    if spec is None:
        return None
    if incidents is None:
        raise OSError("--sweep needs --incidents: each value is judged against them")
    try:
        return parse_sweep(spec, rules)
    except SweepError as exc:
        raise OSError(str(exc)) from exc


def _sweep_rows(
    sweep: Sweep,
    rules: list[Rule],
    incidents: list[Incident] | None,
    grace: float,
    replay: Callable[[list[Rule], str], tuple[list[Fired], Summary]],
) -> list[SweepRow]:
    """Only the swept rule is replayed: rules do not interact, so the others would fire the same."""
    from finsentry.sweep import SweepRow, substitute

    rule = next(r for r in rules if r.name == sweep.rule)
    rows = []
    for value in sweep.values:
        changed = substitute(rule, sweep.field, value)
        fired, summary = replay([changed], f"{sweep.rule}.{sweep.field}={value:g}")
        quality = _quality(fired, summary, [changed], incidents or [], grace)
        rows.append(SweepRow(value, quality.rules[0]))
    return rows


def _quality(
    fired: list[Fired], summary: Summary, rules: list[Rule], incidents: list[Incident], grace: float
) -> Quality:
    from finsentry.alert_quality import assess

    return assess(fired, incidents, {r.name: r.scope for r in rules}, summary.first, summary.last, grace)


def _write_html(
    path: Path,
    data: Path,
    options: Options,
    lateness_s: float,
    fired: list[Fired],
    summary: Summary,
    quality: Quality | None,
    label: str,
    rows: list[SweepRow] | None,
) -> None:
    """The charts show the topics and every scope key that alerted or had an incident."""
    from finsentry import report

    incidents = [o.incident for o in quality.incidents] if quality else []
    keys = {f.scope_key for f in fired} | {i.scope_key for i in incidents}
    series = report.hourly_series(data, options, lateness_s, lambda k: k in keys or k.startswith("topic:"))
    sweep = (label, rows) if rows else None
    path.write_text(report.render(_summary(summary), fired, quality, sweep, series, incidents), "utf-8")
    console.print(f"report in {path}")


def _write_sweep_chart(path: Path, label: str, rows: list[SweepRow]) -> None:
    from finsentry import report

    path.write_text(report.sweep_svg(label, rows), "utf-8")
    console.print(f"sweep chart in {path}")


def _run(
    data: Path,
    rules: list[Rule],
    store: WindowStore,
    engine: Engine,
    options: Options,
    model: LanguageModels | None,
    matcher: EntityMatcher | None,
    quiet: bool,
    label: str,
) -> tuple[list[Fired], Summary]:
    from finsentry.backtest import run_backtest

    with Progress(console=console, disable=quiet, transient=True) as progress:
        task = progress.add_task(label, total=None)
        return run_backtest(
            data,
            rules,
            store,
            engine,
            options,
            model,
            lambda n: progress.update(task, completed=n),
            matcher,
        )


def _models(settings: Settings, bundle: Path | None, per_language: str | None) -> LanguageModels | None:
    """The engines for raw rows, built as the worker builds its own (inference.serving) with the worker's
    backend, device and threads; only opened when a bundle is given, so scored histories need no model."""
    if bundle is None and not per_language:
        return None
    from inference import BundleError
    from inference.languages import LanguageError
    from inference.serving import load_models

    if bundle is not None and per_language:
        raise OSError("give --model (one bundle) or --models (one per language), not both")
    given = {"model_dir": bundle, "models": ""} if bundle is not None else {"models": per_language}
    try:
        return load_models(settings.model_copy(update=given))[0]
    except (BundleError, LanguageError, ValueError) as exc:
        raise OSError(f"--model {bundle}: {exc}" if bundle else f"--models {per_language}: {exc}") from exc


def _matcher(settings: Settings, watchlist: Path | None) -> EntityMatcher:
    """The worker's matcher (inference.serving), from --watchlist or FINSENTRY_WATCHLIST."""
    from inference.entities import WatchlistError
    from inference.serving import load_matcher

    try:
        return load_matcher(settings.model_copy(update={"watchlist": watchlist}) if watchlist else settings)
    except WatchlistError as exc:
        raise OSError(f"watchlist: {exc}") from exc


def _epoch(moment: datetime | None) -> float | None:
    if moment is None:
        return None
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()


def _summary(summary: Summary) -> dict[str, object]:
    return asdict(summary) | {"events_per_s": round(summary.events_per_s)}


def _print(
    fired: list[Fired], summary: Summary, quality: Quality | None, label: str, rows: list[SweepRow] | None
) -> None:
    from finsentry import report

    Console().print(_table(report.ALERT_HEADER, report.alert_rows(fired)))
    console.print(
        f"{summary.events:,} events ({report.stamp(summary.first)} to {report.stamp(summary.last)}) in"
        f" {summary.batches:,} batches, {summary.replay_s:.1f}s: {summary.events_per_s:,.0f} events/s;"
        f" {len(fired)} alerts; scored {summary.scored:,}, out of order {summary.out_of_order:,},"
        f" late {summary.late:,}, duplicates {summary.duplicates:,}"
    )
    if quality is not None:
        title = f"alert quality: {len(quality.incidents)} incidents, grace {quality.grace_s:g}s"
        _wide().print(_table(report.QUALITY_HEADER, report.quality_rows(quality), title))
    if rows:
        _wide().print(_table(report.SWEEP_HEADER, report.sweep_rows(rows), f"sweep of {label}"))


def _wide() -> Console:
    """A pipe or a file gets 80 columns by default, too few for the quality table's figures."""
    terminal = Console()
    return terminal if terminal.is_terminal else Console(width=140)


def _table(header: tuple[str, ...], rows: list[list[str]], title: str | None = None) -> Table:
    table = Table(*header, title=title)
    for row in rows:
        table.add_row(*row)
    return table
