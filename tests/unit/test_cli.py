"""The real ``pgmq-codegen`` entry point, run as a user would."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from tests.unit.test_config import TASKER_CONFIG

ROOT = Path(__file__).resolve().parents[2]


def checkout_first(env: dict[str, str]) -> dict[str, str]:
    """``env`` with this checkout on PYTHONPATH, so the entry point runs the code under test.

    The installed ``pgmq-codegen`` script imports whichever checkout was installed (an editable
    install of another worktree, say); paths already on PYTHONPATH keep their precedence.
    """
    paths = [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
    return {**env, "PYTHONPATH": os.pathsep.join([*paths, str(ROOT)])}


def cli(
    *args: str, cwd: Path | None = None, env: dict[str, str] | None = None, umask: int | None = None
) -> subprocess.CompletedProcess[str]:
    exe = shutil.which("pgmq-codegen")
    command = [exe] if exe else [sys.executable, "-m", "pgmq_codegen.cli"]
    full_env = checkout_first({**os.environ, "COLUMNS": "120", "NO_COLOR": "1", "TERM": "dumb", **(env or {})})
    return subprocess.run(
        [*command, *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=full_env,
        timeout=60,
        preexec_fn=None if umask is None else lambda: os.umask(umask),
    )


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
    second = cli("generate-migration", "--format", fmt, "--output-dir", "m", "--name", "again", "--force", cwd=tmp_path)
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


# -- issue #21: a newcomer's first hour ----------------------------------------------


def test_bracketed_text_is_printed_as_written(tmp_path):
    """Rich markup must not eat '[plpgsql-lint]', '[migration]' or brackets in paths."""
    hidden = tmp_path / "no-pglast"
    (hidden / "pglast").mkdir(parents=True)
    (hidden / "pglast" / "__init__.py").write_text('raise ImportError("hidden by the test")\n')
    path = os.pathsep.join([str(hidden), os.environ.get("PYTHONPATH", "")])
    result = cli("generate-migration", "-f", "raw", "-o", "m[1]", cwd=tmp_path, env={"PYTHONPATH": path})
    assert result.returncode == 0, result.stderr
    assert "install pgmq-codegen[plpgsql-lint] to also parse" in result.stdout
    assert "wrote m[1]/" in result.stdout
    init = cli("init", "cfg[prod].toml", cwd=tmp_path)
    assert "wrote cfg[prod].toml" in init.stdout and "validate-config cfg[prod].toml" in init.stdout
    help_text = cli("generate-migration", "--help").stdout
    assert "Default: [migration] name_prefix." in help_text


def test_written_files_honour_the_umask(tmp_path):
    assert cli("init", cwd=tmp_path, umask=0o022).returncode == 0
    assert cli("generate-migration", "-f", "flyway", "-o", "m", cwd=tmp_path, umask=0o022).returncode == 0
    written = [tmp_path / "pgmq-codegen.toml", *(p for p in tmp_path.rglob("*.sql"))]
    assert len(written) == 3
    assert {oct(p.stat().st_mode & 0o777) for p in written} == {oct(0o644)}
    assert cli("init", "strict.toml", cwd=tmp_path, umask=0o077).returncode == 0
    assert (tmp_path / "strict.toml").stat().st_mode & 0o777 == 0o600


def test_flags_are_shown_as_flags_and_verbose_works_after_the_verb(tmp_path):
    help_text = cli("diff", "--help").stdout
    assert "--json" in help_text and "<bool>" not in help_text
    (tmp_path / "bad.toml").write_text("mode = \n")
    after = cli("sql", "-c", "bad.toml", "--verbose", cwd=tmp_path)
    assert after.returncode == 2 and "Traceback" in after.stderr


def test_listen_takes_the_dsn_from_the_environment_like_diff(tmp_path):
    dsn = "postgresql://nobody@127.0.0.1:1/nothing?connect_timeout=2"
    for verb in ("diff", "listen"):
        result = cli(verb, cwd=tmp_path, env={"PGMQ_CODEGEN_DSN": dsn})
        assert result.returncode == 2, (verb, result.stderr)
        assert "Missing option" not in result.stderr and "127.0.0.1" in result.stderr, (verb, result.stderr)


def test_validate_config_defaults_to_the_config_in_the_current_folder(tmp_path):
    assert cli("init", cwd=tmp_path).returncode == 0
    result = cli("validate-config", cwd=tmp_path)
    assert result.returncode == 0 and "pgmq-codegen.toml is valid" in result.stdout


def test_usage_errors_are_one_line_each(tmp_path):
    missing = cli("diff", cwd=tmp_path, env={"PGMQ_CODEGEN_DSN": ""})
    unknown = cli("sql", "--nope", cwd=tmp_path)
    extra = cli("diff", "--dsn", "x", "--json", "true", cwd=tmp_path)
    for result in (missing, unknown, extra):
        assert result.returncode == 2
        lines = result.stderr.splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert "--dsn" in missing.stderr and "--nope" in unknown.stderr and "true" in extra.stderr


def test_generating_the_same_config_twice_writes_nothing_the_second_time(tmp_path):
    first = cli("generate-migration", "-f", "flyway", "-o", "m", cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    before = sorted(p.name for p in tmp_path.rglob("*.sql"))
    again = cli("generate-migration", "-f", "flyway", "-o", "m", cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert "already installs this config" in again.stdout and "V1__add_pgmq_notifications.sql" in again.stdout
    assert sorted(p.name for p in tmp_path.rglob("*.sql")) == before
    forced = cli("generate-migration", "-f", "flyway", "-o", "m", "--force", cwd=tmp_path)
    assert forced.returncode == 0 and (tmp_path / "m" / "V2__add_pgmq_notifications.sql").exists()
    (tmp_path / "c.toml").write_text('mode = "both"\n')
    changed = cli("generate-migration", "-f", "flyway", "-o", "m", "-c", "c.toml", cwd=tmp_path)
    assert changed.returncode == 0 and (tmp_path / "m" / "V3__add_pgmq_notifications.sql").exists()
    # The newest of ours now installs mode = "both": the default config is new again.
    back = cli("generate-migration", "-f", "flyway", "-o", "m", cwd=tmp_path)
    assert back.returncode == 0 and (tmp_path / "m" / "V4__add_pgmq_notifications.sql").exists()


def test_validate_config_summary_shows_the_channels_and_the_pattern_as_written(tmp_path):
    (tmp_path / "c.toml").write_text("global_channel = false\nqueue_naming_pattern = '(?P<namespace>\\w+)_q'\n")
    result = cli("validate-config", "c.toml", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "pattern '(?P<namespace>\\w+)_q'," in result.stdout
    assert "channels: pgmq_queue_created, pgmq_message_ready.<namespace>" in result.stdout
    assert "pgmq_message_ready," not in result.stdout


def test_a_double_quoted_pattern_gets_a_hint_to_use_single_quotes(tmp_path):
    (tmp_path / "c.toml").write_text('queue_naming_pattern = "(?P<namespace>\\w+)_queue"\n')
    result = cli("validate-config", "c.toml", cwd=tmp_path)
    assert result.returncode == 2 and "Unescaped" in result.stderr and "single quotes" in result.stderr


def test_demo_events_table_prints_names_from_the_database_as_written():
    """Event cells come from the database: a queue named 'orders[eu]' must not lose '[eu]' to Rich markup."""
    import json

    from rich.console import Console

    from pgmq_codegen import demo

    created = json.dumps({"event_type": "queue_created", "queue_name": "orders[eu]_queue", "namespace": "default"})
    unknown = json.dumps({"event_type": "[bold]odd[/bold]"})
    console = Console(width=120, record=True, highlight=False, color_system=None)
    console.print(demo.events_table([demo.Received(1.0, "c", created), demo.Received(2.0, "c", unknown)]))
    text = console.export_text()
    assert "orders[eu]_queue" in text and "[bold]odd[/bold]" in text, text


VERBS = ["init", "validate-config", "generate-migration", "sql", "diff", "listen", "demo", "worker", "status"]


def test_option_values_are_named_in_words_not_python_types():
    """'--queue QUEUE', '--concurrency N', '--grace-period SECONDS': not '<list[str]>', '<int range>'."""
    for verb in VERBS:
        options = cli(verb, "--help").stdout.split("\nOptions:\n", 1)[1]
        # A choice list such as <text|json> names its values; anything else in <...> is a Python type.
        assert re.findall(r"<[^|>\s]*(?: range)?>", options) == [], (verb, options)
    worker = cli("worker", "--help").stdout
    for shown in ("--queue QUEUE", "--concurrency N", "--visibility-timeout SECONDS", "--grace-period SECONDS"):
        assert shown in worker


def test_the_verb_list_shows_each_first_sentence_whole():
    """Click cuts a summary at its first '.', so 'e.g.' cut the sql verb's; and it elides long ones with '...'."""
    listing = cli("--help", env={"COLUMNS": "80"}).stdout.split("\nCommands:\n", 1)[1]
    summaries = dict(row.split(None, 1) for row in listing.splitlines() if row.strip())
    assert set(summaries) == set(VERBS)
    for verb, summary in summaries.items():
        assert summary.endswith(".") and not summary.endswith(("...", "e.g.")), (verb, summary)


def test_worker_and_status_say_where_the_config_comes_from_like_the_other_verbs():
    for verb in ("worker", "status", "diff"):
        text = re.sub(r"-\s+", "-", " ".join(cli(verb, "--help").stdout.split()))  # Click wraps after hyphens
        assert "Default: ./pgmq-codegen.toml if present" in text, verb
