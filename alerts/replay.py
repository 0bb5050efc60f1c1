"""Event-time replay: events through the worker's windows, rules and alert lifecycle, with no sleeping.

The rules run on the events' own clock (alerts.event_time): a tick every `evaluation_interval_s` of
event time, on multiples of it, each after the events up to it, as the worker does with
FINSENTRY_ALERT_CLOCK=event. What it does is kept where the worker keeps it (Redis, SQL), so reading an
alert's state or its notifications reads what the worker would have written. `finsentry rules test`
drives it with a test file; a backtest drives it with a recorded history.

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

from alerts.event_time import EventTimeAlerts, Tick
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
    values: dict[str, Any] = field(default_factory=dict)  # the figures then
    evidence: list[str] = field(default_factory=list)  # ids of the window's evidence, when it fires


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
    """Owns the store's Redis prefix (leaving the `with` block deletes every key under it) and the alerts of
    the database given: nothing else may write them."""

    def __init__(
        self,
        windows: WindowStore,
        rules: Sequence[Rule],
        engine: Engine,
        start: float,
        evaluation_interval_s: float = 60.0,
    ):
        self.windows = windows
        self.engine = engine
        self.rules = {rule.name: rule for rule in rules}
        self.changes: list[Change] = []
        self.clock = EventTimeAlerts(
            windows,
            AlertMonitor(windows, rules, engine, sole_writer=True),
            evaluation_interval_s,
            start,
            self._note,
        )

    @property
    def now(self) -> float:
        return self.clock.now

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
        """One batch, in its order: each tick runs once the events up to it are in the windows."""
        return self.clock.record(events)

    def advance(self, to: float) -> None:
        """Runs every tick due up to `to` (event time), then sets the clock there; it never goes back."""
        self.clock.advance(to)

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

    def _note(self, tick: Tick) -> None:
        for t in tick.transitions:
            # Rule names cannot hold "|" (alerts.rules), so the first one ends the name.
            rule, _, scope_key = t.dedup_key.partition("|")
            evidence = []
            if t.after == "firing" and t.before != "firing":
                window = self.rules[rule].window_s
                evidence = [str(e["id"]) for e in self.windows.evidence(scope_key, window, tick.at)]
            self.changes.append(
                Change(tick.at, rule, scope_key, t.before, t.after, t.silenced, t.values, evidence)
            )


def to_sql_time(epoch: float) -> datetime:
    """Naive UTC, as every table stores time."""
    return datetime.fromtimestamp(epoch, UTC).replace(tzinfo=None)


def from_sql_time(moment: datetime) -> float:
    return moment.replace(tzinfo=UTC).timestamp()
