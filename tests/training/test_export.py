"""The export gate: which int8 method is kept and which artefact is served, and why."""

from __future__ import annotations

from pathlib import Path

import pytest
from transformers import AutoTokenizer

from inference import Bundle, InferenceEngine
from tests.tiny_model import CHECK_TEXTS, build_tiny_bundle
from training import export


def test_int8_below_the_agreement_gate_is_kept_but_not_served(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(export, "INT8_MIN_AGREEMENT", 1.01)  # no quantisation can pass this
    bundle = Bundle.open(build_tiny_bundle(tmp_path / "bundle"))

    report = bundle.manifest["export"]
    assert bundle.served == "onnx-fp32"
    assert set(report["int8_attempts"]) == set(export.INT8_METHODS), "every method is tried"
    assert "agrees with fp32" in report["int8_not_served_because"]
    assert bundle.has("model.int8.onnx"), "the closest int8 file stays for measurement"
    assert not list(bundle.root.glob("*.model.int8.onnx")), "no candidate file is left behind"
    assert InferenceEngine(bundle.root, backend="onnx-int8").predict(CHECK_TEXTS[:4])


def test_first_int8_method_that_passes_is_served_when_not_slower(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(export, "INT8_MIN_AGREEMENT", 0.0)
    bundle = Bundle.open(build_tiny_bundle(tmp_path / "bundle"))

    report = bundle.manifest["export"]
    assert list(report["int8_attempts"]) == [export.INT8_METHODS[0]], "stops at the first that passes"
    assert report["int8_passed"] is True
    faster = report["texts_per_s"]["onnx-int8"] >= report["texts_per_s"]["onnx-fp32"]
    assert bundle.served == ("onnx-int8" if faster else "onnx-fp32")
    assert ("int8_not_served_because" in report) is not faster


def test_int8_that_passes_but_runs_slower_is_not_served(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    measure = export._onnx_outputs

    def int8_at_half_speed(path: Path, batches: list) -> tuple:
        outputs, speed = measure(path, batches)
        return outputs, speed / 2 if "int8" in path.name else speed * 2

    monkeypatch.setattr(export, "INT8_MIN_AGREEMENT", 0.0)
    monkeypatch.setattr(export, "_onnx_outputs", int8_at_half_speed)
    bundle = Bundle.open(build_tiny_bundle(tmp_path / "bundle"))

    assert bundle.served == "onnx-fp32"
    assert "passed its check but ran at" in bundle.manifest["export"]["int8_not_served_because"]


def test_blockwise_int8_agrees_with_fp32_closer_than_per_tensor(tmp_path: Path) -> None:
    """Each method on its own, on the same tiny model: both load and run; block-wise is the closer."""
    root = build_tiny_bundle(tmp_path / "bundle")
    tokenizer = AutoTokenizer.from_pretrained(str(root / "tokenizer"))
    batches = export.encode_batches(tokenizer, CHECK_TEXTS, 64)
    (fp32_topic, fp32_sentiment), _ = export._onnx_outputs(root / "model.onnx", batches)
    error = {}
    for method in export.INT8_METHODS:
        target = tmp_path / f"{method}.onnx"
        export.quantize_int8(root / "model.onnx", target, method)
        (topic, sentiment), _ = export._onnx_outputs(target, batches)
        error[method] = float(abs(topic - fp32_topic).max() + abs(sentiment - fp32_sentiment).max())
    assert error["blockwise"] < error["dynamic"]
