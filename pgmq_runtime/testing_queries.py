"""How :class:`pgmq_runtime.testing.FakePgmq` answers each named query of :mod:`pgmq_runtime.queries`."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from psycopg.types.json import Jsonb

from pgmq_codegen import __version__ as GENERATOR_VERSION
from pgmq_runtime import object_names
from pgmq_runtime.db import Row
from pgmq_runtime.errors import MigrationMissingError

if TYPE_CHECKING:
    from pgmq_runtime.testing import FakePgmq, FakeQueue, _Stored


def _row(queue: FakeQueue, m: _Stored) -> Row:
    return {
        "msg_id": m.msg_id,
        "read_ct": m.read_ct,
        "enqueued_at": m.enqueued_at,
        "vt": m.vt,
        "message": m.message,
        "headers": m.headers,
    }


def _claim(queue: FakeQueue, found: list[_Stored], vt: int) -> list[Row]:
    now = datetime.now(UTC)
    for m in found:
        m.vt = now + timedelta(seconds=vt)
        m.read_ct += 1
    return [_row(queue, m) for m in found]


def _read(fake: FakePgmq, p: dict[str, Any]) -> list[Row]:
    queue = fake._existing(p["queue"])
    return _claim(queue, queue.visible(datetime.now(UTC))[: p["qty"]], p["vt"])


def _read_grouped_head(fake: FakePgmq, p: dict[str, Any]) -> list[Row]:
    """PGMQ's FIFO read: the oldest message of each ``x-pgmq-group``, if no message of that group is claimed."""
    queue = fake._existing(p["queue"])
    now = datetime.now(UTC)

    def group(m: _Stored) -> Any:
        return m.headers.get("x-pgmq-group") if isinstance(m.headers, dict) else None

    heads: dict[Any, _Stored] = {}
    for m in sorted(queue.messages.values(), key=lambda m: m.msg_id):
        heads.setdefault(group(m), m)
    found = [m for m in heads.values() if m.vt <= now][: p["qty"]]
    return _claim(queue, found, p["vt"])


def _claim_ids(fake: FakePgmq, p: dict[str, Any]) -> list[Row]:
    queue = fake._existing(p["queue"])
    wanted = set(p["ids"])
    return _claim(queue, [m for m in queue.visible(datetime.now(UTC)) if m.msg_id in wanted], p["vt"])


def _claim_ids_without_body(fake: FakePgmq, p: dict[str, Any]) -> list[Row]:
    return [{k: r[k] for k in ("msg_id", "read_ct", "enqueued_at", "vt")} for r in _claim_ids(fake, p)]


def _read_specific(fake: FakePgmq, p: dict[str, Any]) -> list[Row]:
    return _claim_ids(fake, {**p, "ids": [p["msg_id"]]})


def _pop(fake: FakePgmq, p: dict[str, Any]) -> list[Row]:
    queue = fake._existing(p["queue"])
    found = queue.visible(datetime.now(UTC))[: p["qty"]]
    for m in found:
        del queue.messages[m.msg_id]
    return [_row(queue, m) for m in found]


def _remove(fake: FakePgmq, p: dict[str, Any], archive: bool) -> list[int]:
    queue = fake._existing(p["queue"])
    done = []
    for msg_id in p["ids"] if "ids" in p else [p["msg_id"]]:
        stored = queue.messages.pop(msg_id, None)
        if stored is not None:
            done.append(msg_id)
            if archive:
                queue.archived[msg_id] = stored
    return done


def _set_vt(fake: FakePgmq, p: dict[str, Any]) -> list[Row]:
    queue = fake._existing(p["queue"])
    now = datetime.now(UTC)
    found = [queue.messages[i] for i in p["ids"] if i in queue.messages]
    for m in found:
        m.vt = now + timedelta(seconds=p["vt"])
    return [_row(queue, m) for m in found]


def _set_vt_at(fake: FakePgmq, p: dict[str, Any], vt: datetime, columns: tuple[str, ...]) -> list[Row]:
    queue = fake._existing(p["queue"])
    found = [queue.messages[i] for i in (p["ids"] if "ids" in p else [p["msg_id"]]) if i in queue.messages]
    for m in found:
        m.vt = vt
    return [{k: v for k, v in _row(queue, m).items() if k in columns} for m in found]


def _hand_back(fake: FakePgmq, p: dict[str, Any]) -> list[Row]:
    return _set_vt_at(fake, p, datetime.now(UTC), ("msg_id",))


def _extend_many(fake: FakePgmq, p: dict[str, Any]) -> list[Row]:
    return _set_vt_at(fake, p, datetime.now(UTC) + timedelta(seconds=p["vt"]), ("msg_id", "vt"))


def _retry_later(fake: FakePgmq, p: dict[str, Any]) -> list[Row]:
    return _set_vt_at(fake, p, datetime.now(UTC) + timedelta(seconds=p["delay"]), ("msg_id",))


def _json_param(value: Any) -> Any:
    """A jsonb parameter: a psycopg ``Jsonb`` wrapper, JSON text, or None."""
    if value is None or isinstance(value, Jsonb):
        return None if value is None else value.obj
    return json.loads(value)


def _dead_letter(fake: FakePgmq, p: dict[str, Any]) -> list[Row]:
    target = fake._existing(p["target"])
    if not _remove(fake, p, archive=False):
        return []
    return [{"msg_id": fake.send(target.name, _json_param(p["message"]), _json_param(p["headers"]))}]


def _extend_vt(fake: FakePgmq, p: dict[str, Any]) -> list[Row]:
    stored = fake._existing(p["queue"]).messages.get(p["msg_id"])
    if stored is None:
        return [{"vt": None}]
    stored.vt = max(stored.vt, datetime.now(UTC)) + timedelta(seconds=p["seconds"])
    return [{"vt": stored.vt}]


