"""Tiny randomly initialised models for tests: built here, never downloaded."""

from __future__ import annotations

from pathlib import Path

import torch
from transformers import AutoTokenizer, BertConfig

from inference.bundle import SENTIMENTS
from inference.model import MultiTaskClassifier
from training.bases import packaged_base_model
from training.export import write_bundle
from training.quantize import GateData

TOPICS = ("earnings", "macro", "m&a", "legal")
CHECK_TEXTS = [
    "Apple beats earnings estimates as iPhone sales jump",
    "Fed holds rates steady, signals two cuts next year",
    "Regulator sues bank over misleading mortgage fees",
    "Oil slides as OPEC output rises",
] * 8


def tiny_module(vocab_size: int, seed: int) -> MultiTaskClassifier:
    torch.manual_seed(seed)
    config = BertConfig(
        vocab_size=vocab_size,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=256,
    )
    return MultiTaskClassifier.from_config(config, len(TOPICS), len(SENTIMENTS))


def build_tiny_bundle(
    out: Path, seed: int = 0, version: str | None = None, language: str | None = None
) -> Path:
    """Uses the packaged tokenizer (a local file) so tokenisation is the real thing."""
    tokenizer = AutoTokenizer.from_pretrained(str(packaged_base_model()))
    module = tiny_module(tokenizer.vocab_size, seed)
    write_bundle(
        module,
        tokenizer,
        out,
        TOPICS,
        SENTIMENTS,
        GateData(texts=CHECK_TEXTS),
        max_length=64,
        version=version or f"tiny-{seed}",
        language=language,
    )
    return out


def build_tiny_base(out: Path, seed: int = 0) -> Path:
    """A tiny random encoder saved as a Hugging Face folder, to stand in for the base model."""
    tokenizer = AutoTokenizer.from_pretrained(str(packaged_base_model()))
    module = tiny_module(tokenizer.vocab_size, seed)
    module.encoder.save_pretrained(out)
    tokenizer.save_pretrained(str(out))
    return out
