"""Rules hot reload (a bad file keeps the rules in force) and the Kafka alerts receiver."""

from __future__ import annotations

import json
import os
import uuid
from pathlib import Path

import pytest
import redis
from kafka import KafkaConsumer

from alerts.monitor import AlertMonitor
from alerts.notifiers import KafkaNotifier
from alerts.rules import load_rules
from alerts.windows import WindowStore
from foundation.db import make_engine
from schemas import Contract

RULE = "rules:\n  - {{name: {name}, scope: entity, window: 1m, condition: 'count >= 1', receivers: [k]}}\n"


def touch(path: Path, text: str, mtime: int) -> None:
    path.write_text(text)
    os.utime(path, (mtime, mtime))


def test_rules_hot_reload_keeps_the_old_rules_on_a_bad_file(redis_url: str, tmp_path: Path) -> None:
    rules = tmp_path / "rules.yaml"
    touch(rules, RULE.format(name="first"), 1_000)
    store = WindowStore(redis.Redis.from_url(redis_url), prefix=uuid.uuid4().hex[:8])
    monitor = AlertMonitor(store, load_rules(rules), make_engine(f"sqlite:///{tmp_path / 'a.db'}"), rules)
    assert not monitor.reload_rules_if_changed(), "unchanged file, nothing to do"

    touch(rules, RULE.format(name="bad").replace("count >= 1", "cuont >= 1"), 2_000)
    assert not monitor.reload_rules_if_changed()
    assert [r.name for r in monitor.evaluator.rules] == ["first"]

    touch(rules, RULE.format(name="second"), 3_000)
    assert monitor.reload_rules_if_changed()
    assert [r.name for r in monitor.evaluator.rules] == ["second"]


@pytest.mark.stack
def test_kafka_receiver_publishes_alerts_under_the_contract(kafka_bootstrap: str) -> None:
    topic = f"alerts-{uuid.uuid4().hex[:8]}"
    alert = {
        "schema_version": 1,
        "alert_id": "a-1",
        "rule": "surge",
        "scope": "entity",
        "scope_key": "entity:acme",
        "status": "firing",
        "severity": "critical",
        "labels": {},
        "starts_at": "2026-11-29T09:00:00Z",
        "ends_at": None,
        "window": {"duration_s": 900, "count": 30, "negative": 24, "neutral": 3, "positive": 3},
        "evidence": [],
    }
    assert KafkaNotifier("kafka", kafka_bootstrap, topic).send(1, {"kind": "firing", "alerts": [alert]}).ok
    consumer = KafkaConsumer(
        topic,
        bootstrap_servers=kafka_bootstrap,
        auto_offset_reset="earliest",
        group_id=None,
        consumer_timeout_ms=10_000,
    )
    [record] = list(consumer)
    consumer.close()
    assert record.key == b"a-1"
    Contract.of("alert").validate(json.loads(record.value))
