"""Event-time replay: events through the worker's windows, rules and alert lifecycle, with no sleeping.

The worker records a batch into the windows, checks the rules for the keys the batch touched, and ticks
on a timer so open alerts can resolve. A replay does the same calls (WindowStore.record,
AlertMonitor.check, AlertMonitor.tick) on a clock of its own: a batch is checked at its newest event
time, and a tick is due every `evaluation_interval_s` of event time from `start`. What it does is kept
where the worker keeps it (Redis, SQL), so reading an alert's state or its notifications reads what the
worker would have written. `finsentry rules test` drives it with a test file; a backtest can drive it
with a recorded history.

    with Replay(WindowStore(client, prefix=unique), rules, engine, start=t0) as replay:
        replay.silence({"rule": "company-negative-surge"}, t0, t0 + 3600)
        for batch in batches:                  # in event-time order
            replay.record(batch)
        replay.advance(t0 + 86_400)            # the ticks until then
        replay.changes, replay.notices(), replay.alert("company-negative-surge", "entity:acme")
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import TracebackType
from typing import Any

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from alerts.lifecycle import Transition
from alerts.monitor import AlertMonitor
from alerts.rules import Rule
from alerts.store import AlertRow, NotificationRow, SilenceRow
from alerts.windows import RecordResult, WindowEvent, WindowStore


@dataclass(frozen=True)
class Change:
    """An alert's state change, at the event time of the evaluation that made it."""

    at: float
    rule: str
    scope_key: str
    before: str
    after: str
    silenced: bool


@dataclass(frozen=True)
class Notice:
    """One alert in one notification to one receiver, at the event time it was sent."""

    at: float
    receiver: str
    kind: str  # firing | repeat | resolved
    rule: str
    scope_key: str


@dataclass(frozen=True)
class AlertState:
    state: str  # inactive | pending | firing | resolved
    values: dict[str, Any] = field(default_factory=dict)  # the figures of its last evaluation


class Replay:
    """Owns the store's Redis prefix: leaving the `with` block deletes every key under it."""

    def __init__(
        self,
        windows: WindowStore,
        rules: Sequence[Rule],
        engine: Engine,
        start: float,
        evaluation_interval_s: float = 60.0,
    ):
        if evaluation_interval_s <= 0:
            raise ValueError("the evaluation interval must be positive")
        self.windows = windows
        self.engine = engine
        self.monitor = AlertMonitor(windows, rules, engine, clock=lambda: self.now)
        self.now = start
        self.evaluation_interval_s = evaluation_interval_s
        self.changes: list[Change] = []
        self._next_tick = start

    def __enter__(self) -> Replay:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        keys = list(self.windows.client.scan_iter(match=f"{self.windows.prefix}:*", count=1_000))
        for start in range(0, len(keys), 1_000):
            self.windows.client.delete(*keys[start : start + 1_000])

    def silence(self, matchers: Mapping[str, str], starts_at: float, ends_at: float) -> None:
        with Session(self.engine) as session, session.begin():
            session.add(
                SilenceRow(
                    id=str(uuid.uuid4()),
                    matchers=dict(matchers),
                    starts_at=to_sql_time(starts_at),
                    ends_at=to_sql_time(ends_at),
                    created_by="replay",
                )
            )

    def record(self, events: Sequence[WindowEvent]) -> RecordResult:
        """One batch, as the worker records and checks it: the ticks due first, then the rules.

        The batch is checked at its newest event time; a batch older than the clock is checked at the
        clock, like a late batch in the worker, and the store counts what is past the lateness as late.
        """
        if not events:
            return RecordResult(0, 0, 0)
        at = max(self.now, *(e.event_time for e in events))
        # A tick at the batch's own time comes after it: events at time t are there at time t.
        self._tick(until=at, inclusive=False)
        self.now = at
        result = self.windows.record(events)
        keys = {key for event in events for key in event.keys}
        self._note(self.monitor.check(keys, now=self.now))
        return result

    def advance(self, to: float) -> None:
        """Runs every tick due up to `to` (event time), then sets the clock there; it never goes back."""
        self._tick(until=to, inclusive=True)
        self.now = max(self.now, to)

    def alert(self, rule: str, scope_key: str) -> AlertState:
        """The alert as SQL holds it now; one that never became active is inactive, with no figures."""
        with Session(self.engine) as session:
            row = session.scalars(
                select(AlertRow).where(AlertRow.rule == rule, AlertRow.scope_key == scope_key)
            ).first()
            return AlertState(row.state, dict(row.values or {})) if row else AlertState("inactive")

    def notices(self) -> list[Notice]:
        """Every notification the lifecycle wrote to the outbox so far, oldest first."""
        with Session(self.engine) as session:
            rows = session.scalars(select(NotificationRow).order_by(NotificationRow.id))
            return [
                Notice(from_sql_time(row.created_at), row.receiver, row.kind, a["rule"], a["scope_key"])
                for row in rows
                for a in row.payload["alerts"]
            ]

    def _tick(self, until: float, inclusive: bool) -> None:
        while self._next_tick < until or (inclusive and self._next_tick == until):
            self.now = max(self.now, self._next_tick)
            self._note(self.monitor.tick(now=self.now))
            self._next_tick += self.evaluation_interval_s

    def _note(self, transitions: Sequence[Transition]) -> None:
        for t in transitions:
            # Rule names cannot hold "|" (alerts.rules), so the first one ends the name.
            rule, _, scope_key = t.dedup_key.partition("|")
            self.changes.append(Change(self.now, rule, scope_key, t.before, t.after, t.silenced))


def to_sql_time(epoch: float) -> datetime:
    """Naive UTC, as every table stores time."""
    return datetime.fromtimestamp(epoch, UTC).replace(tzinfo=None)


def from_sql_time(moment: datetime) -> float:
    return moment.replace(tzinfo=UTC).timestamp()
