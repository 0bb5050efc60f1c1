"""The pieces of the simulated nights that decide what each night sees."""

from __future__ import annotations

from collections import Counter

from finsentry.nights import portion, shuffled
from labels.examples import Example

ROWS = [
    Example(
        f"text {i}", f"topic {i % 5}" if i % 3 else None, ("negative", "neutral")[i % 2] if i % 4 else None
    )
    for i in range(400)
]
ROWS = [ex for ex in ROWS if ex.topic or ex.sentiment]


def test_shuffled_night_permutes_each_heads_labels_and_keeps_every_row_labelled() -> None:
    noisy = shuffled(ROWS, seed=7)
    assert [ex.text for ex in noisy] == [ex.text for ex in ROWS]
    assert all(ex.topic or ex.sentiment for ex in noisy)
    for head in ("topic", "sentiment"):
        assert Counter(getattr(ex, head) for ex in noisy) == Counter(getattr(ex, head) for ex in ROWS)
    changed = sum(a.topic != b.topic for a, b in zip(noisy, ROWS, strict=True) if a.topic)
    assert changed > len(ROWS) / 2, "most topic labels move"


def test_portions_split_the_rows_without_overlap() -> None:
    parts = [portion(ROWS, 0, 50), portion(ROWS, 50, 67), portion(ROWS, 67, 84), portion(ROWS, 84, 100)]
    texts = [ex.text for part in parts for ex in part]
    assert sorted(texts) == sorted(ex.text for ex in ROWS)
    assert 0.35 < len(parts[0]) / len(ROWS) < 0.65
