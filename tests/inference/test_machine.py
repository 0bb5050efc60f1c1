"""The CPU line printed beside every speed figure."""

from __future__ import annotations

from pathlib import Path

from inference.machine import cpu_flags, cpu_model, cpu_summary

CPUINFO = """processor\t: 0
model name\t: AMD EPYC 9B45
flags\t\t: fpu sse avx2 fma avx512f avx512_vnni avx512_bf16 sha_ni
"""


def test_flags_of_interest_are_read_from_cpuinfo(tmp_path: Path) -> None:
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text(CPUINFO)
    assert cpu_flags(cpuinfo) == ["avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16"]
    assert cpu_model(cpuinfo) == "AMD EPYC 9B45"
    assert cpu_flags(tmp_path / "missing") == []
    cpuinfo.write_text("flags\t\t: avx2 amx_bf16 amx_tile avx512_vnni amx_int8\n")
    assert cpu_flags(cpuinfo) == ["avx2", "avx512_vnni", "amx_tile", "amx_int8", "amx_bf16"]


def test_the_summary_names_cores_and_says_when_vnni_is_missing() -> None:
    summary = cpu_summary()
    assert " cores, " in summary
    assert ("(no VNNI)" in summary) != any("vnni" in flag for flag in cpu_flags())
