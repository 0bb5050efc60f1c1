"""Distilling a bundle into a smaller student, read top to bottom: teacher -> student -> soft targets ->
loop -> gate -> bundle.

The student is the teacher with fewer encoder layers (spread over its depth, or the first N), so it
starts from the teacher's own weights, embeddings and heads. It learns the teacher's logits of both
heads on every training text (a text labelled for one head still teaches the other) plus the labels.
"""

from __future__ import annotations

import copy
import logging
import math
import random
import resource
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from transformers import AutoTokenizer, get_linear_schedule_with_warmup

from inference.bundle import TOKENIZER_DIR, Bundle
from inference.model import MultiTaskClassifier, load_module
from labels.examples import Example
from training.export import write_bundle
from training.quantize import MAX_DROP
from training.targets import IGNORE
from training.train import (
    BestEpoch,
    TopicLoss,
    TopicTargets,
    TrainingError,
    collate,
    epoch_progress,
    evaluate,
    export_gate,
    make_batches,
    predict_logits,
    topic_loss_fn,
    topic_targets,
    topic_thresholds,
    use_bf16,
)

log = logging.getLogger(__name__)
PICKS = ("spread", "first")


class DistillError(ValueError):
    """The teacher and the data or the asked student do not fit together."""


@dataclass
class DistillConfig:
    teacher: Path
    out: Path
    layers: int
    pick: str = "spread"
    epochs: int = 4
    batch_size: int = 32
    lr: float = 1e-4
    head_lr: float = 1e-3
    temperature: float = 2.0
    # Weight of the teacher's soft targets; the labels take the rest.
    alpha: float = 0.7
    warmup_ratio: float = 0.06
    patience: int = 2
    max_length: int = 64
    seed: int = 13
    max_steps: int | None = None
    bf16: bool | None = None  # bf16 autocast where the CPU has it natively (None: decide by the CPU)
    # The student is servable only if no head's accuracy or macro-F1 falls more than this below the teacher's.
    max_drop: float = 0.03
    int8_max_drop: float = MAX_DROP
    progress: bool = True


@dataclass
class DistillResult:
    bundle: Bundle
    metrics: dict[str, Any]
    seconds: float
    peak_rss_mib: float


def kept_layers(total: int, layers: int, pick: str) -> list[int]:
    """Indices of the teacher layers the student keeps: `spread` ends at the top layer (every other
    layer when halving), `first` keeps the bottom ones."""
    if pick not in PICKS:
        raise DistillError(f"--pick must be one of {', '.join(PICKS)}, got {pick!r}")
    if not 1 <= layers <= total:
        raise DistillError(f"the student needs 1 to {total} layers (the teacher's count), got {layers}")
    if pick == "first":
        return list(range(layers))
    return sorted({math.ceil((k + 1) * total / layers) - 1 for k in range(layers)})


def student_of(teacher: MultiTaskClassifier, keep: Sequence[int]) -> MultiTaskClassifier:
    student = copy.deepcopy(teacher)
    student.encoder.encoder.layer = torch.nn.ModuleList(student.encoder.encoder.layer[i] for i in keep)
    student.encoder.config.num_hidden_layers = len(keep)
    return student


def check_labels(bundle: Bundle, examples: Sequence[Example]) -> None:
    """A student keeps its teacher's heads, so the data must speak the teacher's labels."""
    topics = {t for ex in examples for t in ex.topic_set}
    sentiments = {ex.sentiment for ex in examples if ex.sentiment}
    for head, seen, known in (
        ("topic", topics, bundle.topic_labels),
        ("sentiment", sentiments, bundle.sentiment_labels),
    ):
        unknown = sorted(seen - set(known))
        if unknown:
            raise DistillError(
                f"the teacher {bundle.root} has another {head} label set: {unknown} are not among its"
                f" {len(known)} labels ({', '.join(known)}); distil with data of the teacher's labels"
            )


def soft_loss(
    student: torch.Tensor, teacher: torch.Tensor, temperature: float, multi_label: bool
) -> torch.Tensor:
    """KL divergence at a temperature (scaled by T^2 so gradients keep their size), or binary
    cross-entropy against the teacher's probabilities for independent sigmoid topics."""
    if multi_label:
        return F.binary_cross_entropy_with_logits(student / temperature, torch.sigmoid(teacher / temperature))
    log_p = F.log_softmax(student / temperature, dim=-1)
    q = F.softmax(teacher / temperature, dim=-1)
    return F.kl_div(log_p, q, reduction="batchmean") * temperature**2


