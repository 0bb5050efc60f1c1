"""Time as every table stores it: naive UTC, so SQLite and PostgreSQL compare it alike."""

from __future__ import annotations

from datetime import UTC, datetime


def utcnow() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)
