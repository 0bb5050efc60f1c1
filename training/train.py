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
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from transformers import AutoTokenizer, PreTrainedTokenizerBase, get_linear_schedule_with_warmup
from transformers.utils import logging as hf_logging

from inference.bundle import SENTIMENTS, TOKENIZER_DIR, Bundle
from inference.model import MultiTaskClassifier, load_module
from labels.examples import Example
from training.export import write_bundle
from training.metrics import classification_report

log = logging.getLogger(__name__)
IGNORE = -100
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


@dataclass
class TrainResult:
    bundle: Bundle
    metrics: dict[str, Any]
    seconds: float
    peak_rss_mib: float


def cpu_bf16_supported() -> bool:
    check = getattr(torch.cpu, "_is_avx512_bf16_supported", None)
    return bool(check and check())


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
    new = [
        ch
        for ch in candidates
        if unicodedata.category(ch)[0] in "LN" and tokenizer.convert_tokens_to_ids(ch) == unk_id
    ]
    tokenizer.add_tokens(new)
    return new


def class_weights(labels: Sequence[int], n: int) -> torch.Tensor:
    """Square-root-damped inverse frequency: rare classes count more without drowning the common ones."""
    counts = np.bincount([y for y in labels if y != IGNORE], minlength=n).astype(np.float64)
    weights = np.where(counts > 0, np.sqrt(counts.sum() / (n * np.maximum(counts, 1))), 0.0)
    return torch.tensor(weights, dtype=torch.float32)


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
    topic_y: Sequence[int],
    sentiment_y: Sequence[int],
    topic_labels: Sequence[str],
    pad_id: int,
    bf16: bool,
) -> dict[str, Any]:
    """Reports for the heads that have labels in this split, plus their mean macro-F1 as `score`."""
    topic_logits, sentiment_logits = predict_logits(module, ids, pad_id, bf16)
    report: dict[str, Any] = {}
    for head, logits, y, labels in (
        ("topic", topic_logits, topic_y, topic_labels),
        ("sentiment", sentiment_logits, sentiment_y, SENTIMENTS),
    ):
        rows = [i for i, label in enumerate(y) if label != IGNORE]
        if rows and labels:
            report[head] = classification_report(
                [y[i] for i in rows], logits[rows].argmax(1).tolist(), labels
            )
    heads = [report[h]["macro_f1"] for h in ("topic", "sentiment") if h in report]
    report["score"] = float(np.mean(heads)) if heads else 0.0
    return report


def _starting_point(
    config: TrainConfig, train_set: Sequence[Example]
) -> tuple[PreTrainedTokenizerBase, MultiTaskClassifier, list[str]]:
    """Tokenizer, network and topic labels: a bundle's when continuing, else the base model's.

    From the base, topics come from the data and the heads are new; when continuing, the bundle's
    label set stands, and rows with a topic outside it train the sentiment head only.
    """
    # (The base's load report lists the unused pooler weights: expected, so only errors are shown.)
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    if config.init_from is not None:
        bundle = Bundle.open(config.init_from)
        tokenizer = AutoTokenizer.from_pretrained(str(bundle.path(TOKENIZER_DIR)), use_fast=True)
        unknown = sorted({ex.topic for ex in train_set if ex.topic and ex.topic not in bundle.topic_labels})
        if unknown:
            log.warning("topics outside the model's label set are not learned", extra={"topics": unknown})
        return tokenizer, load_module(bundle), list(bundle.topic_labels)
    tokenizer = AutoTokenizer.from_pretrained(str(config.base_model), use_fast=True)
    topic_labels = sorted({ex.topic for ex in train_set if ex.topic is not None})
    module = MultiTaskClassifier.from_pretrained(str(config.base_model), len(topic_labels), len(SENTIMENTS))
    return tokenizer, module, topic_labels


