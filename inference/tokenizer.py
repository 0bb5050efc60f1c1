"""A bundle's tokenizer run by the `tokenizers` library alone.

transformers (and the torch it imports) would add about 1 GB to a worker that serves ONNX; the
bundle's tokenizer.json holds everything encoding needs: normaliser, vocabulary, added tokens and the
[CLS]/[SEP] template.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from tokenizers import Tokenizer


class TextEncoder:
    def __init__(self, folder: Path) -> None:
        self._tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
        self._tokenizer.no_padding()
        config_path = folder / "tokenizer_config.json"
        config = json.loads(config_path.read_text(encoding="utf-8")) if config_path.is_file() else {}
        self.pad_id = self._special_id(config.get("pad_token"), "[PAD]")
        self.unk_id = self._special_id(config.get("unk_token"), "[UNK]")

    def _special_id(self, configured: str | dict | None, default: str) -> int:
        token = configured.get("content") if isinstance(configured, dict) else configured
        found = self._tokenizer.token_to_id(token or default)
        return 0 if found is None else found

    def encode(self, texts: Sequence[str], max_length: int, special_tokens: bool = True) -> list[list[int]]:
        """Token ids per text, truncated to max_length (special tokens included), not padded."""
        self._tokenizer.enable_truncation(max_length)
        encodings = self._tokenizer.encode_batch(list(texts), add_special_tokens=special_tokens)
        return [encoding.ids for encoding in encodings]

    def unk_rate(self, texts: Sequence[str], max_length: int) -> float:
        """Share of tokens that are unknown: high means the vocabulary does not cover the language."""
        ids = [i for row in self.encode(texts, max_length, special_tokens=False) for i in row]
        return sum(1 for i in ids if i == self.unk_id) / len(ids) if ids else 0.0