def hard_loss(
    logits: tuple[torch.Tensor, torch.Tensor],
    topic_loss: TopicLoss,
    topic_y: TopicTargets,
    sentiment_y: Sequence[int],
    rows: list[int],
) -> torch.Tensor:
    """The labels' loss: the training loop's masked topic loss plus cross-entropy on labelled sentiments."""
    loss = topic_loss(logits[0], topic_y, rows)
    s_y = torch.tensor([sentiment_y[i] for i in rows])
    if (s_y != IGNORE).any():
        loss = loss + F.cross_entropy(logits[1], s_y, ignore_index=IGNORE)
    return loss


def student_gate(teacher: dict[str, Any], student: dict[str, Any], max_drop: float) -> list[str]:
    """Figures on which the student falls more than max_drop below the teacher (validation rows)."""
    failures = []
    for head in ("topic", "sentiment"):
        if head not in teacher or head not in student:
            continue
        for figure in ("accuracy", "micro_f1", "macro_f1"):
            if figure in teacher[head]:
                fell = teacher[head][figure] - student[head][figure]
                if fell > max_drop:
                    failures.append(f"{head} {figure} {100 * fell:.1f} points below the teacher")
    return failures


def distill(
    train_set: Sequence[Example], valid_set: Sequence[Example], config: DistillConfig
) -> DistillResult:
    started = time.perf_counter()
    random.seed(config.seed)
    torch.manual_seed(config.seed)
    rng = random.Random(config.seed)  # noqa: S311 - sampling and jitter, not secrets
    if not train_set:
        raise TrainingError("no rows to distil on")
    bf16 = use_bf16(config.bf16)

    # The teacher, the data in its labels, and the student cut from it.
    bundle = Bundle.open(config.teacher)
    check_labels(bundle, [*train_set, *valid_set])
    tokenizer = AutoTokenizer.from_pretrained(str(bundle.path(TOKENIZER_DIR)), use_fast=True)
    teacher = load_module(bundle).eval()
    keep = kept_layers(teacher.encoder.config.num_hidden_layers, config.layers, config.pick)
    student = student_of(teacher, keep)
    topic_labels, multi_label = list(bundle.topic_labels), bundle.multi_label
    topic_index = {label: i for i, label in enumerate(topic_labels)}
    sentiment_index = {label: i for i, label in enumerate(bundle.sentiment_labels)}

    def encode(examples: Sequence[Example]) -> list[list[int]]:
        texts = [ex.text for ex in examples]
        return tokenizer(texts, truncation=True, max_length=config.max_length)["input_ids"] if texts else []

    def sentiments(examples: Sequence[Example]) -> list[int]:
        return [sentiment_index[ex.sentiment] if ex.sentiment else IGNORE for ex in examples]

    train_ids, valid_ids = encode(train_set), encode(valid_set)
    train_topic, train_sentiment = topic_targets(train_set, topic_index, multi_label), sentiments(train_set)
    valid_topic, valid_sentiment = topic_targets(valid_set, topic_index, multi_label), sentiments(valid_set)
    pad_id = tokenizer.pad_token_id or 0
    # The labels' topic loss, unweighted: the soft targets already carry the teacher's view of rare classes.
    topic_loss = topic_loss_fn(train_topic, len(topic_labels), 0.0, weighted=False)

    # The teacher's logits, once: every epoch reads them instead of running the teacher again.
    log.info("teacher logits", extra={"rows": len(train_ids), "teacher": bundle.version})
    soft_topic, soft_sentiment = (
        torch.from_numpy(x) for x in predict_logits(teacher, train_ids, pad_id, False)
    )
    teacher_cut = bundle.topic_thresholds
    teacher_report = evaluate(
        teacher,
        valid_ids,
        valid_topic,
        valid_sentiment,
        topic_labels,
        pad_id,
        False,
        np.array(teacher_cut) if teacher_cut else None,
    )
    del teacher

    heads = [*student.topic_head.parameters(), *student.sentiment_head.parameters()]
    head_ids = {id(p) for p in heads}
    encoder = [p for p in student.parameters() if id(p) not in head_ids]
    optimizer = torch.optim.AdamW(
        [{"params": encoder, "lr": config.lr}, {"params": heads, "lr": config.head_lr}], weight_decay=0.01
    )
    steps_per_epoch = math.ceil(len(train_ids) / config.batch_size)
    total_steps = min(steps_per_epoch * config.epochs, config.max_steps or 1 << 62)
    scheduler = get_linear_schedule_with_warmup(
        optimizer, int(config.warmup_ratio * total_steps), total_steps
    )

    best, step = BestEpoch(config.patience), 0
    progress = epoch_progress(config.progress)
    with progress:
        for epoch in range(1, config.epochs + 1):
            student.train()
            batches = make_batches([len(x) for x in train_ids], config.batch_size, rng)
            task = progress.add_task(f"epoch {epoch}/{config.epochs}", total=len(batches), loss=float("nan"))
            running = 0.0
            for n, rows in enumerate(batches, 1):
                with torch.autocast("cpu", torch.bfloat16, enabled=bf16):
                    t_logits, s_logits = student(*collate(train_ids, rows, pad_id))
                logits = (t_logits.float(), s_logits.float())
                soft = soft_loss(logits[0], soft_topic[rows], config.temperature, multi_label) + soft_loss(
                    logits[1], soft_sentiment[rows], config.temperature, False
                )
                loss = config.alpha * soft + (1 - config.alpha) * hard_loss(
                    logits, topic_loss, train_topic, train_sentiment, rows
                )
                if not torch.isfinite(loss):
                    raise TrainingError(f"loss became {loss.item()} at epoch {epoch}, batch {n}")
                loss.backward()
                torch.nn.utils.clip_grad_norm_(student.parameters(), 1.0)
                optimizer.step()
                scheduler.step()
                optimizer.zero_grad(set_to_none=True)
                step += 1
                running = 0.98 * running + 0.02 * loss.item() if n > 1 else loss.item()
                progress.update(task, advance=1, loss=running)
                if n % max(1, len(batches) // 10) == 0:
                    log.info(
                        "distilling",
                        extra={"epoch": epoch, "batch": f"{n}/{len(batches)}", "loss": round(running, 4)},
                    )
                if config.max_steps and step >= config.max_steps:
                    break

            report = evaluate(student, valid_ids, valid_topic, valid_sentiment, topic_labels, pad_id, bf16)
            if best.stop_after(epoch, running, report["score"], student):
                break
            if config.max_steps and step >= config.max_steps:
                break

    # The best epoch, its thresholds, and the gate against the teacher.
    student.load_state_dict(best.state)
    thresholds = topic_thresholds(student, valid_ids, valid_topic, pad_id, False) if multi_label else None
    valid_report = evaluate(
        student, valid_ids, valid_topic, valid_sentiment, topic_labels, pad_id, False, thresholds
    )
    failures = student_gate(teacher_report, valid_report, config.max_drop) if valid_set else []
    seconds = time.perf_counter() - started
    peak_rss_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    metrics = {
        "valid": valid_report,
        "teacher_valid": teacher_report,
        "student_gate": {"max_drop_points": 100 * config.max_drop, "failures": failures},
        "best_epoch": best.epoch,
        "history": best.history,
        "train_seconds": round(seconds, 1),
        "peak_rss_mib": round(peak_rss_mib, 1),
        "bf16": bf16,
        "rows": {"train": len(train_set), "valid": len(valid_set)},
    }
    settings = {k: str(v) if isinstance(v, Path) else v for k, v in asdict(config).items()}
    train_texts = [ex.text for ex in train_set]
    written = write_bundle(
        student,
        tokenizer,
        config.out,
        topic_labels,
        bundle.sentiment_labels,
        export_gate(valid_set, train_texts, topic_labels, thresholds, config.seed, config.int8_max_drop),
        max_length=bundle.max_length,
        metrics=metrics,
        training=settings,
        topic_thresholds=dict(zip(topic_labels, map(float, thresholds), strict=True))
        if thresholds is not None
        else None,
        language=bundle.language,
        base=bundle.manifest.get("base"),
        lineage={"teacher": {"version": bundle.version, "path": str(bundle.root), "layers": keep}},
        not_servable_because="; ".join(failures) or None,
    )
    if failures:
        log.warning("student not servable", extra={"failures": failures})
    return DistillResult(written, metrics, seconds, peak_rss_mib)
