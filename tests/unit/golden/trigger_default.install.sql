-- pgmq-codegen 0.1.0: install of PGMQ notifications
-- config fingerprint 6206a729a3523500; mode trigger; schema pgmq_notify
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
           OR (c.relnamespace = 'pgmq'::regnamespace
               AND c.relname IN (SELECT pgmq.format_table_name(m.queue_name, 'q') FROM pgmq.meta AS m)
               AND NOT EXISTS (
                   SELECT 1 FROM pg_catalog.pg_trigger AS t
                   WHERE t.tgrelid = c.oid AND t.tgname = 'pgmq_notify_on_insert_v1' AND t.tgenabled = 'O'
                     AND pg_catalog.obj_description(t.oid, 'pg_trigger') = 'pgmq-codegen 0.1.0 fingerprint=6206a729a3523500'))
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

COMMENT ON SCHEMA "pgmq_notify" IS 'pgmq-codegen 0.1.0 fingerprint=6206a729a3523500';

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

COMMENT ON FUNCTION "pgmq_notify".extract_namespace_v1(text) IS 'pgmq-codegen 0.1.0 fingerprint=6206a729a3523500';

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

COMMENT ON FUNCTION "pgmq_notify".namespace_channel_v1(text) IS 'pgmq-codegen 0.1.0 fingerprint=6206a729a3523500';

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
    v_ready_at := pg_catalog.to_char(p_vt AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"');
    v_enqueued_at := pg_catalog.to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"');
    v_delay := CASE WHEN p_vt OPERATOR(pg_catalog.<=) pg_catalog.clock_timestamp() THEN 0 ELSE least(greatest(pg_catalog.round(extract(epoch FROM p_vt OPERATOR(pg_catalog.-) pg_catalog.clock_timestamp())), 0), 2147483647)::integer END;
    v_payload := pg_catalog.json_build_object(
        'event_type', 'message_with_payload',
        'msg_id', p_msg_id,
        'queue_name', p_queue_name,
        'namespace', p_namespace,
        'message', p_message,
        'headers', p_headers,
        'ready_at', v_ready_at,
        'enqueued_at', v_enqueued_at,
        'delay_seconds', v_delay,
        'metadata', pg_catalog.json_build_object('source', p_source)
    )::pg_catalog.text;
    IF pg_catalog.octet_length(v_payload) OPERATOR(pg_catalog.>) 7800 THEN
        v_payload := pg_catalog.json_build_object(
            'event_type', 'message_ready',
            'msg_id', p_msg_id,
            'queue_name', p_queue_name,
            'namespace', p_namespace,
            'ready_at', v_ready_at,
            'enqueued_at', v_enqueued_at,
            'delay_seconds', v_delay,
            'payload_omitted', true,
            'metadata', pg_catalog.json_build_object('source', p_source)
        )::pg_catalog.text;
    END IF;
    PERFORM pg_catalog.pg_notify(p_channel, v_payload), pg_catalog.pg_notify('pgmq_message_ready', v_payload);
END
$pgmq_codegen$;

COMMENT ON FUNCTION "pgmq_notify".announce_message_v1(text, text, text, bigint, timestamptz, jsonb, jsonb, text) IS 'pgmq-codegen 0.1.0 fingerprint=6206a729a3523500';

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
                'metadata', pg_catalog.json_build_object('source', p_source)
            )::pg_catalog.text;
            PERFORM pg_catalog.pg_notify(p_channel, v_payload), pg_catalog.pg_notify('pgmq_message_ready', v_payload);
        END LOOP;
    END IF;
END
$pgmq_codegen$;

COMMENT ON FUNCTION "pgmq_notify".announce_batch_v1(text, text, text, bigint ARRAY, timestamptz, text) IS 'pgmq-codegen 0.1.0 fingerprint=6206a729a3523500';

