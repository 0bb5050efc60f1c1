"""Distillation: a student cut from the teacher's own layers, its gate, and the refusals."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import Engine

from inference import Bundle, BundleError, InferenceEngine
from labels.examples import Example
from tests.tiny_model import CHECK_TEXTS, TOPICS, build_tiny_bundle
from training.distill import DistillConfig, DistillError, distill, kept_layers
from training.evaluate import evaluate_bundle
from training.registry import Registry, RegistryError

SENTIMENT_OF = {"earnings": "positive", "macro": "neutral", "m&a": "positive", "legal": "negative"}
EXAMPLES = [
    Example(text=f"{text} ({i})", topic=TOPICS[i % 4], sentiment=SENTIMENT_OF[TOPICS[i % 4]])
    for i, text in enumerate(CHECK_TEXTS)
]


def test_students_keep_layers_spread_to_the_top_or_the_first_ones() -> None:
    assert kept_layers(6, 3, "spread") == [1, 3, 5], "every other layer, ending at the top"
    assert kept_layers(6, 2, "spread") == [2, 5]
    assert kept_layers(6, 4, "spread") == [1, 2, 4, 5]
    assert kept_layers(6, 6, "spread") == list(range(6))
    assert kept_layers(6, 2, "first") == [0, 1]
    with pytest.raises(DistillError, match="1 to 6 layers"):
        kept_layers(6, 7, "spread")
    with pytest.raises(DistillError, match="spread, first"):
        kept_layers(6, 2, "middle")


def test_a_student_is_a_smaller_servable_bundle_that_records_its_teacher(tmp_path: Path) -> None:
    teacher = build_tiny_bundle(tmp_path / "teacher")
    config = DistillConfig(teacher=teacher, out=tmp_path / "student", layers=1, epochs=2, progress=False)
    config.max_drop = 1.0  # a random tiny teacher: the test is about the mechanics, not the figures

    result = distill(EXAMPLES[:24], EXAMPLES[24:], config)

    student = result.bundle
    assert student.servable
    assert student.manifest["teacher"] == {"version": "tiny-0", "path": str(teacher), "layers": [1]}
    encoder_config = (student.root / "encoder" / "config.json").read_text()
    assert '"num_hidden_layers": 1' in encoder_config
    assert student.topic_labels == Bundle.open(teacher).topic_labels
    assert set(result.metrics["valid"]) >= {"topic", "sentiment"}
    assert set(result.metrics["teacher_valid"]) >= {"topic", "sentiment"}
    assert student.manifest["export"]["gate"]["by"] == "accuracy", "int8 is gated on the valid labels"
    predictions = InferenceEngine(student.root).predict(CHECK_TEXTS[:4])
    assert [p.topic in TOPICS for p in predictions] == [True] * 4


def test_a_student_that_fails_its_gate_is_written_but_not_servable(
    tmp_path: Path, sql_engine: Engine
) -> None:
    teacher = build_tiny_bundle(tmp_path / "teacher")
    config = DistillConfig(teacher=teacher, out=tmp_path / "student", layers=1, epochs=1, progress=False)
    config.max_drop = -1.0  # the student would have to beat the teacher by 100 points

    student = distill(EXAMPLES[:24], EXAMPLES[24:], config).bundle

    assert not student.servable
    assert "points below the teacher" in student.manifest["not_servable_because"]
    with pytest.raises(BundleError, match="not servable"):
        InferenceEngine(student.root)
    with pytest.raises(RegistryError, match="not servable"):
        Registry(sql_engine, tmp_path / "registry", tmp_path / "current").register(student.root, "challenger")
    assert evaluate_bundle(student.root, EXAMPLES[24:], progress=False)["sentiment"]["rows"] == 8


def test_a_teacher_of_another_label_set_is_refused(tmp_path: Path) -> None:
    teacher = build_tiny_bundle(tmp_path / "teacher")
    foreign = [Example(text="Shares fall", topic="Dividend", sentiment="negative")]
    config = DistillConfig(teacher=teacher, out=tmp_path / "student", layers=1, progress=False)
    with pytest.raises(DistillError, match=r"another topic label set: \['Dividend'\]"):
        distill(EXAMPLES + foreign, EXAMPLES, config)
    assert not (tmp_path / "student").exists()
