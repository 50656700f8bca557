"""What the install leaves in the database, the helpers, rollback and safety.

Every test runs with PGMQ from loose SQL and as a real extension (``both_installs``).
"""

from __future__ import annotations

import psycopg
import pytest

from pgmq_codegen import __version__, render
from pgmq_runtime import object_names
from pgmq_runtime.config import PgmqNotifyConfig
from tests import qualified
from tests.conftest import apply_statements, install

pytestmark = pytest.mark.both_installs


def _conn(dsn: str) -> psycopg.Connection[tuple[object, ...]]:
    return psycopg.connect(dsn, autocommit=True)


def _our_triggers(conn: psycopg.Connection[tuple[object, ...]], config: PgmqNotifyConfig) -> list[tuple[str, str]]:
    rows = conn.execute(
        """SELECT c.relname, t.tgname FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid
           WHERE t.tgname IN (%s, %s) ORDER BY 1""",
        [object_names.message_trigger_name(config), object_names.meta_trigger_name(config)],
    ).fetchall()
    return [(str(a), str(b)) for a, b in rows]


def _snapshot(conn: psycopg.Connection[tuple[object, ...]]) -> dict[str, list[tuple[object, ...]]]:
    """Every schema, function and trigger outside the system catalogs."""
    return {
        "schemas": conn.execute(
            "SELECT nspname FROM pg_namespace WHERE nspname !~ '^pg_' AND nspname <> 'information_schema' ORDER BY 1"
        ).fetchall(),
        "functions": conn.execute(
            "SELECT p.oid::regprocedure::text FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace "
            "WHERE n.nspname !~ '^pg_' AND n.nspname <> 'information_schema' ORDER BY 1"
        ).fetchall(),
        "triggers": conn.execute(
            "SELECT tgrelid::regclass::text, tgname FROM pg_trigger WHERE NOT tgisinternal ORDER BY 1, 2"
        ).fetchall(),
        "sequences": conn.execute(
            "SELECT oid::regclass::text FROM pg_class WHERE relkind = 'S' AND relnamespace <> 'pgmq'::regnamespace"
        ).fetchall(),
    }


@pytest.mark.parametrize(("mode", "coalesce_ms"), [("trigger", 0), ("wrapper", 0), ("both", 0), ("trigger", 20)])
def test_rollback_leaves_the_database_as_it_was(dsn, subscribe, mode, coalesce_ms):
    config = PgmqNotifyConfig(mode=mode, schema="notify_x", coalesce_ms=coalesce_ms)
    with _conn(dsn) as conn:
        conn.execute("SELECT pgmq.create('early_queue')")
        before = _snapshot(conn)
    install(dsn, config)
    with _conn(dsn) as conn:
        conn.execute("SELECT pgmq.create('late_queue')")
        conn.execute("SELECT pgmq.drop_queue('late_queue')")
        triggers = _our_triggers(conn, config)
    expected_meta = [("meta", object_names.meta_trigger_name(config))]
    if mode == "wrapper":
        assert triggers == expected_meta
    else:
        assert triggers == [
            ("meta", object_names.meta_trigger_name(config)),
            ("q_early_queue", object_names.message_trigger_name(config)),
        ]
    apply_statements(dsn, render.rollback_statements(config))
    with _conn(dsn) as conn:
        assert _snapshot(conn) == before
        sub = subscribe(dsn, [config.global_message_ready_channel(), config.queue_created_channel()])
        conn.execute("SELECT pgmq.create('after_queue')")
        conn.execute("""SELECT pgmq.send('early_queue', '{"still": "works"}')""")
        assert conn.execute("SELECT count(*) FROM pgmq.read('early_queue', 1, 10)").fetchone() == (1,)
    assert sub.drain() == []


def test_installing_twice_changes_nothing_and_announces_once(dsn, subscribe):
    config = PgmqNotifyConfig()
    with _conn(dsn) as conn:
        conn.execute("SELECT pgmq.create('orders_queue')")
    install(dsn, config)
    with _conn(dsn) as conn:
        first = _snapshot(conn)
    install(dsn, config)
    sub = subscribe(dsn, [config.global_message_ready_channel()])
    with _conn(dsn) as conn:
        assert _snapshot(conn) == first
        conn.execute("""SELECT pgmq.send('orders_queue', '{"n": 1}')""")
    assert len(sub.drain()) == 1


