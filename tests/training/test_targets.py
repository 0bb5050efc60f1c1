"""Label targets as arrays, and the int8 gate's imports kept free of the label store."""

from __future__ import annotations

import subprocess
import sys

import numpy as np

from labels.examples import Example
from training.targets import topic_matrix


def test_topic_matrix_marks_every_known_topic_of_a_row() -> None:
    examples = [
        Example(text="a", topics=("Macro", "Markets")),
        Example(text="b", topic="Markets"),
        Example(text="c", topics=("Unknown",)),
    ]
    matrix = topic_matrix(examples, {"Macro": 0, "Markets": 1})
    assert matrix.tolist() == [[1, 1], [0, 1], [0, 0]]
    assert matrix.dtype == np.float32


def test_the_int8_gate_does_not_import_the_label_store() -> None:
    check = "import sys, training.quantize; print(sorted(m for m in sys.modules if m.startswith('labels')))"
    loaded = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True, check=True)
    assert loaded.stdout.strip() == "[]"
