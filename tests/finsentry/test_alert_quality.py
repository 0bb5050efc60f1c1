"""Alert quality against labelled incidents: exact figures on hand-built episodes, the sweep's rule
changes and refusals, and `backtest run --incidents --sweep --html --json` on a tiny generated history."""

from __future__ import annotations

import json
from pathlib import Path
from xml.etree import ElementTree

import pytest

from alerts.monitor import default_rules
from finsentry.alert_quality import TOTAL, Delays, RuleQuality, assess
from finsentry.backtest import Fired
from finsentry.history import Incident
from finsentry.sweep import SweepError, parse_sweep, substitute, sweep_values
from tests.finsentry import test_backtest
from tests.finsentry.test_backtest import invoke

generated = test_backtest.generated  # the same tiny history and ratio rules, as a fixture here too

BURST = Incident("entity:co-001", 1_000, 2_000, "burst")
DRIFT = Incident("entity:co-002", 5_000, 6_000, "drift")
SELLOFF = Incident("topic:Macro", 10_000, 12_000, "selloff")
SCOPES = {"surge": "entity", "zscore": "entity", "topic": "topic", "quiet": "entity"}
FIRED = [
    Fired("surge", "entity:co-001", 1_100),  # detects the burst after 100s
    Fired("surge", "entity:co-001", 1_500),  # inside the burst too: true, but not a second detection
    Fired("surge", "entity:co-003", 3_000),  # outside every incident: a false alarm
    Fired("zscore", "entity:co-002", 5_900),  # detects the drift after 900s
    Fired("surge", "entity:co-002", 6_700),  # 700s after the drift's end: past a 600s grace
    Fired("topic", "topic:Macro", 10_400),  # detects the sell-off after 400s
]


def quality(rows: list[RuleQuality], name: str) -> RuleQuality:
    return next(r for r in rows if r.rule == name)


def test_each_rule_is_judged_on_the_incidents_of_its_scope() -> None:
    result = assess(FIRED, [BURST, DRIFT, SELLOFF], SCOPES, first=0.0, last=2 * 86_400.0, grace_s=600)
    assert result.days == 2.0
    assert quality(result.rules, "surge") == RuleQuality(
        "surge", 4, 2, 2, 1, 0.5, 0.5, 1.0, Delays(100.0, 100.0, 100.0)
    )
    assert quality(result.rules, "zscore") == RuleQuality(
        "zscore", 1, 0, 2, 1, 0.5, 1.0, 0.0, Delays(900.0, 900.0, 900.0)
    )
    assert quality(result.rules, "topic") == RuleQuality(
        "topic", 1, 0, 1, 1, 1.0, 1.0, 0.0, Delays(400.0, 400.0, 400.0)
    )
    # A rule that never fired still has its row: nothing caught, no precision to speak of.
    assert quality(result.rules, "quiet") == RuleQuality(
        "quiet", 0, 0, 2, 0, 0.0, None, 0.0, Delays(None, None, None)
    )
    # In total an incident is caught when any rule catches it; p90 of 100, 400, 900 is 800 (linear).
    assert result.total == RuleQuality(TOTAL, 6, 2, 3, 3, 1.0, 4 / 6, 1.0, Delays(400.0, 800.0, 900.0))
    assert [o.delay_s for o in result.incidents] == [{"surge": 100.0}, {"zscore": 900.0}, {"topic": 400.0}]


def test_the_grace_decides_whether_a_late_episode_detects() -> None:
    result = assess(FIRED, [DRIFT], {"surge": "entity"}, first=0.0, last=86_400.0)  # default 30 min
    [surge] = result.rules
    # Only the drift is labelled here, so the three episodes on co-001 and co-003 are false alarms.
    assert (surge.detected, surge.delays.max_s, surge.false_alarms) == (1, 1_700.0, 3)


def test_an_episode_already_firing_before_the_incident_is_a_false_alarm() -> None:
    early = [Fired("surge", "entity:co-001", 990, resolved_at=1_200)]
    result = assess(early, [BURST], {"surge": "entity"}, first=0.0, last=86_400.0)
    assert (result.total.detected, result.total.false_alarms, result.total.precision) == (0, 1, 0.0)


def test_incidents_outside_the_replayed_span_are_left_out() -> None:
    # A replay --to 4,000s: the drift (5,000s) and the sell-off began after it and cannot count.
    result = assess(FIRED[:3], [BURST, DRIFT, SELLOFF], SCOPES, first=0.0, last=4_000.0)
    assert [o.incident for o in result.incidents] == [BURST]
    assert (result.total.incidents, result.total.detected) == (1, 1)


