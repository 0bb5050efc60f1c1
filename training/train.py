"""Fine-tuning the two-headed classifier, read top to bottom: data -> tokens -> loop -> best -> bundle."""

from __future__ import annotations

import copy
import logging
import math
import random
import resource
import time
import unicodedata
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from transformers import AutoTokenizer, PreTrainedTokenizerBase, get_linear_schedule_with_warmup
from transformers.utils import logging as hf_logging

from inference.bundle import SENTIMENTS, TOKENIZER_DIR, Bundle
from inference.engine import choose_topics, sigmoid
from inference.model import MultiTaskClassifier, load_module
from labels.examples import Example
from training.export import write_bundle
from training.metrics import classification_report, multilabel_report, tune_thresholds
from training.quantize import CALIBRATION_TEXTS, MAX_DROP, SPEED_TEXTS, GateData, labelled_rows
from training.targets import IGNORE, topic_matrix

log = logging.getLogger(__name__)
UNK_WARN_RATE = 0.05


class TrainingError(RuntimeError):
    """Training could not produce a usable model (no labels, a NaN loss, ...)."""


@dataclass
class TrainConfig:
    base_model: Path
    out: Path
    epochs: int = 5
    batch_size: int = 32
    grad_accum: int = 1
    lr: float = 8e-5
    head_lr: float = 1e-3
    weight_decay: float = 0.01
    warmup_ratio: float = 0.06
    patience: int = 2
    max_length: int = 64
    serve_max_length: int = 128
    bf16: bool | None = None
    extend_vocab: bool = False
    seed: int = 13
    max_steps: int | None = None
    progress: bool = True
    # A bundle to continue from (its tokenizer, encoder and heads) instead of the base model.
    init_from: Path | None = None
    version: str | None = None  # the bundle's version; a UTC timestamp when None
    label_smoothing: float = 0.0
    # Rarer classes weigh more in the single-label losses (macro-F1 up, accuracy often down a little).
    class_weights: bool = True
    # Per encoder layer going down, the learning rate is multiplied by this (1.0: one rate for all).
    layer_decay: float = 1.0
    # What the bundle records: the language it serves and the base encoder it grew from.
    language: str | None = None
    base: dict[str, Any] | None = None
    # An int8 export is served only if no head's accuracy or macro-F1 falls by more than this.
    int8_max_drop: float = MAX_DROP


@dataclass
class TrainResult:
    bundle: Bundle
    metrics: dict[str, Any]
    seconds: float
    peak_rss_mib: float


def cpu_bf16_supported() -> bool:
    check = getattr(torch.cpu, "_is_avx512_bf16_supported", None)
    return bool(check and check())


def use_bf16(asked: bool | None) -> bool:
    """bf16 autocast as asked, or (None) where the CPU has native bf16 units."""
    return cpu_bf16_supported() if asked is None else asked


def unk_rate(tokenizer: PreTrainedTokenizerBase, texts: Sequence[str]) -> float:
    """Share of tokens that are [UNK]: high means the vocabulary does not cover the language."""
    unk_id = tokenizer.unk_token_id
    total = unk = 0
    for ids in tokenizer(list(texts), add_special_tokens=False)["input_ids"]:
        total += len(ids)
        unk += sum(1 for i in ids if i == unk_id)
    return unk / total if total else 0.0


def warn_if_unknown(rate: float, what: str) -> None:
    if rate >= UNK_WARN_RATE:
        log.warning(
            "high [UNK] rate: the vocabulary misses much of this text; consider --extend-vocab",
            extra={"data": what, "unk_rate": round(rate, 4)},
        )


def extend_vocabulary(tokenizer: PreTrainedTokenizerBase, texts: Sequence[str]) -> list[str]:
    """Adds every character of the corpus that tokenises to [UNK] alone (CJK, mostly) as a new token."""
    unk_id = tokenizer.unk_token_id
    chars = Counter(ch for text in texts for ch in text if not ch.isspace())
    candidates = sorted(chars, key=lambda c: (-chars[c], c))
    # Unknown after normalisation: "A" or "é" is not in a lower-cased vocabulary, yet encodes fine as
    # "a" or "e"; adding them as tokens would split every word that contains them.
    letters = [ch for ch in candidates if unicodedata.category(ch)[0] in "LN"]
    encoded = tokenizer(letters, add_special_tokens=False)["input_ids"] if letters else []
    new = [ch for ch, ids in zip(letters, encoded, strict=True) if ids == [unk_id]]
    tokenizer.add_tokens(new)
    return new


