"""Silences: matchers over an alert's rule, scope, scope key, severity and labels, with an expiry."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from alerts.store import SilenceRow
from foundation.clock import utcnow


def parse_matchers(pairs: list[str]) -> dict[str, str]:
    matchers = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name or not value:
            raise ValueError(f"matcher {pair!r} is not NAME=VALUE (e.g. scope_key=entity:acme)")
        matchers[name.strip()] = value.strip()
    if not matchers:
        raise ValueError("a silence needs at least one matcher")
    return matchers


def add_silence(
    engine: Engine, matchers: dict[str, str], duration: timedelta, by: str, comment: str = ""
) -> str:
    now, silence_id = utcnow(), str(uuid.uuid4())
    with Session(engine) as session, session.begin():
        session.add(
            SilenceRow(
                id=silence_id,
                matchers=matchers,
                starts_at=now,
                ends_at=now + duration,
                created_by=by,
                comment=comment,
            )
        )
    return silence_id


def active_silences(engine: Engine, now: datetime | None = None) -> list[SilenceRow]:
    now = now or utcnow()
    with Session(engine) as session:
        query = select(SilenceRow).where(SilenceRow.ends_at > now).order_by(SilenceRow.ends_at)
        return list(session.scalars(query))


def expire_silence(engine: Engine, silence_id: str) -> bool:
    """Ends an active silence now; False if there is no such silence or it has ended already."""
    with Session(engine) as session, session.begin():
        silence = session.get(SilenceRow, silence_id)
        now = utcnow()
        if silence is None or silence.ends_at <= now:
            return False
        silence.ends_at = now
        return True
