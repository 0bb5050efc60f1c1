"""Event-time replay: the worker's record, check and tick on the events' own clock, nothing sleeps."""

from __future__ import annotations

import uuid
from pathlib import Path

import redis
from sqlalchemy import Engine

from alerts.replay import Notice, Replay
from alerts.rules import Rule
from alerts.windows import WindowEvent, WindowStore

START = 1_767_571_200.0  # 2026-01-05 00:00 UTC
RULE = Rule.model_validate(
    {
        "name": "burst",
        "scope": "entity",
        "window": "1m",
        "condition": "count >= 3",
        "for": "1m",
        "repeat_interval": "10m",
        "receivers": ["r"],
    }
)


def events(at: float, n: int, entity: str = "acme") -> list[WindowEvent]:
    keys = (f"entity:{entity}", "global:all")
    return [WindowEvent(f"{entity}-{at}-{i}", START + at, "negative", -1.0, keys) for i in range(n)]


def test_replay_fires_renotifies_and_resolves_on_event_time(redis_url: str, engine: Engine) -> None:
    client = redis.Redis.from_url(redis_url)
    store = WindowStore(client, prefix=f"replay-{uuid.uuid4().hex}")
    with Replay(store, [RULE], engine, START, evaluation_interval_s=30) as replay:
        replay.silence({"rule": "burst"}, START + 600, START + 700)
        for minute in range(25):
            replay.record(events(minute * 60, 3))
        assert replay.alert("burst", "entity:acme").state == "firing"
        replay.advance(START + 30 * 60)
        state = replay.alert("burst", "entity:acme")
        assert state.state == "resolved"
        assert state.values["count"] == 0
        assert replay.alert("burst", "entity:other").state == "inactive"
        assert replay.now == START + 30 * 60

        assert [(c.at - START, c.before, c.after) for c in replay.changes if c.after != c.before] == [
            (0, "inactive", "pending"),
            (60, "pending", "firing"),
            (25 * 60, "firing", "resolved"),
        ]
        # Fired at 1m; the reminder due at 11m fell in the silence (10m to 11m40s): held back by the
        # ticks at 11m and 11m30s, it went out with the tick at 12m.
        assert [c.at - START for c in replay.changes if c.silenced] == [660, 690]
        assert replay.notices() == [
            Notice(START + at, "r", kind, "burst", "entity:acme")
            for at, kind in [(60, "firing"), (720, "repeat"), (1320, "repeat"), (1500, "resolved")]
        ]
    assert not list(client.scan_iter(match=f"{store.prefix}:*")), "the replay deletes its keys"


def test_a_batch_past_the_lateness_is_counted_late_and_the_clock_stays(
    redis_url: str, tmp_path: Path
) -> None:
    from foundation.db import open_database

    engine = open_database(f"sqlite:///{tmp_path / 'replay.db'}")
    store = WindowStore(redis.Redis.from_url(redis_url), prefix=f"replay-{uuid.uuid4().hex}", lateness_s=60)
    with Replay(store, [RULE], engine, START) as replay:
        replay.record(events(600, 1))
        assert replay.now == START + 540, "the ticks before the event's time have run"
        assert replay.record(events(60, 1)).late == 1
        assert replay.now == START + 540, "the clock never goes back"
