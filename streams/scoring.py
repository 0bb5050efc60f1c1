"""One micro-batch, from raw Kafka records to scored events and dead letters. No faust here."""

from __future__ import annotations

import base64
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from alerts.windows import WindowEvent, scope_keys
from foundation.masking import mask, mask_source, mask_url
from inference import Prediction
from inference.entities import EntityMatcher
from inference.languages import LanguageModels
from schemas import SCHEMA_VERSION, Contract, ContractError
from stories import StoryIndex, StoryText
from trends import Item

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RawRecord:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None


@dataclass
class BatchResult:
    scored: list[dict[str, Any]] = field(default_factory=list)
    dead_letters: list[dict[str, Any]] = field(default_factory=list)


def event_time(published_at: str) -> float:
    """Seconds since the epoch; a time without a zone is taken as UTC."""
    published = datetime.fromisoformat(published_at.replace("Z", "+00:00").replace("z", "+00:00"))
    if published.tzinfo is None:
        published = published.replace(tzinfo=UTC)
    return published.timestamp()


def trend_item(event: dict[str, Any]) -> Item:
    """What the console lists of a scored event."""
    return Item(
        text=mask(event["text"])[:500],
        sentiment=event["sentiment"]["label"],
        topic=event["topic"]["label"] if event.get("topic") else None,
        model_version=event["model_version"],
        source=mask_source(event.get("source")),
        url=mask_url(event.get("url")),
    )


def event_topics(event: dict[str, Any]) -> list[str]:
    """Every topic of a scored event; events scored before multi-label topics carry only `topic`."""
    if event.get("topics"):
        return list(event["topics"])
    return [event["topic"]["label"]] if event.get("topic") else []


def event_scope_keys(event: dict[str, Any]) -> tuple[str, ...]:
    """Every window a scored event counts in: its entities, its topics, its source (masked: a handle may be
    a phone number, and the key is shown in alerts and the console) and the total."""
    source = mask_source(event["source"]) or ""
    return scope_keys([e["id"] for e in event.get("entities", ())], event_topics(event), source)


def window_event(event: dict[str, Any]) -> WindowEvent:
    """What the sentiment windows need of a scored event."""
    probabilities = event["sentiment"]["probabilities"]
    evidence = None
    if event["sentiment"]["label"] == "negative":
        evidence = {
            "id": event["id"],
            "text": mask(event["text"])[:500],  # evidence is shown and stored: no personal data
            "negative": probabilities.get("negative", 0.0),
        }
        if event.get("url"):
            evidence["url"] = mask_url(event["url"])
    return WindowEvent(
        id=event["id"],
        event_time=event_time(event["published_at"]),
        sentiment=event["sentiment"]["label"],
        score=probabilities.get("positive", 0.0) - probabilities.get("negative", 0.0),
        keys=event_scope_keys(event),
        evidence=evidence,
    )


def assign_stories(index: StoryIndex, scored: list[dict[str, Any]]) -> None:
    """Sets each scored event's `story_id` and `is_copy`, in one call to the index that all workers share;
    a replayed event gets the story it got the first time."""
    texts = [
        StoryText(e["id"], e["text"], e.get("lang") or e.get("model_language"), event_time(e["published_at"]))
        for e in scored
    ]
    matches = index.assign(texts)
    for event, match in zip(scored, matches, strict=True):
        event["story_id"], event["is_copy"] = match.story_id, match.is_copy


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def dead_letter(record: RawRecord, code: str, message: str, field_path: str | None = None) -> dict[str, Any]:
    return {
        "schema_version": SCHEMA_VERSION,
        "original_b64": base64.b64encode(record.value or b"").decode("ascii"),
        "original_key_b64": base64.b64encode(record.key).decode("ascii") if record.key is not None else None,
        "topic": record.topic,
        "partition": record.partition,
        "offset": record.offset,
        "error_code": code,
        "field": field_path,
        "error": message,
        "failed_at": now_iso(),
    }


def topic_field(prediction: Prediction) -> dict[str, Any] | None:
    if not prediction.topic:
        return None
    topic: dict[str, Any] = {"label": prediction.topic, "probabilities": prediction.topic_probs}
    if prediction.multi_label:
        topic["multi_label"] = True
    return topic


def scored_event(
    kind: str,
    message: dict[str, Any],
    prediction: Prediction,
    entities: list[dict[str, Any]],
    language: str | None = None,
) -> dict[str, Any]:
    event = {k: v for k, v in message.items() if k != "schema_version"}
    event.update(
        schema_version=SCHEMA_VERSION,
        kind=kind,
        topic=topic_field(prediction),
        topics=list(prediction.topics),
        sentiment={"label": prediction.sentiment, "probabilities": prediction.sentiment_probs},
        entities=entities,
        model_version=prediction.model_version,
        processed_at=now_iso(),
    )
    if language:
        event["model_language"] = language
    return event


class BatchScorer:
    """Validates a batch against its contracts, classifies the valid part in one call per language."""

    def __init__(
        self,
        models: LanguageModels,
        kinds_by_topic: dict[str, str],
        max_message_bytes: int,
        matcher: EntityMatcher | None = None,
    ):
        self.models = models
        self.matcher = matcher or EntityMatcher([])
        self.contracts = {topic: Contract.of(kind) for topic, kind in kinds_by_topic.items()}
        self.kinds_by_topic = kinds_by_topic
        self.max_message_bytes = max_message_bytes

    async def score(self, records: Sequence[RawRecord]) -> BatchResult:
        result = BatchResult()
        valid: list[tuple[RawRecord, dict[str, Any]]] = []
        for record in records:
            contract = self.contracts.get(record.topic)
            if contract is None:
                result.dead_letters.append(
                    dead_letter(record, "invalid_value", f"no contract for topic {record.topic}")
                )
                continue
            try:
                message = contract.decode(record.value, self.max_message_bytes)
                event_time(message["published_at"])  # RFC 3339 allows a few forms Python cannot read
            except ContractError as exc:
                result.dead_letters.append(dead_letter(record, exc.code, exc.message, exc.field))
                continue
            except ValueError as exc:
                reason = f"field 'published_at': not a readable time ({exc})"
                result.dead_letters.append(dead_letter(record, "invalid_value", reason, "published_at"))
                continue
            valid.append((record, message))
        await self._classify(valid, result)
        return result

    async def _classify(self, items: list[tuple[RawRecord, dict[str, Any]]], result: BatchResult) -> None:
        """Scores items; if the model fails, halves the batch to isolate the message that breaks it."""
        if not items:
            return
        try:
            predictions = await self.models.apredict(
                [message["text"] for _, message in items], [message.get("lang") for _, message in items]
            )
        except Exception as exc:  # the model's failure must not stop the stream: isolate and dead-letter
            if len(items) == 1:
                record, _ = items[0]
                log.error("classification failed", extra={"topic": record.topic, "offset": record.offset})
                result.dead_letters.append(dead_letter(record, "processing_failed", f"model failed: {exc}"))
                return
            middle = len(items) // 2
            await self._classify(items[:middle], result)
            await self._classify(items[middle:], result)
            return
        for (record, message), (language, prediction) in zip(items, predictions, strict=True):
            entities = self.matcher.enrich(message["text"], message.get("entities", ()))
            kind = self.kinds_by_topic[record.topic]
            result.scored.append(scored_event(kind, message, prediction, entities, language))