def test_a_replay_of_no_length_has_no_rate_and_a_negative_grace_is_refused() -> None:
    result = assess([], [], {"surge": "entity"}, first=None, last=None)
    assert (result.total.recall, result.total.false_alarms_per_day) == (None, None)
    with pytest.raises(ValueError, match="grace"):
        assess([], [], {}, first=0.0, last=1.0, grace_s=-1)


def test_a_sweep_changes_the_one_number_or_duration_and_revalidates() -> None:
    surge = next(r for r in default_rules() if r.name == "company-negative-surge")
    changed = substitute(surge, "negative_ratio", 0.55)
    assert changed.condition.source == "negative_ratio >= 0.55 and count >= 20"
    assert changed.condition.evaluate({"negative_ratio": 0.56, "count": 20})
    assert substitute(surge, "count", 25.0).condition.source == "negative_ratio >= 0.6 and count >= 25"
    assert (substitute(surge, "for", 300).for_s, substitute(surge, "window", 600).window_s) == (300, 600)
    assert sweep_values("0.5:0.9:0.05") == [0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9]


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("nope.count=1:2:1", "unknown rule 'nope'; known: company-negative-surge, company-negative-zscore"),
        ("company-negative-surge.mean_score=0:1:1", "no field 'mean_score'; known: for, window"),
        ("company-negative-surge.count=1:2", "not START:STOP:STEP"),
        ("company-negative-surge.count=5:1:1", "STOP >= START"),
        ("company-negative-surge.for=30.5:31:1", "for takes whole seconds"),
        ("company-negative-surge.window=0:0:1", "window=0: Input should be greater than 0"),
        ("company-negative-surge", "expected RULE.FIELD=START:STOP:STEP"),
    ],
)
def test_a_bad_sweep_is_refused_naming_the_field(spec: str, message: str) -> None:
    with pytest.raises(SweepError, match=message):
        parse_sweep(spec, default_rules())


def test_a_variable_compared_with_two_numbers_is_refused() -> None:
    [rule] = default_rules()[:1]
    banded = rule.model_copy(update={"condition": type(rule.condition).parse("count >= 20 and count < 90")})
    with pytest.raises(SweepError, match="count is compared with 2 numbers"):
        substitute(banded, "count", 30)


def test_run_scores_sweeps_and_reports(redis_url: str, generated: Path) -> None:
    files = {
        "data": "history.jsonl",
        "rules": "rules.yaml",
        "incidents": "incidents.csv",
        "html": "report.html",
    }
    options = [part for name, file in files.items() for part in (f"--{name}", str(generated / file))]
    swept = ["--sweep", "company-negative-surge.negative_ratio=0.6:0.8:0.2"]
    code, out, err = invoke(redis_url, "run", *options, *swept, "--json")
    assert code == 0, err
    report = json.loads(out)
    quality = report["quality"]
    assert [r["rule"] for r in quality["rules"]] == ["company-negative-surge", "topic-negative-surge"]
    assert quality["total"]["rule"] == TOTAL and quality["total"]["incidents"] == 3
    assert quality["total"]["episodes"] == len(report["alerts"])
    burst = next(o for o in quality["incidents"] if o["incident"]["kind"] == "burst")
    assert "company-negative-surge" in burst["delay_s"]  # the injected burst is caught
    sweep = report["sweep"]
    assert (sweep["rule"], sweep["field"]) == ("company-negative-surge", "negative_ratio")
    assert [r["value"] for r in sweep["rows"]] == [0.6, 0.8]
    # At the file's own threshold the sweep's replay fires what the full replay's rule fired.
    at_default = sweep["rows"][0]["quality"]
    assert at_default == next(r for r in quality["rules"] if r["rule"] == "company-negative-surge")
    page = (generated / "report.html").read_text()
    assert "<svg" in page and "company-negative-surge" in page and "topic-negative-surge" in page
    svg = generated / "sweep-company-negative-surge-negative_ratio.svg"
    chart = ElementTree.parse(svg).getroot()  # noqa: S314 - the report this test just made
    assert chart.tag == "{http://www.w3.org/2000/svg}svg", "one SVG document, not charts end to end"
    assert "company-negative-surge.negative_ratio" in "".join(chart.itertext())


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--sweep", "company-negative-surge.count=1:2:1"], "--sweep needs --incidents"),
        (["--incidents", "INCIDENTS", "--sweep", "company-negative-surge.bogus=1:2:1"], "known: for, window"),
        (["--incidents", "HISTORY"], "no column 'scope_key'"),
    ],
)
def test_bad_quality_options_exit_2(redis_url: str, generated: Path, extra: list[str], message: str) -> None:
    paths = {"INCIDENTS": str(generated / "incidents.csv"), "HISTORY": str(generated / "history.jsonl")}
    args = ["run", "--data", str(generated / "history.jsonl"), *(paths.get(a, a) for a in extra)]
    code, _, err = invoke(redis_url, *args)
    assert code == 2
    assert message in " ".join(err.split())
