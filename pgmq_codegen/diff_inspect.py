"""Read what ``diff`` compares from a live database: the I/O half of ``diff``.

Two pictures are read in one transaction that is always rolled back:

* the **actual** objects: our schema, the functions in it, the triggers that
  are ours (by name on PGMQ's tables, or because they run a function of our
  schema), and the queues listed in ``pgmq.meta``;
* the **expected** functions: every ``CREATE FUNCTION`` statement of the
  rendered install script is run with its schema changed to ``pg_temp``, so
  PostgreSQL itself canonicalises the definitions (argument types, return
  type, options, ``SET`` clauses) and stores the body verbatim. Nothing else
  of the install runs, so no lock is taken on ``pgmq.meta`` or a queue table,
  and only the ``TEMPORARY`` privilege is needed.

The expected arguments of each queue's message trigger come from the
``pg_temp`` copies of the namespace and channel functions, the very code the
install's ``attach`` runs.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import psycopg
from psycopg import sql

from pgmq_codegen.errors import DatabaseError
from pgmq_runtime import object_names
from pgmq_runtime.config import PgmqNotifyConfig
from pgmq_runtime.errors import describe_error

DEFAULT_LOCK_TIMEOUT_MS = 5000
DEFAULT_CONNECT_TIMEOUT_S = 10
_STATEMENT_TIMEOUT_MS = 60000


@dataclass(frozen=True)
class FunctionState:
    """One function as the catalogue describes it."""

    name: str
    arg_types: str
    arguments: str
    result: str
    kind: str
    definition: str
    comment: str | None

    @property
    def key(self) -> str:
        """``name(argument types)``: the identity PostgreSQL overloads on."""
        return f"{self.name}({self.arg_types})"


@dataclass(frozen=True)
class TriggerState:
    """One trigger and the function it runs."""

    name: str
    table_schema: str
    table: str
    tgtype: int
    function_schema: str
    function_name: str
    function_arg_types: str
    args: tuple[str, ...]
    new_table: str | None
    old_table: str | None
    has_when: bool
    has_columns: bool
    is_constraint: bool
    enabled: str
    comment: str | None

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.table_schema, self.table, self.name)


@dataclass(frozen=True)
class QueueState:
    """A queue of ``pgmq.meta``, its table and what its message trigger's arguments should be."""

    name: str
    table: str
    table_exists: bool
    expected_args: tuple[str, ...]


@dataclass(frozen=True)
class SchemaState:
    """Our schema: whether it exists, its comment, and whether PUBLIC may use it."""

    exists: bool
    comment: str | None
    public_usage: bool


@dataclass(frozen=True)
class SequenceState:
    """A per-queue sequence of coalescing in our schema, and whether PUBLIC may read and set it."""

    name: str
    public_access: bool


@dataclass(frozen=True)
class DatabaseState:
    """Everything ``diff`` compares, read in one rolled-back transaction."""

    database: str
    schema: SchemaState
    functions: dict[str, FunctionState]
    expected_functions: dict[str, FunctionState]
    triggers: list[TriggerState]
    queues: list[QueueState]
    sequences: list[SequenceState]


