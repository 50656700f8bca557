"""Does the database carry the notification SQL that this config generates?

A cheap start-up check (two catalogue queries, no temporary objects) for the
listener, the consumer and ``status``; ``pgmq-codegen diff`` is the thorough
one. It reads what ``diff`` reads first, the fingerprint comment on each
generated object (``pgmq-codegen <version> fingerprint=<fp>``), and reports:

* ``pgmq_missing``: PGMQ is not installed in this database;
* ``not_installed``: our schema or its functions are absent (perhaps installed
  into another schema: those are named);
* ``other_config``: installed from another config (another ``mode``,
  ``channels_prefix``, pattern, ...): events would not match what we expect;
* ``stale``: made by another pgmq-codegen version (the marker's version), or
  functions this config needs are missing: ``diff`` reports it as drift too;
* ``meta_trigger_missing``: a trigger on ``pgmq.meta`` is gone. After a
  ``pg_dump`` restore of an install where PGMQ is an extension this is the
  normal state (pg_dump never writes triggers on an extension's tables): new
  queues stay silent until the migration is re-applied;
* ``untriggered_queues``: queues whose table has no enabled message trigger;
* ``notify_queue_filling``: PostgreSQL's one notification queue is at least
  :data:`NOTIFY_QUEUE_REPORT_AT` full, named with the sessions that hold it
  back (the oldest open transactions: a LISTENing session idle in a transaction
  stops the queue from advancing). Above 0.5 the generated SQL stays silent
  (consumers' catch-up reads still deliver), so every send still succeeds.

Every problem names its repair. :func:`check_install` takes a connection or a
DSN; :func:`check_install_async` an async connection. :func:`log_problems`
logs each problem once per process at ERROR.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import psycopg
from psycopg import sql
from psycopg.rows import dict_row

from pgmq_codegen import __version__ as GENERATOR_VERSION
from pgmq_runtime import object_names as on
from pgmq_runtime.config import PgmqNotifyConfig
from pgmq_runtime.errors import describe_error

logger = logging.getLogger(__name__)

# A catalogue row, read by column name.
Row = dict[str, Any]

ProblemKind = Literal[
    "pgmq_missing",
    "not_installed",
    "other_config",
    "stale",
    "meta_trigger_missing",
    "untriggered_queues",
    "notify_queue_filling",
]

#: Usage of PostgreSQL's notification queue from which the check reports it. The
#: generated SQL stops notifying above its own limit (0.5), so sends never fail.
NOTIFY_QUEUE_REPORT_AT = 0.25

# The functions whose absence the check reports, by mode; names from pgmq_runtime.object_names.
_TRIGGER_FUNCTIONS = (on.ON_MESSAGE_INSERT,)
_WRAPPER_FUNCTIONS = (on.SEND_WITH_NOTIFY,)
_ALWAYS_FUNCTIONS = (on.EXTRACT_NAMESPACE, on.NAMESPACE_CHANNEL, on.ON_QUEUE_CREATED, on.READ_SPECIFIC_BATCH)


def meta_trigger_names(config: PgmqNotifyConfig) -> tuple[str, str]:
    """Names of our two triggers on ``pgmq.meta`` (queue created, queue dropped)."""
    return (on.meta_trigger_name(config), on.meta_drop_trigger_name(config))


def message_trigger_name(config: PgmqNotifyConfig) -> str:
    """Name of our trigger on each queue table."""
    return on.message_trigger_name(config)


@dataclass(frozen=True)
class InstallProblem:
    """One way the database differs from what the config expects."""

    kind: ProblemKind
    detail: str


@dataclass(frozen=True)
class QueueHolder:
    """A session with an open transaction: while it LISTENs, the notification queue cannot advance past it."""

    pid: int
    user: str
    application: str
    state: str
    transaction_seconds: float

    def describe(self) -> str:
        app = f", application {self.application!r}" if self.application else ""
        return f"pid {self.pid} (user {self.user}{app}) {self.state} for {self.transaction_seconds:.0f} s"


@dataclass(frozen=True)
class NotifyQueueState:
    """How full PostgreSQL's notification queue is (0 to 1), and the oldest open transactions."""

    usage: float
    holders: tuple[QueueHolder, ...] = ()

    def describe(self) -> str:
        held = "; oldest open transactions: " + ", ".join(h.describe() for h in self.holders) if self.holders else ""
        return f"notification queue {self.usage:.0%} full{held}"


