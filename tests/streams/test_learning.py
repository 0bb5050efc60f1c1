"""The worker's part in continuous learning, on the real stack: labels from Kafka, the review queue,
and a promotion announced on Kafka that a worker under load follows without losing an event."""

from __future__ import annotations

import json
import time
from collections import Counter
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from finsentry.services.process import free_port
from foundation.db import open_database
from labels.tables import ReviewItemRow, SampleRow
from tests.streams.harness import (
    SteadySender,
    StreamEnv,
    TopicReader,
    WorkerProcess,
    assert_switched_once,
    producer,
    serves,
    wait_until,
)
from tests.streams.test_worker import assigned_partitions, valid_event
from tests.tiny_model import build_tiny_bundle
from training.announce import KafkaAnnouncer
from training.registry import Registry

pytestmark = pytest.mark.stack


@pytest.fixture()
def stream_env(kafka_bootstrap: str, redis_url: str, tiny_bundle: Path, tmp_path: Path) -> StreamEnv:
    env = StreamEnv(kafka_bootstrap, redis_url, tiny_bundle, tmp_path)
    env.create_topics(partitions=2)
    return env


def test_worker_stores_labels_from_kafka_and_dead_letters_bad_ones(stream_env: StreamEnv) -> None:
    database = open_database(f"sqlite:///{stream_env.home / 'finsentry.db'}")
    dlq = TopicReader(stream_env.bootstrap, stream_env.topic("events.dlq"))
    metrics_port = free_port()
    worker = WorkerProcess(
        stream_env, "worker", review_rate="1.0", review_margin="1.0", metrics_port=str(metrics_port)
    )
    out = producer(stream_env.bootstrap)
    good = [
        {"schema_version": 1, "text": f"Acme result {i}", "sentiment": "negative", "labeled_by": "ana"}
        for i in range(40)
    ]
    bad = [
        b"{not json",
        json.dumps({"schema_version": 1, "text": "no label at all", "labeled_by": "ana"}).encode(),
        json.dumps({"schema_version": 1, "text": "x", "sentiment": "bullish", "labeled_by": "ana"}).encode(),
        json.dumps(
            {
                "schema_version": 1,
                "text": "x",
                "topic": "Macro",
                "labeled_by": "ana",
                "labeled_at": "2026-12-31T23:59:60Z",
            }
        ).encode(),
    ]
    try:
        wait_until(lambda: bool(assigned_partitions(worker)), 120, "the worker to join")
        for message in [*good, {**good[0], "text": "ACME  result 0"}]:  # the last: the first, renormalised
            out.send(stream_env.topic("labels"), json.dumps(message).encode())
        for raw in bad:
            out.send(stream_env.topic("labels"), raw)
        for i in range(30):
            out.send(stream_env.topic("news.raw"), json.dumps(valid_event(i)).encode())
        out.flush()

        def count(query: object) -> int:
            with Session(database) as session:
                return session.scalar(query) or 0  # type: ignore[arg-type]

        wait_until(lambda: count(select(func.count()).select_from(SampleRow)) >= 40, 60, "labels stored")
        wait_until(lambda: len(dlq.records) >= len(bad), 60, "bad labels dead-lettered", dlq.poll)
        wait_until(lambda: count(select(func.count()).select_from(ReviewItemRow)) >= 30, 60, "review items")
        scrape = httpx.get(f"http://127.0.0.1:{metrics_port}/metrics").text
    finally:
        out.close()
        worker.stop()
        dlq.close()
    assert count(select(func.count()).select_from(SampleRow)) == 40, "the same text twice is one sample"
    codes = Counter(letter["error_code"] for letter in dlq.values())
    assert codes == {"invalid_json": 1, "missing_field": 1, "invalid_value": 2}, codes
    assert all(letter["topic"] == stream_env.topic("labels") for letter in dlq.values())
    assert "finsentry_events_scored_total 30.0" in scrape
    assert f'finsentry_events_in_total{{topic="{stream_env.topic("news.raw")}"}} 30.0' in scrape
    assert 'finsentry_dead_letters_total{code="label"} 4.0' in scrape
    assert "finsentry_inference_seconds_count" in scrape and "finsentry_batch_size_bucket" in scrape
    assert f'finsentry_consumer_lag{{partition="0",topic="{stream_env.topic("news.raw")}"}} 0.0' in scrape


def test_worker_under_load_follows_a_promotion_announced_on_kafka(
    stream_env: StreamEnv, tmp_path: Path
) -> None:
    database = open_database(f"sqlite:///{stream_env.home / 'finsentry.db'}")
    announcer = KafkaAnnouncer(stream_env.bootstrap, stream_env.topic("models.updated"))
    registry = Registry(database, tmp_path / "registry", tmp_path / "current", announce=announcer)
    registry.register(build_tiny_bundle(tmp_path / "v1", seed=1, version="tiny-1"), "champion")
    stream_env.model_dir = registry.model_dir
    scored = TopicReader(stream_env.bootstrap, stream_env.topic("events.scored"))
    # No folder watch: the switch can only come from the announcement.
    worker = WorkerProcess(stream_env, "worker", model_watch_s="0")
    sender = SteadySender(stream_env.bootstrap, stream_env.topic("news.raw"), valid_event, 3_000)
    try:
        wait_until(lambda: bool(assigned_partitions(worker)), 120, "the worker to join")
        sender.start()
        wait_until(lambda: len(scored.records) >= 800, 120, "800 events on the first model", scored.poll)
        registry.register(build_tiny_bundle(tmp_path / "v2", seed=2, version="tiny-2"), "champion")
        wait_until(serves(scored, "tiny-2"), 180, "the new model to serve under load", scored.poll)
        sender.stop()
        wait_until(lambda: len(scored.records) >= len(sender.sent), 180, "every event scored", scored.poll)
        time.sleep(2)
        scored.poll()
    finally:
        sender.stop()
        worker.stop()
        scored.close()

    assert_switched_once(scored.records, [e["id"] for e in sender.sent], "tiny-1", "tiny-2")
    events = worker.log_events()
    announced = [e for e in events if e.get("event") == "model announcement received"]
    assert [e.get("version") for e in announced] == ["tiny-2"]
