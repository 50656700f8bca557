"""Every SQL statement the runtime sends, by name, next to the generated objects' names.

Listener, consumer and client run these through :mod:`pgmq_runtime.db`;
:class:`pgmq_runtime.testing.FakePgmq` answers the same names in memory. A
query's text may hold ``{name}`` slots: a slot named after a generated
function (:data:`pgmq_runtime.object_names.FUNCTION_NAMES`) becomes that
function, qualified with the config's schema; any other slot is an identifier
the caller gives (a channel). Values are always ``%(name)s`` parameters.
"""

from __future__ import annotations

import functools
import string
from dataclasses import dataclass

from psycopg import sql

from pgmq_runtime import object_names as on


@dataclass(frozen=True)
class Query:
    """One named statement of the runtime."""

    name: str
    text: str

    @functools.cached_property
    def slots(self) -> frozenset[str]:
        """The ``{name}`` slots of the text."""
        return frozenset(field for _, field, _, _ in string.Formatter().parse(self.text) if field)

    def compose(self, schema: str, **identifiers: str) -> sql.Composed:
        """The statement for ``schema``; ``identifiers`` fill the slots that are not functions."""
        values: dict[str, sql.Composable] = {}
        for slot in self.slots:
            if slot in identifiers:
                values[slot] = sql.Identifier(identifiers[slot])
            elif slot in on.FUNCTION_NAMES:
                values[slot] = sql.Identifier(schema, slot)
            else:
                raise KeyError(f"query {self.name!r} needs identifier {slot!r}")
        return sql.SQL(self.text).format(**values)


_MESSAGE = "msg_id, read_ct, enqueued_at, vt, message, headers"

