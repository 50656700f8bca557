"""The catalogue of database objects the generated SQL creates.

Render, rollback and ``diff`` all read object names from here, so a name is
spelled in one place. Names carry a ``_v1`` suffix so that a later, different
version can be installed beside this one.
"""

from __future__ import annotations

from dataclasses import dataclass

from pgmq_runtime.config import PgmqNotifyConfig

VERSION_SUFFIX = "_v1"


@dataclass(frozen=True)
class FunctionSpec:
    """One generated function: its name, argument types and when it exists."""

    name: str
    args: str
    modes: frozenset[str]
    # Also installed, whatever the mode, when the config coalesces notifications.
    coalescing: bool = False
    # Runs inside other roles' PGMQ calls (pgmq.create, pgmq.send, pgmq.drop_queue):
    # EXECUTE is granted to PUBLIC explicitly, so hardened default privileges
    # (ALTER DEFAULT PRIVILEGES ... REVOKE EXECUTE ON FUNCTIONS FROM PUBLIC) cannot break them.
    public: bool = False

    def signature(self, schema: str) -> str:
        return f"{quote_ident(schema)}.{self.name}({self.args})"

    def installed_for(self, config: PgmqNotifyConfig) -> bool:
        """Whether ``config`` installs this function."""
        return config.mode in self.modes or (self.coalescing and config.coalesce_ms > 0)


_ALL = frozenset({"trigger", "wrapper", "both"})
_TRIGGER = frozenset({"trigger", "both"})
_WRAPPER = frozenset({"wrapper", "both"})

FUNCTIONS: tuple[FunctionSpec, ...] = (
    FunctionSpec("extract_namespace_v1", "text", _ALL, public=True),
    FunctionSpec("namespace_channel_v1", "text", _ALL, public=True),
    FunctionSpec("announce_message_v1", "text, text, text, bigint, timestamptz, jsonb, jsonb, text", _ALL, public=True),
    FunctionSpec("announce_batch_v1", "text, text, text, bigint[], timestamptz, text", _ALL, public=True),
    FunctionSpec("on_message_insert_v1", "", _TRIGGER, public=True),
    FunctionSpec("attach_v1", "text", _TRIGGER, coalescing=True, public=True),
    FunctionSpec("coalesce_gate_v1", "text", frozenset(), coalescing=True, public=True),
    FunctionSpec("coalesce_sequence_v1", "text", frozenset(), coalescing=True, public=True),
    FunctionSpec("on_queue_created_v1", "", _ALL, public=True),
    FunctionSpec("on_queue_dropped_v1", "", _ALL, public=True),
    FunctionSpec("read_specific_batch_v1", "text, bigint[], integer", _ALL),
    FunctionSpec("read_specific_v1", "text, bigint, integer", _ALL),
    FunctionSpec("delete_specific_v1", "text, bigint", _ALL),
    FunctionSpec("extend_vt_v1", "text, bigint, integer", _ALL),
    FunctionSpec("queue_spelling_v1", "text", frozenset({"wrapper"})),
    FunctionSpec("send_with_notify", "text, jsonb, jsonb, timestamptz", _WRAPPER),
    FunctionSpec("send_with_notify", "text, jsonb", _WRAPPER),
    FunctionSpec("send_with_notify", "text, jsonb, jsonb", _WRAPPER),
    FunctionSpec("send_with_notify", "text, jsonb, integer", _WRAPPER),
    FunctionSpec("send_with_notify", "text, jsonb, timestamptz", _WRAPPER),
    FunctionSpec("send_with_notify", "text, jsonb, jsonb, integer", _WRAPPER),
    FunctionSpec("send_batch_with_notify", "text, jsonb[], jsonb[], timestamptz", _WRAPPER),
    FunctionSpec("send_batch_with_notify", "text, jsonb[]", _WRAPPER),
    FunctionSpec("send_batch_with_notify", "text, jsonb[], jsonb[]", _WRAPPER),
    FunctionSpec("send_batch_with_notify", "text, jsonb[], integer", _WRAPPER),
    FunctionSpec("send_batch_with_notify", "text, jsonb[], timestamptz", _WRAPPER),
    FunctionSpec("send_batch_with_notify", "text, jsonb[], jsonb[], integer", _WRAPPER),
)


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


def meta_drop_trigger_name(config: PgmqNotifyConfig) -> str:
    """Name of the trigger on ``pgmq.meta`` that removes what we added for a dropped queue."""
    return f"{config.schema}_on_queue_dropped{VERSION_SUFFIX}"


def qualified(config: PgmqNotifyConfig, name: str) -> str:
    """``"schema".name``, ready to paste into SQL."""
    return f"{quote_ident(config.schema)}.{name}"