def read_state(
    dsn: str,
    config: PgmqNotifyConfig,
    install_statements: list[str],
    *,
    lock_timeout_ms: int = DEFAULT_LOCK_TIMEOUT_MS,
    connect_timeout_s: int = DEFAULT_CONNECT_TIMEOUT_S,
) -> DatabaseState:
    """Connect to ``dsn`` and read the actual and expected objects; leave nothing behind.

    Raises :class:`DatabaseError` with a one-line cause when the database cannot
    be reached, PGMQ is missing, a lock is not granted within
    ``lock_timeout_ms`` or a query fails.
    """
    conn = _connect(dsn, connect_timeout_s)
    with conn:
        database = _describe(conn)
        try:
            with conn.transaction(force_rollback=True):
                conn.execute(sql.SQL("SET LOCAL lock_timeout = {}").format(sql.Literal(f"{lock_timeout_ms}ms")))
                conn.execute(
                    sql.SQL("SET LOCAL statement_timeout = {}").format(sql.Literal(f"{_STATEMENT_TIMEOUT_MS}ms"))
                )
                _require_pgmq(conn, database)
                schema = _read_schema(conn, config.schema)
                functions = _read_functions(conn, _OUR_SCHEMA, config.schema)
                triggers = _read_triggers(conn, config)
                expected = _create_expected_functions(conn, config, install_statements)
                queues = _read_queues(conn, config, expected)
                sequences = _read_sequences(conn, config.schema)
        except psycopg.errors.LockNotAvailable as exc:
            raise DatabaseError(
                f"{database}: gave up after waiting {lock_timeout_ms} ms for a lock "
                f"(a migration or pgmq.create may be running; retry): {describe_error(exc)}"
            ) from exc
        except psycopg.errors.InsufficientPrivilege as exc:
            raise DatabaseError(
                f"{database}: permission denied ({describe_error(exc)}); diff needs to read pgmq.meta "
                "and the catalogue, and the TEMPORARY privilege on the database"
            ) from exc
        except psycopg.Error as exc:
            raise DatabaseError(f"{database}: reading the installed objects failed: {describe_error(exc)}") from exc
    return DatabaseState(database, schema, functions, expected, triggers, queues, sequences)


def _connect(dsn: str, connect_timeout_s: int) -> psycopg.Connection[tuple[object, ...]]:
    try:
        params = psycopg.conninfo.conninfo_to_dict(dsn)
    except psycopg.Error as exc:
        raise DatabaseError(f"invalid DSN: {describe_error(exc)}") from exc
    extra: dict[str, object] = {"application_name": "pgmq-codegen diff"}
    if "connect_timeout" not in params:
        extra["connect_timeout"] = connect_timeout_s
    try:
        return psycopg.connect(dsn, autocommit=True, **extra)  # type: ignore[arg-type]
    except psycopg.Error as exc:
        raise DatabaseError(f"cannot connect to the database: {describe_error(exc)}") from exc


def _describe(conn: psycopg.Connection[tuple[object, ...]]) -> str:
    """``database "db" on host:port`` (never the password)."""
    info = conn.info
    where = f"{info.host}:{info.port}" if info.host and not info.host.startswith("/") else f"socket {info.host}"
    return f'database "{info.dbname}" on {where}'


def _require_pgmq(conn: psycopg.Connection[tuple[object, ...]], database: str) -> None:
    row = conn.execute("SELECT pg_catalog.to_regclass('pgmq.meta') IS NOT NULL").fetchone()
    if not row or not row[0]:
        raise DatabaseError(f"PGMQ is not installed in {database} (pgmq.meta not found); install PGMQ first")


def _read_schema(conn: psycopg.Connection[tuple[object, ...]], schema: str) -> SchemaState:
    row = conn.execute(
        """
        SELECT pg_catalog.obj_description(n.oid, 'pg_namespace'),
               EXISTS (
                   SELECT 1
                   FROM pg_catalog.aclexplode(coalesce(n.nspacl, pg_catalog.acldefault('n', n.nspowner))) AS a
                   WHERE a.grantee = 0 AND a.privilege_type = 'USAGE'
               )
        FROM pg_catalog.pg_namespace AS n
        WHERE n.nspname = %s
        """,
        (schema,),
    ).fetchone()
    if row is None:
        return SchemaState(exists=False, comment=None, public_usage=False)
    return SchemaState(exists=True, comment=_opt_str(row[0]), public_usage=bool(row[1]))


def _read_sequences(conn: psycopg.Connection[tuple[object, ...]], schema: str) -> list[SequenceState]:
    """Sequences of our schema named like coalescing's (``coalesce_<queue table>``)."""
    rows = conn.execute(
        """
        SELECT c.relname::text,
               (SELECT pg_catalog.count(DISTINCT a.privilege_type) = 2
                FROM pg_catalog.aclexplode(coalesce(c.relacl, pg_catalog.acldefault('s', c.relowner))) AS a
                WHERE a.grantee = 0 AND a.privilege_type IN ('SELECT', 'UPDATE'))
        FROM pg_catalog.pg_class AS c
        JOIN pg_catalog.pg_namespace AS n ON n.oid = c.relnamespace
        WHERE n.nspname = %s AND c.relkind = 'S' AND pg_catalog.starts_with(c.relname, %s)
        ORDER BY 1
        """,
        (schema, object_names.coalesce_sequence_prefix()),
    ).fetchall()
    return [SequenceState(name=str(row[0]), public_access=bool(row[1])) for row in rows]


