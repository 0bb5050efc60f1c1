"""Waiting out an outage: retries until the dependency answers, logs each change once, gives up in bounds."""

from __future__ import annotations

import logging
import threading

import pytest
import redis
from sqlalchemy.exc import OperationalError

from foundation import metrics
from foundation.outage import (
    Outages,
    OutageTooLong,
    Stopping,
    redis_dependency,
    sql_dependency,
)


class FlakyServer:
    """Fails with `error` for the first `failures` calls, then answers."""

    def __init__(self, failures: int, error: Exception) -> None:
        self.failures = failures
        self.error = error
        self.calls = 0

    def __call__(self, value: int) -> int:
        self.calls += 1
        if self.calls <= self.failures:
            raise self.error
        return value * 2


def outages(max_outage_s: float = 600.0, **kwargs: float) -> Outages:
    return Outages(
        [redis_dependency(), sql_dependency()],
        max_outage_s,
        base_backoff_s=0.001,
        max_backoff_s=0.005,
        **kwargs,
    )


def gauge(name: str) -> float:
    return metrics.DEPENDENCY_UP.labels(name)._value.get()


def test_a_call_waits_until_the_dependency_answers(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, "foundation.outage")
    server = FlakyServer(5, redis.ConnectionError("Connection refused"))
    guard = outages().guard("redis")
    assert guard.call(server, 21) == 42
    assert server.calls == 6
    messages = [(r.getMessage(), r.__dict__.get("dependency")) for r in caplog.records]
    assert messages == [("dependency down", "redis"), ("dependency back", "redis")], "once each way"
    assert gauge("redis") == 1


def test_state_and_gauge_follow_an_outage_that_a_periodic_attempt_sees() -> None:
    watched = outages()
    tick = watched.guard("sql")
    refused = OperationalError("SELECT 1", {}, Exception("connection refused"))
    assert tick.attempt(FlakyServer(1, refused), 1) is None, "an attempt does not wait"
    assert watched.state() == {"redis": True, "sql": False}
    assert gauge("sql") == 0
    assert tick.attempt(FlakyServer(0, refused), 1) == 2
    assert watched.state() == {"redis": True, "sql": True}
    assert gauge("sql") == 1


def test_success_of_a_call_that_does_not_need_a_dependency_does_not_clear_its_outage() -> None:
    watched = outages()
    watched.guard("sql").attempt(FlakyServer(1, OperationalError("x", {}, Exception("down"))), 1)
    watched.guard("redis").call(FlakyServer(0, redis.ConnectionError()), 1)
    assert watched.state() == {"redis": True, "sql": False}


def test_an_outage_longer_than_the_bound_ends_the_wait() -> None:
    now = [0.0]

    def clock() -> float:
        now[0] += 1.0  # every look at the clock is one second later
        return now[0]

    watched = Outages([redis_dependency()], 30, base_backoff_s=0.001, max_backoff_s=0.002, clock=clock)
    server = FlakyServer(10_000, redis.TimeoutError("Timeout reading from socket"))
    with pytest.raises(OutageTooLong, match=r"redis unreachable for 3[01]s"):
        watched.guard().call(server, 1)
    assert 25 < server.calls < 40


def test_still_down_is_logged_once_a_minute(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, "foundation.outage")
    now = [0.0]

    def clock() -> float:
        now[0] += 10.0
        return now[0]

    watched = Outages([redis_dependency()], 1_000, base_backoff_s=0.001, max_backoff_s=0.002, clock=clock)
    watched.guard().call(FlakyServer(30, redis.ConnectionError()), 1)  # ~300 s of outage
    messages = [r.getMessage() for r in caplog.records]
    assert messages.count("dependency down") == 1
    assert 4 <= messages.count("dependency still down") <= 5
    assert messages[-1] == "dependency back"


def test_other_errors_pass_through_at_once() -> None:
    server = FlakyServer(1, ValueError("a bug, not an outage"))
    with pytest.raises(ValueError):
        outages().guard().call(server, 1)
    assert server.calls == 1


def test_stopping_ends_a_wait_early() -> None:
    stop = threading.Event()
    watched = Outages([redis_dependency()], base_backoff_s=60, max_backoff_s=60, stopping=stop)
    threading.Timer(0.2, stop.set).start()
    with pytest.raises(Stopping):
        watched.guard().call(FlakyServer(10, redis.ConnectionError()), 1)


def test_unknown_dependencies_are_refused() -> None:
    with pytest.raises(ValueError, match="kafka"):
        outages().guard("kafka")
