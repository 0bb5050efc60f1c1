"""Evaluating a bundle as it is served: the engine's backend, over a labelled file."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rich.progress import Progress

from inference import InferenceEngine
from labels.examples import Example
from training.metrics import classification_report
from training.train import unk_rate, warn_if_unknown


def evaluate_bundle(
    model_dir: Path,
    examples: Sequence[Example],
    backend: str = "auto",
    progress: bool = True,
    chunk: int = 512,
) -> dict[str, Any]:
    engine = InferenceEngine(model_dir, backend=backend)
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
    reports["unk_rate"] = unk_rate(engine.tokenizer, texts)
    warn_if_unknown(reports["unk_rate"], "eval")
    reports["model_version"] = engine.version
    reports["backend"] = engine.backend.name
    return reports