def class_weights(labels: Sequence[int], n: int) -> torch.Tensor:
    """Square-root-damped inverse frequency: rare classes count more without drowning the common ones."""
    counts = np.bincount([y for y in labels if y != IGNORE], minlength=n).astype(np.float64)
    weights = np.where(counts > 0, np.sqrt(counts.sum() / (n * np.maximum(counts, 1))), 0.0)
    return torch.tensor(weights, dtype=torch.float32)


@dataclass
class TopicTargets:
    """Topic labels of a split: class indices (single-label) or a 0/1 matrix with a row mask (multi)."""

    index: list[int]
    matrix: np.ndarray | None = None

    @property
    def labelled(self) -> list[int]:
        if self.matrix is not None:
            return [i for i, row in enumerate(self.matrix) if row.any()]
        return [i for i, y in enumerate(self.index) if y != IGNORE]


def topic_targets(
    examples: Sequence[Example], topic_index: dict[str, int], multi_label: bool
) -> TopicTargets:
    if not multi_label:
        return TopicTargets([topic_index.get(ex.topic, IGNORE) if ex.topic else IGNORE for ex in examples])
    return TopicTargets([IGNORE] * len(examples), topic_matrix(examples, topic_index))


TopicLoss = Callable[[torch.Tensor, TopicTargets, Sequence[int]], torch.Tensor]


def topic_loss_fn(
    targets: TopicTargets, num_topics: int, label_smoothing: float, weighted: bool = True
) -> TopicLoss:
    """Cross-entropy over one topic, or a sigmoid per topic (binary cross-entropy) for multi-label rows.

    Either way rows without a topic label add nothing.
    """
    if targets.matrix is not None:
        bce = torch.nn.BCEWithLogitsLoss()
        matrix = torch.from_numpy(targets.matrix)

        def multi(logits: torch.Tensor, y: TopicTargets, rows: Sequence[int]) -> torch.Tensor:
            labelled = [r for r, i in enumerate(rows) if matrix[i].any()]
            if not labelled:
                return torch.zeros(())
            return bce(logits[labelled, :num_topics], matrix[[rows[r] for r in labelled]])

        return multi
    cross_entropy = torch.nn.CrossEntropyLoss(
        weight=class_weights(targets.index, max(num_topics, 1)) if weighted else None,
        ignore_index=IGNORE,
        label_smoothing=label_smoothing,
    )

    def single(logits: torch.Tensor, y: TopicTargets, rows: Sequence[int]) -> torch.Tensor:
        t_y = torch.tensor([y.index[i] for i in rows])
        return cross_entropy(logits, t_y) if (t_y != IGNORE).any() else torch.zeros(())

    return single


def parameter_groups(
    module: MultiTaskClassifier, lr: float, head_lr: float, layer_decay: float
) -> list[dict[str, Any]]:
    """The heads at head_lr; encoder layer k of n at lr * layer_decay**(n-k), embeddings lowest.

    Layer-wise decay keeps the lower, more general layers closer to the pretrained encoder.
    """
    heads = [*module.topic_head.parameters(), *module.sentiment_head.parameters()]
    layers = module.encoder.config.num_hidden_layers
    groups: dict[int, list[torch.nn.Parameter]] = {}
    for name, param in module.encoder.named_parameters():
        depth = layers  # pooler-free top of the encoder and anything unnamed: the top rate
        if name.startswith("embeddings."):
            depth = 0
        elif ".layer." in f".{name}":
            depth = int(name.split("layer.")[1].split(".")[0]) + 1
        groups.setdefault(depth, []).append(param)
    result = [
        {"params": params, "lr": lr * layer_decay ** (layers - depth)}
        for depth, params in sorted(groups.items())
    ]
    result.append({"params": heads, "lr": head_lr})
    return result


def make_batches(lengths: Sequence[int], batch_size: int, rng: random.Random) -> list[list[int]]:
    """Shuffled batches of similar-length rows (sorted within pools of 50 batches) to cut padding."""
    order = list(range(len(lengths)))
    rng.shuffle(order)
    pool = batch_size * 50
    batches = []
    for start in range(0, len(order), pool):
        chunk = sorted(order[start : start + pool], key=lambda i: lengths[i])
        batches += [chunk[i : i + batch_size] for i in range(0, len(chunk), batch_size)]
    rng.shuffle(batches)
    return batches


