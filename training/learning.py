"""The continuous-learning parts built from settings, once, for the commands, the API and the trainer."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING

from sqlalchemy import Engine

from foundation.db import open_database
from foundation.settings import Settings
from labels.review import ReviewQueue
from labels.store import LabelStore
from training.registry import Registry

if TYPE_CHECKING:
    from training.nightly import NightlyConfig


@dataclass
class Learning:
    engine: Engine
    labels: LabelStore
    review: ReviewQueue
    registry: Registry


def learning(settings: Settings, announce: bool = True) -> Learning:
    """`announce`: promotions are told to the workers on the models topic (needs Kafka)."""
    engine = open_database(settings.effective_database_url)
    labels = LabelStore(engine, settings.frozen_percent)
    announcer = None
    if announce:
        from training.announce import KafkaAnnouncer

        announcer = KafkaAnnouncer(settings.kafka_bootstrap, settings.topic_models)
    registry = Registry(
        engine, settings.effective_registry_dir, settings.serving_model_dir, announce=announcer
    )
    review = ReviewQueue(engine, labels, settings.review_margin, settings.review_rate)
    return Learning(engine, labels, review, registry)


def nightly_config(settings: Settings, **overrides: object) -> NightlyConfig:
    from training.bases import resolve_base_model
    from training.nightly import NightlyConfig

    values = {
        "base_model": resolve_base_model(str(settings.base_model) if settings.base_model else None),
        "min_new_labels": settings.min_new_labels,
        "replay_ratio": settings.replay_ratio,
        "tolerance": settings.gate_tolerance,
        "epochs": settings.night_epochs,
        "lr": settings.night_lr,
        "lock_ttl": timedelta(seconds=settings.trainer_lease_s),
    }
    values.update(overrides)
    return NightlyConfig(**values)  # type: ignore[arg-type]  (values are typed by Settings)
