"""Alerts end to end on the real stack: Kafka -> worker -> Redis windows -> rules -> SQL outbox ->
dispatcher -> a Slack-like receiver. The rule counts events, so the tiny random model cannot sway it."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from alerts.silences import add_silence
from alerts.store import AlertRow
from finsentry.slack_standin import SlackStandIn
from foundation.db import make_engine
from tests.streams.harness import StreamEnv, WorkerProcess, producer, wait_until

pytestmark = pytest.mark.stack

RULES = """\
rules:
  - name: burst
    scope: entity
    window: 10s
    condition: count >= 20
    severity: critical
    repeat_interval: 1h
    receivers: [slack]
"""


def test_fires_fast_once_resolves_and_respects_silences(
    kafka_bootstrap: str, redis_url: str, tiny_bundle: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = StreamEnv(kafka_bootstrap, redis_url, tiny_bundle, tmp_path)
    env.create_topics()
    (tmp_path / "rules.yaml").write_text(RULES)
    (tmp_path / "receivers.yaml").write_text("receivers:\n  slack: {type: slack, url: '${TEST_SLACK_URL}'}\n")
    database = f"sqlite:///{tmp_path / 'alerts.db'}"
    engine = make_engine(database)
    settings = {
        "rules": str(tmp_path / "rules.yaml"),
        "receivers": str(tmp_path / "receivers.yaml"),
        "database_url": database,
        "window_bucket_s": "1",
        "alert_tick_s": "0.5",
    }
    out = producer(kafka_bootstrap)

    def send(entity: str, n: int, start: int) -> float:
        for i in range(start, start + n):
            event = {
                "id": f"{entity}-{i}",
                "source": "wire",
                "text": f"News about {entity} #{i}",
                "published_at": datetime.now(UTC).isoformat(),
                "entities": [{"id": entity}],
            }
            out.send(env.topic("news.raw"), json.dumps(event).encode())
        out.flush()
        return time.monotonic()

    with SlackStandIn() as slack:
        monkeypatch.setenv("TEST_SLACK_URL", slack.url)
        worker = WorkerProcess(env, "worker", **settings)
        dispatcher = WorkerProcess(env, "dispatch", command="dispatch", **settings)
        try:
            wait_until(
                lambda: (send("warmup", 1, 0) and False) or _scored_any(worker), 120, "the worker to score"
            )
            add_silence(
                engine, {"scope_key": "entity:globex"}, __import__("datetime").timedelta(hours=1), "test"
            )

            send("acme", 19, 0)
            time.sleep(1.0)
            assert slack.accepted == [], "19 events do not make the rule true"
            made_true_at = send("acme", 1, 19)
            wait_until(lambda: len(slack.accepted) >= 1, 10, "the firing message")
            assert slack.accepted_at[0] - made_true_at <= 2.0, (
                "fires within 2 s of the event that makes it true"
            )
            assert "burst firing for acme" in slack.accepted[0]["text"]

            send("acme", 10, 20)  # still true: no repeat before repeat_interval
            send("globex", 30, 0)  # silenced
            time.sleep(3)
            assert [m["text"] for m in slack.accepted] == ["burst firing for acme"]

            wait_until(lambda: len(slack.accepted) >= 2, 40, "the resolved notice after the window clears")
            assert "burst resolved for acme" in slack.accepted[1]["text"]
        finally:
            dispatcher.stop()
            worker.stop()
            out.close()

    with Session(engine) as session:
        states = {a.scope_key: a.state for a in session.scalars(select(AlertRow))}
    assert states["entity:acme"] == "resolved"
    assert states["entity:globex"] in ("firing", "resolved"), "the silenced alert still changed state"
    assert not any("globex" in m["text"] for m in slack.accepted), "the silence held it back"


def _scored_any(worker: WorkerProcess) -> bool:
    return any(e.get("event") == "batch" and e.get("scored") for e in worker.log_events())
