"""Compare a live database with what a config installs, and say how to repair it.

:func:`compare` reads the database (through :mod:`pgmq_codegen.diff_inspect`,
in a transaction that is always rolled back) and returns a :class:`DiffReport`:
a sorted list of :class:`Finding` objects, empty when the database carries
exactly the objects the config renders.

Definitions are compared as PostgreSQL canonicalises them, not by their
fingerprint comment: the install's functions are created in ``pg_temp`` and
``pg_get_functiondef`` of each is compared with the installed one, so a
hand-edited body is caught even when its comment still looks right.

Finding kinds:

``missing``
    the schema, a function or the trigger on ``pgmq.meta`` does not exist; or,
    with ``coalesce_ms``, a queue's window sequence (``coalesce_<table>``).
``changed``
    the object exists but its definition differs from what the config renders
    (function body, options, argument names or defaults, return type; a
    trigger's timing, level, function, arguments or enabled state; the schema's
    ``USAGE`` grant to ``PUBLIC``; a coalescing sequence's ``SELECT, UPDATE``
    grant to ``PUBLIC``).
``stale_fingerprint``
    the object's comment is not this generator version's and config's marker
    (``pgmq-codegen <version> fingerprint=<fp>``).
``untriggered_queue``
    a queue of ``pgmq.meta`` whose table has no message trigger, or whose
    trigger is disabled (``ALTER TABLE ... DISABLE TRIGGER``) or fires only in
    replica sessions: messages sent to it do not notify (modes ``trigger``
    and ``both``).
``extra``
    an object of ours that this config does not ask for: a function in our
    schema that this config does not render (another ``mode``, another
    generator version), a trigger running one of our functions or named like
    ours on a table where none belongs, or a coalescing sequence that no queue
    (or a config with ``coalesce_ms`` of 0) needs. Objects of another schema are another
    install's and are never reported.

JSON (:meth:`DiffReport.to_json`), schema version 1; keys are stable, new keys
may be added::

    {
      "format": "pgmq-codegen-diff",
      "version": 1,
      "generator": "pgmq-codegen 0.1.0",
      "database": "database \\"app\\" on db.example:5432",
      "schema": "pgmq_notify",
      "mode": "trigger",
      "fingerprint": "0123456789abcdef",
      "in_sync": false,
      "summary": {"missing": 0, "changed": 1, "stale_fingerprint": 0,
                  "untriggered_queue": 1, "extra": 0},
      "findings": [
        {"kind": "changed", "object_type": "function",
         "name": "pgmq_notify.extract_namespace_v1(text)",
         "detail": "definition differs from the rendered SQL: line 6 is ..."}
      ],
      "repair_sql": "..."
    }

``kind`` is one of the kinds above; ``object_type`` one of ``schema``,
``function``, ``trigger``, ``queue``, ``sequence``; ``name`` is
``schema.function(argument types)`` for functions, ``trigger ON table`` for
triggers, ``schema.sequence`` for sequences and the name as ``pgmq.meta``
spells it for queues. ``findings`` are sorted by kind (in the
order above), object type and name. ``repair_sql`` is present only when asked
for, and is ``""`` when the database is in sync.

:meth:`DiffReport.repair_sql` is the SQL a new migration should contain: drops
of functions that ``CREATE OR REPLACE`` cannot change (and of triggers that
use them), the complete, idempotent install script (which also re-attaches the
message trigger to every queue), then drops of the extra objects. Applying it
makes the next ``compare`` report no finding.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Literal

from pgmq_codegen import __version__, diff_inspect, render
from pgmq_codegen.diff_inspect import DatabaseState, FunctionState, QueueState, TriggerState
from pgmq_runtime import object_names
from pgmq_runtime.config import PgmqNotifyConfig

FindingKind = Literal["missing", "changed", "stale_fingerprint", "untriggered_queue", "extra"]
ObjectType = Literal["schema", "function", "trigger", "queue", "sequence"]
KINDS: tuple[FindingKind, ...] = ("missing", "changed", "stale_fingerprint", "untriggered_queue", "extra")
OBJECT_TYPES: tuple[ObjectType, ...] = ("schema", "function", "trigger", "queue", "sequence")
JSON_FORMAT = "pgmq-codegen-diff"
JSON_VERSION = 1

# pg_trigger.tgtype bits (PostgreSQL's catalog/pg_trigger.h).
_ROW, _BEFORE, _INSERT, _DELETE, _UPDATE, _TRUNCATE, _INSTEAD = 1, 2, 4, 8, 16, 32, 64
_ARG_ROLES = ("queue name", "namespace", "channel")


@dataclass(frozen=True)
class Finding:
    """One difference between the database and the config."""

    kind: FindingKind
    object_type: ObjectType
    name: str
    detail: str

    def to_dict(self) -> dict[str, str]:
        return {"kind": self.kind, "object_type": self.object_type, "name": self.name, "detail": self.detail}

    def sort_key(self) -> tuple[int, int, str]:
        return (KINDS.index(self.kind), OBJECT_TYPES.index(self.object_type), self.name)


@dataclass(frozen=True)
class DiffReport:
    """The result of :func:`compare`; ``in_sync`` when ``findings`` is empty."""

    config: PgmqNotifyConfig
    database: str
    findings: tuple[Finding, ...]
    drops_before_install: tuple[str, ...] = field(default=())
    drops_after_install: tuple[str, ...] = field(default=())

    @property
    def in_sync(self) -> bool:
        """True when the database carries exactly what the config renders."""
        return not self.findings

    def summary(self) -> dict[str, int]:
        """Number of findings of each kind (every kind present, in order)."""
        return {kind: sum(1 for f in self.findings if f.kind == kind) for kind in KINDS}

    def of_kind(self, kind: FindingKind) -> list[Finding]:
        """The findings of one kind, in report order."""
        return [f for f in self.findings if f.kind == kind]

    def repair_statements(self) -> list[str]:
        """Statements that bring the database in line; empty when in sync."""
        if self.in_sync:
            return []
        return [
            *self.drops_before_install,
            *render.install_statements(self.config),
            *self.drops_after_install,
        ]

    def repair_sql(self) -> str:
        """:meth:`repair_statements` as one script, ``""`` when in sync."""
        statements = self.repair_statements()
        if not statements:
            return ""
        head = "\n".join(
            [
                f"-- pgmq-codegen {__version__} diff: brings {self.database} in line with the config",
                f"-- config fingerprint {self.config.fingerprint()}; mode {self.config.mode}; "
                f"schema {self.config.schema}",
            ]
        )
        return head + "\n\n" + "\n\n".join(statements) + "\n"

    def to_dict(self, *, include_sql: bool = False) -> dict[str, Any]:
        """The report as plain data, in the documented JSON schema."""
        data: dict[str, Any] = {
            "format": JSON_FORMAT,
            "version": JSON_VERSION,
            "generator": f"{render.GENERATOR} {__version__}",
            "database": self.database,
            "schema": self.config.schema,
            "mode": self.config.mode,
            "fingerprint": self.config.fingerprint(),
            "in_sync": self.in_sync,
            "summary": self.summary(),
            "findings": [f.to_dict() for f in self.findings],
        }
        if include_sql:
            data["repair_sql"] = self.repair_sql()
        return data

    def to_json(self, *, include_sql: bool = False) -> str:
        """The report as JSON (see the module docstring for the schema)."""
        return json.dumps(self.to_dict(include_sql=include_sql), indent=2, ensure_ascii=False) + "\n"


def compare(
    dsn: str,
    config: PgmqNotifyConfig,
    *,
    lock_timeout_ms: int = diff_inspect.DEFAULT_LOCK_TIMEOUT_MS,
    connect_timeout_s: int = diff_inspect.DEFAULT_CONNECT_TIMEOUT_S,
) -> DiffReport:
    """Compare the database at ``dsn`` with what ``config`` installs.

    Nothing is changed in the database. Raises
    :class:`~pgmq_codegen.errors.DatabaseError` (one-line message) when the
    database cannot be reached or read or lacks PGMQ, and
    :class:`~pgmq_codegen.errors.RenderError` when the config cannot render.
    """
    install = render.install_statements(config)
    state = diff_inspect.read_state(
        dsn, config, install, lock_timeout_ms=lock_timeout_ms, connect_timeout_s=connect_timeout_s
    )
    return build_report(config, state)


def build_report(config: PgmqNotifyConfig, state: DatabaseState) -> DiffReport:
    """Turn what was read from the database into findings and repair statements."""
    checker = _Checker(config, state)
    checker.check_schema()
    checker.check_functions()
    checker.check_triggers()
    checker.check_sequences()
    findings = tuple(sorted(checker.findings, key=Finding.sort_key))
    return DiffReport(
        config=config,
        database=state.database,
        findings=findings,
        drops_before_install=tuple(_dedupe(checker.drops_before)),
        # Triggers first: a function cannot be dropped while a trigger runs it.
        drops_after_install=tuple(
            _dedupe(checker.trigger_drops_after + checker.function_drops_after + checker.sequence_drops_after)
        ),
    )


class _Checker:
    """Collects findings and the drops that the repair needs."""

    def __init__(self, config: PgmqNotifyConfig, state: DatabaseState) -> None:
        self.config = config
        self.state = state
        self.marker = render.marker(config)
        self.schema_q = object_names.quote_ident(config.schema)
        self.findings: list[Finding] = []
        self.drops_before: list[str] = []
        self.trigger_drops_after: list[str] = []
        self.function_drops_after: list[str] = []
        self.sequence_drops_after: list[str] = []

    def add(self, kind: FindingKind, object_type: ObjectType, name: str, detail: str) -> None:
        self.findings.append(Finding(kind, object_type, name, detail))

    def check_comment(self, object_type: ObjectType, name: str, comment: str | None) -> None:
        if comment != self.marker:
            self.add("stale_fingerprint", object_type, name, _fingerprint_detail(comment, self.marker))

    # -- schema and functions ------------------------------------------------

    def check_schema(self) -> None:
        schema = self.state.schema
        name = self.config.schema
        if not schema.exists:
            self.add("missing", "schema", name, "schema does not exist")
            return
        self.check_comment("schema", name, schema.comment)
        if not schema.public_usage:
            self.add("changed", "schema", name, "USAGE is not granted to PUBLIC, so other roles' sends fail")

    def function_name(self, fn: FunctionState) -> str:
        return f"{self.config.schema}.{fn.key}"

    def check_functions(self) -> None:
        actual = self.state.functions
        for key, want in self.state.expected_functions.items():
            have = actual.get(key)
            name = self.function_name(want)
            if have is None:
                self.add("missing", "function", name, "function does not exist")
                continue
            difference = _function_difference(want, have)
            if difference:
                self.add("changed", "function", name, f"definition differs from the rendered SQL: {difference}")
                if _needs_drop(want, have):
                    self.drop_function_first(have)
            self.check_comment("function", name, have.comment)
        for key, have in actual.items():
            if key not in self.state.expected_functions and self.is_ours(have):
                self.add("extra", "function", self.function_name(have), self.extra_function_detail(have))
                self.function_drops_after.append(f"DROP FUNCTION IF EXISTS {self.schema_q}.{_function_ref(have)};")

    def is_ours(self, fn: FunctionState) -> bool:
        catalogued = any(spec.name == fn.name for spec in object_names.FUNCTIONS)
        return catalogued or (fn.comment or "").startswith(render.GENERATOR + " ")

    def extra_function_detail(self, fn: FunctionState) -> str:
        modes = sorted({m for spec in object_names.FUNCTIONS if spec.name == fn.name for m in spec.modes})
        if modes and self.config.mode not in modes:
            listed = ", ".join(repr(m) for m in modes)
            return f"only installed with mode {listed}; this config has mode {self.config.mode!r}"
        return f"not rendered by this config (comment: {fn.comment!r})"

    def drop_function_first(self, fn: FunctionState) -> None:
        """CREATE OR REPLACE cannot change this function: drop it (and triggers using it) before the install."""
        for trigger in self.state.triggers:
            if (trigger.function_schema, trigger.function_name, trigger.function_arg_types) == (
                self.config.schema,
                fn.name,
                fn.arg_types,
            ):
                self.drops_before.append(_drop_trigger(trigger))
        self.drops_before.append(f"DROP FUNCTION IF EXISTS {self.schema_q}.{_function_ref(fn)};")

    # -- triggers and queues -------------------------------------------------

    def check_triggers(self) -> None:
        meta_name = object_names.meta_trigger_name(self.config)
        message_name = object_names.message_trigger_name(self.config)
        by_key = {t.key: t for t in self.state.triggers}
        expected: set[tuple[str, str, str]] = {("pgmq", "meta", meta_name)}

        meta = by_key.get(("pgmq", "meta", meta_name))
        label = f"{meta_name} ON pgmq.meta"
        if meta is None:
            self.add("missing", "trigger", label, "queue_created is not announced and new queues get no trigger")
        else:
            self.check_trigger_shape(meta, label, _ROW | _INSERT, "on_queue_created_v1", (), None, report_disabled=True)

        if self.config.mode in ("trigger", "both"):
            for queue in self.state.queues:
                if not queue.table_exists:
                    continue  # nothing to attach to; PGMQ's own state is broken
                key = ("pgmq", queue.table, message_name)
                expected.add(key)
                self.check_queue(queue, by_key.get(key), message_name)

        for trigger in self.state.triggers:
            if trigger.key not in expected:
                self.add("extra", "trigger", _trigger_label(trigger), self.extra_trigger_detail(trigger))
                self.trigger_drops_after.append(_drop_trigger(trigger))

    def check_sequences(self) -> None:
        """With coalesce_ms, every queue needs its window sequence, which every sending role may set."""
        prefix = object_names.coalesce_sequence_prefix()
        wanted = (
            {prefix + q.table: q.name for q in self.state.queues if q.table_exists}
            if self.config.coalesce_ms > 0
            else {}
        )
        have = {seq.name: seq for seq in self.state.sequences}
        for name, queue in wanted.items():
            label = f"{self.config.schema}.{name}"
            seq = have.get(name)
            if seq is None:
                self.add(
                    "missing",
                    "sequence",
                    label,
                    f"coalescing cannot record its window for queue {queue}: every send to it notifies",
                )
            elif not seq.public_access:
                self.add(
                    "changed",
                    "sequence",
                    label,
                    "SELECT and UPDATE are not granted to PUBLIC, so other roles' sends to "
                    f"queue {queue} fail with permission denied",
                )
        for name in have:
            if name not in wanted:
                why = (
                    "coalesce_ms is 0 in this config"
                    if self.config.coalesce_ms == 0
                    else "no queue of pgmq.meta has this table"
                )
                self.add("extra", "sequence", f"{self.config.schema}.{name}", f"coalescing sequence left over: {why}")
                quoted = f"{self.schema_q}.{object_names.quote_ident(name)}"
                self.sequence_drops_after.append(f"DROP SEQUENCE IF EXISTS {quoted};")

    def check_queue(self, queue: QueueState, trigger: TriggerState | None, message_name: str) -> None:
        if trigger is None:
            self.add(
                "untriggered_queue",
                "queue",
                queue.name,
                f"table pgmq.{queue.table} has no {message_name} trigger; its messages do not notify",
            )
            return
        label = _trigger_label(trigger)
        if trigger.enabled == "D":
            self.add(
                "untriggered_queue",
                "queue",
                queue.name,
                f"trigger {label} is disabled (ALTER TABLE ... DISABLE TRIGGER); its messages do not notify",
            )
        elif trigger.enabled == "R":
            self.add(
                "untriggered_queue",
                "queue",
                queue.name,
                f"trigger {label} is ENABLE REPLICA: it fires only when session_replication_role = replica",
            )
        self.check_trigger_shape(
            trigger, label, _INSERT, "on_message_insert_v1", queue.expected_args, "new_rows", report_disabled=False
        )

    def check_trigger_shape(
        self,
        trigger: TriggerState,
        label: str,
        tgtype: int,
        function: str,
        args: tuple[str, ...],
        new_table: str | None,
        *,
        report_disabled: bool,
    ) -> None:
        """A ``changed`` finding listing every way ``trigger`` differs from the rendered one.

        A disabled queue trigger is an ``untriggered_queue`` finding instead
        (``report_disabled=False``).
        """
        problems: list[str] = []
        if trigger.tgtype != tgtype:
            problems.append(f"fires {_describe_type(trigger.tgtype)}, expected {_describe_type(tgtype)}")
        want_fn = (self.config.schema, function, "")
        have_fn = (trigger.function_schema, trigger.function_name, trigger.function_arg_types)
        if have_fn != want_fn:
            problems.append(
                f"runs {trigger.function_schema}.{trigger.function_name}({trigger.function_arg_types}), "
                f"expected {self.config.schema}.{function}()"
            )
        problems.extend(_argument_problems(trigger.args, args))
        if trigger.new_table != new_table or trigger.old_table is not None:
            problems.append(
                f"transition tables NEW {trigger.new_table!r} OLD {trigger.old_table!r}, "
                f"expected NEW {new_table!r} OLD None"
            )
        if trigger.has_when:
            problems.append("has a WHEN condition")
        if trigger.has_columns:
            problems.append("is limited to columns (UPDATE OF)")
        if trigger.is_constraint:
            problems.append("is a constraint trigger")
        if trigger.enabled == "A":
            problems.append("is ENABLE ALWAYS, expected plain ENABLE")
        elif report_disabled and trigger.enabled == "D":
            problems.append("is disabled: queue_created is not announced and new queues get no trigger")
        elif report_disabled and trigger.enabled == "R":
            problems.append("is ENABLE REPLICA: it fires only when session_replication_role = replica")
        if problems:
            self.add("changed", "trigger", label, "; ".join(problems))
        self.check_comment("trigger", label, trigger.comment)

    def extra_trigger_detail(self, trigger: TriggerState) -> str:
        if (
            trigger.function_schema == self.config.schema
            and self.config.mode == "wrapper"
            and (trigger.name == object_names.message_trigger_name(self.config))
        ):
            return "mode 'wrapper' puts no trigger on queue tables"
        if trigger.table_schema == "pgmq" and trigger.name == object_names.message_trigger_name(self.config):
            return f"pgmq.{trigger.table} is not the table of a queue in pgmq.meta"
        return f"runs {trigger.function_schema}.{trigger.function_name}(), which this config does not place here"


def _function_difference(want: FunctionState, have: FunctionState) -> str:
    """Where two functions differ, in a few words; "" when they are the same."""
    if want.kind != have.kind:
        return f"kind {have.kind!r}, expected {want.kind!r}"
    if want.arguments != have.arguments:
        return f"arguments ({have.arguments}), expected ({want.arguments})"
    if want.result != have.result:
        return f"returns {have.result}, expected {want.result}"
    if want.definition == have.definition:
        return ""
    want_lines, have_lines = want.definition.splitlines(), have.definition.splitlines()
    # Line numbers count from the CREATE line of pg_get_functiondef's output.
    for number, (w, h) in enumerate(zip(want_lines, have_lines, strict=False), start=2):
        if w != h:
            start = _first_mismatch(w, h)
            return f"line {number} is {_window(h, start)}, expected {_window(w, start)}"
    return f"it has {len(have_lines) + 1} lines, expected {len(want_lines) + 1}"


def _first_mismatch(a: str, b: str) -> int:
    for index, (x, y) in enumerate(zip(a, b, strict=False)):
        if x != y:
            return index
    return min(len(a), len(b))


def _window(line: str, at: int, width: int = 60) -> str:
    """``line`` stripped, cut to ``width`` characters around column ``at``."""
    indent = len(line) - len(line.lstrip())
    text = line.strip()
    at = max(at - indent, 0)
    if len(text) <= width:
        return repr(text)
    begin = max(min(at - width // 3, len(text) - width), 0)
    piece = text[begin : begin + width]
    return repr(("..." if begin else "") + piece + ("..." if begin + width < len(text) else ""))


def _needs_drop(want: FunctionState, have: FunctionState) -> bool:
    """CREATE OR REPLACE cannot change kind, return type, argument names or defaults."""
    return (want.kind, want.arguments, want.result) != (have.kind, have.arguments, have.result)


def _argument_problems(have: tuple[str, ...], want: tuple[str, ...]) -> list[str]:
    if len(have) != len(want):
        return [f"has {len(have)} arguments {have!r}, expected {len(want)} {want!r}"]
    problems = []
    for index, (h, w) in enumerate(zip(have, want, strict=True)):
        if h != w:
            role = _ARG_ROLES[index] if index < len(_ARG_ROLES) else f"argument {index + 1}"
            problems.append(f"{role} argument is {h!r}, expected {w!r}")
    return problems


def _describe_type(tgtype: int) -> str:
    timing = "BEFORE" if tgtype & _BEFORE else "INSTEAD OF" if tgtype & _INSTEAD else "AFTER"
    events = [
        name
        for bit, name in ((_INSERT, "INSERT"), (_DELETE, "DELETE"), (_UPDATE, "UPDATE"), (_TRUNCATE, "TRUNCATE"))
        if tgtype & bit
    ]
    level = "ROW" if tgtype & _ROW else "STATEMENT"
    return f"{timing} {' OR '.join(events) or '(no event)'} FOR EACH {level}"


def _fingerprint_detail(comment: str | None, marker: str) -> str:
    found = object_names.parse_marker(comment)
    if comment is None:
        return f"has no {render.GENERATOR} comment; expected {marker!r}"
    if found:
        what = f"{render.GENERATOR} {found.version} with fingerprint {found.fingerprint}"
        return f"installed by {what}; expected {marker!r}"
    return f"comment is {_window(comment, 0)}; expected {marker!r}"


def _function_ref(fn: FunctionState) -> str:
    return f"{object_names.quote_ident(fn.name)}({fn.arg_types})"


def _trigger_label(trigger: TriggerState) -> str:
    return f"{trigger.name} ON {trigger.table_schema}.{trigger.table}"


def _drop_trigger(trigger: TriggerState) -> str:
    return (
        f"DROP TRIGGER IF EXISTS {object_names.quote_ident(trigger.name)} "
        f"ON {object_names.quote_ident(trigger.table_schema)}.{object_names.quote_ident(trigger.table)};"
    )


def _dedupe(statements: list[str]) -> list[str]:
    return list(dict.fromkeys(statements))
