"""Training end to end on a tiny random base: data in, bundle out, served by the engine."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from inference import Bundle, InferenceEngine
from labels.examples import Example
from tests.tiny_model import build_tiny_base
from training.data import DataError, deduplicate, load_examples, parse_label_map, split
from training.train import TrainConfig, TrainingError, extend_vocabulary, train, unk_rate

WORDS = {
    ("earnings", "positive"): "beats estimates record profit raises guidance",
    ("earnings", "negative"): "misses estimates loss warning cuts guidance",
    ("macro", "neutral"): "inflation data jobs report unchanged rates",
    ("macro", "negative"): "recession fears contraction slump",
}


def examples(n: int) -> list[Example]:
    rows = []
    for i in range(n):
        (topic, sentiment), words = list(WORDS.items())[i % len(WORDS)]
        # Some rows carry one label only: the loss is masked per head.
        rows.append(Example(f"{words} company {i}", topic if i % 5 else None, sentiment if i % 7 else None))
    return rows


@pytest.fixture(scope="module")
def tiny_base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_base(tmp_path_factory.mktemp("base") / "tiny-base")


def test_train_export_load_predict(tiny_base: Path, tmp_path: Path) -> None:
    out = tmp_path / "bundle"
    config = TrainConfig(base_model=tiny_base, out=out, epochs=3, batch_size=16, lr=1e-3, progress=False)
    result = train(examples(160), examples(40), examples(20), config)

    bundle = Bundle.open(out)
    assert bundle.topic_labels == ("earnings", "macro")
    assert bundle.sentiment_labels == ("negative", "neutral", "positive")
    for name in ("model.safetensors", "model.onnx", "tokenizer/tokenizer.json", "encoder/config.json"):
        assert bundle.has(name)
    metrics = json.loads((out / "metrics.json").read_text())
    assert set(metrics["valid"]) >= {"topic", "sentiment", "score"}
    assert metrics["valid"]["topic"]["confusion_matrix"]
    assert result.metrics["valid"]["score"] > 0.5, "a separable toy task is learned"
    assert abs(bundle.manifest["export"]["fp32_max_abs_diff"]) < 1e-4
    predictions = InferenceEngine(out).predict(["misses estimates loss warning", "recession fears slump"])
    assert [p.topic for p in predictions] == ["earnings", "macro"]


def test_no_half_written_bundle_is_left_behind(tiny_base: Path, tmp_path: Path) -> None:
    out = tmp_path / "bundle"
    with pytest.raises(TrainingError):
        train([], [], [], TrainConfig(base_model=tiny_base, out=out, progress=False))
    assert not out.exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_high_unk_rate_warns_and_vocabulary_extension_fixes_it(
    tiny_base: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from transformers import AutoTokenizer

    chinese = ["平安银行发布业绩预告，净利润同比下降30%", "贵州茅台股价创新高，机构看好消费复苏"]
    tokenizer = AutoTokenizer.from_pretrained(str(tiny_base))
    before = unk_rate(tokenizer, chinese)
    assert before > 0.3
    added = extend_vocabulary(tokenizer, chinese)
    assert added and unk_rate(tokenizer, chinese) < 0.05

    caplog.set_level(logging.WARNING)
    rows = [
        Example(text, sentiment="negative" if i % 2 else "positive") for i, text in enumerate(chinese * 8)
    ]
    train(
        rows,
        rows,
        [],
        TrainConfig(base_model=tiny_base, out=tiny_base.parent / "zh", epochs=1, progress=False),
    )
    assert any("[UNK]" in r.getMessage() for r in caplog.records)


def test_vocabulary_extension_leaves_letters_the_normaliser_knows(tiny_base: Path) -> None:
    """'A' and 'é' are not in a lower-cased vocabulary but encode as 'a' and 'e': added as tokens, they
    would split every word that holds them ('Apple' -> 'a', 'pp', ...)."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(tiny_base))
    before = tokenizer.tokenize("Apple café")
    added = extend_vocabulary(tokenizer, ["Apple café A股 暴跌"])
    assert set(added) <= {"股", "暴", "跌"} and "A" not in added and "é" not in added
    assert tokenizer.tokenize("Apple café") == before


def test_label_maps_columns_and_split(tmp_path: Path) -> None:
    csv_file = tmp_path / "sent.csv"
    csv_file.write_text("text,label\nStocks rally,1\nStocks slump,0\nStocks rally,0\n")
    mapping = parse_label_map("0=negative,1=positive,2=neutral")
    rows = load_examples(csv_file, "text", sentiment_col="label", sentiment_map=mapping)
    assert [r.sentiment for r in rows] == ["positive", "negative", "negative"]
    merged, conflicts = deduplicate(rows)
    assert conflicts == 1 and [r.text for r in merged] == ["Stocks slump"]
    with pytest.raises(DataError, match="no column 'body'"):
        load_examples(csv_file, "body")
    with pytest.raises(DataError, match="not in the label map"):
        load_examples(csv_file, "text", sentiment_col="label", sentiment_map={"0": "negative"})
    train_rows, valid_rows, test_rows = split(examples(1_000))
    assert 750 < len(train_rows) < 850 and len(train_rows) + len(valid_rows) + len(test_rows) == 1_000
    assert split(examples(1_000))[1] == valid_rows, "the split is deterministic"
