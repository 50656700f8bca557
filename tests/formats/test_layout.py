"""Each writer's file names, ordering and markers, without a database or a tool."""

from __future__ import annotations

import ast
import re
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy
from sqlalchemy.engine import default

from pgmq_codegen import formats, generate_migration, render
from pgmq_codegen.errors import MigrationLayoutError
from pgmq_codegen.formats import alembic as alembic_format
from pgmq_codegen.formats.base import NO_ROLLBACK_STATEMENT, next_version
from pgmq_runtime.config import MigrationConfig, PgmqNotifyConfig

NOW = datetime(2025, 3, 4, 5, 6, 7, tzinfo=UTC)
NO_ROLLBACK = PgmqNotifyConfig(migration=MigrationConfig(include_rollback=False))
ALL_FORMATS = ["alembic", "dbmate", "flyway", "golang-migrate", "goose", "liquibase", "raw", "sqlx", "supabase"]
DEFAULT_DIRS = {
    "alembic": "alembic/versions",
    "dbmate": "db/migrations",
    "golang-migrate": "db/migrations",
    "goose": "migrations",
    "liquibase": "db/changelog",
    "sqlx": "migrations",
    "supabase": "supabase/migrations",
}


def version_of(path: Path) -> int:
    """The version a file name carries (V2__x.sql, 2025..._x.up.sql, rollback_2025..._x.sql)."""
    return int(re.search(r"\d+", path.name).group())  # type: ignore[union-attr]


def gen(fmt: str, folder: Path, now: datetime = NOW, config: PgmqNotifyConfig | None = None) -> list[Path]:
    # force: generating the same config again is how these tests check ordering.
    return generate_migration.generate_migration(config or PgmqNotifyConfig(), fmt, folder, now=now, force=True).files


def test_every_format_is_discovered():
    assert sorted(formats.writers()) == ALL_FORMATS


@pytest.mark.parametrize("fmt", sorted(DEFAULT_DIRS))
def test_default_folder_is_where_the_tool_looks(fmt):
    assert formats.get(fmt).default_dir == DEFAULT_DIRS[fmt]


@pytest.mark.parametrize("fmt", ALL_FORMATS)
def test_generating_twice_in_the_same_second_adds_ordered_files_and_never_overwrites(fmt, tmp_path):
    first = gen(fmt, tmp_path)
    before = {p: p.read_bytes() for p in first}
    second = gen(fmt, tmp_path)
    assert not set(first) & set(second)
    assert {p: p.read_bytes() for p in first} == before, "an applied migration must never change"
    if fmt != "alembic":  # alembic orders by down_revision, not by name (tested below)
        assert max(map(version_of, first)) < min(map(version_of, second))


@pytest.mark.parametrize("fmt", ALL_FORMATS)
def test_no_file_is_ever_empty(fmt, tmp_path):
    for config in (PgmqNotifyConfig(), NO_ROLLBACK):
        for path in gen(fmt, tmp_path / str(config.migration.include_rollback), config=config):
            assert path.read_text().strip(), path


# -- versions ---------------------------------------------------------------------


def test_next_version_timestamps_and_sequences():
    assert next_version([], NOW) == "20250304050607"
    assert next_version(["20250304050607"], NOW) == "20250304050608"  # same second
    assert next_version(["20990101000000"], NOW) == "20990101000001"  # a folder from the future
    assert next_version(["0001", "0002"], NOW) == "0003"  # sqlx-cli's sequence
    assert next_version(["00009"], NOW) == "00010"  # goose -s
    assert next_version(["000001"], NOW, sequential_ok=False) == "20250304050607"


def test_raw_orders_after_a_future_timestamp(tmp_path):
    (tmp_path / "20990101000000_theirs.up.sql").write_text("SELECT 1;\n")
    up, down = gen("raw", tmp_path)
    assert (up.name, down.name) == (
        "20990101000001_add_pgmq_notifications.up.sql",
        "20990101000001_add_pgmq_notifications.down.sql",
    )


@pytest.mark.parametrize(
    ("existing", "expected"),
    [
        (["V1__a.sql"], "V2"),
        (["V1.0__a.sql", "V1.1__b.sql"], "V2"),  # 1.0 is version 1
        (["V001__a.sql"], "V2"),  # so is 001
        (["V2_5__a.sql", "U2_5__a.sql"], "V3"),  # "_" separates parts too
        (["V10__a.sql", "V9__b.sql"], "V11"),  # numeric, not text, order
    ],
)
def test_flyway_versions_are_numeric_parts(tmp_path, existing, expected):
    for name in existing:
        (tmp_path / name).write_text("SELECT 1;\n")
    up, undo = gen("flyway", tmp_path)
    assert up.name == f"{expected}__add_pgmq_notifications.sql"
    assert undo.name == "U" + up.name[1:]
    assert undo.parent == tmp_path.parent / f"{tmp_path.name}_undo"


def test_flyway_versions_count_undo_scripts_in_their_own_folder(tmp_path):
    migrations = tmp_path / "migration"
    (tmp_path / "migration_undo").mkdir()
    (tmp_path / "migration_undo" / "U4__gone.sql").write_text("SELECT 1;\n")
    up, _ = gen("flyway", migrations)
    assert up.name.startswith("V5__")


