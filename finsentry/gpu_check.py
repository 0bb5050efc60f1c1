"""`./dev gpu-check`: the CUDA path, proven in a few minutes on a machine with a GPU.

It needs only what a GPU image carries (torch, transformers, onnxruntime, tokenizers, safetensors,
numpy, rich), not the stream's services, so it runs where nothing can be installed:

1. a bundle of MiniLM's shape (6 layers, hidden 384) with random weights, since speed does not depend
   on them, and the packaged tokenizer (carried in `.gpu-check/` when the package is not installed);
2. the engine on CUDA: torch bf16 answers against CPU fp32 on the same texts (top class and
   probabilities), input order kept across a whole batch, and a hot swap on the GPU;
3. `bench inference` for torch CUDA bf16 at batch 32..1024, tokenisation included, beside CPU ONNX
   fp32 at batch 32, with the CPU flags and the GPU's name.

Exit status 1 when a check fails or no GPU is there.
"""

from __future__ import annotations

import json
import os
import sys
import time
from importlib import resources
from pathlib import Path

import numpy as np

from inference.bench import run_bench
from inference.bundle import Bundle
from inference.engine import InferenceEngine
from inference.machine import cpu_summary

CARRIED_TOKENIZER = Path(".gpu-check/tokenizer")
BATCH_SIZES = (32, 64, 128, 256, 512, 1024)
MIN_TOP_CLASS_AGREEMENT = 0.97
MAX_PROBABILITY_GAP = 0.05


def tokenizer_folder() -> Path:
    if CARRIED_TOKENIZER.is_dir():
        return CARRIED_TOKENIZER
    from training.bases import packaged_base_model

    return packaged_base_model()


def build_bundle(out: Path, seed: int) -> Path:
    """A MiniLM-shaped two-headed model with random weights, written and checked like any bundle."""
    import torch
    from transformers import AutoTokenizer, BertConfig

    from inference.bundle import SENTIMENTS
    from inference.model import MultiTaskClassifier
    from training.export import write_bundle
    from training.quantize import GateData

    torch.manual_seed(seed)
    tokenizer = AutoTokenizer.from_pretrained(str(tokenizer_folder()))
    config = BertConfig(
        vocab_size=tokenizer.vocab_size,
        hidden_size=384,
        num_hidden_layers=6,
        num_attention_heads=12,
        intermediate_size=1536,
    )
    module = MultiTaskClassifier.from_config(config, 20, len(SENTIMENTS))
    topics = [f"topic-{i}" for i in range(20)]
    write_bundle(
        module, tokenizer, out, topics, SENTIMENTS, GateData(texts=sample_texts()[:64]), version=f"gpu-{seed}"
    )
    return out


def sample_texts() -> list[str]:
    """The shipped sample headlines, read directly: finsentry.demo would import the whole stack."""
    lines = resources.files("finsentry.sample").joinpath("headlines.jsonl").read_text(encoding="utf-8")
    return [json.loads(line)["text"] for line in lines.splitlines() if line.strip()]


def check_engine(bundle: Path, other: Path, device: str = "cuda") -> dict[str, object]:
    """`device` against CPU fp32 on the same texts, order across one whole batch, and a hot swap."""
    texts = (sample_texts() * 40)[:1024]
    cpu = InferenceEngine(bundle, backend="torch", device="cpu").predict(texts[:256])
    gpu = InferenceEngine(bundle, backend="torch", device=device, batch_size=1024)
    on_gpu = gpu.predict(texts)
    agreement = np.mean(
        [a.sentiment == b.sentiment and a.topic == b.topic for a, b in zip(cpu, on_gpu, strict=False)]
    )
    gap = max(
        abs(a.sentiment_probs[k] - b.sentiment_probs[k])
        for a, b in zip(cpu, on_gpu, strict=False)
        for k in a.sentiment_probs
    )
    order_kept = [p.topic_probs for p in gpu.predict(texts[::-1])][::-1] == [p.topic_probs for p in on_gpu]
    started = time.perf_counter()
    swapped_to = gpu.reload(other)
    swap_ms = (time.perf_counter() - started) * 1000
    return {
        "backend": gpu.backend.name,
        "device": gpu.backend.device,
        "top_class_agreement_vs_cpu_fp32": round(float(agreement), 4),
        "max_sentiment_probability_gap": round(float(gap), 4),
        "order_kept": order_kept,
        "hot_swap_to": swapped_to,
        "hot_swap_ms": round(swap_ms, 1),
        "passed": bool(
            agreement >= MIN_TOP_CLASS_AGREEMENT
            and gap <= MAX_PROBABILITY_GAP
            and order_kept
            and swapped_to == Bundle.open(other).version
        ),
    }


def main(out: Path) -> int:
    import torch

    if not torch.cuda.is_available():
        print("gpu-check: no CUDA device is visible to torch; nothing to check", file=sys.stderr)
        return 1
    out.mkdir(parents=True, exist_ok=True)
    report: dict[str, object] = {
        "gpu": torch.cuda.get_device_name(0),
        "torch": torch.__version__,
        "cpu": cpu_summary(),
    }
    print(f"GPU {report['gpu']}, torch {report['torch']}; CPU {report['cpu']}")
    bundle, other = build_bundle(out / "bundle", 1), build_bundle(out / "other", 2)
    report["engine"] = check_engine(bundle, other)
    print(json.dumps(report["engine"], indent=2))
    texts = (sample_texts() * 80)[:2048]
    results = run_bench(str(bundle), texts, BATCH_SIZES, backends=["torch-cuda"], min_seconds=2.0)
    results += run_bench(str(bundle), texts, [32], backends=["onnx-fp32"], min_seconds=2.0)
    report["bench"] = [r.as_dict() for r in results]
    for r in results:
        speed = f"{r.texts_per_s:>9.1f} texts/s, p50 {r.p50_ms} ms, p99 {r.p99_ms} ms"
        print(f"{r.backend:>11} {r.device:>4} batch {r.batch_size:>5}: {speed}")
    (out / "gpu-check.json").write_text(json.dumps(report, indent=2))
    return 0 if report["engine"]["passed"] else 1


if __name__ == "__main__":
    sys.exit(main(Path(os.environ.get("OUT") or "/tmp/finsentry-gpu-check")))  # noqa: S108 - the GPU machine's scratch folder
