"""The alert lifecycle, after Prometheus Alertmanager: pending -> firing -> resolved.

One alert per (rule, scope key): its dedup key. A rule whose condition holds makes the alert
pending; held for the rule's `for`, it fires; while it keeps firing it is re-notified every
repeat_interval; when the condition stops holding it resolves and a resolved notice goes out.
Silenced alerts change state as usual but send nothing. The notifications of one `apply` call are
grouped per receiver and kind, and written in the same transaction as the state changes.
"""

from __future__ import annotations

import logging
import uuid
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from alerts.evaluate import SURPRISE_FIELDS, Evaluation
from alerts.store import AlertRow, NotificationRow, SilenceRow
from foundation.clock import utcnow
from foundation.db import reader

log = logging.getLogger(__name__)
Evidence = Callable[[str, int], list[dict[str, Any]]]  # (scope key, window seconds) -> items


@dataclass(frozen=True)
class Transition:
    dedup_key: str
    before: str
    after: str
    silenced: bool
    values: dict[str, Any] = field(default_factory=dict)  # the figures of the evaluation that moved it


def silenced(silences: Sequence[SilenceRow], alert: AlertRow) -> bool:
    fields = {
        "rule": alert.rule,
        "scope": alert.scope,
        "scope_key": alert.scope_key,
        "severity": alert.severity,
    }
    fields.update(alert.labels or {})
    return any(all(fields.get(k) == v for k, v in s.matchers.items()) for s in silences)


def alert_message(alert: AlertRow, status: str, evidence: list[dict[str, Any]]) -> dict[str, Any]:
    """An alert as the `alert` contract in schemas/ describes it."""
    values = alert.values or {}
    return {
        "schema_version": 1,
        "alert_id": alert.id,
        "rule": alert.rule,
        "scope": alert.scope,
        "scope_key": alert.scope_key,
        "status": status,
        "severity": alert.severity,
        "labels": alert.labels or {},
        "starts_at": (alert.fired_at or alert.active_since or utcnow()).isoformat() + "Z",
        "ends_at": alert.resolved_at.isoformat() + "Z" if alert.resolved_at else None,
        "window": {
            "duration_s": int(values.get("window_s", 0)) or 1,
            "count": int(values.get("count", 0)),
            "negative": int(values.get("negative", 0)),
            "neutral": int(values.get("neutral", 0)),
            "positive": int(values.get("positive", 0)),
            "negative_ratio": float(values.get("negative_ratio", 0.0)),
            "negative_zscore": values.get("negative_zscore"),
        },
        "evidence": evidence[:3],
    }


OPEN_STATES = ("pending", "firing")


