"""The continuous-learning parts built from settings, once, for the commands, the API and the trainer."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Engine

from foundation.db import open_database
from foundation.settings import Settings
from labels.review import ReviewQueue
from labels.store import LabelStore
from training.registry import Registry, RegistryError

if TYPE_CHECKING:
    from training.nightly import NightlyConfig


@dataclass
class Learning:
    engine: Engine
    labels: LabelStore
    review: ReviewQueue
    registries: dict[str, Registry]  # one per served language, the default language first

    @property
    def registry(self) -> Registry:
        """The default language's registry."""
        return next(iter(self.registries.values()))

    def registry_for(self, language: str | None) -> Registry:
        if language is None:
            return self.registry
        if language not in self.registries:
            raise RegistryError(f"no {language} models here; languages: {', '.join(self.registries)}")
        return self.registries[language]


def serving_pointers(settings: Settings) -> dict[str, Path]:
    """Each language's serving pointer: the FINSENTRY_MODELS folders, else the one model_dir (English)."""
    return settings.language_models or {"en": settings.serving_model_dir}


def learning(settings: Settings, announce: bool = True) -> Learning:
    """`announce`: promotions are told to the workers on the models topic (needs Kafka)."""
    engine = open_database(settings.effective_database_url)
    labels = LabelStore(engine, settings.frozen_percent)
    announcer = None
    if announce:
        from foundation.connections import kafka_python_options
        from training.announce import KafkaAnnouncer

        announcer = KafkaAnnouncer(
            settings.kafka_bootstrap, settings.topic_models, kafka_python_options(settings)
        )
    registries = {
        language: Registry(engine, settings.effective_registry_dir, pointer, announcer, language)
        for language, pointer in serving_pointers(settings).items()
    }
    review = ReviewQueue(engine, labels, settings.review_margin, settings.review_rate)
    return Learning(engine, labels, review, registries)


def nightly_config(settings: Settings, language: str = "en", **overrides: object) -> NightlyConfig:
    """The night's settings for one language; its first model grows from that language's base encoder
    (FINSENTRY_BASE_MODEL for the default language, the catalogue's choice for the others)."""
    from training.bases import BASE_FOR_LANGUAGE, resolve_base_model
    from training.nightly import NightlyConfig

    default_language = next(iter(serving_pointers(settings)))
    if settings.base_model and language == default_language:
        base = str(settings.base_model)
    else:
        base = BASE_FOR_LANGUAGE.get(language, BASE_FOR_LANGUAGE["en"])
    values = {
        "base_model": resolve_base_model(base),
        "language": language,
        "min_new_labels": settings.min_new_labels,
        "replay_ratio": settings.replay_ratio,
        "tolerance": settings.gate_tolerance,
        "epochs": settings.night_epochs,
        "lr": settings.night_lr,
        "lock_ttl": timedelta(seconds=settings.trainer_lease_s),
    }
    values.update(overrides)
    return NightlyConfig(**values)  # type: ignore[arg-type]  (values are typed by Settings)
