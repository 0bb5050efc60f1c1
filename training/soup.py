"""Model soups, read top to bottom: ingredients -> checks -> greedy average on validation -> gate -> bundle.

Runs fine-tuned from one pretrained encoder (another seed, another loss weight, a second round) tend
to sit in one basin of the loss, so the plain average of their weights is a model of its own, served
at the cost of one. Greedy soup (Wortsman et al., 2022, "Model soups") takes the ingredients best
first and keeps each one only if the average scores at least as well on the validation rows, so the
soup is never worse there than its best ingredient. Runs of different encoders do not average: the
checks refuse them.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from transformers import AutoTokenizer

from inference.bundle import TOKENIZER_DIR, Bundle
from inference.model import MultiTaskClassifier, load_module
from labels.examples import Example
from training.export import write_bundle
from training.quantize import MAX_DROP
from training.targets import IGNORE
from training.train import evaluate, export_gate, topic_targets, topic_thresholds

log = logging.getLogger(__name__)
SEED = 13  # calibration sample of the int8 gate


class SoupError(ValueError):
    """The ingredients cannot be averaged (other labels, encoders or vocabularies), or none were given."""


@dataclass
class Ingredient:
    bundle: Bundle
    module: MultiTaskClassifier
    report: dict[str, Any]


@dataclass
class SoupResult:
    bundle: Bundle
    metrics: dict[str, Any]
    seconds: float


def check_ingredients(bundles: Sequence[Bundle]) -> None:
    """Same labels, same base encoder, same vocabulary, same tensors: else the average means nothing."""
    if len(bundles) < 2:
        raise SoupError(f"a soup needs at least two bundles, got {len(bundles)}")
    first = bundles[0]
    vocabulary = _vocabulary(first)
    for other in bundles[1:]:
        for what, mine, theirs in (
            ("topic labels", first.topic_labels, other.topic_labels),
            ("sentiment labels", first.sentiment_labels, other.sentiment_labels),
            ("topic head (multi-label or not)", first.multi_label, other.multi_label),
            ("base encoder", _base_id(first), _base_id(other)),
            ("vocabulary", vocabulary, _vocabulary(other)),
        ):
            if mine != theirs:
                raise SoupError(
                    f"{other.root} has another {what} than {first.root}; only runs of one base average"
                )


def _base_id(bundle: Bundle) -> tuple[Any, Any] | None:
    base = bundle.manifest.get("base")
    return (base.get("name"), base.get("sha256")) if base else None


def _vocabulary(bundle: Bundle) -> dict[str, int]:
    return json.loads((bundle.path(TOKENIZER_DIR) / "tokenizer.json").read_text(encoding="utf-8"))["model"][
        "vocab"
    ]


def average(modules: Sequence[MultiTaskClassifier]) -> MultiTaskClassifier:
    """A copy of the first module holding the mean of every floating-point tensor."""
    states = [m.state_dict() for m in modules]
    shapes = {k: v.shape for k, v in states[0].items()}
    for state in states[1:]:
        if {k: v.shape for k, v in state.items()} != shapes:
            raise SoupError("the ingredients' tensors differ in names or shapes")
    mean = {
        key: torch.stack([s[key].float() for s in states]).mean(0) if tensor.is_floating_point() else tensor
        for key, tensor in states[0].items()
    }
    model = modules[0]
    soup = MultiTaskClassifier.from_config(
        model.encoder.config, model.topic_head.out_features, model.sentiment_head.out_features
    )
    soup.load_state_dict(mean)
    return soup


def soup(
    paths: Sequence[Path],
    train_set: Sequence[Example],
    valid_set: Sequence[Example],
    out: Path,
    int8_max_drop: float = MAX_DROP,
) -> SoupResult:
    started = time.perf_counter()
    if not valid_set:
        raise SoupError("a soup is chosen on validation rows: give --valid")
    bundles = [Bundle.open(p) for p in paths]
    check_ingredients(bundles)
    first = bundles[0]
    tokenizer = AutoTokenizer.from_pretrained(str(first.path(TOKENIZER_DIR)), use_fast=True)
    topic_labels = list(first.topic_labels)
    topic_index = {label: i for i, label in enumerate(topic_labels)}
    sentiment_index = {label: i for i, label in enumerate(first.sentiment_labels)}
    ids = tokenizer([ex.text for ex in valid_set], truncation=True, max_length=first.max_length)["input_ids"]
    valid_topic = topic_targets(valid_set, topic_index, first.multi_label)
    valid_sentiment = [sentiment_index[ex.sentiment] if ex.sentiment else IGNORE for ex in valid_set]
    pad_id = tokenizer.pad_token_id or 0

    def score(module: MultiTaskClassifier, thresholds: np.ndarray | None = None) -> dict[str, Any]:
        return evaluate(module, ids, valid_topic, valid_sentiment, topic_labels, pad_id, False, thresholds)

    ingredients = []
    for bundle in bundles:
        module = load_module(bundle).eval()
        ingredients.append(Ingredient(bundle, module, score(module)))
        log.info(
            "ingredient scored", extra={"bundle": bundle.version, "valid": ingredients[-1].report["score"]}
        )
    ingredients.sort(key=lambda ing: ing.report["score"], reverse=True)

    kept, best = [ingredients[0]], ingredients[0].report
    for candidate in ingredients[1:]:
        trial = average([ing.module for ing in [*kept, candidate]]).eval()
        report = score(trial)
        taken = report["score"] >= best["score"]
        log.info(
            "ingredient tried",
            extra={"bundle": candidate.bundle.version, "valid": report["score"], "kept": taken},
        )
        if taken:
            kept, best = [*kept, candidate], report

    module = average([ing.module for ing in kept]).eval() if len(kept) > 1 else kept[0].module
    thresholds = None
    if first.multi_label:
        thresholds = topic_thresholds(module, ids, valid_topic, pad_id, False)
        best = score(module, thresholds)
    metrics = {
        "valid": best,
        "ingredients": [
            {
                "version": ing.bundle.version,
                "path": str(ing.bundle.root),
                "valid": ing.report,
                "kept": any(ing is k for k in kept),
            }
            for ing in ingredients
        ],
        "seconds": round(time.perf_counter() - started, 1),
    }
    written = write_bundle(
        module,
        tokenizer,
        out,
        topic_labels,
        first.sentiment_labels,
        export_gate(valid_set, [ex.text for ex in train_set], topic_labels, thresholds, SEED, int8_max_drop),
        max_length=first.max_length,
        metrics=metrics,
        training={"soup": [str(ing.bundle.root) for ing in kept], "chosen_by": "greedy, mean valid macro-F1"},
        topic_thresholds=dict(zip(topic_labels, map(float, thresholds), strict=True))
        if thresholds is not None
        else None,
        language=first.language,
        base=first.manifest.get("base"),
        lineage={"soup": [{"version": ing.bundle.version, "path": str(ing.bundle.root)} for ing in kept]},
    )
    return SoupResult(written, metrics, time.perf_counter() - started)