def collate(ids: Sequence[list[int]], rows: Sequence[int], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(len(ids[i]) for i in rows)
    input_ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for r, i in enumerate(rows):
        input_ids[r, : len(ids[i])] = torch.tensor(ids[i])
        mask[r, : len(ids[i])] = 1
    return input_ids, mask


def predict_logits(
    module: MultiTaskClassifier, ids: Sequence[list[int]], pad_id: int, bf16: bool, batch_size: int = 128
) -> tuple[np.ndarray, np.ndarray]:
    module.eval()
    order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
    topic = np.zeros((len(ids), module.topic_head.out_features), dtype=np.float32)
    sentiment = np.zeros((len(ids), module.sentiment_head.out_features), dtype=np.float32)
    with torch.inference_mode(), torch.autocast("cpu", torch.bfloat16, enabled=bf16):
        for start in range(0, len(order), batch_size):
            rows = order[start : start + batch_size]
            t, s = module(*collate(ids, rows, pad_id))
            topic[rows], sentiment[rows] = t.float().numpy(), s.float().numpy()
    return topic, sentiment


def evaluate(
    module: MultiTaskClassifier,
    ids: Sequence[list[int]],
    topic_y: TopicTargets,
    sentiment_y: Sequence[int],
    topic_labels: Sequence[str],
    pad_id: int,
    bf16: bool,
    thresholds: np.ndarray | None = None,
) -> dict[str, Any]:
    """Reports for the heads that have labels in this split, plus their mean macro-F1 as `score`.

    A multi-label topic head is judged at `thresholds` (0.5 each when None).
    """
    topic_logits, sentiment_logits = predict_logits(module, ids, pad_id, bf16)
    report: dict[str, Any] = {}
    rows = topic_y.labelled
    if rows and topic_labels and topic_y.matrix is not None:
        probs = sigmoid(topic_logits[rows, : len(topic_labels)])
        cut = np.full(len(topic_labels), 0.5) if thresholds is None else thresholds
        report["topic"] = multilabel_report(topic_y.matrix[rows], choose_topics(probs, cut), topic_labels)
    elif rows and topic_labels:
        truth = [topic_y.index[i] for i in rows]
        report["topic"] = classification_report(truth, topic_logits[rows].argmax(1).tolist(), topic_labels)
    rows = [i for i, label in enumerate(sentiment_y) if label != IGNORE]
    if rows:
        truth = [sentiment_y[i] for i in rows]
        report["sentiment"] = classification_report(
            truth, sentiment_logits[rows].argmax(1).tolist(), SENTIMENTS
        )
    heads = [report[h]["macro_f1"] for h in ("topic", "sentiment") if h in report]
    report["score"] = float(np.mean(heads)) if heads else 0.0
    return report


def topic_thresholds(
    module: MultiTaskClassifier, ids: Sequence[list[int]], topic_y: TopicTargets, pad_id: int, bf16: bool
) -> np.ndarray:
    """Per-topic thresholds with the best F1 on these (validation) rows."""
    assert topic_y.matrix is not None  # noqa: S101 - narrows a type; no check rests on it
    rows = topic_y.labelled
    n = topic_y.matrix.shape[1]
    if not rows:
        return np.full(n, 0.5)
    topic_logits, _ = predict_logits(module, [ids[i] for i in rows], pad_id, bf16)
    return tune_thresholds(sigmoid(topic_logits[:, :n]), topic_y.matrix[rows])


def epoch_progress(enabled: bool) -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("loss {task.fields[loss]:.3f}"),
        TimeRemainingColumn(),
        disable=not enabled,
    )


class BestEpoch:
    """Keeps the weights of the best-scoring epoch and the history, and says when `patience` epochs
    brought nothing better."""

    def __init__(self, patience: int) -> None:
        self.patience = patience
        self.score, self.epoch = -1.0, 0
        self.history: list[dict[str, float]] = []
        self._state: dict[str, torch.Tensor] | None = None

    @property
    def state(self) -> dict[str, torch.Tensor]:
        assert self._state is not None, "no epoch was scored"  # noqa: S101 - narrows a type; no check rests on it
        return self._state

    def stop_after(self, epoch: int, loss: float, score: float, module: torch.nn.Module) -> bool:
        self.history.append({"epoch": epoch, "train_loss": loss, "valid_score": score})
        log.info("epoch done", extra={"epoch": epoch, "loss": round(loss, 4), "valid": score})
        if score > self.score:
            self.score, self.epoch, self._state = score, epoch, copy.deepcopy(module.state_dict())
            return False
        if epoch - self.epoch >= self.patience:
            log.info("early stop", extra={"epoch": epoch, "best_epoch": self.epoch})
            return True
        return False