def test_every_object_carries_version_and_fingerprint(dsn):
    config = PgmqNotifyConfig(mode="both", channels_prefix="app")
    with _conn(dsn) as conn:
        conn.execute("SELECT pgmq.create('orders_queue')")
    install(dsn, config)
    marker = f"pgmq-codegen {__version__} fingerprint={config.fingerprint()}"
    with _conn(dsn) as conn:
        functions = conn.execute(
            "SELECT p.oid::regprocedure::text, obj_description(p.oid, 'pg_proc') FROM pg_proc p "
            "WHERE p.pronamespace = 'pgmq_notify'::regnamespace"
        ).fetchall()
        triggers = conn.execute(
            "SELECT tgname, obj_description(t.oid, 'pg_trigger') FROM pg_trigger t WHERE tgname LIKE 'pgmq_notify%'"
        ).fetchall()
        schema = conn.execute("SELECT obj_description('pgmq_notify'::regnamespace, 'pg_namespace')").fetchone()
    assert len(functions) == len(object_names.functions_for(config))
    assert {comment for _, comment in functions} == {marker}
    assert len(triggers) == 3 and {comment for _, comment in triggers} == {marker}
    assert schema == (marker,)


# Run as the schema's owner so that other roles' pgmq.create/drop_queue/sends
# need no rights in our schema nor SELECT on pgmq.meta; each does one narrow thing.
SECURITY_DEFINER = {"coalesce_sequence_v1", "on_queue_dropped_v1", "queue_spelling_v1"}


@pytest.mark.parametrize(("mode", "coalesce_ms"), [("both", 0), ("both", 20), ("wrapper", 0)])
def test_only_the_queue_trigger_leaves_search_path_unpinned(dsn, mode, coalesce_ms):
    """Pinning search_path costs every send a configuration change; the queue trigger names every object
    with its schema instead (see the next test). Only the narrow helpers above are SECURITY DEFINER."""
    config = PgmqNotifyConfig(mode=mode, coalesce_ms=coalesce_ms)
    install(dsn, config)
    with _conn(dsn) as conn:
        rows = conn.execute(
            "SELECT proname, prosecdef, proconfig FROM pg_proc WHERE pronamespace = 'pgmq_notify'::regnamespace"
        ).fetchall()
    unpinned = {name for name, _, proconfig in rows if proconfig is None}
    assert unpinned == ({"on_message_insert_v1"} if mode != "wrapper" else set())
    for name, secdef, proconfig in rows:
        assert secdef is (name in SECURITY_DEFINER), name
        assert proconfig in (None, ["search_path=pg_catalog, pg_temp"]), name


# Argument types of the look-alikes: every type the trigger's expressions work on.
_SHADOWED_TYPES = (
    "bigint", "integer", "numeric", "double precision", "text", "name", "json", "jsonb", "regclass",
    "timestamp with time zone", "timestamp without time zone", "interval", "bigint[]", "anyelement", "anyarray",
    "anynonarray", "anycompatible", "anycompatiblearray", "anycompatiblenonarray",
)  # fmt: skip
# Functions of VARIADIC "any", which no PL/pgSQL function can take: twins of the calls the trigger makes.
_EXTRA_SHADOWS = [
    ("concat", "text, name", "text"),
    ("concat", "text, text", "text"),
    ("format", "text, text, text", "text"),
]
_HOSTILE_CONFIGS = {
    "default": PgmqNotifyConfig(),
    "no_global_channel": PgmqNotifyConfig(global_channel=False),
    "never": PgmqNotifyConfig(include_payload="never", include_metadata=False),
    "coalescing": PgmqNotifyConfig(coalesce_ms=50),
    "both": PgmqNotifyConfig(mode="both"),
    "wrapper": PgmqNotifyConfig(mode="wrapper"),
}


