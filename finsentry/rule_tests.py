"""Unit tests for alert rules, in the spirit of `promtool test rules`: a YAML file of synthetic events and
the alert states, figures and notifications expected at given times.

Events go through the worker's own path: each becomes a scored event, `streams.scoring.window_event`
turns it into a window event with the worker's scope keys, and `alerts.replay.Replay` records it and
evaluates the rules on event time. Each test case gets its own Redis prefix and its own SQLite database.

    rule_files: [default_rules.yaml]     # relative to this file
    evaluation_interval: 1m              # the tick, in event time
    start: 2026-01-05T00:00:00Z          # the default; offsets count from it
    tests:
      - name: a surge fires after its `for`
        events:                          # `batch` events at each of `count` times, `every` apart
          - {at: 0s, every: 30s, count: 40, entities: [acme], sentiment: negative}
        silences: [{matchers: {scope_key: "entity:other"}, from: 0m, to: 1h}]
        expect:
          - {at: 10m, rule: company-negative-surge, scope_key: entity:acme, state: pending}
          - {at: 12m, rule: company-negative-surge, scope_key: entity:acme, state: firing,
             values: {count: 25, negative_ratio: 1}, notified: {firing: 1}}
"""

from __future__ import annotations

import itertools
import math
import uuid
from collections import Counter, deque
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, Literal, get_args

import redis
import yaml
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, model_validator
from sqlalchemy import Engine

from alerts.evaluate import RuleEvaluator
from alerts.expressions import FIELDS
from alerts.replay import Change, Replay
from alerts.rules import Rule, RulesError, load_rules, parse_duration
from alerts.windows import WindowEvent, WindowStore
from foundation.db import open_database
from streams.scoring import window_event

Seconds = Annotated[int, BeforeValidator(parse_duration)]
Sentiment = Literal["negative", "neutral", "positive"]
State = Literal["inactive", "pending", "firing", "resolved"]
NoticeKind = Literal["firing", "repeat", "resolved"]
NOTICE_KINDS: tuple[str, ...] = get_args(NoticeKind)
DEFAULT_START = datetime(2026, 1, 5, tzinfo=UTC)  # a Monday, 00:00 UTC: every bucket size divides it


class RuleTestError(ValueError):
    """A test file that cannot be run: names the test and the field."""


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class EventSpec(Strict):
    """`count` times, `every` apart from `at` (an offset from the start), a batch of `batch` events alike."""

    at: Seconds
    every: Seconds | None = None
    count: int = Field(1, ge=1)
    batch: int = Field(1, ge=1, description="events per time, recorded and checked together")
    entities: list[str] = Field(default_factory=list)
    topics: list[str] = Field(default_factory=list)
    source: str = Field("test", min_length=1)
    sentiment: Sentiment
    probabilities: dict[Sentiment, float] | None = None
    score: float | None = Field(None, ge=0, le=1, description="the label's probability; the rest is shared")

    @model_validator(mode="after")
    def _consistent(self) -> EventSpec:
        if self.count > 1 and not self.every:
            raise ValueError("`every` (a duration above 0) is needed when `count` is above 1")
        if self.probabilities is not None and self.score is not None:
            raise ValueError("give `probabilities` or `score`, not both")
        if self.probabilities and not all(0 <= p <= 1 for p in self.probabilities.values()):
            raise ValueError("probabilities lie between 0 and 1")
        return self

    def sentiment_probabilities(self) -> dict[str, float]:
        if self.probabilities is not None:
            return dict(self.probabilities)
        top = 1.0 if self.score is None else self.score
        others = [s for s in ("negative", "neutral", "positive") if s != self.sentiment]
        return {self.sentiment: top} | {s: (1 - top) / 2 for s in others}

    def times(self) -> Iterator[int]:
        return (self.at + i * (self.every or 0) for i in range(self.count) for _ in range(self.batch))


class SilenceSpec(Strict):
    matchers: dict[str, str] = Field(min_length=1)
    starts: Seconds = Field(alias="from")
    ends: Seconds = Field(alias="to")

    @model_validator(mode="after")
    def _ordered(self) -> SilenceSpec:
        if self.ends <= self.starts:
            raise ValueError("`to` must come after `from`")
        return self


class ExpectSpec(Strict):
    """At offset `at`: the alert's state, its rule's figures (± tolerance), the notices sent so far."""

    at: Seconds
    rule: str
    scope_key: str = Field(pattern=r"^(entity|topic|source|global):.+$")
    state: State | None = None
    values: dict[str, float] | None = None
    tolerance: float = Field(1e-6, ge=0)
    notified: dict[NoticeKind, Annotated[int, Field(ge=0)]] | None = None

    @model_validator(mode="after")
    def _something(self) -> ExpectSpec:
        if self.state is None and self.values is None and self.notified is None:
            raise ValueError("expect at least one of `state`, `values`, `notified`")
        unknown = sorted(set(self.values or {}) - set(FIELDS))
        if unknown:
            raise ValueError(f"unknown value {', '.join(unknown)}; known: {', '.join(FIELDS)}")
        return self