@dataclass(frozen=True)
class InstallReport:
    """The result of :func:`check_install`; ``ok`` when ``problems`` is empty."""

    database: str
    schema: str
    problems: tuple[InstallProblem, ...] = field(default=())
    pgmq_is_extension: bool = False
    notify_queue: NotifyQueueState = field(default_factory=lambda: NotifyQueueState(0.0))

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def repair(self) -> str:
        """What to run to fix every problem ("" when ok)."""
        if self.ok:
            return ""
        kinds = {p.kind for p in self.problems}
        repairs = []
        if "pgmq_missing" in kinds:
            repairs.append("install PGMQ, then apply the pgmq-codegen migration")
        elif kinds - {"notify_queue_filling"}:
            repairs.append(
                "re-apply the pgmq-codegen migration for this config "
                "(`pgmq-codegen diff --dsn DSN --config FILE --sql` prints the SQL)"
            )
        if "notify_queue_filling" in kinds:
            repairs.append(
                "end the transaction of the session holding the notification queue back "
                "(COMMIT/ROLLBACK in that client, or SELECT pg_terminate_backend(pid))"
            )
        return "; ".join(repairs)

    def summary(self) -> str:
        """One line: every problem, then the repair."""
        if self.ok:
            return f"{self.database}: notification SQL installed in schema {self.schema} as this config generates it"
        problems = "; ".join(p.detail for p in self.problems)
        return f"{self.database}: {problems}; repair: {self.repair}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "database": self.database,
            "schema": self.schema,
            "ok": self.ok,
            "pgmq_is_extension": self.pgmq_is_extension,
            "problems": [{"kind": p.kind, "detail": p.detail} for p in self.problems],
            "notify_queue_usage": self.notify_queue.usage,
            "notify_queue_holders": [asdict(h) for h in self.notify_queue.holders],
            "repair": self.repair,
        }


_OVERVIEW = """
SELECT pg_catalog.to_regclass('pgmq.meta') IS NOT NULL AS has_pgmq,
       EXISTS (SELECT 1 FROM pg_catalog.pg_extension WHERE extname = 'pgmq') AS is_extension,
       pg_catalog.obj_description(pg_catalog.to_regnamespace(%(schema)s), 'pg_namespace') AS schema_comment,
       ARRAY(SELECT p.proname::text || '=' || coalesce(pg_catalog.obj_description(p.oid, 'pg_proc'), '')
             FROM pg_catalog.pg_proc AS p WHERE p.pronamespace = pg_catalog.to_regnamespace(%(schema)s))
         AS functions,
       ARRAY(SELECT t.tgname::text FROM pg_catalog.pg_trigger AS t
             WHERE t.tgrelid = pg_catalog.to_regclass('pgmq.meta') AND t.tgenabled <> 'D') AS meta_triggers,
       ARRAY(SELECT n.nspname::text FROM pg_catalog.pg_namespace AS n
             WHERE n.nspname <> %(schema)s
               AND pg_catalog.obj_description(n.oid, 'pg_namespace') LIKE 'pgmq-codegen %%'
             ORDER BY 1) AS other_schemas,
       CASE WHEN pg_catalog.to_regclass('pgmq.meta') IS NULL THEN false
            ELSE pg_catalog.has_table_privilege('pgmq.meta', 'SELECT') END AS can_read_meta,
       pg_catalog.pg_notification_queue_usage() AS notify_queue_usage
"""

# Sessions other than ours with an open transaction, oldest first. PostgreSQL does
# not show which sessions LISTEN; one of these is holding the queue back.
_HOLDERS = """
SELECT a.pid, coalesce(a.usename::text, '') AS username, coalesce(a.application_name, '') AS application,
       coalesce(a.state, 'unknown') AS state,
       extract(epoch FROM pg_catalog.clock_timestamp() - a.xact_start)::float8 AS transaction_seconds
FROM pg_catalog.pg_stat_activity AS a
WHERE a.backend_type = 'client backend' AND a.xact_start IS NOT NULL AND a.pid <> pg_catalog.pg_backend_pid()
ORDER BY a.xact_start
LIMIT 3
"""

_UNTRIGGERED = """
SELECT m.queue_name::text AS queue_name
FROM pgmq.meta AS m
WHERE NOT EXISTS (
    SELECT 1 FROM pg_catalog.pg_trigger AS t
    WHERE t.tgrelid = pg_catalog.to_regclass(pg_catalog.format('pgmq.%%I', pgmq.format_table_name(m.queue_name, 'q')))
      AND t.tgname = %(trigger)s AND t.tgenabled IN ('O', 'A')
)
ORDER BY 1
"""


