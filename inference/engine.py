"""The inference engine: tokenise, length-sort, batch, run a backend, and swap models atomically."""

from __future__ import annotations

import asyncio
import logging
import math
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from inference.backends import Backend, open_backend
from inference.bundle import TOKENIZER_DIR, Bundle, BundleError
from inference.tokenizer import TextEncoder

log = logging.getLogger(__name__)

# Padded tokens per model call on CPU: 32 texts of 64 tokens, or fewer of the longer ones.
DEFAULT_TOKEN_BUDGET = 2048

# Fixed texts every model must score sanely before it is allowed to serve.
PROBE_TEXTS = (
    "Shares of the bank plunged after it missed earnings estimates and cut its dividend.",
    "The company raised its full-year guidance on strong demand.",
    "The central bank left interest rates unchanged on Wednesday.",
    "平安银行发布业绩预告，净利润同比下降30%",
)


@dataclass(frozen=True)
class Prediction:
    topic: str | None
    topic_probs: dict[str, float]
    sentiment: str
    sentiment_probs: dict[str, float]
    model_version: str
    # Every topic the text is about: above its threshold for a multi-label model, else the top topic.
    topics: tuple[str, ...] = ()
    language: str | None = None
    multi_label: bool = False  # topic probabilities are independent sigmoids, each with its threshold

    @property
    def margin(self) -> float:
        """Gap between the two most likely sentiments: small means the model is unsure."""
        top = sorted(self.sentiment_probs.values(), reverse=True)
        return top[0] - top[1] if len(top) > 1 else 1.0


@dataclass(frozen=True)
class LoadedModel:
    bundle: Bundle
    tokenizer: TextEncoder
    backend: Backend

    @property
    def version(self) -> str:
        return self.bundle.version


def softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=1, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(axis=1, keepdims=True)


def sigmoid(logits: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(logits, -60, 60)))


def plan_batches(
    lengths: Sequence[int], batch_size: int, token_budget: int, call_cost: int | None
) -> list[list[int]]:
    """Indices sorted by length and cut into model calls of at most batch_size texts and, when
    token_budget > 0, at most token_budget padded tokens (a text longer than the budget goes alone).

    On CPU every padded token costs compute, and so does every call: the cuts are the ones that make
    padded tokens plus call_cost per call least (exact, by dynamic programming over the sorted lengths),
    so a few long texts no longer pad many short ones. call_cost None: the fewest calls (a GPU)."""
    order = sorted(range(len(lengths)), key=lambda i: lengths[i])
    width = [lengths[i] for i in order]
    if call_cost is None:
        return _fewest_calls(order, width, batch_size, token_budget)
    # cost[end]: least cost of the first `end` sorted texts; start[end]: where its last call begins.
    cost = [0] + [math.inf] * len(order)
    start = [0] * (len(order) + 1)
    for end in range(1, len(order) + 1):
        for begin in range(end - 1, max(0, end - batch_size) - 1, -1):
            texts = end - begin
            if texts > 1 and token_budget > 0 and texts * width[end - 1] > token_budget:
                break  # wider calls only grow from here
            candidate = cost[begin] + call_cost + texts * width[end - 1]
            if candidate < cost[end]:
                cost[end], start[end] = candidate, begin
    batches: list[list[int]] = []
    end = len(order)
    while end:
        batches.append(order[start[end] : end])
        end = start[end]
    return batches[::-1]


def _fewest_calls(order: list[int], width: list[int], batch_size: int, token_budget: int) -> list[list[int]]:
    batches: list[list[int]] = []
    current: list[int] = []
    for i, w in zip(order, width, strict=True):
        too_wide = token_budget > 0 and (len(current) + 1) * w > token_budget
        if current and (len(current) == batch_size or too_wide):
            batches.append(current)
            current = []
        current.append(i)
    if current:
        batches.append(current)
    return batches


def pad_batch(rows: Sequence[list[int]], pad_id: int) -> tuple[np.ndarray, np.ndarray]:
    """Token ids and attention mask, padded to the longest row."""
    width = max(len(row) for row in rows)
    ids = np.full((len(rows), width), pad_id, dtype=np.int64)
    mask = np.zeros((len(rows), width), dtype=np.int64)
    for k, row in enumerate(rows):
        ids[k, : len(row)], mask[k, : len(row)] = row, 1
    return ids, mask