def train(
    train_set: Sequence[Example],
    valid_set: Sequence[Example],
    test_set: Sequence[Example],
    config: TrainConfig,
) -> TrainResult:
    started = time.perf_counter()
    random.seed(config.seed)
    torch.manual_seed(config.seed)
    rng = random.Random(config.seed)
    if not train_set:
        raise TrainingError("no labelled rows to train on")
    bf16 = cpu_bf16_supported() if config.bf16 is None else config.bf16

    tokenizer, module, topic_labels = _starting_point(config, train_set)
    topic_index = {label: i for i, label in enumerate(topic_labels)}
    sentiment_index = {label: i for i, label in enumerate(SENTIMENTS)}

    def targets(examples: Sequence[Example]) -> tuple[list[int], list[int]]:
        topic = [topic_index.get(ex.topic, IGNORE) if ex.topic else IGNORE for ex in examples]
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

    topic_loss = torch.nn.CrossEntropyLoss(
        weight=class_weights(train_topic, max(len(topic_labels), 1)), ignore_index=IGNORE
    )
    sentiment_loss = torch.nn.CrossEntropyLoss(
        weight=class_weights(train_sentiment, len(SENTIMENTS)), ignore_index=IGNORE
    )

    head_params = [*module.topic_head.parameters(), *module.sentiment_head.parameters()]
    head_ids = {id(p) for p in head_params}
    encoder_params = [p for p in module.parameters() if id(p) not in head_ids]
    optimizer = torch.optim.AdamW(
        [{"params": encoder_params, "lr": config.lr}, {"params": head_params, "lr": config.head_lr}],
        weight_decay=config.weight_decay,
    )
    steps_per_epoch = math.ceil(len(train_ids) / config.batch_size / config.grad_accum)
    total_steps = steps_per_epoch * config.epochs
    if config.max_steps:
        total_steps = min(total_steps, config.max_steps)
    scheduler = get_linear_schedule_with_warmup(
        optimizer, int(config.warmup_ratio * total_steps), total_steps
    )

    best_score, best_state, best_epoch, history = -1.0, None, 0, []
    step = 0
    progress = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("loss {task.fields[loss]:.3f}"),
        TimeRemainingColumn(),
        disable=not config.progress,
    )
    with progress:
        for epoch in range(1, config.epochs + 1):
            module.train()
            batches = make_batches([len(x) for x in train_ids], config.batch_size, rng)
            task = progress.add_task(f"epoch {epoch}/{config.epochs}", total=len(batches), loss=float("nan"))
            running = 0.0
            for n, rows in enumerate(batches, 1):
                input_ids, mask = collate(train_ids, rows, pad_id)
                t_y = torch.tensor([train_topic[i] for i in rows])
                s_y = torch.tensor([train_sentiment[i] for i in rows])
                with torch.autocast("cpu", torch.bfloat16, enabled=bf16):
                    t_logits, s_logits = module(input_ids, mask)
                # A head with no label in this batch adds nothing (masked loss).
                loss = torch.zeros(())
                if (t_y != IGNORE).any():
                    loss = loss + topic_loss(t_logits.float(), t_y)
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
            history.append({"epoch": epoch, "train_loss": running, "valid_score": report["score"]})
            log.info(
                "epoch done", extra={"epoch": epoch, "loss": round(running, 4), "valid": report["score"]}
            )
            if report["score"] > best_score:
                best_score, best_epoch = report["score"], epoch
                best_state = copy.deepcopy(module.state_dict())
            elif epoch - best_epoch >= config.patience:
                log.info("early stop", extra={"epoch": epoch, "best_epoch": best_epoch})
                break
            if config.max_steps and step >= config.max_steps:
                break

    assert best_state is not None
    module.load_state_dict(best_state)
    seconds = time.perf_counter() - started
    peak_rss_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    metrics = {
        "valid": evaluate(module, valid_ids, valid_topic, valid_sentiment, topic_labels, pad_id, bf16),
        "test": evaluate(module, test_ids, test_topic, test_sentiment, topic_labels, pad_id, bf16)
        if test_ids
        else {},
        "best_epoch": best_epoch,
        "history": history,
        "unk_rate": {"before_extension": unk_before, "after_extension": unk_after},
        "vocab_added": len(added),
        "train_seconds": round(seconds, 1),
        "peak_rss_mib": round(peak_rss_mib, 1),
        "bf16": bf16,
        "rows": {"train": len(train_set), "valid": len(valid_set), "test": len(test_set)},
    }
    check_texts = [ex.text for ex in valid_set[:2000]] or train_texts[:200]
    settings = {k: str(v) if isinstance(v, Path) else v for k, v in asdict(config).items()}
    bundle = write_bundle(
        module,
        tokenizer,
        config.out,
        topic_labels,
        SENTIMENTS,
        check_texts,
        max_length=config.serve_max_length,
        version=config.version,
        metrics=metrics,
        training=settings,
    )
    return TrainResult(bundle, metrics, seconds, peak_rss_mib)
