"""A history replayed through the real worker on Kafka gives the backtest's alerts at the same event times.

Both score the raw history with the same bundle, record it into the same windows code and evaluate the
same rules on event time (alerts.event_time): the worker as FINSENTRY_ALERT_CLOCK=event, fed by Kafka
in micro-batches of its own choosing; the backtest from the file, in batches of its own.
"""

from __future__ import annotations

import json
import random
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import redis
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from alerts.rules import load_rules
from alerts.store import NotificationRow
from alerts.windows import WindowStore
from finsentry.backtest import Options, run_backtest
from foundation.db import open_database
from inference import InferenceEngine
from tests.streams.harness import StreamEnv, TopicReader, WorkerProcess, producer, wait_until

START = 1_767_600_000.0  # 2026-01-05 08:00 UTC
SAMPLE = Path(__file__).parents[2] / "finsentry" / "sample" / "headlines.jsonl"
RULES = """\
rules:
  - name: company-burst
    scope: entity
    window: 10m
    condition: count >= 15
    for: 3m
    repeat_interval: 20m
    receivers: [default]
  - name: company-negative-zscore
    scope: entity
    window: 10m
    baseline: 2h
    condition: negative_zscore >= 3 and count >= 8
    receivers: [default]
  - name: topic-burst
    scope: topic
    window: 30m
    condition: count >= 120
    for: 5m
    receivers: [default]
"""


def history(seed: int = 3) -> list[dict[str, Any]]:
    """Six hours: 20 companies in the background, two bursts about one company each, a quiet hour."""
    rng = random.Random(seed)
    texts = [json.loads(line)["text"] for line in SAMPLE.read_text().splitlines()]
    times = [(START + rng.uniform(0, 6 * 3600), f"co-{rng.randrange(20):02d}") for _ in range(1_400)]
    times += [(START + 2 * 3600 + rng.uniform(0, 900), "co-03") for _ in range(90)]
    times += [(START + 3.5 * 3600 + rng.uniform(0, 480), "co-07") for _ in range(45)]
    times.sort()
    return [
        {
            "schema_version": 1,
            "id": f"replay-{i:05d}",
            "source": rng.choice(["wire", "forum"]),
            "published_at": datetime.fromtimestamp(at, UTC).isoformat(timespec="milliseconds"),
            "text": rng.choice(texts),
            "entities": [{"id": company, "name": company}],
        }
        for i, (at, company) in enumerate(times)
    ]


def notices(engine: Engine) -> list[tuple[float, str, str, str, int, int]]:
    """(event time, kind, rule, scope key, count, negative) of every alert in every notification."""
    with Session(engine) as session:
        rows = session.scalars(select(NotificationRow).order_by(NotificationRow.id))
        found = [
            (
                row.created_at.replace(tzinfo=UTC).timestamp(),
                row.kind,
                alert["rule"],
                alert["scope_key"],
                alert["window"]["count"],
                alert["window"]["negative"],
            )
            for row in rows
            for alert in row.payload["alerts"]
        ]
    return sorted(found)


def test_the_worker_on_event_time_fires_what_the_backtest_fires(
    kafka_bootstrap: str, redis_url: str, tiny_bundle: Path, tmp_path: Path
) -> None:
    rows = history()
    data, rules_file = tmp_path / "history.jsonl", tmp_path / "rules.yaml"
    data.write_text("".join(json.dumps(row) + "\n" for row in rows))
    rules_file.write_text(RULES)
    last = datetime.fromisoformat(rows[-1]["published_at"]).timestamp()

    backtest_sql = open_database(f"sqlite:///{tmp_path / 'backtest.db'}")
    store = WindowStore(redis.Redis.from_url(redis_url), prefix=f"backtest-{uuid.uuid4().hex}")
    model = InferenceEngine(tiny_bundle, backend="onnx-fp32", threads=1)
    episodes, summary = run_backtest(
        data, load_rules(rules_file), store, backtest_sql, Options(batch=97), model=model
    )
    assert summary.events == len(rows) and summary.late == 0
    expected = [n for n in notices(backtest_sql) if n[0] < last]
    fired = {(n[2], n[3]) for n in expected if n[1] == "firing"}
    assert ("company-burst", "entity:co-03") in fired and ("company-burst", "entity:co-07") in fired
    assert {n[1] for n in expected} >= {"firing", "resolved"}, expected

    env = StreamEnv(kafka_bootstrap, redis_url, tiny_bundle, tmp_path / "worker")
    env.create_topics(partitions=1)  # one partition: the worker reads the history in its order
    worker = WorkerProcess(
        env, "worker", alert_clock="event", alert_tick_s="60", rules=str(rules_file), backend="onnx-fp32"
    )
    scored = TopicReader(kafka_bootstrap, env.topic("events.scored"))
    try:
        out = producer(kafka_bootstrap)
        for row in rows:
            out.send(env.topic("news.raw"), value=json.dumps(row).encode())
        out.flush()
        wait_until(lambda: len(scored.records) >= len(rows), 180, "every event scored", scored.poll)
    finally:
        assert worker.stop() == 0
        scored.close()
    batches = [e for e in worker.log_events() if e.get("event") == "batch"]
    assert len(batches) > 1, "the worker took the history in several micro-batches"

    worker_sql = open_database(f"sqlite:///{env.home / 'finsentry.db'}")
    # The worker cannot run the ticks after its last event; the backtest runs them at the end.
    assert [n for n in notices(worker_sql) if n[0] < last] == expected
    assert sorted((e.fired_at, e.rule, e.scope_key) for e in episodes if e.fired_at < last) == [
        (n[0], n[2], n[3]) for n in expected if n[1] == "firing"
    ]
