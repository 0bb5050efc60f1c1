"""Telling running workers that the champion changed: a `model_updated` message on the models topic."""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from datetime import UTC
from typing import Any

from schemas import SCHEMA_VERSION, Contract
from training.registry import ModelInfo

log = logging.getLogger(__name__)


def announcement(model: ModelInfo, previous: str | None) -> dict[str, object]:
    promoted = (model.promoted_at or model.created_at).replace(tzinfo=UTC)
    message: dict[str, object] = {
        "schema_version": SCHEMA_VERSION,
        "version": model.version,
        "bundle_path": str(model.bundle_path.resolve()),
        "language": model.language,
        "previous": previous,
        "promoted_at": promoted.isoformat().replace("+00:00", "Z"),
        "reason": model.decision,
    }
    Contract.of("model_updated").validate(message)
    return message


class KafkaAnnouncer:
    """Connects on the first announcement, so that reading the registry never needs Kafka.

    `options`: the client's security options (foundation.connections.kafka_python_options)."""

    def __init__(self, bootstrap: str, topic: str, options: Mapping[str, Any] | None = None) -> None:
        self.bootstrap = bootstrap
        self.topic = topic
        self._options = dict(options or {})
        self._producer: Any = None

    def __call__(self, model: ModelInfo, previous: str | None) -> None:
        from kafka import KafkaProducer

        message = announcement(model, previous)
        if self._producer is None:
            self._producer = KafkaProducer(bootstrap_servers=self.bootstrap, acks="all", **self._options)
        self._producer.send(self.topic, key=model.version.encode(), value=json.dumps(message).encode())
        self._producer.flush(timeout=30)
        log.info(
            "model announced",
            extra={"version": model.version, "language": model.language, "topic": self.topic},
        )
