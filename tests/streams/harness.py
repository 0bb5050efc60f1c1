"""Running real worker processes against the test Kafka, and reading what they wrote."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kafka import KafkaConsumer, KafkaProducer

from finsentry.services.process import terminate
from foundation.kafka_admin import ensure_topics


@dataclass
class StreamEnv:
    """Topic names unique to one test, so tests share a broker without seeing each other's data."""

    bootstrap: str
    redis_url: str
    model_dir: Path
    home: Path
    prefix: str = field(default_factory=lambda: uuid.uuid4().hex[:8])
    # A secured stack: more FINSENTRY_* settings (SASL, TLS) for the worker, and the matching
    # kafka-python options (foundation.connections) for the test's own clients.
    settings_env: dict[str, str] = field(default_factory=dict)
    kafka_options: dict[str, Any] = field(default_factory=dict, repr=False)

    def topic(self, name: str) -> str:
        return f"{self.prefix}.{name}"

    @property
    def env(self) -> dict[str, str]:
        return {
            "FINSENTRY_KAFKA_BOOTSTRAP": self.bootstrap,
            "FINSENTRY_REDIS_URL": self.redis_url,
            "FINSENTRY_REDIS_PREFIX": self.prefix,
            "FINSENTRY_MODEL_DIR": str(self.model_dir),
            "FINSENTRY_HOME": str(self.home),
            "FINSENTRY_TOPIC_NEWS": self.topic("news.raw"),
            "FINSENTRY_TOPIC_COMMENTS": self.topic("comments.raw"),
            "FINSENTRY_TOPIC_SCORED": self.topic("events.scored"),
            "FINSENTRY_TOPIC_DLQ": self.topic("events.dlq"),
            "FINSENTRY_TOPIC_LABELS": self.topic("labels"),
            "FINSENTRY_TOPIC_MODELS": self.topic("models.updated"),
            "FINSENTRY_CONSUMER_GROUP": f"finsentry-{self.prefix}",
            "FINSENTRY_LOG_JSON": "true",
            "FINSENTRY_LOG_LEVEL": "DEBUG",  # per-batch lines show which worker did what
            "FINSENTRY_THREADS": "1",
            **self.settings_env,
        }

    def create_topics(self, partitions: int = 4) -> None:
        names = ["news.raw", "comments.raw", "events.scored", "events.dlq"]
        ensure_topics(self.bootstrap, [self.topic(n) for n in names], partitions, options=self.kafka_options)


class WorkerProcess:
    def __init__(self, stream_env: StreamEnv, name: str, command: str = "worker", **settings: str):
        self.log_path = stream_env.home / f"{name}.log"
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "finsentry", command],
                env={
                    **os.environ,
                    **stream_env.env,
                    **{f"FINSENTRY_{k.upper()}": v for k, v in settings.items()},
                },
                stdout=out,
                stderr=subprocess.STDOUT,
            )

    def log_events(self) -> list[dict[str, Any]]:
        events = []
        for line in self.log_path.read_text(errors="replace").splitlines():
            start = line.find("{")
            if start >= 0:
                try:
                    events.append(json.loads(line[start:]))
                except json.JSONDecodeError:
                    continue
        return events

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait()

    def stop(self, timeout: float = 60) -> int:
        return terminate(self.process, timeout)


def producer(bootstrap: str, **options: Any) -> KafkaProducer:
    return KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5, **options)


class TopicReader:
    """Reads a topic from the beginning and keeps every record, for counting."""

    def __init__(self, bootstrap: str, topic: str, **options: Any):
        self.consumer = KafkaConsumer(
            topic,
            bootstrap_servers=bootstrap,
            auto_offset_reset="earliest",
            enable_auto_commit=False,
            group_id=None,
            consumer_timeout_ms=500,
            **options,
        )
        self.records: list[Any] = []

    def poll(self) -> int:
        for batch in self.consumer.poll(timeout_ms=500, max_records=5000).values():
            self.records.extend(batch)
        return len(self.records)

    def values(self) -> list[dict[str, Any]]:
        return [json.loads(r.value) for r in self.records]

    def close(self) -> None:
        self.consumer.close()


def wait_until(
    condition: Callable[[], bool], timeout: float, what: str, poll: Callable[[], Any] = lambda: None
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        poll()
        if condition():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")


class SteadySender(threading.Thread):
    """Sends `make(i)` keyed by id, 200 at a time with a pause: load that lasts. It sends at least
    `at_least` events and goes on until `stop()`, so that a test can keep the load up until what it
    waits for (a model swap) has happened, however slow the machine is that day."""

    def __init__(
        self, bootstrap: str, topic: str, make: Callable[[int], dict[str, Any]], at_least: int, **options: Any
    ):
        super().__init__(daemon=True)
        self.bootstrap, self.topic, self.make, self.at_least = bootstrap, topic, make, at_least
        self.options = options  # kafka-python's security options, on a secured stack
        self.sent: list[dict[str, Any]] = []
        self._halt = threading.Event()

    def run(self) -> None:
        out = producer(self.bootstrap, **self.options)
        while len(self.sent) < self.at_least or not self._halt.is_set():
            for _ in range(200):
                event = self.make(len(self.sent))
                out.send(self.topic, key=event["id"].encode(), value=json.dumps(event).encode())
                self.sent.append(event)
            out.flush()
            time.sleep(0.2)
        out.close()

    def stop(self) -> None:
        self._halt.set()
        if self.ident is not None:  # started
            self.join()


def serves(reader: TopicReader, version: str, more: int = 200) -> Callable[[], bool]:
    """A condition: `more` events have been scored by `version` (the swap is done and under load)."""
    return lambda: sum(json.loads(r.value)["model_version"] == version for r in reader.records) >= more


def assert_switched_once(records: list[Any], sent: list[str], old: str, new: str) -> None:
    """Every event scored exactly once; both models served; no partition goes back to the old one."""
    ids = Counter(json.loads(r.value)["id"] for r in records)
    assert set(ids) == set(sent) and sum(ids.values()) == len(sent), "none lost, none repeated"
    by_partition: dict[int, list[str]] = {}
    for record in records:
        by_partition.setdefault(record.partition, []).append(json.loads(record.value)["model_version"])
    assert {v for vs in by_partition.values() for v in vs} == {old, new}
    for versions in by_partition.values():
        if new in versions:
            assert old not in versions[versions.index(new) :], "no event goes back to the old model"
