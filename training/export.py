"""Writing a model bundle: weights, tokenizer, label maps, ONNX fp32 and int8 exports with their checks.

A bundle is written into a hidden sibling folder and renamed into place, so a half-written model is
never visible to a loader.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import save_file
from transformers import PreTrainedTokenizerBase

from inference.backends import OnnxLanes, onnx_session
from inference.bundle import (
    ENCODER_DIR,
    ONNX_FP32,
    ONNX_INT8,
    TOKENIZER_DIR,
    WEIGHTS,
    Bundle,
    write_manifest,
)
from inference.model import MultiTaskClassifier
from training.quantize import (
    CALIBRATION_TEXTS,
    METHODS,
    MIN_AGREEMENT,
    ONE_REQUEST,
    SPEED_TEXTS,
    Batch,
    Figures,
    GateData,
    LabelledRows,
    QuantizationError,
    SortedBatches,
    agreement,
    drops,
    gate_failures,
    head_figures,
    padded_batches,
    quantize,
    texts_per_s,
    worst_figures,
)

log = logging.getLogger(__name__)

FP32_TOLERANCE = 1e-4
LINEAGE = ("teacher", "soup")  # manifest keys that say where the weights came from
TORCH_CHECK_TEXTS = 256


class ExportError(RuntimeError):
    """The ONNX export does not reproduce the torch model."""


def export_onnx(module: MultiTaskClassifier, path: Path) -> None:
    """Traces with dynamic batch and sequence axes. The tracer's warnings about Python-side shape checks
    are expected for this encoder, and the export is verified against torch afterwards anyway."""
    module.eval()
    dummy_ids = torch.ones((2, 16), dtype=torch.long)
    dummy_mask = torch.ones((2, 16), dtype=torch.long)
    attention = module.encoder.config._attn_implementation
    # Eager attention traces to plain MatMul, Softmax and an additive mask; SDPA's trace adds a
    # fully-masked-row guard (IsNaN, Where) to every layer that costs int8 a tenth of its speed (README).
    module.encoder.set_attn_implementation("eager")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            _trace(module, dummy_ids, dummy_mask, path)
    finally:
        module.encoder.set_attn_implementation(attention)


def _trace(module: MultiTaskClassifier, ids: torch.Tensor, mask: torch.Tensor, path: Path) -> None:
    torch.onnx.export(
        module,
        (ids, mask),
        str(path),
        input_names=["input_ids", "attention_mask"],
        output_names=["topic_logits", "sentiment_logits"],
        dynamic_axes={
            "input_ids": {0: "batch", 1: "sequence"},
            "attention_mask": {0: "batch", 1: "sequence"},
            "topic_logits": {0: "batch"},
            "sentiment_logits": {0: "batch"},
        },
        opset_version=17,
        dynamo=False,
    )


def _torch_outputs(module: MultiTaskClassifier, batches: list[Batch]) -> tuple[np.ndarray, np.ndarray]:
    module.eval()
    topic, sentiment = [], []
    with torch.inference_mode():
        for ids, mask in batches:
            t, s = module(torch.from_numpy(ids), torch.from_numpy(mask))
            topic.append(t.float().numpy())
            sentiment.append(s.float().numpy())
    return np.concatenate(topic), np.concatenate(sentiment)


def check_fp32(
    module: MultiTaskClassifier,
    path: Path,
    tokenizer: PreTrainedTokenizerBase,
    texts: Sequence[str],
    max_length: int,
) -> float:
    """The fp32 ONNX file's largest logit difference from torch; ExportError above FP32_TOLERANCE."""
    batches = padded_batches(tokenizer, texts[:TORCH_CHECK_TEXTS], max_length)
    session = onnx_session(path)
    outs = [session.run(None, {"input_ids": ids, "attention_mask": mask}) for ids, mask in batches]
    onnx = (np.concatenate([o[0] for o in outs]), np.concatenate([o[1] for o in outs]))
    max_diff = max(
        float(np.abs(a - b).max()) for a, b in zip(_torch_outputs(module, batches), onnx, strict=True)
    )
    if max_diff > FP32_TOLERANCE:
        raise ExportError(f"ONNX fp32 logits differ from torch by {max_diff:.2e} (> {FP32_TOLERANCE:.0e})")
    return max_diff


@dataclass
class _Bench:
    """What every candidate is measured on: the same speed batches and the same scored rows, grouped
    into calls in each way the gate looks at (`groupings`, by name; one without labelled rows)."""

    speed: SortedBatches
    groupings: dict[str, SortedBatches]
    labelled: LabelledRows | None
    calibration: list[Batch]
    max_drop: float

    def measure(
        self, path: Path, every_grouping: bool = True
    ) -> tuple[float, tuple[np.ndarray, np.ndarray], dict[str, Figures]]:
        """texts/s, the logits of one request of every scored row, and the figures of each grouping
        (of one request only, unless `every_grouping`)."""
        model = OnnxLanes(path)  # as the engine serves it
        names = list(self.groupings) if every_grouping else [ONE_REQUEST]
        runs = {name: self.groupings[name].run(model) for name in names}
        figures = (
            {name: head_figures(self.labelled, *logits) for name, logits in runs.items()}
            if self.labelled
            else {}
        )
        return texts_per_s(model, self.speed), runs[ONE_REQUEST], figures