class AlertLifecycle:
    def __init__(self, engine: Engine, evidence: Evidence | None = None, sole_writer: bool = False):
        """`sole_writer`: nothing else changes these alerts (a replay's own database), so the keys of
        open alerts are kept in memory instead of read from SQL on every tick."""
        self.engine = engine
        self.evidence = evidence or (lambda _key, _window: [])
        self._open: dict[str, str] | None = {} if sole_writer else None  # dedup key -> scope key

    def apply(self, evaluations: Sequence[Evaluation], now: datetime | None = None) -> list[Transition]:
        now = now or utcnow()
        for _ in range(2):
            try:
                return self._apply_once(evaluations, now)
            except IntegrityError:
                continue  # another worker created the same alert first: run again on top of its row
        return self._apply_once(evaluations, now)

    def _apply_once(self, evaluations: Sequence[Evaluation], now: datetime) -> list[Transition]:
        transitions: list[Transition] = []
        outgoing: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
        states: dict[str, tuple[str, str]] = {}  # dedup key -> (scope key, state after this step)
        with Session(self.engine) as session, session.begin():
            keys = [f"{e.rule.name}|{e.scope_key}" for e in evaluations]
            # Locked for the transaction, so two workers evaluating one key cannot both fire it.
            query = select(AlertRow).where(AlertRow.dedup_key.in_(keys)).with_for_update()
            rows = {r.dedup_key: r for r in session.scalars(query)}
            silences = list(
                session.scalars(
                    select(SilenceRow).where(SilenceRow.starts_at <= now, SilenceRow.ends_at > now)
                )
            )
            for evaluation, key in zip(evaluations, keys, strict=True):
                if key not in rows and not evaluation.active:
                    continue  # nothing to remember about a rule that holds nowhere
                alert = rows.get(key) or self._new(session, evaluation, key, now)
                before = alert.state
                notify = self._step(alert, evaluation, now)
                states[key] = (alert.scope_key, alert.state)
                if alert.state == before and alert.state not in OPEN_STATES:
                    continue  # a resolved or inactive alert keeps the figures it ended with
                values = {
                    **evaluation.values,
                    "window_s": evaluation.rule.window_s,
                    # A z-score means something only for a rule with a baseline, a surprise only for a
                    # rule that asks for it (no other computes it); otherwise they are absent.
                    "negative_zscore": evaluation.values["negative_zscore"]
                    if evaluation.rule.baseline_s
                    else None,
                    **{f: None for f in SURPRISE_FIELDS - evaluation.rule.condition.fields},
                }
                # An open alert whose figures stand still costs no UPDATE on every tick.
                if alert.state != before or notify or values != alert.values:
                    alert.values, alert.updated_at = values, now
                if alert.state == before and not notify:
                    continue
                muted = silenced(silences, alert)
                transitions.append(Transition(key, before, alert.state, muted, dict(alert.values)))
                if notify and not muted:
                    alert.last_notified_at = now
                    message = alert_message(
                        alert,
                        "resolved" if notify == "resolved" else "firing",
                        self.evidence(alert.scope_key, evaluation.rule.window_s),
                    )
                    for receiver in evaluation.rule.receivers:
                        outgoing[receiver, notify].append(message)
            for (receiver, kind), alerts in outgoing.items():
                session.add(
                    NotificationRow(
                        receiver=receiver,
                        kind=kind,
                        payload={"kind": kind, "alerts": alerts},
                        status="pending",
                        attempts=0,
                        next_attempt_at=now,
                        created_at=now,
                    )
                )
        if self._open is not None:  # committed: the kept keys follow
            for key, (scope_key, state) in states.items():
                if state in OPEN_STATES:
                    self._open[key] = scope_key
                else:
                    self._open.pop(key, None)
        for t in transitions:
            log.info(
                "alert", extra={"key": t.dedup_key, "from": t.before, "to": t.after, "silenced": t.silenced}
            )
        return transitions

    @staticmethod
    def _new(session: Session, evaluation: Evaluation, key: str, now: datetime) -> AlertRow:
        alert = AlertRow(
            id=str(uuid.uuid4()),
            dedup_key=key,
            rule=evaluation.rule.name,
            scope=evaluation.rule.scope,
            scope_key=evaluation.scope_key,
            state="inactive",
            severity=evaluation.rule.severity,
            labels=dict(evaluation.rule.labels),
            values={},
            updated_at=now,
        )
        session.add(alert)
        return alert

    @staticmethod
    def _step(alert: AlertRow, evaluation: Evaluation, now: datetime) -> str | None:
        """Moves the alert one step; returns the kind of notification the step causes, if any."""
        rule = evaluation.rule
        if evaluation.active:
            if alert.state in ("inactive", "resolved"):
                alert.state, alert.active_since = "pending", now
                alert.fired_at = alert.resolved_at = alert.last_notified_at = None
                alert.acknowledged_by = alert.acknowledged_at = None
            if alert.state == "pending" and now - alert.active_since >= timedelta(seconds=rule.for_s):
                alert.state, alert.fired_at = "firing", now
                return "firing"
            # Someone acknowledged it: it is being handled, so no more reminders until it resolves.
            if (
                alert.state == "firing"
                and alert.acknowledged_by is None
                and (
                    alert.last_notified_at is None
                    or now - alert.last_notified_at >= timedelta(seconds=rule.repeat_interval_s)
                )
            ):
                return "repeat"
            return None
        if alert.state == "pending":
            alert.state, alert.active_since = "inactive", None
        elif alert.state == "firing":
            alert.state, alert.resolved_at = "resolved", now
            return "resolved"
        return None

    def open_scope_keys(self) -> list[str]:
        """Scope keys of pending and firing alerts: the tick re-evaluates them so they can resolve."""
        if self._open is not None:
            return sorted(set(self._open.values()))
        with Session(reader(self.engine)) as session:
            rows = session.scalars(select(AlertRow.scope_key).where(AlertRow.state.in_(OPEN_STATES)))
            return sorted(set(rows))
