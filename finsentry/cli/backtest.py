"""`finsentry backtest`: generate a history with known incidents, replay one through the alert rules."""

from __future__ import annotations

import json
import logging
import tempfile
import uuid
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from finsentry.cli.options import console, redis_for_tests
from foundation.settings import get_settings

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from alerts.rules import Rule
    from alerts.windows import WindowStore
    from finsentry.backtest import Fired, Options, Summary
    from inference import InferenceEngine

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
    model: Annotated[Path | None, typer.Option(help="A bundle to score raw rows (no sentiment)")] = None,
    since: Annotated[datetime | None, typer.Option("--from", help="Only events from this time")] = None,
    until: Annotated[datetime | None, typer.Option("--to", help="Only events before this time")] = None,
    batch: Annotated[int, typer.Option(min=1, help="At most this many events per batch")] = 1_000,
    span: Annotated[float, typer.Option(min=0.001, help="At most this much event time per batch (s)")] = 60,
    allow_late: Annotated[
        bool, typer.Option(help="Count lines past the lateness as late, not an error")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON report")] = False,
) -> None:
    """Replay the history through the rules in event time; list every alert it fires. Exit 2 on bad input."""
    from alerts.monitor import default_rules
    from alerts.rules import RulesError, load_rules
    from alerts.windows import WindowStore
    from finsentry.backtest import BacktestError, Options
    from finsentry.services.process import ServiceError
    from foundation.db import open_database

    settings = get_settings()
    logging.getLogger("alerts").setLevel(logging.WARNING)  # the report lists every change
    options = Options(batch, span, since=_epoch(since), until=_epoch(until), allow_late=allow_late)
    try:
        rules = load_rules(rules_file) if rules_file else default_rules()
        engine_model = _model(model)
        with redis_for_tests(settings) as client, tempfile.TemporaryDirectory() as workdir:
            engine = open_database(f"sqlite:///{Path(workdir) / 'backtest.db'}")
            store = WindowStore(
                client,
                prefix=f"fs-backtest:{uuid.uuid4().hex}",
                bucket_s=settings.window_bucket_s,
                retention_s=settings.window_retention_s,
                lateness_s=settings.window_lateness_s,
            )
            try:
                fired, summary = _run(data, rules, store, engine, options, engine_model, as_json)
            finally:
                engine.dispose()
    except (BacktestError, RulesError, ServiceError, OSError) as exc:
        console.print(f"[red]{exc}[/]", highlight=False, soft_wrap=True)
        raise typer.Exit(2) from exc
    if as_json:
        print(json.dumps({"summary": _summary(summary), "alerts": [asdict(f) for f in fired]}, indent=2))
    else:
        _print(fired, summary)


def _run(
    data: Path,
    rules: list[Rule],
    store: WindowStore,
    engine: Engine,
    options: Options,
    model: InferenceEngine | None,
    quiet: bool,
) -> tuple[list[Fired], Summary]:
    from finsentry.backtest import run_backtest

    with Progress(console=console, disable=quiet, transient=True) as progress:
        task = progress.add_task("replaying", total=None)
        return run_backtest(
            data, rules, store, engine, options, model, lambda n: progress.update(task, completed=n)
        )


def _model(bundle: Path | None) -> InferenceEngine | None:
    """The engine for raw rows; only opened when a bundle is given, so scored histories need no model."""
    if bundle is None:
        return None
    from inference import BundleError, InferenceEngine

    try:
        return InferenceEngine(bundle)
    except BundleError as exc:
        raise OSError(f"--model {bundle}: {exc}") from exc


def _epoch(moment: datetime | None) -> float | None:
    if moment is None:
        return None
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()


def _time(epoch: float | None) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%d %H:%M:%S") if epoch is not None else ""


def _summary(summary: Summary) -> dict[str, object]:
    return asdict(summary) | {"events_per_s": round(summary.events_per_s)}


def _print(fired: list[Fired], summary: Summary) -> None:
    table = Table("rule", "scope key", "fired", "resolved", "figures", "evidence")
    for f in fired:
        figures = " ".join(f"{k}={v:.3g}" for k, v in f.values.items() if isinstance(v, int | float))
        table.add_row(
            f.rule, f.scope_key, _time(f.fired_at), _time(f.resolved_at), figures, " ".join(f.evidence)
        )
    Console().print(table)
    console.print(
        f"{summary.events:,} events ({_time(summary.first)} to {_time(summary.last)}) in {summary.batches:,}"
        f" batches, {summary.replay_s:.1f}s: {summary.events_per_s:,.0f} events/s; {len(fired)} alerts;"
        f" scored {summary.scored:,}, out of order {summary.out_of_order:,}, late {summary.late:,},"
        f" duplicates {summary.duplicates:,}"
    )