def choose_topics(probs: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """Every topic at or above its threshold, and at least the most likely one (no row goes untopiced)."""
    chosen = probs >= thresholds
    chosen[np.arange(len(probs)), probs.argmax(axis=1)] = True
    return chosen


class InferenceEngine:
    """Scores texts with the current model; `reload` swaps in a new bundle only after it proves sane.

    A call to `predict` takes one snapshot of the model, so a swap mid-call never mixes two models
    in one batch and never drops or repeats a text.
    """

    def __init__(
        self,
        bundle_dir: Path | str,
        backend: str = "auto",
        device: str = "auto",
        batch_size: int = 32,
        max_length: int | None = None,
        threads: int = 0,
        token_budget: int | None = None,
        allow_unservable: bool = False,
    ) -> None:
        self.backend_name = backend
        self.device = device
        self.batch_size = batch_size
        self.token_budget = token_budget
        self.allow_unservable = allow_unservable  # to measure a bundle (eval, bench), never to serve it
        self.max_length = max_length
        self.threads = threads
        self._swap_lock = threading.Lock()
        # One worker thread: model calls leave the event loop but never run two at a time.
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="inference")
        self._model = self._load(Path(bundle_dir))

    @property
    def version(self) -> str:
        return self._model.version

    @property
    def backend(self) -> Backend:
        return self._model.backend

    @property
    def bundle(self) -> Bundle:
        return self._model.bundle

    @property
    def tokenizer(self) -> TextEncoder:
        return self._model.tokenizer

    def _load(self, bundle_dir: Path) -> LoadedModel:
        bundle = Bundle.open(bundle_dir)
        if not bundle.servable and not self.allow_unservable:
            because = bundle.manifest.get("not_servable_because", "its manifest says so")
            raise BundleError(f"{bundle_dir}: not servable ({because})")
        try:
            tokenizer = TextEncoder(bundle.path(TOKENIZER_DIR))
            backend = open_backend(bundle, self.backend_name, self.device, self.threads)
        except (OSError, ValueError, RuntimeError) as exc:
            raise BundleError(f"{bundle_dir}: cannot load ({exc})") from exc
        model = LoadedModel(bundle, tokenizer, backend)
        self._check(model)
        log.info(
            "model loaded",
            extra={"version": bundle.version, "backend": backend.name, "device": backend.device},
        )
        return model

    def _check(self, model: LoadedModel) -> None:
        """Warms the model up and refuses one whose outputs on fixed texts are not probabilities."""
        predictions = self._predict_with(model, PROBE_TEXTS)
        for prediction in predictions:
            # Multi-label topic probabilities are independent sigmoids and need not sum to one.
            sums_to_one = (
                (prediction.sentiment_probs, True),
                (prediction.topic_probs, not model.bundle.multi_label),
            )
            for probs, must_sum in sums_to_one:
                values = np.array(list(probs.values()), dtype=np.float64)
                valid = np.all(np.isfinite(values)) and np.all((values >= 0) & (values <= 1))
                if values.size and (not valid or (must_sum and abs(values.sum() - 1.0) > 1e-3)):
                    raise BundleError(f"{model.bundle.root}: model gives non-finite or invalid probabilities")

    def reload(self, bundle_dir: Path | str) -> str:
        """Loads, warms up and checks a new bundle, then switches to it; the old one serves on failure."""
        with self._swap_lock:
            started = time.perf_counter()
            model = self._load(Path(bundle_dir))
            previous, self._model = self._model.version, model
        log.info(
            "model swapped",
            extra={
                "from": previous,
                "to": model.version,
                "ms": round(1000 * (time.perf_counter() - started)),
            },
        )
        return model.version

    def predict(self, texts: Sequence[str]) -> list[Prediction]:
        return self._predict_with(self._model, texts)

    async def apredict(self, texts: Sequence[str]) -> list[Prediction]:
        """Same as predict, off the event loop so a stream keeps consuming while a batch runs."""
        return await asyncio.get_running_loop().run_in_executor(self._executor, self.predict, list(texts))

    def close(self) -> None:
        self._executor.shutdown(wait=True)

    def calls_for(self, model: LoadedModel, lengths: Sequence[int]) -> list[list[int]]:
        """A GPU takes whole batches; a CPU pays for every padded token and for every call."""
        call_cost = model.backend.call_cost
        budget = self.token_budget
        if budget is None:
            budget = 0 if call_cost is None else DEFAULT_TOKEN_BUDGET
        return plan_batches(lengths, self.batch_size, budget, call_cost)

    def _predict_with(self, model: LoadedModel, texts: Sequence[str]) -> list[Prediction]:
        if not texts:
            return []
        max_length = self.max_length or model.bundle.max_length
        encoded = model.tokenizer.encode(texts, max_length)
        calls = self.calls_for(model, [len(ids) for ids in encoded])
        if model.backend.lanes > 1:
            # The longest calls first, so that lanes finish together rather than one waiting on the last.
            calls.sort(key=lambda call: len(call) * max(len(encoded[i]) for i in call), reverse=True)
        batches = [pad_batch([encoded[i] for i in call], model.tokenizer.pad_id) for call in calls]
        topic_rows: list[np.ndarray | None] = [None] * len(texts)
        sentiment_rows: list[np.ndarray | None] = [None] * len(texts)
        for call, (topic_logits, sentiment_logits) in zip(calls, model.backend.run_all(batches), strict=True):
            topic_probs = sigmoid(topic_logits) if model.bundle.multi_label else softmax(topic_logits)
            sentiment_probs = softmax(sentiment_logits)
            for row, i in enumerate(call):
                topic_rows[i] = topic_probs[row]
                sentiment_rows[i] = sentiment_probs[row]
        return [self._prediction(model, t, s) for t, s in zip(topic_rows, sentiment_rows, strict=True)]

    @staticmethod
    def _prediction(model: LoadedModel, topic: np.ndarray | None, sentiment: np.ndarray | None) -> Prediction:
        assert topic is not None and sentiment is not None  # noqa: S101 - narrows a type; no check rests on it
        topics = model.bundle.topic_labels
        sentiments = model.bundle.sentiment_labels
        topic_probs = {label: round(float(p), 5) for label, p in zip(topics, topic, strict=False)}
        sentiment_probs = {label: round(float(p), 5) for label, p in zip(sentiments, sentiment, strict=False)}
        chosen: tuple[str, ...] = ()
        if topics:
            if model.bundle.topic_thresholds is not None:
                mask = choose_topics(topic[None, : len(topics)], np.array(model.bundle.topic_thresholds))[0]
                # Most likely first: the first topic is the event's main one.
                chosen = tuple(topics[j] for j in np.argsort(-topic[: len(topics)]) if mask[j])
            else:
                chosen = (topics[int(topic.argmax())],)
        return Prediction(
            topic=chosen[0] if chosen else None,
            topic_probs=topic_probs,
            sentiment=sentiments[int(sentiment.argmax())],
            sentiment_probs=sentiment_probs,
            model_version=model.version,
            topics=chosen,
            language=model.bundle.language,
            multi_label=model.bundle.multi_label,
        )
