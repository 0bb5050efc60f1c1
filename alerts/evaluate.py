"""Evaluating rules against the windows, for the scope keys a batch touched (or all, on a tick).

A rule with a baseline compares the current window with the windows before it, aligned to the window
length and none overlapping the current one (a 15m rule over 24h: 96 quarter-hours). A window that
can no longer change (it ended before the watermark minus the allowed lateness) is read once and
kept, so a baseline costs one window's buckets per key as time moves on, not the whole span.

The same baseline gives `negative_surprise` and `count_surprise` (alerts/surprise.py), for the rules
whose condition uses one: how unlikely the window's count is for the key's own rate, with a prior
fitted to its peers, the rule's other keys with history. The peers are the keys this evaluator has
read a baseline for within the baseline span (the newest baseline of each), so a worker's prior comes
from the keys its batches carry, and a replay's from the keys its ticks evaluated.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from alerts.rules import Rule
from alerts.surprise import Counts, Prior
from alerts.windows import WindowFigures, WindowStore

SURPRISE_FIELDS = frozenset({"negative_surprise", "count_surprise"})
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
    """The windows before the current one: their negative counts' mean and spread (the z-score), and
    the sums of the negative and of all counts with the first window holding any event (the surprise)."""

    mean: float
    spread: float
    negative: tuple[int, int] = (0, 0)  # the sum of the windows' negative counts, and of their squares
    count: tuple[int, int] = (0, 0)  # the same for all items
    starts: range = range(0)  # the windows' starts
    first: int | None = None  # the start of the first window with any event; None: no history

    @classmethod
    def of(cls, windows: Sequence[tuple[int, int]], starts: range | None = None) -> Baseline:
        """From each window's (negative, count), oldest first."""
        # Plain floats: statistics.pstdev sums exact fractions, a hundred times slower on every batch.
        if not windows:
            return cls(0.0, 0.0)
        counts = [negative for negative, _ in windows]
        mean = sum(counts) / len(counts)
        spread = math.sqrt(sum((c - mean) ** 2 for c in counts) / len(counts)) if len(counts) > 1 else 0.0
        starts = starts if starts is not None else range(len(windows))
        first = next((s for s, (_, n) in zip(starts, windows, strict=True) if n), None)
        return cls(
            mean,
            spread,
            (sum(counts), sum(c * c for c in counts)),
            (sum(n for _, n in windows), sum(n * n for _, n in windows)),
            starts,
            first,
        )

    def zscore(self, negative: int) -> float:
        """How unusual this negative count is against the baseline."""
        return (negative - self.mean) / max(self.spread, MIN_BASELINE_STDEV)

    def counts(self, observed_from: int) -> tuple[Counts, Counts]:
        """(negative, all) over the windows from `observed_from`, the first window with an event seen
        for the rule: the windows before it are empty for every key because nothing was recorded yet."""
        windows = len(range(max(self.starts.start, observed_from), self.starts.stop, self.starts.step))
        return Counts(windows, *self.negative), Counts(windows, *self.count)


@dataclass(frozen=True)
class Priors:
    """A rule's peer priors on the negative and the all-items rate, fitted to the keys with history."""

    negative: Prior
    count: Prior
    observed_from: int | None

    def surprises(self, figures: WindowFigures, baseline: Baseline | None) -> tuple[float, float]:
        """(negative_surprise, count_surprise) of the window for a key with this baseline."""
        if baseline is None or baseline.first is None or self.observed_from is None:
            own_negative = own_count = None  # no history: the peers' prior alone
        else:
            own_negative, own_count = baseline.counts(self.observed_from)
        return (
            self.negative.surprise(figures.negative, own_negative),
            self.count.surprise(figures.count, own_count),
        )


