"""The one config model: codegen renders SQL from it, the runtime listens with it.

A config is a TOML file (or a mapping). Every key has a default, so an empty
file is valid; a tasker-pgmq CLI config file is valid unchanged. Validation
collects every problem, each with its key and reason, before raising
:class:`~pgmq_runtime.errors.ConfigError`.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import re
import tomllib
from dataclasses import asdict, dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, Literal

from pgmq_runtime import pattern as pattern_mod
from pgmq_runtime.errors import ConfigError, ConfigProblem, PatternError

DEFAULT_CONFIG_FILE = "pgmq-codegen.toml"
NOTIFY_PAYLOAD_LIMIT = 8000
CHANNEL_MAX_BYTES = 63
QUEUE_CREATED = "pgmq_queue_created"
MESSAGE_READY = "pgmq_message_ready"
# A shortened namespace channel ends in "~" and 8 hex digits of the namespace's md5.
_SHORT_SUFFIX_BYTES = 9
MIN_PAYLOAD_SIZE = 1024
MAX_COALESCE_MS = 60_000

Mode = Literal["trigger", "wrapper", "both"]
IncludePayload = Literal["auto", "never"]
MODES: tuple[str, ...] = ("trigger", "wrapper", "both")
INCLUDE_PAYLOAD: tuple[str, ...] = ("auto", "never")

_PREFIX_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_.]*\Z")
_SCHEMA_RE = re.compile(r"[a-z_][a-z0-9_]*\Z")
_RESERVED_SCHEMAS = {"pgmq", "public", "information_schema"}
# Generated object names append at most this many bytes to the schema name.
_SCHEMA_MAX_BYTES = 40


@dataclass(frozen=True)
class MigrationConfig:
    """The ``[migration]`` table (kept from tasker-pgmq's CLI config)."""

    include_rollback: bool = True
    name_prefix: str = "add_pgmq_notifications"


@dataclass(frozen=True)
class PgmqNotifyConfig:
    """Validated settings shared by the generated SQL and the runtime.

    Construct through :meth:`from_mapping` or :func:`load_config` to get
    validation; the plain constructor is for defaults and tests.
    """

    queue_naming_pattern: str = r"(?P<namespace>\w+)_queue"
    channels_prefix: str | None = None
    max_payload_size: int = 7800
    include_metadata: bool = True
    default_namespace: str = "default"
    schema: str = "pgmq_notify"
    mode: Mode = "trigger"
    include_payload: IncludePayload = "auto"
    global_channel: bool = True
    coalesce_ms: int = 0
    migration: MigrationConfig = field(default_factory=MigrationConfig)

    # -- loading -----------------------------------------------------------

    @classmethod
    def from_mapping(cls, data: dict[str, Any], source: str | None = None) -> PgmqNotifyConfig:
        """Validate ``data`` (a parsed TOML document) and build a config."""
        problems: list[ConfigProblem] = []
        values = _check_table(data, _TOP_LEVEL, "", problems)
        migration_data = data.get("migration", {})
        if not isinstance(migration_data, dict):
            problems.append(ConfigProblem("migration", "must be a table ([migration])"))
            migration_data = {}
        migration_values = _check_table(migration_data, _MIGRATION, "migration.", problems)
        # Keys with a wrong type keep their defaults here so that every other
        # problem is still reported in the same run.
        config = cls(**values, migration=MigrationConfig(**migration_values))
        problems.extend(config.problems())
        if problems:
            raise ConfigError(problems, source)
        return config

    @classmethod
    def from_toml(cls, text: str, source: str | None = None) -> PgmqNotifyConfig:
        """Parse and validate TOML text."""
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            reason = f"not valid TOML: {exc}"
            if "escape" in str(exc).lower():
                # "\w" in a double-quoted TOML string is an invalid escape; literal strings keep it.
                reason += (
                    "; write regex patterns in single quotes, which TOML keeps as written: "
                    "queue_naming_pattern = '(?P<namespace>\\w+)_queue'"
                )
            raise ConfigError([ConfigProblem("(file)", reason)], source) from exc
        return cls.from_mapping(data, source)

    @classmethod
    def from_file(cls, path: str | Path) -> PgmqNotifyConfig:
        """Read, parse and validate a TOML config file."""
        p = Path(path)
        try:
            text = p.read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError([ConfigProblem("(file)", f"cannot read {p}: {exc.strerror}")], str(p)) from exc
        return cls.from_toml(text, str(p))

    # -- validation --------------------------------------------------------

    def problems(self) -> list[ConfigProblem]:
        """Every semantic problem of this config (types are checked on loading)."""
        found: list[ConfigProblem] = []
        try:
            pattern_mod.translate(self.queue_naming_pattern)
        except PatternError as exc:
            found.append(ConfigProblem("queue_naming_pattern", str(exc)))
        prefix = self.channels_prefix
        if prefix is not None:
            budget = CHANNEL_MAX_BYTES - len(f".{MESSAGE_READY}.") - _SHORT_SUFFIX_BYTES - 1
            if not _PREFIX_RE.match(prefix):
                found.append(
                    ConfigProblem(
                        "channels_prefix",
                        f"{prefix!r} must start with a letter or '_' and hold only letters, digits, '_' and '.'",
                    )
                )
            elif len(prefix.encode()) > budget:
                found.append(
                    ConfigProblem(
                        "channels_prefix",
                        f"is {len(prefix.encode())} bytes; at most {budget} leave room for namespace "
                        f"channels within PostgreSQL's {CHANNEL_MAX_BYTES}-byte channel names",
                    )
                )
        if not 0 < self.max_payload_size < NOTIFY_PAYLOAD_LIMIT:
            found.append(
                ConfigProblem(
                    "max_payload_size",
                    f"is {self.max_payload_size}; it must be below {NOTIFY_PAYLOAD_LIMIT} bytes, "
                    "PostgreSQL's NOTIFY payload limit",
                )
            )
        elif self.max_payload_size < MIN_PAYLOAD_SIZE:
            found.append(
                ConfigProblem(
                    "max_payload_size",
                    f"is {self.max_payload_size}; at least {MIN_PAYLOAD_SIZE} bytes are needed "
                    "to carry a signal event for the longest queue name",
                )
            )
        if not _SCHEMA_RE.match(self.schema):
            found.append(
                ConfigProblem(
                    "schema", f"{self.schema!r} must be lower case letters, digits and '_', not starting with a digit"
                )
            )
        elif len(self.schema) > _SCHEMA_MAX_BYTES:
            found.append(ConfigProblem("schema", f"is longer than {_SCHEMA_MAX_BYTES} bytes"))
        elif self.schema in _RESERVED_SCHEMAS or self.schema.startswith("pg_"):
            found.append(
                ConfigProblem(
                    "schema", f"{self.schema!r} is reserved; pgmq-codegen owns its schema and drops it on rollback"
                )
            )
        if not self.default_namespace:
            found.append(ConfigProblem("default_namespace", "must not be empty"))
        elif any(ord(ch) < 32 or ord(ch) == 127 for ch in self.default_namespace):
            found.append(ConfigProblem("default_namespace", "must not contain control characters such as newlines"))
        elif prefix is None or _PREFIX_RE.match(prefix):
            channel = self._namespace_channel_unshortened(self.default_namespace)
            if len(channel.encode()) > CHANNEL_MAX_BYTES:
                found.append(
                    ConfigProblem(
                        "default_namespace",
                        f"its channel {channel!r} is {len(channel.encode())} bytes, over PostgreSQL's "
                        f"{CHANNEL_MAX_BYTES}-byte limit",
                    )
                )
        if not 0 <= self.coalesce_ms <= MAX_COALESCE_MS:
            found.append(
                ConfigProblem(
                    "coalesce_ms",
                    f"is {self.coalesce_ms}; it must be between 0 (off) and {MAX_COALESCE_MS} milliseconds",
                )
            )
        if self.mode not in MODES:
            found.append(ConfigProblem("mode", _choice_reason(self.mode, MODES)))
        if self.include_payload not in INCLUDE_PAYLOAD:
            found.append(ConfigProblem("include_payload", _choice_reason(self.include_payload, INCLUDE_PAYLOAD)))
        if not self.migration.name_prefix or not re.fullmatch(r"[A-Za-z0-9_]+", self.migration.name_prefix):
            found.append(
                ConfigProblem("migration.name_prefix", "must be non-empty and hold only letters, digits and '_'")
            )
        return found

    # -- channels and namespaces (mirrors the generated SQL) ----------------

    @cached_property
    def translated_pattern(self) -> pattern_mod.TranslatedPattern:
        """The naming pattern in its Python and PostgreSQL spellings."""
        return pattern_mod.translate(self.queue_naming_pattern)

    @cached_property
    def _compiled(self) -> re.Pattern[str]:
        return self.translated_pattern.compiled()

    def extract_namespace(self, queue_name: str) -> str:
        """The namespace of ``queue_name``: the pattern's group, else the default."""
        match = self._compiled.search(queue_name)
        found = match.group(1) if match else None
        return found or self.default_namespace

    def _channel(self, name: str) -> str:
        return f"{self.channels_prefix}.{name}" if self.channels_prefix else name

    def queue_created_channel(self) -> str:
        """Channel of ``queue_created`` events."""
        return self._channel(QUEUE_CREATED)

    def global_message_ready_channel(self) -> str:
        """Channel that carries every message event (when ``global_channel``)."""
        return self._channel(MESSAGE_READY)

    def _namespace_channel_unshortened(self, namespace: str) -> str:
        return f"{self._channel(MESSAGE_READY)}.{namespace}"

    def message_ready_channel(self, namespace: str) -> str:
        """Channel of one namespace's message events.

        A namespace whose channel would pass 63 bytes is cut on a character
        boundary and suffixed with ``~`` and 8 hex digits of its md5, exactly as
        the generated SQL does, so NOTIFY never fails and LISTEN never truncates.
        """
        channel = self._namespace_channel_unshortened(namespace)
        if len(channel.encode()) <= CHANNEL_MAX_BYTES:
            return channel
        digest = hashlib.md5(namespace.encode()).hexdigest()[:8]
        base = f"{self._channel(MESSAGE_READY)}."
        room = CHANNEL_MAX_BYTES - len(base.encode()) - _SHORT_SUFFIX_BYTES
        cut = namespace
        while len(cut.encode()) > room:
            cut = cut[:-1]
        return f"{base}{cut}~{digest}"

    def channels_for_queue(self, queue_name: str) -> list[str]:
        """The message channels an event of ``queue_name`` is sent on."""
        channels = [self.message_ready_channel(self.extract_namespace(queue_name))]
        if self.global_channel:
            channels.append(self.global_message_ready_channel())
        return channels

    # -- identity ----------------------------------------------------------

    def fingerprint(self) -> str:
        """A short hash of every setting that changes the generated SQL."""
        settings = asdict(self)
        settings.pop("migration")
        canonical = json.dumps(settings, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()[:16]


_Spec = dict[str, tuple[type | tuple[type, ...], str]]
_TOP_LEVEL: _Spec = {
    "queue_naming_pattern": (str, "a string"),
    "channels_prefix": (str, "a string"),
    "max_payload_size": (int, "an integer"),
    "include_metadata": (bool, "true or false"),
    "default_namespace": (str, "a string"),
    "schema": (str, "a string"),
    "mode": (str, "a string"),
    "include_payload": (str, "a string"),
    "global_channel": (bool, "true or false"),
    "coalesce_ms": (int, "an integer"),
}
_MIGRATION: _Spec = {
    "include_rollback": (bool, "true or false"),
    "name_prefix": (str, "a string"),
}


def _check_table(data: dict[str, Any], spec: _Spec, prefix: str, problems: list[ConfigProblem]) -> dict[str, Any]:
    """Type-check one TOML table; report unknown keys with a suggestion."""
    known = set(spec) | ({"migration"} if spec is _TOP_LEVEL else set())
    values: dict[str, Any] = {}
    for key, value in data.items():
        if key not in known:
            close = difflib.get_close_matches(key, sorted(known), n=1, cutoff=0.6)
            hint = f"; did you mean '{prefix}{close[0]}'?" if close else f"; known keys: {', '.join(sorted(known))}"
            problems.append(ConfigProblem(f"{prefix}{key}", f"unknown key{hint}"))
            continue
        if key == "migration" and spec is _TOP_LEVEL:
            continue
        expected, described = spec[key]
        # bool is an int in Python; keep them apart.
        if (isinstance(value, bool) and expected is not bool) or not isinstance(value, expected):
            problems.append(
                ConfigProblem(f"{prefix}{key}", f"must be {described}, got {type(value).__name__} {value!r}")
            )
            continue
        values[key] = value
    return values


def _choice_reason(value: str, choices: tuple[str, ...]) -> str:
    close = difflib.get_close_matches(value, choices, n=1, cutoff=0.5)
    hint = f"; did you mean '{close[0]}'?" if close else ""
    return f"{value!r} is not one of {', '.join(repr(c) for c in choices)}{hint}"


def load_config(path: str | Path | None = None) -> PgmqNotifyConfig:
    """Load ``path``; without one, ``pgmq-codegen.toml`` if present, else the defaults."""
    if path is not None:
        return PgmqNotifyConfig.from_file(path)
    default = Path(DEFAULT_CONFIG_FILE)
    if default.is_file():
        return PgmqNotifyConfig.from_file(default)
    return PgmqNotifyConfig()
