"""The exception hierarchy shared by the runtime and the code generator."""

from __future__ import annotations

from dataclasses import dataclass


class PgmqNotifyError(Exception):
    """Base class of every error raised by pgmq_runtime and pgmq_codegen."""


@dataclass(frozen=True)
class ConfigProblem:
    """One problem found in a config: the key it concerns and why it is wrong."""

    key: str
    reason: str

    def __str__(self) -> str:
        return f"{self.key}: {self.reason}"


class ConfigError(PgmqNotifyError):
    """A config file or mapping is invalid; ``problems`` lists every problem found."""

    def __init__(self, problems: list[ConfigProblem], source: str | None = None) -> None:
        self.problems = problems
        self.source = source
        where = f" in {source}" if source else ""
        lines = "\n".join(f"  - {p}" for p in problems)
        super().__init__(f"invalid config{where}:\n{lines}")


class PatternError(PgmqNotifyError):
    """A queue naming pattern that cannot be used in both Python and PostgreSQL."""


class DatabaseError(PgmqNotifyError):
    """A database operation failed; the message names the operation and the cause."""


class ConnectionLostError(DatabaseError):
    """The database could not be reached, or the connection dropped (restart, kill, network)."""


class PoolClosedError(DatabaseError):
    """The connection pool (or the client that owns it) is closed."""


class QueueNotFoundError(DatabaseError):
    """A PGMQ queue that an operation names does not exist."""


class MigrationMissingError(DatabaseError):
    """pgmq-codegen's objects are missing from the config's schema: the migration was not run."""


class PgmqNotInstalledError(DatabaseError):
    """PGMQ itself (its ``pgmq`` schema and functions) is not installed in the database."""


class MessageNotSerializableError(PgmqNotifyError, TypeError):
    """A message or its headers cannot be encoded as JSON."""


class ChannelNameError(PgmqNotifyError):
    """A channel name PostgreSQL cannot LISTEN on as given (empty, or over 63 bytes)."""


class ListenerError(PgmqNotifyError):
    """The listener could not connect, or stopped on an unexpected failure."""


class ConsumerError(PgmqNotifyError):
    """A consumer could not act on a message (claim, delete, archive, extend)."""


def describe_error(exc: BaseException, *, with_type: bool = True) -> str:
    """One line for an exception: its class name and the first line of its message.

    The one place the runtime and the CLI flatten an exception for a log line,
    an event's ``reason`` or an error message. ``with_type=False`` leaves the
    class name out (for messages that name the problem themselves, as
    :func:`pgmq_runtime.db.translate` writes them); an empty message is the
    class name either way.
    """
    lines = str(exc).strip().splitlines()
    if not lines:
        return type(exc).__name__
    return f"{type(exc).__name__}: {lines[0]}" if with_type else lines[0]
