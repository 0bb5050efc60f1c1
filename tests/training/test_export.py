"""The export gate: every int8 candidate is scored against labels, and the fastest one within the allowed
drop is served when it beats fp32; the manifest says why for whatever is served."""

from __future__ import annotations

import random
import shutil
from pathlib import Path

import numpy as np
import pytest
from transformers import AutoTokenizer

from inference import Bundle, InferenceEngine
from inference.backends import OnnxLanes
from inference.bundle import SENTIMENTS
from labels.examples import Example
from tests.tiny_model import CHECK_TEXTS, TOPICS, build_tiny_bundle, tiny_module
from training import export
from training.bases import packaged_base_model
from training.quantize import (
    ARRIVAL_SEED,
    ARRIVALS,
    IGNORE,
    METHODS,
    ONE_REQUEST,
    GateData,
    QuantizationError,
    SortedBatches,
    labelled_rows,
    quantize,
    worst_figures,
)


def rows_labelled_by(bundle_dir: Path) -> GateData:
    """CHECK_TEXTS labelled with the fp32 model's own answers: fp32 scores 1.0 on both heads."""
    bundle = Bundle.open(bundle_dir)
    tokenizer = AutoTokenizer.from_pretrained(str(bundle.path("tokenizer")))
    topic, sentiment = SortedBatches.of(tokenizer, CHECK_TEXTS, 64).run(OnnxLanes(bundle.path("model.onnx")))
    examples = [
        Example(text=text, topic=TOPICS[t], sentiment=SENTIMENTS[s])
        for text, t, s in zip(CHECK_TEXTS, topic.argmax(1), sentiment.argmax(1), strict=True)
    ]
    return GateData(texts=list(CHECK_TEXTS), labelled=labelled_rows(examples, TOPICS, SENTIMENTS))


def reexport_with_speeds(bundle_dir: Path, gate: GateData, speeds: dict[str, float], monkeypatch) -> Bundle:
    """Re-exports with each file's texts/s replaced by `speeds` (by candidate name, `fp32` for fp32)."""
    measure = export._Bench.measure

    def measured(self: export._Bench, path: Path, every_grouping: bool = True) -> tuple:
        _, logits, figures = measure(self, path, every_grouping)
        name = "fp32" if path.name == "model.onnx" else path.name.removeprefix("int8-").removesuffix(".onnx")
        return speeds[name], logits, figures

    monkeypatch.setattr(export._Bench, "measure", measured)
    return export.reexport(bundle_dir, gate)


def test_the_fastest_candidate_within_the_drop_is_served(tmp_path: Path, monkeypatch) -> None:
    root = build_tiny_bundle(tmp_path / "bundle")
    speeds = {"fp32": 100.0} | {m: 150.0 for m in METHODS} | {"static-qdq": 300.0}

    bundle = reexport_with_speeds(root, rows_labelled_by(root), speeds, monkeypatch)

    report = bundle.manifest["export"]
    assert report["gate"] == {
        "by": "accuracy",
        "labelled_rows": len(CHECK_TEXTS),
        "max_drop_points": 0.5,
        "min_agreement": None,
    }
    assert report["fp32"]["figures"]["topic"]["accuracy"] == 1.0
    assert set(report["candidates"]) == set(METHODS), "every candidate is measured and recorded"
    assert bundle.served == "onnx-int8" and report["int8_method"] == "static-qdq"
    assert "static-qdq" in report["served_because"] and "fastest" in report["served_because"]
    for candidate in report["candidates"].values():
        assert set(candidate["figures"]) == {"topic", "sentiment"}
        assert set(candidate["figures_by_grouping"]) == {ONE_REQUEST, *ARRIVALS}
        assert candidate["figures"] == worst_figures(candidate["figures_by_grouping"].values())
        assert set(candidate["top1_agreement"]) == {"topic", "sentiment"}
    assert not list(root.glob("int8-*.onnx")), "only the kept candidate stays, as model.int8.onnx"
    assert InferenceEngine(root).backend.name == "onnx-int8"


