"""The stream's part in continuous learning: labels from Kafka, uncertain predictions for review,
and the announcements of new champion models. No faust here."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from labels.review import Candidate, ReviewQueue
from labels.store import LabelError, LabelStore, NewLabel
from schemas import Contract, ContractError
from streams.scoring import RawRecord, dead_letter

log = logging.getLogger(__name__)


@dataclass
class LabelBatch:
    labels: list[NewLabel] = field(default_factory=list)
    dead_letters: list[dict[str, Any]] = field(default_factory=list)


class LabelIntake:
    """Label messages from the labels topic: valid ones to the store, the rest to the DLQ."""

    def __init__(self, store: LabelStore, max_message_bytes: int) -> None:
        self.store = store
        self.contract = Contract.of("label")
        self.max_message_bytes = max_message_bytes

    def parse(self, records: Sequence[RawRecord]) -> LabelBatch:
        batch = LabelBatch()
        for record in records:
            try:
                message = self.contract.decode(record.value, self.max_message_bytes)
                batch.labels.append(NewLabel.from_message(message, "kafka"))
            except ContractError as exc:
                batch.dead_letters.append(dead_letter(record, exc.code, exc.message, exc.field))
            except LabelError as exc:
                batch.dead_letters.append(dead_letter(record, "invalid_value", str(exc), exc.field))
        return batch

    def store_labels(self, batch: LabelBatch) -> int:
        return len(self.store.add(batch.labels).ids) if batch.labels else 0


def margin(probabilities: dict[str, float]) -> float:
    top = sorted(probabilities.values(), reverse=True)
    return top[0] - top[1] if len(top) > 1 else 1.0


def review_candidates(scored: Sequence[dict[str, Any]]) -> list[Candidate]:
    """Each scored event as a review candidate, by its less certain head."""
    candidates = []
    for event in scored:
        margins = {"sentiment": margin(event["sentiment"]["probabilities"])}
        # Independent per-topic probabilities have no runner-up to be close to: sentiment decides.
        if event.get("topic") and not event["topic"].get("multi_label"):
            margins["topic"] = margin(event["topic"]["probabilities"])
        head = min(margins, key=lambda h: margins[h])
        prediction = {
            "sentiment": event["sentiment"],
            "topic": event.get("topic"),
        }
        candidates.append(
            Candidate(
                event_id=event["id"],
                text=event["text"],
                prediction=prediction,
                head=head,
                margin=margins[head],
                model_version=event["model_version"],
                language=event.get("model_language") or event.get("lang"),
                source=event.get("source"),
            )
        )
    return candidates


def offer_for_review(queue: ReviewQueue, scored: Sequence[dict[str, Any]]) -> int:
    return queue.offer(review_candidates(scored))


def read_announcement(raw: bytes | None) -> dict[str, Any] | None:
    """A model_updated message, or None (logged) if it breaks its contract."""
    try:
        return Contract.of("model_updated").decode(raw, 64 * 1024)
    except ContractError as exc:
        log.error("ignoring a bad model announcement", extra={"error": exc.message})
        return None
