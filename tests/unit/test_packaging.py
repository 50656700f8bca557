"""The built wheel ships the templates and the py.typed markers, and nothing that is not the product."""

from __future__ import annotations

import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

from pgmq_codegen import __version__

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
    top_level = {name.split("/", 1)[0] for name in names}
    assert top_level == {"pgmq_codegen", "pgmq_runtime", wheel.name.split("-")[0] + "-" + __version__ + ".dist-info"}


def test_the_version_is_written_once():
    """pyproject.toml takes the version from pgmq_codegen/__init__.py instead of repeating it."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert "version" not in project["project"] and project["project"]["dynamic"] == ["version"]
    assert project["tool"]["hatch"]["version"]["path"] == "pgmq_codegen/__init__.py"
