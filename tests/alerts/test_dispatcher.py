"""Delivery through a Slack-like receiver that rate-limits, fails and hangs, across a restart."""

from __future__ import annotations

import shutil
import tempfile
import threading
import time
from datetime import datetime, timedelta
from pathlib import Path

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from alerts.dispatcher import Dispatcher
from alerts.lifecycle import AlertLifecycle
from alerts.notifiers import SlackNotifier, slack_blocks
from alerts.store import NotificationRow
from finsentry.services.postgres import PostgresServer
from finsentry.slack_standin import Misbehaviour, SlackStandIn
from foundation.db import open_database
from foundation.outage import Outages, sql_dependency
from tests.alerts.test_lifecycle import evaluation, rule
from tests.streams.harness import wait_until


def fire(engine: Engine, count: int) -> None:
    instant = rule("instant", **{"for": "0s", "receivers": ["slack"]})
    lifecycle = AlertLifecycle(engine)
    start = datetime(2026, 11, 29, 9)
    for i in range(count):  # separate evaluations: one notification each, not one group
        lifecycle.apply([evaluation(instant, f"entity:c{i}", True)], start + timedelta(seconds=i))


def statuses(engine: Engine) -> list[str]:
    with Session(engine) as session:
        return [r.status for r in session.scalars(select(NotificationRow).order_by(NotificationRow.id))]


def dispatcher(engine: Engine, url: str) -> Dispatcher:
    notifier = SlackNotifier("slack", url, timeout_s=1.0)
    return Dispatcher(engine, {"slack": notifier}, min_interval_s=0.2, base_backoff_s=0.2, max_backoff_s=1.0)


def test_every_alert_delivered_once_through_429_500_timeout_and_a_restart(engine: Engine) -> None:
    fire(engine, 5)
    with SlackStandIn() as slack:
        slack.misbehave(Misbehaviour(429, retry_after=1), Misbehaviour(500), Misbehaviour(0, hang_s=2.5))
        first = dispatcher(engine, slack.url)
        first.run_once()
        assert statuses(engine).count("delivered") == 2, "two got through; three wait for a retry"
        del first  # the dispatcher process stops; a new one starts from the outbox alone

        second = dispatcher(engine, slack.url)
        deadline = time.monotonic() + 30
        while "pending" in statuses(engine):
            assert time.monotonic() < deadline, statuses(engine)
            second.run_once()
            time.sleep(0.1)

        assert statuses(engine) == ["delivered"] * 5
        subjects = [p["text"] for p in slack.accepted]
        assert sorted(subjects) == sorted(f"instant firing for c{i}" for i in range(5)), (
            "each once, none twice"
        )
        assert slack.requests == 8, "five deliveries and three refusals"
        gaps = [b - a for a, b in zip(slack.accepted_at, slack.accepted_at[1:], strict=False)]
        assert all(gap >= 0.18 for gap in gaps), "the dispatcher keeps the receiver's pace"


def test_a_refusal_that_a_retry_cannot_fix_is_marked_failed(engine: Engine) -> None:
    fire(engine, 1)
    with SlackStandIn() as slack:
        dispatcher(engine, slack.url.replace("XXXX", "wrong")).run_once()  # 404 no_service
    assert statuses(engine) == ["failed"]


def test_block_kit_message_shows_the_figures_and_evidence() -> None:
    payload = {
        "alerts": [
            {
                "rule": "surge",
                "status": "firing",
                "severity": "critical",
                "scope": "entity",
                "scope_key": "entity:northwind-bank",
                "window": {
                    "duration_s": 900,
                    "count": 30,
                    "negative": 24,
                    "neutral": 3,
                    "positive": 3,
                    "negative_ratio": 0.8,
                    "negative_zscore": 4.2,
                },
                "evidence": [
                    {"id": "1", "text": "Northwind Bank misses estimates", "url": "https://news.example/1"}
                ],
            }
        ]
    }
    message = slack_blocks(payload)
    body = str(message["blocks"])
    assert "northwind-bank" in body and "24 negative of 30 (80%) in 15 min" in body and "z-score 4.2" in body
    assert "Northwind Bank misses estimates" in body and "https://news.example/1" in body
    assert message["text"] == "surge firing for northwind-bank"


def test_the_dispatcher_waits_out_a_database_outage(tmp_path: Path) -> None:
    """Its own PostgreSQL, stopped for 5 s while the dispatcher runs: it keeps going and delivers."""
    server = PostgresServer(Path(tempfile.mkdtemp(prefix="finsentry-pg-dispatch-")))
    server.start()
    engine = open_database(server.url)
    stop = threading.Event()
    outages = Outages([sql_dependency()], max_outage_s=60, base_backoff_s=0.1, max_backoff_s=0.5)
    try:
        with SlackStandIn() as slack:
            running = threading.Thread(target=dispatcher(engine, slack.url).run, args=(stop, outages.guard()))
            running.start()
            fire(engine, 1)
            wait_until(lambda: len(slack.accepted) == 1, 30, "the first alert delivered")
            server.stop()
            wait_until(lambda: outages.state() == {"sql": False}, 10, "the dispatcher to see the outage")
            time.sleep(5)
            server.start()
            fire(engine, 2)  # the second of the two evaluations notifies: one new notification
            wait_until(lambda: len(slack.accepted) == 2, 30, "the alert after the outage delivered")
            assert running.is_alive(), "the dispatcher never stopped"
            assert outages.state() == {"sql": True}
    finally:
        stop.set()
        running.join(10)
        engine.dispose()
        server.stop()
        shutil.rmtree(server.data_dir, ignore_errors=True)


def test_a_slow_receiver_holds_no_lock_and_a_claimed_row_is_left_alone(engine: Engine) -> None:
    fire(engine, 2)
    with SlackStandIn() as slack:
        slack.misbehave(Misbehaviour(200, hang_s=0.8), Misbehaviour(200, hang_s=0.8))
        delivering = threading.Thread(target=dispatcher(engine, slack.url).run_once)
        delivering.start()
        wait_until(lambda: slack.requests >= 1, 5, "the first delivery to start")
        # While the receiver hangs, the workers' writes go through, and a second dispatcher finds
        # nothing it may take: the first one's claim holds the row in flight.
        started = time.monotonic()
        with Session(engine) as session, session.begin():
            session.add(
                NotificationRow(
                    receiver="slack",
                    kind="firing",
                    payload={},
                    status="failed",
                    attempts=0,
                    next_attempt_at=datetime(2026, 1, 1),
                    created_at=datetime(2026, 1, 1),
                )
            )
        assert time.monotonic() - started < 0.5, "a write waited for the delivery"
        assert dispatcher(engine, slack.url).run_once() == 1, "the other row, not the one in flight"
        delivering.join()
        assert statuses(engine)[:2] == ["delivered", "delivered"]
        assert len(slack.accepted) == 2


def test_one_connection_carries_a_receivers_messages(engine: Engine) -> None:
    fire(engine, 3)
    with SlackStandIn() as slack:
        dispatcher(engine, slack.url).run_once()

        assert statuses(engine) == ["delivered"] * 3
        assert (slack.requests, slack.connections) == (3, 1), "kept alive, as a client of Slack should"
