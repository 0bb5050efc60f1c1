"""The nightly job: fine-tune a challenger on new labels, compare it with the champion, promote or not.

Read top to bottom: lock -> what is new -> train from the champion -> evaluate both on the frozen
set -> gate -> register (and promote). Any failure leaves the champion serving and is recorded.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Engine

from labels.examples import Example, split_bucket
from labels.store import LabelStore
from training.lock import Lease, lease
from training.registry import ModelInfo, Registry

log = logging.getLogger(__name__)
LOCK = "nightly-trainer"
HEADS = ("topic", "sentiment")


class LeaseLost(RuntimeError):
    """The lease lapsed (no heartbeat got through) and another trainer took it."""


@dataclass(frozen=True)
class NightlyConfig:
    base_model: Path
    min_new_labels: int = 200
    replay_ratio: float = 1.0  # older labels replayed per new label, so the model does not forget
    tolerance: float = 0.01  # how far one head's macro-F1 may drop if the mean does not
    min_frozen_per_head: int = 30
    epochs: int = 2
    lr: float = 3e-5  # continuing from a champion; a first model from the base takes TrainConfig's rate
    batch_size: int = 32
    max_steps: int | None = None
    lock_ttl: timedelta = timedelta(minutes=2)  # renewed by a heartbeat while the night runs
    seed: int = 13
    progress: bool = False
    language: str | None = None  # only labels in this language (declared, else by script); None: all


@dataclass(frozen=True)
class NightResult:
    status: str  # promoted | rejected | skipped | failed
    detail: str
    version: str | None = None
    metrics: dict[str, Any] | None = None


@dataclass(frozen=True)
class GateDecision:
    promote: bool
    reason: str


def gate(challenger: dict[str, Any], champion: dict[str, Any], tolerance: float) -> GateDecision:
    """Promote only if no head's macro-F1 drops by more than tolerance and the mean does not drop."""
    heads = [h for h in HEADS if h in challenger and h in champion]
    if not heads:
        return GateDecision(False, "the frozen set has too few labels to compare the models")
    drops = {h: champion[h]["macro_f1"] - challenger[h]["macro_f1"] for h in heads}
    mean_new = sum(challenger[h]["macro_f1"] for h in heads) / len(heads)
    mean_old = sum(champion[h]["macro_f1"] for h in heads) / len(heads)
    figures = ", ".join(
        f"{h} {champion[h]['macro_f1']:.4f} -> {challenger[h]['macro_f1']:.4f}" for h in heads
    )
    worst = max(drops, key=lambda h: drops[h])
    if drops[worst] > tolerance:
        return GateDecision(False, f"{worst} macro-F1 drops by {drops[worst]:.4f} (> {tolerance}): {figures}")
    if mean_new < mean_old:
        return GateDecision(False, f"mean macro-F1 drops ({mean_old:.4f} -> {mean_new:.4f}): {figures}")
    return GateDecision(True, f"mean macro-F1 {mean_old:.4f} -> {mean_new:.4f}: {figures}")


