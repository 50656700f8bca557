"""What the install leaves in the database, the helpers, rollback and safety."""

from __future__ import annotations

import psycopg
import pytest

from pgmq_codegen import __version__, render
from pgmq_runtime import object_names
from pgmq_runtime.config import PgmqNotifyConfig
from tests.conftest import apply_statements, install


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
    assert len(triggers) == 2 and {comment for _, comment in triggers} == {marker}
    assert schema == (marker,)


def test_functions_pin_search_path_and_are_not_security_definer(dsn):
    config = PgmqNotifyConfig(mode="both")
    install(dsn, config)
    with _conn(dsn) as conn:
        rows = conn.execute(
            "SELECT proname, prosecdef, proconfig FROM pg_proc WHERE pronamespace = 'pgmq_notify'::regnamespace"
        ).fetchall()
    assert rows
    for name, secdef, proconfig in rows:
        assert secdef is False, name
        assert proconfig == ["search_path=pg_catalog, pg_temp"], name


def test_with_coalescing_only_the_queue_trigger_leaves_search_path_unpinned(dsn):
    """Pinning search_path costs every send a configuration change; the gate avoids it (see the next test)."""
    config = PgmqNotifyConfig(mode="both", coalesce_ms=20)
    install(dsn, config)
    with _conn(dsn) as conn:
        rows = conn.execute(
            "SELECT proname, prosecdef, proconfig FROM pg_proc WHERE pronamespace = 'pgmq_notify'::regnamespace"
        ).fetchall()
    unpinned = {name for name, _, proconfig in rows if proconfig is None}
    assert unpinned == {"on_message_insert_v1"}
    for name, secdef, proconfig in rows:
        assert secdef is False, name
        assert proconfig in (None, ["search_path=pg_catalog, pg_temp"]), name


# Every function and operator the coalescing trigger's unpinned first statement (and its
# search_path switch) could resolve by name, shadowed in a schema the caller puts first.
_SHADOWS = [
    ("pg_sequence_last_value", "regclass", "bigint"),
    ("to_regclass", "text", "regclass"),
    ("format", "text, text, text", "text"),
    ("concat", "text, text", "text"),
    ("concat", "text, name", "text"),
    ("clock_timestamp", "", "timestamptz"),
    ("current_setting", "text", "text"),
    ("set_config", "text, text, boolean", "text"),
]
_SHADOW_OPERATORS = [
    (">=", "bigint", "bigint", "boolean"),
    ("/", "bigint", "integer", "bigint"),
    ("*", "numeric", "integer", "numeric"),
]


def test_the_unpinned_coalescing_trigger_cannot_be_redirected_by_the_callers_search_path(dsn, subscribe):
    """A caller whose search_path puts a schema of look-alike functions and operators before pg_catalog.

    Every look-alike raises. Sends into a closed window and the send that opens
    one must still succeed and notify, and the caller's search_path must be the
    same after the send, inside the same transaction.
    """
    config = PgmqNotifyConfig(coalesce_ms=50)
    install(dsn, config)
    queue = "hostile_path_queue"
    with _conn(dsn) as conn:
        conn.execute("SELECT pgmq.create(%s)", (queue,))
        conn.execute("CREATE SCHEMA lookalike")
        for name, args, result in _SHADOWS:
            conn.execute(
                f"CREATE FUNCTION lookalike.{name}({args}) RETURNS {result} LANGUAGE plpgsql "
                f"AS $$ BEGIN RAISE EXCEPTION 'redirected to lookalike.{name}'; END $$"
            )
        for index, (op, left, right, result) in enumerate(_SHADOW_OPERATORS):
            conn.execute(
                f"CREATE FUNCTION lookalike.op{index}({left}, {right}) RETURNS {result} LANGUAGE plpgsql "
                f"AS $$ BEGIN RAISE EXCEPTION 'redirected to lookalike operator {op}'; END $$"
            )
            conn.execute(
                f"CREATE OPERATOR lookalike.{op} (LEFTARG = {left}, RIGHTARG = {right}, FUNCTION = lookalike.op{index})"
            )
    sub = subscribe(dsn, [config.message_ready_channel(config.extract_namespace(queue))])
    hostile = "lookalike, pg_catalog, public"
    insert = f"INSERT INTO pgmq.q_{queue} (vt, message) VALUES (pg_catalog.now(), '{{}}') RETURNING msg_id"
    with psycopg.connect(dsn) as conn:
        conn.execute(f"SET search_path = {hostile}")
        conn.commit()
        # The schema does redirect unqualified names in this session.
        with pytest.raises(psycopg.errors.RaiseException, match=r"lookalike\.clock_timestamp"):
            conn.execute("SELECT clock_timestamp()")
        conn.rollback()
        ids = []
        for _ in range(3):
            conn.execute("SELECT pg_catalog.pg_sleep(0.12)")  # past the window: this send opens a new one
            ids.append(conn.execute(insert).fetchone()[0])
            assert conn.execute("SHOW search_path").fetchone() == (hostile,)
            ids.extend(conn.execute(insert).fetchone()[0] for _ in range(5))  # same window: silent
            assert conn.execute("SHOW search_path").fetchone() == (hostile,)
            conn.commit()
    events = [n.event for n in sub.drain()]
    assert len(ids) == 18
    assert len(events) >= 3 and all(e["coalesced"] is True and e["msg_id"] in ids for e in events), events


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
