"""A labelled text as the store keeps it and training reads it, and the stable hash bucket of a text."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass


@dataclass(frozen=True)
class Example:
    text: str
    topic: str | None = None
    sentiment: str | None = None


def split_bucket(text: str, salt: str = "") -> int:
    """A stable 0-99 bucket from the text, so the split never changes between runs or machines.

    A salt gives an independent bucketing, for splits that must not line up with train/valid/test.
    """
    digest = hashlib.blake2b(text.encode("utf-8"), digest_size=4, salt=salt.encode("utf-8")[:16]).digest()
    return int.from_bytes(digest, "big") % 100
