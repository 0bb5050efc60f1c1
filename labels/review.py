"""Active learning: the stream's least certain predictions wait here for an analyst's label."""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from foundation.clock import utcnow
from foundation.masking import mask, mask_source
from labels.store import LabelError, LabelStore, NewLabel
from labels.tables import ReviewItemRow, SampleRow


@dataclass(frozen=True)
class Candidate:
    """A scored event offered to the queue; margin is the gap between its two likeliest classes."""

    event_id: str
    text: str
    prediction: dict[str, Any]
    head: str
    margin: float
    model_version: str
    language: str | None = None
    source: str | None = None


class ReviewQueue:
    def __init__(self, engine: Engine, labels: LabelStore, max_margin: float = 0.15, rate: float = 0.25):
        """Takes a `rate` share of the predictions whose margin is below `max_margin`.

        Sampling, not taking all: a stream of near-duplicate uncertain texts would otherwise flood the
        queue with one question asked many times.
        """
        self.engine = engine
        self.labels = labels
        self.max_margin = max_margin
        self.rate = rate
        self._rng = random.Random()  # noqa: S311 - sampling and jitter, not secrets

    def select(self, candidates: Sequence[Candidate]) -> list[Candidate]:
        return [c for c in candidates if c.margin < self.max_margin and self._rng.random() < self.rate]

    def offer(self, candidates: Sequence[Candidate]) -> int:
        """Queues the chosen candidates (an event already queued is skipped); returns how many."""
        chosen = self.select(candidates)
        if not chosen:
            return 0
        with Session(self.engine) as session, session.begin():
            known = set(
                session.scalars(
                    select(ReviewItemRow.event_id).where(
                        ReviewItemRow.event_id.in_([c.event_id for c in chosen])
                    )
                )
            )
            fresh = {c.event_id: c for c in chosen if c.event_id not in known}
            session.add_all(
                ReviewItemRow(
                    event_id=c.event_id.replace("\x00", ""),
                    text=mask(c.text.replace("\x00", "")),  # PostgreSQL text cannot hold NUL
                    language=c.language[:35] if c.language else None,
                    source=mask_source(c.source),
                    prediction=c.prediction,
                    head=c.head,
                    margin=c.margin,
                    model_version=c.model_version,
                    created_at=utcnow(),
                )
                for c in fresh.values()
            )
        return len(fresh)

    def open_items(self, limit: int = 50) -> list[ReviewItemRow]:
        """The least certain first."""
        with Session(self.engine, expire_on_commit=False) as session:
            query = (
                select(ReviewItemRow)
                .where(ReviewItemRow.status == "open")
                .order_by(ReviewItemRow.margin, ReviewItemRow.id)
                .limit(limit)
            )
            return list(session.scalars(query))

    def open_count(self) -> int:
        with Session(self.engine) as session:
            return session.scalar(select(func.count()).where(ReviewItemRow.status == "open")) or 0

    def answer(self, item_id: int, by: str, topic: str | None = None, sentiment: str | None = None) -> int:
        """Stores the analyst's label for the item's text and closes the item; returns the sample id."""
        with Session(self.engine) as session:
            item = session.get(ReviewItemRow, item_id)
            if item is None:
                raise LookupError(f"no review item {item_id}")
            if item.status != "open":
                raise LabelError(f"review item {item_id} is {item.status} already", "status")
            label = NewLabel(
                item.text,
                by,
                "review",
                topic=topic,
                sentiment=sentiment,
                language=item.language,
                source=item.source,
            )
        sample_id = self.labels.add([label]).ids[0]
        with Session(self.engine) as session, session.begin():
            item = session.get(ReviewItemRow, item_id)
            assert item is not None  # noqa: S101 - narrows a type; no check rests on it
            item.status, item.answered_at, item.sample_id = "answered", utcnow(), sample_id
        return sample_id

    def reopen(self, item_id: int, by: str) -> None:
        """Undoes an answer: the item is open again, and the label it made is removed if it is still the
        one `by` gave through review (a later label of the text, by anyone, stays)."""
        with Session(self.engine) as session, session.begin():
            item = session.get(ReviewItemRow, item_id)
            if item is None:
                raise LookupError(f"no review item {item_id}")
            if item.status != "answered":
                raise LabelError(f"review item {item_id} is {item.status}, not answered", "status")
            sample = session.get(SampleRow, item.sample_id) if item.sample_id else None
            if sample is not None and (sample.origin, sample.labelled_by) == ("review", by):
                session.delete(sample)
            item.status, item.answered_at, item.sample_id = "open", None, None
