"""The label store: every analyst label, deduplicated by normalised text, and the frozen evaluation set.

A text is in the frozen set when its hash says so, so the set never depends on arrival order and a
text never moves between training and evaluation.
"""

from __future__ import annotations

import hashlib
import random
import re
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from foundation.clock import utcnow
from foundation.language import text_language
from foundation.masking import mask, mask_source
from labels.examples import Example, split_bucket
from labels.tables import SampleRow

SENTIMENTS = ("negative", "neutral", "positive")
ORIGINS = ("import", "api", "kafka", "review")
_SPACE = re.compile(r"\s+")


class LabelError(ValueError):
    """A label that cannot be stored; `field` names what is wrong."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


@dataclass(frozen=True)
class NewLabel:
    text: str
    labelled_by: str
    origin: str
    topic: str | None = None
    sentiment: str | None = None
    language: str | None = None
    source: str | None = None
    labelled_at: datetime | None = None

    def __post_init__(self) -> None:
        for name in ("text", "labelled_by", "topic", "language", "source"):
            if "\x00" in (getattr(self, name) or ""):
                # PostgreSQL cannot store NUL in text, and no real label needs it.
                raise LabelError(f"{name} contains a NUL character", name)
        if not self.text.strip():
            raise LabelError("text is empty", "text")
        if self.topic is None and self.sentiment is None:
            raise LabelError("a label needs a topic, a sentiment or both", "topic")
        if self.sentiment is not None and self.sentiment not in SENTIMENTS:
            raise LabelError(
                f"sentiment {self.sentiment!r} is not one of {', '.join(SENTIMENTS)}", "sentiment"
            )
        if self.origin not in ORIGINS:
            raise LabelError(f"origin {self.origin!r} is not one of {', '.join(ORIGINS)}", "origin")

    @classmethod
    def from_message(cls, message: Mapping[str, Any], origin: str) -> NewLabel:
        """From a message that passed the `label` contract (schemas/label.json)."""
        at = message.get("labeled_at")
        try:
            labelled_at = _naive_utc(datetime.fromisoformat(at)) if at else None
        except ValueError as exc:  # RFC 3339 allows a few forms (a leap second) that Python cannot read
            raise LabelError(f"labeled_at {at!r} is not a readable time", "labeled_at") from exc
        return cls(
            text=message["text"],
            labelled_by=message["labeled_by"],
            origin=origin,
            topic=message.get("topic"),
            sentiment=message.get("sentiment"),
            language=message.get("lang"),
            source=message.get("source"),
            labelled_at=labelled_at,
        )


@dataclass
class AddResult:
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    repeated: int = 0  # the same text more than once in one call: stored once, the last label wins
    ids: list[int] = field(default_factory=list)


def _naive_utc(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(tzinfo=None) if moment.tzinfo else moment


def normalise(text: str) -> str:
    """The form two texts share when they are the same text: NFKC, case-folded, spaces collapsed."""
    return _SPACE.sub(" ", unicodedata.normalize("NFKC", text)).strip().casefold()


def text_key(text: str) -> str:
    return hashlib.sha256(normalise(text).encode("utf-8")).hexdigest()


class LabelStore:
    def __init__(self, engine: Engine, frozen_percent: int = 10) -> None:
        self.engine = engine
        self.frozen_percent = frozen_percent

    def is_frozen(self, text: str) -> bool:
        return split_bucket(normalise(text), "frozen") < self.frozen_percent

    def add(self, labels: Iterable[NewLabel], chunk: int = 500) -> AddResult:
        """Stores labels; a text seen before takes the newer label (insert races are retried)."""
        result = AddResult()
        batch: dict[str, NewLabel] = {}
        for label in labels:
            label = replace(  # the store keeps no personal data
                label,
                text=mask(label.text),
                source=mask_source(label.source),
            )
            key = text_key(label.text)
            if key in batch:
                result.repeated += 1
            batch[key] = label  # the same text twice in one call: the later wins
            if len(batch) >= chunk:
                self._add_chunk(batch, result)
                batch = {}
        if batch:
            self._add_chunk(batch, result)
        return result

    def _add_chunk(self, batch: dict[str, NewLabel], result: AddResult) -> None:
        for attempt in range(3):
            try:
                with Session(self.engine) as session, session.begin():
                    chunk_result = self._upsert(session, batch)
                break
            except IntegrityError:
                if attempt == 2:
                    raise
        result.inserted += chunk_result.inserted
        result.updated += chunk_result.updated
        result.unchanged += chunk_result.unchanged
        result.ids += chunk_result.ids

    def _upsert(self, session: Session, batch: dict[str, NewLabel]) -> AddResult:
        result = AddResult()
        existing = {
            row.text_key: row
            for row in session.scalars(select(SampleRow).where(SampleRow.text_key.in_(list(batch))))
        }
        now, touched = utcnow(), []
        for key, label in batch.items():
            row = existing.get(key)
            if row is None:
                row = SampleRow(text_key=key, text=label.text, frozen=self.is_frozen(label.text))
                session.add(row)
                result.inserted += 1
            elif (row.topic, row.sentiment) == (label.topic or row.topic, label.sentiment or row.sentiment):
                result.unchanged += 1
                touched.append(row)
                continue
            else:
                result.updated += 1
            # A label for one head keeps the other head's earlier label.
            row.topic = label.topic or row.topic
            row.sentiment = label.sentiment or row.sentiment
            row.language = label.language or row.language
            row.source = label.source or row.source
            row.labelled_by, row.origin = label.labelled_by, label.origin
            row.labelled_at = label.labelled_at or now
            # The trainer goes by arrival: a label dated in the past is still new to it.
            row.received_at = now
            touched.append(row)
        session.flush()
        result.ids = [row.id for row in touched]
        return result

    def counts(self, since: datetime | None = None) -> dict[str, int]:
        with Session(self.engine) as session:
            total = session.scalar(select(func.count()).select_from(SampleRow)) or 0
            frozen = session.scalar(select(func.count()).where(SampleRow.frozen.is_(True))) or 0
            new = session.scalar(self._trainable(since).with_only_columns(func.count())) or 0
        return {"total": total, "frozen": frozen, "new": new}

    def newest_label_time(self) -> datetime | None:
        with Session(self.engine) as session:
            return session.scalar(select(func.max(SampleRow.received_at)).where(SampleRow.frozen.is_(False)))

    def new_examples(
        self, since: datetime | None, until: datetime | None = None, language: str | None = None
    ) -> list[Example]:
        """Trainable labels that arrived after `since` (all of them when None), up to `until`.

        With `language`, only the labels in that language: the declared one, else the text's script.
        """
        query = self._trainable(since)
        if until is not None:
            query = query.where(SampleRow.received_at <= until)
        return self._examples(query.order_by(SampleRow.id), language)

    def replay_examples(
        self, before: datetime, k: int, seed: int, language: str | None = None
    ) -> list[Example]:
        """A uniform sample of k trainable labels from before `before`, so training does not forget."""
        query = select(SampleRow.id, SampleRow.text, SampleRow.language).where(
            SampleRow.frozen.is_(False), SampleRow.received_at <= before
        )
        with Session(self.engine) as session:
            rows = session.execute(query.order_by(SampleRow.id)).all()
        ids = [
            row.id for row in rows if language is None or text_language(row.text, row.language) == language
        ]
        chosen = random.Random(seed).sample(ids, min(k, len(ids)))  # noqa: S311 - sampling and jitter, not secrets
        return self._examples(select(SampleRow).where(SampleRow.id.in_(chosen)).order_by(SampleRow.id))

    def frozen_examples(self, language: str | None = None) -> list[Example]:
        query = select(SampleRow).where(SampleRow.frozen.is_(True)).order_by(SampleRow.id)
        return self._examples(query, language)

    @staticmethod
    def _trainable(since: datetime | None) -> Any:
        query = select(SampleRow).where(SampleRow.frozen.is_(False))
        return query.where(SampleRow.received_at > since) if since is not None else query

    def _examples(self, query: Any, language: str | None = None) -> list[Example]:
        with Session(self.engine) as session:
            return [
                Example(row.text, row.topic, row.sentiment)
                for row in session.scalars(query)
                if language is None or text_language(row.text, row.language) == language
            ]


def examples_to_labels(
    examples: Sequence[Example], labelled_by: str, origin: str = "import", source: str | None = None
) -> list[NewLabel]:
    return [
        NewLabel(ex.text, labelled_by, origin, topic=ex.topic, sentiment=ex.sentiment, source=source)
        for ex in examples
    ]
