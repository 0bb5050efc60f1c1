"""The label tables in SQL: samples and the review queue."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from foundation.db import Base


class SampleRow(Base):
    """One labelled text. A text labelled again keeps its row: the newest label wins."""

    __tablename__ = "samples"
    __table_args__ = (Index("ix_samples_received_at", "frozen", "received_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    text_key: Mapped[str] = mapped_column(String(64), unique=True)  # sha256 of the normalised text
    text: Mapped[str] = mapped_column(Text)
    language: Mapped[str | None] = mapped_column(String(35))
    source: Mapped[str | None] = mapped_column(String(200))
    topic: Mapped[str | None] = mapped_column(String(100))
    sentiment: Mapped[str | None] = mapped_column(String(12))
    labelled_by: Mapped[str] = mapped_column(String(200))
    labelled_at: Mapped[datetime]
    received_at: Mapped[datetime]  # when it reached the store: the trainer takes labels by this
    origin: Mapped[str] = mapped_column(String(12))  # import | api | kafka | review
    # In the frozen evaluation set: decided by the text's hash, so it never moves, and never trained on.
    frozen: Mapped[bool] = mapped_column(default=False)


class ReviewItemRow(Base):
    """A prediction the model was unsure of, waiting for an analyst's label."""

    __tablename__ = "review_items"
    __table_args__ = (Index("ix_review_items_open", "status", "margin"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    event_id: Mapped[str] = mapped_column(String(200), unique=True)
    text: Mapped[str] = mapped_column(Text)
    language: Mapped[str | None] = mapped_column(String(35))
    source: Mapped[str | None] = mapped_column(String(200))
    prediction: Mapped[dict[str, Any]]  # {"topic": ..., "sentiment": ..., "probabilities": ...}
    head: Mapped[str] = mapped_column(String(12))  # the head whose margin was small
    margin: Mapped[float]
    model_version: Mapped[str] = mapped_column(String(100))
    status: Mapped[str] = mapped_column(String(12), default="open")  # open | answered
    created_at: Mapped[datetime]
    answered_at: Mapped[datetime | None]
    sample_id: Mapped[int | None]
