"""Evaluating rules against the windows, for the scope keys a batch touched (or all, on a tick)."""

from __future__ import annotations

import statistics
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
    computed_at: float

    @classmethod
    def of(cls, windows: Sequence[WindowFigures], now: float) -> Baseline:
        counts = [w.negative for w in windows]
        mean = statistics.fmean(counts) if counts else 0.0
        spread = statistics.pstdev(counts) if len(counts) > 1 else 0.0
        return cls(mean, spread, now)

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
    """Reads the current window per batch; a baseline (hours of buckets) is read once per baseline_ttl_s."""

    def __init__(self, store: WindowStore, rules: Sequence[Rule], baseline_ttl_s: float = 60.0):
        self.store = store
        self.rules = list(rules)
        self.baseline_ttl_s = baseline_ttl_s
        self._baselines: dict[tuple[str, str], Baseline] = {}

    def evaluate(self, scope_keys: Iterable[str], now: float) -> list[Evaluation]:
        keys = sorted(set(scope_keys))
        results = []
        for rule in self.rules:
            matching = [k for k in keys if k.split(":", 1)[0] == rule.scope]
            if not matching:
                continue
            current = self.store.read_many(matching, rule.window_s, now)
            baselines = self._baselines_for(rule, matching, now) if rule.baseline_s else {}
            for key in matching:
                figures = current[key]
                zscore = baselines[key].zscore(figures.negative) if key in baselines else None
                values = rule_values(figures, zscore)
                results.append(Evaluation(rule, key, figures, values, rule.condition.evaluate(values)))
        return results

    def _baselines_for(self, rule: Rule, keys: Sequence[str], now: float) -> dict[str, Baseline]:
        assert rule.baseline_s is not None
        stale = [
            k
            for k in keys
            if (b := self._baselines.get((rule.name, k))) is None or now - b.computed_at > self.baseline_ttl_s
        ]
        if stale:
            periods = rule.baseline_s // rule.window_s
            series = self.store.read_series(stale, rule.window_s, periods, now)
            for key in stale:
                self._baselines[rule.name, key] = Baseline.of(series[key][:-1], now)
            self._forget_older_than(now - self.baseline_ttl_s)
        return {k: self._baselines[rule.name, k] for k in keys}

    def _forget_older_than(self, cutoff: float) -> None:
        for cache_key in [k for k, b in self._baselines.items() if b.computed_at < cutoff]:
            del self._baselines[cache_key]
