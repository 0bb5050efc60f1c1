"""What a speed figure was measured on: the CPU's vector and matrix extensions and its cores."""

from __future__ import annotations

import os
import platform
from pathlib import Path

# The extensions that decide which int8 and bf16 kernels run: VNNI makes int8 matmuls pay, AMX more so
# (amx_bf16 is what makes torch bf16 on CPU fast).
FLAGS_OF_INTEREST = (
    "avx2",
    "fma",
    "avx512f",
    "avx512_vnni",
    "avx_vnni",
    "avx512_bf16",
    "amx_tile",
    "amx_int8",
    "amx_bf16",
)


def cpu_flags(cpuinfo: Path = Path("/proc/cpuinfo")) -> list[str]:
    """The extensions of FLAGS_OF_INTEREST this CPU has (empty where /proc/cpuinfo is missing)."""
    try:
        text = cpuinfo.read_text()
    except OSError:
        return []
    flags = next(
        (line.split(":", 1)[1].split() for line in text.splitlines() if line.startswith("flags")), []
    )
    return [flag for flag in FLAGS_OF_INTEREST if flag in flags]


def cpu_model(cpuinfo: Path = Path("/proc/cpuinfo")) -> str:
    try:
        lines = cpuinfo.read_text().splitlines()
    except OSError:
        return platform.processor() or "unknown CPU"
    return next(
        (line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")), "unknown CPU"
    )


def cores() -> int:
    """The cores this process may run on (ONNX Runtime's default thread count follows them)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def cpu_summary() -> str:
    """One line for a benchmark's header, e.g. 'AMD EPYC, 2 cores, avx2 fma (no VNNI)'."""
    flags = cpu_flags()
    vnni = any("vnni" in flag for flag in flags)
    return (
        f"{cpu_model()}, {cores()} cores, {' '.join(flags) or 'no flags read'}{'' if vnni else ' (no VNNI)'}"
    )
