"""Rules on the events' own clock: evaluated every interval of event time, after the events up to it.

Prometheus evaluates its rules every `evaluation_interval`; a replay of history does the same in event
time (`finsentry backtest`, `finsentry rules test`, and the worker with FINSENTRY_ALERT_CLOCK=event).
The ticks fall on multiples of the interval. The tick at T runs once every event up to T has been
recorded: when the first event after T arrives, or when the clock is advanced to T. It sees exactly
those events however they were cut into batches, so one history gives the same alerts at the same
event times in a backtest and through a worker fed by Kafka.

A tick evaluates the scope keys that events touched since the tick before, and the keys of open
alerts (so they resolve when events stop). On the wall clock the worker instead checks each batch as it
comes and ticks on a timer (`AlertMonitor.check`, `AlertMonitor.tick`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from alerts.lifecycle import Transition
from alerts.monitor import AlertMonitor
from alerts.windows import RecordResult, WindowEvent, WindowStore


@dataclass(frozen=True)
class Tick:
    at: float
    transitions: list[Transition]


class EventTimeAlerts:
    """Records batches into the windows and runs the ticks they carry the clock past; each tick's
    changes go to `on_tick`."""

    def __init__(
        self,
        windows: WindowStore,
        monitor: AlertMonitor,
        interval_s: float,
        start: float,
        on_tick: Callable[[Tick], None] = lambda _tick: None,
    ):
        if interval_s <= 0:
            raise ValueError("the evaluation interval must be positive")
        self.windows = windows
        self.monitor = monitor
        self.interval_s = interval_s
        self.now = start  # the time of the newest tick (the start before the first)
        self._next_tick = math.ceil(start / interval_s) * interval_s
        self._touched: set[str] = set()
        # Called right after each tick, while the windows hold exactly the events up to it.
        self.on_tick = on_tick
        # An alert's evidence is read at the tick's time, not the wall's.
        monitor.clock = lambda: self.now

    def record(self, events: Sequence[WindowEvent]) -> RecordResult:
        """Records the events in their order; a tick runs just before the first event after it."""
        results: list[RecordResult] = []
        start = 0
        for i, event in enumerate(events):
            if event.event_time > self._next_tick:
                results.append(self._record(events[start:i]))
                self._ticks(until=event.event_time, inclusive=False)
                start = i
        results.append(self._record(events[start:]))
        return RecordResult(
            sum(r.counted for r in results), sum(r.duplicates for r in results), sum(r.late for r in results)
        )

    def advance(self, to: float) -> None:
        """Runs every tick up to and including `to`; the clock then reads `to` (it never goes back)."""
        self._ticks(until=to, inclusive=True)
        self.now = max(self.now, to)

    def _record(self, events: Sequence[WindowEvent]) -> RecordResult:
        if not events:
            return RecordResult(0, 0, 0)
        self._touched.update(key for event in events for key in event.keys)
        return self.windows.record(events)

    def _ticks(self, until: float, inclusive: bool) -> None:
        while self._next_tick < until or (inclusive and self._next_tick == until):
            self.now = max(self.now, self._next_tick)
            touched, self._touched = self._touched, set()
            transitions = self.monitor.tick(now=self.now, touched=touched)
            self._next_tick += self.interval_s
            self.on_tick(Tick(self.now, transitions))
