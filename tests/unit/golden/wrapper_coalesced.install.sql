-- pgmq-codegen 0.1.0: install of PGMQ notifications
-- config fingerprint d6a5cb2e5455a813; mode wrapper; schema pgmq_notify
-- queue_naming_pattern (?P<namespace>\w+)_queue; channels_prefix (none)
-- Any role that can connect can LISTEN to these channels and read their payloads;
-- set include_payload = "never" when the database is shared between tenants.

-- Fail early, with a readable message, when PGMQ is missing.
DO $pgmq_codegen$
BEGIN
    IF pg_catalog.to_regclass('pgmq.meta') IS NULL THEN
        RAISE EXCEPTION 'pgmq-codegen: PGMQ is not installed in this database (pgmq.meta not found); install PGMQ first';
    END IF;
END
$pgmq_codegen$;

-- Fail before changing anything when this role cannot change a table it must:
-- CREATE/DROP/COMMENT ON TRIGGER need ownership (or membership in the owner's
-- role), not the TRIGGER privilege. Queues whose trigger is current are left alone.
DO $pgmq_codegen$
DECLARE
    v_tables text;
BEGIN
    SELECT string_agg(pg_catalog.format('%s (owner %s)', c.oid::regclass, pg_catalog.pg_get_userbyid(c.relowner)), ', ' ORDER BY c.relname)
    INTO v_tables
    FROM pg_catalog.pg_class AS c
    WHERE (c.oid = 'pgmq.meta'::regclass
           OR c.oid IN (SELECT t.tgrelid FROM pg_catalog.pg_trigger AS t WHERE t.tgname = 'pgmq_notify_on_insert_v1')
          )
      AND NOT pg_catalog.pg_has_role(current_user, c.relowner, 'USAGE');
    IF v_tables IS NOT NULL THEN
        RAISE EXCEPTION 'pgmq-codegen: role % does not own %', current_user, v_tables
            USING HINT = 'Triggers can only be changed by a table''s owner: run this migration as that role, or GRANT the owning role to ' || current_user || '.';
    END IF;
END
$pgmq_codegen$;

DO $pgmq_codegen$
BEGIN
    IF pg_catalog.to_regnamespace('pgmq_notify') IS NULL THEN
        CREATE SCHEMA "pgmq_notify";
    END IF;
END
$pgmq_codegen$;

COMMENT ON SCHEMA "pgmq_notify" IS 'pgmq-codegen 0.1.0 fingerprint=d6a5cb2e5455a813';

-- Every role that may send to a queue runs these functions from the queue's trigger.
GRANT USAGE ON SCHEMA "pgmq_notify" TO PUBLIC;

-- Namespace of a queue name; mirrors PgmqNotifyConfig.extract_namespace.
CREATE OR REPLACE FUNCTION "pgmq_notify".extract_namespace_v1(p_queue_name text)
RETURNS text
LANGUAGE sql
IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $pgmq_codegen$
    SELECT coalesce(nullif((regexp_match(p_queue_name, '([A-Za-z0-9_]+)_queue'))[1], ''), 'default')
$pgmq_codegen$;

COMMENT ON FUNCTION "pgmq_notify".extract_namespace_v1(text) IS 'pgmq-codegen 0.1.0 fingerprint=d6a5cb2e5455a813';

-- Channel of one namespace; names over 63 bytes are cut and suffixed with an md5
-- so that NOTIFY never fails and LISTEN never truncates. Mirrors
-- PgmqNotifyConfig.message_ready_channel.
CREATE OR REPLACE FUNCTION "pgmq_notify".namespace_channel_v1(p_namespace text)
RETURNS text
LANGUAGE plpgsql
IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $pgmq_codegen$
DECLARE
    v_base constant text := 'pgmq_message_ready.';
    v_cut text := p_namespace;
BEGIN
    IF octet_length(v_base || p_namespace) <= 63 THEN
        RETURN v_base || p_namespace;
    END IF;
    WHILE octet_length(v_cut) > 63 - octet_length(v_base) - 9 LOOP
        v_cut := left(v_cut, -1);
    END LOOP;
    RETURN v_base || v_cut || '~' || left(md5(p_namespace), 8);
END
$pgmq_codegen$;

COMMENT ON FUNCTION "pgmq_notify".namespace_channel_v1(text) IS 'pgmq-codegen 0.1.0 fingerprint=d6a5cb2e5455a813';

-- Coalescing: at most one notification per queue per 25 ms window.
-- The first send of a window notifies and records the window in the queue's
-- sequence; later sends of that window stay silent, and a consumer that wakes
-- re-reads the queue until it is quiet, so their messages are found too.
CREATE OR REPLACE FUNCTION "pgmq_notify".coalesce_gate_v1(p_queue_name text)
RETURNS boolean
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $pgmq_codegen$
DECLARE
    v_sequence regclass;
    v_window bigint;