def _create_lookalikes(conn: psycopg.Connection[tuple[object, ...]], config: PgmqNotifyConfig) -> int:
    """In schema lookalike, a raising twin of every pg_catalog function and operator overload the trigger names.

    Only overloads whose argument types PL/pgSQL can take (no "any", internal, ...).
    Returns how many were made; each name the trigger uses gets at least one.
    """
    trigger = render.render(PgmqNotifyConfig(mode="trigger", coalesce_ms=config.coalesce_ms))
    statement = next(s for s in trigger.install if f"{object_names.qualified(config, 'on_message_insert_v1')}()" in s)
    used = qualified.named(statement)
    conn.execute("CREATE SCHEMA lookalike")
    made: dict[str, int] = {}
    functions = sorted({parts[-1] for kind, parts in used if kind == "function"})
    rows = conn.execute(
        "SELECT p.proname, pg_catalog.pg_get_function_identity_arguments(p.oid), p.prorettype::regtype::text "
        "FROM pg_catalog.pg_proc p WHERE p.pronamespace = 'pg_catalog'::regnamespace AND p.proname = ANY(%s) "
        "AND p.prokind IN ('f', 'a', 'w')",
        (functions,),
    ).fetchall()
    for name, args, result in [*rows, *(row for row in _EXTRA_SHADOWS if row[0] in functions)]:
        types = [a.strip().removeprefix("VARIADIC ") for a in str(args).split(",")] if args else []
        if any(t not in _SHADOWED_TYPES for t in types):
            continue
        made[str(name)] = made.get(str(name), 0) + _try(
            conn,
            f"CREATE FUNCTION lookalike.{name}({args}) RETURNS {result} LANGUAGE plpgsql "
            f"AS $$ BEGIN RAISE EXCEPTION 'redirected to lookalike.{name}'; END $$",
        )
    operators = sorted({parts[-1] for kind, parts in used if kind == "operator"})
    rows = conn.execute(
        "SELECT o.oprname, o.oprleft::regtype::text, o.oprright::regtype::text, o.oprresult::regtype::text "
        "FROM pg_catalog.pg_operator o WHERE o.oprnamespace = 'pg_catalog'::regnamespace AND o.oprname = ANY(%s) "
        "AND o.oprleft <> 0",
        (operators,),
    ).fetchall()
    for index, (op, left, right, result) in enumerate(rows):
        if left not in _SHADOWED_TYPES or right not in _SHADOWED_TYPES:
            continue
        created = _try(
            conn,
            f"CREATE FUNCTION lookalike.op{index}({left}, {right}) RETURNS {result} LANGUAGE plpgsql "
            f"AS $$ BEGIN RAISE EXCEPTION 'redirected to lookalike operator {op}'; END $$",
        )
        made[str(op)] = made.get(str(op), 0) + (
            created
            and _try(
                conn,
                f"CREATE OPERATOR lookalike.{op} "
                f"(LEFTARG = {left}, RIGHTARG = {right}, FUNCTION = lookalike.op{index})",
            )
        )
    # extract and AT TIME ZONE are written by the parser as pg_catalog names: no look-alike can take them.
    missing = set(functions + operators) - {name for name, count in made.items() if count} - {"extract", "timezone"}
    assert not missing, f"no look-alike for {missing}"
    return sum(made.values())


def _try(conn: psycopg.Connection[tuple[object, ...]], statement: str) -> int:
    try:
        with conn.transaction():
            conn.execute(statement)
    except psycopg.errors.Error:
        return 0
    return 1


