"""The names of the database objects the generated SQL creates, spelled once.

The templates' render context, rollback, ``diff`` and the runtime's query
catalogue (:mod:`pgmq_runtime.queries`) all read object names from here, so a
renamed function cannot drift between them. Names carry a ``_v1`` suffix so
that a later, different version can be installed beside this one.

The comment on every generated object (:func:`marker`) is also defined here:
``diff`` and :meth:`pgmq_runtime.client.PgmqNotifyClient.health` read it back
with :func:`parse_marker`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from pgmq_runtime.config import PgmqNotifyConfig

VERSION_SUFFIX = "_v1"
GENERATOR = "pgmq-codegen"

# Function names, one constant each: templates, diff and the runtime's queries use these.
EXTRACT_NAMESPACE = "extract_namespace_v1"
NAMESPACE_CHANNEL = "namespace_channel_v1"
ANNOUNCE_MESSAGE = "announce_message_v1"
ANNOUNCE_BATCH = "announce_batch_v1"
ON_MESSAGE_INSERT = "on_message_insert_v1"
ATTACH = "attach_v1"
COALESCE_GATE = "coalesce_gate_v1"
ON_QUEUE_CREATED = "on_queue_created_v1"
READ_SPECIFIC_BATCH = "read_specific_batch_v1"
READ_SPECIFIC = "read_specific_v1"
DELETE_SPECIFIC = "delete_specific_v1"
EXTEND_VT = "extend_vt_v1"
SEND_WITH_NOTIFY = "send_with_notify"
SEND_BATCH_WITH_NOTIFY = "send_batch_with_notify"


@dataclass(frozen=True)
class FunctionSpec:
    """One generated function: its name, argument types and when it exists."""

    name: str
    args: str
    modes: frozenset[str]
    # Also installed, whatever the mode, when the config coalesces notifications.
    coalescing: bool = False

    def signature(self, schema: str) -> str:
        return f"{quote_ident(schema)}.{self.name}({self.args})"

    def installed_for(self, config: PgmqNotifyConfig) -> bool:
        """Whether ``config`` installs this function."""
        return config.mode in self.modes or (self.coalescing and config.coalesce_ms > 0)


_ALL = frozenset({"trigger", "wrapper", "both"})
_TRIGGER = frozenset({"trigger", "both"})
_WRAPPER = frozenset({"wrapper", "both"})

FUNCTIONS: tuple[FunctionSpec, ...] = (
    FunctionSpec(EXTRACT_NAMESPACE, "text", _ALL),
    FunctionSpec(NAMESPACE_CHANNEL, "text", _ALL),
    FunctionSpec(ANNOUNCE_MESSAGE, "text, text, text, bigint, timestamptz, jsonb, jsonb, text", _ALL),
    FunctionSpec(ANNOUNCE_BATCH, "text, text, text, bigint[], timestamptz, text", _ALL),
    FunctionSpec(ON_MESSAGE_INSERT, "", _TRIGGER),
    FunctionSpec(ATTACH, "text", _TRIGGER, coalescing=True),
    FunctionSpec(COALESCE_GATE, "text", frozenset(), coalescing=True),
    FunctionSpec(ON_QUEUE_CREATED, "", _ALL),
    FunctionSpec(READ_SPECIFIC_BATCH, "text, bigint[], integer", _ALL),
    FunctionSpec(READ_SPECIFIC, "text, bigint, integer", _ALL),
    FunctionSpec(DELETE_SPECIFIC, "text, bigint", _ALL),
    FunctionSpec(EXTEND_VT, "text, bigint, integer", _ALL),
    FunctionSpec(SEND_WITH_NOTIFY, "text, jsonb, jsonb, timestamptz", _WRAPPER),
    FunctionSpec(SEND_WITH_NOTIFY, "text, jsonb", _WRAPPER),
    FunctionSpec(SEND_WITH_NOTIFY, "text, jsonb, jsonb", _WRAPPER),
    FunctionSpec(SEND_WITH_NOTIFY, "text, jsonb, integer", _WRAPPER),
    FunctionSpec(SEND_WITH_NOTIFY, "text, jsonb, timestamptz", _WRAPPER),
    FunctionSpec(SEND_WITH_NOTIFY, "text, jsonb, jsonb, integer", _WRAPPER),
    FunctionSpec(SEND_BATCH_WITH_NOTIFY, "text, jsonb[], jsonb[], timestamptz", _WRAPPER),
    FunctionSpec(SEND_BATCH_WITH_NOTIFY, "text, jsonb[]", _WRAPPER),
    FunctionSpec(SEND_BATCH_WITH_NOTIFY, "text, jsonb[], jsonb[]", _WRAPPER),
    FunctionSpec(SEND_BATCH_WITH_NOTIFY, "text, jsonb[], integer", _WRAPPER),
    FunctionSpec(SEND_BATCH_WITH_NOTIFY, "text, jsonb[], timestamptz", _WRAPPER),
    FunctionSpec(SEND_BATCH_WITH_NOTIFY, "text, jsonb[], jsonb[], integer", _WRAPPER),
)

FUNCTION_NAMES: frozenset[str] = frozenset(spec.name for spec in FUNCTIONS)


def quote_ident(name: str) -> str:
    """Double-quote an identifier the way PostgreSQL's quote_ident always may."""
    return '"' + name.replace('"', '""') + '"'


def functions_for(config: PgmqNotifyConfig) -> list[FunctionSpec]:
    """The functions that ``config`` installs."""
    return [f for f in FUNCTIONS if f.installed_for(config)]


def message_trigger_name(config: PgmqNotifyConfig) -> str:
    """Name of the trigger on each queue table (one per schema, so installs can coexist)."""
    return f"{config.schema}_on_insert{VERSION_SUFFIX}"


def coalesce_sequence_prefix() -> str:
    """Per-queue sequences of coalescing are named this plus the queue's table name."""
    return "coalesce_"


def meta_trigger_name(config: PgmqNotifyConfig) -> str:
    """Name of the trigger on ``pgmq.meta`` that announces new queues."""
    return f"{config.schema}_on_queue_created{VERSION_SUFFIX}"


def qualified(config: PgmqNotifyConfig, name: str) -> str:
    """``"schema".name``, ready to paste into SQL."""
    return f"{quote_ident(config.schema)}.{name}"


def marker(version: str, config: PgmqNotifyConfig) -> str:
    """The comment put on every generated object by generator ``version``; ``diff`` reads it back."""
    return f"{GENERATOR} {version} fingerprint={config.fingerprint()}"


_MARKER_RE = re.compile(rf"\A{re.escape(GENERATOR)} (\S+) fingerprint=(\S+)\Z")


@dataclass(frozen=True)
class Marker:
    """What an object's comment says: the generator version and the config fingerprint."""

    version: str
    fingerprint: str


def parse_marker(comment: str | None) -> Marker | None:
    """The version and fingerprint in a generated object's comment; None if it is not ours."""
    match = _MARKER_RE.match(comment or "")
    return Marker(match.group(1), match.group(2)) if match else None
