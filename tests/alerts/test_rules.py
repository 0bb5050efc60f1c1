"""Rules files: the shipped defaults load; every mistake is reported with its line and reason."""

from __future__ import annotations

from pathlib import Path

import pytest

from alerts.rules import RulesError, load_rules

DEFAULTS = Path(__file__).resolve().parents[2] / "alerts" / "default_rules.yaml"

GOOD = """\
rules:
  - name: surge
    scope: entity
    window: 15m
    condition: negative_ratio >= 0.6 and count >= 20
    for: 2m
    severity: critical
    receivers: [slack]
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "rules.yaml"
    path.write_text(text)
    return path


def test_a_surprise_rule_with_a_baseline_loads(tmp_path: Path) -> None:
    text = GOOD.replace("negative_ratio >= 0.6 and count >= 20", "negative_surprise >= 6 and negative >= 5")
    [rule] = load_rules(write(tmp_path, text.replace("    for: 2m\n", "    baseline: 24h\n    for: 2m\n")))
    assert rule.baseline_s == 86_400 and rule.condition.fields == {"negative_surprise", "negative"}
    too_short = text.replace("    for: 2m\n", "    baseline: 15m\n    for: 2m\n")
    with pytest.raises(RulesError, match="at least two windows"):
        load_rules(write(tmp_path, too_short))


def test_shipped_defaults_load() -> None:
    rules = {r.name: r for r in load_rules(DEFAULTS)}
    surge = rules["company-negative-surge"]
    assert (surge.window_s, surge.for_s, surge.repeat_interval_s) == (900, 120, 14_400)
    assert rules["company-negative-zscore"].baseline_s == 86_400
    assert surge.condition.evaluate({"negative_ratio": 0.7, "count": 25})


@pytest.mark.parametrize(
    ("change", "line", "reason"),
    [
        (("window: 15m", "window: 15 minutes"), 4, "window: '15 minutes' is not a duration"),
        (("negative_ratio >= 0.6", "negatve_ratio >= 0.6"), 5, "unknown field 'negatve_ratio'"),
        (("negative_ratio >= 0.6", "negative_zscore >= 3"), 2, "needs a baseline"),
        (("negative_ratio >= 0.6", "negative_surprise >= 6"), 2, "negative_surprise needs a baseline"),
        (("negative_ratio >= 0.6", "count_surprise >= 6"), 2, "count_surprise needs a baseline"),
        (("scope: entity", "scope: company"), 3, "scope"),
        (("severity: critical", "severity: panic"), 7, "severity"),
        (("receivers: [slack]", "receivers: []"), 8, "receivers"),
        (("    for: 2m\n", "    for: 2m\n    colour: red\n"), 7, "colour"),
        (("scope: entity", "scope: [entity"), 3, "not valid YAML"),
    ],
)
def test_errors_name_the_line_and_the_reason(
    tmp_path: Path, change: tuple[str, str], line: int, reason: str
) -> None:
    path = write(tmp_path, GOOD.replace(*change))
    with pytest.raises(RulesError) as caught:
        load_rules(path)
    message = str(caught.value)
    assert reason in message, message
    assert message.startswith(f"{path}:{line}:") or "not valid YAML" in message, message


def test_duplicate_names_are_refused(tmp_path: Path) -> None:
    body = GOOD.split("\n", 1)[1]
    with pytest.raises(RulesError, match="used twice"):
        load_rules(write(tmp_path, "rules:\n" + body + body))
