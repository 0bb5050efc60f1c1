"""The roll-up tables: one row per scope key and hour, and the event ids already counted."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Float, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from foundation.db import Base


class HourRow(Base):
    """Counts of one scope key (entity:acme, topic:..., source:..., global:all) in one UTC hour."""

    __tablename__ = "rollup_hours"

    scope_key: Mapped[str] = mapped_column(String(300), primary_key=True)
    hour: Mapped[datetime] = mapped_column(primary_key=True)
    count: Mapped[int] = mapped_column(Integer, default=0)
    negative: Mapped[int] = mapped_column(Integer, default=0)
    neutral: Mapped[int] = mapped_column(Integer, default=0)
    positive: Mapped[int] = mapped_column(Integer, default=0)
    score_sum: Mapped[float] = mapped_column(Float, default=0.0)  # P(positive) - P(negative), summed


class MinuteRow(Base):
    """The same counts per minute, kept two days: the chart of the last hour."""

    __tablename__ = "rollup_minutes"

    scope_key: Mapped[str] = mapped_column(String(300), primary_key=True)
    minute: Mapped[datetime] = mapped_column(primary_key=True)
    count: Mapped[int] = mapped_column(Integer, default=0)
    negative: Mapped[int] = mapped_column(Integer, default=0)
    neutral: Mapped[int] = mapped_column(Integer, default=0)
    positive: Mapped[int] = mapped_column(Integer, default=0)
    score_sum: Mapped[float] = mapped_column(Float, default=0.0)


class CountedEventRow(Base):
    """An event already in the roll-ups: a replayed batch finds its ids here and counts nothing twice."""

    __tablename__ = "rollup_events"
    __table_args__ = (Index("ix_rollup_events_counted_at", "counted_at"),)

    event_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    counted_at: Mapped[datetime]


class RecentItemRow(Base):
    """A scored event as a page lists it (text masked), kept as long as its id in `rollup_events`."""

    __tablename__ = "recent_items"

    event_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    event_time: Mapped[datetime]
    text: Mapped[str] = mapped_column(Text)
    sentiment: Mapped[str] = mapped_column(String(12))
    topic: Mapped[str | None] = mapped_column(String(100))
    model_version: Mapped[str] = mapped_column(String(100))
    source: Mapped[str | None] = mapped_column(String(200))
    url: Mapped[str | None] = mapped_column(Text)
    counted_at: Mapped[datetime] = mapped_column(index=True)


class RecentKeyRow(Base):
    """Which scope keys an item counts under: the latest items of a key are one index range scan."""

    __tablename__ = "recent_item_keys"

    scope_key: Mapped[str] = mapped_column(String(300), primary_key=True)
    event_time: Mapped[datetime] = mapped_column(primary_key=True)
    event_id: Mapped[str] = mapped_column(String(200), primary_key=True)
