"""int8 candidates of a bundle's fp32 ONNX file, and the accuracy gate that chooses the one to serve.

A candidate is judged by what users see: accuracy and macro-F1 of each head on labelled validation
rows, against the fp32 file on the same rows. The fastest candidate whose figures drop by at most
`max_drop` on every head is served, if it is faster than fp32 here. Top-class agreement with fp32 is
recorded too, as information: int8 can disagree on rows fp32 got wrong anyway.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from transformers import PreTrainedTokenizerBase

from inference.backends import ONNX_CALL_COST, OnnxLanes
from inference.engine import DEFAULT_TOKEN_BUDGET, choose_topics, pad_batch, plan_batches, sigmoid
from training.metrics import classification_report, multilabel_report
from training.targets import IGNORE, topic_matrix

if TYPE_CHECKING:  # only a type here: importing labels would pull in the label store's database
    from labels.examples import Example

log = logging.getLogger(__name__)

MAX_DROP = 0.005
# Without labelled rows the gate falls back to top-class agreement with fp32 on real texts.
MIN_AGREEMENT = 0.99
SPEED_TEXTS = 1024
CALIBRATION_TEXTS = 256
# Dynamic int8 scales activations per call, so a text's scores depend a little on the texts that share
# its calls. The gate scores a candidate on each way the worker can group the labelled texts and takes
# each figure at its worst: one request of them all (eval, a backlog), and a stream's arrivals in
# micro-batches (name: texts per micro-batch), full ones under load and small ones at a trickle.
# fp32 scales nothing per call: its figures are the same in every grouping, and it is scored once.
ONE_REQUEST = "one-request"
ARRIVALS = {"arrivals-256": 256, "arrivals-8": 8}
ARRIVAL_SEED = 7
# dynamic-*: weights int8 ahead of time, activations scaled per call. static-qdq: activation scales
# calibrated on training texts. blockwise: 8-bit weights in blocks of 32 (MatMulNBits).
METHODS = (
    "dynamic-qint8",
    "dynamic-qint8-channel",
    "dynamic-quint8",
    "dynamic-quint8-channel",
    "static-qdq",
    "blockwise",
)

Batch = tuple[np.ndarray, np.ndarray]
Figures = dict[str, dict[str, float]]


class QuantizationError(RuntimeError):
    """A quantiser failed on this graph."""


@dataclass(frozen=True)
class LabelledRows:
    """Validation rows the candidates are scored on; IGNORE where a row has no label for a head."""

    texts: list[str]
    topic: list[int]
    sentiment: list[int]
    topic_labels: tuple[str, ...]
    sentiment_labels: tuple[str, ...]
    # A multi-label topic head: 0/1 rows (all zero: no topic label) and its thresholds.
    topic_matrix: np.ndarray | None = None
    topic_thresholds: np.ndarray | None = None

    @property
    def has_labels(self) -> bool:
        multi = self.topic_matrix is not None and bool(self.topic_matrix.any())
        return multi or any(y != IGNORE for y in (*self.topic, *self.sentiment))


def labelled_rows(
    examples: Sequence[Example],
    topic_labels: Sequence[str],
    sentiment_labels: Sequence[str],
    topic_thresholds: Sequence[float] | None = None,
) -> LabelledRows:
    """Examples as rows of label indices in a model's label order (IGNORE: unknown or no label)."""
    topic_index = {label: i for i, label in enumerate(topic_labels)}
    sentiment_index = {label: i for i, label in enumerate(sentiment_labels)}
    matrix = None if topic_thresholds is None else topic_matrix(examples, topic_index, np.int8)
    return LabelledRows(
        texts=[ex.text for ex in examples],
        topic=[topic_index.get(ex.topic, IGNORE) if ex.topic else IGNORE for ex in examples],
        sentiment=[sentiment_index.get(ex.sentiment, IGNORE) if ex.sentiment else IGNORE for ex in examples],
        topic_labels=tuple(topic_labels),
        sentiment_labels=tuple(sentiment_labels),
        topic_matrix=matrix,
        topic_thresholds=None if topic_thresholds is None else np.asarray(topic_thresholds, dtype=np.float64),
    )


@dataclass(frozen=True)
class GateData:
    """What the export is checked on: real texts, labelled rows if any, and calibration texts."""

    texts: list[str]
    labelled: LabelledRows | None = None
    calibration: list[str] | None = None
    max_drop: float = MAX_DROP


