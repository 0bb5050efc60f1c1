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


def negative_zscore(series: Sequence[WindowFigures]) -> float:
    """How unusual the newest window's negative count is against the windows before it."""
    *baseline, current = series
    counts = [w.negative for w in baseline]
    mean = statistics.fmean(counts) if counts else 0.0
    spread = statistics.pstdev(counts) if len(counts) > 1 else 0.0
    return (current.negative - mean) / max(spread, MIN_BASELINE_STDEV)


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
    def __init__(self, store: WindowStore, rules: Sequence[Rule]):
        self.store = store
        self.rules = list(rules)

    def evaluate(self, scope_keys: Iterable[str], now: float) -> list[Evaluation]:
        keys = sorted(set(scope_keys))
        results = []
        for rule in self.rules:
            matching = [k for k in keys if k.split(":", 1)[0] == rule.scope]
            if not matching:
                continue
            periods = rule.baseline_s // rule.window_s if rule.baseline_s else 1
            series = self.store.read_series(matching, rule.window_s, periods, now)
            for key in matching:
                figures = series[key][-1]
                zscore = negative_zscore(series[key]) if rule.baseline_s else None
                values = rule_values(figures, zscore)
                results.append(Evaluation(rule, key, figures, values, rule.condition.evaluate(values)))
        return results