-- Statement-level trigger on each queue table: one event per statement (or a
-- few batch_ready events), read from the transition table. Its arguments are
-- the queue name as pgmq.meta spells it, its namespace and channel. What a
-- single send pays is mostly executor set-up, once per query and once per
-- transaction for each PL/pgSQL expression: so a single send runs two queries
-- (is there a second row? the row with its event built) and one PERFORM for
-- both channels, with no assignment per field. Batches are announced inline too
-- (announce_batch_v1 shares the statements).
-- This function alone does not pin search_path in its definition: pinning costs
-- every send a configuration change and back (about 7 µs of a send's backend
-- CPU). Instead every function, operator and type it names carries its schema,
-- so the caller's search_path cannot redirect it (a test runs it under a
-- hostile one); new_rows is the transition table, which no schema can shadow.
CREATE OR REPLACE FUNCTION "pgmq_notify".on_message_insert_v1()
RETURNS trigger
LANGUAGE plpgsql
AS $pgmq_codegen$
DECLARE
    v_msg_id bigint;
    v_vt pg_catalog.timestamptz;
    v_enqueued pg_catalog.timestamptz;
    v_ready_at pg_catalog.text;
    v_enqueued_at pg_catalog.text;
    v_delay integer;
    v_payload pg_catalog.text;
    v_budget integer;
    v_width integer;
    v_size integer;
    v_start integer;
    v_all record;
    r record;
