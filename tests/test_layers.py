"""The layers of the README's layout table hold: import-linter checks the contracts in pyproject.toml."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = (
    *("finsentry", "api", "streams", "training", "labels", "alerts", "accounts", "trends", "inference"),
    *("schemas", "stories", "foundation"),
)


def lint_imports(tree: Path) -> subprocess.CompletedProcess[str]:
    """import-linter on the packages under `tree` (found there first, before the installed ones)."""
    lint = Path(sys.executable).with_name("lint-imports")
    return subprocess.run(
        [str(lint), str(tree / "pyproject.toml"), "--no-cache", "--no-logo"],
        cwd=tree,
        env={**os.environ, "PYTHONPATH": str(tree)},
        capture_output=True,
        text=True,
        timeout=300,
    )


def copy_tree(target: Path) -> Path:
    for package in PACKAGES:
        shutil.copytree(ROOT / package, target / package, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", target / "pyproject.toml")
    return target


def test_the_code_keeps_its_layers() -> None:
    result = lint_imports(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Contracts: 3 kept, 0 broken." in result.stdout


def test_a_domain_package_importing_a_command_breaks_the_layers(tmp_path: Path) -> None:
    tree = copy_tree(tmp_path)
    (tree / "alerts" / "shortcut.py").write_text("from finsentry.cli.options import console\n")
    result = lint_imports(tree)
    assert result.returncode == 1
    assert "alerts.shortcut -> finsentry.cli.options" in result.stdout
    assert "Contracts: 2 kept, 1 broken." in result.stdout


def test_the_foundation_importing_a_domain_package_breaks_the_layers(tmp_path: Path) -> None:
    tree = copy_tree(tmp_path)
    (tree / "foundation" / "shortcut.py").write_text("import labels.store\n")
    result = lint_imports(tree)
    assert result.returncode == 1
    assert "foundation.shortcut -> labels.store" in result.stdout


def test_streams_and_api_stay_independent(tmp_path: Path) -> None:
    tree = copy_tree(tmp_path)
    (tree / "api" / "shortcut.py").write_text("import streams.app\n")
    result = lint_imports(tree)
    assert result.returncode == 1
    assert "api.shortcut -> streams.app" in result.stdout
