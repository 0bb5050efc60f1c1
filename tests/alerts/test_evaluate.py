"""Rules evaluated against real Redis windows: ratios, counts and the z-score against a baseline."""

from __future__ import annotations

import uuid

import pytest
import redis

from alerts.evaluate import RuleEvaluator
from alerts.rules import Rule
from alerts.windows import WindowEvent, WindowStore

NOW = 1_800_000_000 + 86_400  # a bucket boundary
HOUR = 3_600


def rule(**fields: object) -> Rule:
    return Rule.model_validate({"receivers": ["default"], "scope": "entity", "window": "15m", **fields})


@pytest.fixture()
def store(redis_url: str) -> WindowStore:
    return WindowStore(
        redis.Redis.from_url(redis_url), prefix=f"t{uuid.uuid4().hex[:8]}", lateness_s=2 * 86_400
    )


def add(store: WindowStore, key: str, t: float, sentiment: str, n: int) -> None:
    store.record([WindowEvent(f"{key}-{t}-{sentiment}-{i}", t, sentiment, 0.0, (key,)) for i in range(n)])


def test_surge_and_zscore(store: WindowStore) -> None:
    # A quiet day for acme: two negative and five neutral items in every 15 minutes ...
    for period in range(1, 96):
        t = NOW - period * 900 - 60
        add(store, "entity:acme", t, "negative", 2 + period % 2)
        add(store, "entity:acme", t, "neutral", 5)
    # ... then a burst of negative news in the last window. helios has a burst but no history.
    add(store, "entity:acme", NOW - 30, "negative", 25)
    add(store, "entity:helios", NOW - 30, "negative", 4)
    add(store, "topic:macro", NOW - 30, "negative", 40)

    surge = rule(name="surge", condition="negative_ratio >= 0.6 and count >= 20")
    zscore = rule(name="zscore", baseline="24h", condition="negative_zscore >= 3")
    evaluations = RuleEvaluator(store, [surge, zscore]).evaluate(
        ["entity:acme", "entity:helios", "topic:macro"], NOW
    )
    by = {(e.rule.name, e.scope_key): e for e in evaluations}
    assert set(by) == {(r, k) for r in ("surge", "zscore") for k in ("entity:acme", "entity:helios")}
    assert by["surge", "entity:acme"].active and by["surge", "entity:acme"].figures.count == 25
    assert not by["surge", "entity:helios"].active, "4 items are too few for the surge rule"
    acme_z = by["zscore", "entity:acme"].values["negative_zscore"]
    assert acme_z > 20 and by["zscore", "entity:acme"].active
    assert by["zscore", "entity:helios"].values["negative_zscore"] == pytest.approx(4.0)


def test_series_windows_partition_the_span(store: WindowStore) -> None:
    for hour in range(6):
        add(store, "global:all", NOW - hour * HOUR - 10, "positive", hour + 1)
    series = store.read_series(["global:all"], HOUR, 6, NOW)["global:all"]
    assert [w.count for w in series] == [6, 5, 4, 3, 2, 1]
    assert store.read("global:all", HOUR, NOW).count == 1
    assert store.read("global:all", 6 * HOUR, NOW).count == 21


def test_a_kept_baseline_matches_one_read_afresh(store: WindowStore) -> None:
    # Windows settle (40 minutes of lateness, longer than the window) as time moves on and are kept;
    # late events into baseline windows that have not settled yet must still count.
    store = WindowStore(store.client, prefix=f"t{uuid.uuid4().hex[:8]}", lateness_s=2_400)
    zscore = rule(name="zscore", baseline="6h", condition="negative_zscore >= 3")
    kept = RuleEvaluator(store, [zscore])
    for step in range(40):
        now = NOW + step * 300
        add(store, "entity:acme", now - 5, "negative", 1 + step % 4)
        add(store, "entity:acme", now - 2_350 + 100 * (step % 5), "negative", 3)  # late, not yet settled
        [ours] = kept.evaluate(["entity:acme"], now)
        [fresh] = RuleEvaluator(store, [zscore]).evaluate(["entity:acme"], now)
        assert ours.values["negative_zscore"] == pytest.approx(fresh.values["negative_zscore"]), step