QUERIES: dict[str, Query] = {
    q.name: q
    for q in (
        # -- connections and LISTEN ----------------------------------------
        Query("ping", "SELECT 1 AS ok"),
        Query("claims_without_flush", "SET synchronous_commit = off"),
        Query("server_clock", "SELECT extract(epoch FROM clock_timestamp())::float8 AS epoch"),
        Query("listen", "LISTEN {channel}"),
        Query("unlisten", "UNLISTEN {channel}"),
        Query("notify", "SELECT pg_notify(%(channel)s, %(payload)s)"),
        # -- claiming (consumer and client) --------------------------------
        Query(
            "read",
            f"SELECT {_MESSAGE} FROM pgmq.read(%(queue)s::text, %(vt)s::integer, %(qty)s::integer)",
        ),
        Query(
            "read_grouped_head",
            f"SELECT {_MESSAGE} FROM pgmq.read_grouped_head(%(queue)s::text, %(vt)s::integer, %(qty)s::integer)",
        ),
        Query(
            "claim_ids",
            f"SELECT {_MESSAGE} FROM {{{on.READ_SPECIFIC_BATCH}}}(%(queue)s::text, %(ids)s::bigint[], %(vt)s::integer)",
        ),
        Query(
            "claim_ids_without_body",
            "SELECT msg_id, read_ct, enqueued_at, vt "
            f"FROM {{{on.READ_SPECIFIC_BATCH}}}(%(queue)s::text, %(ids)s::bigint[], %(vt)s::integer)",
        ),
        Query(
            "read_specific",
            f"SELECT {_MESSAGE} FROM {{{on.READ_SPECIFIC}}}(%(queue)s::text, %(msg_id)s::bigint, %(vt)s::integer)",
        ),
        Query("pop", f"SELECT {_MESSAGE} FROM pgmq.pop(%(queue)s::text, %(qty)s::integer)"),
        Query("delete", "SELECT pgmq.delete(%(queue)s::text, %(msg_id)s::bigint) AS done"),
        Query("delete_many", "SELECT msg_id FROM pgmq.delete(%(queue)s::text, %(ids)s::bigint[]) AS d(msg_id)"),
        Query("archive", "SELECT pgmq.archive(%(queue)s::text, %(msg_id)s::bigint) AS done"),
        Query("archive_many", "SELECT msg_id FROM pgmq.archive(%(queue)s::text, %(ids)s::bigint[]) AS a(msg_id)"),
        Query(
            "extend_vt",
            f"SELECT vt FROM {{{on.EXTEND_VT}}}(%(queue)s::text, %(msg_id)s::bigint, %(seconds)s::integer)",
        ),
        Query(
            "set_vt",
            f"SELECT {_MESSAGE} FROM pgmq.set_vt(%(queue)s::text, %(ids)s::bigint[], %(vt)s::integer)",
        ),
        # -- the worker: hand-backs, heartbeats, retries, giving up (consumer's control connection)
        Query("hand_back", "SELECT msg_id FROM pgmq.set_vt(%(queue)s::text, %(ids)s::bigint[], 0)"),
        Query("extend_many", "SELECT msg_id, vt FROM pgmq.set_vt(%(queue)s::text, %(ids)s::bigint[], %(vt)s::integer)"),
        Query(
            # Visible again after a backoff of %(delay)s seconds (fractions allowed).
            "retry_later",
            "SELECT msg_id FROM pgmq.set_vt(%(queue)s::text, %(msg_id)s::bigint, "
            "clock_timestamp() + make_interval(secs => %(delay)s))",
        ),
        Query(
            # Delete from the queue and send to the dead-letter queue in one statement: no copy if it was gone.
            "dead_letter",
            "WITH gone AS MATERIALIZED (SELECT pgmq.delete(%(queue)s::text, %(msg_id)s::bigint) AS deleted) "
            "SELECT pgmq.send(%(target)s::text, %(message)s::jsonb, %(headers)s::jsonb) AS msg_id "
            "FROM gone WHERE gone.deleted",
        ),
        Query("pgmq_installed", "SELECT to_regclass('pgmq.meta') IS NOT NULL AS installed"),
        Query("queue_exists", "SELECT EXISTS (SELECT 1 FROM pgmq.meta WHERE queue_name = %(queue)s) AS present"),
        # -- sending (client) ----------------------------------------------
        Query(
            "send",
            "SELECT msg_id FROM pgmq.send(%(queue)s::text, %(message)s::jsonb, %(headers)s::jsonb, "
            "%(delay)s::integer) AS s(msg_id)",
        ),
        Query(
            "send_with_notify",
            f"SELECT msg_id FROM {{{on.SEND_WITH_NOTIFY}}}(%(queue)s::text, %(message)s::jsonb, "
            "%(headers)s::jsonb, %(delay)s::integer) AS s(msg_id)",
        ),
        Query(
            "send_batch",
            "SELECT msg_id FROM pgmq.send_batch(%(queue)s::text, %(messages)s::jsonb[], %(headers)s::jsonb[], "
            "%(delay)s::integer) AS s(msg_id)",
        ),
        Query(
            "send_batch_with_notify",
            f"SELECT msg_id FROM {{{on.SEND_BATCH_WITH_NOTIFY}}}(%(queue)s::text, %(messages)s::jsonb[], "
            "%(headers)s::jsonb[], %(delay)s::integer) AS s(msg_id)",
        ),
        Query(
            "send_topic",
            "SELECT pgmq.send_topic(%(routing_key)s::text, %(message)s::jsonb, %(headers)s::jsonb, "
            "%(delay)s::integer) AS matched",
        ),
        Query(
            # PGMQ's send_topic, with each bound queue's send going through the wrapper
            # (wrapper mode has no trigger): the queues that pgmq.test_routing matches, once each.
            "send_topic_with_notify",
            "SELECT count(*)::integer AS matched"
            " FROM (SELECT DISTINCT r.queue_name FROM pgmq.test_routing(%(routing_key)s::text) AS r) AS b,"
            f" LATERAL {{{on.SEND_WITH_NOTIFY}}}(b.queue_name, %(message)s::jsonb, %(headers)s::jsonb,"
            " %(delay)s::integer) AS s(msg_id)",
        ),
        # -- queue management (client) -------------------------------------
        Query("create", "SELECT pgmq.create(%(queue)s::text)"),
        Query("create_unlogged", "SELECT pgmq.create_unlogged(%(queue)s::text)"),
        Query(
            "create_partitioned",
            "SELECT pgmq.create_partitioned(%(queue)s::text, %(partition_interval)s::text, "
            "%(retention_interval)s::text)",
        ),
        Query("purge_queue", "SELECT pgmq.purge_queue(%(queue)s::text) AS purged"),
        Query("drop_queue", "SELECT pgmq.drop_queue(%(queue)s::text) AS dropped"),
        Query(
            "list_queues",
            "SELECT queue_name, is_partitioned, is_unlogged, created_at FROM pgmq.list_queues() ORDER BY queue_name",
        ),
        Query("queue_names", "SELECT queue_name FROM pgmq.meta ORDER BY queue_name"),
        Query(
            "metrics",
            "SELECT queue_name, queue_length, newest_msg_age_sec, oldest_msg_age_sec, total_messages, scrape_time "
            "FROM pgmq.metrics(%(queue)s::text)",
        ),
        # -- health (client) -----------------------------------------------
        Query(
            "health",
            "SELECT to_regclass('pgmq.meta') IS NOT NULL AS pgmq_installed, "
            "(SELECT extversion FROM pg_catalog.pg_extension WHERE extname = 'pgmq') AS pgmq_version, "
            "(SELECT pg_catalog.obj_description(n.oid, 'pg_namespace') FROM pg_catalog.pg_namespace AS n "
            " WHERE n.nspname = %(schema)s) AS schema_comment, "
            "EXISTS (SELECT 1 FROM pg_catalog.pg_proc AS p JOIN pg_catalog.pg_namespace AS n ON n.oid = p.pronamespace "
            " WHERE n.nspname = 'pgmq' AND p.proname = 'send_topic') AS has_topics, "
            "pg_catalog.pg_notification_queue_usage() AS notification_queue_usage",
        ),
        Query(
            "installed_functions",
            "SELECT p.proname AS name, pg_catalog.oidvectortypes(p.proargtypes) AS args, "
            "pg_catalog.obj_description(p.oid, 'pg_proc') AS comment "
            "FROM pg_catalog.pg_proc AS p JOIN pg_catalog.pg_namespace AS n ON n.oid = p.pronamespace "
            "WHERE n.nspname = %(schema)s ORDER BY 1, 2",
        ),
    )
}


def query(name: str) -> Query:
    """The catalogued query called ``name``."""
    return QUERIES[name]