BEGIN
    -- The notification queue is filling up (a listener stuck): send nothing rather
    -- than risk failing the sender's commit; catch-up reads deliver these messages.
    IF NOT pg_catalog.pg_notification_queue_usage() OPERATOR(pg_catalog.<=) 0.5::double precision THEN
        RETURN NULL;
    END IF;
    -- One row or more? Probing for a second row is cheaper than counting them all.
    PERFORM FROM new_rows OFFSET 1 LIMIT 1;
    IF NOT FOUND THEN
        -- A single send: the one query that reads the row builds its event too.
        SELECT msg_id, vt, enqueued_at,
               pg_catalog.format('{"event_type" : "message_with_payload", "msg_id" : %s, "queue_name" : %s, "namespace" : %s, "message" : %s, "headers" : %s, "ready_at" : "%s", "enqueued_at" : "%s", "delay_seconds" : %s, "metadata" : {"source" : "trigger"}}',
                   msg_id,
                   pg_catalog.to_json(TG_ARGV[0]),
                   pg_catalog.to_json(TG_ARGV[1]),
                   message,
                   coalesce(headers::pg_catalog.text, 'null'),
                   pg_catalog.to_char(vt AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
                   pg_catalog.to_char(enqueued_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
                   CASE WHEN vt OPERATOR(pg_catalog.<=) pg_catalog.clock_timestamp() THEN 0 ELSE least(greatest(pg_catalog.round(extract(epoch FROM vt OPERATOR(pg_catalog.-) pg_catalog.clock_timestamp())), 0), 2147483647)::integer END)
        INTO v_msg_id, v_vt, v_enqueued, v_payload
        FROM new_rows;
        IF FOUND THEN
            -- Too big to carry the message: a signal to fetch it by id.
            IF pg_catalog.octet_length(v_payload) OPERATOR(pg_catalog.>) 7800 THEN
                v_payload := pg_catalog.format('{"event_type" : "message_ready", "msg_id" : %s, "queue_name" : %s, "namespace" : %s, "ready_at" : "%s", "enqueued_at" : "%s", "delay_seconds" : %s, "payload_omitted" : true, "metadata" : {"source" : "trigger"}}',
                    v_msg_id,
                    pg_catalog.to_json(TG_ARGV[0]),
                    pg_catalog.to_json(TG_ARGV[1]),
                    pg_catalog.to_char(v_vt AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
                    pg_catalog.to_char(v_enqueued AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
                    CASE WHEN v_vt OPERATOR(pg_catalog.<=) pg_catalog.clock_timestamp() THEN 0 ELSE least(greatest(pg_catalog.round(extract(epoch FROM v_vt OPERATOR(pg_catalog.-) pg_catalog.clock_timestamp())), 0), 2147483647)::integer END);
            END IF;
            PERFORM pg_catalog.pg_notify(TG_ARGV[2], v_payload), pg_catalog.pg_notify('pgmq_message_ready', v_payload);
        END IF;
    ELSE
        -- One aggregate, no sort by vt, for the common batch: every row has the same
        -- vt (pgmq.send_batch gives them one), and the aggregate builds its event
        -- too, all but the queue's names (see ids_event: no parameters, one plan).
        -- Ids too many for one event, or other statements (one event per vt):
        -- the general statements.
        SELECT pg_catalog.min(vt) AS vt, pg_catalog.max(vt) AS last_vt, pg_catalog.min(enqueued_at) AS enqueued_at,
               pg_catalog.array_agg(msg_id ORDER BY msg_id) AS ids,
               -- Not built when the ids alone would not fit (at most as many digits as the
               -- largest, and a comma each): such a batch is split below anyway.
               CASE WHEN pg_catalog.count(*) OPERATOR(pg_catalog.*) (pg_catalog.octet_length(pg_catalog.max(msg_id)::pg_catalog.text) OPERATOR(pg_catalog.+) 1)
                         OPERATOR(pg_catalog.<=) 7800 THEN
               pg_catalog.format('{"event_type" : "batch_ready", "msg_ids" : %s, "queue_name" : %%s, "namespace" : %%s, "message_count" : %s, "ready_at" : "%s", "enqueued_at" : "%s", "delay_seconds" : %s, "metadata" : {"source" : "trigger"}}',
                   pg_catalog.to_json(pg_catalog.array_agg(msg_id ORDER BY msg_id)),
                   pg_catalog.count(*),
                   pg_catalog.to_char(pg_catalog.min(vt) AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
                   pg_catalog.to_char(pg_catalog.min(enqueued_at) AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
                   CASE WHEN pg_catalog.min(vt) OPERATOR(pg_catalog.<=) pg_catalog.clock_timestamp() THEN 0 ELSE least(greatest(pg_catalog.round(extract(epoch FROM pg_catalog.min(vt) OPERATOR(pg_catalog.-) pg_catalog.clock_timestamp())), 0), 2147483647)::integer END)
               END AS event
        INTO v_all
        FROM new_rows;
        -- A batch with no event built (NULL) fails the size test and is split below.
        v_payload := pg_catalog.format(v_all.event, pg_catalog.to_json(TG_ARGV[0]), pg_catalog.to_json(TG_ARGV[1]));
        IF v_all.vt OPERATOR(pg_catalog.=) v_all.last_vt AND pg_catalog.octet_length(v_payload) OPERATOR(pg_catalog.<=) 7800 THEN
            PERFORM pg_catalog.pg_notify(TG_ARGV[2], v_payload), pg_catalog.pg_notify('pgmq_message_ready', v_payload);
        ELSIF v_all.vt OPERATOR(pg_catalog.=) v_all.last_vt THEN
            v_ready_at := pg_catalog.to_char(v_all.vt AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"');
            v_enqueued_at := pg_catalog.to_char(v_all.enqueued_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"');
            v_delay := CASE WHEN v_all.vt OPERATOR(pg_catalog.<=) pg_catalog.clock_timestamp() THEN 0 ELSE least(greatest(pg_catalog.round(extract(epoch FROM v_all.vt OPERATOR(pg_catalog.-) pg_catalog.clock_timestamp())), 0), 2147483647)::integer END;
            -- The common case: every id fits one event.
            v_payload := pg_catalog.json_build_object(
                'event_type', 'batch_ready',
                'msg_ids', pg_catalog.to_json(v_all.ids),
                'queue_name', TG_ARGV[0],
                'namespace', TG_ARGV[1],
                'message_count', pg_catalog.cardinality(v_all.ids),
                'ready_at', v_ready_at,
                'enqueued_at', v_enqueued_at,
                'delay_seconds', v_delay,
                'metadata', pg_catalog.json_build_object('source', 'trigger')
            )::pg_catalog.text;
            IF pg_catalog.octet_length(v_payload) OPERATOR(pg_catalog.<=) 7800 THEN
                PERFORM pg_catalog.pg_notify(TG_ARGV[2], v_payload), pg_catalog.pg_notify('pgmq_message_ready', v_payload);
            ELSE
                -- Too many ids for one event: split them into chunks of as many ids as fit
                -- when every id is as wide as the widest, so that each chunk fits with no
                -- arithmetic per id. Bytes left for a chunk's ids ("1,2,3," counted with a
                -- comma each): the limit, less the event without its ids' array, less room
                -- for message_count's digits (10).
                v_budget := 7790 OPERATOR(pg_catalog.-) (pg_catalog.octet_length(v_payload) OPERATOR(pg_catalog.-) pg_catalog.octet_length(pg_catalog.to_json(v_all.ids)::pg_catalog.text) OPERATOR(pg_catalog.+) 2);
                SELECT GREATEST(pg_catalog.octet_length(pg_catalog.min(id)::pg_catalog.text), pg_catalog.octet_length(pg_catalog.max(id)::pg_catalog.text)) OPERATOR(pg_catalog.+) 1
                INTO v_width
                FROM pg_catalog.unnest(v_all.ids) AS u(id);
                v_size := GREATEST(v_budget OPERATOR(pg_catalog./) v_width, 1);
                FOR v_start IN 1 .. pg_catalog.cardinality(v_all.ids) BY v_size LOOP
                    v_payload := pg_catalog.json_build_object(
                        'event_type', 'batch_ready',
                        'msg_ids', pg_catalog.to_json((v_all.ids)[v_start:v_start OPERATOR(pg_catalog.+) v_size OPERATOR(pg_catalog.-) 1]),
                        'queue_name', TG_ARGV[0],
                        'namespace', TG_ARGV[1],
                        'message_count', pg_catalog.cardinality((v_all.ids)[v_start:v_start OPERATOR(pg_catalog.+) v_size OPERATOR(pg_catalog.-) 1]),
                        'ready_at', v_ready_at,
                        'enqueued_at', v_enqueued_at,
                        'delay_seconds', v_delay,
                        'metadata', pg_catalog.json_build_object('source', 'trigger')
                    )::pg_catalog.text;
                    PERFORM pg_catalog.pg_notify(TG_ARGV[2], v_payload), pg_catalog.pg_notify('pgmq_message_ready', v_payload);
                END LOOP;
            END IF;
        ELSE
            FOR r IN
                SELECT vt, pg_catalog.min(enqueued_at) AS enqueued_at, pg_catalog.array_agg(msg_id ORDER BY msg_id) AS ids
                FROM new_rows GROUP BY vt ORDER BY vt
            LOOP
                v_ready_at := pg_catalog.to_char(r.vt AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"');
                v_enqueued_at := pg_catalog.to_char(r.enqueued_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"');
                v_delay := CASE WHEN r.vt OPERATOR(pg_catalog.<=) pg_catalog.clock_timestamp() THEN 0 ELSE least(greatest(pg_catalog.round(extract(epoch FROM r.vt OPERATOR(pg_catalog.-) pg_catalog.clock_timestamp())), 0), 2147483647)::integer END;
                -- The common case: every id fits one event.
                v_payload := pg_catalog.json_build_object(
                    'event_type', 'batch_ready',
                    'msg_ids', pg_catalog.to_json(r.ids),
                    'queue_name', TG_ARGV[0],
                    'namespace', TG_ARGV[1],
                    'message_count', pg_catalog.cardinality(r.ids),
                    'ready_at', v_ready_at,
                    'enqueued_at', v_enqueued_at,
                    'delay_seconds', v_delay,
                    'metadata', pg_catalog.json_build_object('source', 'trigger')
                )::pg_catalog.text;
                IF pg_catalog.octet_length(v_payload) OPERATOR(pg_catalog.<=) 7800 THEN
                    PERFORM pg_catalog.pg_notify(TG_ARGV[2], v_payload), pg_catalog.pg_notify('pgmq_message_ready', v_payload);
                ELSE
                    -- Too many ids for one event: split them into chunks of as many ids as fit
                    -- when every id is as wide as the widest, so that each chunk fits with no
                    -- arithmetic per id. Bytes left for a chunk's ids ("1,2,3," counted with a
                    -- comma each): the limit, less the event without its ids' array, less room
                    -- for message_count's digits (10).
                    v_budget := 7790 OPERATOR(pg_catalog.-) (pg_catalog.octet_length(v_payload) OPERATOR(pg_catalog.-) pg_catalog.octet_length(pg_catalog.to_json(r.ids)::pg_catalog.text) OPERATOR(pg_catalog.+) 2);
                    SELECT GREATEST(pg_catalog.octet_length(pg_catalog.min(id)::pg_catalog.text), pg_catalog.octet_length(pg_catalog.max(id)::pg_catalog.text)) OPERATOR(pg_catalog.+) 1
                    INTO v_width
                    FROM pg_catalog.unnest(r.ids) AS u(id);
                    v_size := GREATEST(v_budget OPERATOR(pg_catalog./) v_width, 1);
                    FOR v_start IN 1 .. pg_catalog.cardinality(r.ids) BY v_size LOOP
                        v_payload := pg_catalog.json_build_object(
                            'event_type', 'batch_ready',
                            'msg_ids', pg_catalog.to_json((r.ids)[v_start:v_start OPERATOR(pg_catalog.+) v_size OPERATOR(pg_catalog.-) 1]),
                            'queue_name', TG_ARGV[0],
                            'namespace', TG_ARGV[1],
                            'message_count', pg_catalog.cardinality((r.ids)[v_start:v_start OPERATOR(pg_catalog.+) v_size OPERATOR(pg_catalog.-) 1]),
                            'ready_at', v_ready_at,
                            'enqueued_at', v_enqueued_at,
                            'delay_seconds', v_delay,
                            'metadata', pg_catalog.json_build_object('source', 'trigger')
                        )::pg_catalog.text;
                        PERFORM pg_catalog.pg_notify(TG_ARGV[2], v_payload), pg_catalog.pg_notify('pgmq_message_ready', v_payload);
                    END LOOP;
                END IF;
            END LOOP;
        END IF;
    END IF;
    RETURN NULL;
END
$pgmq_codegen$;

COMMENT ON FUNCTION "pgmq_notify".on_message_insert_v1() IS 'pgmq-codegen 0.1.0 fingerprint=6206a729a3523500';

-- Prepares one queue's table: puts the message trigger on it (replacing an older one).
CREATE OR REPLACE FUNCTION "pgmq_notify".attach_v1(p_queue_name text)
RETURNS boolean
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $pgmq_codegen$
DECLARE
    v_table constant text := pgmq.format_table_name(p_queue_name, 'q');
    v_namespace constant text := "pgmq_notify".extract_namespace_v1(p_queue_name);
    v_relation regclass := to_regclass(format('pgmq.%I', v_table));
    v_channel constant text := "pgmq_notify".namespace_channel_v1(v_namespace);
    v_encoding constant name := getdatabaseencoding();
BEGIN
    IF v_relation IS NULL THEN
        RAISE WARNING 'pgmq-codegen: table pgmq.% of queue % not found; its messages will not notify', v_table, p_queue_name;
        RETURN false;
    END IF;
    -- A current trigger is left alone: re-applying the migration then needs no
    -- ownership of queue tables that other roles created.
    IF EXISTS (
        SELECT 1 FROM pg_trigger AS t
        WHERE t.tgrelid = v_relation AND t.tgname = 'pgmq_notify_on_insert_v1' AND t.tgenabled = 'O'
          AND t.tgfoid = '"pgmq_notify".on_message_insert_v1()'::regprocedure
          AND t.tgargs = convert_to(p_queue_name, v_encoding) || '\x00'::bytea || convert_to(v_namespace, v_encoding)
                         || '\x00'::bytea || convert_to(v_channel, v_encoding) || '\x00'::bytea
          AND obj_description(t.oid, 'pg_trigger') = 'pgmq-codegen 0.1.0 fingerprint=6206a729a3523500'
    ) THEN
        RETURN true;
    END IF;
    IF EXISTS (SELECT 1 FROM pg_trigger AS t WHERE t.tgrelid = v_relation AND t.tgname = 'pgmq_notify_on_insert_v1') THEN
        EXECUTE format('DROP TRIGGER %I ON pgmq.%I', 'pgmq_notify_on_insert_v1', v_table);
    END IF;
    EXECUTE format(
        'CREATE TRIGGER %I AFTER INSERT ON pgmq.%I REFERENCING NEW TABLE AS new_rows '
        'FOR EACH STATEMENT EXECUTE FUNCTION %s(%L, %L, %L)',
        'pgmq_notify_on_insert_v1', v_table, '"pgmq_notify".on_message_insert_v1',
        p_queue_name, v_namespace, v_channel
    );
    EXECUTE format('COMMENT ON TRIGGER %I ON pgmq.%I IS %L', 'pgmq_notify_on_insert_v1', v_table, 'pgmq-codegen 0.1.0 fingerprint=6206a729a3523500');
    RETURN true;
END
$pgmq_codegen$;

COMMENT ON FUNCTION "pgmq_notify".attach_v1(text) IS 'pgmq-codegen 0.1.0 fingerprint=6206a729a3523500';

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

COMMENT ON FUNCTION "pgmq_notify".on_queue_created_v1() IS 'pgmq-codegen 0.1.0 fingerprint=6206a729a3523500';

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

COMMENT ON FUNCTION "pgmq_notify".on_queue_dropped_v1() IS 'pgmq-codegen 0.1.0 fingerprint=6206a729a3523500';

-- EXECUTE for every role whose pgmq.create, pgmq.send or pgmq.drop_queue runs
-- these, whatever the database's default privileges say.
GRANT EXECUTE ON FUNCTION
    "pgmq_notify".extract_namespace_v1(text),
    "pgmq_notify".namespace_channel_v1(text),
    "pgmq_notify".announce_message_v1(text, text, text, bigint, timestamptz, jsonb, jsonb, text),
    "pgmq_notify".announce_batch_v1(text, text, text, bigint[], timestamptz, text),
    "pgmq_notify".on_message_insert_v1(),
    "pgmq_notify".attach_v1(text),
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

COMMENT ON TRIGGER "pgmq_notify_on_queue_created_v1" ON pgmq.meta IS 'pgmq-codegen 0.1.0 fingerprint=6206a729a3523500';

CREATE TRIGGER "pgmq_notify_on_queue_dropped_v1"
    AFTER DELETE ON pgmq.meta
    FOR EACH ROW
    EXECUTE FUNCTION "pgmq_notify".on_queue_dropped_v1();

COMMENT ON TRIGGER "pgmq_notify_on_queue_dropped_v1" ON pgmq.meta IS 'pgmq-codegen 0.1.0 fingerprint=6206a729a3523500';

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

COMMENT ON FUNCTION "pgmq_notify".read_specific_batch_v1(text, bigint ARRAY, integer) IS 'pgmq-codegen 0.1.0 fingerprint=6206a729a3523500';

-- Claims one message by id for p_vt seconds; no row if it is gone, delayed or claimed.
CREATE OR REPLACE FUNCTION "pgmq_notify".read_specific_v1(p_queue_name text, p_msg_id bigint, p_vt integer)
RETURNS TABLE(msg_id bigint, read_ct integer, enqueued_at timestamptz, last_read_at timestamptz, vt timestamptz, message jsonb, headers jsonb)
LANGUAGE sql
SET search_path = pg_catalog, pg_temp
AS $pgmq_codegen$
    SELECT * FROM "pgmq_notify".read_specific_batch_v1(p_queue_name, ARRAY[p_msg_id], p_vt)
$pgmq_codegen$;

COMMENT ON FUNCTION "pgmq_notify".read_specific_v1(text, bigint, integer) IS 'pgmq-codegen 0.1.0 fingerprint=6206a729a3523500';

-- Deletes one message by id; true if it existed.
CREATE OR REPLACE FUNCTION "pgmq_notify".delete_specific_v1(p_queue_name text, p_msg_id bigint)
RETURNS boolean
LANGUAGE sql
SET search_path = pg_catalog, pg_temp
AS $pgmq_codegen$
    SELECT pgmq.delete(p_queue_name, p_msg_id)
$pgmq_codegen$;

COMMENT ON FUNCTION "pgmq_notify".delete_specific_v1(text, bigint) IS 'pgmq-codegen 0.1.0 fingerprint=6206a729a3523500';

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

COMMENT ON FUNCTION "pgmq_notify".extend_vt_v1(text, bigint, integer) IS 'pgmq-codegen 0.1.0 fingerprint=6206a729a3523500';

-- Coalescing is off: remove the per-queue sequences an earlier install made.
DO $pgmq_codegen$
DECLARE
    r record;
BEGIN
    FOR r IN
        SELECT c.relname FROM pg_catalog.pg_class AS c
        WHERE c.relkind = 'S' AND c.relnamespace = 'pgmq_notify'::regnamespace
          AND c.relname LIKE 'coalesce_%'
    LOOP
        EXECUTE pg_catalog.format('DROP SEQUENCE %I.%I', 'pgmq_notify', r.relname);
    END LOOP;
END
$pgmq_codegen$;

-- Not part of this config ("trigger", no coalescing); left by an install with another.
DO $pgmq_codegen$
DECLARE
    v_signature text;
BEGIN
    FOREACH v_signature IN ARRAY ARRAY[
        '"pgmq_notify".coalesce_gate_v1(text)',
        '"pgmq_notify".coalesce_sequence_v1(text)',
        '"pgmq_notify".queue_spelling_v1(text)',
        '"pgmq_notify".send_with_notify(text, jsonb, jsonb, timestamptz)',
        '"pgmq_notify".send_with_notify(text, jsonb)',
        '"pgmq_notify".send_with_notify(text, jsonb, jsonb)',
        '"pgmq_notify".send_with_notify(text, jsonb, integer)',
        '"pgmq_notify".send_with_notify(text, jsonb, timestamptz)',
        '"pgmq_notify".send_with_notify(text, jsonb, jsonb, integer)',
        '"pgmq_notify".send_batch_with_notify(text, jsonb[], jsonb[], timestamptz)',
        '"pgmq_notify".send_batch_with_notify(text, jsonb[])',
        '"pgmq_notify".send_batch_with_notify(text, jsonb[], jsonb[])',
        '"pgmq_notify".send_batch_with_notify(text, jsonb[], integer)',
        '"pgmq_notify".send_batch_with_notify(text, jsonb[], timestamptz)',
        '"pgmq_notify".send_batch_with_notify(text, jsonb[], jsonb[], integer)'
    ]::text[] LOOP
        IF pg_catalog.to_regprocedure(v_signature) IS NOT NULL THEN
            EXECUTE 'DROP FUNCTION ' || v_signature;
        END IF;
    END LOOP;
END
$pgmq_codegen$;
