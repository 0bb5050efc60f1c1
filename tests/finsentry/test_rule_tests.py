"""`finsentry rules test`: the shipped tests of the default rules pass; a wrong expectation fails with a
diff; a bad file is refused with the test and the field named."""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

import pytest
from typer.testing import CliRunner

from finsentry.cli import app

DEFAULT_RULES = resources.files("alerts").joinpath("default_rules.yaml")
SURGE = "{at: 0s, every: 30s, count: 40, entities: [acme], sentiment: negative}"


def run(tests: Path, redis_url: str | None, *options: str) -> tuple[int, str, str]:
    env = {"FINSENTRY_REDIS_URL": redis_url} if redis_url else {}
    result = CliRunner().invoke(app, ["rules", "test", str(tests), *options], env=env)
    return result.exit_code, result.stdout, result.stderr


def write(tmp_path: Path, tests: str) -> Path:
    path = tmp_path / "rules_test.yaml"
    path.write_text(f"rule_files: [{DEFAULT_RULES}]\nevaluation_interval: 1m\ntests:\n{tests}")
    return path


def test_the_shipped_tests_of_the_default_rules_pass(redis_url: str) -> None:
    with resources.as_file(resources.files("alerts").joinpath("default_rules_test.yaml")) as shipped:
        code, out, err = run(shipped, redis_url)
    assert code == 0, out + err
    assert "FAIL" not in out
    assert out.strip().endswith(" passed, 0 failed")


def test_a_wrong_expectation_fails_with_expected_and_actual_state(redis_url: str, tmp_path: Path) -> None:
    tests = write(
        tmp_path,
        f"""\
  - name: right
    events: [{SURGE}]
    expect: [{{at: 12m, rule: company-negative-surge, scope_key: entity:acme, state: firing}}]
  - name: too early
    events: [{SURGE}]
    expect:
      - {{at: 9m, rule: company-negative-surge, scope_key: entity:acme, state: firing, values: {{count: 19}}}}
""",
    )
    code, out, _ = run(tests, redis_url)
    assert code == 1
    assert "PASS  right" in out
    assert "FAIL  too early" in out
    assert "state: expected firing, got inactive" in out
    assert "got: state inactive; count=19 negative=19" in out
    assert "1 passed, 1 failed" in out

    code, out, _ = run(tests, redis_url, "--json")
    assert code == 1
    report = json.loads(out)
    assert report["passed"] is False
    [right, early] = report["tests"]
    assert right["passed"] and not early["passed"]
    [outcome] = early["expectations"]
    assert outcome["expected"]["state"] == "firing"
    assert outcome["got"]["state"] == "inactive"
    assert outcome["got"]["values"]["count"] == 19
    fired = right["changes"][-1]
    assert {k: fired[k] for k in ("at", "rule", "scope_key", "before", "after", "silenced")} == {
        "at": 720,
        "rule": "company-negative-surge",
        "scope_key": "entity:acme",
        "before": "pending",
        "after": "firing",
        "silenced": False,
    }
    assert fired["values"]["count"] == 25 and len(fired["evidence"]) == 3


@pytest.mark.parametrize(
    ("events", "expectation", "message"),
    [
        (
            "[{at: 0s, every: soon, count: 3, entities: [acme], sentiment: negative}]",
            "{at: 1m, rule: company-negative-surge, scope_key: entity:acme, state: firing}",
            "test 'broken': events[0].every: 'soon' is not a duration",
        ),
        (
            "[{at: 0s, entities: [acme], sentiment: bad}]",
            "{at: 1m, rule: company-negative-surge, scope_key: entity:acme, state: firing}",
            "test 'broken': events[0].sentiment: Input should be 'negative', 'neutral' or 'positive'",
        ),
        (
            "[]",
            "{at: 1m, rule: no-such-rule, scope_key: entity:acme, state: firing}",
            "test 'broken': expect[0].rule: no rule 'no-such-rule'",
        ),
        (
            "[]",
            "{at: 1m, rule: topic-negative-surge, scope_key: entity:acme, state: firing}",
            "test 'broken': expect[0].scope_key: 'entity:acme' is not in the scope of rule",
        ),
        (
            "[]",
            "{at: 1m, rule: company-negative-surge, scope_key: entity:acme, values: {cuont: 3}}",
            "test 'broken': expect[0]: unknown value cuont",
        ),
    ],
)
def test_a_bad_file_is_refused_naming_the_test_and_field(
    redis_url: str, tmp_path: Path, events: str, expectation: str, message: str
) -> None:
    tests = write(tmp_path, f"  - name: broken\n    events: {events}\n    expect: [{expectation}]\n")
    code, out, err = run(tests, redis_url)
    assert code == 2
    assert message in " ".join(err.split())
    assert out == ""


def test_without_a_reachable_redis_it_starts_a_throwaway_one(tmp_path: Path) -> None:
    tests = write(
        tmp_path,
        f"""\
  - name: fires
    events: [{SURGE}]
    expect: [{{at: 12m, rule: company-negative-surge, scope_key: entity:acme, notified: {{firing: 1}}}}]
""",
    )
    code, out, err = run(tests, "redis://127.0.0.1:1/0")
    assert code == 0, out + err
    assert "does not answer; starting a throwaway one" in err
    assert "PASS  fires" in out
