"""What a worker scores with, from its settings: the engines per language and the entity matcher.

The worker (streams/app.py) and the backtest (`finsentry backtest run --model`) both build theirs
here, so that a replayed history is scored as the stream scores it: the same bundle per language
(FINSENTRY_MODELS, else FINSENTRY_MODEL_DIR), backend, device, threads, batch and token budget, and
the same watchlist (FINSENTRY_WATCHLIST). Each bundle's own max_length is used by both (the engine's
default); FINSENTRY_MAX_LENGTH shapes training, not serving.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from inference.engine import InferenceEngine
from inference.entities import EntityMatcher, load_watchlist
from inference.languages import LanguageError, LanguageModels

if TYPE_CHECKING:
    from foundation.settings import Settings


class NoModelError(LanguageError):
    """Neither FINSENTRY_MODELS nor FINSENTRY_MODEL_DIR names a bundle."""


def engine_options(settings: Settings) -> dict[str, Any]:
    """The InferenceEngine arguments every served bundle gets."""
    return {
        "backend": settings.backend,
        "device": settings.device,
        "batch_size": settings.inference_batch,
        "token_budget": settings.inference_token_budget,
        "threads": settings.threads,
    }


def load_models(settings: Settings) -> tuple[LanguageModels, dict[str, Path]]:
    """The engines to serve and the folders to watch: FINSENTRY_MODELS per language, else one model."""
    options = engine_options(settings)
    folders = settings.language_models
    if folders:
        return LanguageModels.load(folders, **options), folders
    if settings.model_dir is None:
        raise NoModelError("no model: set FINSENTRY_MODEL_DIR (or --model), or FINSENTRY_MODELS per language")
    models = LanguageModels.single(InferenceEngine(settings.model_dir, **options))
    return models, {models.default: settings.model_dir}


def load_matcher(settings: Settings) -> EntityMatcher:
    """The watchlist's matcher (FINSENTRY_WATCHLIST); cashtags only when none is set."""
    return EntityMatcher(load_watchlist(settings.watchlist) if settings.watchlist else [])