class TestCase(Strict):
    name: str = Field(min_length=1)
    events: list[EventSpec] = Field(default_factory=list)
    silences: list[SilenceSpec] = Field(default_factory=list)
    expect: list[ExpectSpec] = Field(min_length=1)


class TestFile(Strict):
    rule_files: list[str] = Field(min_length=1)
    evaluation_interval: Seconds = Field(60, gt=0)
    start: datetime = DEFAULT_START
    tests: list[TestCase] = Field(min_length=1)


@dataclass(frozen=True)
class Suite:
    path: Path
    spec: TestFile
    rules: list[Rule]

    @property
    def start(self) -> float:
        start = self.spec.start
        return (start if start.tzinfo else start.replace(tzinfo=UTC)).timestamp()


@dataclass
class Outcome:
    expected: ExpectSpec
    state: str
    values: dict[str, float]
    notified: dict[str, int]
    mismatches: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not self.mismatches


@dataclass
class CaseResult:
    name: str
    outcomes: list[Outcome]
    changes: list[Change]

    @property
    def passed(self) -> bool:
        return all(o.passed for o in self.outcomes)


def load_suite(path: Path) -> Suite:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise RuleTestError(f"{path}: cannot read it: {exc}") from exc
    try:
        spec = TestFile.model_validate(data)
    except ValidationError as exc:
        error = exc.errors()[0]
        reason = error["msg"].removeprefix("Value error, ")
        raise RuleTestError(f"{path}: {_where(error['loc'], data)}: {reason}") from exc
    rules = _load_rules(path, spec.rule_files)
    _check_expectations(path, spec, {rule.name: rule for rule in rules})
    return Suite(path, spec, rules)


def _where(loc: Sequence[int | str], data: Any) -> str:
    """`test 'name': expect[2].state` for a field of a test, the field's path otherwise."""
    if len(loc) >= 2 and loc[0] == "tests" and isinstance(loc[1], int):
        case = data["tests"][loc[1]]
        name = case.get("name") if isinstance(case, dict) else None
        label = repr(name) if name else f"#{loc[1] + 1}"
        return f"test {label}: {_dotted(loc[2:]) or 'test'}"
    return _dotted(loc) or "file"


def _dotted(loc: Sequence[int | str]) -> str:
    return "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in loc).lstrip(".")


def _load_rules(path: Path, files: list[str]) -> list[Rule]:
    rules: list[Rule] = []
    for name in files:
        try:
            loaded = load_rules(path.parent / name)
        except OSError as exc:
            raise RuleTestError(f"{path}: rule_files: cannot read {name}: {exc.strerror}") from exc
        except RulesError as exc:
            raise RuleTestError(f"{path}: rule_files: {exc}") from exc
        rules += loaded
    names = Counter(rule.name for rule in rules)
    if twice := sorted(n for n, c in names.items() if c > 1):
        raise RuleTestError(f"{path}: rule_files: rule {twice[0]!r} is defined twice")
    return rules


def _check_expectations(path: Path, spec: TestFile, rules: dict[str, Rule]) -> None:
    for case in spec.tests:
        for i, expected in enumerate(case.expect):
            rule = rules.get(expected.rule)
            where = f"{path}: test {case.name!r}: expect[{i}]"
            if rule is None:
                raise RuleTestError(f"{where}.rule: no rule {expected.rule!r}; known: {', '.join(rules)}")
            if not expected.scope_key.startswith(f"{rule.scope}:"):
                raise RuleTestError(
                    f"{where}.scope_key: {expected.scope_key!r} is not in the scope of rule"
                    f" {rule.name!r} ({rule.scope}:…)"
                )


def run_suite(suite: Suite, client: redis.Redis, workdir: Path, **window: int) -> list[CaseResult]:
    """Runs every test case; `window` takes WindowStore's bucket_s, retention_s and lateness_s."""
    results = []
    for number, case in enumerate(suite.spec.tests):
        engine = open_database(f"sqlite:///{workdir / f'case-{number}.db'}")
        store = WindowStore(client, prefix=f"fs-rules-test:{uuid.uuid4().hex}", **window)
        try:
            results.append(_run_case(suite, case, number, store, engine))
        finally:
            engine.dispose()
    return results


def _run_case(suite: Suite, case: TestCase, number: int, store: WindowStore, engine: Engine) -> CaseResult:
    start = suite.start
    events = _events(case, number, start)
    # A separate evaluator reads the figures: observing must not change the run.
    probe = RuleEvaluator(store, suite.rules)
    outcomes: dict[int, Outcome] = {}
    by_time = sorted(enumerate(case.expect), key=lambda pair: pair[1].at)
    with Replay(store, suite.rules, engine, start, suite.spec.evaluation_interval) as replay:
        for silence in case.silences:
            replay.silence(silence.matchers, start + silence.starts, start + silence.ends)
        for at, group in itertools.groupby(by_time, key=lambda pair: pair[1].at):
            due = []
            while events and events[0].event_time <= start + at:
                due.append(events.popleft())
            replay.record(due)
            replay.advance(start + at)
            outcomes |= {i: _observe(replay, probe, expected) for i, expected in group}
        changes = [_relative(c, start) for c in replay.changes]
    return CaseResult(case.name, [outcomes[i] for i in sorted(outcomes)], changes)