def export_gate(
    valid_set: Sequence[Example],
    train_texts: Sequence[str],
    topic_labels: Sequence[str],
    thresholds: np.ndarray | None,
    seed: int,
    max_drop: float,
) -> GateData:
    """The export's int8 gate: the validation rows with their labels, calibration from training texts."""
    return GateData(
        texts=[ex.text for ex in valid_set] or list(train_texts[:SPEED_TEXTS]),
        labelled=labelled_rows(valid_set, topic_labels, SENTIMENTS, thresholds) if valid_set else None,
        calibration=random.Random(seed).sample(list(train_texts), min(CALIBRATION_TEXTS, len(train_texts))),  # noqa: S311 - sampling and jitter, not secrets
        max_drop=max_drop,
    )


def _starting_point(
    config: TrainConfig, train_set: Sequence[Example]
) -> tuple[PreTrainedTokenizerBase, MultiTaskClassifier, list[str], bool]:
    """Tokenizer, network, topic labels and whether topics are multi-label.

    From the base, topics come from the data and the heads are new; the topic head is multi-label when
    some row has several topics. When continuing, the bundle's label set and kind of head stand, and
    rows with a topic outside it train the sentiment head only.
    """
    # (The base's load report lists the unused pooler weights: expected, so only errors are shown.)
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    if config.init_from is not None:
        bundle = Bundle.open(config.init_from)
        tokenizer = AutoTokenizer.from_pretrained(str(bundle.path(TOKENIZER_DIR)), use_fast=True)
        known = set(bundle.topic_labels)
        unknown = sorted({t for ex in train_set for t in ex.topic_set if t not in known})
        if unknown:
            log.warning("topics outside the model's label set are not learned", extra={"topics": unknown})
        return tokenizer, load_module(bundle), list(bundle.topic_labels), bundle.multi_label
    tokenizer = AutoTokenizer.from_pretrained(str(config.base_model), use_fast=True)
    topic_labels = sorted({t for ex in train_set for t in ex.topic_set})
    multi_label = any(len(ex.topic_set) > 1 for ex in train_set)
    module = MultiTaskClassifier.from_pretrained(str(config.base_model), len(topic_labels), len(SENTIMENTS))
    return tokenizer, module, topic_labels, multi_label


