"""Hourly roll-ups on SQLite and PostgreSQL: counted once per event id, read by key and hour, pruned."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Engine

from trends import Item, Rollups
from trends.rollups import hour_of


@dataclass(frozen=True)
class Event:
    id: str
    event_time: float
    sentiment: str
    score: float
    keys: tuple[str, ...]


def events(start: int, n: int, at: float) -> list[Event]:
    sentiments = ("negative", "neutral", "positive")
    return [
        Event(f"e{i}", at + i, sentiments[i % 3], (-0.5, 0.0, 0.5)[i % 3], ("global:all", f"entity:c{i % 2}"))
        for i in range(start, start + n)
    ]


def test_a_replayed_batch_counts_nothing_twice(sql_engine: Engine) -> None:
    rollups = Rollups(sql_engine)
    at = datetime(2026, 11, 29, 9, 10).timestamp()
    assert rollups.record(events(0, 30, at)) == 30
    assert rollups.record(events(20, 30, at)) == 20, "ten of these were counted already"
    assert rollups.record(events(0, 50, at)) == 0, "a whole replay"
    [hour] = rollups.series("global:all", hour_of(at))
    assert (hour.count, hour.negative, hour.neutral, hour.positive) == (50, 17, 17, 16)
    assert abs(hour.score_sum - (16 - 17) * 0.5) < 1e-9
    assert hour.start == hour_of(at) and hour.negative_ratio == 17 / 50
    assert rollups.series("entity:c0", hour_of(at))[0].count == 25


def test_series_by_hour_and_totals_per_key(sql_engine: Engine) -> None:
    rollups = Rollups(sql_engine)
    start = datetime(2026, 11, 29, 0, 30).timestamp()
    for h in range(5):
        rollups.record(events(h * 10, 10, start + h * 3600))
    first = hour_of(start)
    series = rollups.series("global:all", first + timedelta(hours=1), first + timedelta(hours=4))
    assert [s.start for s in series] == [first + timedelta(hours=h) for h in (1, 2, 3)]
    assert all(s.count == 10 for s in series)
    totals = rollups.totals(["entity:c0", "entity:c1", "entity:none"], first)
    assert {k: v.count for k, v in totals.items()} == {"entity:c0": 25, "entity:c1": 25}


def test_prune_keeps_the_retention(sql_engine: Engine) -> None:
    rollups = Rollups(sql_engine, retention_days=400, dedup_days=7)
    old, recent = datetime(2025, 1, 1).timestamp(), datetime(2026, 11, 29).timestamp()
    rollups.record(events(0, 3, old))
    rollups.record(events(3, 3, recent))
    hours, ids = rollups.prune(now=datetime(2026, 11, 30))
    assert hours == 3, "the 2025 hour of each of its three keys"
    assert ids == 0, "every id was counted just now, within the replay horizon"
    assert rollups.series("global:all", datetime(2024, 1, 1))[0].start == hour_of(recent)


def test_latest_items_per_key_newest_first_kept_once(sql_engine: Engine) -> None:
    rollups = Rollups(sql_engine, dedup_days=7)
    at = datetime(2026, 11, 29, 9).timestamp()
    batch = events(0, 6, at)
    items = {e.id: Item(f"text {e.id}", e.sentiment, "Earnings", "m1", "wire", None) for e in batch}
    rollups.record(batch, items)
    rollups.record(batch, items)  # a replay
    latest = rollups.latest("entity:c0", limit=10)
    assert [event_id for _, event_id, _ in latest] == ["e4", "e2", "e0"], (
        "c0's items, newest first, once each"
    )
    assert latest[0][2] == items["e4"]
    rollups.prune(now=datetime(2026, 12, 30))
    assert rollups.latest("entity:c0") == [], "gone with their ids after the replay horizon"


def test_minutes_for_the_last_hour(sql_engine: Engine) -> None:
    rollups = Rollups(sql_engine)
    at = datetime(2026, 11, 29, 9, 10).timestamp()
    rollups.record(events(0, 150, at))  # one event a second: 2.5 minutes
    minutes = rollups.minutes("global:all", datetime(2026, 11, 29, 9))
    assert [(m.start.minute, m.count) for m in minutes] == [(10, 60), (11, 60), (12, 30)]
    rollups.prune(now=datetime(2026, 12, 2))
    assert rollups.minutes("global:all", datetime(2026, 11, 29)) == [], "minutes are kept two days"
    assert rollups.series("global:all", datetime(2026, 11, 29))[0].count == 150, "hours stay"
