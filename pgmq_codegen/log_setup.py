"""Where the CLI's log records go: ``--log-level`` and ``--log-format text|json``.

The libraries (``pgmq_runtime``, ``pgmq_codegen``) only create loggers; this
module, called by the command line alone, installs the one handler on the root
logger: stderr, as readable lines or as one JSON object per line for log
shippers. :func:`hoist` lets the two options follow the verb too
(``pgmq-codegen worker ... --log-level info``).
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from enum import StrEnum
from typing import IO, Any


class LogLevel(StrEnum):
    """The levels an operator picks from."""

    debug = "debug"
    info = "info"
    warning = "warning"
    error = "error"


class LogFormat(StrEnum):
    """``text``: one readable line per record; ``json``: one JSON object per line."""

    text = "text"
    json = "json"


# Attributes every LogRecord has; anything else was passed with ``extra=`` and goes into the JSON.
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime", "taskName"}
TEXT_FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time (UTC, ISO 8601), level, logger, message, extras, exception."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        entry.update({k: v for k, v in vars(record).items() if k not in _STANDARD and not k.startswith("_")})
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str, ensure_ascii=False)


class _CliHandler(logging.StreamHandler[IO[str]]):
    """Marks the handler this module installed, so configuring again replaces it."""


def configure(
    level: LogLevel | str = LogLevel.warning, fmt: LogFormat | str = LogFormat.text, stream: IO[str] | None = None
) -> logging.Handler:
    """Send log records of ``level`` and above to ``stream`` (default stderr) in ``fmt``; returns the handler."""
    level_name = LogLevel(level).value.upper()
    handler = _CliHandler(stream if stream is not None else sys.stderr)
    handler.setFormatter(JsonFormatter() if LogFormat(fmt) is LogFormat.json else logging.Formatter(TEXT_FORMAT))
    root = logging.getLogger()
    for old in [h for h in root.handlers if isinstance(h, _CliHandler)]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level_name)
    return handler


_OPTIONS = ("--log-level", "--log-format")


def hoist(args: list[str]) -> list[str]:
    """Move ``--log-level X`` and ``--log-format X`` (or ``=X``) given after the verb before it."""
    cut = args.index("--") if "--" in args else len(args)
    head, tail = args[:cut], args[cut:]
    moved: list[str] = []
    rest: list[str] = []
    i = 0
    while i < len(head):
        arg = head[i]
        if arg in _OPTIONS and i + 1 < len(head):
            moved += head[i : i + 2]
            i += 2
            continue
        if arg.split("=", 1)[0] in _OPTIONS and "=" in arg:
            moved.append(arg)
        else:
            rest.append(arg)
        i += 1
    return [*moved, *rest, *tail]
