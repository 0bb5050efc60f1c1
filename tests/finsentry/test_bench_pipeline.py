"""`finsentry bench pipeline`: the peak rate, then latency with events paced at a fixed rate."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from finsentry import bench_pipeline
from finsentry.bench_pipeline import Load, paced, peak_rss_mib, sustained_rate
from finsentry.cli import app
from foundation.settings import get_settings


class FakeTime:
    """A clock that moves only when slept on; `stall` adds to one sleep, as a busy machine would."""

    def __init__(self, now: float = 100.0, stall_on: int = -1, stall: float = 0.0):
        self.now, self.stall_on, self.stall = now, stall_on, stall
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds + (self.stall if len(self.sleeps) == self.stall_on else 0.0)
        self.sleeps.append(seconds)


def run_paced(time: FakeTime, count: int, rate: float, tick: float) -> tuple[list[float], list[int], int]:
    """(send times, event indexes in order sent, flushes)"""
    order: list[int] = []
    flushes = [0]

    def flush() -> None:
        flushes[0] += 1

    sent = paced(count, rate, order.append, flush, clock=time.clock, sleep=time.sleep, tick=tick)
    return sent, order, flushes[0]


def test_each_event_goes_out_at_its_time_and_is_flushed() -> None:
    time = FakeTime()
    sent, order, flushes = run_paced(time, count=9, rate=8, tick=0.0625)
    assert order == list(range(9))
    assert sent == [100 + i / 8 for i in range(9)]
    assert flushes == 9, "one wake-up per event at a rate slower than the tick"


def test_behind_schedule_it_catches_up_with_what_is_due_and_never_sends_early() -> None:
    time = FakeTime(stall_on=2, stall=1.0)  # the third sleep ends a second late
    sent, order, flushes = run_paced(time, count=16, rate=8, tick=0.0625)
    assert order == list(range(16))
    assert all(at >= 100 + i / 8 for i, at in enumerate(sent)), "no event before its time"
    assert sent[3:12] == [101.375] * 9, "events 3..11 were due at the late wake-up: sent together"
    assert sent[12:] == [100 + i / 8 for i in range(12, 16)], "then back on the schedule"
    assert flushes == 3 + 1 + 4


def test_at_a_high_rate_a_flush_covers_a_tick_of_events() -> None:
    time = FakeTime()
    sent, _, flushes = run_paced(time, count=1000, rate=2000, tick=0.01)
    due = [100 + i / 2000 for i in range(1000)]
    assert all(0 <= at - at_due < 0.01 + 1e-9 for at, at_due in zip(sent, due, strict=True))
    assert sent[-1] - sent[0] >= 999 / 2000 - 1e-9, "spread over the schedule"
    assert flushes <= 1000 / (2000 * 0.01) + 2, "about one flush per tick, not one per event"


def test_an_asked_rate_overrides_the_share_of_the_peak() -> None:
    assert Load(events=10).paced_rate(peak=300.0) == 150.0
    assert Load(events=10, fraction=0.25).paced_rate(peak=300.0) == 75.0
    assert Load(events=10, rate=40.0, fraction=0.25).paced_rate(peak=300.0) == 40.0


def test_the_sustained_rate_counts_whole_batches_after_the_first() -> None:
    # Four batches of 100 records, each produced over 5 ms, one every 0.2 s after a start-up of 30 s.
    times = [30.0 + 0.2 * b + 0.00005 * r for b in range(4) for r in range(100)]
    rate = sustained_rate(times)
    assert rate["first_batch"] == 100
    assert rate["seconds"] == pytest.approx(0.6, abs=1e-3), "from the first batch's end to the last's"
    assert rate["events_per_s"] == pytest.approx(300 / 0.6, rel=1e-3), "start-up and first batch left out"


def test_a_drain_that_comes_out_as_one_batch_has_no_rate() -> None:
    with pytest.raises(ValueError, match="one batch"):
        sustained_rate([5.0 + 0.001 * k for k in range(50)])


def test_peak_rss_is_the_kernels_high_water_mark() -> None:
    status = Path(f"/proc/{os.getpid()}/status").read_text()
    kib = next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmHWM:"))
    assert peak_rss_mib(os.getpid()) == pytest.approx(kib / 1024, abs=5)
    assert peak_rss_mib(None) is None


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--rate", "0"], "Invalid value for '--rate'"),
        (["--rate", "-5"], "Invalid value for '--rate'"),
        (["--load-fraction", "0"], "Invalid value for '--load-fraction'"),
        (["--load-fraction", "1.5"], "Invalid value for '--load-fraction'"),
    ],
)
def test_a_rate_or_share_out_of_range_is_refused_by_name(args: list[str], message: str) -> None:
    result = CliRunner().invoke(app, ["bench", "pipeline", *args], env={"COLUMNS": "200"})
    assert result.exit_code == 2
    assert message in result.output


@pytest.fixture()
def bench_env(kafka_bootstrap: str, redis_url: str, tmp_path: Path) -> Iterator[dict[str, str]]:
    get_settings.cache_clear()  # the command reads this environment into the cached settings
    yield {
        "FINSENTRY_KAFKA_BOOTSTRAP": kafka_bootstrap,
        "FINSENTRY_REDIS_URL": redis_url,
        "FINSENTRY_HOME": str(tmp_path / "home"),
        "FINSENTRY_THREADS": "1",
        # A few events drained in one micro-batch have no rate to time: several batches, whatever
        # the first fetch brings.
        "FINSENTRY_MAX_BATCH": "32",
        "COLUMNS": "200",
    }
    get_settings.cache_clear()


@pytest.mark.stack
def test_paced_events_go_out_at_the_asked_rate_and_their_latency_is_reported(
    bench_env: dict[str, str], tiny_bundle: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The tiny model's calls take a few ms, not the real model's tens: its batches come out 9-40 ms
    # apart, records of one batch within 3 ms, so they are told apart by a smaller gap.
    monkeypatch.setattr(bench_pipeline, "BATCH_GAP_S", 0.006)
    events, rate = 200, 100.0
    args = ["bench", "pipeline", "--events", str(events), "--rate", str(rate), "--naive-events", "10"]
    args += ["--alerts", "0", "--model", str(tiny_bundle), "--broker-warmup", "3000", "--json"]
    result = CliRunner().invoke(app, args, env=bench_env)
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout[result.stdout.index("{") :])
    at_load = report["finsentry"]["at_load"]
    assert at_load["events"] == events, "every paced event scored"
    assert at_load["produce_seconds"] >= (events - 1) / rate, "sends spread over the schedule"
    assert 0.8 * rate <= report["load_produced_per_s"] <= rate
    assert report["load_rate"] == rate
    assert report["load_vs_peak"] == round(rate / report["peak_events_per_s"], 3)
    assert report["load_scored_per_s"] > 0
    latencies = [report[f"load_{key}_ms"] for key in ("p50", "p90", "p99", "max")]
    assert 0 < latencies[0] <= latencies[1] <= latencies[2] <= latencies[3]
    assert report["peak_events_per_s"] > 0 and report["naive_events_per_s"] > 0
    assert report["worker_peak_rss_mib"] > 0
    assert report["finsentry"]["broker_warmup_messages"] == 3000
    assert report["finsentry"]["first_batch"] <= 32, "the worker took the environment's batch size"