def test_flyway_refuses_placeholder_syntax(tmp_path):
    with pytest.raises(MigrationLayoutError, match="placeholder"):
        gen("flyway", tmp_path, config=PgmqNotifyConfig(default_namespace="${x}"))
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("fmt", ["sqlx", "goose", "golang-migrate"])
def test_sequential_folders_stay_sequential(fmt, tmp_path):
    theirs = {"sqlx": "0001_init.sql", "goose": "00001_init.sql", "golang-migrate": "000001_init.up.sql"}[fmt]
    (tmp_path / theirs).write_text("SELECT 1;\n")
    first = gen(fmt, tmp_path)[0]
    width = len(theirs.split("_")[0])
    assert first.name.startswith("2".zfill(width) + "_")


# -- alembic --------------------------------------------------------------------


def revision_file(folder: Path, rev: str, down: object, annotated: bool = False) -> None:
    if annotated:
        body = f"revision: str = {rev!r}\ndown_revision: Union[str, Sequence[str], None] = {down!r}\n"
    else:
        body = f"revision = {rev!r}\ndown_revision = {down!r}\n"
    (folder / f"{rev}_user.py").write_text(f'"""user revision"""\nfrom alembic import op\n{body}\n')


def test_alembic_chains_to_the_current_head(tmp_path):
    revision_file(tmp_path, "aaa", None)
    revision_file(tmp_path, "bbb", "aaa", annotated=True)
    (tmp_path / "__init__.py").write_text("")
    (tmp_path / "notes.py").write_text("x = 1\n")  # no revision: alembic skips it, so do we
    (path,) = gen("alembic", tmp_path)
    assert re.fullmatch(r"[0-9a-f]{12}_add_pgmq_notifications\.py", path.name)
    assert alembic_format.read_revisions(tmp_path)[path.name[:12]] == ("bbb",)
    assert alembic_format.heads(alembic_format.read_revisions(tmp_path)) == [path.name[:12]]
    (second,) = gen("alembic", tmp_path)  # same second, still chained, still one head
    assert alembic_format.read_revisions(tmp_path)[second.name[:12]] == (path.name[:12],)
    assert alembic_format.heads(alembic_format.read_revisions(tmp_path)) == [second.name[:12]]


def test_alembic_follows_a_merge_revision(tmp_path):
    revision_file(tmp_path, "base", None)
    revision_file(tmp_path, "left", "base")
    revision_file(tmp_path, "right", "base")
    revision_file(tmp_path, "merge", ("left", "right"))
    (path,) = gen("alembic", tmp_path)
    assert alembic_format.read_revisions(tmp_path)[path.name[:12]] == ("merge",)


def test_alembic_refuses_several_heads(tmp_path):
    revision_file(tmp_path, "base", None)
    revision_file(tmp_path, "left", "base")
    revision_file(tmp_path, "right", "base")
    with pytest.raises(MigrationLayoutError, match=r"2 Alembic heads \(left, right\).*alembic merge heads"):
        gen("alembic", tmp_path)
    assert len(list(tmp_path.iterdir())) == 3


def test_alembic_points_at_the_versions_folder(tmp_path):
    (tmp_path / "env.py").write_text("")
    (tmp_path / "versions").mkdir()
    with pytest.raises(MigrationLayoutError, match=r"--output-dir .*versions"):
        gen("alembic", tmp_path)


def test_alembic_revision_compiles_and_round_trips_through_sqlalchemy_text(tmp_path):
    config = PgmqNotifyConfig(default_namespace='{"id":1}')
    (path,) = gen("alembic", tmp_path, config=config)
    source = path.read_text()
    module = ast.parse(source)
    compile(source, str(path), "exec")
    values = {
        node.targets[0].id: ast.literal_eval(node.value)
        for node in module.body
        if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name)
    }
    assert values["down_revision"] is None
    rendered = render.render(config)
    for key, statements in (("UPGRADE_SQL", rendered.install), ("DOWNGRADE_SQL", rendered.rollback)):
        assert len(values[key]) == len(statements)
        for text, statement in zip(values[key], statements, strict=True):
            assert not text.rstrip().endswith(";"), "offline --sql mode appends ';' itself"
            compiled = sqlalchemy.text(text).compile(dialect=default.DefaultDialect())
            assert compiled.params == {}, f"bind parameters left in {text[:80]!r}"
            assert str(compiled) == statement.rstrip()[:-1]
    assert '"id"\\:1' in source


def test_alembic_without_rollback_refuses_to_downgrade(tmp_path):
    (path,) = gen("alembic", tmp_path, config=NO_ROLLBACK)
    source = path.read_text()
    assert "raise NotImplementedError" in source and "DOWNGRADE_SQL = (\n)" in source
    compile(source, str(path), "exec")


# -- goose, dbmate ----------------------------------------------------------------

GOOSE_ANNOTATIONS = {"-- +goose Up", "-- +goose Down", "-- +goose StatementBegin", "-- +goose StatementEnd"}


