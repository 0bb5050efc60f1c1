"""`finsentry backtest run`: a generated history's company burst fires an alert for that company inside
the incident, nothing fires in the quiet first day, and bad input is refused with its line number."""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from finsentry import history
from finsentry.cli import app


def invoke(redis_url: str, *args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, ["backtest", *args], env={"FINSENTRY_REDIS_URL": redis_url})
    return result.exit_code, result.stdout, result.stderr


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("history")
    options = ["--days", "2", "--companies", "10", "--per-day", "1500", "--seed", "11", "--json"]
    assert CliRunner().invoke(app, ["backtest", "generate", "--out", str(out), *options]).exit_code == 0
    # The ratio rules only: the z-score rule's 24h baseline makes a replay slow (see the report).
    rules = yaml.safe_load(resources.files("alerts").joinpath("default_rules.yaml").read_text())
    rules["rules"] = [r for r in rules["rules"] if "baseline" not in r]
    (out / "rules.yaml").write_text(yaml.safe_dump(rules))
    return out


def test_the_injected_burst_fires_for_its_company_and_the_quiet_day_fires_nothing(
    redis_url: str, generated: Path
) -> None:
    code, out, err = invoke(
        redis_url,
        "run",
        "--data",
        str(generated / "history.jsonl"),
        "--rules",
        str(generated / "rules.yaml"),
        "--json",
    )
    assert code == 0, err
    report = json.loads(out)
    assert report["summary"]["events"] > 1_000 and report["summary"]["late"] == 0
    incidents = history.read_incidents(generated / "incidents.csv")
    [burst] = [i for i in incidents if i.kind == "burst"]
    surges = [a for a in report["alerts"] if a["rule"] == "company-negative-surge"]
    assert any(
        a["scope_key"] == burst.scope_key and burst.start <= a["fired_at"] <= burst.end + 300 for a in surges
    ), surges
    fired = next(a for a in surges if a["scope_key"] == burst.scope_key)
    assert fired["values"]["count"] >= 20 and fired["evidence"]
    quiet_until = min(i.start for i in incidents)
    assert not [a for a in report["alerts"] if a["fired_at"] < quiet_until]


def line(event_id: str, at: str, **fields: object) -> str:
    row = {
        "id": event_id,
        "source": "wire",
        "text": "Northwind Bank shares plunge",
        "published_at": at,
        "entities": [{"id": "co-001"}],
        "topics": [],
        "sentiment": {"label": "negative", "probabilities": {"negative": 1.0}},
    }
    return json.dumps(row | fields)


@pytest.mark.parametrize(
    ("second", "message"),
    [
        ("{not json", "line 2: not JSON"),
        (line("b", "yesterday-ish"), "line 2: published_at 'yesterday-ish' is not a time"),
        (line("b", "2026-01-05T08:00:00Z"), "line 2: 2026-01-05T08:00:00Z is more than 300s older"),
        (
            json.dumps({"id": "b", "text": "x", "source": "wire", "published_at": "2026-01-05T09:00:00Z"}),
            "give --model",
        ),
    ],
)
def test_bad_input_is_refused_with_the_line(
    redis_url: str, tmp_path: Path, second: str, message: str
) -> None:
    data = tmp_path / "history.jsonl"
    data.write_text(line("a", "2026-01-05T09:00:00Z") + "\n" + second + "\n")
    code, _, err = invoke(redis_url, "run", "--data", str(data))
    assert code == 2
    assert message in " ".join(err.split())


def test_lines_past_the_lateness_may_be_counted_as_late(redis_url: str, tmp_path: Path) -> None:
    data = tmp_path / "history.jsonl"
    rows = [
        line("a", "2026-01-05T09:00:00Z"),
        line("b", "2026-01-05T08:00:00Z"),
        line("c", "2026-01-05T08:58:00Z"),
    ]
    data.write_text("\n".join(rows) + "\n")
    code, out, err = invoke(redis_url, "run", "--data", str(data), "--allow-late", "--json")
    assert code == 0, err
    summary = json.loads(out)["summary"]
    assert (summary["events"], summary["late"], summary["out_of_order"]) == (3, 1, 1)


def test_raw_rows_are_scored_with_the_model(redis_url: str, tiny_bundle: Path, tmp_path: Path) -> None:
    data = tmp_path / "history.jsonl"
    raw = {"text": "Regulator sues Northwind Bank", "source": "wire", "entities": [{"id": "co-001"}]}
    rows = [json.dumps(raw | {"id": f"r{i}", "published_at": f"2026-01-05T09:0{i}:00Z"}) for i in range(3)]
    data.write_text("\n".join([line("s", "2026-01-05T08:59:00Z"), *rows]) + "\n")
    code, out, err = invoke(redis_url, "run", "--data", str(data), "--model", str(tiny_bundle), "--json")
    assert code == 0, err
    summary = json.loads(out)["summary"]
    assert (summary["events"], summary["scored"]) == (4, 3)


COMPANY_RULE = """\
rules:
  - name: company-burst
    scope: entity
    window: 10m
    condition: count >= 5
    receivers: [default]
"""


def test_a_company_rule_fires_on_raw_history_with_the_workers_watchlist(
    redis_url: str, tiny_bundle: Path, tmp_path: Path
) -> None:
    """Raw rows name the company only in their text (no entities, no cashtag): the backtest finds it
    through FINSENTRY_WATCHLIST, as the worker does, and the company rule fires."""
    watchlist, data, rules = tmp_path / "watchlist.yaml", tmp_path / "history.jsonl", tmp_path / "rules.yaml"
    watchlist.write_text("- {id: northwind, name: Northwind Bank, tickers: [NWB], aliases: [Northwind]}\n")
    rules.write_text(COMPANY_RULE)
    texts = ["Regulator sues Northwind Bank", "Northwind cuts its outlook"]
    rows = [
        {"id": f"r{i}", "text": texts[i % 2], "source": "wire", "published_at": f"2026-01-05T09:0{i}:00Z"}
        for i in range(8)
    ]
    data.write_text("".join(json.dumps(row) + "\n" for row in rows))
    args = ["run", "--data", str(data), "--rules", str(rules), "--model", str(tiny_bundle), "--json"]
    env = {"FINSENTRY_REDIS_URL": redis_url, "FINSENTRY_WATCHLIST": str(watchlist)}
    result = CliRunner().invoke(app, ["backtest", *args], env=env)
    assert result.exit_code == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["summary"]["scored"] == 8
    assert [(a["rule"], a["scope_key"]) for a in report["alerts"]] == [("company-burst", "entity:northwind")]
