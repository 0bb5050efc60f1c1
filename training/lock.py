"""A lease in SQL that lets one trainer run at a time, across processes and machines.

A row per lock name; taking it is one conditional UPDATE (or the first INSERT), so two trainers that
start together cannot both win. While the holder runs, a heartbeat thread pushes the expiry one
`ttl` ahead every third of it; a holder that is killed stops renewing, and its lease lapses within `ttl`.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import Engine, String, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, Session, mapped_column

from foundation.clock import utcnow
from foundation.db import Base

log = logging.getLogger(__name__)


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
    # Set when a renewal finds the lease taken by another holder: our work must not be published.
    lost: threading.Event = field(default_factory=threading.Event, compare=False)


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


def renew(engine: Engine, name: str, holder: str, ttl: timedelta) -> bool:
    """Pushes the expiry one ttl ahead; False when the lease is no longer ours."""
    with Session(engine) as session, session.begin():
        return bool(
            session.execute(
                update(LockRow)
                .where(LockRow.name == name, LockRow.holder == holder)
                .values(expires_at=utcnow() + ttl)
            ).rowcount
        )


def _heartbeat(engine: Engine, name: str, taken: Lease, ttl: timedelta, stop: threading.Event) -> None:
    while not stop.wait(ttl.total_seconds() / 3):
        try:
            still_ours = renew(engine, name, taken.holder, ttl)
        except Exception as exc:  # the database may be back before the lease lapses: keep beating
            log.warning("lease not renewed", extra={"lock": name, "error": f"{type(exc).__name__}: {exc}"})
            continue
        if not still_ours:
            taken.lost.set()
            log.error("lease lost to another holder", extra={"lock": name, "holder": taken.holder})
            return


@contextmanager
def lease(engine: Engine, name: str, ttl: timedelta, holder: str | None = None) -> Iterator[Lease]:
    """Yields the lease, renewed while the block runs; released on exit only if it was taken here."""
    holder = holder or holder_name()
    taken = try_acquire(engine, name, holder, ttl)
    if not taken.acquired:
        yield taken
        return
    stop = threading.Event()
    beat = threading.Thread(
        target=_heartbeat, args=(engine, name, taken, ttl, stop), name=f"lease-{name}", daemon=True
    )
    beat.start()
    try:
        yield taken
    finally:
        stop.set()
        beat.join()
        release(engine, name, holder)
