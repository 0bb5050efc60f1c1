"""The embedded stack for `finsentry up` and `finsentry demo`: Kafka, Redis, SQLite and the worker.

A service whose address already answers is used as it is; otherwise it is started here, with its
data under FINSENTRY_HOME/stack, and stopped again, in reverse order, when the stack stops.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import IO, Protocol
from urllib.parse import urlparse

from pydantic import SecretStr

from finsentry.services.kafka import KafkaServer
from finsentry.services.process import ServiceError, port_open, terminate
from finsentry.services.redis import RedisServer
from foundation.connections import kafka_python_options
from foundation.kafka_admin import ensure_topics
from foundation.settings import Settings

log = logging.getLogger(__name__)


class Stoppable(Protocol):
    def stop(self) -> None: ...


class LocalStack:
    def __init__(self, settings: Settings, worker_log: Path | None = None):
        self.settings = settings
        self.worker_log = worker_log
        self._started: list[Stoppable] = []
        self._processes: list[subprocess.Popen[bytes]] = []
        self._worker_out: IO[bytes] | None = None

    def start(self, with_worker: bool = True, with_console: bool = False) -> None:
        data = self.settings.home / "stack"
        kafka_port = _port(self.settings.kafka_bootstrap, 9092)
        if port_open(kafka_port):
            log.info("using running Kafka", extra={"bootstrap": self.settings.kafka_bootstrap})
        else:
            kafka = KafkaServer(
                self.settings.cache_dir,
                data / "kafka",
                port=kafka_port,
                partitions=self.settings.topic_partitions,
            )
            kafka.start()
            self._started.append(kafka)
        redis_port = _port(self.settings.redis_url, 6379)
        if port_open(redis_port):
            log.info("using running Redis", extra={"port": redis_port})
        else:
            redis = RedisServer(data / "redis", port=redis_port, persist=True)
            redis.start()
            self._started.append(redis)
        ensure_topics(
            self.settings.kafka_bootstrap,
            [*self.settings.input_topics, self.settings.topic_scored, self.settings.topic_dlq],
            self.settings.topic_partitions,
            options=kafka_python_options(self.settings),
        )
        if with_worker:
            self.start_worker(with_console)

    def start_worker(self, with_console: bool = False) -> None:
        """The stream worker, the alert dispatcher when receivers are configured, and the API with the
        console when asked."""
        env = {**os.environ, **worker_environment(self.settings)}
        out = None
        if self.worker_log:
            self.worker_log.parent.mkdir(parents=True, exist_ok=True)
            out = self._worker_out = self.worker_log.open("ab")
        commands = [["worker"]] + ([["dispatch"]] if self.settings.receivers else [])
        commands += [["api"]] if with_console else []
        for command in commands:
            self._processes.append(
                subprocess.Popen(  # noqa: S603 - a fixed argv of our own tools, no shell
                    [sys.executable, "-m", "finsentry", *command],
                    env=env,
                    stdout=out,
                    stderr=subprocess.STDOUT if out else None,
                )
            )

    @property
    def worker_pid(self) -> int | None:
        """The stream worker's process id while it runs (to measure it), else None."""
        workers = (p for p in self._processes if p.args[3:] == ["worker"] and p.poll() is None)
        return next((p.pid for p in workers), None)

    def wait(self) -> None:
        """Blocks until a process exits (or forever without one); Ctrl-C ends it."""
        while all(p.poll() is None for p in self._processes):
            time.sleep(0.5)
        exited = next(p for p in self._processes if p.poll() is not None)
        raise ServiceError(f"{' '.join(map(str, exited.args[2:]))} exited with {exited.returncode}")

    def stop_processes(self) -> None:
        """Stops the worker and the dispatcher; the services stay up."""
        for process in self._processes:
            terminate(process, timeout=60)
        self._processes.clear()

    def stop(self) -> None:
        self.stop_processes()
        if self._worker_out:
            self._worker_out.close()
        for service in reversed(self._started):
            service.stop()
        self._started.clear()


def worker_environment(settings: Settings) -> dict[str, str]:
    """The whole settings object as FINSENTRY_* variables, so child processes see what this one sees."""
    values = settings.model_dump(exclude={"config"})
    return {
        f"FINSENTRY_{name.upper()}": value.get_secret_value() if isinstance(value, SecretStr) else str(value)
        for name, value in values.items()
        if value not in (None, "")
    }


def _port(address: str, default: int) -> int:
    if "://" not in address:
        address = f"tcp://{address}"
    return urlparse(address).port or default