_OUR_SCHEMA = sql.SQL("(SELECT n.oid FROM pg_catalog.pg_namespace AS n WHERE n.nspname = %s)")
_TEMP_SCHEMA = sql.SQL("pg_catalog.pg_my_temp_schema()")


def _read_functions(
    conn: psycopg.Connection[tuple[object, ...]], namespace: sql.Composable, *params: object
) -> dict[str, FunctionState]:
    query = sql.SQL(
        """
        SELECT p.proname,
               pg_catalog.oidvectortypes(p.proargtypes),
               pg_catalog.pg_get_function_arguments(p.oid),
               coalesce(pg_catalog.pg_get_function_result(p.oid), ''),
               p.prokind,
               CASE WHEN p.prokind <> 'a' THEN pg_catalog.pg_get_functiondef(p.oid) ELSE '' END,
               pg_catalog.obj_description(p.oid, 'pg_proc')
        FROM pg_catalog.pg_proc AS p
        WHERE p.pronamespace = {namespace}
        ORDER BY 1, 2
        """
    ).format(namespace=namespace)
    found: dict[str, FunctionState] = {}
    for name, arg_types, arguments, result, kind, definition, comment in conn.execute(query, params):
        state = FunctionState(
            name=str(name),
            arg_types=str(arg_types),
            arguments=str(arguments),
            result=str(result),
            kind=str(kind),
            # The first line names the function with its schema (ours or
            # pg_temp_N); the rest is the canonical definition.
            definition=str(definition).partition("\n")[2],
            comment=_opt_str(comment),
        )
        found[state.key] = state
    return found


def _read_triggers(conn: psycopg.Connection[tuple[object, ...]], config: PgmqNotifyConfig) -> list[TriggerState]:
    """Triggers on PGMQ's tables that are ours: by name, or running a function of our schema.

    Triggers elsewhere are the user's, even when they run one of our functions.
    """
    rows = conn.execute(
        """
        SELECT t.tgname, cn.nspname, c.relname, t.tgtype,
               pn.nspname, p.proname, pg_catalog.oidvectortypes(p.proargtypes),
               t.tgnargs, t.tgargs, t.tgnewtable, t.tgoldtable,
               t.tgqual IS NOT NULL,
               pg_catalog.cardinality(t.tgattr::pg_catalog.int2[]) > 0,
               t.tgconstraint <> 0,
               t.tgenabled::text,
               pg_catalog.obj_description(t.oid, 'pg_trigger')
        FROM pg_catalog.pg_trigger AS t
        JOIN pg_catalog.pg_class AS c ON c.oid = t.tgrelid
        JOIN pg_catalog.pg_namespace AS cn ON cn.oid = c.relnamespace
        JOIN pg_catalog.pg_proc AS p ON p.oid = t.tgfoid
        JOIN pg_catalog.pg_namespace AS pn ON pn.oid = p.pronamespace
        WHERE NOT t.tgisinternal
          AND t.tgparentid = 0
          AND cn.nspname = 'pgmq'
          AND (pn.nspname = %s OR t.tgname IN (%s, %s))
        ORDER BY cn.nspname, c.relname, t.tgname
        """,
        (config.schema, object_names.message_trigger_name(config), object_names.meta_trigger_name(config)),
    ).fetchall()
    encoding = conn.info.encoding
    found = []
    for row in rows:
        nargs = int(str(row[7]))
        raw = row[8]
        raw_bytes = bytes(raw) if isinstance(raw, bytes | bytearray | memoryview) else b""
        args = tuple(part.decode(encoding) for part in raw_bytes.split(b"\x00")[:nargs])
        found.append(
            TriggerState(
                name=str(row[0]),
                table_schema=str(row[1]),
                table=str(row[2]),
                tgtype=int(str(row[3])),
                function_schema=str(row[4]),
                function_name=str(row[5]),
                function_arg_types=str(row[6]),
                args=args,
                new_table=_opt_str(row[9]),
                old_table=_opt_str(row[10]),
                has_when=bool(row[11]),
                has_columns=bool(row[12]),
                is_constraint=bool(row[13]),
                enabled=str(row[14]),
                comment=_opt_str(row[15]),
            )
        )
    return found


