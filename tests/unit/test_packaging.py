"""The built wheel ships the templates and the py.typed markers."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_wheel_contains_every_template(tmp_path):
    subprocess.run(
        [sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(tmp_path), str(ROOT)],
        check=True,
        capture_output=True,
        text=True,
        timeout=300,
    )
    (wheel,) = tmp_path.glob("*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    templates = [p.relative_to(ROOT).as_posix() for p in (ROOT / "templates").rglob("*") if p.is_file()]
    assert templates, "no templates found in the checkout"
    for template in templates:
        assert f"pgmq_codegen/{template}" in names, f"{template} missing from the wheel"
    assert "pgmq_codegen/py.typed" in names and "pgmq_runtime/py.typed" in names
