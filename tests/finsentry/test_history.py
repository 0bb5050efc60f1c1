"""`finsentry backtest generate`: the same seed writes the same files; the incidents lie inside the
history; the news follows a trading day's rhythm; texts come from several real sources."""

from __future__ import annotations

import csv
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from typer.testing import CliRunner

from finsentry import history
from finsentry.cli import app


def generate(out: Path, seed: int = 7) -> dict[str, object]:
    options = ["--days", "3", "--companies", "12", "--per-day", "1500", "--seed", str(seed), "--json"]
    result = CliRunner().invoke(app, ["backtest", "generate", "--out", str(out), *options])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def read(path: Path) -> list[dict[str, Any]]:
    # Not splitlines(): tweets may hold U+2028, which JSON leaves unescaped inside a string.
    with path.open(encoding="utf-8") as handle:
        return [json.loads(line) for line in handle]


def test_the_same_seed_writes_the_same_files(tmp_path: Path) -> None:
    generate(tmp_path / "a")
    generate(tmp_path / "b")
    generate(tmp_path / "c", seed=8)
    for name in ("history.jsonl", "incidents.csv"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    assert (tmp_path / "a" / "history.jsonl").read_bytes() != (tmp_path / "c" / "history.jsonl").read_bytes()


def test_events_are_scored_sorted_and_incidents_inside_the_span(tmp_path: Path) -> None:
    summary = generate(tmp_path)
    rows = read(tmp_path / "history.jsonl")
    assert len(rows) == summary["events"]
    times = [history.from_iso(row["published_at"]) for row in rows]
    assert times == sorted(times)
    first = rows[0]
    assert first["sentiment"]["label"] in history.SENTIMENTS
    assert first["entities"][0]["id"].startswith("co-") and first["entities"][0]["name"]
    assert {"id", "text", "source", "topics", "model_version"} <= set(first)
    incidents = history.read_incidents(tmp_path / "incidents.csv")
    assert {i.kind for i in incidents} == {"burst", "selloff", "drift"}
    assert all(times[0] + 86_400 <= i.start < i.end <= times[-1] + 60 for i in incidents)
    with (tmp_path / "incidents.csv").open() as handle:
        assert next(csv.reader(handle)) == ["scope_key", "start", "end", "kind"]


def test_a_burst_is_dozens_of_negative_items_about_one_company(tmp_path: Path) -> None:
    generate(tmp_path)
    [burst] = [i for i in history.read_incidents(tmp_path / "incidents.csv") if i.kind == "burst"]
    company = burst.scope_key.removeprefix("entity:")
    rows = read(tmp_path / "history.jsonl")
    inside = [
        r
        for r in rows
        if r["entities"][0]["id"] == company
        and burst.start <= history.from_iso(r["published_at"]) <= burst.end + 1
    ]
    assert sum(r["sentiment"]["label"] == "negative" for r in inside) >= 24


def test_nights_and_weekends_are_quieter_than_market_hours() -> None:
    events, _, _ = history.generate(days=14, companies=50, seed=3, events_per_day=5_000)
    moments = [datetime.fromtimestamp(t, UTC).astimezone(history.NEW_YORK) for t in events.time]
    weekday = [m for m in moments if m.weekday() < 5]
    night = sum(1 <= m.hour < 5 for m in weekday)
    market = sum(m.hour in (10, 14, 15) or (m.hour == 9 and m.minute >= 30) for m in weekday)
    assert market > 5 * night
    per_day = np.bincount([m.weekday() for m in moments], minlength=7) / 2  # two of each weekday
    assert per_day[5:].max() < 0.3 * per_day[:5].min()


def test_texts_come_from_several_real_sources(tmp_path: Path) -> None:
    summary = generate(tmp_path)
    assert len(summary["sources"]) >= 2
    texts = history.load_texts()
    rows = read(tmp_path / "history.jsonl")
    negative = {r["text"] for r in rows if r["sentiment"]["label"] == "negative"}
    assert negative <= set(texts.text["negative"])
    assert len({r["text"] for r in rows}) > 100  # not one template