@dataclass
class Peers:
    """A rule's keys with history: the newest baseline of each and its counts, and the priors fitted to
    them, fitted again only when a key's baseline has changed (at most once a tick, mostly once a
    window length as the baselines move on)."""

    # The first window with an event this evaluator has seen for the rule: windows before it were not
    # observed. It only moves back (a key read later may reveal an earlier event), never on.
    observed_from: int | None = None
    keys: dict[str, tuple[Baseline, Counts, Counts]] = field(default_factory=dict)
    fitted: Priors | None = None

    def update(self, baselines: Mapping[str, Baseline]) -> Priors:
        firsts = [b.first for b in baselines.values() if b.first is not None]
        if firsts and (self.observed_from is None or min(firsts) < self.observed_from):
            observed_from = self.observed_from = min(firsts)
            self.keys = {k: (b, *b.counts(observed_from)) for k, (b, _, _) in self.keys.items()}
            self.fitted = None
        for key, baseline in baselines.items():
            kept = self.keys.get(key)
            if kept is not None and (kept[0] is baseline or kept[0] == baseline):
                continue
            if baseline.first is None or self.observed_from is None:
                self.forget(key)
            else:
                self.keys[key] = (baseline, *baseline.counts(self.observed_from))
                self.fitted = None
        if self.fitted is None:
            peers = self.keys.values()
            self.fitted = Priors(
                Prior.fit([n for _, n, _ in peers]), Prior.fit([c for _, _, c in peers]), self.observed_from
            )
        return self.fitted

    def forget(self, key: str) -> None:
        if self.keys.pop(key, None) is not None:
            self.fitted = None


def rule_values(
    figures: WindowFigures, zscore: float | None, surprises: tuple[float, float] | None = None
) -> dict[str, float]:
    negative_surprise, count_surprise = surprises if surprises is not None else (0.0, 0.0)
    return {
        "count": figures.count,
        "negative": figures.negative,
        "neutral": figures.neutral,
        "positive": figures.positive,
        "negative_ratio": figures.negative_ratio,
        "positive_ratio": figures.positive / figures.count if figures.count else 0.0,
        "mean_score": figures.mean_score,
        "negative_zscore": zscore if zscore is not None else 0.0,
        "negative_surprise": negative_surprise,
        "count_surprise": count_surprise,
    }


class RuleEvaluator:
    """Reads the current window per batch; a baseline's settled windows are read once each."""

    def __init__(self, store: WindowStore, rules: Sequence[Rule]):
        self.store = store
        self.rules = list(rules)
        # (rule, key) -> (negative, count) per settled baseline window, by the window's start
        self._settled: dict[tuple[str, str], dict[int, tuple[int, int]]] = {}
        # (rule, key) -> (the baseline's end, the baseline), once every window of it has settled
        self._complete: dict[tuple[str, str], tuple[int, Baseline]] = {}
        self._swept_at: dict[str, int] = {}
        self._peers: dict[str, Peers] = {}  # rule -> its keys with history, for the peer priors

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
            # Only a rule that asks for a surprise pays for its priors (its values are 0 otherwise).
            surprising = rule.baseline_s is not None and not SURPRISE_FIELDS.isdisjoint(rule.condition.fields)
            priors = self._peers.setdefault(rule.name, Peers()).update(baselines) if surprising else None
            for key in matching:
                figures = current[key]
                zscore = baselines[key].zscore(figures.negative) if key in baselines else None
                surprises = priors.surprises(figures, baselines.get(key)) if priors else None
                values = rule_values(figures, zscore, surprises)
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
        counts: dict[str, list[tuple[int, int]]] = {}
        for periods, group in to_read.items():
            fresh = self.store.read_series(group, window, periods, end - 1) if periods else {}
            for key in group:
                kept = self._settled[rule.name, key]
                newest = [(w.negative, w.count) for w in fresh.get(key, [])]
                counts[key] = [kept[s] for s in starts[: len(starts) - periods]] + newest
                kept.update(
                    (s, n)
                    for s, n in zip(starts[len(starts) - periods :], newest, strict=True)
                    if s + window <= settled_until
                )
        baselines = {key: Baseline.of(counts[key], starts) for key in keys}
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
            if rule in self._peers:
                self._peers[rule].forget(cache_key[1])

    def _kept(self, rule: str, key: str, oldest: int) -> dict[int, tuple[int, int]]:
        """The key's settled windows, less those that have left the baseline span."""
        kept = self._settled.setdefault((rule, key), {})
        for start in [s for s in kept if s < oldest]:
            del kept[start]
        return kept
