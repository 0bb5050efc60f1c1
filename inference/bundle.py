"""The model bundle: one folder that training writes and inference loads.

Layout::

    manifest.json        format, version, language, base encoder, labels (and per-topic thresholds
                         for a multi-label topic head), served artefact, sha256 of every file
    encoder/config.json  the encoder's Hugging Face config (vocabulary size included)
    tokenizer/           the Hugging Face tokenizer files
    model.safetensors    all weights of inference.model.MultiTaskClassifier
    model.onnx           fp32 ONNX export (dynamic batch and sequence axes)
    model.int8.onnx      int8 quantisation (served when it passed its checks and is faster)
    metrics.json, training.json

Every file's sha256 is in the manifest, so a truncated or tampered bundle is refused at load.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

FORMAT_VERSION = 1
MANIFEST = "manifest.json"
WEIGHTS = "model.safetensors"
ONNX_FP32 = "model.onnx"
ONNX_INT8 = "model.int8.onnx"
ENCODER_DIR = "encoder"
TOKENIZER_DIR = "tokenizer"
SENTIMENTS = ("negative", "neutral", "positive")


class BundleError(Exception):
    """A bundle folder that is missing, incomplete or corrupt."""


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def bundle_files(root: Path) -> dict[str, str]:
    """sha256 of every file under root except the manifest, keyed by relative posix path."""
    return {
        p.relative_to(root).as_posix(): sha256_of(p)
        for p in sorted(root.rglob("*"))
        if p.is_file() and p.name != MANIFEST
    }


def write_manifest(root: Path, **fields: Any) -> dict[str, Any]:
    manifest = {"format": FORMAT_VERSION, **fields, "files": bundle_files(root)}
    (root / MANIFEST).write_text(json.dumps(manifest, indent=2, ensure_ascii=False), encoding="utf-8")
    return manifest


@dataclass(frozen=True)
class Bundle:
    root: Path
    version: str
    topic_labels: tuple[str, ...]
    sentiment_labels: tuple[str, ...]
    served: str
    max_length: int
    manifest: dict[str, Any]
    # Multi-label topic head: a sigmoid per topic and these thresholds; None means one softmax topic.
    topic_thresholds: tuple[float, ...] | None = None
    language: str | None = None

    @property
    def multi_label(self) -> bool:
        return self.topic_thresholds is not None

    @property
    def servable(self) -> bool:
        """False for a bundle written only to be measured (a distilled student that failed its gate)."""
        return bool(self.manifest.get("servable", True))

    @classmethod
    def open(cls, root: Path | str, verify: bool = True) -> Bundle:
        root = Path(root)
        manifest_path = root / MANIFEST
        if not manifest_path.is_file():
            raise BundleError(f"{root}: no {MANIFEST}; not a model bundle")
        try:
            manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
            labels = manifest["labels"]
            thresholds = labels.get("topic_thresholds")
            bundle = cls(
                root=root,
                version=str(manifest["version"]),
                topic_labels=tuple(labels["topic"]),
                sentiment_labels=tuple(labels["sentiment"]),
                served=str(manifest.get("served", "torch")),
                max_length=int(manifest.get("max_length", 128)),
                manifest=manifest,
                topic_thresholds=tuple(float(thresholds[t]) for t in labels["topic"])
                if thresholds is not None
                else None,
                language=manifest.get("language"),
            )
        except (ValueError, KeyError, TypeError) as exc:
            raise BundleError(f"{manifest_path}: unreadable manifest ({exc})") from exc
        if manifest.get("format") != FORMAT_VERSION:
            raise BundleError(
                f"{manifest_path}: format {manifest.get('format')!r}, expected {FORMAT_VERSION}"
            )
        if verify:
            bundle.verify()
        return bundle

    def verify(self) -> None:
        expected: dict[str, str] = self.manifest.get("files", {})
        if WEIGHTS not in expected:
            raise BundleError(f"{self.root}: manifest lists no {WEIGHTS}")
        for name, digest in expected.items():
            path = self.root / name
            if not path.is_file():
                raise BundleError(f"{self.root}: {name} is missing")
            if sha256_of(path) != digest:
                raise BundleError(f"{self.root}: {name} does not match its checksum (corrupt or modified)")

    def has(self, name: str) -> bool:
        return name in self.manifest.get("files", {})

    def path(self, name: str) -> Path:
        return self.root / name