def _events(case: TestCase, number: int, start: float) -> deque[WindowEvent]:
    """The case's events as the worker records them, oldest first."""
    events = [
        window_event(_scored_event(spec, f"case{number}-e{i}-{n}", start + at))
        for i, spec in enumerate(case.events)
        for n, at in enumerate(spec.times())
    ]
    return deque(sorted(events, key=lambda e: e.event_time))


def _scored_event(spec: EventSpec, event_id: str, at: float) -> dict[str, Any]:
    """The fields of a scored event (the `scored` contract) that the windows read."""
    return {
        "id": event_id,
        "source": spec.source,
        "text": f"test event {event_id}",
        "published_at": datetime.fromtimestamp(at, UTC).isoformat(),
        "entities": [{"id": entity} for entity in spec.entities],
        "topics": list(spec.topics),
        "sentiment": {"label": spec.sentiment, "probabilities": spec.sentiment_probabilities()},
    }


def _observe(replay: Replay, probe: RuleEvaluator, expected: ExpectSpec) -> Outcome:
    alert = replay.alert(expected.rule, expected.scope_key)
    [evaluation] = [
        e for e in probe.evaluate([expected.scope_key], replay.now) if e.rule.name == expected.rule
    ]
    notified = Counter(
        n.kind
        for n in replay.notices()
        if n.rule == expected.rule and n.scope_key == expected.scope_key and n.at <= replay.now
    )
    outcome = Outcome(expected, alert.state, evaluation.values, {k: notified[k] for k in NOTICE_KINDS})
    if expected.state is not None and expected.state != alert.state:
        outcome.mismatches.append(f"state: expected {expected.state}, got {alert.state}")
    for name, value in (expected.values or {}).items():
        got = evaluation.values[name]
        if not math.isclose(got, value, rel_tol=0, abs_tol=expected.tolerance):
            outcome.mismatches.append(f"{name}: expected {value:g} (±{expected.tolerance:g}), got {got:g}")
    for kind, count in (expected.notified or {}).items():
        if outcome.notified[kind] != count:
            outcome.mismatches.append(f"{kind} notices: expected {count}, got {outcome.notified[kind]}")
    return outcome


def _relative(change: Change, start: float) -> Change:
    return replace(change, at=change.at - start)


def offset(seconds: float) -> str:
    """4m, 1h30m, 2d: an offset as the test file writes it."""
    remaining, parts = int(seconds), []
    for unit, size in (("d", 86_400), ("h", 3_600), ("m", 60), ("s", 1)):
        if remaining >= size:
            parts.append(f"{remaining // size}{unit}")
            remaining %= size
    return "".join(parts) or "0s"


def text_report(results: Sequence[CaseResult]) -> str:
    lines = []
    for result in results:
        lines.append(f"{'PASS' if result.passed else 'FAIL'}  {result.name}")
        for outcome in result.outcomes:
            if not outcome.passed:
                lines += _failure(outcome)
        if not result.passed:
            timeline = [
                f"{offset(c.at)} {c.rule} {c.scope_key} {c.before}->{c.after}" + (" (silenced)" * c.silenced)
                for c in result.changes
            ]
            lines.append("    changes: " + ("; ".join(timeline) or "none"))
    failed = sum(not r.passed for r in results)
    lines.append(f"{len(results) - failed} passed, {failed} failed")
    return "\n".join(lines)


def _failure(outcome: Outcome) -> list[str]:
    e = outcome.expected
    figures = " ".join(f"{k}={v:g}" for k, v in outcome.values.items())
    notices = " ".join(f"{k}={v}" for k, v in outcome.notified.items())
    return [
        f"  at {offset(e.at)} {e.rule} {e.scope_key}:",
        *(f"    {m}" for m in outcome.mismatches),
        f"    got: state {outcome.state}; {figures}; notices {notices}",
    ]


def json_report(suite: Suite, results: Sequence[CaseResult]) -> dict[str, Any]:
    return {
        "file": str(suite.path),
        "passed": all(r.passed for r in results),
        "tests": [
            {
                "name": r.name,
                "passed": r.passed,
                "expectations": [
                    {
                        "expected": o.expected.model_dump(exclude_none=True, by_alias=True),
                        "got": {"state": o.state, "values": o.values, "notified": o.notified},
                        "passed": o.passed,
                        "mismatches": o.mismatches,
                    }
                    for o in r.outcomes
                ],
                "changes": [asdict(c) for c in r.changes],
            }
            for r in results
        ],
    }
