"""Personal data in the stream reaches no store and no screen: a stack run fed texts full of it.

The worker scores the original texts; the review queue (SQL), the alert evidence (Redis, SQL) and the
Slack messages carry them masked, and no log line holds one.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
import redis
from sqlalchemy import Engine, MetaData, select, text
from sqlalchemy.exc import OperationalError

from finsentry.slack_standin import SlackStandIn
from foundation.db import make_engine
from tests.foundation.test_masking import generated_texts
from tests.streams.harness import StreamEnv, WorkerProcess, producer, wait_until

pytestmark = pytest.mark.stack

RULES = """\
rules:
  - name: burst
    scope: entity
    window: 1h
    condition: count >= 20
    repeat_interval: 1h
    receivers: [slack]
"""


def test_no_personal_data_in_sql_redis_slack_or_logs(
    kafka_bootstrap: str, redis_url: str, tiny_bundle: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = StreamEnv(kafka_bootstrap, redis_url, tiny_bundle, tmp_path)
    env.create_topics()
    (tmp_path / "rules.yaml").write_text(RULES)
    (tmp_path / "receivers.yaml").write_text("receivers:\n  slack: {type: slack, url: '${TEST_SLACK_URL}'}\n")
    database = f"sqlite:///{tmp_path / 'finsentry.db'}"
    settings = {
        "rules": str(tmp_path / "rules.yaml"),
        "receivers": str(tmp_path / "receivers.yaml"),
        "database_url": database,
        "review_margin": "1",  # every prediction is offered for review...
        "review_rate": "1",  # ...and queued: every text reaches SQL
        "alert_tick_s": "0.5",
    }
    texts = generated_texts(300, seed=11)
    personal = {value for _, real, _ in texts for _, value in real}
    out = producer(kafka_bootstrap)
    now = datetime.now(UTC).isoformat()
    for i, (body, _, _) in enumerate(texts):
        event = {"id": f"pii-{i}", "source": "forum", "text": body, "published_at": now}
        out.send(env.topic("comments.raw"), json.dumps({**event, "entities": [{"id": "acme"}]}).encode())
    out.flush()
    out.close()

    engine = make_engine(database)
    with SlackStandIn() as slack:
        monkeypatch.setenv("TEST_SLACK_URL", slack.url)
        worker = WorkerProcess(env, "worker", **settings)
        dispatcher = WorkerProcess(env, "dispatch", command="dispatch", **settings)
        try:
            wait_until(lambda: len(slack.accepted) >= 1, 180, "the alert's Slack message")
            wait_until(
                lambda: _count(engine, "review_items") == len(texts), 60, "every text in the review queue"
            )
        finally:
            dispatcher.stop()
            worker.stop()

    tables = MetaData()
    tables.reflect(engine)
    with engine.connect() as connection:
        sql = json.dumps(
            [
                [list(map(str, row)) for row in connection.execute(select(table))]
                for table in tables.tables.values()
            ],
            ensure_ascii=False,
        )
    store = redis.Redis.from_url(redis_url)
    evidence = [
        item.decode() for key in store.keys(f"{env.prefix}:ev:*") for item in store.lrange(key, 0, -1)
    ]
    slack_text = json.dumps(slack.accepted, ensure_ascii=False)
    logs = "".join(path.read_text(errors="replace") for path in tmp_path.glob("*.log"))

    quoted = [b for m in slack.accepted for b in m["blocks"] if b["type"] == "context"]
    assert evidence and quoted, "evidence was kept in Redis and quoted in Slack"
    assert "***" in sql and any("***" in item for item in evidence), "the texts are there, masked"
    for where, content in (
        ("SQL", sql),
        ("Redis evidence", "".join(evidence)),
        ("Slack", slack_text),
        ("logs", logs),
    ):
        leaked = sorted(value for value in personal if value in content)
        assert not leaked, f"{len(leaked)} personal items unmasked in {where}: {leaked[:5]}"
    print(f"{len(texts)} texts with {len(personal)} personal items: none in SQL, Redis, Slack or the logs")


def _count(engine: Engine, table: str) -> int:
    with engine.connect() as connection:
        try:
            query = text(f"SELECT count(*) FROM {table}")  # noqa: S608 - the test's own table names
            return int(connection.execute(query).scalar_one())
        except OperationalError:  # the worker has not made the table yet
            return 0
