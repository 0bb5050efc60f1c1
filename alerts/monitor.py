"""What the worker calls: rules over the windows, the lifecycle in SQL, per batch and on a tick."""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path

from sqlalchemy import Engine

from alerts.evaluate import RuleEvaluator
from alerts.lifecycle import AlertLifecycle, Transition
from alerts.rules import Rule, load_rules
from alerts.store import Base
from alerts.windows import WindowStore


def default_rules() -> list[Rule]:
    with resources.as_file(resources.files("alerts").joinpath("default_rules.yaml")) as path:
        return load_rules(Path(path))


class AlertMonitor:
    def __init__(self, windows: WindowStore, rules: Sequence[Rule], engine: Engine):
        Base.metadata.create_all(engine)
        self.evaluator = RuleEvaluator(windows, rules)
        self.lifecycle = AlertLifecycle(
            engine, evidence=lambda key, window_s: windows.evidence(key, window_s, time.time())
        )

    def check(self, scope_keys: Iterable[str], now: float | None = None) -> list[Transition]:
        """Evaluates the rules for these keys (those a batch touched) and moves their alerts on."""
        now = time.time() if now is None else now
        evaluations = self.evaluator.evaluate(scope_keys, now)
        return self.lifecycle.apply(evaluations, datetime.fromtimestamp(now, UTC).replace(tzinfo=None))

    def tick(self, now: float | None = None) -> list[Transition]:
        """Re-evaluates open alerts, so that they resolve when their events stop coming."""
        return self.check(self.lifecycle.open_scope_keys(), now)
