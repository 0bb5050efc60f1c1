"""Classification metrics per head: accuracy, macro-F1, per-class precision/recall/F1, confusion matrix."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np


def classification_report(
    y_true: Sequence[int], y_pred: Sequence[int], labels: Sequence[str]
) -> dict[str, Any]:
    n = len(labels)
    confusion = np.zeros((n, n), dtype=np.int64)
    for t, p in zip(y_true, y_pred, strict=True):
        confusion[t, p] += 1
    true_pos = np.diag(confusion).astype(np.float64)
    total = int(confusion.sum())
    return {
        "rows": total,
        "accuracy": float(true_pos.sum() / total) if total else 0.0,
        **per_class(true_pos, confusion.sum(axis=0), confusion.sum(axis=1), labels),
        "confusion_matrix": confusion.tolist(),
    }


def per_class(
    true_pos: np.ndarray, predicted: np.ndarray, actual: np.ndarray, labels: Sequence[str]
) -> dict[str, Any]:
    """Precision, recall and F1 per class from its counts, and macro-F1 over the classes present."""
    n = len(labels)
    precision = np.divide(true_pos, predicted, out=np.zeros(n), where=predicted > 0)
    recall = np.divide(true_pos, actual, out=np.zeros(n), where=actual > 0)
    denom = precision + recall
    f1 = np.divide(2 * precision * recall, denom, out=np.zeros(n), where=denom > 0)
    present = actual > 0
    return {
        "macro_f1": float(f1[present].mean()) if present.any() else 0.0,
        "per_class": {
            label: {
                "precision": float(precision[i]),
                "recall": float(recall[i]),
                "f1": float(f1[i]),
                "support": int(actual[i]),
            }
            for i, label in enumerate(labels)
        },
        "labels": list(labels),
    }


def multilabel_report(y_true: np.ndarray, y_pred: np.ndarray, labels: Sequence[str]) -> dict[str, Any]:
    """Micro- and macro-F1, subset accuracy and per-label figures for 0/1 matrices (rows x labels)."""
    y_true, y_pred = y_true.astype(bool), y_pred.astype(bool)
    true_pos = (y_true & y_pred).sum(axis=0).astype(np.float64)
    predicted = y_pred.sum(axis=0)
    actual = y_true.sum(axis=0)
    micro_p = true_pos.sum() / max(predicted.sum(), 1)
    micro_r = true_pos.sum() / max(actual.sum(), 1)
    micro_f1 = 2 * micro_p * micro_r / (micro_p + micro_r) if micro_p + micro_r else 0.0
    return {
        "rows": len(y_true),
        "multi_label": True,
        "micro_f1": float(micro_f1),
        "subset_accuracy": float((y_true == y_pred).all(axis=1).mean()) if len(y_true) else 0.0,
        **per_class(true_pos, predicted, actual, labels),
    }


THRESHOLD_GRID = np.round(np.arange(0.05, 0.96, 0.05), 2)


def tune_thresholds(probs: np.ndarray, y_true: np.ndarray, default: float = 0.5) -> np.ndarray:
    """Per label, the grid threshold with the best F1 on these rows; `default` for a label never seen."""
    thresholds = np.full(probs.shape[1], default)
    for j in range(probs.shape[1]):
        truth = y_true[:, j].astype(bool)
        if not truth.any():
            continue
        scores = []
        for t in THRESHOLD_GRID:
            guess = probs[:, j] >= t
            tp = float((guess & truth).sum())
            scores.append(2 * tp / (guess.sum() + truth.sum()))
        # The middle of the best plateau, not its edge: less sensitive to a few validation rows.
        best = np.flatnonzero(np.isclose(scores, max(scores)))
        thresholds[j] = THRESHOLD_GRID[best[len(best) // 2]]
    return thresholds
