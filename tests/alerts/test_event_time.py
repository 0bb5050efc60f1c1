"""Rules on event time: the same events give the same alerts however they are cut into batches."""

from __future__ import annotations

import random
import uuid
from pathlib import Path

import redis

from alerts.replay import Change, Replay
from alerts.rules import Rule
from alerts.windows import WindowEvent, WindowStore
from foundation.db import open_database

START = 1_767_571_200.0  # 2026-01-05 00:00 UTC
RULES = [
    Rule.model_validate(
        {
            "name": "burst",
            "scope": "entity",
            "window": "5m",
            "condition": "count >= 12",
            "for": "2m",
            "receivers": ["r"],
        }
    ),
    Rule.model_validate(
        {
            "name": "anomaly",
            "scope": "entity",
            "window": "5m",
            "baseline": "1h",
            "condition": "negative_zscore >= 2 and count >= 4",
            "receivers": ["r"],
        }
    ),
]


def events(seed: int = 5) -> list[WindowEvent]:
    """Two hours of a few companies' news, with a denser half hour for one of them."""
    rng = random.Random(seed)
    times = [(rng.uniform(0, 7200), f"co-{rng.randrange(4)}") for _ in range(600)]
    times += [(rng.uniform(3600, 5400), "co-1") for _ in range(200)]
    times.sort()
    return [
        WindowEvent(
            f"e{i}",
            START + at,
            sentiment := rng.choice(["negative", "neutral", "positive"]),
            {"negative": -1.0, "neutral": 0.0, "positive": 1.0}[sentiment],
            (f"entity:{company}", "global:all"),
        )
        for i, (at, company) in enumerate(times)
    ]


def replay_in_batches(redis_url: str, workdir: Path, size: int) -> list[Change]:
    stream = events()
    engine = open_database(f"sqlite:///{workdir / f'batches-{size}.db'}")
    store = WindowStore(redis.Redis.from_url(redis_url), prefix=f"event-time-{uuid.uuid4().hex}")
    with Replay(store, RULES, engine, START) as replay:
        for i in range(0, len(stream), size):
            replay.record(stream[i : i + size])
        replay.advance(START + 3 * 3600)
        return replay.changes


def test_the_alerts_do_not_depend_on_how_the_events_are_batched(redis_url: str, tmp_path: Path) -> None:
    one_by_one = replay_in_batches(redis_url, tmp_path, 1)
    assert {c.rule for c in one_by_one if c.after == "firing"} == {"burst", "anomaly"}
    assert all(c.at % 60 == 0 for c in one_by_one), "evaluated on the ticks, every minute"
    for size in (7, 100, 10_000):
        assert replay_in_batches(redis_url, tmp_path, size) == one_by_one, f"batches of {size}"
