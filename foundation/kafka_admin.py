"""Creating the topics finsentry uses, with the partition count from settings, and deleting scratch ones."""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Mapping
from typing import Any

from kafka import KafkaAdminClient
from kafka.admin import NewTopic
from kafka.errors import KafkaError, KafkaTimeoutError, TopicAlreadyExistsError

log = logging.getLogger(__name__)


def _admin(bootstrap: str, timeout: float, options: Mapping[str, Any] | None) -> KafkaAdminClient:
    """An admin client, once the broker accepts clients; `options`: foundation.connections'
    kafka_python_options (SASL, TLS)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return KafkaAdminClient(
                bootstrap_servers=bootstrap, client_id="finsentry-admin", **(options or {})
            )
        except KafkaTimeoutError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def ensure_topics(
    bootstrap: str,
    topics: list[str],
    partitions: int,
    timeout: float = 60.0,
    options: Mapping[str, Any] | None = None,
) -> None:
    """Creates the missing topics; waits for the broker to accept clients first."""
    admin = _admin(bootstrap, timeout, options)
    try:
        existing = set(admin.list_topics())
        missing = [
            NewTopic(t, num_partitions=partitions, replication_factor=1) for t in topics if t not in existing
        ]
        if missing:
            # Another process may create them between our list and create: the goal is reached then.
            with contextlib.suppress(TopicAlreadyExistsError):
                admin.create_topics(missing)
            log.info(
                "topics created",
                extra={"topics": ",".join(t.name for t in missing), "partitions": partitions},
            )
    except KafkaError as exc:
        raise RuntimeError(f"could not create topics on {bootstrap}: {exc}") from exc
    finally:
        admin.close()


def delete_topics(
    bootstrap: str, topics: list[str], timeout: float = 60.0, options: Mapping[str, Any] | None = None
) -> None:
    """Deletes the topics (and their data on the broker's disk)."""
    admin = _admin(bootstrap, timeout, options)
    try:
        admin.delete_topics(topics)
        log.info("topics deleted", extra={"topics": ",".join(topics)})
    except KafkaError as exc:
        raise RuntimeError(f"could not delete topics on {bootstrap}: {exc}") from exc
    finally:
        admin.close()