def train(
    train_set: Sequence[Example],
    valid_set: Sequence[Example],
    test_set: Sequence[Example],
    config: TrainConfig,
) -> TrainResult:
    started = time.perf_counter()
    random.seed(config.seed)
    torch.manual_seed(config.seed)
    rng = random.Random(config.seed)  # noqa: S311 - sampling and jitter, not secrets
    if not train_set:
        raise TrainingError("no labelled rows to train on")
    bf16 = use_bf16(config.bf16)

    tokenizer, module, topic_labels, multi_label = _starting_point(config, train_set)
    topic_index = {label: i for i, label in enumerate(topic_labels)}
    sentiment_index = {label: i for i, label in enumerate(SENTIMENTS)}

    def targets(examples: Sequence[Example]) -> tuple[TopicTargets, list[int]]:
        topic = topic_targets(examples, topic_index, multi_label)
        sentiment = [sentiment_index[ex.sentiment] if ex.sentiment else IGNORE for ex in examples]
        return topic, sentiment

    # The corpus's unknown characters become new tokens when asked.
    train_texts = [ex.text for ex in train_set]
    unk_before = unk_rate(tokenizer, train_texts)
    warn_if_unknown(unk_before, "train")
    added = extend_vocabulary(tokenizer, train_texts) if config.extend_vocab else []
    unk_after = unk_rate(tokenizer, train_texts) if added else unk_before
    if added:
        # New vocabulary rows start at the mean embedding.
        module.encoder.resize_token_embeddings(len(tokenizer), mean_resizing=True)

    def encode(examples: Sequence[Example]) -> list[list[int]]:
        texts = [ex.text for ex in examples]
        return tokenizer(texts, truncation=True, max_length=config.max_length)["input_ids"] if texts else []

    train_ids, valid_ids, test_ids = encode(train_set), encode(valid_set), encode(test_set)
    train_topic, train_sentiment = targets(train_set)
    valid_topic, valid_sentiment = targets(valid_set)
    test_topic, test_sentiment = targets(test_set)
    pad_id = tokenizer.pad_token_id or 0

    topic_loss = topic_loss_fn(train_topic, len(topic_labels), config.label_smoothing, config.class_weights)
    sentiment_loss = torch.nn.CrossEntropyLoss(
        weight=class_weights(train_sentiment, len(SENTIMENTS)) if config.class_weights else None,
        ignore_index=IGNORE,
        label_smoothing=config.label_smoothing,
    )
    optimizer = torch.optim.AdamW(
        parameter_groups(module, config.lr, config.head_lr, config.layer_decay),
        weight_decay=config.weight_decay,
    )
    steps_per_epoch = math.ceil(len(train_ids) / config.batch_size / config.grad_accum)
    total_steps = steps_per_epoch * config.epochs
    if config.max_steps:
        total_steps = min(total_steps, config.max_steps)
    scheduler = get_linear_schedule_with_warmup(
        optimizer, int(config.warmup_ratio * total_steps), total_steps
    )

    best, step = BestEpoch(config.patience), 0
    progress = epoch_progress(config.progress)
    with progress:
        for epoch in range(1, config.epochs + 1):
            module.train()
            batches = make_batches([len(x) for x in train_ids], config.batch_size, rng)
            task = progress.add_task(f"epoch {epoch}/{config.epochs}", total=len(batches), loss=float("nan"))
            running = 0.0
            for n, rows in enumerate(batches, 1):
                input_ids, mask = collate(train_ids, rows, pad_id)
                s_y = torch.tensor([train_sentiment[i] for i in rows])
                with torch.autocast("cpu", torch.bfloat16, enabled=bf16):
                    t_logits, s_logits = module(input_ids, mask)
                # A head with no label in this batch adds nothing (masked loss).
                loss = torch.zeros(())
                loss = loss + topic_loss(t_logits.float(), train_topic, rows)
                if (s_y != IGNORE).any():
                    loss = loss + sentiment_loss(s_logits.float(), s_y)
                if not torch.isfinite(loss):
                    raise TrainingError(f"loss became {loss.item()} at epoch {epoch}, batch {n}")
                (loss / config.grad_accum).backward()
                if n % config.grad_accum == 0 or n == len(batches):
                    torch.nn.utils.clip_grad_norm_(module.parameters(), 1.0)
                    optimizer.step()
                    scheduler.step()
                    optimizer.zero_grad(set_to_none=True)
                    step += 1
                running = 0.98 * running + 0.02 * loss.item() if n > 1 else loss.item()
                progress.update(task, advance=1, loss=running)
                if n % max(1, len(batches) // 10) == 0:
                    # A log line every tenth of an epoch: the bar is invisible when output is not a terminal.
                    log.info(
                        "training",
                        extra={
                            "epoch": epoch,
                            "batch": f"{n}/{len(batches)}",
                            "loss": round(running, 4),
                            "s_per_batch": round((time.perf_counter() - started) / step, 3),
                        },
                    )
                if config.max_steps and step >= config.max_steps:
                    break

            report = evaluate(module, valid_ids, valid_topic, valid_sentiment, topic_labels, pad_id, bf16)
            if best.stop_after(epoch, running, report["score"], module):
                break
            if config.max_steps and step >= config.max_steps:
                break

    module.load_state_dict(best.state)
    thresholds = (
        topic_thresholds(module, valid_ids, valid_topic, pad_id, bf16)
        if multi_label and topic_labels
        else None
    )
    seconds = time.perf_counter() - started
    peak_rss_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    metrics = {
        "valid": evaluate(
            module, valid_ids, valid_topic, valid_sentiment, topic_labels, pad_id, bf16, thresholds
        ),
        "test": evaluate(module, test_ids, test_topic, test_sentiment, topic_labels, pad_id, bf16, thresholds)
        if test_ids
        else {},
        "best_epoch": best.epoch,
        "history": best.history,
        "unk_rate": {"before_extension": unk_before, "after_extension": unk_after},
        "vocab_added": len(added),
        "train_seconds": round(seconds, 1),
        "peak_rss_mib": round(peak_rss_mib, 1),
        "bf16": bf16,
        "rows": {"train": len(train_set), "valid": len(valid_set), "test": len(test_set)},
        "topic_multi_label": multi_label,
    }
    settings = {k: str(v) if isinstance(v, Path) else v for k, v in asdict(config).items()}
    bundle = write_bundle(
        module,
        tokenizer,
        config.out,
        topic_labels,
        SENTIMENTS,
        export_gate(valid_set, train_texts, topic_labels, thresholds, config.seed, config.int8_max_drop),
        max_length=config.serve_max_length,
        version=config.version,
        metrics=metrics,
        training=settings,
        topic_thresholds=dict(zip(topic_labels, map(float, thresholds), strict=True))
        if thresholds is not None
        else None,
        language=config.language,
        base=config.base,
    )
    return TrainResult(bundle, metrics, seconds, peak_rss_mib)