def test_a_candidate_that_loses_accuracy_fails_the_gate_whatever_its_speed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = build_tiny_bundle(tmp_path / "bundle")
    other = build_tiny_bundle(tmp_path / "other", seed=7)  # a different network: answers differ
    real_quantize = export.quantize

    def blockwise_is_another_model(source: Path, target: Path, method: str, calibration=()) -> None:
        if method == "blockwise":
            shutil.copy(other / "model.onnx", target)
        else:
            real_quantize(source, target, method, calibration)

    monkeypatch.setattr(export, "quantize", blockwise_is_another_model)
    speeds = {"fp32": 100.0} | {m: 120.0 for m in METHODS} | {"blockwise": 900.0}
    bundle = reexport_with_speeds(root, rows_labelled_by(root), speeds, monkeypatch)

    blockwise = bundle.manifest["export"]["candidates"]["blockwise"]
    assert not blockwise["passed"]
    assert any("accuracy" in failure and "points" in failure for failure in blockwise["failures"])
    assert blockwise["worst_drop"] > 0.005
    assert bundle.manifest["export"]["int8_method"] != "blockwise", "the fastest failing one is not served"
    assert bundle.served == "onnx-int8"


def test_fp32_is_served_with_the_reasons_when_every_candidate_fails(tmp_path: Path) -> None:
    root = build_tiny_bundle(tmp_path / "bundle")
    gate = rows_labelled_by(root)
    # Demanding a gain no quantisation makes on this tiny model: every candidate fails.
    bundle = export.reexport(root, GateData(gate.texts, gate.labelled, max_drop=-0.5))

    report = bundle.manifest["export"]
    assert bundle.served == "onnx-fp32"
    assert report["served_because"].startswith("no int8 candidate passed the gate")
    for method in METHODS:
        assert method in report["served_because"]
    assert bundle.has("model.int8.onnx"), "the closest candidate stays, to measure or pick by hand"


def test_int8_that_passes_but_runs_slower_is_not_served(tmp_path: Path, monkeypatch) -> None:
    root = build_tiny_bundle(tmp_path / "bundle")
    speeds = {"fp32": 500.0} | {m: 200.0 for m in METHODS}

    bundle = reexport_with_speeds(root, rows_labelled_by(root), speeds, monkeypatch)

    assert bundle.served == "onnx-fp32"
    assert (
        "passed the gate but ran at 200 texts/s against fp32's 500"
        in bundle.manifest["export"]["served_because"]
    )


def test_without_labels_the_gate_is_agreement_with_fp32(tmp_path: Path) -> None:
    bundle = Bundle.open(build_tiny_bundle(tmp_path / "bundle"))

    report = bundle.manifest["export"]
    assert report["gate"]["by"] == "agreement" and report["gate"]["min_agreement"] == 0.99
    assert all(c["figures"] == {} for c in report["candidates"].values())
    assert all(
        c["passed"] == (min(c["top1_agreement"].values()) >= 0.99) for c in report["candidates"].values()
    )