def quantize(source: Path, target: Path, method: str, calibration: Sequence[Batch] = ()) -> None:
    """Writes target as the int8 candidate `method` of source."""
    # The quantisers log every tensor on the root logger at INFO and advise a pre-processing step
    # (quant_pre_process) that fails on this encoder and is not needed; their errors still show.
    if method not in METHODS:
        raise ValueError(f"unknown int8 method {method!r}; known: {', '.join(METHODS)}")
    root = logging.getLogger()
    level = root.level
    root.setLevel(max(level, logging.ERROR))
    try:
        if method.startswith("dynamic-"):
            _quantize_dynamic(source, target, method)
        elif method == "static-qdq":
            _quantize_static(source, target, calibration)
        else:
            _quantize_blockwise(source, target)
    except (RuntimeError, ValueError, KeyError) as exc:
        raise QuantizationError(f"{method}: {exc}") from exc
    finally:
        root.setLevel(level)


def _quantize_dynamic(source: Path, target: Path, method: str) -> None:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    # Only the weight MatMuls: quantised embeddings and heads cost accuracy for little speed.
    quantize_dynamic(
        str(source),
        str(target),
        weight_type=QuantType.QUInt8 if "quint8" in method else QuantType.QInt8,
        per_channel=method.endswith("-channel"),
        op_types_to_quantize=["MatMul"],
    )


def _quantize_static(source: Path, target: Path, calibration: Sequence[Batch]) -> None:
    from onnxruntime.quantization import (
        CalibrationDataReader,
        QuantFormat,
        QuantType,
        quantize_static,
    )

    if not calibration:
        raise ValueError("static quantisation needs calibration texts")

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.batches: Iterator[Batch] = iter(calibration)

        def get_next(self) -> dict[str, np.ndarray] | None:
            batch = next(self.batches, None)
            return None if batch is None else {"input_ids": batch[0], "attention_mask": batch[1]}

    quantize_static(
        str(source),
        str(target),
        Reader(),
        quant_format=QuantFormat.QDQ,
        per_channel=True,
        weight_type=QuantType.QInt8,
        activation_type=QuantType.QUInt8,
        op_types_to_quantize=["MatMul"],
        extra_options={"MatMulConstBOnly": True},
    )


def _quantize_blockwise(source: Path, target: Path) -> None:
    """8-bit weights in blocks of 32 with int8 compute (MatMulNBits, accuracy level 4).

    Activations are quantised per block of 32 too, not per tensor, which keeps the outliers of the
    feed-forward outputs from swamping the rest.
    """
    import onnx
    from onnxruntime.quantization.matmul_nbits_quantizer import (
        DefaultWeightOnlyQuantConfig,
        MatMulNBitsQuantizer,
    )

    config = DefaultWeightOnlyQuantConfig(block_size=32, is_symmetric=True, accuracy_level=4, bits=8)
    quantizer = MatMulNBitsQuantizer(
        onnx.load(str(source)), bits=8, block_size=32, is_symmetric=True, accuracy_level=4, algo_config=config
    )
    quantizer.process()
    quantizer.model.save_model_to_file(str(target), use_external_data_format=False)


def padded_batches(
    tokenizer: PreTrainedTokenizerBase, texts: Sequence[str], max_length: int, batch_size: int = 32
) -> list[Batch]:
    """Batches in the given order, each padded to its longest text."""
    batches = []
    for start in range(0, len(texts), batch_size):
        enc = tokenizer(
            list(texts[start : start + batch_size]),
            truncation=True,
            max_length=max_length,
            padding=True,
            return_tensors="np",
        )
        batches.append((enc["input_ids"].astype(np.int64), enc["attention_mask"].astype(np.int64)))
    return batches


