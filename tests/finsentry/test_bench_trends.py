"""`bench trends` on a throwaway PostgreSQL: the chart queries answer from the primary-key index."""

from __future__ import annotations

from finsentry.bench_trends import run_trends_bench


def test_the_month_chart_is_one_index_range_scan() -> None:
    said: list[str] = []
    rows, timings = run_trends_bench(None, events=300_000, days=60, companies=20, say=said.append)
    assert rows == 60 * 24 * (1 + 20 + 20), "an hour row per key: global, 20 companies, 20 topics"
    one_company, everything, totals = timings
    assert one_company.rows == everything.rows == 30 * 24, "a month of hours"
    assert totals.rows == 20
    for timing in (one_company, everything):
        # An index scan or a bitmap scan of the primary key, whichever the planner prefers: never all rows.
        assert "Index Scan using rollup_hours_pkey" in timing.plan or (
            "Bitmap Index Scan on rollup_hours_pkey" in timing.plan
        ), timing.plan
        assert "Seq Scan" not in timing.plan, timing.plan
    assert said and "rolling up 300,000 synthetic events" in said[0]
