"""`finsentry bench inference`: texts/s and latency per backend and batch size, side by side in one run."""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass

from inference.backends import cuda_available
from inference.bundle import Bundle
from inference.engine import InferenceEngine
from inference.languages import LanguageModels


@dataclass
class BenchResult:
    backend: str
    device: str
    batch_size: int
    texts_per_s: float
    p50_ms: float
    p99_ms: float
    mean_tokens: float
    language: str = ""

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def backends_to_run(bundle: Bundle, requested: Sequence[str] | None) -> list[tuple[str, str]]:
    if requested:
        return [(b, "cuda" if b == "torch-cuda" else "cpu") for b in requested]
    runs = [("onnx-int8", "cpu")] if bundle.has("model.int8.onnx") else []
    runs += [("onnx-fp32", "cpu"), ("torch", "cpu"), ("torch-bf16", "cpu")]
    if cuda_available():
        runs.append(("torch", "cuda"))
    return runs


def measure(
    score: Callable[[Sequence[str]], object], texts: Sequence[str], batch_size: int, min_seconds: float = 3.0
) -> tuple[float, list[float]]:
    """Runs whole passes over `texts` in calls of batch_size until min_seconds have passed."""
    score(texts[: batch_size * 2])  # warm-up: first calls allocate and pick kernels
    latencies: list[float] = []
    done = 0
    started = time.perf_counter()
    while time.perf_counter() - started < min_seconds or not latencies:
        for start in range(0, len(texts) - batch_size + 1, batch_size):
            t0 = time.perf_counter()
            score(texts[start : start + batch_size])
            latencies.append((time.perf_counter() - t0) * 1000)
            done += batch_size
    return done / (time.perf_counter() - started), latencies


def run_bench(
    bundle_dir: str,
    texts: Sequence[str],
    batch_sizes: Sequence[int],
    backends: Sequence[str] | None = None,
    threads: int = 0,
    min_seconds: float = 3.0,
    on_result: object = None,
    language: str = "",
) -> list[BenchResult]:
    bundle = Bundle.open(bundle_dir)
    results = []
    for backend, device in backends_to_run(bundle, backends):
        name = "torch" if backend == "torch-cuda" else backend
        engine = InferenceEngine(
            bundle_dir, backend=name, device=device, threads=threads, allow_unservable=True
        )
        tokens = engine.tokenizer.encode(texts, bundle.max_length)
        mean_tokens = statistics.mean(len(t) for t in tokens)
        for batch_size in batch_sizes:
            engine.batch_size = batch_size
            rate, latencies = measure(engine.predict, texts, batch_size, min_seconds)
            result = BenchResult(
                backend=engine.backend.name,
                device=engine.backend.device,
                batch_size=batch_size,
                texts_per_s=round(rate, 1),
                p50_ms=round(percentile(latencies, 0.5), 2),
                p99_ms=round(percentile(latencies, 0.99), 2),
                mean_tokens=round(mean_tokens, 1),
                language=language or bundle.language or "",
            )
            results.append(result)
            if callable(on_result):
                on_result(result)
        engine.close()
    return results


def run_mixed_bench(
    models: LanguageModels, texts: Sequence[str], batch_sizes: Sequence[int], min_seconds: float = 3.0
) -> list[BenchResult]:
    """A mixed stream through the language router, as the worker scores it: calls of batch_size mixed
    texts, each split into one call per language's served backend."""
    results = []
    for batch_size in batch_sizes:
        for engine in models.engines.values():
            engine.batch_size = batch_size
        rate, latencies = measure(
            lambda chunk: asyncio.run(models.apredict(chunk)), texts, batch_size, min_seconds
        )
        results.append(
            BenchResult(
                backend="+".join(e.backend.name for e in models.engines.values()),
                device="cpu",
                batch_size=batch_size,
                texts_per_s=round(rate, 1),
                p50_ms=round(percentile(latencies, 0.5), 2),
                p99_ms=round(percentile(latencies, 0.99), 2),
                mean_tokens=0.0,
                language="mixed",
            )
        )
    return results
