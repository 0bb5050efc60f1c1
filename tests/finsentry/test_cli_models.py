"""`finsentry soup` and `export` from the command line: labelled files in, tables and bundles out."""

from __future__ import annotations

import csv
from pathlib import Path

from typer.testing import CliRunner

from finsentry.cli import app
from inference import Bundle
from tests.tiny_model import CHECK_TEXTS, TOPICS, build_tiny_bundle

SENTIMENT_OF = {"earnings": "positive", "macro": "neutral", "m&a": "positive", "legal": "negative"}


def _labelled_file(path: Path, rows: range) -> str:
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["text", "topic", "sentiment"])
        for i in rows:
            topic = TOPICS[i % 4]
            writer.writerow([f"{CHECK_TEXTS[i]} ({i})", topic, SENTIMENT_OF[topic]])
    return str(path)


def test_soup_prints_each_ingredient_and_writes_the_bundle(tmp_path: Path) -> None:
    runs = [build_tiny_bundle(tmp_path / f"run{seed}", seed=seed) for seed in (0, 1)]
    files = ["--topic-col", "topic", "--sentiment-col", "sentiment"]
    args = ["soup", "--bundle", str(runs[0]), "--bundle", str(runs[1]), "--out", str(tmp_path / "soup")]
    args += ["--data", _labelled_file(tmp_path / "train.csv", range(24))]
    args += ["--valid", _labelled_file(tmp_path / "valid.csv", range(24, 32)), *files]

    result = CliRunner().invoke(app, args, env={"COLUMNS": "200"})

    assert result.exit_code == 0, result.output
    assert "ingredients, best first" in result.output
    assert str(runs[0]) in result.output and str(runs[1]) in result.output
    assert Bundle.open(tmp_path / "soup").manifest["soup"][0]["path"] in map(str, runs)


def test_soup_of_one_bundle_is_a_usage_error(tmp_path: Path) -> None:
    run = build_tiny_bundle(tmp_path / "run", seed=0)
    valid = _labelled_file(tmp_path / "valid.csv", range(8))
    args = ["soup", "--bundle", str(run), "--out", str(tmp_path / "soup"), "--data", valid, "--valid", valid]
    result = CliRunner().invoke(app, [*args, "--topic-col", "topic", "--sentiment-col", "sentiment"])
    assert result.exit_code == 2
    assert "at least two bundles" in result.output


def test_export_gates_int8_again_on_labelled_rows_and_prints_every_candidate(tmp_path: Path) -> None:
    bundle = build_tiny_bundle(tmp_path / "run", seed=0)
    valid = _labelled_file(tmp_path / "valid.csv", range(32))
    args = [
        "export",
        "--model",
        str(bundle),
        "--data",
        valid,
        "--topic-col",
        "topic",
        "--sentiment-col",
        "sentiment",
    ]

    result = CliRunner().invoke(app, args, env={"COLUMNS": "200"})

    assert result.exit_code == 0, result.output
    assert "dynamic-qint8-channel" in result.output and "blockwise" in result.output
    gate = Bundle.open(bundle).manifest["export"]["gate"]
    assert gate["by"] == "accuracy" and gate["labelled_rows"] == 32
