"""`finsentry bench inference` with one bundle per language: each on its own texts, then a mixed stream."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from finsentry.cli import app
from tests.tiny_model import build_tiny_bundle


def test_each_language_and_the_mixed_stream_are_measured_side_by_side(tmp_path: Path) -> None:
    english = build_tiny_bundle(tmp_path / "en", seed=1, version="en-1")  # declares no language
    chinese = build_tiny_bundle(tmp_path / "zh", seed=2, version="zh-1", language="zh")
    args = ["bench", "inference", "--models", f"en={english},zh={chinese}", "--batch-sizes", "8"]
    args += ["--backends", "onnx-fp32", "--texts", "64", "--seconds", "0.2", "--min-tokens", "0", "--json"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout[result.stdout.index("{") :])
    rows = {r["language"]: r for r in report["results"]}
    assert [r["language"] for r in report["results"]] == ["en", "zh", "mixed"]
    assert rows["en"]["backend"] == rows["zh"]["backend"] == "onnx-fp32"
    assert len(rows["mixed"]["backend"].split("+")) == 2, "the mix runs each language's served backend"
    assert all(r["texts_per_s"] > 0 and r["p99_ms"] >= r["p50_ms"] for r in rows.values())
    assert any("Chinese" in line for line in report["texts"])
    assert " cores, " in report["machine"]["cpu"], "every speed figure comes with the CPU it ran on"
    assert set(report["machine"]["served"]) == {"en", "zh"}
