"""Simulated nights: the continuous-learning loop replayed on a labelled data set, night by night.

The training rows are split by text hash: half seeds the label store (and the champion), the other
half arrives as labels over three nights. Before the last true night comes a night whose labels are
shuffled at random, which the gate must reject. Every model, promoted or not, is scored on the
validation files, which neither training nor the gate ever sees.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from foundation.settings import Settings
from labels.examples import Example, split_bucket
from labels.store import examples_to_labels
from training.evaluate import evaluate_bundle
from training.learning import learning, nightly_config
from training.nightly import NightlyTrainer

log = logging.getLogger(__name__)
SALT = "nights"


@dataclass
class NightRow:
    night: str
    new_labels: int
    status: str
    version: str | None
    decision: str
    valid: dict[str, dict[str, float]] = field(default_factory=dict)


def portion(examples: Sequence[Example], low: int, high: int) -> list[Example]:
    return [ex for ex in examples if low <= split_bucket(ex.text, SALT) < high]


def shuffled(examples: Sequence[Example], seed: int) -> list[Example]:
    """The same texts, each head's labels permuted among the rows that have a label for that head."""
    rng = random.Random(seed)  # noqa: S311 - sampling and jitter, not secrets
    topics = [ex.topic for ex in examples if ex.topic is not None]
    sentiments = [ex.sentiment for ex in examples if ex.sentiment is not None]
    rng.shuffle(topics)
    rng.shuffle(sentiments)
    topic_draw, sentiment_draw = iter(topics), iter(sentiments)
    return [
        Example(
            ex.text,
            next(topic_draw) if ex.topic is not None else None,
            next(sentiment_draw) if ex.sentiment is not None else None,
        )
        for ex in examples
    ]


def simulate(
    settings: Settings,
    examples: Sequence[Example],
    valid_sets: dict[str, list[Example]],
    first_epochs: int = 2,
    on_night: Callable[[NightRow], None] | None = None,
    **overrides: Any,
) -> list[NightRow]:
    parts = learning(settings, announce=False)
    config = nightly_config(settings, min_new_labels=1, **overrides)
    trainer = NightlyTrainer(parts.engine, parts.registry, parts.labels, config)
    rows: list[NightRow] = []

    def night(name: str, labels: list[Example], by: str) -> None:
        parts.labels.add(examples_to_labels(labels, by))
        result = trainer.run()
        model = parts.registry.get(result.version) if result.version else None
        row = NightRow(name, len(labels), result.status, result.version, result.detail)
        if model is not None:
            row.valid = score_on_valid(model.bundle_path, valid_sets)
        rows.append(row)
        if on_night:
            on_night(row)

    # The first model learns the seed half from the base model, like any first night: a champion
    # trained outside the store would have seen the frozen evaluation set and would skew the gate.
    trainer.config = nightly_config(settings, min_new_labels=1, **{**overrides, "epochs": first_epochs})
    night("seed", portion(examples, 0, 50), "seed")
    trainer.config = config
    thirds = [(50, 67), (67, 84), (84, 100)]
    night("night 1", portion(examples, *thirds[0]), "analyst")
    night("night 2", portion(examples, *thirds[1]), "analyst")
    night("shuffled", shuffled(portion(examples, *thirds[2]), seed=7), "prankster")
    night("night 3", portion(examples, *thirds[2]), "analyst")
    return rows


def score_on_valid(bundle: Path, valid_sets: dict[str, list[Example]]) -> dict[str, dict[str, float]]:
    scores = {}
    for head, rows in valid_sets.items():
        report = evaluate_bundle(bundle, rows, progress=False)[head]
        scores[head] = {"accuracy": report["accuracy"], "macro_f1": report["macro_f1"]}
    return scores
