"""Windows in real Redis equal a brute-force recount, whatever the duplicates, disorder and lateness."""

from __future__ import annotations

import uuid
from collections import Counter

import pytest
import redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from alerts.windows import WindowEvent, WindowStore, scope_keys

BUCKET, LATENESS, WINDOW = 60, 300, 900
BASE = 1_800_000_000  # event times are absolute seconds; buckets align to multiples of BUCKET


@pytest.fixture(scope="module")
def client(redis_url: str) -> redis.Redis:
    return redis.Redis.from_url(redis_url)


def brute_force(arrivals: list[WindowEvent]) -> tuple[list[WindowEvent], Counter]:
    """Replays arrival order by the rules: first sight of an id decides; late against the watermark."""
    seen: set[str] = set()
    watermark = float("-inf")
    outcome: Counter = Counter()
    counted: list[WindowEvent] = []
    for event in arrivals:
        if event.id in seen:
            outcome["duplicates"] += 1
            continue
        seen.add(event.id)
        watermark = max(watermark, event.event_time)
        if event.event_time < watermark - LATENESS:
            outcome["late"] += 1
            continue
        outcome["counted"] += 1
        counted.append(event)
    return counted, outcome


def expected_window(counted: list[WindowEvent], key: str, start_bucket: int, end_bucket: int) -> Counter:
    totals: Counter = Counter()
    for event in counted:
        bucket = event.event_time // BUCKET * BUCKET
        if key in event.keys and start_bucket <= bucket <= end_bucket:
            totals["count"] += 1
            totals[event.sentiment] += 1
    return totals


events_strategy = st.lists(
    st.tuples(
        st.integers(0, 40),  # id: small range, so ids repeat (duplicates)
        st.integers(0, 3_000),  # event time offset: disorder and lateness
        st.sampled_from(["negative", "neutral", "positive"]),
        st.sampled_from(["acme", "helios"]),
    ),
    max_size=80,
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(raw=events_strategy, batch_size=st.integers(1, 17))
def test_windows_equal_a_brute_force_recount(client: redis.Redis, raw: list, batch_size: int) -> None:
    store = WindowStore(client, prefix=f"t{uuid.uuid4().hex[:8]}", bucket_s=BUCKET, lateness_s=LATENESS)
    arrivals = []
    first_seen: dict[int, WindowEvent] = {}
    for event_id, offset, sentiment, entity in raw:
        # A replayed id carries the same content as its first delivery, as a Kafka replay does.
        event = first_seen.setdefault(
            event_id,
            WindowEvent(
                f"e{event_id}", BASE + offset, sentiment, 0.0, scope_keys([entity], ["macro"], "wire")
            ),
        )
        arrivals.append(event)
    totals = Counter()
    for start in range(0, len(arrivals), batch_size):
        result = store.record(arrivals[start : start + batch_size])
        totals.update({"counted": result.counted, "duplicates": result.duplicates, "late": result.late})

    counted, outcome = brute_force(arrivals)
    assert +totals == +outcome
    for key in ("entity:acme", "entity:helios", "topic:macro", "global:all"):
        for now in (BASE + 900, BASE + 1_800, BASE + 3_100):
            buckets = store.buckets(WINDOW, now)
            figures = store.read(key, WINDOW, now)
            want = expected_window(counted, key, buckets[0], buckets[-1])
            got = Counter(
                {
                    "count": figures.count,
                    "negative": figures.negative,
                    "neutral": figures.neutral,
                    "positive": figures.positive,
                }
            )
            assert +got == +want, (key, now)


def test_buckets_expire_and_ratios(client: redis.Redis) -> None:
    store = WindowStore(
        client, prefix=f"t{uuid.uuid4().hex[:8]}", bucket_s=60, retention_s=400, lateness_s=300
    )
    events = [
        WindowEvent("a", BASE, "negative", -0.9, ("entity:acme",)),
        WindowEvent("b", BASE + 10, "negative", -0.5, ("entity:acme",)),
        WindowEvent("c", BASE + 20, "positive", 0.8, ("entity:acme",)),
    ]
    assert store.record(events).counted == 3
    figures = store.read("entity:acme", 900, BASE + 30)
    assert figures.count == 3 and figures.negative_ratio == pytest.approx(2 / 3)
    assert figures.mean_score == pytest.approx(-0.2)
    ttls = [client.ttl(k) for k in client.scan_iter(f"{store.prefix}:w:*")]
    assert ttls and all(0 < ttl <= 400 for ttl in ttls), "every bucket expires"


def test_evidence_is_the_most_negative_items_of_the_window(client: redis.Redis) -> None:
    store = WindowStore(client, prefix=f"t{uuid.uuid4().hex[:8]}")
    texts = {"a": 0.95, "b": 0.6, "c": 0.99, "d": 0.7}
    store.record(
        [
            WindowEvent(
                i, BASE + n, "negative", -p, ("entity:acme",), {"id": i, "text": f"text {i}", "negative": p}
            )
            for n, (i, p) in enumerate(texts.items())
        ]
    )
    store.record(
        [
            WindowEvent(
                "old",
                BASE - 2_000,
                "negative",
                -1,
                ("entity:acme",),
                {"id": "old", "text": "x", "negative": 1.0},
            )
        ]
    )
    assert [e["id"] for e in store.evidence("entity:acme", 900, BASE + 60)] == ["c", "a", "d"]