@dataclass(frozen=True)
class SortedBatches:
    """Texts tokenised once and batched as the engine batches a request on CPU (`plan_batches`);
    `order` undoes it. With `arrival_batch`, the texts come in a seeded random order, cut into
    micro-batches of that many, each its own request, as a stream hands them to the engine."""

    batches: list[Batch]
    order: list[int]

    @classmethod
    def of(
        cls,
        tokenizer: PreTrainedTokenizerBase,
        texts: Sequence[str],
        max_length: int,
        batch_size: int = 32,
        token_budget: int = DEFAULT_TOKEN_BUDGET,
        arrival_batch: int | None = None,
    ) -> SortedBatches:
        ids = _token_ids(tokenizer, texts, max_length)
        return cls._planned(ids, tokenizer.pad_token_id or 0, arrival_batch, batch_size, token_budget)

    @classmethod
    def groupings(
        cls, tokenizer: PreTrainedTokenizerBase, texts: Sequence[str], max_length: int
    ) -> dict[str, SortedBatches]:
        """Every way the gate groups the labelled texts into calls, by name."""
        ids, pad_id = _token_ids(tokenizer, texts, max_length), tokenizer.pad_token_id or 0
        sizes = {ONE_REQUEST: None} | ARRIVALS
        return {name: cls._planned(ids, pad_id, size) for name, size in sizes.items()}

    @classmethod
    def _planned(
        cls,
        ids: list[list[int]],
        pad_id: int,
        arrival_batch: int | None,
        batch_size: int = 32,
        token_budget: int = DEFAULT_TOKEN_BUDGET,
    ) -> SortedBatches:
        rows = list(range(len(ids)))
        if arrival_batch:
            random.Random(ARRIVAL_SEED).shuffle(rows)  # noqa: S311 - sampling and jitter, not secrets
            requests = [rows[i : i + arrival_batch] for i in range(0, len(rows), arrival_batch)]
        else:
            requests = [rows]
        chunks = [
            [request[j] for j in call]
            for request in requests
            for call in plan_batches([len(ids[i]) for i in request], batch_size, token_budget, ONNX_CALL_COST)
        ]
        batches = [pad_batch([ids[i] for i in chunk], pad_id) for chunk in chunks]
        return cls(batches, [i for chunk in chunks for i in chunk])

    def run(self, model: OnnxLanes) -> tuple[np.ndarray, np.ndarray]:
        """Both heads' logits in the texts' original order."""
        outs = model.run_all(self.batches)
        topic, sentiment = (np.concatenate([o[k] for o in outs]) for k in (0, 1))
        back = np.empty(len(self.order), dtype=np.int64)
        back[self.order] = np.arange(len(self.order))
        return topic[back], sentiment[back]


def _token_ids(tokenizer: PreTrainedTokenizerBase, texts: Sequence[str], max_length: int) -> list[list[int]]:
    return tokenizer(list(texts), truncation=True, max_length=max_length)["input_ids"] if texts else []


def texts_per_s(model: OnnxLanes, batches: SortedBatches, passes: int = 2) -> float:
    """The best of a few timed passes after a warm-up batch: the least disturbed by other processes."""
    model.run_all(batches.batches[:1])
    rows = sum(len(ids) for ids, _ in batches.batches)
    best = 0.0
    for _ in range(passes):
        started = time.perf_counter()
        model.run_all(batches.batches)
        best = max(best, rows / (time.perf_counter() - started))
    return best


def head_figures(rows: LabelledRows, topic_logits: np.ndarray, sentiment_logits: np.ndarray) -> Figures:
    """Accuracy (micro-F1 for a multi-label topic head) and macro-F1 of each head that has labels."""
    figures: Figures = {}
    if rows.topic_matrix is not None and rows.topic_thresholds is not None:
        labelled = np.flatnonzero(rows.topic_matrix.any(axis=1))
        if len(labelled):
            n = len(rows.topic_labels)
            chosen = choose_topics(sigmoid(topic_logits[labelled, :n]), rows.topic_thresholds)
            report = multilabel_report(rows.topic_matrix[labelled], chosen, rows.topic_labels)
            figures["topic"] = {"micro_f1": report["micro_f1"], "macro_f1": report["macro_f1"]}
    else:
        figures |= _single_label("topic", rows.topic, topic_logits, rows.topic_labels)
    figures |= _single_label("sentiment", rows.sentiment, sentiment_logits, rows.sentiment_labels)
    return figures


def _single_label(head: str, truth: Sequence[int], logits: np.ndarray, labels: Sequence[str]) -> Figures:
    labelled = [i for i, y in enumerate(truth) if y != IGNORE]
    if not labelled or not labels:
        return {}
    predicted = logits[labelled].argmax(axis=1).tolist()
    report = classification_report([truth[i] for i in labelled], predicted, labels)
    return {head: {"accuracy": report["accuracy"], "macro_f1": report["macro_f1"]}}


def worst_figures(runs: Iterable[Figures]) -> Figures:
    """Each figure of each head at its lowest over the runs."""
    runs = list(runs)
    return {
        head: {name: min(run[head][name] for run in runs) for name in figures}
        for head, figures in runs[0].items()
    }


def drops(reference: Figures, candidate: Figures) -> Figures:
    """How far each figure of each head fell against the reference (negative: it rose)."""
    return {
        head: {name: round(value - candidate[head][name], 5) for name, value in figures.items()}
        for head, figures in reference.items()
    }


def gate_failures(fell: Figures, max_drop: float) -> list[str]:
    """One line per figure that fell by more than max_drop."""
    return [
        f"{head} {name} -{drop * 100:.2f} points"
        for head, figures in fell.items()
        for name, drop in figures.items()
        if drop > max_drop + 1e-9
    ]


def agreement(reference: tuple[np.ndarray, np.ndarray], candidate: tuple[np.ndarray, np.ndarray]) -> dict:
    return {
        head: round(float((a.argmax(1) == b.argmax(1)).mean()), 5)
        for head, a, b in zip(("topic", "sentiment"), reference, candidate, strict=True)
    }
