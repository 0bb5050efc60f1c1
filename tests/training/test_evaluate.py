"""Evaluating as served: a language mix scored by one bundle per language."""

from __future__ import annotations

from pathlib import Path

from labels.examples import Example
from tests.tiny_model import build_tiny_bundle
from training.evaluate import evaluate_languages


def test_a_language_mix_is_scored_by_each_languages_bundle(tmp_path: Path) -> None:
    folders = {
        "en": build_tiny_bundle(tmp_path / "en", seed=1, version="en-1", language="en"),
        "zh": build_tiny_bundle(tmp_path / "zh", seed=2, version="zh-1", language="zh"),
    }
    english = [Example(f"Shares of company {i} fall after results", sentiment="negative") for i in range(12)]
    chinese = [Example(f"公司{i}业绩大涨，股价创新高", sentiment="positive") for i in range(8)]
    reports = evaluate_languages(folders, english + chinese, progress=False)
    by_language = reports["languages"]
    assert by_language["en"]["model_version"] == "en-1" and by_language["en"]["sentiment"]["rows"] == 12
    assert by_language["zh"]["model_version"] == "zh-1" and by_language["zh"]["sentiment"]["rows"] == 8
    right = sum(
        round(by_language[lang]["sentiment"]["accuracy"] * by_language[lang]["sentiment"]["rows"])
        for lang in ("en", "zh")
    )
    assert reports["sentiment_rows_all"] == 20
    assert reports["sentiment_accuracy_all"] == right / 20
