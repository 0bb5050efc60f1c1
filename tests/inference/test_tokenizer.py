"""The worker's tokenizer (tokenizers alone) encodes exactly as the Hugging Face tokenizer that trained."""

from __future__ import annotations

import sys
from pathlib import Path

from transformers import AutoTokenizer

from inference.tokenizer import TextEncoder
from training.bases import packaged_base_model
from training.train import extend_vocabulary

TEXTS = [
    "Apple beats EARNINGS estimates; shares +4.5% after-hours",
    "平安银行发布业绩预告，净利润同比下降30%",
    "Les résultats de l'entreprise: café, naïve, Ünïcödé",
    "A very long headline " * 40,
    "",
    "$TSLA 🚀🚀 to the moon?!",
]


def assert_same_encoding(folder: Path) -> None:
    reference = AutoTokenizer.from_pretrained(str(folder), use_fast=True)
    encoder = TextEncoder(folder)
    for max_length in (16, 128):
        expected = reference(TEXTS, truncation=True, max_length=max_length)["input_ids"]
        assert encoder.encode(TEXTS, max_length) == expected
    plain = reference(TEXTS, add_special_tokens=False, truncation=True, max_length=64)["input_ids"]
    assert encoder.encode(TEXTS, 64, special_tokens=False) == plain
    assert (encoder.pad_id, encoder.unk_id) == (reference.pad_token_id, reference.unk_token_id)


def test_the_packaged_tokenizer_encodes_the_same() -> None:
    assert_same_encoding(packaged_base_model())


def test_a_tokenizer_with_an_extended_vocabulary_encodes_the_same(tmp_path: Path) -> None:
    tokenizer = AutoTokenizer.from_pretrained(str(packaged_base_model()), use_fast=True)
    added = extend_vocabulary(tokenizer, TEXTS)
    assert added, "the Chinese characters are new tokens"
    tokenizer.save_pretrained(str(tmp_path))
    assert_same_encoding(tmp_path)
    assert TextEncoder(tmp_path).unk_rate(TEXTS[1:2], 64) == 0.0


def test_unknown_characters_are_counted() -> None:
    encoder = TextEncoder(packaged_base_model())
    assert encoder.unk_rate(["平安银行发布业绩预告"], 64) > 0.3
    assert encoder.unk_rate(["Bank shares fall"], 64) == 0.0


def test_serving_needs_neither_transformers_nor_torch() -> None:
    """A worker that serves ONNX stays ~1 GB smaller without them (see the bench's worker RSS)."""
    import subprocess

    code = "import sys, streams.app; print('torch' in sys.modules, 'transformers' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]
