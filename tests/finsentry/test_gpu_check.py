"""The GPU check's own logic, run on CPU here (CI has no GPU; `./dev gpu-check` runs it on CUDA)."""

from __future__ import annotations

from pathlib import Path

from finsentry import gpu_check
from tests.tiny_model import build_tiny_bundle


def test_engine_checks_pass_on_a_device_that_agrees_with_cpu(tmp_path: Path) -> None:
    bundle, other = build_tiny_bundle(tmp_path / "a", seed=1), build_tiny_bundle(tmp_path / "b", seed=2)
    report = gpu_check.check_engine(bundle, other, device="cpu")
    assert report["top_class_agreement_vs_cpu_fp32"] == 1.0
    assert report["order_kept"] is True
    assert report["hot_swap_to"] == "tiny-2"
    assert report["passed"] is True


def test_without_a_gpu_it_says_so_and_fails(tmp_path: Path, monkeypatch, capsys) -> None:
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert gpu_check.main(tmp_path) == 1
    assert "no CUDA device" in capsys.readouterr().err
