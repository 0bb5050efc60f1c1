"""`finsentry entities eval`: precision, recall and the worst companies ; bad input: exit 2."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from finsentry.cli import app

WATCHLIST = """
- {id: northwind, name: Northwind Bank, tickers: [NWB], aliases: [Northwind]}
- {id: helios, name: Helios Energy, aliases: [HEL]}
"""
LABELLED = [
    {"text": "Northwind Bank and HEL slide", "companies": ["northwind", "helios"]},
    {"text": "Helios Energy wins a contract", "companies": ["helios"]},
    {"text": "$NWB up after Northwind beats", "companies": ["northwind"]},
    {"text": "Heavy rain in Northwind county", "companies": []},
]


def test_eval_reports_precision_recall_and_the_worst(tmp_path: Path) -> None:
    watchlist, labelled = tmp_path / "watchlist.yaml", tmp_path / "labelled.jsonl"
    watchlist.write_text(WATCHLIST)
    labelled.write_text("".join(json.dumps(row) + "\n" for row in LABELLED))
    args = ["entities", "eval", "--file", str(labelled), "--watchlist", str(watchlist)]
    result = CliRunner().invoke(app, [*args, "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert (report["texts"], report["true_positives"], report["false_positives"]) == (4, 4, 1)
    assert (report["precision"], report["recall"]) == (0.8, 1.0)
    assert [w["id"] for w in report["worst"]] == ["northwind"]
    assert report["worst"][0]["wrong"] == ["Heavy rain in Northwind county"]

    table = CliRunner().invoke(app, args, env={"FINSENTRY_WATCHLIST": ""})
    assert table.exit_code == 0, table.output
    assert "0.800" in table.stdout and "northwind" in table.stdout


def test_eval_refuses_bad_input(tmp_path: Path) -> None:
    labelled = tmp_path / "labelled.jsonl"
    labelled.write_text('{"text": "x", "companies": "northwind"}\n')
    watchlist = tmp_path / "watchlist.yaml"
    watchlist.write_text(WATCHLIST)
    args = ["entities", "eval", "--file", str(labelled), "--watchlist", str(watchlist)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2
    assert "line 1" in result.stderr
