"""Evaluating rules against the windows, for the scope keys a batch touched (or all, on a tick).

A rule with a baseline compares the current window with the windows before it, aligned to the window
length and none overlapping the current one (a 15m rule over 24h: 96 quarter-hours). A window that
can no longer change (it ended before the watermark minus the allowed lateness) is read once and
kept, so a baseline costs one window's buckets per key as time moves on, not the whole span.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from alerts.rules import Rule
from alerts.windows import WindowFigures, WindowStore

# Below this spread the baseline is too quiet for a z-score to mean much; it is floored here.
MIN_BASELINE_STDEV = 1.0


@dataclass(frozen=True)
class Evaluation:
    rule: Rule
    scope_key: str
    figures: WindowFigures
    values: dict[str, float]
    active: bool


@dataclass(frozen=True)
class Baseline:
    """Negative counts of the windows before the current one: their mean and spread."""

    mean: float
    spread: float

    @classmethod
    def of(cls, counts: Sequence[int]) -> Baseline:
        # Plain floats: statistics.pstdev sums exact fractions, a hundred times slower on every batch.
        if not counts:
            return cls(0.0, 0.0)
        mean = sum(counts) / len(counts)
        spread = math.sqrt(sum((c - mean) ** 2 for c in counts) / len(counts)) if len(counts) > 1 else 0.0
        return cls(mean, spread)

    def zscore(self, negative: int) -> float:
        """How unusual this negative count is against the baseline."""
        return (negative - self.mean) / max(self.spread, MIN_BASELINE_STDEV)


def rule_values(figures: WindowFigures, zscore: float | None) -> dict[str, float]:
    return {
        "count": figures.count,
        "negative": figures.negative,
        "neutral": figures.neutral,
        "positive": figures.positive,
        "negative_ratio": figures.negative_ratio,
        "positive_ratio": figures.positive / figures.count if figures.count else 0.0,
        "mean_score": figures.mean_score,
        "negative_zscore": zscore if zscore is not None else 0.0,
    }


class RuleEvaluator:
    """Reads the current window per batch; a baseline's settled windows are read once each."""

    def __init__(self, store: WindowStore, rules: Sequence[Rule]):
        self.store = store
        self.rules = list(rules)
        # (rule, key) -> negative count per settled baseline window, by the window's start
        self._settled: dict[tuple[str, str], dict[int, int]] = {}
        # (rule, key) -> (the baseline's end, the baseline), once every window of it has settled
        self._complete: dict[tuple[str, str], tuple[int, Baseline]] = {}
        self._swept_at: dict[str, int] = {}

    def evaluate(self, scope_keys: Iterable[str], now: float) -> list[Evaluation]:
        keys = sorted(set(scope_keys))
        results = []
        reads: dict[tuple[int, tuple[str, ...]], dict[str, WindowFigures]] = {}  # rules share windows
        for rule in self.rules:
            matching = [k for k in keys if k.split(":", 1)[0] == rule.scope]
            if not matching:
                continue
            read = (rule.window_s, tuple(matching))
            if read not in reads:
                reads[read] = self.store.read_many(matching, rule.window_s, now)
            current = reads[read]
            baselines = self._baselines_for(rule, matching, now) if rule.baseline_s else {}
            for key in matching:
                figures = current[key]
                zscore = baselines[key].zscore(figures.negative) if key in baselines else None
                values = rule_values(figures, zscore)
                results.append(Evaluation(rule, key, figures, values, rule.condition.evaluate(values)))
        return results

    def _baselines_for(self, rule: Rule, keys: Sequence[str], now: float) -> dict[str, Baseline]:
        assert rule.baseline_s is not None  # noqa: S101 - narrows a type; no check rests on it
        window = rule.window_s
        end = math.floor((now - window) / window) * window  # the newest aligned end before (now - window]
        starts = range(end - rule.baseline_s, end, window)
        if self._swept_at.get(rule.name) != end:
            self._forget_keys_older_than(rule.name, starts.start)
            self._swept_at[rule.name] = end
        baselines: dict[str, Baseline] = {}
        for key in keys:
            complete = self._complete.get((rule.name, key))
            if complete is not None and complete[0] == end:
                baselines[key] = complete[1]
        stale = [key for key in keys if key not in baselines]
        return baselines | (self._read_baselines(rule, stale, starts) if stale else {})

    def _read_baselines(self, rule: Rule, keys: Sequence[str], starts: range) -> dict[str, Baseline]:
        window, end = rule.window_s, starts.stop
        settled_until = self.store.settled_until()
        # Keys grouped by how many of their newest windows must be read (the rest are settled and kept).
        to_read: dict[int, list[str]] = {}
        for key in keys:
            kept = self._kept(rule.name, key, starts.start)
            unread = next((i for i, s in enumerate(starts) if s not in kept), len(starts))
            to_read.setdefault(len(starts) - unread, []).append(key)
        counts: dict[str, list[int]] = {}
        for periods, group in to_read.items():
            fresh = self.store.read_series(group, window, periods, end - 1) if periods else {}
            for key in group:
                kept = self._settled[rule.name, key]
                newest = [w.negative for w in fresh.get(key, [])]
                counts[key] = [kept[s] for s in starts[: len(starts) - periods]] + newest
                kept.update(
                    (s, n)
                    for s, n in zip(starts[len(starts) - periods :], newest, strict=True)
                    if s + window <= settled_until
                )
        baselines = {key: Baseline.of(counts[key]) for key in keys}
        for key in keys:
            if len(self._settled[rule.name, key]) == len(starts):
                self._complete[rule.name, key] = (end, baselines[key])
        return baselines

    def _forget_keys_older_than(self, rule: str, oldest: int) -> None:
        """Keys with nothing left in the baseline span (quiet since), so the cache stays bounded."""
        for cache_key in [
            k for k, kept in self._settled.items() if k[0] == rule and max(kept, default=oldest - 1) < oldest
        ]:
            del self._settled[cache_key]
            self._complete.pop(cache_key, None)

    def _kept(self, rule: str, key: str, oldest: int) -> dict[int, int]:
        """The key's settled windows, less those that have left the baseline span."""
        kept = self._settled.setdefault((rule, key), {})
        for start in [s for s in kept if s < oldest]:
            del kept[start]
        return kept