BEGIN
    v_sequence := pg_catalog.to_regclass(format('%I.%I', 'pgmq_notify', 'coalesce_' || pgmq.format_table_name(p_queue_name, 'q')));
    IF v_sequence IS NOT NULL THEN
        v_window := ((extract(epoch FROM pg_catalog.clock_timestamp()) OPERATOR(pg_catalog.*) 1000)::bigint) OPERATOR(pg_catalog./) 25;
        IF pg_catalog.pg_sequence_last_value(v_sequence) OPERATOR(pg_catalog.>=) v_window THEN
            RETURN false;
        END IF;
        PERFORM pg_catalog.setval(v_sequence, v_window);
    END IF;
    RETURN true;
END
$pgmq_codegen$;

COMMENT ON FUNCTION "pgmq_notify".coalesce_gate_v1(text) IS 'pgmq-codegen 0.1.0 fingerprint=d6a5cb2e5455a813';

-- Creates the window sequence of a queue's table. SECURITY DEFINER: the role
-- that calls pgmq.create need not own this schema. It only ever creates
-- coalesce_<table> for a queue table that exists.
CREATE OR REPLACE FUNCTION "pgmq_notify".coalesce_sequence_v1(p_table text)
RETURNS void
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $pgmq_codegen$
BEGIN
    IF to_regclass(format('pgmq.%I', p_table)) IS NULL THEN
        RETURN;
    END IF;
    IF to_regclass(format('%I.%I', 'pgmq_notify', 'coalesce_' || p_table)) IS NULL THEN
        -- A sequence, not a row: reading and setval take no lock held to commit,
        -- so concurrent producers never queue behind one another.
        EXECUTE format('CREATE SEQUENCE %I.%I MINVALUE 0 START WITH 0', 'pgmq_notify', 'coalesce_' || p_table);
    END IF;
    EXECUTE format('GRANT SELECT, UPDATE ON SEQUENCE %I.%I TO PUBLIC', 'pgmq_notify', 'coalesce_' || p_table);
END
$pgmq_codegen$;

COMMENT ON FUNCTION "pgmq_notify".coalesce_sequence_v1(text) IS 'pgmq-codegen 0.1.0 fingerprint=d6a5cb2e5455a813';

-- One message: its whole content when the complete event fits max_payload_size
-- bytes, else a signal to fetch it by id. Sizes are octet_length, never length.
CREATE OR REPLACE FUNCTION "pgmq_notify".announce_message_v1(
    p_queue_name text,
    p_namespace text,
    p_channel text,
    p_msg_id bigint,
    p_vt timestamptz,
    p_message jsonb,
    p_headers jsonb,
    p_source text
)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $pgmq_codegen$
DECLARE
    v_ready_at text;
    v_enqueued_at text;
    v_delay integer;
    v_payload text;
