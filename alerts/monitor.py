"""What the worker calls: rules over the windows, the lifecycle in SQL, per batch and on a tick."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path

from sqlalchemy import Engine

from alerts.evaluate import RuleEvaluator
from alerts.lifecycle import AlertLifecycle, Transition
from alerts.rules import Rule, RulesError, load_rules
from alerts.windows import WindowStore

log = logging.getLogger(__name__)


def default_rules() -> list[Rule]:
    with resources.as_file(resources.files("alerts").joinpath("default_rules.yaml")) as path:
        return load_rules(Path(path))


class AlertMonitor:
    def __init__(
        self,
        windows: WindowStore,
        rules: Sequence[Rule],
        engine: Engine,
        rules_file: Path | None = None,
        clock: Callable[[], float] = time.time,
        sole_writer: bool = False,
    ):
        self.evaluator = RuleEvaluator(windows, rules)
        self.rules_file = rules_file
        self._rules_mtime = rules_file.stat().st_mtime if rules_file else None
        # A replay runs on event time: its clock, not the wall's, picks the evidence's window.
        self.clock = clock
        self.lifecycle = AlertLifecycle(
            engine,
            evidence=lambda key, window_s: windows.evidence(key, window_s, self.clock()),
            sole_writer=sole_writer,
        )

    def check(self, scope_keys: Iterable[str], now: float | None = None) -> list[Transition]:
        """Per batch: evaluates the rules for the keys the batch touched.

        SQL is touched only when some rule holds; alerts whose rule stopped holding are moved on by
        `tick`, so a quiet batch costs Redis reads and nothing else.
        """
        now = self.clock() if now is None else now
        evaluations = self.evaluator.evaluate(scope_keys, now)
        if not any(e.active for e in evaluations):
            return []
        return self.lifecycle.apply(evaluations, _utc(now))

    def tick(self, now: float | None = None, touched: Iterable[str] = ()) -> list[Transition]:
        """Reloads a changed rules file, then re-evaluates open alerts so they resolve when events stop.

        On event time (alerts.event_time) the tick is the only evaluation: it also takes the keys that
        events touched since the tick before.
        """
        self.reload_rules_if_changed()
        open_keys = self.lifecycle.open_scope_keys()
        keys = set(open_keys).union(touched)
        if not keys:
            return []
        now = self.clock() if now is None else now
        evaluations = self.evaluator.evaluate(keys, now)
        if not open_keys and not any(e.active for e in evaluations):
            return []  # as in `check`: SQL only when some rule holds or an alert is open
        return self.lifecycle.apply(evaluations, _utc(now))

    def reload_rules_if_changed(self) -> bool:
        """A file that fails validation is reported and the rules in force stay."""
        if self.rules_file is None:
            return False
        try:
            mtime = self.rules_file.stat().st_mtime
            if mtime == self._rules_mtime:
                return False
            self._rules_mtime = mtime
            self.evaluator.rules = load_rules(self.rules_file)
        except (OSError, RulesError) as exc:
            log.error("rules not reloaded; the previous rules stay", extra={"reason": str(exc)})
            return False
        log.info("rules reloaded", extra={"rules": len(self.evaluator.rules)})
        return True


def _utc(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, UTC).replace(tzinfo=None)
