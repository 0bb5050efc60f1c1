"""Finding the base encoder: kept for the code that imports it from here; the catalogue is training.bases."""

from __future__ import annotations

from training.bases import BaseModelError, packaged_base_model, resolve_base_model

__all__ = ["BaseModelError", "packaged_base_model", "resolve_base_model"]