BEGIN
    IF NOT pg_catalog.pg_notification_queue_usage() OPERATOR(pg_catalog.<=) 0.5::double precision THEN
        RETURN;  -- the notification queue is filling up: see on_message_insert_v1
    END IF;
    -- Called in the sending transaction: now() is the enqueued_at PGMQ's insert gave the message.
    IF "pgmq_notify".coalesce_gate_v1(p_queue_name) THEN
        v_ready_at := pg_catalog.to_char(p_vt AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"');
        v_enqueued_at := pg_catalog.to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"');
        v_delay := CASE WHEN p_vt OPERATOR(pg_catalog.<=) pg_catalog.clock_timestamp() THEN 0 ELSE least(greatest(pg_catalog.round(extract(epoch FROM p_vt OPERATOR(pg_catalog.-) pg_catalog.clock_timestamp())), 0), 2147483647)::integer END;
        v_payload := pg_catalog.json_build_object(
            'event_type', 'message_ready',
            'msg_id', p_msg_id,
            'queue_name', p_queue_name,
            'namespace', p_namespace,
            'ready_at', v_ready_at,
            'enqueued_at', v_enqueued_at,
            'delay_seconds', v_delay,
            'payload_omitted', true,
            'coalesced', true,
            'metadata', pg_catalog.json_build_object('source', p_source)
        )::pg_catalog.text;
        PERFORM pg_catalog.pg_notify(p_channel, v_payload), pg_catalog.pg_notify('pgmq_message_ready', v_payload);
    END IF;
END
$pgmq_codegen$;

COMMENT ON FUNCTION "pgmq_notify".announce_message_v1(text, text, text, bigint, timestamptz, jsonb, jsonb, text) IS 'pgmq-codegen 0.1.0 fingerprint=d6a5cb2e5455a813';

-- Many messages sent together: batch_ready signals, split so that each payload
-- stays within max_payload_size bytes and every id is carried exactly once.
CREATE OR REPLACE FUNCTION "pgmq_notify".announce_batch_v1(
    p_queue_name text,
    p_namespace text,
    p_channel text,
    p_msg_ids bigint[],
    p_vt timestamptz,
    p_source text
)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $pgmq_codegen$
DECLARE
    v_ready_at text;
    v_enqueued_at text;
    v_delay integer;
    v_payload text;
    v_budget integer;
    v_width integer;
    v_size integer;
    v_start integer;
BEGIN
    IF NOT pg_catalog.pg_notification_queue_usage() OPERATOR(pg_catalog.<=) 0.5::double precision THEN
        RETURN;  -- the notification queue is filling up: see on_message_insert_v1
    END IF;
    IF NOT "pgmq_notify".coalesce_gate_v1(p_queue_name) THEN
        RETURN;
    END IF;
    -- Called in the sending transaction: now() is the enqueued_at PGMQ's insert gave the messages.
    v_ready_at := pg_catalog.to_char(p_vt AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"');
    v_enqueued_at := pg_catalog.to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"');
    v_delay := CASE WHEN p_vt OPERATOR(pg_catalog.<=) pg_catalog.clock_timestamp() THEN 0 ELSE least(greatest(pg_catalog.round(extract(epoch FROM p_vt OPERATOR(pg_catalog.-) pg_catalog.clock_timestamp())), 0), 2147483647)::integer END;
    -- The common case: every id fits one event.
    v_payload := pg_catalog.json_build_object(
        'event_type', 'batch_ready',
        'msg_ids', pg_catalog.to_json(p_msg_ids),
        'queue_name', p_queue_name,
        'namespace', p_namespace,
        'message_count', pg_catalog.cardinality(p_msg_ids),
        'ready_at', v_ready_at,
        'enqueued_at', v_enqueued_at,
        'delay_seconds', v_delay,
        'coalesced', true,
        'metadata', pg_catalog.json_build_object('source', p_source)
    )::pg_catalog.text;
    IF pg_catalog.octet_length(v_payload) OPERATOR(pg_catalog.<=) 7800 THEN
        PERFORM pg_catalog.pg_notify(p_channel, v_payload), pg_catalog.pg_notify('pgmq_message_ready', v_payload);
    ELSE
        -- Too many ids for one event: split them into chunks of as many ids as fit
        -- when every id is as wide as the widest, so that each chunk fits with no
        -- arithmetic per id. Bytes left for a chunk's ids ("1,2,3," counted with a
        -- comma each): the limit, less the event without its ids' array, less room
        -- for message_count's digits (10).
        v_budget := 7790 OPERATOR(pg_catalog.-) (pg_catalog.octet_length(v_payload) OPERATOR(pg_catalog.-) pg_catalog.octet_length(pg_catalog.to_json(p_msg_ids)::pg_catalog.text) OPERATOR(pg_catalog.+) 2);
        SELECT GREATEST(pg_catalog.octet_length(pg_catalog.min(id)::pg_catalog.text), pg_catalog.octet_length(pg_catalog.max(id)::pg_catalog.text)) OPERATOR(pg_catalog.+) 1
        INTO v_width
        FROM pg_catalog.unnest(p_msg_ids) AS u(id);
        v_size := GREATEST(v_budget OPERATOR(pg_catalog./) v_width, 1);
        FOR v_start IN 1 .. pg_catalog.cardinality(p_msg_ids) BY v_size LOOP
            v_payload := pg_catalog.json_build_object(
                'event_type', 'batch_ready',
                'msg_ids', pg_catalog.to_json((p_msg_ids)[v_start:v_start OPERATOR(pg_catalog.+) v_size OPERATOR(pg_catalog.-) 1]),
                'queue_name', p_queue_name,
                'namespace', p_namespace,
                'message_count', pg_catalog.cardinality((p_msg_ids)[v_start:v_start OPERATOR(pg_catalog.+) v_size OPERATOR(pg_catalog.-) 1]),
                'ready_at', v_ready_at,
                'enqueued_at', v_enqueued_at,
                'delay_seconds', v_delay,
                'coalesced', true,
                'metadata', pg_catalog.json_build_object('source', p_source)
            )::pg_catalog.text;
            PERFORM pg_catalog.pg_notify(p_channel, v_payload), pg_catalog.pg_notify('pgmq_message_ready', v_payload);
        END LOOP;
    END IF;
END
$pgmq_codegen$;

COMMENT ON FUNCTION "pgmq_notify".announce_batch_v1(text, text, text, bigint ARRAY, timestamptz, text) IS 'pgmq-codegen 0.1.0 fingerprint=d6a5cb2e5455a813';

-- Prepares one queue's table; creates the sequence that coalescing keeps its last notified window in.
CREATE OR REPLACE FUNCTION "pgmq_notify".attach_v1(p_queue_name text)
RETURNS boolean
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $pgmq_codegen$
DECLARE
    v_table constant text := pgmq.format_table_name(p_queue_name, 'q');
    v_namespace constant text := "pgmq_notify".extract_namespace_v1(p_queue_name);
    v_relation regclass := to_regclass(format('pgmq.%I', v_table));
BEGIN
    IF v_relation IS NULL THEN
        RAISE WARNING 'pgmq-codegen: table pgmq.% of queue % not found; its messages will not notify', v_table, p_queue_name;
        RETURN false;
    END IF;
    PERFORM "pgmq_notify".coalesce_sequence_v1(v_table);
    RETURN true;
END
$pgmq_codegen$;

COMMENT ON FUNCTION "pgmq_notify".attach_v1(text) IS 'pgmq-codegen 0.1.0 fingerprint=d6a5cb2e5455a813';

-- On pgmq.meta: announce the new queue and prepare its table.
CREATE OR REPLACE FUNCTION "pgmq_notify".on_queue_created_v1()
RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $pgmq_codegen$
BEGIN
    -- Queue creation must not fail at commit on a filling notification queue either.
    IF pg_catalog.pg_notification_queue_usage() OPERATOR(pg_catalog.<=) 0.5::double precision THEN
        PERFORM pg_notify('pgmq_queue_created', json_build_object(
            'event_type', 'queue_created',
            'queue_name', NEW.queue_name,
            'namespace', "pgmq_notify".extract_namespace_v1(NEW.queue_name),
            'created_at', to_char(NEW.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
            'metadata', json_build_object('source', 'trigger')
        )::text);
    END IF;
    PERFORM "pgmq_notify".attach_v1(NEW.queue_name);
    RETURN NULL;
END
$pgmq_codegen$;

COMMENT ON FUNCTION "pgmq_notify".on_queue_created_v1() IS 'pgmq-codegen 0.1.0 fingerprint=d6a5cb2e5455a813';

-- On pgmq.meta, when pgmq.drop_queue removes a queue: remove what we added for
-- it (coalescing's window sequence). SECURITY DEFINER: the role that drops the
-- queue need not own this schema; it only drops coalesce_<table of that queue>.
CREATE OR REPLACE FUNCTION "pgmq_notify".on_queue_dropped_v1()
RETURNS trigger
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $pgmq_codegen$
DECLARE
    v_sequence constant text := format('%I.%I', 'pgmq_notify', 'coalesce_' || pgmq.format_table_name(OLD.queue_name, 'q'));
BEGIN
    IF to_regclass(v_sequence) IS NOT NULL THEN
        EXECUTE 'DROP SEQUENCE ' || v_sequence;
    END IF;
    RETURN NULL;
END
$pgmq_codegen$;

COMMENT ON FUNCTION "pgmq_notify".on_queue_dropped_v1() IS 'pgmq-codegen 0.1.0 fingerprint=d6a5cb2e5455a813';

-- EXECUTE for every role whose pgmq.create, pgmq.send or pgmq.drop_queue runs
-- these, whatever the database's default privileges say.
GRANT EXECUTE ON FUNCTION
    "pgmq_notify".extract_namespace_v1(text),
    "pgmq_notify".namespace_channel_v1(text),
    "pgmq_notify".announce_message_v1(text, text, text, bigint, timestamptz, jsonb, jsonb, text),
    "pgmq_notify".announce_batch_v1(text, text, text, bigint[], timestamptz, text),
    "pgmq_notify".attach_v1(text),
    "pgmq_notify".coalesce_gate_v1(text),
    "pgmq_notify".coalesce_sequence_v1(text),
    "pgmq_notify".on_queue_created_v1(),
    "pgmq_notify".on_queue_dropped_v1()
TO PUBLIC;

-- The triggers on pgmq.meta, re-created (pg_dump does not keep them when PGMQ is
-- an extension: re-apply this migration after a restore).
DO $pgmq_codegen$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_catalog.pg_trigger WHERE tgrelid = 'pgmq.meta'::regclass AND tgname = 'pgmq_notify_on_queue_created_v1') THEN
        DROP TRIGGER "pgmq_notify_on_queue_created_v1" ON pgmq.meta;
    END IF;
    IF EXISTS (SELECT 1 FROM pg_catalog.pg_trigger WHERE tgrelid = 'pgmq.meta'::regclass AND tgname = 'pgmq_notify_on_queue_dropped_v1') THEN
        DROP TRIGGER "pgmq_notify_on_queue_dropped_v1" ON pgmq.meta;
    END IF;
END
$pgmq_codegen$;

CREATE TRIGGER "pgmq_notify_on_queue_created_v1"
    AFTER INSERT ON pgmq.meta
    FOR EACH ROW
    EXECUTE FUNCTION "pgmq_notify".on_queue_created_v1();

COMMENT ON TRIGGER "pgmq_notify_on_queue_created_v1" ON pgmq.meta IS 'pgmq-codegen 0.1.0 fingerprint=d6a5cb2e5455a813';

CREATE TRIGGER "pgmq_notify_on_queue_dropped_v1"
    AFTER DELETE ON pgmq.meta
    FOR EACH ROW
    EXECUTE FUNCTION "pgmq_notify".on_queue_dropped_v1();

COMMENT ON TRIGGER "pgmq_notify_on_queue_dropped_v1" ON pgmq.meta IS 'pgmq-codegen 0.1.0 fingerprint=d6a5cb2e5455a813';

-- Queues that exist already are prepared now; later ones from pgmq.meta.
DO $pgmq_codegen$
BEGIN
    PERFORM "pgmq_notify".attach_v1(queue_name) FROM pgmq.meta;
END
$pgmq_codegen$;

-- Helpers of an earlier install returned pgmq.message_record; CREATE OR REPLACE
-- cannot change a result type, so those are dropped first.
DO $pgmq_codegen$
DECLARE
    v_function regprocedure;
BEGIN
    FOR v_function IN
        SELECT p.oid::regprocedure FROM pg_catalog.pg_proc AS p
        WHERE p.pronamespace = 'pgmq_notify'::regnamespace
          AND p.proname IN ('read_specific_batch_v1', 'read_specific_v1', 'extend_vt_v1')
          AND p.prorettype = pg_catalog.to_regtype('pgmq.message_record')
    LOOP
        EXECUTE 'DROP FUNCTION ' || v_function;
    END LOOP;
END
$pgmq_codegen$;

-- Claims the given messages of a queue that are visible now, for p_vt seconds.
-- A message that is gone, delayed or claimed by someone else is not returned:
-- at most one caller claims a message.
CREATE OR REPLACE FUNCTION "pgmq_notify".read_specific_batch_v1(p_queue_name text, p_msg_ids bigint[], p_vt integer)
RETURNS TABLE(msg_id bigint, read_ct integer, enqueued_at timestamptz, last_read_at timestamptz, vt timestamptz, message jsonb, headers jsonb)
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $pgmq_codegen$
DECLARE
    v_table constant text := pgmq.format_table_name(p_queue_name, 'q');
BEGIN
    RETURN QUERY EXECUTE format(
        $query$
        WITH claimable AS (
            SELECT msg_id FROM pgmq.%I
            WHERE msg_id = ANY($1) AND vt <= clock_timestamp()
            ORDER BY msg_id
            FOR UPDATE SKIP LOCKED
        )
        UPDATE pgmq.%I AS q
        SET vt = clock_timestamp() + make_interval(secs => $2),
            read_ct = q.read_ct + 1,
            last_read_at = clock_timestamp()
        FROM claimable
        WHERE q.msg_id = claimable.msg_id
        RETURNING q.msg_id, q.read_ct, q.enqueued_at, q.last_read_at, q.vt, q.message, q.headers
        $query$,
        v_table, v_table
    ) USING p_msg_ids, p_vt;
END
$pgmq_codegen$;

COMMENT ON FUNCTION "pgmq_notify".read_specific_batch_v1(text, bigint ARRAY, integer) IS 'pgmq-codegen 0.1.0 fingerprint=d6a5cb2e5455a813';

-- Claims one message by id for p_vt seconds; no row if it is gone, delayed or claimed.
CREATE OR REPLACE FUNCTION "pgmq_notify".read_specific_v1(p_queue_name text, p_msg_id bigint, p_vt integer)
RETURNS TABLE(msg_id bigint, read_ct integer, enqueued_at timestamptz, last_read_at timestamptz, vt timestamptz, message jsonb, headers jsonb)
LANGUAGE sql
SET search_path = pg_catalog, pg_temp
AS $pgmq_codegen$
    SELECT * FROM "pgmq_notify".read_specific_batch_v1(p_queue_name, ARRAY[p_msg_id], p_vt)
$pgmq_codegen$;

COMMENT ON FUNCTION "pgmq_notify".read_specific_v1(text, bigint, integer) IS 'pgmq-codegen 0.1.0 fingerprint=d6a5cb2e5455a813';

-- Deletes one message by id; true if it existed.
CREATE OR REPLACE FUNCTION "pgmq_notify".delete_specific_v1(p_queue_name text, p_msg_id bigint)
RETURNS boolean
LANGUAGE sql
SET search_path = pg_catalog, pg_temp
AS $pgmq_codegen$
    SELECT pgmq.delete(p_queue_name, p_msg_id)
$pgmq_codegen$;

COMMENT ON FUNCTION "pgmq_notify".delete_specific_v1(text, bigint) IS 'pgmq-codegen 0.1.0 fingerprint=d6a5cb2e5455a813';

-- Pushes a claimed message's visibility timeout p_seconds further out.
CREATE OR REPLACE FUNCTION "pgmq_notify".extend_vt_v1(p_queue_name text, p_msg_id bigint, p_seconds integer)
RETURNS TABLE(msg_id bigint, read_ct integer, enqueued_at timestamptz, last_read_at timestamptz, vt timestamptz, message jsonb, headers jsonb)
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $pgmq_codegen$
DECLARE
    v_table constant text := pgmq.format_table_name(p_queue_name, 'q');
BEGIN
    RETURN QUERY EXECUTE format(
        $query$
        UPDATE pgmq.%I AS q
        SET vt = greatest(q.vt, clock_timestamp()) + make_interval(secs => $2)
        WHERE q.msg_id = $1
        RETURNING q.msg_id, q.read_ct, q.enqueued_at, q.last_read_at, q.vt, q.message, q.headers
        $query$,
        v_table
    ) USING p_msg_id, p_seconds;
END
$pgmq_codegen$;

COMMENT ON FUNCTION "pgmq_notify".extend_vt_v1(text, bigint, integer) IS 'pgmq-codegen 0.1.0 fingerprint=d6a5cb2e5455a813';

-- Switching to mode "wrapper": queue triggers of an earlier "trigger"/"both"
-- install would announce every message a second time.
DO $pgmq_codegen$
DECLARE
    r record;
BEGIN
    FOR r IN
        SELECT c.relname
        FROM pg_catalog.pg_trigger AS t
        JOIN pg_catalog.pg_class AS c ON c.oid = t.tgrelid
        JOIN pg_catalog.pg_namespace AS ns ON ns.oid = c.relnamespace
        WHERE ns.nspname = 'pgmq' AND t.tgname = 'pgmq_notify_on_insert_v1'
    LOOP
        EXECUTE pg_catalog.format('DROP TRIGGER %I ON pgmq.%I', 'pgmq_notify_on_insert_v1', r.relname);
    END LOOP;
END
$pgmq_codegen$;

-- Not part of this config ("wrapper"); left by an install with another.
DO $pgmq_codegen$
DECLARE
    v_signature text;
BEGIN
    FOREACH v_signature IN ARRAY ARRAY[
        '"pgmq_notify".on_message_insert_v1()'
    ]::text[] LOOP
        IF pg_catalog.to_regprocedure(v_signature) IS NOT NULL THEN
            EXECUTE 'DROP FUNCTION ' || v_signature;
        END IF;
    END LOOP;
END
$pgmq_codegen$;

-- The queue's name as pgmq.meta spells it, so events agree with trigger mode
-- and queue_created whatever case the caller used. SECURITY DEFINER: a role
-- that may send needs no SELECT on pgmq.meta (plain pgmq.send does not).
CREATE OR REPLACE FUNCTION "pgmq_notify".queue_spelling_v1(p_queue_name text)
RETURNS text
LANGUAGE sql
STABLE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $pgmq_codegen$
    SELECT coalesce(
        (SELECT m.queue_name FROM pgmq.meta AS m WHERE m.queue_name = p_queue_name),
        (SELECT m.queue_name FROM pgmq.meta AS m WHERE lower(m.queue_name) = lower(p_queue_name) LIMIT 1),
        p_queue_name
    )
$pgmq_codegen$;

COMMENT ON FUNCTION "pgmq_notify".queue_spelling_v1(text) IS 'pgmq-codegen 0.1.0 fingerprint=d6a5cb2e5455a813';

CREATE OR REPLACE FUNCTION "pgmq_notify".send_with_notify(queue_name text, msg jsonb, headers jsonb, delay timestamptz)
RETURNS SETOF bigint
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $pgmq_codegen$
DECLARE
    v_name text;
    v_namespace text;
    v_id bigint;
    v_ready_at text;
    v_enqueued_at text;
    v_delay integer;
    v_payload text;
BEGIN
    v_name := "pgmq_notify".queue_spelling_v1(send_with_notify.queue_name);
    v_namespace := "pgmq_notify".extract_namespace_v1(v_name);
    FOR v_id IN SELECT * FROM pgmq.send(send_with_notify.queue_name, msg, headers, delay) LOOP
        -- A filling notification queue (a listener stuck): no NOTIFY, catch-up reads deliver.
        IF pg_catalog.pg_notification_queue_usage() OPERATOR(pg_catalog.<=) 0.5::double precision THEN
            IF "pgmq_notify".coalesce_gate_v1(v_name) THEN
                v_ready_at := pg_catalog.to_char(delay AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"');
                v_enqueued_at := pg_catalog.to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"');
                v_delay := CASE WHEN delay OPERATOR(pg_catalog.<=) pg_catalog.clock_timestamp() THEN 0 ELSE least(greatest(pg_catalog.round(extract(epoch FROM delay OPERATOR(pg_catalog.-) pg_catalog.clock_timestamp())), 0), 2147483647)::integer END;
                v_payload := pg_catalog.json_build_object(
                    'event_type', 'message_ready',
                    'msg_id', v_id,
                    'queue_name', v_name,
                    'namespace', v_namespace,
                    'ready_at', v_ready_at,
                    'enqueued_at', v_enqueued_at,
                    'delay_seconds', v_delay,
                    'payload_omitted', true,
                    'coalesced', true,
                    'metadata', pg_catalog.json_build_object('source', 'wrapper')
                )::pg_catalog.text;
                PERFORM pg_catalog.pg_notify("pgmq_notify".namespace_channel_v1(v_namespace), v_payload), pg_catalog.pg_notify('pgmq_message_ready', v_payload);
            END IF;
        END IF;
        RETURN NEXT v_id;
    END LOOP;
END
$pgmq_codegen$;

COMMENT ON FUNCTION "pgmq_notify".send_with_notify(text, jsonb, jsonb, timestamptz) IS 'pgmq-codegen 0.1.0 fingerprint=d6a5cb2e5455a813';

CREATE OR REPLACE FUNCTION "pgmq_notify".send_with_notify(queue_name text, msg jsonb)
RETURNS SETOF bigint
LANGUAGE sql
SET search_path = pg_catalog, pg_temp
AS $pgmq_codegen$
    SELECT * FROM "pgmq_notify".send_with_notify(queue_name, msg, NULL, clock_timestamp())
$pgmq_codegen$;

COMMENT ON FUNCTION "pgmq_notify".send_with_notify(text, jsonb) IS 'pgmq-codegen 0.1.0 fingerprint=d6a5cb2e5455a813';

CREATE OR REPLACE FUNCTION "pgmq_notify".send_with_notify(queue_name text, msg jsonb, headers jsonb)
RETURNS SETOF bigint
LANGUAGE sql
SET search_path = pg_catalog, pg_temp
AS $pgmq_codegen$
    SELECT * FROM "pgmq_notify".send_with_notify(queue_name, msg, headers, clock_timestamp())
$pgmq_codegen$;

COMMENT ON FUNCTION "pgmq_notify".send_with_notify(text, jsonb, jsonb) IS 'pgmq-codegen 0.1.0 fingerprint=d6a5cb2e5455a813';

CREATE OR REPLACE FUNCTION "pgmq_notify".send_with_notify(queue_name text, msg jsonb, delay integer)
RETURNS SETOF bigint
LANGUAGE sql
SET search_path = pg_catalog, pg_temp
AS $pgmq_codegen$
    SELECT * FROM "pgmq_notify".send_with_notify(queue_name, msg, NULL, clock_timestamp() + make_interval(secs => delay))
$pgmq_codegen$;

COMMENT ON FUNCTION "pgmq_notify".send_with_notify(text, jsonb, integer) IS 'pgmq-codegen 0.1.0 fingerprint=d6a5cb2e5455a813';

CREATE OR REPLACE FUNCTION "pgmq_notify".send_with_notify(queue_name text, msg jsonb, delay timestamptz)
RETURNS SETOF bigint
LANGUAGE sql
SET search_path = pg_catalog, pg_temp
AS $pgmq_codegen$
    SELECT * FROM "pgmq_notify".send_with_notify(queue_name, msg, NULL, delay)
$pgmq_codegen$;

COMMENT ON FUNCTION "pgmq_notify".send_with_notify(text, jsonb, timestamptz) IS 'pgmq-codegen 0.1.0 fingerprint=d6a5cb2e5455a813';

CREATE OR REPLACE FUNCTION "pgmq_notify".send_with_notify(queue_name text, msg jsonb, headers jsonb, delay integer)
RETURNS SETOF bigint
LANGUAGE sql
SET search_path = pg_catalog, pg_temp
AS $pgmq_codegen$
    SELECT * FROM "pgmq_notify".send_with_notify(queue_name, msg, headers, clock_timestamp() + make_interval(secs => delay))
$pgmq_codegen$;

COMMENT ON FUNCTION "pgmq_notify".send_with_notify(text, jsonb, jsonb, integer) IS 'pgmq-codegen 0.1.0 fingerprint=d6a5cb2e5455a813';

CREATE OR REPLACE FUNCTION "pgmq_notify".send_batch_with_notify(queue_name text, msgs jsonb[], headers jsonb[], delay timestamptz)
RETURNS SETOF bigint
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $pgmq_codegen$
DECLARE
    v_name text;
    v_namespace text;
    v_ids bigint[];
BEGIN
    v_name := "pgmq_notify".queue_spelling_v1(send_batch_with_notify.queue_name);
    v_namespace := "pgmq_notify".extract_namespace_v1(v_name);
    SELECT array_agg(sent.id) INTO v_ids
    FROM pgmq.send_batch(send_batch_with_notify.queue_name, msgs, headers, delay) AS sent(id);
    IF cardinality(v_ids) = 1 THEN
        PERFORM "pgmq_notify".announce_message_v1(v_name, v_namespace, "pgmq_notify".namespace_channel_v1(v_namespace),
                                         v_ids[1], delay, msgs[1], headers[1], 'wrapper');
    ELSIF cardinality(v_ids) > 1 THEN
        PERFORM "pgmq_notify".announce_batch_v1(v_name, v_namespace, "pgmq_notify".namespace_channel_v1(v_namespace),
                                       v_ids, delay, 'wrapper');
    END IF;
    RETURN QUERY SELECT unnest(v_ids);
END
$pgmq_codegen$;

COMMENT ON FUNCTION "pgmq_notify".send_batch_with_notify(text, jsonb ARRAY, jsonb ARRAY, timestamptz) IS 'pgmq-codegen 0.1.0 fingerprint=d6a5cb2e5455a813';

CREATE OR REPLACE FUNCTION "pgmq_notify".send_batch_with_notify(queue_name text, msgs jsonb[])
RETURNS SETOF bigint
LANGUAGE sql
SET search_path = pg_catalog, pg_temp
AS $pgmq_codegen$
    SELECT * FROM "pgmq_notify".send_batch_with_notify(queue_name, msgs, NULL, clock_timestamp())
$pgmq_codegen$;

COMMENT ON FUNCTION "pgmq_notify".send_batch_with_notify(text, jsonb ARRAY) IS 'pgmq-codegen 0.1.0 fingerprint=d6a5cb2e5455a813';

CREATE OR REPLACE FUNCTION "pgmq_notify".send_batch_with_notify(queue_name text, msgs jsonb[], headers jsonb[])
RETURNS SETOF bigint
LANGUAGE sql
SET search_path = pg_catalog, pg_temp
AS $pgmq_codegen$
    SELECT * FROM "pgmq_notify".send_batch_with_notify(queue_name, msgs, headers, clock_timestamp())
$pgmq_codegen$;

COMMENT ON FUNCTION "pgmq_notify".send_batch_with_notify(text, jsonb ARRAY, jsonb ARRAY) IS 'pgmq-codegen 0.1.0 fingerprint=d6a5cb2e5455a813';

CREATE OR REPLACE FUNCTION "pgmq_notify".send_batch_with_notify(queue_name text, msgs jsonb[], delay integer)
RETURNS SETOF bigint
LANGUAGE sql
SET search_path = pg_catalog, pg_temp
AS $pgmq_codegen$
    SELECT * FROM "pgmq_notify".send_batch_with_notify(queue_name, msgs, NULL, clock_timestamp() + make_interval(secs => delay))
$pgmq_codegen$;

COMMENT ON FUNCTION "pgmq_notify".send_batch_with_notify(text, jsonb ARRAY, integer) IS 'pgmq-codegen 0.1.0 fingerprint=d6a5cb2e5455a813';

CREATE OR REPLACE FUNCTION "pgmq_notify".send_batch_with_notify(queue_name text, msgs jsonb[], delay timestamptz)
RETURNS SETOF bigint
LANGUAGE sql
SET search_path = pg_catalog, pg_temp
AS $pgmq_codegen$
    SELECT * FROM "pgmq_notify".send_batch_with_notify(queue_name, msgs, NULL, delay)
$pgmq_codegen$;

COMMENT ON FUNCTION "pgmq_notify".send_batch_with_notify(text, jsonb ARRAY, timestamptz) IS 'pgmq-codegen 0.1.0 fingerprint=d6a5cb2e5455a813';

CREATE OR REPLACE FUNCTION "pgmq_notify".send_batch_with_notify(queue_name text, msgs jsonb[], headers jsonb[], delay integer)
RETURNS SETOF bigint
LANGUAGE sql
SET search_path = pg_catalog, pg_temp
AS $pgmq_codegen$
    SELECT * FROM "pgmq_notify".send_batch_with_notify(queue_name, msgs, headers, clock_timestamp() + make_interval(secs => delay))
$pgmq_codegen$;

COMMENT ON FUNCTION "pgmq_notify".send_batch_with_notify(text, jsonb ARRAY, jsonb ARRAY, integer) IS 'pgmq-codegen 0.1.0 fingerprint=d6a5cb2e5455a813';
