"""Ways to run a bundle's network: ONNX Runtime (int8 or fp32) and torch (CPU, or CUDA in bf16)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from inference.bundle import ONNX_FP32, ONNX_INT8, Bundle, BundleError

BACKENDS = ("auto", "onnx-int8", "onnx-fp32", "torch", "torch-bf16")

Batch = tuple[np.ndarray, np.ndarray]  # token ids and attention mask
Logits = tuple[np.ndarray, np.ndarray]  # topic and sentiment

# What one more model call costs, in padded tokens' worth of compute, measured on Twitter texts in
# calls cut by the engine (README, "Serving speed"): a one-thread ONNX lane pays little for a call, torch
# on CPU spreads each call over its threads and pays more.
ONNX_CALL_COST = 8
TORCH_CPU_CALL_COST = 64


class Backend(Protocol):
    name: str
    device: str
    lanes: int  # model calls it runs at once
    call_cost: int | None  # what one more call costs in padded tokens; None: a GPU, the fewest calls

    def __call__(self, input_ids: np.ndarray, attention_mask: np.ndarray) -> Logits:
        """Topic and sentiment logits, float32, one row per input row."""
        ...

    def run_all(self, batches: Sequence[Batch]) -> list[Logits]:
        """The logits of each batch, in order."""
        ...


def available_cores() -> int:
    return len(os.sched_getaffinity(0))


class OnnxLanes:
    """An ONNX file run in one-core lanes: a request's model calls run side by side, one core each
    (`lanes` of them, every core by default), not one after another over all cores. A one-thread call
    has no pool threads to hand each small operator to, and never waits at an operator for a pool
    thread whose core the broker, Redis or the event loop has taken (README, "Serving speed")."""

    def __init__(self, path: Path, lanes: int = 0) -> None:
        self.session = onnx_session(path, threads=1)
        self.lanes = lanes or available_cores()
        self._pool = (
            ThreadPoolExecutor(self.lanes, thread_name_prefix="onnx-lane") if self.lanes > 1 else None
        )

    def __call__(self, input_ids: np.ndarray, attention_mask: np.ndarray) -> Logits:
        topic, sentiment = self.session.run(
            ["topic_logits", "sentiment_logits"],
            {"input_ids": input_ids.astype(np.int64), "attention_mask": attention_mask.astype(np.int64)},
        )
        return topic, sentiment

    def run_all(self, batches: Sequence[Batch]) -> list[Logits]:
        if self._pool is None or len(batches) == 1:
            return [self(*batch) for batch in batches]
        return list(self._pool.map(lambda batch: self(*batch), batches))


class OnnxBackend(OnnxLanes):
    """The bundle's fp32 or int8 ONNX file, in lanes."""

    def __init__(self, bundle: Bundle, quantized: bool, threads: int = 0) -> None:
        filename = ONNX_INT8 if quantized else ONNX_FP32
        if not bundle.has(filename):
            raise BundleError(f"{bundle.root}: no {filename} in this bundle")
        super().__init__(bundle.path(filename), threads)
        self.name = "onnx-int8" if quantized else "onnx-fp32"
        self.device = "cpu"
        self.call_cost: int | None = ONNX_CALL_COST


def onnx_session(path: Path, threads: int = 0) -> Any:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    if threads:
        options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    # ONNX Runtime's SkipLayerNormalization kernel runs several times slower here than the Add and
    # LayerNormalization it replaces (README), so that one fusion is left out.
    return ort.InferenceSession(
        str(path), options, providers=["CPUExecutionProvider"], disabled_optimizers=["SkipLayerNormFusion"]
    )


class TorchBackend:
    def __init__(
        self, bundle: Bundle, device: str = "cpu", threads: int = 0, half: bool | None = None
    ) -> None:
        import torch

        from inference.model import load_module

        if threads:
            torch.set_num_threads(threads)
        self.torch = torch
        self.device = device
        self.module = load_module(bundle).to(device).eval()
        # bf16 on CUDA; on CPU fp32 stays the reference unless half precision is asked for.
        self.autocast = half if half is not None else device.startswith("cuda")
        self.name = f"torch-{'bf16' if self.autocast else 'fp32'}"
        self.lanes = 1  # torch spreads each call over its own threads
        self.call_cost = None if device.startswith("cuda") else TORCH_CPU_CALL_COST

    def __call__(self, input_ids: np.ndarray, attention_mask: np.ndarray) -> Logits:
        torch = self.torch
        ids = torch.from_numpy(input_ids.astype(np.int64)).to(self.device)
        mask = torch.from_numpy(attention_mask.astype(np.int64)).to(self.device)
        device_type = "cuda" if self.device.startswith("cuda") else "cpu"
        with torch.inference_mode(), torch.autocast(device_type, torch.bfloat16, enabled=self.autocast):
            topic, sentiment = self.module(ids, mask)
        return topic.float().cpu().numpy(), sentiment.float().cpu().numpy()

    def run_all(self, batches: Sequence[Batch]) -> list[Logits]:
        return [self(*batch) for batch in batches]


def cuda_available() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return bool(torch.cuda.is_available())


def open_backend(
    bundle: Bundle,
    backend: str = "auto",
    device: str = "auto",
    threads: int = 0,
) -> Backend:
    """The backend asked for; `auto` takes CUDA torch when a GPU is there, else the bundle's served ONNX."""
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
    if device == "auto":
        device = "cuda" if cuda_available() else "cpu"
    if backend == "auto":
        if device == "cuda":
            backend = "torch"
        elif bundle.served in ("onnx-int8", "onnx-fp32") and bundle.has(
            ONNX_INT8 if bundle.served == "onnx-int8" else ONNX_FP32
        ):
            backend = bundle.served
        else:
            backend = "torch"
    if backend in ("torch", "torch-bf16"):
        # bf16 is the default on CUDA; on CPU only when asked (it pays only with native bf16 units).
        half = True if backend == "torch-bf16" else None
        return TorchBackend(bundle, device=device, threads=threads, half=half)
    if device == "cuda":
        raise ValueError("the ONNX backends run on CPU here; use --backend torch for CUDA")
    return OnnxBackend(bundle, backend == "onnx-int8", threads)
