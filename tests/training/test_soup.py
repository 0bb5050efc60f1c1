"""Model soups: the greedy average of bundles of one base, its lineage, and the refusals."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from inference import Bundle, InferenceEngine
from inference.model import load_module
from labels.examples import Example
from tests.tiny_model import CHECK_TEXTS, TOPICS, build_tiny_bundle
from training.soup import SoupError, average, soup

SENTIMENT_OF = {"earnings": "positive", "macro": "neutral", "m&a": "positive", "legal": "negative"}
EXAMPLES = [
    Example(text=f"{text} ({i})", topic=TOPICS[i % 4], sentiment=SENTIMENT_OF[TOPICS[i % 4]])
    for i, text in enumerate(CHECK_TEXTS)
]


def test_the_average_holds_the_mean_of_every_weight(tmp_path: Path) -> None:
    a = load_module(Bundle.open(build_tiny_bundle(tmp_path / "a", seed=0)))
    b = load_module(Bundle.open(build_tiny_bundle(tmp_path / "b", seed=1)))
    mean = average([a, b]).state_dict()
    for key, tensor in a.state_dict().items():
        if tensor.is_floating_point():
            torch.testing.assert_close(mean[key], (tensor + b.state_dict()[key]) / 2)
    assert not torch.equal(mean["topic_head.weight"], a.state_dict()["topic_head.weight"])


def test_a_greedy_soup_is_never_worse_on_validation_than_its_best_ingredient(tmp_path: Path) -> None:
    paths = [build_tiny_bundle(tmp_path / f"run{seed}", seed=seed) for seed in (0, 1, 2)]

    result = soup(paths, EXAMPLES[:24], EXAMPLES[24:], tmp_path / "soup")

    ingredients = result.metrics["ingredients"]
    scores = [ing["valid"]["score"] for ing in ingredients]
    assert scores == sorted(scores, reverse=True), "tried best first"
    assert ingredients[0]["kept"], "the best ingredient is always in"
    assert result.metrics["valid"]["score"] >= scores[0]
    kept = [ing for ing in ingredients if ing["kept"]]
    assert result.bundle.manifest["soup"] == [{"version": i["version"], "path": i["path"]} for i in kept]
    weights = load_module(result.bundle).state_dict()
    members = [load_module(Bundle.open(i["path"])).state_dict() for i in kept]
    key = "encoder.encoder.layer.0.attention.self.query.weight"
    torch.testing.assert_close(weights[key], torch.stack([m[key] for m in members]).mean(0))
    assert result.bundle.servable
    assert [p.topic in TOPICS for p in InferenceEngine(result.bundle.root).predict(CHECK_TEXTS[:3])] == [
        True
    ] * 3


def test_bundles_that_cannot_be_averaged_are_refused(tmp_path: Path) -> None:
    first = build_tiny_bundle(tmp_path / "first", seed=0)
    with pytest.raises(SoupError, match="at least two bundles"):
        soup([first], EXAMPLES[:24], EXAMPLES[24:], tmp_path / "soup")
    other = tmp_path / "other-labels"
    shutil.copytree(build_tiny_bundle(tmp_path / "second", seed=1), other)
    manifest = json.loads((other / "manifest.json").read_text())
    manifest["labels"]["topic"][0] = "Dividend"
    (other / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(SoupError, match="another topic labels"):
        soup([first, other], EXAMPLES[:24], EXAMPLES[24:], tmp_path / "soup")
    with pytest.raises(SoupError, match="give --valid"):
        soup([first, tmp_path / "second"], EXAMPLES[:24], [], tmp_path / "soup")
    assert not (tmp_path / "soup").exists()