def test_every_quantiser_failing_serves_fp32(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(source: Path, target: Path, method: str, calibration=()) -> None:
        raise QuantizationError(f"{method}: unsupported graph")

    monkeypatch.setattr(export, "quantize", broken)
    bundle = Bundle.open(build_tiny_bundle(tmp_path / "bundle"))

    assert bundle.served == "onnx-fp32"
    assert bundle.manifest["export"]["served_because"] == "every int8 quantiser failed"
    assert not bundle.has("model.int8.onnx")


def test_each_method_writes_a_model_that_runs_and_static_needs_calibration(tmp_path: Path) -> None:
    root = build_tiny_bundle(tmp_path / "bundle")
    tokenizer = AutoTokenizer.from_pretrained(str(packaged_base_model()))
    batches = SortedBatches.of(tokenizer, CHECK_TEXTS, 64)
    for method in METHODS:
        target = tmp_path / f"{method}.onnx"
        quantize(root / "model.onnx", target, method, batches.batches)
        topic, sentiment = batches.run(OnnxLanes(target))
        assert topic.shape == (len(CHECK_TEXTS), len(TOPICS)) and np.isfinite(sentiment).all()
    with pytest.raises(QuantizationError, match="calibration"):
        quantize(root / "model.onnx", tmp_path / "x.onnx", "static-qdq")
    with pytest.raises(ValueError, match="known: dynamic-qint8"):
        quantize(root / "model.onnx", tmp_path / "x.onnx", "int4")


def test_labelled_rows_follow_the_model_label_order() -> None:
    examples = [
        Example(text="a", topic="macro", sentiment="positive"),
        Example(text="b", topic="unknown-topic"),
        Example(text="c", topic="legal", topics=("legal", "earnings"), sentiment="negative"),
    ]
    single = labelled_rows(examples, TOPICS, SENTIMENTS)
    assert single.topic == [TOPICS.index("macro"), IGNORE, TOPICS.index("legal")]
    assert single.sentiment == [SENTIMENTS.index("positive"), IGNORE, SENTIMENTS.index("negative")]
    multi = labelled_rows(examples, TOPICS, SENTIMENTS, [0.5] * len(TOPICS))
    assert multi.topic_matrix is not None
    assert multi.topic_matrix[2].tolist() == [int(t in ("legal", "earnings")) for t in TOPICS]
    assert not multi.topic_matrix[1].any()


def test_a_module_that_no_longer_matches_its_onnx_file_is_refused(tmp_path: Path) -> None:
    root = build_tiny_bundle(tmp_path / "bundle")
    tokenizer = AutoTokenizer.from_pretrained(str(packaged_base_model()))
    stranger = tiny_module(tokenizer.vocab_size, seed=99)
    with pytest.raises(export.ExportError, match="differ from torch"):
        export.check_fp32(stranger, root / "model.onnx", tokenizer, CHECK_TEXTS, 64)


def test_a_candidate_is_judged_by_its_worst_grouping_of_calls(tmp_path: Path, monkeypatch) -> None:
    root = build_tiny_bundle(tmp_path / "bundle")
    measure = export._Bench.measure

    def worse_in_small_arrivals(self: export._Bench, path: Path, every_grouping: bool = True) -> tuple:
        speed, logits, figures = measure(self, path, every_grouping)
        if path.name == "int8-dynamic-qint8.onnx":
            figures["arrivals-8"]["sentiment"]["accuracy"] -= 0.02
        return speed, logits, figures

    monkeypatch.setattr(export._Bench, "measure", worse_in_small_arrivals)
    report = export.reexport(root, rows_labelled_by(root)).manifest["export"]

    judged = report["candidates"]["dynamic-qint8"]
    by_grouping = judged["figures_by_grouping"]
    assert (
        by_grouping["arrivals-8"]["sentiment"]["accuracy"] < by_grouping[ONE_REQUEST]["sentiment"]["accuracy"]
    )
    assert judged["figures"]["sentiment"]["accuracy"] == by_grouping["arrivals-8"]["sentiment"]["accuracy"]
    assert not judged["passed"]
    assert any(failure.startswith("sentiment accuracy -") for failure in judged["failures"])


def test_arrival_groupings_keep_each_call_inside_one_micro_batch_and_give_rows_back_in_order() -> None:
    tokenizer = AutoTokenizer.from_pretrained(str(packaged_base_model()))
    texts = [f"{i} {'word ' * (i % 13)}" for i in range(40)]  # varied lengths; the first token names the row

    grouped = SortedBatches.of(tokenizer, texts, 64, batch_size=4, arrival_batch=8)

    assert sorted(grouped.order) == list(range(len(texts)))
    micro_batch = {row: position // 8 for position, row in enumerate(_arrival_order(len(texts)))}
    start = 0
    for ids, _ in grouped.batches:
        rows = grouped.order[start : start + len(ids)]
        assert len({micro_batch[row] for row in rows}) == 1, "a call never mixes two micro-batches"
        assert len(ids) <= 4
        start += len(ids)

    class EchoModel:  # logits that name their row (its first token after [CLS]) and its length
        def run_all(self, batches):
            return [
                (ids[:, 1:2].astype(np.float32), mask.sum(1, keepdims=True).astype(np.float32))
                for ids, mask in batches
            ]

    alone = [SortedBatches.of(tokenizer, [text], 64).run(EchoModel()) for text in texts]
    topic, sentiment = grouped.run(EchoModel())
    assert np.array_equal(topic, np.concatenate([a[0] for a in alone]))
    assert np.array_equal(sentiment, np.concatenate([a[1] for a in alone]))


def _arrival_order(n: int) -> list[int]:
    rows = list(range(n))
    random.Random(ARRIVAL_SEED).shuffle(rows)
    return rows


def test_the_worst_figures_are_taken_figure_by_figure() -> None:
    runs = [
        {"sentiment": {"accuracy": 0.9, "macro_f1": 0.7}},
        {"sentiment": {"accuracy": 0.8, "macro_f1": 0.75}},
    ]
    assert worst_figures(runs) == {"sentiment": {"accuracy": 0.8, "macro_f1": 0.7}}
