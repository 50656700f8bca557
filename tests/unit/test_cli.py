"""The real ``pgmq-codegen`` entry point, run as a user would."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from tests.unit.test_config import TASKER_CONFIG


def cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    exe = shutil.which("pgmq-codegen")
    command = [exe] if exe else [sys.executable, "-m", "pgmq_codegen.cli"]
    env = {**os.environ, "COLUMNS": "120", "NO_COLOR": "1", "TERM": "dumb"}
    return subprocess.run([*command, *args], capture_output=True, text=True, cwd=cwd, env=env, timeout=60)


def test_help_lists_every_verb():
    result = cli("--help")
    assert result.returncode == 0
    for verb in ("init", "validate-config", "generate-migration", "sql", "diff", "listen", "demo"):
        assert verb in result.stdout


def test_init_writes_a_valid_commented_config_and_refuses_to_overwrite(tmp_path):
    assert cli("init", cwd=tmp_path).returncode == 0
    text = (tmp_path / "pgmq-codegen.toml").read_text()
    assert "include_payload" in text and "LISTEN" in text  # the security note is in the file
    assert tomllib.loads(text)["mode"] == "trigger"
    again = cli("init", cwd=tmp_path)
    assert again.returncode == 2 and "--force" in again.stderr


def test_validate_config_exit_codes(tmp_path):
    good = tmp_path / "tasker.toml"
    good.write_text(TASKER_CONFIG)
    ok = cli("validate-config", str(good))
    assert ok.returncode == 0 and "valid" in ok.stdout
    bad = tmp_path / "bad.toml"
    bad.write_text('max_payload_size = 8000\nmod = "trigger"\nchannels_prefix = "a b"\n')
    result = cli("validate-config", str(bad))
    assert result.returncode == 2
    assert "max_payload_size" in result.stderr and "did you mean 'mode'" in result.stderr
    assert "channels_prefix" in result.stderr and "Traceback" not in result.stderr
    missing = cli("validate-config", str(tmp_path / "nope.toml"))
    assert missing.returncode == 2 and "cannot read" in missing.stderr


@pytest.mark.parametrize("fmt", ["flyway", "raw"])
def test_generate_migration_writes_files_and_orders_the_next_one(tmp_path, fmt):
    first = cli("generate-migration", "--format", fmt, "--output-dir", "m", cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    second = cli("generate-migration", "--format", fmt, "--output-dir", "m", "--name", "again", cwd=tmp_path)
    assert second.returncode == 0, second.stderr
    written = sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*.sql"))
    assert len(written) == 4
    ups = [n for n in written if "/V" in n or n.endswith(".up.sql")]
    assert ups == sorted(ups) and ups[-1].count("again") == 1
    for name in written:
        assert f"wrote {name}" in first.stdout + second.stdout


def test_generate_migration_with_an_invalid_config_writes_nothing(tmp_path):
    (tmp_path / "bad.toml").write_text('schema = "pgmq"\n')
    result = cli("generate-migration", "--format", "flyway", "-c", "bad.toml", "-o", "out", cwd=tmp_path)
    assert result.returncode == 2 and "schema" in result.stderr
    assert not (tmp_path / "out").exists()


def test_generate_migration_rejects_unknown_formats_and_names(tmp_path):
    unknown = cli("generate-migration", "--format", "flywy", cwd=tmp_path)
    assert unknown.returncode == 2 and "did you mean 'flyway'" in unknown.stderr
    bad_name = cli("generate-migration", "--format", "raw", "--name", "no spaces", cwd=tmp_path)
    assert bad_name.returncode == 2 and "letters, digits" in bad_name.stderr
    assert list(tmp_path.iterdir()) == []


def test_without_include_rollback_only_the_up_file_is_written(tmp_path):
    (tmp_path / "c.toml").write_text("[migration]\ninclude_rollback = false\n")
    result = cli("generate-migration", "-f", "flyway", "-c", "c.toml", "-o", "m", cwd=tmp_path)
    assert result.returncode == 0
    assert [p.name for p in (tmp_path / "m").iterdir()] == ["V1__add_pgmq_notifications.sql"]


def test_sql_prints_install_and_rollback(tmp_path):
    install = cli("sql", cwd=tmp_path)
    rollback = cli("sql", "--rollback", cwd=tmp_path)
    assert install.returncode == rollback.returncode == 0
    assert "CREATE TRIGGER" in install.stdout and "DROP SCHEMA" in rollback.stdout
    assert "-- @@" not in install.stdout


def test_errors_show_no_traceback_unless_verbose(tmp_path):
    (tmp_path / "bad.toml").write_text("mode = \n")
    quiet = cli("sql", "-c", "bad.toml", cwd=tmp_path)
    loud = cli("--verbose", "sql", "-c", "bad.toml", cwd=tmp_path)
    assert quiet.returncode == loud.returncode == 2
    assert "Traceback" not in quiet.stderr and "Traceback" in loud.stderr
