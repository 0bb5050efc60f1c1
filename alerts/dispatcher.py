"""Delivering the outbox: due notifications in order, with backoff, Retry-After and Slack's pace.

A notification is marked delivered only after its receiver accepted it, so a restarted dispatcher
resumes where the last one stopped. Failures back off exponentially with jitter; a 429 waits what
Retry-After says; a refusal that a retry cannot fix (4xx) is marked failed after the first try.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Mapping
from datetime import datetime, timedelta

from sqlalchemy import Engine, func, select, update
from sqlalchemy.orm import Session

from alerts.notifiers import Delivery, Notifier
from alerts.store import NotificationRow
from foundation.clock import utcnow
from foundation.db import reader
from foundation.outage import Guard

log = logging.getLogger(__name__)
CLAIM_LEASE_S = 120.0  # longer than pacing plus a receiver's timeout: a live claim never runs out


class Dispatcher:
    def __init__(
        self,
        engine: Engine,
        notifiers: Mapping[str, Notifier],
        min_interval_s: float = 1.0,
        base_backoff_s: float = 1.0,
        max_backoff_s: float = 300.0,
        max_attempts: int = 50,
    ):
        self.engine = engine
        self.notifiers = notifiers
        self.min_interval_s = min_interval_s
        self.base_backoff_s = base_backoff_s
        self.max_backoff_s = max_backoff_s
        self.max_attempts = max_attempts
        self._last_sent: dict[str, datetime] = {}

    def backoff(self, attempts: int) -> float:
        """Exponential with full jitter, so many failing alerts do not retry in lockstep."""
        ceiling = min(self.max_backoff_s, self.base_backoff_s * 2 ** (attempts - 1))
        return random.uniform(ceiling / 2, ceiling)  # noqa: S311 - sampling and jitter, not secrets

    def run_once(self, now: datetime | None = None) -> int:
        """Delivers what is due; returns how many were delivered.

        No transaction is open while a receiver is waited for (pacing, HTTP): the workers write to the
        same database. A row is claimed first, by moving its next attempt a lease ahead, so that
        another dispatcher leaves it alone, and a dispatcher that dies mid-delivery only delays it.
        """
        now = now or utcnow()
        with Session(reader(self.engine)) as session:
            due = list(
                session.scalars(
                    select(NotificationRow.id)
                    .where(NotificationRow.status == "pending", NotificationRow.next_attempt_at <= now)
                    .order_by(NotificationRow.id)
                    .limit(100)
                )
            )
        delivered = 0
        for row_id in due:
            row = self._claim(row_id, now)
            if row is not None:
                delivered += self._deliver(row)
                self._save(row)  # one row at a time: a crash loses at most the row in flight
        return delivered

    def _claim(self, row_id: int, now: datetime) -> NotificationRow | None:
        with Session(self.engine, expire_on_commit=False) as session, session.begin():
            claimed = session.execute(
                update(NotificationRow)
                .where(
                    NotificationRow.id == row_id,
                    NotificationRow.status == "pending",
                    NotificationRow.next_attempt_at <= now,
                )
                .values(next_attempt_at=utcnow() + timedelta(seconds=CLAIM_LEASE_S))
            ).rowcount
            return session.get(NotificationRow, row_id) if claimed else None

    def _save(self, row: NotificationRow) -> None:
        with Session(self.engine) as session, session.begin():
            session.merge(row)

    def _deliver(self, row: NotificationRow) -> bool:
        notifier = self.notifiers.get(row.receiver)
        if notifier is None:
            self._fail(row, f"no receiver named {row.receiver!r} is configured", permanent=True)
            return False
        self._pace(row.receiver)
        result: Delivery = notifier.send(row.id, row.payload)
        row.last_attempt_at = self._last_sent[row.receiver] = utcnow()
        row.attempts += 1
        if result.ok:
            row.status, row.delivered_at, row.last_error = "delivered", utcnow(), None
            log.info(
                "notification delivered",
                extra={"id": row.id, "receiver": row.receiver, "kind": row.kind, "attempts": row.attempts},
            )
            return True
        self._fail(row, result.error or "failed", result.permanent, result.retry_after_s)
        return False

    def _fail(
        self, row: NotificationRow, error: str, permanent: bool, retry_after_s: float | None = None
    ) -> None:
        row.last_error = error
        if permanent or row.attempts >= self.max_attempts:
            row.status = "failed"
            log.error("notification failed", extra={"id": row.id, "receiver": row.receiver, "error": error})
            return
        wait = retry_after_s if retry_after_s is not None else self.backoff(row.attempts)
        row.next_attempt_at = utcnow() + timedelta(seconds=wait)
        log.warning(
            "notification will be retried",
            extra={"id": row.id, "receiver": row.receiver, "error": error, "in_s": round(wait, 2)},
        )

    def _pace(self, receiver: str) -> None:
        """About one message per second per webhook, as Slack asks; a restart remembers from the outbox."""
        if receiver not in self._last_sent:
            with Session(reader(self.engine)) as session:
                last = session.scalar(
                    select(func.max(NotificationRow.last_attempt_at)).where(
                        NotificationRow.receiver == receiver
                    )
                )
            if last is None:
                return
            self._last_sent[receiver] = last
        wait = self.min_interval_s - (utcnow() - self._last_sent[receiver]).total_seconds()
        if wait > 0:
            time.sleep(wait)

    def run(self, stop: threading.Event, guard: Guard, poll_s: float = 0.2) -> None:
        """Until `stop`; a database outage is waited out by `guard` (the outbox is where it was)."""
        while not stop.is_set():
            if not guard.call(self.run_once):
                stop.wait(poll_s)
