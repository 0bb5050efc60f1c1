"""`finsentry bench trends`: the trend charts' queries on PostgreSQL with millions of events rolled up.

Synthetic history is written straight into the roll-up table by PostgreSQL itself (generate_series):
`events` events spread over `days` days of hours, each counted under `global:all`, one of `companies`
companies and one of 20 topics, as the worker would. Then the month chart of one company and the
month totals of every company are timed, each several times, with their EXPLAIN (ANALYZE) plans.
"""

from __future__ import annotations

import shutil
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from sqlalchemy import Engine, text

from finsentry.services.postgres import PostgresServer
from foundation.db import open_database
from trends import Rollups

TOPICS = 20
END = datetime(2026, 11, 29)


@dataclass(frozen=True)
class QueryTiming:
    name: str
    rows: int
    median_ms: float
    p99_ms: float
    plan: str


def fill(engine: Engine, events: int, days: int, companies: int) -> int:
    """Hour rows for every key, with counts that sum to `events` per layer of keys; returns the rows."""
    hours = days * 24
    per_hour = events / hours
    start = END - timedelta(days=days)
    layers = [("global:all", 1), ("entity:c", companies), ("topic:t", TOPICS)]
    with engine.begin() as connection:
        connection.execute(text("TRUNCATE rollup_hours"))
        for prefix, keys in layers:
            key = "'global:all'" if keys == 1 else f"'{prefix}' || k"
            connection.execute(
                text(
                    f"""
                    INSERT INTO rollup_hours (scope_key, hour, count, negative, neutral, positive, score_sum)
                    SELECT {key}, :start + make_interval(hours => h), c,
                           c * 3 / 10, c * 4 / 10, c - c * 3 / 10 - c * 4 / 10, c * 0.1
                    FROM generate_series(0, :keys - 1) AS k, generate_series(0, :hours - 1) AS h,
                         LATERAL (SELECT GREATEST(1, round(:per_key * (0.5 + random()))::int) AS c) AS n
                    """  # noqa: S608 - the bench's own generated keys
                ),
                {"start": start, "keys": keys, "hours": hours, "per_key": per_hour / keys},
            )
        connection.execute(text("ANALYZE rollup_hours"))
        return int(connection.execute(text("SELECT count(*) FROM rollup_hours")).scalar_one())


def series_sql(key: str, since: datetime) -> str:
    """The SQL that `Rollups.series` sends, written out for EXPLAIN."""
    return f"SELECT * FROM rollup_hours WHERE scope_key = '{key}' AND hour >= '{since}' ORDER BY hour"  # noqa: S608 - the bench's own generated keys


def timed(name: str, run: Callable[[], int], explain: str, engine: Engine, repeat: int = 20) -> QueryTiming:
    run()  # warm the cache, as a chart that is looked at is
    times, rows = [], 0
    for _ in range(repeat):
        began = time.perf_counter()
        rows = run()
        times.append((time.perf_counter() - began) * 1000)
    with engine.connect() as connection:
        plan = "\n".join(r[0] for r in connection.execute(text(f"EXPLAIN (ANALYZE, BUFFERS) {explain}")))
    times.sort()
    return QueryTiming(name, rows, statistics.median(times), times[int(0.99 * (len(times) - 1))], plan)


def run_trends_bench(
    database_url: str | None, events: int, days: int, companies: int, say: Callable[[str], None]
) -> tuple[int, list[QueryTiming]]:
    """On `database_url` (PostgreSQL) or on a throwaway cluster started here."""
    server, data_dir = None, None
    if not database_url:
        data_dir = Path(tempfile.mkdtemp(prefix="finsentry-bench-pg-"))
        server = PostgresServer(data_dir)
        server.start()
        database_url = server.url
    try:
        engine = open_database(database_url)
        if engine.dialect.name != "postgresql":
            raise ValueError("bench trends measures PostgreSQL: give a postgresql+psycopg:// URL")
        say(f"rolling up {events:,} synthetic events over {days} days, {companies} companies …")
        began = time.perf_counter()
        rows = fill(engine, events, days, companies)
        say(f"{rows:,} hour rows in {time.perf_counter() - began:.1f}s; timing the chart queries …")
        rollups = Rollups(engine)
        month = END - timedelta(days=30)
        keys = [f"entity:c{k}" for k in range(companies)]
        timings = [
            timed(
                "month chart, one company (720 hours)",
                lambda: len(rollups.series("entity:c7", month)),
                series_sql("entity:c7", month),
                engine,
            ),
            timed(
                "month chart, everything (global:all)",
                lambda: len(rollups.series("global:all", month)),
                series_sql("global:all", month),
                engine,
            ),
            timed(
                f"month totals of all {companies} companies",
                lambda: len(rollups.totals(keys, month)),
                "SELECT scope_key, sum(count), sum(negative) FROM rollup_hours WHERE scope_key IN ("  # noqa: S608 - the bench's own generated keys
                + ",".join(f"'{k}'" for k in keys)
                + f") AND hour >= '{month}' GROUP BY scope_key",
                engine,
            ),
        ]
        engine.dispose()
        return rows, timings
    finally:
        if server is not None:
            server.stop()
            shutil.rmtree(data_dir, ignore_errors=True)