def check_install(conn_or_dsn: psycopg.Connection[Any] | str, config: PgmqNotifyConfig) -> InstallReport:
    """Check the database at ``conn_or_dsn`` against ``config`` (see the module doc)."""
    if isinstance(conn_or_dsn, str):
        with psycopg.connect(conn_or_dsn, autocommit=True, connect_timeout=10) as conn:
            return check_install(conn, config)
    conn = conn_or_dsn
    # A transaction this check opens is not left open (an idle-in-transaction
    # session holds back the notification queue).
    began = not conn.autocommit and conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
    try:
        with conn.cursor(row_factory=dict_row) as cur:
            cur.execute(sql.SQL(_OVERVIEW), {"schema": config.schema})
            overview = cur.fetchone()
            assert overview is not None
            untriggered: list[str] = []
            if _wants_untriggered(config, overview):
                cur.execute(sql.SQL(_UNTRIGGERED), {"trigger": message_trigger_name(config)})
                untriggered = [str(row["queue_name"]) for row in cur.fetchall()]
            holders: list[Row] = []
            if float(overview["notify_queue_usage"]) >= NOTIFY_QUEUE_REPORT_AT:
                cur.execute(sql.SQL(_HOLDERS))
                holders = cur.fetchall()
    finally:
        if began:
            conn.rollback()
    return _report(config, overview, untriggered, holders, _where(conn.info))


async def check_install_async(conn: psycopg.AsyncConnection[Any], config: PgmqNotifyConfig) -> InstallReport:
    """:func:`check_install` on an async connection."""
    began = not conn.autocommit and conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
    try:
        async with conn.cursor(row_factory=dict_row) as cur:
            await cur.execute(sql.SQL(_OVERVIEW), {"schema": config.schema})
            overview = await cur.fetchone()
            assert overview is not None
            untriggered: list[str] = []
            if _wants_untriggered(config, overview):
                await cur.execute(sql.SQL(_UNTRIGGERED), {"trigger": message_trigger_name(config)})
                untriggered = [str(row["queue_name"]) for row in await cur.fetchall()]
            holders: list[Row] = []
            if float(overview["notify_queue_usage"]) >= NOTIFY_QUEUE_REPORT_AT:
                await cur.execute(sql.SQL(_HOLDERS))
                holders = await cur.fetchall()
    finally:
        if began:
            await conn.rollback()
    return _report(config, overview, untriggered, holders, _where(conn.info))


def notify_queue_state(conn: psycopg.Connection[Any]) -> NotifyQueueState:
    """Usage of the notification queue and, when it is filling, the oldest open transactions."""
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute("SELECT pg_catalog.pg_notification_queue_usage() AS usage")
        row = cur.fetchone()
        usage = float(row["usage"]) if row else 0.0
        rows: list[Row] = []
        if usage >= NOTIFY_QUEUE_REPORT_AT:
            cur.execute(sql.SQL(_HOLDERS))
            rows = cur.fetchall()
    return _queue_state(usage, rows)


def _queue_state(usage: float, rows: list[Row]) -> NotifyQueueState:
    holders = (
        QueueHolder(
            int(r["pid"]), str(r["username"]), str(r["application"]), str(r["state"]), float(r["transaction_seconds"])
        )
        for r in rows
    )
    return NotifyQueueState(usage, tuple(holders))


_logged: set[tuple[str, str, str]] = set()


def log_problems(report: InstallReport, who: str) -> None:
    """Log the report's problems at ERROR, once per process for each database, schema and problem set."""
    if report.ok:
        return
    key = _log_key(report)
    if key in _logged:
        return
    _logged.add(key)
    logger.error("%s: install check: %s", who, report.summary())


async def check_and_log_async(
    conn: psycopg.AsyncConnection[Any], config: PgmqNotifyConfig, who: str, *, pgmq_calls_follow: bool = False
) -> None:
    """Start-up hook of the listener, the consumer and the client: never raises, logs what is wrong.

    With ``pgmq_calls_follow`` (the consumer, the client), a database without
    PGMQ is left to the caller's own first PGMQ call, which fails with its own
    one-line error, and is not logged again by a listener in the same process.
    A listener makes no PGMQ call: for it that is an ERROR, or it would wait
    for events in silence.
    """
    try:
        report = await check_install_async(conn, config)
    except psycopg.Error as exc:
        logger.warning("%s: install check could not run: %s", who, describe_error(exc))
        return
    if pgmq_calls_follow and any(p.kind == "pgmq_missing" for p in report.problems):
        logger.debug("%s: install check: %s", who, report.summary())
        _logged.add(_log_key(report))
        return
    log_problems(report, who)


