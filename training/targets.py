"""Labels as arrays a model is trained or scored on, in the model's label order.

Free of the label store: the int8 gate imports this and must not pull in the database.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from labels.examples import Example

IGNORE = -100  # a row without a label for a head: PyTorch's default ignore_index


def topic_matrix(
    examples: Sequence[Example], topic_index: dict[str, int], dtype: type = np.float32
) -> np.ndarray:
    """Multi-hot topic rows in a model's label order (a row of zeros: no known topic)."""
    matrix = np.zeros((len(examples), len(topic_index)), dtype=dtype)
    for row, ex in enumerate(examples):
        for topic in ex.topic_set:
            if topic in topic_index:
                matrix[row, topic_index[topic]] = 1
    return matrix
