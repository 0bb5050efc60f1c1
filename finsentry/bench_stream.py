"""`finsentry bench stream`: the backbone's throughput and latency with the classifier in place.

Runs on the embedded stack (or the running services the settings name) with topics of its own,
a real worker process and the served model: N events produced as fast as Kafka takes them, then
timed until every one is scored. Latency is produce time to the scored record's broker time.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from kafka import KafkaConsumer, KafkaProducer

from finsentry.settings import Settings
from finsentry.stack import LocalStack
from inference.bench import percentile


@dataclass
class StreamBench:
    events: int
    seconds: float
    events_per_s: float
    p50_ms: float
    p99_ms: float
    duplicates: int
    max_batch: int


def run_stream_bench(
    settings: Settings, texts: Sequence[str], events: int, progress: Callable[[int], None] | None = None
) -> StreamBench:
    prefix = f"bench-{uuid.uuid4().hex[:6]}"
    settings = settings.model_copy(
        update={
            "topic_news": f"{prefix}.news.raw",
            "topic_comments": f"{prefix}.comments.raw",
            "topic_scored": f"{prefix}.events.scored",
            "topic_dlq": f"{prefix}.events.dlq",
            "consumer_group": f"{prefix}-worker",
        }
    )
    stack = LocalStack(settings, worker_log=settings.home / "bench" / f"{prefix}.log")
    try:
        stack.start()
        consumer = KafkaConsumer(
            settings.topic_scored,
            bootstrap_servers=settings.kafka_bootstrap,
            auto_offset_reset="earliest",
            enable_auto_commit=False,
            group_id=None,
        )
        _wait_for_worker(settings, consumer)
        producer = KafkaProducer(bootstrap_servers=settings.kafka_bootstrap, acks="all", linger_ms=5)
        sent_at: dict[str, float] = {}
        started = time.time()
        for i in range(events):
            event_id = f"{prefix}-{i}"
            payload = {
                "id": event_id,
                "source": "bench",
                "published_at": "2026-11-29T09:30:00Z",
                "text": texts[i % len(texts)],
            }
            producer.send(settings.topic_news, key=event_id.encode(), value=json.dumps(payload).encode())
            sent_at[event_id] = time.time()
        producer.flush()
        latencies: dict[str, float] = {}
        records = 0
        while len(latencies) < events and time.time() - started < 600:
            for batch in consumer.poll(timeout_ms=500).values():
                for record in batch:
                    event_id = json.loads(record.value)["id"]
                    if event_id in sent_at:
                        records += 1
                        latencies.setdefault(event_id, record.timestamp / 1000 - sent_at[event_id])
            if progress:
                progress(len(latencies))
        seconds = max(r + sent_at[i] for i, r in latencies.items()) - started
        consumer.close()
        producer.close()
    finally:
        stack.stop()
    values = [v * 1000 for v in latencies.values()]
    return StreamBench(
        events=len(latencies),
        seconds=round(seconds, 2),
        events_per_s=round(len(latencies) / seconds, 1),
        p50_ms=round(percentile(values, 0.5), 1),
        p99_ms=round(percentile(values, 0.99), 1),
        duplicates=records - len(latencies),
        max_batch=settings.max_batch,
    )


def _wait_for_worker(settings: Settings, consumer: KafkaConsumer, timeout: float = 120) -> None:
    """Sends a probe until it comes back scored, so start-up and group join stay out of the timing."""
    producer = KafkaProducer(bootstrap_servers=settings.kafka_bootstrap)
    probe = {"id": "probe", "source": "bench", "published_at": "2026-11-29T09:30:00Z", "text": "warm-up"}
    producer.send(settings.topic_news, value=json.dumps(probe).encode())
    producer.flush()
    producer.close()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for batch in consumer.poll(timeout_ms=500).values():
            if any(json.loads(r.value)["id"] == "probe" for r in batch):
                return
    raise TimeoutError(f"the worker did not score a probe within {timeout:.0f}s")
