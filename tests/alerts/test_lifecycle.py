"""The alert lifecycle on SQLite and PostgreSQL: pending, firing, repeat, resolve, silence, grouping."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from alerts.evaluate import Evaluation, rule_values
from alerts.lifecycle import AlertLifecycle
from alerts.rules import Rule
from alerts.store import AlertRow, NotificationRow, SilenceRow
from alerts.windows import WindowFigures
from schemas import Contract

T0 = datetime(2026, 11, 29, 9, 0, 0)


def rule(name: str = "surge", **fields: object) -> Rule:
    spec = {
        "name": name,
        "scope": "entity",
        "window": "15m",
        "condition": "negative_ratio >= 0.6",
        "for": "1m",
        "repeat_interval": "1h",
        "receivers": ["slack", "webhook"],
        **fields,
    }
    return Rule.model_validate(spec)


def evaluation(r: Rule, key: str, active: bool) -> Evaluation:
    figures = WindowFigures(
        count=30, negative=24 if active else 3, neutral=3, positive=3 if active else 24, score_sum=0.0
    )
    return Evaluation(r, key, figures, rule_values(figures, None), active)


def notifications(engine: Engine) -> list[NotificationRow]:
    with Session(engine) as session:
        return list(session.scalars(select(NotificationRow).order_by(NotificationRow.id)))


def test_pending_firing_repeat_resolved(engine: Engine) -> None:
    lifecycle, surge = AlertLifecycle(engine), rule()
    steps = [
        (0, True, "pending"),
        (30, True, "pending"),
        (61, True, "firing"),
        (120, True, "firing"),
        (3_700, True, "firing"),
        (3_800, False, "resolved"),
        (3_900, False, "resolved"),
    ]
    sent = []
    for seconds, active, state in steps:
        transitions = lifecycle.apply(
            [evaluation(surge, "entity:acme", active)], T0 + timedelta(seconds=seconds)
        )
        if transitions:
            assert transitions[-1].after == state
        sent.append(len(notifications(engine)))
    # Two receivers: firing at 61 s, one repeat after the 1 h repeat_interval, the resolved notice.
    assert sent == [0, 0, 2, 2, 4, 6, 6]
    kinds = [n.kind for n in notifications(engine)]
    assert kinds == ["firing", "firing", "repeat", "repeat", "resolved", "resolved"]
    for row in notifications(engine):
        for alert in row.payload["alerts"]:
            Contract.of("alert").validate(alert)
    assert notifications(engine)[-1].payload["alerts"][0]["status"] == "resolved"
    assert notifications(engine)[0].payload["alerts"][0]["window"]["negative_zscore"] is None, "no baseline"


def test_a_blip_shorter_than_for_never_fires(engine: Engine) -> None:
    lifecycle, surge = AlertLifecycle(engine), rule()
    lifecycle.apply([evaluation(surge, "entity:acme", True)], T0)
    lifecycle.apply([evaluation(surge, "entity:acme", False)], T0 + timedelta(seconds=30))
    lifecycle.apply([evaluation(surge, "entity:acme", True)], T0 + timedelta(seconds=70))
    assert notifications(engine) == [], "the for-duration restarts after the condition lapses"


def test_silence_holds_notifications_back(engine: Engine) -> None:
    with Session(engine) as session, session.begin():
        session.add(
            SilenceRow(
                id=str(uuid.uuid4()),
                matchers={"scope_key": "entity:acme"},
                starts_at=T0,
                ends_at=T0 + timedelta(hours=2),
                created_by="ana",
                comment="known issue",
            )
        )
    lifecycle, instant = AlertLifecycle(engine), rule("instant", **{"for": "0s"})
    transitions = lifecycle.apply(
        [evaluation(instant, "entity:acme", True), evaluation(instant, "entity:helios", True)], T0
    )
    assert [(t.dedup_key, t.after, t.silenced) for t in transitions] == [
        ("instant|entity:acme", "firing", True),
        ("instant|entity:helios", "firing", False),
    ]
    [to_slack, to_webhook] = notifications(engine)
    assert [a["scope_key"] for a in to_slack.payload["alerts"]] == ["entity:helios"]
    assert to_webhook.receiver == "webhook"


def test_alerts_that_fire_together_are_grouped_per_receiver(engine: Engine) -> None:
    instant = rule("instant", **{"for": "0s"})
    AlertLifecycle(engine).apply([evaluation(instant, f"entity:c{i}", True) for i in range(5)], T0)
    rows = notifications(engine)
    assert [(r.receiver, len(r.payload["alerts"])) for r in rows] == [("slack", 5), ("webhook", 5)]
    assert AlertLifecycle(engine).open_scope_keys() == [f"entity:c{i}" for i in range(5)]


def stored(engine: Engine, key: str) -> tuple[str, datetime, dict]:
    with Session(engine) as session:
        row = session.scalars(select(AlertRow).where(AlertRow.dedup_key == key)).one()
        return row.state, row.updated_at, dict(row.values)


def test_figures_are_written_when_they_move_and_a_resolved_alert_keeps_its_last(engine: Engine) -> None:
    lifecycle, surge = AlertLifecycle(engine), rule()
    key = f"entity:{uuid.uuid4().hex[:8]}"
    dedup = f"surge|{key}"
    lifecycle.apply([evaluation(surge, key, True)], T0)
    lifecycle.apply([evaluation(surge, key, True)], T0 + timedelta(seconds=30))
    assert stored(engine, dedup)[:2] == ("pending", T0), "the same figures: no write"

    busier = WindowFigures(count=40, negative=34, neutral=3, positive=3, score_sum=0.0)
    lifecycle.apply(
        [Evaluation(surge, key, busier, rule_values(busier, None), True)], T0 + timedelta(seconds=40)
    )
    state, updated_at, values = stored(engine, dedup)
    assert (state, updated_at, values["count"]) == ("pending", T0 + timedelta(seconds=40), 40)

    lifecycle.apply([evaluation(surge, key, True)], T0 + timedelta(seconds=61))
    lifecycle.apply([evaluation(surge, key, False)], T0 + timedelta(seconds=90))
    resolved_at = T0 + timedelta(seconds=90)
    assert stored(engine, dedup)[:2] == ("resolved", resolved_at)
    quieter = WindowFigures(count=5, negative=0, neutral=0, positive=5, score_sum=0.0)
    lifecycle.apply(
        [Evaluation(surge, key, quieter, rule_values(quieter, None), False)], T0 + timedelta(seconds=120)
    )
    state, updated_at, values = stored(engine, dedup)
    assert (state, updated_at, values["count"]) == ("resolved", resolved_at, 30), (
        "the figures it resolved with"
    )
