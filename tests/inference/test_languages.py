"""Routing texts to one bundle per language: by the event's lang, else by its script."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from foundation.language import script_language
from inference import InferenceEngine
from inference.languages import LanguageError, LanguageModels
from tests.tiny_model import build_tiny_bundle


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> LanguageModels:
    root = tmp_path_factory.mktemp("languages")
    english = InferenceEngine(build_tiny_bundle(root / "en", seed=0, version="en-1", language="en"))
    chinese = InferenceEngine(build_tiny_bundle(root / "zh", seed=1, version="zh-1", language="zh"))
    return LanguageModels({"en": english, "zh": chinese})


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("平安银行发布业绩预告，净利润同比下降30%", "zh"),
        ("贵州茅台(600519)股价大涨 5.2%, AAPL 也涨了", "zh"),
        ("Apple beats estimates; shares up 5%", "en"),
        ("Tencent 腾讯 reports Q3 revenue of $22.1bn, beating consensus estimates by a wide margin", "en"),
        ("600519 +5%", "en"),
        ("", "en"),
    ],
)
def test_script_decides_the_language(text: str, expected: str) -> None:
    assert script_language(text) == expected


def test_each_text_goes_to_its_languages_bundle_in_order(models: LanguageModels) -> None:
    texts = [
        "Shares of Helios fall",
        "平安银行净利润下降",
        "Bank rallies",
        "Chinese text declared",
        "茅台大涨",
    ]
    langs = [None, None, "en", "zh-CN", "fr"]
    routed = asyncio.run(models.apredict(texts, langs))
    assert [language for language, _ in routed] == ["en", "zh", "en", "zh", "zh"]
    assert [p.model_version for _, p in routed] == ["en-1", "zh-1", "en-1", "zh-1", "zh-1"]
    assert models.version == "en:en-1 zh:zh-1"


def test_one_language_is_reloaded_alone(models: LanguageModels, tmp_path: Path) -> None:
    models.reload("zh", build_tiny_bundle(tmp_path / "zh2", seed=2, version="zh-2", language="zh"))
    assert models.versions == {"en": "en-1", "zh": "zh-2"}
    with pytest.raises(LanguageError, match="no bundle serves language 'fr'"):
        models.reload("fr", tmp_path / "zh2")


def test_a_single_bundle_serves_every_text(tmp_path: Path) -> None:
    only = LanguageModels.single(InferenceEngine(build_tiny_bundle(tmp_path / "b", version="one")))
    routed = asyncio.run(only.apredict(["平安银行", "Apple"], ["zh", None]))
    assert [language for language, _ in routed] == ["en", "en"]
