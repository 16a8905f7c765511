"""Import layers: `lint-imports` keeps the contracts in pyproject.toml ([tool.importlinter])."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def lint_imports() -> str | None:
    """The lint-imports next to this interpreter (the venv's), else the one on PATH."""
    beside = Path(sys.executable).with_name("lint-imports")
    return str(beside) if beside.exists() else shutil.which("lint-imports")


@pytest.mark.skipif(lint_imports() is None,
                    reason="lint-imports is not installed (pip install import-linter; setup.sh does)")
def test_every_import_contract_is_kept() -> None:
    result = subprocess.run([lint_imports()], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout
