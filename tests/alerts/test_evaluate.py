"""Rules evaluated against real Redis windows: ratios, counts, the z-score and the surprise per key."""

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


def history(store: WindowStore, key: str, per_period: dict[int, tuple[int, int]]) -> None:
    """(negative, neutral) items in the 15-minute windows `period` windows before the current one, in
    one write."""
    store.record(
        [
            WindowEvent(f"{key}-{period}-{sentiment}-{i}", NOW - period * 900 - 60, sentiment, 0.0, (key,))
            for period, (negative, neutral) in per_period.items()
            for sentiment, n in (("negative", negative), ("neutral", neutral))
            for i in range(n)
        ]
    )


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
    zscore = rule(
        name="zscore",
        baseline="6h",
        condition="negative_zscore >= 3 or negative_surprise >= 6 or count >= 99",
    )
    kept = RuleEvaluator(store, [zscore])
    for step in range(40):
        now = NOW + step * 300
        add(store, "entity:acme", now - 5, "negative", 1 + step % 4)
        add(store, "entity:acme", now - 2_350 + 100 * (step % 5), "negative", 3)  # late, not yet settled
        [ours] = kept.evaluate(["entity:acme"], now)
        [fresh] = RuleEvaluator(store, [zscore]).evaluate(["entity:acme"], now)
        for value in ("negative_zscore", "negative_surprise", "count_surprise"):
            assert ours.values[value] == pytest.approx(fresh.values[value]), (step, value)
        assert ours.values["negative_surprise"] > 0, step


def test_surprise_per_key_against_its_own_rate_and_its_peers(store: WindowStore) -> None:
    # 30 quiet companies (3-6 negative stories a day, some neutral ones) and 6 busy ones (5-11 negative
    # stories in every window); then 8 negatives in 15 minutes for a quiet one, a busy one and a company
    # never seen before.
    for i in range(30):
        negatives = {period: (1, 0) for period in range(1 + i, 96, 96 // (3 + i % 4))}
        history(store, f"entity:quiet-{i}", {p: (0, 1) for p in range(1, 97, 4)} | negatives)
    for i in range(6):
        history(store, f"entity:busy-{i}", {p: (5 + (p + i) % 7, 10) for p in range(1, 97)})
    for key in ("entity:quiet-0", "entity:busy-0", "entity:newco"):
        add(store, key, NOW - 30, "negative", 8)

    surprise = rule(name="surprise", baseline="24h", condition="negative_surprise >= 6 and negative >= 5")
    keys = (
        [f"entity:quiet-{i}" for i in range(30)] + [f"entity:busy-{i}" for i in range(6)] + ["entity:newco"]
    )
    evaluator = RuleEvaluator(store, [surprise])
    by = {e.scope_key: e for e in evaluator.evaluate(keys, NOW)}
    quiet, busy, new = by["entity:quiet-0"], by["entity:busy-0"], by["entity:newco"]
    assert quiet.values["negative_surprise"] >= 6 and quiet.active, quiet.values
    assert busy.values["negative_surprise"] < 2 and not busy.active, busy.values
    assert 0 < new.values["negative_surprise"] < 3 and not new.active, "the peers' prior, not zero"
    assert quiet.values["count_surprise"] >= 3 > busy.values["count_surprise"]
    assert by["entity:quiet-1"].values["negative_surprise"] == 0.0, "no negatives now: no surprise"
    assert by["entity:quiet-1"].values["negative_zscore"] < 0
    # A tick that touches only two keys still has the peers it read before.
    later = {e.scope_key: e.values for e in evaluator.evaluate(["entity:newco", "entity:quiet-0"], NOW + 60)}
    assert later["entity:newco"]["negative_surprise"] == pytest.approx(new.values["negative_surprise"])
    assert later["entity:quiet-0"]["negative_surprise"] == pytest.approx(quiet.values["negative_surprise"])


def test_surprise_is_0_in_rules_that_do_not_ask_for_it(store: WindowStore) -> None:
    """Without a baseline there is none; a z-score rule does not pay for the peers' priors."""
    add(store, "entity:acme", NOW - 30, "negative", 8)
    add(store, "entity:acme", NOW - 3_600, "neutral", 1)
    surge = rule(name="surge", condition="negative >= 5")
    zscore = rule(name="zscore", baseline="24h", condition="negative_zscore >= 3")
    for evaluation in RuleEvaluator(store, [surge, zscore]).evaluate(["entity:acme"], NOW):
        assert evaluation.values["negative_surprise"] == evaluation.values["count_surprise"] == 0.0


def test_windows_before_the_first_event_are_not_silence(store: WindowStore) -> None:
    """Two hours of history against a 24h baseline: the same surprise as against a 2h one."""
    for i in range(8):
        history(store, f"entity:co-{i}", {p: (p % (2 + i), 3 + i) for p in range(1, 9)})
        add(store, f"entity:co-{i}", NOW - 30, "negative", 2 + i)
    keys = [f"entity:co-{i}" for i in range(8)]
    day = rule(name="day", baseline="24h", condition="negative_surprise >= 6")
    hours = rule(name="hours", baseline="2h", condition="negative_surprise >= 6")
    by = {
        (e.rule.name, e.scope_key): e.values for e in RuleEvaluator(store, [day, hours]).evaluate(keys, NOW)
    }
    for key in keys:
        assert by["day", key]["negative_surprise"] == pytest.approx(by["hours", key]["negative_surprise"])
        assert by["day", key]["count_surprise"] == pytest.approx(by["hours", key]["count_surprise"])
    assert max(by["day", key]["negative_surprise"] for key in keys) > 1
