"""Analysts' labels: the label store (deduplicated by normalised text, with a frozen evaluation set)
and the active-learning review queue that the stream fills with its least certain predictions."""

from labels.store import LabelError, LabelStore, NewLabel

__all__ = ["LabelError", "LabelStore", "NewLabel"]