@pytest.mark.parametrize("case", sorted(_HOSTILE_CONFIGS))
def test_the_trigger_cannot_be_redirected_by_the_callers_search_path(dsn, subscribe, case):
    """A caller whose search_path puts raising look-alikes of every function and operator the trigger names first.

    Single sends, a message too big for its event, a batch and a batch split
    into several events must all succeed and be announced (every id exactly
    once; with coalescing, each window's first send), and the caller's
    search_path must be the same after each send, inside the transaction.
    """
    config = _HOSTILE_CONFIGS[case]
    install(dsn, config)
    queue = "hostile_path_queue"
    with _conn(dsn) as conn:
        conn.execute("SELECT pgmq.create(%s)", (queue,))
        assert _create_lookalikes(conn, config) > 20
    namespace = config.extract_namespace(queue)
    sub = subscribe(dsn, [config.message_ready_channel(namespace)])
    hostile = "lookalike, pg_catalog, public"
    # PGMQ's own functions call clock_timestamp() unqualified, so under this search_path
    # the trigger modes insert directly, as pgmq.send does; the wrapper pins its own.
    if config.mode == "wrapper":
        send = "SELECT * FROM pgmq_notify.send_with_notify(%s, %s::jsonb)"
        send_batch = (
            "SELECT * FROM pgmq_notify.send_batch_with_notify(%s, pg_catalog.array_fill('{}'::jsonb, ARRAY[%s]))"
        )
    else:
        table = f"pgmq.q_{queue}"
        send = (
            f"INSERT INTO {table} (vt, message) SELECT pg_catalog.now(), %s::jsonb "
            "WHERE %s::text IS NOT NULL RETURNING msg_id"
        )
        send_batch = (
            f"INSERT INTO {table} (vt, message) SELECT pg_catalog.now(), '{{}}'::jsonb "
            "FROM pg_catalog.generate_series(1, %s) WHERE %s::text IS NOT NULL RETURNING msg_id"
        )
    big = '{"blob": "' + "x" * 8000 + '"}'
    with psycopg.connect(dsn) as conn:
        conn.execute(f"SET search_path = {hostile}")
        conn.commit()
        # The schema does redirect unqualified names in this session.
        with pytest.raises(psycopg.errors.RaiseException, match=r"lookalike\.clock_timestamp"):
            conn.execute("SELECT clock_timestamp()")
        conn.rollback()
        ids: list[int] = []
        for _ in range(2):
            conn.execute("SELECT pg_catalog.pg_sleep(0.12)")  # past a coalescing window: the next send opens one
            for message in ('{"n": 1}', big):
                params = (queue, message) if config.mode == "wrapper" else (message, queue)
                ids.append(conn.execute(send, params).fetchone()[0])
                assert conn.execute("SHOW search_path").fetchone() == (hostile,)
            for size in (3, 1500):
                rows = conn.execute(send_batch, (queue, size) if config.mode == "wrapper" else (size, queue)).fetchall()
                ids.extend(row[0] for row in rows)
                assert conn.execute("SHOW search_path").fetchone() == (hostile,)
            conn.commit()
    events = [n.event for n in sub.drain()]
    announced = [i for e in events for i in (e.get("msg_ids") or [e["msg_id"]])]
    if config.coalesce_ms:
        assert len(events) >= 2 and all(e["coalesced"] is True for e in events), events
        assert set(announced) <= set(ids)
    else:
        assert sorted(announced) == sorted(ids)
        assert {e["event_type"] for e in events} == (
            {"message_ready", "batch_ready"}
            if config.include_payload == "never"
            else {"message_with_payload", "message_ready", "batch_ready"}
        )


HOSTILE = ['we"ird_queue', "sp ace_queue", "back\\slash_queue", "per%cent_queue", "Ünïcødé_queue", "x)_queue"]


@pytest.mark.parametrize("mode", ["trigger", "wrapper"])
def test_hostile_queue_names_cannot_inject_sql(dsn, subscribe, mode):
    config = PgmqNotifyConfig(mode=mode, queue_naming_pattern=r"(?P<namespace>.+)_queue")
    install(dsn, config)
    sub = subscribe(dsn, [config.queue_created_channel(), config.global_message_ready_channel()])
    send = "pgmq.send" if mode == "trigger" else '"pgmq_notify".send_with_notify'
    with _conn(dsn) as conn:
        for queue in HOSTILE:
            conn.execute("SELECT pgmq.create(%s)", [queue])
            conn.execute(f"SELECT {send}(%s, %s::jsonb)", [queue, '{"q": 1}'])
            claimed = conn.execute('SELECT msg_id FROM "pgmq_notify".read_specific_v1(%s, 1, 30)', [queue]).fetchall()
            assert claimed == [(1,)], queue
    got = [r.event for r in sub.drain()]
    created = [(e["queue_name"], e["namespace"]) for e in got if e["event_type"] == "queue_created"]
    sent = [(e["queue_name"], e["namespace"]) for e in got if e["event_type"] == "message_with_payload"]
    expected = [(q, q[: -len("_queue")]) for q in HOSTILE]
    assert created == expected and sent == expected


