"""Evaluating a bundle as it is served: the engine's backend, over a labelled file."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from rich.progress import Progress

from foundation.language import text_language
from inference import InferenceEngine, Prediction
from labels.examples import Example
from training.metrics import classification_report, multilabel_report
from training.train import warn_if_unknown


def evaluate_bundle(
    model_dir: Path,
    examples: Sequence[Example],
    backend: str = "auto",
    progress: bool = True,
    chunk: int = 512,
) -> dict[str, Any]:
    engine = InferenceEngine(model_dir, backend=backend, allow_unservable=True)
    texts = [ex.text for ex in examples]
    predictions = []
    with Progress(disable=not progress) as bar:
        task = bar.add_task("evaluating", total=len(texts))
        for start in range(0, len(texts), chunk):
            predictions += engine.predict(texts[start : start + chunk])
            bar.advance(task, min(chunk, len(texts) - start))
    engine.close()
    reports: dict[str, Any] = {}
    heads = (
        ("topic", engine.bundle.topic_labels, lambda ex: ex.topic, lambda p: p.topic),
        ("sentiment", engine.bundle.sentiment_labels, lambda ex: ex.sentiment, lambda p: p.sentiment),
    )
    if engine.bundle.multi_label:
        reports["topic"] = _multilabel(engine.bundle.topic_labels, examples, predictions)
        heads = heads[1:]
    for head, labels, truth, guess in heads:
        index = {label: i for i, label in enumerate(labels)}
        rows = [
            (truth(ex), guess(p))
            for ex, p in zip(examples, predictions, strict=True)
            if truth(ex) is not None
        ]
        unknown = sorted({t for t, _ in rows if t not in index})
        if unknown:
            raise ValueError(f"{head} labels {unknown} are not in the model's label set {list(labels)}")
        if rows:
            reports[head] = classification_report(
                [index[t] for t, _ in rows], [index[g] for _, g in rows], labels
            )
    reports = {k: v for k, v in reports.items() if v is not None}
    reports["unk_rate"] = engine.tokenizer.unk_rate(texts, engine.bundle.max_length)
    warn_if_unknown(reports["unk_rate"], "eval")
    reports["model_version"] = engine.version
    reports["backend"] = engine.backend.name
    return reports


def _multilabel(
    labels: Sequence[str], examples: Sequence[Example], predictions: Sequence[Prediction]
) -> dict[str, Any] | None:
    """Every labelled topic set against every predicted one; None when no row has a topic."""
    rows = [(ex.topic_set, p.topics) for ex, p in zip(examples, predictions, strict=True) if ex.topic_set]
    if not rows:
        return None
    index = {label: i for i, label in enumerate(labels)}
    unknown = sorted({t for truth, _ in rows for t in truth if t not in index})
    if unknown:
        raise ValueError(f"topic labels {unknown} are not in the model's label set {list(labels)}")
    truth_matrix = np.zeros((len(rows), len(labels)), dtype=bool)
    guess_matrix = np.zeros_like(truth_matrix)
    for r, (truth, guess) in enumerate(rows):
        truth_matrix[r, [index[t] for t in truth]] = True
        guess_matrix[r, [index[g] for g in guess]] = True
    return multilabel_report(truth_matrix, guess_matrix, labels)


def evaluate_languages(
    folders: Mapping[str, Path], examples: Sequence[Example], backend: str = "auto", progress: bool = True
) -> dict[str, Any]:
    """A mixed-language set scored as the worker would: each text by its language's bundle (chosen by
    its script), a report per language, and the sentiment figures of the whole mix."""
    served = tuple(folders)
    routed: dict[str, list[Example]] = {language: [] for language in served}
    for ex in examples:
        language = text_language(ex.text, None, served)
        routed[language if language in routed else served[0]].append(ex)
    reports: dict[str, Any] = {"languages": {}}
    correct = total = 0
    for language, subset in routed.items():
        if not subset:
            continue
        report = evaluate_bundle(folders[language], subset, backend, progress)
        reports["languages"][language] = report
        if "sentiment" in report:
            correct += round(report["sentiment"]["accuracy"] * report["sentiment"]["rows"])
            total += report["sentiment"]["rows"]
    if total:
        reports["sentiment_accuracy_all"] = correct / total
        reports["sentiment_rows_all"] = total
    return reports
