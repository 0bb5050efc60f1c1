"""Ways to run a bundle's network: ONNX Runtime (int8 or fp32) and torch (CPU, or CUDA in bf16)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

import numpy as np

from inference.bundle import ONNX_FP32, ONNX_INT8, Bundle, BundleError

BACKENDS = ("auto", "onnx-int8", "onnx-fp32", "torch", "torch-bf16")


class Backend(Protocol):
    name: str
    device: str

    def __call__(self, input_ids: np.ndarray, attention_mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Topic and sentiment logits, float32, one row per input row."""
        ...


class OnnxBackend:
    """An ONNX Runtime session of the bundle's fp32 or int8 file."""

    def __init__(self, bundle: Bundle, quantized: bool, threads: int = 0) -> None:
        filename = ONNX_INT8 if quantized else ONNX_FP32
        if not bundle.has(filename):
            raise BundleError(f"{bundle.root}: no {filename} in this bundle")
        self.session = onnx_session(bundle.path(filename), threads)
        self.name = "onnx-int8" if quantized else "onnx-fp32"
        self.device = "cpu"

    def __call__(self, input_ids: np.ndarray, attention_mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        topic, sentiment = self.session.run(
            ["topic_logits", "sentiment_logits"],
            {"input_ids": input_ids.astype(np.int64), "attention_mask": attention_mask.astype(np.int64)},
        )
        return topic, sentiment


def onnx_session(path: Path, threads: int = 0) -> Any:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    if threads:
        options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    # Pool threads spin between the operators of one call (a sleeping thread wakes too late for the
    # encoder's many small operators) and stop when the call returns: between calls a worker shares its
    # cores with the event loop, Kafka and Redis (both measured in the README).
    options.add_session_config_entry("session.intra_op.allow_spinning", "1")
    options.add_session_config_entry("session.force_spinning_stop", "1")
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

    def __call__(self, input_ids: np.ndarray, attention_mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        torch = self.torch
        ids = torch.from_numpy(input_ids.astype(np.int64)).to(self.device)
        mask = torch.from_numpy(attention_mask.astype(np.int64)).to(self.device)
        device_type = "cuda" if self.device.startswith("cuda") else "cpu"
        with torch.inference_mode(), torch.autocast(device_type, torch.bfloat16, enabled=self.autocast):
            topic, sentiment = self.module(ids, mask)
        return topic.float().cpu().numpy(), sentiment.float().cpu().numpy()


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