def _log_key(report: InstallReport) -> tuple[str, str, str]:
    return (report.database, report.schema, report.summary())


def _where(info: psycopg.ConnectionInfo) -> str:
    return f'database "{info.dbname}" on {info.host}:{info.port}'


def _wants_untriggered(config: PgmqNotifyConfig, overview: Row) -> bool:
    has_pgmq, can_read_meta = bool(overview["has_pgmq"]), bool(overview["can_read_meta"])
    return has_pgmq and can_read_meta and config.mode in ("trigger", "both")


def _report(
    config: PgmqNotifyConfig,
    overview: Row,
    untriggered: list[str],
    holder_rows: list[Row],
    database: str,
) -> InstallReport:
    has_pgmq, is_extension = bool(overview["has_pgmq"]), bool(overview["is_extension"])
    schema_comment = overview["schema_comment"]
    functions = dict(str(item).split("=", 1) for item in overview["functions"] or [])
    meta_triggers, other_schemas = set(overview["meta_triggers"] or []), list(overview["other_schemas"] or [])
    problems = _problems(
        config, has_pgmq, is_extension, schema_comment, functions, meta_triggers, other_schemas, untriggered
    )
    queue = _queue_state(float(overview["notify_queue_usage"]), holder_rows)
    if queue.usage >= NOTIFY_QUEUE_REPORT_AT:
        problems.append(
            InstallProblem(
                "notify_queue_filling",
                f"{queue.describe()}; above 50% the generated SQL sends no NOTIFY (consumers catch up by reading)",
            )
        )
    return InstallReport(database, config.schema, tuple(problems), is_extension, queue)


def _problems(
    config: PgmqNotifyConfig,
    has_pgmq: bool,
    is_extension: bool,
    schema_comment: object,
    functions: dict[str, str],
    meta_triggers: set[str],
    other_schemas: list[str],
    untriggered: list[str],
) -> list[InstallProblem]:
    if not has_pgmq:
        return [InstallProblem("pgmq_missing", "PGMQ is not installed (pgmq.meta not found)")]
    if schema_comment is None or not functions:
        elsewhere = (
            f" (an install exists in schema {', '.join(other_schemas)}: check `schema`)" if other_schemas else ""
        )
        return [InstallProblem("not_installed", f"no notification SQL in schema {config.schema}{elsewhere}")]
    problems: list[InstallProblem] = []
    fingerprint = config.fingerprint()
    installed = on.parse_marker(str(schema_comment))
    if installed is None or installed.fingerprint != fingerprint:
        found = installed.fingerprint if installed else "none"
        modes = _installed_mode(functions)
        why = f"installed for mode {modes!r}, this config has mode {config.mode!r}" if modes != config.mode else ""
        problems.append(
            InstallProblem(
                "other_config",
                f"installed from another config (fingerprint {found}, this config {fingerprint}"
                + (f"; {why}" if why else "; e.g. another channels_prefix or pattern")
                + ")",
            )
        )
    else:
        needed = _ALWAYS_FUNCTIONS + (_TRIGGER_FUNCTIONS if config.mode != "wrapper" else ())
        needed += _WRAPPER_FUNCTIONS if config.mode != "trigger" else ()
        missing = [name for name in needed if name not in functions]
        stale = [f"functions missing: {', '.join(missing)}"] if missing else []
        if installed.version != GENERATOR_VERSION:
            stale.append(f"made by pgmq-codegen {installed.version}, this is {GENERATOR_VERSION}")
        if stale:
            problems.append(InstallProblem("stale", "; ".join(stale)))
    gone = [name for name in meta_trigger_names(config) if name not in meta_triggers]
    if gone:
        restored = (
            "; PGMQ is an extension, and pg_dump does not keep triggers on its tables: after a restore "
            "new queues stay silent"
            if is_extension
            else ""
        )
        problems.append(
            InstallProblem(
                "meta_trigger_missing", f"trigger(s) on pgmq.meta missing or disabled: {', '.join(gone)}{restored}"
            )
        )
    if untriggered:
        shown = ", ".join(untriggered[:5]) + (f" and {len(untriggered) - 5} more" if len(untriggered) > 5 else "")
        problems.append(
            InstallProblem("untriggered_queues", f"{len(untriggered)} queue(s) without a message trigger: {shown}")
        )
    return problems


def _installed_mode(functions: dict[str, str]) -> str:
    trigger = on.ON_MESSAGE_INSERT in functions
    wrapper = on.SEND_WITH_NOTIFY in functions
    return "both" if trigger and wrapper else "wrapper" if wrapper else "trigger"
