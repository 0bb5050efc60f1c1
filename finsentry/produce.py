"""`finsentry produce`: JSONL or CSV rows to a Kafka topic, checked against the topic's contract."""

from __future__ import annotations

import csv
import hashlib
import json
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from kafka import KafkaProducer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from schemas import SCHEMA_VERSION, Contract, ContractError, load_schema


@dataclass
class ColumnMap:
    """Which CSV column (or JSONL key) fills each contract field; unset fields are derived."""

    text: str = "text"
    id: str | None = "id"
    source: str | None = "source"
    published_at: str | None = "published_at"
    url: str | None = "url"
    lang: str | None = "lang"


@dataclass
class ProduceSummary:
    read: int = 0
    sent: int = 0
    rejected: Counter[str] = field(default_factory=Counter)
    examples: dict[str, str] = field(default_factory=dict)
    failed_delivery: int = 0
    seconds: float = 0.0


def rows_of(path: Path) -> Iterator[tuple[int, dict[str, Any] | str]]:
    """(line number, row); a JSONL line that is not JSON comes back as the raw string."""
    if path.suffix.lower() == ".csv":
        with path.open(encoding="utf-8-sig", newline="") as fh:
            for number, row in enumerate(csv.DictReader(fh), 2):
                yield number, row
        return
    with path.open(encoding="utf-8") as fh:
        for number, line in enumerate(fh, 1):
            if line.strip():
                try:
                    yield number, json.loads(line)
                except json.JSONDecodeError:
                    yield number, line


def shape(row: dict[str, Any], columns: ColumnMap, fields: set[str], default_source: str) -> dict[str, Any]:
    """A row under the contract's field names; id and time are derived when the file has none.

    Keys that are contract fields pass through (title, entities, ...); other columns stay behind.
    """
    event = {k: v for k, v in row.items() if k in fields and v not in (None, "")}
    for name in ("text", "id", "source", "published_at", "url", "lang"):
        column = getattr(columns, name)
        if column and column in row and row[column] not in (None, ""):
            event[name] = row[column]
    event.setdefault("source", default_source)
    event.setdefault("published_at", datetime.now(UTC).isoformat(timespec="seconds"))
    if "id" not in event and isinstance(event.get("text"), str):
        digest = hashlib.blake2b(f"{event['source']}\x00{event['text']}".encode(), digest_size=12).hexdigest()
        event["id"] = f"{event['source']}:{digest}"
    event.setdefault("schema_version", SCHEMA_VERSION)
    return event


def count_rows(path: Path) -> int:
    with path.open("rb") as fh:
        lines = sum(1 for line in fh if line.strip())
    return lines - 1 if path.suffix.lower() == ".csv" else lines


def produce(
    path: Path,
    topic: str,
    kind: str,
    bootstrap: str,
    columns: ColumnMap,
    rate: float | None = None,
    limit: int | None = None,
    show_progress: bool = True,
    client_options: dict[str, Any] | None = None,
) -> ProduceSummary:
    """`client_options`: the producer's security options (foundation.connections.kafka_python_options)."""
    contract = Contract.of(kind)
    fields = set(load_schema(kind)["properties"])
    summary = ProduceSummary()
    producer = KafkaProducer(
        bootstrap_servers=bootstrap, acks="all", linger_ms=10, retries=5, **(client_options or {})
    )
    total = count_rows(path) if limit is None else min(limit, count_rows(path))
    started = time.perf_counter()

    def failed(_: Exception) -> None:
        summary.failed_delivery += 1

    progress = Progress(
        TextColumn(f"[bold]produce → {topic}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        disable=not show_progress,
    )
    with progress:
        task = progress.add_task("rows", total=total)
        for number, row in rows_of(path):
            if limit is not None and summary.read >= limit:
                break
            summary.read += 1
            progress.advance(task)
            try:
                if not isinstance(row, dict):
                    raise ContractError("invalid_json", "line is not JSON")
                event = contract.validate(shape(row, columns, fields, default_source=path.stem))
            except ContractError as exc:
                summary.rejected[exc.code] += 1
                summary.examples.setdefault(exc.code, f"line {number}: {exc.message}")
                continue
            value = json.dumps(event, ensure_ascii=False).encode("utf-8")
            producer.send(topic, key=str(event["id"]).encode(), value=value).add_errback(failed)
            summary.sent += 1
            if rate:
                # Pace to `rate` messages per second overall, not per row, so jitter does not accumulate.
                delay = started + summary.sent / rate - time.perf_counter()
                if delay > 0:
                    time.sleep(delay)
        producer.flush()
    producer.close()
    summary.sent -= summary.failed_delivery
    summary.seconds = time.perf_counter() - started
    return summary
