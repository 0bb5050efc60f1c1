"""A worker rides out outages of Redis and PostgreSQL under steady load, without exiting or restarting.

The test runs its own Redis (append-only file, so a restart keeps the windows) and its own PostgreSQL,
so that pausing and stopping them touches no other test.
"""

from __future__ import annotations

import itertools
import json
import os
import shutil
import signal
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import redis

from alerts.windows import WindowStore
from finsentry.services.postgres import PostgresServer
from finsentry.services.process import free_port
from finsentry.services.redis import RedisServer
from tests.streams.harness import StreamEnv, TopicReader, WorkerProcess, producer, wait_until
from tests.streams.test_worker import valid_event

pytestmark = pytest.mark.stack

TOTAL = 9_000
RATE = 100  # events per second: the load lasts the whole test (90 s)
OUTAGE_S = 20


def paced_sender(bootstrap: str, topic: str, done: threading.Event) -> threading.Thread:
    def send() -> None:
        out = producer(bootstrap)
        started = time.monotonic()
        for i in range(TOTAL):
            out.send(topic, key=f"evt-{i}".encode(), value=json.dumps(valid_event(i)).encode())
            if i % 50 == 49:
                out.flush()
                time.sleep(max(0.0, started + (i + 1) / RATE - time.monotonic()))
        out.flush()
        out.close()
        done.set()

    return threading.Thread(target=send)


def readiness(port: int) -> tuple[int, dict[str, Any]]:
    """The worker's /readyz: (status, body), or (0, {}) before it serves."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=5) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as refused:
        return refused.code, json.loads(refused.read())
    except urllib.error.URLError:
        return 0, {}


def longest_gap(times: list[float], start: float, end: float) -> float:
    """The longest stretch between start and end (seconds) in which no event was scored."""
    inside = sorted(t for t in times if start <= t <= end)
    points = [start, *inside, end]
    return max(b - a for a, b in itertools.pairwise(points))


def test_worker_rides_out_redis_and_postgres_outages(
    kafka_bootstrap: str, tiny_bundle: Path, tmp_path: Path
) -> None:
    redis_server = RedisServer(tmp_path / "redis", persist=True)
    redis_server.start()
    postgres_dir = Path(tempfile.mkdtemp(prefix="finsentry-pg-outage-"))  # owned by `postgres` as root
    postgres = PostgresServer(postgres_dir)
    postgres.start()
    stream_env = StreamEnv(kafka_bootstrap, redis_server.url, tiny_bundle, tmp_path / "home")
    stream_env.create_topics(partitions=4)
    metrics_port = free_port()
    scored = TopicReader(stream_env.bootstrap, stream_env.topic("events.scored"))
    sent = threading.Event()
    sender = paced_sender(stream_env.bootstrap, stream_env.topic("news.raw"), sent)
    # Every prediction goes to the review queue: each batch then writes to PostgreSQL too.
    worker = WorkerProcess(
        stream_env,
        "worker",
        database_url=postgres.url,
        review_margin="1",
        review_rate="1",
        metrics_port=str(metrics_port),
        log_level="INFO",
    )
    outages: dict[str, tuple[float, float]] = {}
    try:
        wait_until(lambda: readiness(metrics_port)[0] == 200, 120, "the worker ready", lambda: None)
        sender.start()
        wait_until(lambda: len(scored.records) >= 1_000, 120, "1,000 scored events", scored.poll)

        # Redis frozen for 20 s, then killed and started again on its append-only file.
        start = time.time()
        os.kill(redis_server.pid, signal.SIGSTOP)
        wait_until(
            lambda: readiness(metrics_port)[1].get("dependencies", {}).get("redis") is False,
            OUTAGE_S,
            "/readyz to report redis down",
            scored.poll,
        )
        time.sleep(max(0.0, start + OUTAGE_S - time.time()))
        os.kill(redis_server.pid, signal.SIGKILL)
        redis_server.start()
        outages["redis"] = (start, time.time())
        wait_until(lambda: readiness(metrics_port)[0] == 200, 60, "ready again after Redis", scored.poll)
        at_redis_back = len(scored.records)
        wait_until(
            lambda: len(scored.records) >= at_redis_back + 1_000, 60, "progress after Redis", scored.poll
        )

        # PostgreSQL stopped (fast shutdown) for 20 s, then started again on the same data.
        start = time.time()
        postgres.stop()
        time.sleep(OUTAGE_S)
        down = {"status": "unavailable", "dependencies": {"redis": True, "sql": False}}
        assert readiness(metrics_port) == (503, down)
        postgres.start()
        outages["sql"] = (start, time.time())

        wait_until(sent.is_set, 120, "the sender to finish")
        wait_until(
            lambda: len({r.key for r in scored.records}) >= TOTAL, 180, "every event scored", scored.poll
        )
        time.sleep(3)  # anything scored twice would arrive now
        scored.poll()
        assert worker.process.poll() is None, "the worker never exited"
        assert readiness(metrics_port)[0] == 200
        metrics_text = urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics").read().decode()
    finally:
        exit_code = worker.stop()
        scored.close()
        if sender.is_alive():
            sender.join()
        redis_server.stop()
        postgres.stop()
        shutil.rmtree(postgres_dir, ignore_errors=True)

    # Exactly once by id: the worker held each batch through the outages instead of replaying it.
    ids = Counter(json.loads(r.value)["id"] for r in scored.records)
    assert set(ids) == {f"evt-{i}" for i in range(TOTAL)}
    assert sum(ids.values()) == TOTAL, f"{sum(ids.values()) - TOTAL} events scored twice"

    # The windows, written through both outages and a Redis restart, equal a recount of the events.
    client = redis.Redis.from_url(redis_server.url)
    redis_server.start()
    try:
        wait_until(lambda: client.info("persistence")["loading"] == 0, 30, "Redis to load its file")
        now = datetime.fromisoformat("2026-11-29T09:30:30+00:00").timestamp()
        store = WindowStore(client, prefix=stream_env.prefix)
        figures = store.read_many(["global:all"], 3_600, now)["global:all"]
    finally:
        redis_server.stop()
    by_sentiment = Counter(json.loads(r.value)["sentiment"]["label"] for r in scored.records)
    assert figures.count == TOTAL
    assert (figures.negative, figures.neutral, figures.positive) == tuple(
        by_sentiment[s] for s in ("negative", "neutral", "positive")
    )

    # The gap in throughput is about the outage itself, and each outage is logged once each way.
    times = [r.timestamp / 1000 for r in scored.records]
    for name, (start, end) in outages.items():
        gap = longest_gap(times, start - 5, end + 15)
        print(f"{name}: outage {end - start:.1f}s, longest stretch with nothing scored {gap:.1f}s")
        stalled = f"{name}: the stream stalled {gap:.0f}s for a {end - start:.0f}s outage"
        assert gap < (end - start) + 10, stalled
    events = worker.log_events()
    for name in outages:
        changes = [e["event"] for e in events if e.get("dependency") == name]
        assert changes.count("dependency down") == 1 and changes.count("dependency back") == 1, changes
    assert 'finsentry_dependency_outages_total{dependency="redis"} 1.0' in metrics_text
    assert 'finsentry_dependency_outages_total{dependency="sql"} 1.0' in metrics_text
    assert exit_code == 0