def test_goose_wraps_every_statement_in_unindented_annotations(tmp_path):
    (path,) = gen("goose", tmp_path)
    lines = path.read_text().splitlines()
    annotations = [line for line in lines if "+goose" in line]
    assert set(annotations) == GOOSE_ANNOTATIONS, "annotations start at column 0, spelled exactly"
    assert lines[0] == "-- +goose Up" and lines.count("-- +goose Down") == 1
    rendered = render.render(PgmqNotifyConfig())
    assert lines.count("-- +goose StatementBegin") == len(rendered.install) + len(rendered.rollback)
    assert lines.count("-- +goose StatementEnd") == lines.count("-- +goose StatementBegin")


def test_dbmate_markers_come_first(tmp_path):
    (path,) = gen("dbmate", tmp_path)
    text = path.read_text()
    assert text.startswith("-- migrate:up\n")
    assert re.findall(r"(?m)^--\s*migrate:\w+.*$", text) == ["-- migrate:up", "-- migrate:down"]


def test_dbmate_and_goose_without_rollback_refuse_to_roll_back(tmp_path):
    for fmt in ("dbmate", "goose"):
        (path,) = gen(fmt, tmp_path / fmt, config=NO_ROLLBACK)
        down = re.split(r"(?m)^-- (?:migrate:down|\+goose Down)$", path.read_text())[1]
        assert NO_ROLLBACK_STATEMENT in down


@pytest.mark.parametrize(
    ("fmt", "marker", "message"),
    [
        ("dbmate", "-- migrate:down", "dbmate"),
        ("goose", "-- +goose Down", "goose"),
        ("liquibase", "-- rollback DROP TABLE users;", "Liquibase"),
        ("liquibase", "--changeset evil:1", "Liquibase"),
    ],
)
def test_a_config_value_cannot_smuggle_in_a_tool_directive(fmt, marker, message, tmp_path):
    # a newline in a string literal puts the rest at the start of a line of the file
    config = PgmqNotifyConfig(default_namespace=f"x\n{marker}")
    with pytest.raises(MigrationLayoutError, match=message):
        gen(fmt, tmp_path, config=config)
    assert list(tmp_path.iterdir()) == []


# -- sqlx, golang-migrate, supabase, liquibase --------------------------------------


def test_sqlx_reversible_pair_or_simple_file(tmp_path):
    up, down = gen("sqlx", tmp_path / "a")
    assert (up.name, down.name) == (
        "20250304050607_add_pgmq_notifications.up.sql",
        "20250304050607_add_pgmq_notifications.down.sql",
    )
    assert not up.read_text().startswith("-- no-transaction"), "that first line would drop the transaction"
    (simple,) = gen("sqlx", tmp_path / "b", config=NO_ROLLBACK)
    assert simple.name == "20250304050607_add_pgmq_notifications.sql"


def test_golang_migrate_writes_no_down_file_without_rollback(tmp_path):
    (up,) = gen("golang-migrate", tmp_path, config=NO_ROLLBACK)
    assert up.name == "20250304050607_add_pgmq_notifications.up.sql"


def test_supabase_rollback_is_a_file_the_cli_skips(tmp_path):
    up, rollback = gen("supabase", tmp_path)
    supabase_migration = re.compile(r"^([0-9]+)_(.*)\.sql$")  # supabase/cli pkg/migration
    assert supabase_migration.match(up.name) and not supabase_migration.match(rollback.name)
    assert f"migration repair --status reverted {up.name[:14]}" in up.read_text()
    assert [p.name for p in gen("supabase", tmp_path / "none", config=NO_ROLLBACK)] == [up.name]


def test_liquibase_one_changeset_unsplit_with_its_rollback(tmp_path):
    (path,) = gen("liquibase", tmp_path)
    lines = path.read_text().splitlines()
    assert lines[0] == "-- liquibase formatted sql"
    (changeset,) = [line for line in lines if line.startswith("-- changeset")]
    assert changeset.startswith("-- changeset pgmq-codegen:20250304050607_add_pgmq_notifications ")
    for attribute in ("splitStatements:false", "rollbackSplitStatements:false", "stripComments:false"):
        assert attribute in changeset.split()
    rollback = [line.removeprefix("-- rollback ") for line in lines if line.startswith("-- rollback ")]
    first_rollback = lines.index("-- rollback " + rollback[0])
    assert all(line.startswith("-- rollback ") for line in lines[first_rollback:]), "rollback lines come last"
    assert "\n".join(rollback).endswith(render.render(PgmqNotifyConfig()).rollback[-1])


def test_liquibase_refuses_property_syntax_and_writes_no_rollback_when_asked(tmp_path):
    with pytest.raises(MigrationLayoutError, match="property"):
        gen("liquibase", tmp_path / "a", config=PgmqNotifyConfig(default_namespace="${x}"))
    (path,) = gen("liquibase", tmp_path / "b", config=NO_ROLLBACK)
    assert "-- rollback" not in path.read_text()  # Liquibase itself then refuses to roll back