def _function_statement(schema: str) -> re.Pattern[str]:
    """Matches a statement (after its leading comments) that creates a function in ``schema``."""
    return re.compile(
        r"\A(?:[ \t]*(?:--[^\n]*)?\n)*[ \t]*CREATE\s+(?:OR\s+REPLACE\s+)?FUNCTION\s+("
        + re.escape(object_names.quote_ident(schema))
        + r")\.",
        re.IGNORECASE,
    )


def _create_expected_functions(
    conn: psycopg.Connection[tuple[object, ...]], config: PgmqNotifyConfig, install_statements: list[str]
) -> dict[str, FunctionState]:
    """Run the install's function definitions in ``pg_temp`` and read them back."""
    # Bodies refer to functions of the real schema, which may not exist yet.
    conn.execute("SET LOCAL check_function_bodies = off")
    pattern = _function_statement(config.schema)
    created = 0
    for statement in install_statements:
        match = pattern.match(statement)
        if match is None:
            continue
        scratch = statement[: match.start(1)] + "pg_temp" + statement[match.end(1) :]
        conn.execute(scratch.encode())
        created += 1
    expected = _read_functions(conn, _TEMP_SCHEMA)
    if len(expected) != created:
        raise DatabaseError(
            f"the rendered install script defines {created} functions but {len(expected)} "
            "distinct ones were created; it overloads a function twice"
        )
    return expected


def _read_queues(
    conn: psycopg.Connection[tuple[object, ...]],
    config: PgmqNotifyConfig,
    expected: dict[str, FunctionState],
) -> list[QueueState]:
    has_format = conn.execute(
        "SELECT pg_catalog.to_regprocedure('pgmq.format_table_name(text, text)') IS NOT NULL"
    ).fetchone()
    table = (
        sql.SQL("pgmq.format_table_name(m.queue_name, 'q')")
        if has_format and has_format[0]
        else sql.SQL("'q_' || pg_catalog.lower(m.queue_name)")
    )
    rows = conn.execute(
        sql.SQL(
            """
            SELECT m.queue_name::text, q.tbl, pg_catalog.to_regclass(pg_catalog.format('pgmq.%I', q.tbl)) IS NOT NULL
            FROM pgmq.meta AS m, LATERAL (SELECT {table} AS tbl) AS q
            ORDER BY 1
            """
        ).format(table=table)
    ).fetchall()
    names = [str(row[0]) for row in rows]
    args = _expected_trigger_args(conn, config, expected, names)
    return [
        QueueState(name=name, table=str(row[1]), table_exists=bool(row[2]), expected_args=args[name])
        for name, row in zip(names, rows, strict=True)
    ]


def _expected_trigger_args(
    conn: psycopg.Connection[tuple[object, ...]],
    config: PgmqNotifyConfig,
    expected: dict[str, FunctionState],
    names: list[str],
) -> dict[str, tuple[str, ...]]:
    """(queue name, namespace, channel) per queue, computed by the rendered SQL functions."""
    if not names:
        return {}
    if "extract_namespace_v1(text)" in expected and "namespace_channel_v1(text)" in expected:
        rows = conn.execute(
            """
            SELECT q.name, ns.namespace, pg_temp.namespace_channel_v1(ns.namespace)
            FROM pg_catalog.unnest(%s::text[]) AS q(name),
                 LATERAL (SELECT pg_temp.extract_namespace_v1(q.name) AS namespace) AS ns
            """,
            (names,),
        ).fetchall()
        return {str(n): (str(n), str(ns), str(ch)) for n, ns, ch in rows}
    # No SQL mirror rendered: fall back to the config's Python mirror.
    return {
        name: (name, config.extract_namespace(name), config.message_ready_channel(config.extract_namespace(name)))
        for name in names
    }


def _opt_str(value: object) -> str | None:
    return None if value is None else str(value)
