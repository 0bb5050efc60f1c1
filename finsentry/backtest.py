"""Backtest: a recorded history through the worker's windows, rules and alert lifecycle, in event time.

Lines are read in order and recorded in batches of at most `batch` events; `alerts.replay.Replay`
evaluates the rules every `evaluation_interval_s` of event time, each tick after the events up to it,
so the alerts do not depend on how the lines were batched: a worker replaying the same history from
Kafka on event time (FINSENTRY_ALERT_CLOCK=event) fires the same ones at the same times. Nothing
sleeps and nothing goes through Kafka. Rows without a sentiment are scored first, through the
worker's own `streams.scoring.scored_event`, with the models given (one per language, routed as the
worker routes) and the matcher given: the command builds both from the worker's settings through
`inference.serving`, so the watchlist and the backend are the worker's.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import Engine

from alerts.replay import Change, Replay
from alerts.rules import Rule
from alerts.windows import WindowEvent, WindowStore
from inference import InferenceEngine
from inference.entities import EntityMatcher
from inference.languages import LanguageModels
from streams.scoring import event_time, scored_event, window_event


class BacktestError(ValueError):
    """A history that cannot be replayed; the message names the line."""


@dataclass
class Fired:
    """One alert episode: when it fired and resolved (event time), its figures and evidence then."""

    rule: str
    scope_key: str
    fired_at: float
    resolved_at: float | None = None
    values: dict[str, Any] = field(default_factory=dict)
    evidence: list[str] = field(default_factory=list)


@dataclass
class Summary:
    events: int = 0
    batches: int = 0
    scored: int = 0  # raw rows the model scored
    out_of_order: int = 0  # older than an earlier line, within the lateness: recorded, as the worker does
    late: int = 0  # older than the lateness allows: the windows refuse them
    duplicates: int = 0
    first: float | None = None
    last: float | None = None
    replay_s: float = 0.0

    @property
    def events_per_s(self) -> float:
        return self.events / self.replay_s if self.replay_s else 0.0


@dataclass
class Options:
    batch: int = 1_000
    evaluation_interval_s: float = 60.0
    since: float | None = None
    until: float | None = None
    allow_late: bool = False  # count lines past the lateness as late instead of refusing the file


def read_history(path: Path, options: Options, lateness_s: float) -> Iterator[tuple[float, dict[str, Any]]]:
    """(event time, row) of each line in the time range; a bad line raises with its number."""
    loads = _loads()
    watermark = float("-inf")
    with path.open("rb") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            row = _parse(loads, line, number)
            at = _time(row, number)
            if at < watermark - lateness_s and not options.allow_late:
                raise BacktestError(
                    f"line {number}: {row['published_at']} is more than {lateness_s:g}s older than an"
                    " earlier line; sort the history by time (or pass --allow-late to count it as late)"
                )
            watermark = max(watermark, at)
            if (options.since is None or at >= options.since) and (
                options.until is None or at < options.until
            ):
                yield at, row


def _parse(loads: Callable[[bytes], Any], line: bytes, number: int) -> dict[str, Any]:
    try:
        row = loads(line)
    except ValueError as exc:
        raise BacktestError(f"line {number}: not JSON ({exc})") from exc
    if not isinstance(row, dict):
        raise BacktestError(f"line {number}: not a JSON object")
    for name in ("id", "text", "source", "published_at"):
        if not isinstance(row.get(name), str):
            raise BacktestError(f"line {number}: field {name!r} is missing or not a string")
    return row


def _time(row: dict[str, Any], number: int) -> float:
    try:
        return event_time(row["published_at"])
    except ValueError as exc:
        raise BacktestError(f"line {number}: published_at {row['published_at']!r} is not a time") from exc


def batches(rows: Iterator[tuple[float, dict[str, Any]]], options: Options) -> Iterator[list[dict[str, Any]]]:
    """At most `batch` rows per batch, in the history's order."""
    batch: list[dict[str, Any]] = []
    for _at, row in rows:
        batch.append(row)
        if len(batch) >= options.batch:
            yield batch
            batch = []
    if batch:
        yield batch


