"""`finsentry up` starts Kafka, Redis and a worker, serves, and stops all of it on Ctrl-C."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from kafka import KafkaConsumer, KafkaProducer

from finsentry.services.process import free_port, port_open

pytestmark = pytest.mark.stack


def test_up_serves_and_stops_cleanly_on_ctrl_c(tiny_bundle: Path, tmp_path: Path) -> None:
    kafka_port, redis_port = free_port(), free_port()
    env = {
        **os.environ,
        "FINSENTRY_HOME": str(tmp_path / "home"),
        "FINSENTRY_KAFKA_BOOTSTRAP": f"127.0.0.1:{kafka_port}",
        "FINSENTRY_REDIS_URL": f"redis://127.0.0.1:{redis_port}/0",
        "FINSENTRY_MODEL_DIR": str(tiny_bundle),
        "FINSENTRY_API_PORT": str(free_port()),
    }
    log_path = tmp_path / "up.log"
    with log_path.open("wb") as out:
        # Its own process group, so that SIGINT to the group is what Ctrl-C in a terminal does.
        up = subprocess.Popen(
            [sys.executable, "-m", "finsentry", "up"],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 120
        while "finsentry is up" not in log_path.read_text(errors="replace"):
            assert up.poll() is None, log_path.read_text()
            assert time.monotonic() < deadline, "up did not come up in 120s"
            time.sleep(0.5)
        assert port_open(kafka_port) and port_open(redis_port)

        bootstrap = f"127.0.0.1:{kafka_port}"
        producer = KafkaProducer(bootstrap_servers=bootstrap)
        event = {
            "id": "up-1",
            "source": "wire",
            "published_at": "2026-11-29T09:00:00Z",
            "text": "Oil rallies",
        }
        producer.send("news.raw", json.dumps(event).encode())
        producer.flush()
        producer.close()
        consumer = KafkaConsumer(
            "events.scored",
            bootstrap_servers=bootstrap,
            auto_offset_reset="earliest",
            group_id=None,
            consumer_timeout_ms=90_000,
        )
        scored = json.loads(next(iter(consumer)).value)
        consumer.close()
        assert scored["id"] == "up-1" and scored["sentiment"]["label"]
    finally:
        if up.poll() is None:
            os.killpg(up.pid, signal.SIGINT)
        code = up.wait(90)
    assert code == 0, log_path.read_text()
    assert not port_open(kafka_port) and not port_open(redis_port), "Ctrl-C stops the services it started"
    assert "service stopped" in log_path.read_text()
