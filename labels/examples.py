"""A labelled text as the store keeps it and training reads it, and the stable hash bucket of a text."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass


@dataclass(frozen=True)
class Example:
    """`topic` is the single (or first) topic; `topics` holds every topic of a multi-label row."""

    text: str
    topic: str | None = None
    sentiment: str | None = None
    topics: tuple[str, ...] = ()

    @property
    def topic_set(self) -> tuple[str, ...]:
        """Every topic of the row: the multi-label set, else the single topic, else none."""
        if self.topics:
            return self.topics
        return (self.topic,) if self.topic else ()


def split_bucket(text: str, salt: str = "") -> int:
    """A stable 0-99 bucket from the text, so the split never changes between runs or machines.

    A salt gives an independent bucketing, for splits that must not line up with train/valid/test.
    """
    digest = hashlib.blake2b(text.encode("utf-8"), digest_size=4, salt=salt.encode("utf-8")[:16]).digest()
    return int.from_bytes(digest, "big") % 100