class Scorer:
    """Scores the raw rows of a batch in one model call per language, as the worker's BatchScorer does."""

    def __init__(
        self, models: LanguageModels | InferenceEngine | None, matcher: EntityMatcher | None = None
    ) -> None:
        self.models = LanguageModels.single(models) if isinstance(models, InferenceEngine) else models
        self.matcher = matcher or EntityMatcher([])

    def __call__(self, rows: list[dict[str, Any]]) -> int:
        raw = [i for i, row in enumerate(rows) if "sentiment" not in row]
        if not raw:
            return 0
        if self.models is None:
            raise BacktestError(
                f"event {rows[raw[0]]['id']!r} has no sentiment: give --model to score raw events"
            )
        by_language: dict[str, list[int]] = {}
        for i in raw:
            by_language.setdefault(self.models.route(rows[i]["text"], rows[i].get("lang")), []).append(i)
        for language, indices in by_language.items():
            predictions = self.models.engine(language).predict([rows[i]["text"] for i in indices])
            for i, prediction in zip(indices, predictions, strict=True):
                message = rows[i]
                entities = self.matcher.enrich(message["text"], message.get("entities", ()))
                rows[i] = scored_event(message.get("kind", "news"), message, prediction, entities, language)
        return len(raw)


def run_backtest(
    path: Path,
    rules: Sequence[Rule],
    store: WindowStore,
    engine: Engine,
    options: Options,
    model: LanguageModels | InferenceEngine | None = None,
    progress: Callable[[int], None] = lambda _events: None,
    matcher: EntityMatcher | None = None,
) -> tuple[list[Fired], Summary]:
    """Every alert episode of the replay, oldest first, and what the replay counted.

    Raw rows are scored with `model` and their companies found with `matcher` (cashtags only when none).
    """
    summary, scorer = Summary(), Scorer(model, matcher)
    episodes: list[Fired] = []
    open_episodes: dict[tuple[str, str], Fired] = {}
    rows = read_history(path, options, store.lateness_s)
    replay: Replay | None = None
    seen = 0
    started = time.perf_counter()
    try:
        for batch in batches(rows, options):
            summary.scored += scorer(batch)
            events = [window_event(row) for row in batch]
            if replay is None:
                replay = Replay(store, rules, engine, events[0].event_time, options.evaluation_interval_s)
            _count_order(events, summary, store.lateness_s)
            result = replay.record(events)
            summary.late += result.late
            summary.duplicates += result.duplicates
            seen = _follow(replay, seen, episodes, open_episodes)
            summary.batches += 1
            progress(summary.events)
        if replay is not None:
            # Past the last event by the longest window: what is still open then has resolved or never will.
            replay.advance(replay.now + max(r.window_s for r in rules) + options.evaluation_interval_s)
            _follow(replay, seen, episodes, open_episodes)
    finally:
        if replay is not None:
            replay.close()  # the Redis prefix is the replay's own, even on a configured Redis
    summary.replay_s = time.perf_counter() - started
    return episodes, summary


def _count_order(events: list[WindowEvent], summary: Summary, lateness_s: float) -> None:
    for event in events:
        if summary.last is not None and summary.last - lateness_s <= event.event_time < summary.last:
            summary.out_of_order += 1
        summary.first = event.event_time if summary.first is None else min(summary.first, event.event_time)
        summary.last = event.event_time if summary.last is None else max(summary.last, event.event_time)
    summary.events += len(events)


def _follow(
    replay: Replay,
    seen: int,
    episodes: list[Fired],
    open_episodes: dict[tuple[str, str], Fired],
) -> int:
    """Turns the replay's new changes into episodes, with the figures and evidence of the firing."""
    for change in replay.changes[seen:]:
        key = (change.rule, change.scope_key)
        if change.after == "firing" and key not in open_episodes:
            open_episodes[key] = _fired(change)
            episodes.append(open_episodes[key])
        elif change.after in ("resolved", "inactive") and key in open_episodes:
            open_episodes.pop(key).resolved_at = change.at
    return len(replay.changes)


def _fired(change: Change) -> Fired:
    return Fired(change.rule, change.scope_key, change.at, None, change.values, change.evidence)


def _loads() -> Callable[[bytes], Any]:
    try:
        import orjson
    except ImportError:  # orjson is optional: the standard library reads the same lines, slower
        return json.loads
    return orjson.loads
