"""Hourly sentiment roll-ups in SQL (and minutes for two days, for the last hour's chart), written
idempotently by the worker and read by the charts.

A batch is one transaction: its event ids go into `rollup_events` (ids already there are skipped,
the same rule as the Redis windows), and only the new ones add to their hours' counts with an upsert.
A replay after a crash therefore changes nothing. Rows older than the retention are deleted by
`prune`; the event ids are kept for `dedup_days`, longer than any replay can reach back.

A chart is one query on the primary key (scope_key, hour): a month of one key is 720 rows at most.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from sqlalchemy import Connection, Engine, Table, delete, func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from foundation.clock import utcnow
from foundation.db import reader
from trends.tables import CountedEventRow, HourRow, MinuteRow, RecentItemRow, RecentKeyRow

SENTIMENTS = ("negative", "neutral", "positive")


class ScoredEvent(Protocol):
    id: str
    event_time: float  # seconds since the epoch
    sentiment: str
    score: float
    keys: tuple[str, ...]


@dataclass(frozen=True)
class Figures:
    """Counts of one scope key in one bucket (an hour, or a minute for the last hour's chart)."""

    start: datetime
    count: int
    negative: int
    neutral: int
    positive: int
    score_sum: float

    @property
    def negative_ratio(self) -> float:
        return self.negative / self.count if self.count else 0.0

    @property
    def mean_score(self) -> float:
        return self.score_sum / self.count if self.count else 0.0


@dataclass(frozen=True)
class Item:
    """What a page shows of a scored event (its text already masked)."""

    text: str
    sentiment: str
    topic: str | None
    model_version: str
    source: str | None
    url: str | None


@dataclass(frozen=True)
class Rise:
    scope_key: str
    share: float  # negative share over the span
    baseline_share: float  # over the four spans before it
    count: int


def _naive(event_time: float) -> datetime:
    return datetime.fromtimestamp(event_time, UTC).replace(tzinfo=None)


def hour_of(event_time: float) -> datetime:
    return datetime.fromtimestamp(event_time - event_time % 3600, UTC).replace(tzinfo=None)


class Rollups:
    def __init__(
        self, engine: Engine, retention_days: int = 400, dedup_days: int = 7, minute_days: int = 2
    ) -> None:
        self.engine = engine
        self.retention = timedelta(days=retention_days)
        self.minute_retention = timedelta(days=minute_days)
        self.dedup = timedelta(days=dedup_days)
        # Built once and run with a list of rows: compiled once and cached, where a multi-row VALUES
        # clause built per batch would be compiled afresh every batch (the worker's hottest SQL).
        insert = postgresql.insert if engine.dialect.name == "postgresql" else sqlite.insert
        counted = CountedEventRow.__table__
        self._claim = (
            insert(counted).on_conflict_do_nothing(index_elements=["event_id"]).returning(counted.c.event_id)
        )
        self._add_hours = _upsert(insert, HourRow.__table__, "hour")
        self._add_minutes = _upsert(insert, MinuteRow.__table__, "minute")
        self._insert_items = insert(RecentItemRow.__table__)
        self._insert_item_keys = insert(RecentKeyRow.__table__)

    def record(self, events: Sequence[ScoredEvent], items: Mapping[str, Item] | None = None) -> int:
        """Adds the batch's new events to their hours, and `items` (by event id) to the latest items of
        their keys; returns how many events were new."""
        by_id = {e.id: e for e in events}
        if not by_id:
            return 0
        now = utcnow()
        with self.engine.begin() as connection:
            rows = [{"event_id": event_id, "counted_at": now} for event_id in by_id]
            claimed = connection.execute(self._claim, rows).scalars().all()
            if claimed:
                self._add(connection, [by_id[event_id] for event_id in claimed])
                if items:
                    self._keep_items(connection, [by_id[i] for i in claimed if i in items], items, now)
        return len(claimed)

    def _keep_items(
        self,
        connection: Connection,
        events: Sequence[ScoredEvent],
        items: Mapping[str, Item],
        now: datetime,
    ) -> None:
        if not events:
            return
        times = {e.id: _naive(e.event_time) for e in events}  # once per event, not once per key
        connection.execute(
            self._insert_items,
            [
                {"event_id": e.id, "event_time": times[e.id], "counted_at": now, **vars(items[e.id])}
                for e in events
            ],
        )
        keys = {(key, times[e.id], e.id) for e in events for key in e.keys}
        connection.execute(
            self._insert_item_keys,
            [{"scope_key": k, "event_time": t, "event_id": i} for k, t, i in sorted(keys)],
        )

    def latest(self, scope_key: str, limit: int = 50) -> list[tuple[datetime, str, Item]]:
        """The newest items of a key by event time: (event time, event id, item)."""
        query = (
            select(RecentItemRow)
            .join(RecentKeyRow, RecentKeyRow.event_id == RecentItemRow.event_id)
            .where(RecentKeyRow.scope_key == scope_key)
            .order_by(RecentKeyRow.event_time.desc())
            .limit(limit)
        )
        with Session(reader(self.engine)) as session:
            return [
                (
                    row.event_time,
                    row.event_id,
                    Item(row.text, row.sentiment, row.topic, row.model_version, row.source, row.url),
                )
                for row in session.scalars(query)
            ]

    def _add(self, connection: Connection, events: Iterable[ScoredEvent]) -> None:
        sums: dict[tuple[str, datetime], dict[str, Any]] = defaultdict(
            lambda: {"count": 0, "negative": 0, "neutral": 0, "positive": 0, "score_sum": 0.0}
        )
        events = list(events)
        for upsert, column, bucket_s in ((self._add_hours, "hour", 3600), (self._add_minutes, "minute", 60)):
            sums.clear()
            for event in events:
                start = _naive(event.event_time - event.event_time % bucket_s)
                for key in event.keys:
                    row = sums[(key, start)]
                    row["count"] += 1
                    row[event.sentiment] += 1
                    row["score_sum"] += event.score
            # Sorted: two workers upserting the same buckets lock them in one order, never in a cycle.
            rows = [
                {"scope_key": key, column: start, **figures} for (key, start), figures in sorted(sums.items())
            ]
            connection.execute(upsert, rows)

    def series(self, scope_key: str, since: datetime, until: datetime | None = None) -> list[Figures]:
        """One key's hours from `since` (naive UTC), oldest first: one range scan of the primary key."""
        query = select(HourRow).where(HourRow.scope_key == scope_key, HourRow.hour >= since)
        if until is not None:
            query = query.where(HourRow.hour < until)
        with Session(reader(self.engine)) as session:
            return [_figures(row) for row in session.scalars(query.order_by(HourRow.hour))]

    def minutes(self, scope_key: str, since: datetime) -> list[Figures]:
        """One key's minutes from `since` (kept for `minute_days`): the last hour's chart."""
        query = select(MinuteRow).where(MinuteRow.scope_key == scope_key, MinuteRow.minute >= since)
        with Session(reader(self.engine)) as session:
            return [_figures(row) for row in session.scalars(query.order_by(MinuteRow.minute))]

    def totals(
        self,
        scope_keys: Sequence[str] | None,
        since: datetime,
        until: datetime | None = None,
        prefix: str | None = None,
    ) -> dict[str, Figures]:
        """Sums per key (every key, or every key with `prefix`, when `scope_keys` is None) in
        [since, until), in one grouped query."""
        query = select(
            HourRow.scope_key,
            func.sum(HourRow.count),
            func.sum(HourRow.negative),
            func.sum(HourRow.neutral),
            func.sum(HourRow.positive),
            func.sum(HourRow.score_sum),
        ).where(HourRow.hour >= since)
        if scope_keys is not None:
            query = query.where(HourRow.scope_key.in_(list(scope_keys)))
        if until is not None:
            query = query.where(HourRow.hour < until)
        if prefix is not None:
            query = query.where(HourRow.scope_key.startswith(prefix))
        query = query.group_by(HourRow.scope_key)
        with Session(reader(self.engine)) as session:
            return {
                key: Figures(since, int(c), int(n), int(u), int(p), float(s))
                for key, c, n, u, p, s in session.execute(query)
            }

    def rising(self, span: timedelta, now: datetime, top: int = 10, min_count: int = 5) -> list[Rise]:
        """Companies, topics and sources whose negative share over the last `span` rose most above their
        own share over the four spans before it (their baseline); fewer than `min_count` events: left out."""
        since = now - span
        recent = self.totals(None, since)
        baseline = self.totals(list(recent), since - 4 * span, since)
        rises = [
            Rise(
                key,
                figures.negative_ratio,
                baseline[key].negative_ratio if key in baseline else 0.0,
                figures.count,
            )
            for key, figures in recent.items()
            if figures.count >= min_count and not key.startswith("global:")
        ]
        rises = [r for r in rises if r.share > r.baseline_share]
        return sorted(rises, key=lambda r: r.share - r.baseline_share, reverse=True)[:top]

    def prune(self, now: datetime | None = None) -> tuple[int, int]:
        """Deletes hours past the retention and counted ids past the replay horizon."""
        now = now or utcnow()
        with Session(self.engine) as session, session.begin():
            hours = session.execute(delete(HourRow).where(HourRow.hour < now - self.retention)).rowcount
            session.execute(delete(MinuteRow).where(MinuteRow.minute < now - self.minute_retention))
            ids = session.execute(
                delete(CountedEventRow).where(CountedEventRow.counted_at < now - self.dedup)
            ).rowcount
            # The latest items go with the ids: a week of them is plenty for "latest".
            stale = select(RecentItemRow.event_id).where(RecentItemRow.counted_at < now - self.dedup)
            session.execute(delete(RecentKeyRow).where(RecentKeyRow.event_id.in_(stale)))
            session.execute(delete(RecentItemRow).where(RecentItemRow.counted_at < now - self.dedup))
        return hours, ids


def _upsert(insert: Callable[[Table], Any], table: Table, column: str) -> Any:
    """Adds a row's counts to the counts already in its bucket."""
    statement = insert(table)
    added = statement.excluded
    return statement.on_conflict_do_update(
        index_elements=["scope_key", column],
        set_={name: table.c[name] + added[name] for name in ("count", *SENTIMENTS, "score_sum")},
    )


def _figures(row: HourRow | MinuteRow) -> Figures:
    start = row.hour if isinstance(row, HourRow) else row.minute
    return Figures(start, row.count, row.negative, row.neutral, row.positive, row.score_sum)
