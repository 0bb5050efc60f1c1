"""The alert tables in SQL: alert state, the notification outbox and silences.

An alert's state change and the notifications it causes are written in one transaction, so a
notification is never lost between deciding and delivering, and never invented for a change that
rolled back.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from foundation.db import Base


class AlertRow(Base):
    __tablename__ = "alerts"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    dedup_key: Mapped[str] = mapped_column(String(400), unique=True)
    rule: Mapped[str] = mapped_column(String(200))
    scope: Mapped[str] = mapped_column(String(20))
    scope_key: Mapped[str] = mapped_column(String(300))
    state: Mapped[str] = mapped_column(String(12))  # inactive | pending | firing | resolved
    severity: Mapped[str] = mapped_column(String(12))
    labels: Mapped[dict[str, Any]] = mapped_column(default=dict)
    values: Mapped[dict[str, Any]] = mapped_column(default=dict)
    active_since: Mapped[datetime | None]
    fired_at: Mapped[datetime | None]
    resolved_at: Mapped[datetime | None]
    last_notified_at: Mapped[datetime | None]
    acknowledged_by: Mapped[str | None] = mapped_column(String(200))
    acknowledged_at: Mapped[datetime | None]
    updated_at: Mapped[datetime]


class NotificationRow(Base):
    """The outbox: one row per message to one receiver; the dispatcher marks it delivered."""

    __tablename__ = "notifications"
    __table_args__ = (Index("ix_notifications_due", "status", "next_attempt_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    receiver: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(12))  # firing | repeat | resolved
    payload: Mapped[dict[str, Any]]
    status: Mapped[str] = mapped_column(String(12), default="pending")  # pending | delivered | failed
    attempts: Mapped[int] = mapped_column(default=0)
    next_attempt_at: Mapped[datetime]
    last_attempt_at: Mapped[datetime | None]
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime]
    delivered_at: Mapped[datetime | None]


class SilenceRow(Base):
    __tablename__ = "silences"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    matchers: Mapped[dict[str, Any]]  # {"rule": ..., "scope_key": ..., "severity": ..., label: ...}
    starts_at: Mapped[datetime]
    ends_at: Mapped[datetime]
    created_by: Mapped[str] = mapped_column(String(200))
    comment: Mapped[str] = mapped_column(Text, default="")