def test_fetch_by_id_helpers_claim_once_delete_and_extend(dsn):
    config = PgmqNotifyConfig()
    install(dsn, config)
    with _conn(dsn) as conn:
        conn.execute("SELECT pgmq.create('Mixed_Queue')")
        ready = conn.execute("""SELECT pgmq.send('Mixed_Queue', '{"n": 1}')""").fetchone()[0]
        delayed = conn.execute("""SELECT pgmq.send('Mixed_Queue', '{"n": 2}', 60)""").fetchone()[0]
        claim = 'SELECT msg_id, read_ct, message FROM "pgmq_notify".read_specific_v1(%s, %s, 30)'
        assert conn.execute(claim, ["Mixed_Queue", ready]).fetchall() == [(ready, 1, {"n": 1})]
        assert conn.execute(claim, ["Mixed_Queue", ready]).fetchall() == [], "claimed twice"
        assert conn.execute(claim, ["Mixed_Queue", delayed]).fetchall() == [], "claimed before visible"
        assert conn.execute(claim, ["Mixed_Queue", 999]).fetchall() == []
        vt_before = conn.execute("SELECT vt FROM pgmq.q_mixed_queue WHERE msg_id = %s", [ready]).fetchone()[0]
        (vt_after,) = conn.execute(
            'SELECT vt FROM "pgmq_notify".extend_vt_v1(%s, %s, 120)', ["Mixed_Queue", ready]
        ).fetchone()
        assert 119 <= (vt_after - vt_before).total_seconds() <= 121
        assert conn.execute('SELECT "pgmq_notify".delete_specific_v1(%s, %s)', ["Mixed_Queue", ready]).fetchone() == (
            True,
        )
        assert conn.execute('SELECT "pgmq_notify".delete_specific_v1(%s, %s)', ["Mixed_Queue", ready]).fetchone() == (
            False,
        )
        batch = conn.execute(
            """SELECT pgmq.send_batch('Mixed_Queue', ARRAY['{"b": 1}', '{"b": 2}']::jsonb[])"""
        ).fetchall()
        ids = [r[0] for r in batch]
        claimed = conn.execute(
            'SELECT msg_id FROM "pgmq_notify".read_specific_batch_v1(%s, %s, 30)', ["Mixed_Queue", [*ids, delayed]]
        ).fetchall()
        assert sorted(r[0] for r in claimed) == ids


def test_concurrent_claims_of_one_message_have_one_winner(dsn):
    install(dsn, PgmqNotifyConfig())
    with _conn(dsn) as conn:
        conn.execute("SELECT pgmq.create('race_queue')")
        msg_id = conn.execute("""SELECT pgmq.send('race_queue', '{"n": 1}')""").fetchone()[0]
    first, second = psycopg.connect(dsn), psycopg.connect(dsn)
    claim = 'SELECT msg_id FROM "pgmq_notify".read_specific_v1(%s, %s, 30)'
    won_first = first.execute(claim, ["race_queue", msg_id]).fetchall()
    won_second = second.execute(claim, ["race_queue", msg_id]).fetchall()  # row locked: skipped
    first.commit()
    second.commit()
    won_later = second.execute(claim, ["race_queue", msg_id]).fetchall()  # vt now in the future
    first.close()
    second.close()
    assert (won_first, won_second, won_later) == ([(msg_id,)], [], [])


def test_migration_without_pgmq_fails_with_a_clear_message(bare_dsn):
    with pytest.raises(psycopg.errors.RaiseException, match="PGMQ is not installed"):
        install(bare_dsn, PgmqNotifyConfig())


@pytest.mark.parametrize(("first", "second"), [("trigger", "wrapper"), ("wrapper", "trigger"), ("both", "wrapper")])
def test_a_new_install_in_another_mode_replaces_the_old_one(dsn, subscribe, first, second):
    with _conn(dsn) as conn:
        conn.execute("SELECT pgmq.create('orders_queue')")
    install(dsn, PgmqNotifyConfig(mode=first))
    config = PgmqNotifyConfig(mode=second)
    install(dsn, config)
    with _conn(dsn) as conn:
        functions = {
            row[0]
            for row in conn.execute("SELECT proname FROM pg_proc WHERE pronamespace = 'pgmq_notify'::regnamespace")
        }
        assert functions == {spec.name for spec in object_names.functions_for(config)}
        sub = subscribe(dsn, [config.global_message_ready_channel()])
        send = "pgmq.send" if second == "trigger" else '"pgmq_notify".send_with_notify'
        conn.execute(f"""SELECT {send}('orders_queue', '{{"n": 1}}')""")
    assert len(sub.drain()) == 1, "announced once, not by both the old and the new mode"
