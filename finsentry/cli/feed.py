"""Feeding the stream: `produce` a file into Kafka, or the `demo` that trains, replays and shows."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from finsentry.cli.options import (
    TextCol,
    console,
)
from foundation.settings import get_settings


def produce(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="JSONL or CSV file")],
    topic: Annotated[str, typer.Option(help="Kafka topic")] = "news.raw",
    kind: Annotated[str | None, typer.Option(help="news or comment; taken from the topic when unset")] = None,
    text_col: TextCol = "text",
    id_col: Annotated[str | None, typer.Option(help="Column with the event id (derived when absent)")] = "id",
    source_col: Annotated[str | None, typer.Option(help="Column with the source")] = "source",
    time_col: Annotated[str | None, typer.Option(help="Column with the publication time")] = "published_at",
    url_col: Annotated[str | None, typer.Option(help="Column with the URL")] = "url",
    lang_col: Annotated[str | None, typer.Option(help="Column with the language")] = "lang",
    rate: Annotated[
        float | None, typer.Option(help="Messages per second (default: as fast as possible)")
    ] = None,
    limit: Annotated[int | None, typer.Option(help="Send at most this many rows")] = None,
) -> None:
    """Send a file's rows to Kafka, checking each against the topic's contract first."""
    from finsentry.produce import ColumnMap
    from finsentry.produce import produce as run_produce
    from foundation.connections import kafka_python_options

    settings = get_settings()
    kind = kind or ("comment" if "comment" in topic else "news")
    columns = ColumnMap(text_col, id_col, source_col, time_col, url_col, lang_col)
    summary = run_produce(
        file,
        topic,
        kind,
        settings.kafka_bootstrap,
        columns,
        rate=rate,
        limit=limit,
        client_options=kafka_python_options(settings),
    )
    table = Table(title=f"produced {file.name} → {topic} in {summary.seconds:.1f}s")
    table.add_column("outcome")
    table.add_column("rows", justify="right")
    table.add_column("example")
    table.add_row("sent", str(summary.sent), "")
    for code, count in summary.rejected.most_common():
        table.add_row(f"rejected: {code}", str(count), summary.examples[code])
    if summary.failed_delivery:
        table.add_row("delivery failed", str(summary.failed_delivery), "broker did not acknowledge")
    console.print(table)
    if summary.failed_delivery:
        raise typer.Exit(1)


def demo(
    timeout: Annotated[float, typer.Option(help="Seconds to wait for the scored stream")] = 180.0,
) -> None:
    """Train (first run) and serve a real model, replay a sample stream, and show what was scored."""
    from finsentry.demo import run_demo

    raise typer.Exit(run_demo(get_settings(), console, timeout))