class NightlyTrainer:
    def __init__(self, engine: Engine, registry: Registry, labels: LabelStore, config: NightlyConfig) -> None:
        self.engine = engine
        self.registry = registry
        self.labels = labels
        self.config = config

    def run(self, force: bool = False) -> NightResult:
        """One night; `force` trains even with fewer than min_new_labels new labels."""
        with lease(self.engine, LOCK, self.config.lock_ttl) as held:
            if not held.acquired:
                detail = f"another trainer holds the lock ({held.holder}, since {held.since}); skipping"
                log.warning("trainer skipped", extra={"reason": detail})
                return NightResult("skipped", detail)
            return self._run_locked(force, held)

    def _run_locked(self, force: bool, held: Lease) -> NightResult:
        champion = self.registry.champion()
        since = champion.trained_through if champion else None
        until = self.labels.newest_label_time()
        language = self.config.language
        new = self.labels.new_examples(since, until, language)
        if len(new) < self.config.min_new_labels and not force:
            detail = f"{len(new)} new labels (< {self.config.min_new_labels}); nothing to do"
            log.info("trainer skipped", extra={"reason": detail})
            return NightResult("skipped", detail)
        if not new:
            return NightResult("skipped", "no new labels")
        replay = (
            self.labels.replay_examples(
                since, int(len(new) * self.config.replay_ratio), self.config.seed, language
            )
            if since
            else []
        )
        run_id = self.registry.start_run()
        log.info(
            "trainer started",
            extra={"language": language, "new": len(new), "replay": len(replay), "champion": _v(champion)},
        )
        try:
            result = self._train_and_judge(champion, new, replay, until, held)
        except Exception as exc:  # any failure: the champion serves on; the run says why
            log.exception("training run failed; the champion serves on")
            self.registry.finish_run(run_id, "failed", f"{type(exc).__name__}: {exc}")
            return NightResult("failed", f"{type(exc).__name__}: {exc}")
        self.registry.finish_run(run_id, result.status, result.detail, result.version)
        return result

    def _train_and_judge(
        self,
        champion: ModelInfo | None,
        new: list[Example],
        replay: list[Example],
        until: datetime | None,
        held: Lease,
    ) -> NightResult:
        from training.bases import describe_base
        from training.train import TrainConfig, train

        version = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
        out = self.registry.bundle_dir(version)
        examples = new + replay
        train_set = [ex for ex in examples if split_bucket(ex.text, "night") >= 10]
        valid_set = [ex for ex in examples if split_bucket(ex.text, "night") < 10]
        config = TrainConfig(
            base_model=self.config.base_model,
            out=out,
            init_from=champion.bundle_path if champion else None,
            version=version,
            epochs=self.config.epochs,
            lr=self.config.lr if champion else TrainConfig.lr,
            batch_size=self.config.batch_size,
            max_steps=self.config.max_steps,
            seed=self.config.seed,
            progress=self.config.progress,
            language=self.config.language,
            base=None if champion else describe_base(self.config.base_model),
        )
        trained = train(train_set, valid_set, [], config)
        data = {
            "new_labels": len(new),
            "replayed": len(replay),
            "trained_through": until.isoformat() if until else None,
            "train_rows": len(train_set),
            "valid_rows": len(valid_set),
        }
        frozen = self.labels.frozen_examples(self.config.language)
        challenger_scores = frozen_scores(out, frozen, self.config.min_frozen_per_head)
        metrics: dict[str, Any] = {
            "frozen": challenger_scores,
            "train": trained.metrics["valid"],
            "history": trained.metrics["history"],  # per epoch: training loss and validation score
        }
        if champion is None:
            decision = GateDecision(True, "first model: nothing to compare with")
        else:
            champion_scores = frozen_scores(champion.bundle_path, frozen, self.config.min_frozen_per_head)
            metrics["parent_frozen"] = champion_scores
            decision = gate(challenger_scores, champion_scores, self.config.tolerance)
        if held.lost.is_set():
            raise LeaseLost("another trainer took the lease during this night; its result is not registered")
        status = "champion" if decision.promote else "rejected"
        self.registry.register(
            out, status, parent=_v(champion), data=data, metrics=metrics, decision=decision.reason
        )
        log.info(
            "challenger promoted" if decision.promote else "challenger rejected",
            extra={"version": version, "reason": decision.reason},
        )
        return NightResult("promoted" if decision.promote else "rejected", decision.reason, version, metrics)


def frozen_scores(bundle_dir: Path, frozen: Sequence[Example], min_rows: int) -> dict[str, Any]:
    """Accuracy and macro-F1 per head on the frozen set, for heads with at least min_rows labels.

    Topics the model does not know are left out of its topic score (they cannot be right or wrong).
    """
    from inference import Bundle
    from training.evaluate import evaluate_bundle

    known = set(Bundle.open(bundle_dir, verify=False).topic_labels)
    rows = [Example(ex.text, ex.topic if ex.topic in known else None, ex.sentiment) for ex in frozen]
    rows = [ex for ex in rows if ex.topic is not None or ex.sentiment is not None]
    counts = {head: sum(getattr(ex, head) is not None for ex in rows) for head in HEADS}
    if not any(n >= min_rows for n in counts.values()):
        return {}
    reports = evaluate_bundle(bundle_dir, rows, progress=False)
    return {
        head: {
            "accuracy": reports[head]["accuracy"],
            "macro_f1": reports[head]["macro_f1"],
            "rows": counts[head],
        }
        for head in HEADS
        if counts[head] >= min_rows
    }


def _v(model: ModelInfo | None) -> str | None:
    return model.version if model else None
