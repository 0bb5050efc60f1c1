"""How well the alert episodes of a backtest match the labelled incidents of its history.

An incident counts as detected by a rule when an episode of that rule on the incident's scope key
(`entity:co-007`, or `topic:Macro` for a topic-wide incident) fires within [start, end + grace]; the
delay is that first episode's `fired_at - start`. An episode already firing before the incident starts
does not count: it fired for something else. An episode that fires outside every such window of its own
scope key is a false alarm; precision is the share of episodes that are not.

Each rule is judged only on the incidents of its own scope (an `entity` rule cannot see a `topic:`
incident), so a topic rule is not blamed for missing a company's burst. The total counts every
incident, detected when any rule detects it, and every episode of every rule.
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the command line imports this module at start; the replay's imports are heavy
    from finsentry.backtest import Fired
    from finsentry.history import Incident

DEFAULT_GRACE_S = 1_800.0
TOTAL = "all rules"


@dataclass(frozen=True)
class Delays:
    """Seconds from an incident's start to its first detection; None when nothing was detected."""

    median_s: float | None
    p90_s: float | None  # linear between ranks (numpy's default percentile)
    max_s: float | None


@dataclass(frozen=True)
class RuleQuality:
    rule: str  # a rule's name, or TOTAL
    episodes: int
    false_alarms: int
    incidents: int  # the incidents the rule could see (its scope's)
    detected: int
    recall: float | None  # None when the rule could see no incident
    precision: float | None  # None when the rule fired nothing
    false_alarms_per_day: float | None  # None for a replay of no length
    delays: Delays


@dataclass(frozen=True)
class IncidentOutcome:
    incident: Incident
    delay_s: dict[str, float]  # rule name -> seconds to its first detection; empty when missed


@dataclass(frozen=True)
class Quality:
    grace_s: float
    days: float  # the replayed span
    rules: list[RuleQuality]
    total: RuleQuality
    incidents: list[IncidentOutcome]


def scope_of(scope_key: str) -> str:
    """`entity:co-001` -> `entity`: the rule scope that produces this key."""
    return scope_key.split(":", 1)[0]


def in_window(fired_at: float, incident: Incident, grace_s: float) -> bool:
    return incident.start <= fired_at <= incident.end + grace_s


def first_detections(fired: Sequence[Fired], incident: Incident, grace_s: float) -> dict[str, float]:
    """Rule name -> delay of that rule's earliest episode that detects the incident."""
    delays: dict[str, float] = {}
    for episode in fired:
        if episode.scope_key == incident.scope_key and in_window(episode.fired_at, incident, grace_s):
            delay = episode.fired_at - incident.start
            delays[episode.rule] = min(delay, delays.get(episode.rule, delay))
    return delays


def is_false_alarm(episode: Fired, incidents: Sequence[Incident], grace_s: float) -> bool:
    return not any(
        i.scope_key == episode.scope_key and in_window(episode.fired_at, i, grace_s) for i in incidents
    )


def delays(values: Sequence[float]) -> Delays:
    if not values:
        return Delays(None, None, None)
    p90 = statistics.quantiles(values, n=10, method="inclusive")[8] if len(values) > 1 else values[0]
    return Delays(float(statistics.median(values)), float(p90), float(max(values)))


def rule_quality(
    name: str,
    episodes: Sequence[Fired],
    outcomes: Sequence[IncidentOutcome],
    detection: Sequence[float],
    false_alarms: int,
    days: float,
) -> RuleQuality:
    """One row: `outcomes` are the incidents it is judged on, `detection` the delays of those detected."""
    return RuleQuality(
        rule=name,
        episodes=len(episodes),
        false_alarms=false_alarms,
        incidents=len(outcomes),
        detected=len(detection),
        recall=len(detection) / len(outcomes) if outcomes else None,
        precision=(len(episodes) - false_alarms) / len(episodes) if episodes else None,
        false_alarms_per_day=false_alarms / days if days > 0 else None,
        delays=delays(detection),
    )


def assess(
    fired: Sequence[Fired],
    incidents: Sequence[Incident],
    scopes: Mapping[str, str],
    first: float | None,
    last: float | None,
    grace_s: float = DEFAULT_GRACE_S,
) -> Quality:
    """Per rule (`scopes`: rule name -> its scope, so a rule that never fired still has a row) and in total.

    `first` and `last` are the replay's first and last event times, for the false alarms per day and
    to leave out incidents outside the replay.
    """
    if grace_s < 0:
        raise ValueError(f"grace: {grace_s:g}s is negative")
    days = (last - first) / 86_400 if first is not None and last is not None else 0.0
    # A replay of part of the history (--from/--to) is judged only on the incidents that began in it.
    replayed = [i for i in incidents if first is not None and last is not None and first <= i.start <= last]
    outcomes = [IncidentOutcome(i, first_detections(fired, i, grace_s)) for i in replayed]
    false = [is_false_alarm(e, incidents, grace_s) for e in fired]
    rows = []
    for name, scope in scopes.items():
        own = [e for e in fired if e.rule == name]
        seen = [o for o in outcomes if scope_of(o.incident.scope_key) == scope]
        detection = [o.delay_s[name] for o in seen if name in o.delay_s]
        own_false = sum(f for e, f in zip(fired, false, strict=True) if e.rule == name)
        rows.append(rule_quality(name, own, seen, detection, own_false, days))
    detection = [min(o.delay_s.values()) for o in outcomes if o.delay_s]
    total = rule_quality(TOTAL, fired, outcomes, detection, sum(false), days)
    return Quality(grace_s, days, rows, total, outcomes)