def _needs_wrappers(fake: FakePgmq) -> None:
    if fake.config.mode == "trigger":
        raise MigrationMissingError(
            f"function {fake.config.schema}.send_with_notify does not exist (FakePgmq in mode 'trigger')"
        )


def _send(fake: FakePgmq, p: dict[str, Any], source: str = "trigger") -> list[Row]:
    queue = fake._existing(p["queue"])
    headers = None if p["headers"] is None else json.loads(p["headers"])
    msg_id = fake.send(queue.name, json.loads(p["message"]), headers, p["delay"], source=source)
    return [{"msg_id": msg_id}]


def _send_with_notify(fake: FakePgmq, p: dict[str, Any]) -> list[Row]:
    _needs_wrappers(fake)
    return _send(fake, p, "wrapper" if fake.config.mode == "wrapper" else "trigger")


def _send_batch(fake: FakePgmq, p: dict[str, Any], source: str = "trigger") -> list[Row]:
    queue = fake._existing(p["queue"])
    messages = [json.loads(m) for m in p["messages"]]
    headers = None if p["headers"] is None else [None if h is None else json.loads(h) for h in p["headers"]]
    ids = fake.send_batch(queue.name, messages, p["delay"], headers=headers, source=source)
    return [{"msg_id": i} for i in ids]


def _send_batch_with_notify(fake: FakePgmq, p: dict[str, Any]) -> list[Row]:
    _needs_wrappers(fake)
    return _send_batch(fake, p, "wrapper" if fake.config.mode == "wrapper" else "trigger")


def _create(fake: FakePgmq, p: dict[str, Any], unlogged: bool = False) -> list[Row]:
    if p["queue"].lower() not in fake.queues:
        fake.create_queue(p["queue"])
        fake.queue(p["queue"]).unlogged = unlogged
    return []


def _purge(fake: FakePgmq, p: dict[str, Any]) -> list[Row]:
    queue = fake._existing(p["queue"])
    count = len(queue.messages)
    queue.messages.clear()
    return [{"purged": count}]


def _drop(fake: FakePgmq, p: dict[str, Any]) -> list[Row]:
    return [{"dropped": fake.queues.pop(p["queue"].lower(), None) is not None}]


def _list_queues(fake: FakePgmq, p: dict[str, Any]) -> list[Row]:
    return [
        {"queue_name": q.name, "is_partitioned": False, "is_unlogged": q.unlogged, "created_at": q.created_at}
        for q in sorted(fake.queues.values(), key=lambda q: q.name)
    ]


def _metrics(fake: FakePgmq, p: dict[str, Any]) -> list[Row]:
    queue = fake._existing(p["queue"])
    now = datetime.now(UTC)
    ages = [int((now - m.enqueued_at).total_seconds()) for m in queue.messages.values()]
    return [
        {
            "queue_name": queue.name,
            "queue_length": len(queue.messages),
            "newest_msg_age_sec": min(ages) if ages else None,
            "oldest_msg_age_sec": max(ages) if ages else None,
            "total_messages": queue.sent,
            "scrape_time": now,
        }
    ]


def _health(fake: FakePgmq, p: dict[str, Any]) -> list[Row]:
    return [
        {
            "pgmq_installed": True,
            "pgmq_version": None,
            "schema_comment": object_names.marker(GENERATOR_VERSION, fake.config),
            "has_topics": False,
            "notification_queue_usage": 0.0,
        }
    ]


def _installed_functions(fake: FakePgmq, p: dict[str, Any]) -> list[Row]:
    comment = object_names.marker(GENERATOR_VERSION, fake.config)
    specs = object_names.functions_for(fake.config)
    return [{"name": f.name, "args": f.catalog_args, "comment": comment} for f in specs]


HANDLERS: dict[str, Callable[[FakePgmq, dict[str, Any]], list[Row]]] = {
    "ping": lambda fake, p: [{"ok": 1}],
    "server_clock": lambda fake, p: [{"epoch": time.time()}],
    "claims_without_flush": lambda fake, p: [],
    "read": _read,
    "read_grouped_head": _read_grouped_head,
    "claim_ids": _claim_ids,
    "claim_ids_without_body": _claim_ids_without_body,
    "read_specific": _read_specific,
    "pop": _pop,
    "delete": lambda fake, p: [{"done": bool(_remove(fake, p, archive=False))}],
    "delete_many": lambda fake, p: [{"msg_id": i} for i in _remove(fake, p, archive=False)],
    "archive": lambda fake, p: [{"done": bool(_remove(fake, p, archive=True))}],
    "archive_many": lambda fake, p: [{"msg_id": i} for i in _remove(fake, p, archive=True)],
    "set_vt": _set_vt,
    "extend_vt": _extend_vt,
    "hand_back": _hand_back,
    "extend_many": _extend_many,
    "retry_later": _retry_later,
    "dead_letter": _dead_letter,
    "pgmq_installed": lambda fake, p: [{"installed": True}],
    "queue_exists": lambda fake, p: [{"present": p["queue"].lower() in fake.queues}],
    "send": _send,
    "send_with_notify": _send_with_notify,
    "send_batch": _send_batch,
    "send_batch_with_notify": _send_batch_with_notify,
    "create": _create,
    "create_unlogged": lambda fake, p: _create(fake, p, unlogged=True),
    "purge_queue": _purge,
    "drop_queue": _drop,
    "list_queues": _list_queues,
    "queue_names": lambda fake, p: [{"queue_name": q["queue_name"]} for q in _list_queues(fake, p)],
    "metrics": _metrics,
    "health": _health,
    "installed_functions": _installed_functions,
}
