"""Reading alerts for people (the API), and acknowledging them."""

from __future__ import annotations

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from alerts.store import AlertRow, NotificationRow
from foundation.clock import utcnow

STATES = ("pending", "firing", "resolved", "inactive")


def list_alerts(engine: Engine, state: str | None = None, limit: int = 100) -> list[AlertRow]:
    query = select(AlertRow).order_by(AlertRow.updated_at.desc()).limit(limit)
    if state is not None:
        query = query.where(AlertRow.state == state)
    with Session(engine, expire_on_commit=False) as session:
        return list(session.scalars(query))


def acknowledge(engine: Engine, alert_id: str, by: str) -> AlertRow | None:
    """Marks an alert as being handled (no reminders while it fires); None if there is no such alert."""
    with Session(engine, expire_on_commit=False) as session, session.begin():
        alert = session.get(AlertRow, alert_id)
        if alert is None:
            return None
        alert.acknowledged_by, alert.acknowledged_at = by, utcnow()
        return alert


def notifications_for(engine: Engine, alert_id: str, scan: int = 1000) -> list[NotificationRow]:
    """The alert's notifications, newest first, among the latest `scan` of the outbox."""
    query = select(NotificationRow).order_by(NotificationRow.id.desc()).limit(scan)
    with Session(engine, expire_on_commit=False) as session:
        return [
            row
            for row in session.scalars(query)
            if any(a.get("alert_id") == alert_id for a in row.payload.get("alerts", []))
        ]


def get_alert(engine: Engine, alert_id: str) -> AlertRow | None:
    with Session(engine, expire_on_commit=False) as session:
        return session.get(AlertRow, alert_id)
