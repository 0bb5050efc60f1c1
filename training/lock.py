"""A lease in SQL that lets one trainer run at a time, across processes and machines.

A row per lock name; taking it is one conditional UPDATE (or the first INSERT), so two trainers that
start together cannot both win. A lease that outlives a crashed holder expires on its own.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Engine, String, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, Session, mapped_column

from finsentry.db import Base, utcnow


class LockRow(Base):
    __tablename__ = "locks"

    name: Mapped[str] = mapped_column(String(100), primary_key=True)
    holder: Mapped[str | None] = mapped_column(String(200))
    acquired_at: Mapped[datetime | None]
    expires_at: Mapped[datetime]


@dataclass(frozen=True)
class Lease:
    acquired: bool
    holder: str  # who holds it now: us when acquired, the other one when not
    since: datetime | None


def holder_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def try_acquire(engine: Engine, name: str, holder: str, ttl: timedelta) -> Lease:
    now = utcnow()
    with Session(engine) as session, session.begin():
        taken = session.execute(
            update(LockRow)
            .where(LockRow.name == name, LockRow.expires_at <= now)
            .values(holder=holder, acquired_at=now, expires_at=now + ttl)
        ).rowcount
        if taken:
            return Lease(True, holder, now)
        row = session.get(LockRow, name)
        if row is not None:
            return Lease(False, row.holder or "?", row.acquired_at)
    try:
        with Session(engine) as session, session.begin():
            session.add(LockRow(name=name, holder=holder, acquired_at=now, expires_at=now + ttl))
        return Lease(True, holder, now)
    except IntegrityError:  # another process inserted the row first: it holds the lock
        return try_acquire(engine, name, holder, ttl)


def release(engine: Engine, name: str, holder: str) -> None:
    with Session(engine) as session, session.begin():
        session.execute(
            update(LockRow)
            .where(LockRow.name == name, LockRow.holder == holder)
            .values(holder=None, expires_at=utcnow())
        )


@contextmanager
def lease(engine: Engine, name: str, ttl: timedelta, holder: str | None = None) -> Iterator[Lease]:
    """Yields the lease; it is released on exit only if it was taken here."""
    holder = holder or holder_name()
    taken = try_acquire(engine, name, holder, ttl)
    try:
        yield taken
    finally:
        if taken.acquired:
            release(engine, name, holder)
