"""Multi-label topics: files with several topics per row, a sigmoid head with tuned thresholds, and
predictions that carry every topic above its threshold."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from inference import Bundle, InferenceEngine
from labels.examples import Example
from tests.tiny_model import build_tiny_base
from training.data import DataError, deduplicate, load_examples, parse_label_map
from training.metrics import multilabel_report, tune_thresholds
from training.train import TrainConfig, train

# Each topic has its own words, so a text with the words of two topics is about both.
TOPIC_WORDS = {
    "bonds": "yield coupon treasury",
    "banks": "lender deposits branch",
    "oil": "crude barrel opec",
}


def rows(n: int) -> list[Example]:
    names = list(TOPIC_WORDS)
    result = []
    for i in range(n):
        first, second = names[i % 3], names[(i + 1) % 3]
        topics = (first, second) if i % 2 else (first,)
        text = " ".join(TOPIC_WORDS[t] for t in topics) + f" item {i}"
        result.append(Example(text, topics[0], "neutral" if i % 4 else None, topics))
    return result


def test_a_multilabel_file_reads_every_topic(tmp_path: Path) -> None:
    path = tmp_path / "news.json"
    path.write_text(json.dumps([["央行 降准", "政策 中国"], ["油价 大涨", "能源"]], ensure_ascii=False))
    examples = load_examples(path, "0", topic_col="1", topic_sep=" ")
    assert [ex.topic_set for ex in examples] == [("政策", "中国"), ("能源",)]
    assert examples[0].topic == "政策"


def test_a_label_outside_the_map_names_the_row_and_the_label(tmp_path: Path) -> None:
    path = tmp_path / "news.json"
    path.write_text(json.dumps([["a", "公司"], ["b", "公司 费劲"]], ensure_ascii=False))
    labels = parse_label_map("公司=公司")
    with pytest.raises(DataError, match=r"row 2: topic label '费劲' is not in the label map"):
        load_examples(path, "0", topic_col="1", topic_map=labels, topic_sep=" ")
    kept = load_examples(path, "0", topic_col="1", topic_map=labels, topic_sep=" ", skip_bad_labels=True)
    assert [ex.text for ex in kept] == ["a"]


def test_deduplicate_keeps_a_label_set_and_drops_conflicting_sets() -> None:
    same = Example("x", "a", None, ("a", "b"))
    other = Example("y", "a", None, ("a", "b"))
    clash = Example("y", "a", None, ("a",))
    merged, conflicts = deduplicate([same, same, other, clash])
    assert merged == [same] and conflicts == 1


def test_micro_and_macro_f1() -> None:
    truth = np.array([[1, 0], [1, 1], [0, 1]])
    guess = np.array([[1, 0], [1, 0], [0, 1]])
    report = multilabel_report(truth, guess, ["a", "b"])
    # tp 3, fp 0, fn 1: micro P 1, R 0.75; b alone has P 1, R 0.5.
    assert report["micro_f1"] == pytest.approx(2 * 0.75 / 1.75)
    assert report["macro_f1"] == pytest.approx((1.0 + 2 * 0.5 / 1.5) / 2)
    assert report["subset_accuracy"] == pytest.approx(2 / 3)
    assert report["per_class"]["b"]["recall"] == pytest.approx(0.5)


def test_thresholds_are_tuned_per_label() -> None:
    probs = np.array([[0.30, 0.9], [0.35, 0.8], [0.1, 0.6], [0.2, 0.4]])
    truth = np.array([[1, 1], [1, 1], [0, 0], [0, 0]])
    low, high = tune_thresholds(probs, truth)
    assert 0.2 < low <= 0.30, "label a is only separable below 0.5"
    assert 0.6 < high <= 0.8


def test_train_and_serve_a_multilabel_topic_head(tmp_path: Path) -> None:
    base = build_tiny_base(tmp_path / "base")
    out = tmp_path / "bundle"
    config = TrainConfig(
        base_model=base, out=out, epochs=6, batch_size=16, lr=1e-3, progress=False, language="zh"
    )
    result = train(rows(240), rows(60), rows(30), config)

    bundle = Bundle.open(out)
    assert bundle.multi_label and bundle.language == "zh"
    assert set(bundle.manifest["labels"]["topic_thresholds"]) == set(TOPIC_WORDS)
    report = result.metrics["test"]["topic"]
    assert report["multi_label"] and {"micro_f1", "macro_f1", "per_class"} <= set(report)
    assert report["micro_f1"] > 0.8, "separable keywords are learned"

    engine = InferenceEngine(out, backend="onnx-fp32")
    both, single = engine.predict(["yield coupon treasury crude barrel opec", "lender deposits branch"])
    assert set(both.topics) == {"bonds", "oil"} and both.topic in both.topics
    assert single.topics == ("banks",)
    assert both.language == "zh" and both.multi_label
    engine.close()
