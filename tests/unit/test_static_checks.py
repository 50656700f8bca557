"""The checks the README's Development section names run with the tests, so they cannot rot unseen."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    "command",
    [
        [sys.executable, "-m", "mypy"],
        [sys.executable, "-m", "ruff", "check", "."],
        [sys.executable, "-m", "ruff", "format", "--check", "pgmq_codegen", "pgmq_runtime", "benchmarks", "tests"],
    ],
    ids=["mypy", "ruff-check", "ruff-format"],
)
def test_the_code_passes_the_static_checks(command: list[str]) -> None:
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, f"{' '.join(command[2:])} failed:\n{done.stdout}\n{done.stderr}"