def check_exports(
    module: MultiTaskClassifier,
    root: Path,
    tokenizer: PreTrainedTokenizerBase,
    data: GateData,
    max_length: int,
) -> dict[str, Any]:
    """Checks fp32 against torch, builds every int8 candidate, gates them and picks what to serve.

    The gate is accuracy against labels when `data` has labelled rows (each figure of each head within
    `max_drop` of fp32), else top-class agreement with fp32 (MIN_AGREEMENT) on the texts. The fastest
    candidate that passes is served if it beats fp32 here; its file stays as ONNX_INT8 either way (else
    the closest candidate's, to measure or choose by hand with --backend onnx-int8).
    """
    texts = list(data.texts) or ["finsentry export check"]
    max_diff = check_fp32(module, root / ONNX_FP32, tokenizer, texts, max_length)
    labelled = data.labelled if data.labelled and data.labelled.has_labels else None
    speed = SortedBatches.of(tokenizer, texts[:SPEED_TEXTS], max_length)
    bench = _Bench(
        speed=speed,
        groupings=SortedBatches.groupings(tokenizer, labelled.texts, max_length)
        if labelled
        else {ONE_REQUEST: speed},
        labelled=labelled,
        calibration=padded_batches(tokenizer, (data.calibration or texts)[:CALIBRATION_TEXTS], max_length),
        max_drop=data.max_drop,
    )
    # fp32 scales nothing per call: one grouping gives its figures for all.
    fp32_speed, fp32_logits, fp32_runs = bench.measure(root / ONNX_FP32, every_grouping=False)
    fp32_figures = fp32_runs.get(ONE_REQUEST, {})
    candidates = {
        method: _judge_candidate(root, method, bench, fp32_logits, fp32_figures) for method in METHODS
    }
    report: dict[str, Any] = {
        "fp32_max_abs_diff": max_diff,
        "checked_rows": min(len(texts), TORCH_CHECK_TEXTS),
        "gate": {
            "by": "accuracy" if labelled else "agreement",
            "labelled_rows": len(labelled.texts) if labelled else 0,
            "max_drop_points": round(100 * data.max_drop, 3),
            "min_agreement": None if labelled else MIN_AGREEMENT,
        },
        "fp32": {"texts_per_s": round(fp32_speed, 1), "figures": fp32_figures},
        "candidates": candidates,
    }
    report |= _choose(candidates, fp32_speed)
    _keep_int8(root, report["int8_method"])
    if report["served"] != "onnx-int8":
        log.warning("int8 export not served", extra={"reason": report["served_because"]})
    return report


def _judge_candidate(
    root: Path, method: str, bench: _Bench, fp32_logits: tuple[np.ndarray, np.ndarray], fp32_figures: Figures
) -> dict[str, Any]:
    path = root / f"int8-{method}.onnx"
    try:
        quantize(root / ONNX_FP32, path, method, bench.calibration)
        speed, logits, by_grouping = bench.measure(path)
    except QuantizationError as exc:
        path.unlink(missing_ok=True)
        log.warning("int8 candidate failed", extra={"method": method, "error": str(exc)[:300]})
        return {"passed": False, "failures": [f"quantisation failed: {str(exc)[:300]}"]}
    agrees = agreement(fp32_logits, logits)
    figures = worst_figures(by_grouping.values()) if by_grouping else {}
    if bench.labelled:
        fell = drops(fp32_figures, figures)
        failures = gate_failures(fell, bench.max_drop)
    else:
        fell = {}
        failures = [
            f"{head} agreement {value:.1%} < {MIN_AGREEMENT:.0%}"
            for head, value in agrees.items()
            if value < MIN_AGREEMENT
        ]
    worst = max((d for figs in fell.values() for d in figs.values()), default=1 - min(agrees.values()))
    log.info(
        "int8 candidate judged",
        extra={"method": method, "texts_per_s": round(speed), "worst_drop_points": round(100 * worst, 2)},
    )
    return {
        "texts_per_s": round(speed, 1),
        "figures": figures,  # each at its worst over the groupings
        "figures_by_grouping": by_grouping,
        "drop": fell,
        "worst_drop": round(worst, 5),
        "top1_agreement": agrees,
        "passed": not failures,
        "failures": failures,
    }


def _choose(candidates: dict[str, dict[str, Any]], fp32_speed: float) -> dict[str, Any]:
    """The fastest passing candidate if it beats fp32, with the reason for whatever is served."""
    measured = {m: c for m, c in candidates.items() if "texts_per_s" in c}
    passing = {m: c for m, c in measured.items() if c["passed"]}
    if passing:
        method = max(passing, key=lambda m: passing[m]["texts_per_s"])
    elif measured:
        method = min(measured, key=lambda m: measured[m]["worst_drop"])
    else:
        return {"served": "onnx-fp32", "int8_method": None, "served_because": "every int8 quantiser failed"}
    speed = measured[method]["texts_per_s"]
    chosen = {"int8_method": method, "texts_per_s": {"onnx-fp32": round(fp32_speed, 1), "onnx-int8": speed}}
    if not passing:
        failed = "; ".join(f"{m}: {', '.join(c['failures'])}" for m, c in candidates.items())
        because = f"no int8 candidate passed the gate ({failed}); serving fp32"
        return chosen | {"served": "onnx-fp32", "served_because": because}
    if speed <= fp32_speed:
        because = (
            f"int8 ({method}) passed the gate but ran at {speed:.0f} texts/s against fp32's"
            f" {fp32_speed:.0f} on this machine; serving fp32"
        )
        return chosen | {"served": "onnx-fp32", "served_because": because}
    because = (
        f"int8 ({method}) passed the gate and is the fastest: {speed:.0f} texts/s against fp32's"
        f" {fp32_speed:.0f}"
    )
    return chosen | {"served": "onnx-int8", "served_because": because}


def _keep_int8(root: Path, method: str | None) -> None:
    """Leaves the chosen candidate as ONNX_INT8 and removes the others."""
    for method_name in METHODS:
        path = root / f"int8-{method_name}.onnx"
        if method_name == method:
            os.replace(path, root / ONNX_INT8)
        else:
            path.unlink(missing_ok=True)


def write_bundle(
    module: MultiTaskClassifier,
    tokenizer: PreTrainedTokenizerBase,
    out_dir: Path,
    topic_labels: Sequence[str],
    sentiment_labels: Sequence[str],
    gate: GateData,
    max_length: int = 128,
    version: str | None = None,
    metrics: dict[str, Any] | None = None,
    training: dict[str, Any] | None = None,
    topic_thresholds: dict[str, float] | None = None,
    language: str | None = None,
    base: dict[str, Any] | None = None,
    lineage: dict[str, Any] | None = None,
    not_servable_because: str | None = None,
) -> Bundle:
    """Writes a complete, checked bundle to out_dir (replacing what is there) and returns it opened.

    `lineage` says where the weights came from beyond the base: a distilled student's {"teacher": ...},
    a soup's {"soup": [...]}. A bundle that failed its gate is written with the reason and refused by
    the engine (it can still be evaluated and benchmarked).
    """
    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    version = version or datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    staging = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    try:
        module = module.float().eval()
        module.encoder.config.save_pretrained(staging / ENCODER_DIR)
        tokenizer.save_pretrained(str(staging / TOKENIZER_DIR))
        state = {k: v.contiguous() for k, v in module.state_dict().items()}
        save_file(state, str(staging / WEIGHTS))
        export_onnx(module, staging / ONNX_FP32)
        export_report = check_exports(module, staging, tokenizer, gate, max_length)
        (staging / "metrics.json").write_text(json.dumps(metrics or {}, indent=2, ensure_ascii=False))
        (staging / "training.json").write_text(json.dumps(training or {}, indent=2, ensure_ascii=False))
        labels: dict[str, Any] = {"topic": list(topic_labels), "sentiment": list(sentiment_labels)}
        if topic_thresholds is not None:
            labels["topic_thresholds"] = topic_thresholds
        write_manifest(
            staging,
            version=version,
            created_at=datetime.now(UTC).isoformat(),
            language=language,
            base=base,
            **(lineage or {}),
            servable=not_servable_because is None,
            **({"not_servable_because": not_servable_because} if not_servable_because else {}),
            labels=labels,
            served=export_report.pop("served"),
            max_length=max_length,
            export=export_report,
        )
        _replace_dir(staging, out_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return Bundle.open(out_dir)


def _replace_dir(staging: Path, target: Path) -> None:
    """Moves staging to target; an old target is moved aside first and removed after the switch."""
    if target.exists():
        aside = target.with_name(f".{target.name}.old-{os.getpid()}")
        os.replace(target, aside)
        os.replace(staging, target)
        shutil.rmtree(aside, ignore_errors=True)
    else:
        os.replace(staging, target)


def reexport(bundle_dir: Path, gate: GateData) -> Bundle:
    """Writes a bundle's ONNX files and gates them again from its weights (same version, metrics kept)."""
    from transformers import AutoTokenizer

    from inference.model import load_module

    bundle = Bundle.open(bundle_dir)
    tokenizer = AutoTokenizer.from_pretrained(str(bundle.path(TOKENIZER_DIR)))
    return write_bundle(
        load_module(bundle),
        tokenizer,
        bundle_dir,
        bundle.topic_labels,
        bundle.sentiment_labels,
        gate,
        max_length=bundle.max_length,
        version=bundle.version,
        metrics=json.loads(bundle.path("metrics.json").read_text()),
        training=json.loads(bundle.path("training.json").read_text()),
        topic_thresholds=bundle.manifest["labels"].get("topic_thresholds"),
        language=bundle.language,
        base=bundle.manifest.get("base"),
        lineage={key: bundle.manifest[key] for key in LINEAGE if key in bundle.manifest},
        not_servable_because=bundle.manifest.get("not_servable_because"),
    )
