-- The default queue trigger's function as pgmq-codegen rendered it at commit
-- 43bf804, before issue #20 rebuilt its single-send and batch paths around one
-- query each (kept verbatim, its own comment included). The cost benchmark
-- installs a default trigger in a database of its own, then replaces the
-- function with this one (variant "trigger_before"), so that one run measures
-- the old and the new trigger side by side.
-- Statement-level trigger on each queue table: one event per statement (or a
-- few batch_ready events), read from the transition table. Its arguments are
-- the queue name as pgmq.meta spells it, its namespace and channel. A single
-- send reads the transition table once and announces inline: each query on a
-- transition table is planned anew, and it is most of what a send pays.
-- Batches are announced inline too (announce_batch_v1 shares the statements).
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
    v_count bigint;
    v_msg_id bigint;
    v_vt pg_catalog.timestamptz;
    v_enqueued pg_catalog.timestamptz;
    v_message pg_catalog.jsonb;
    v_headers pg_catalog.jsonb;
    v_ready_at pg_catalog.text;
    v_enqueued_at pg_catalog.text;
    v_delay integer;
    v_payload pg_catalog.text;
    v_budget integer;
    v_chunk record;
    v_all record;
    r record;
BEGIN
    -- The notification queue is filling up (a listener stuck): send nothing rather
    -- than risk failing the sender's commit; catch-up reads deliver these messages.
    IF NOT pg_catalog.pg_notification_queue_usage() OPERATOR(pg_catalog.<=) 0.5::double precision THEN
        RETURN NULL;
    END IF;
    SELECT pg_catalog.count(*) OVER (), msg_id, vt, enqueued_at, message, headers
    INTO v_count, v_msg_id, v_vt, v_enqueued, v_message, v_headers
    FROM new_rows
    LIMIT 1;
    IF v_count OPERATOR(pg_catalog.=) 1 THEN
        v_ready_at := pg_catalog.to_char(v_vt AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"');
        v_enqueued_at := pg_catalog.to_char(v_enqueued AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"');
        v_delay := least(greatest(pg_catalog.round(extract(epoch FROM v_vt OPERATOR(pg_catalog.-) pg_catalog.clock_timestamp())), 0), 2147483647)::integer;
        v_payload := pg_catalog.json_build_object(
            'event_type', 'message_with_payload',
            'msg_id', v_msg_id,
            'queue_name', TG_ARGV[0],
            'namespace', TG_ARGV[1],
            'message', v_message,
            'headers', v_headers,
            'ready_at', v_ready_at,
            'enqueued_at', v_enqueued_at,
            'delay_seconds', v_delay,
            'metadata', pg_catalog.json_build_object('source', 'trigger')
        )::pg_catalog.text;
        IF pg_catalog.octet_length(v_payload) OPERATOR(pg_catalog.>) 7800 THEN
            v_payload := pg_catalog.json_build_object(
                'event_type', 'message_ready',
                'msg_id', v_msg_id,
                'queue_name', TG_ARGV[0],
                'namespace', TG_ARGV[1],
                'ready_at', v_ready_at,
                'enqueued_at', v_enqueued_at,
                'delay_seconds', v_delay,
                'payload_omitted', true,
                'metadata', pg_catalog.json_build_object('source', 'trigger')
            )::pg_catalog.text;
        END IF;
        PERFORM pg_catalog.pg_notify(TG_ARGV[2], v_payload);
        PERFORM pg_catalog.pg_notify('pgmq_message_ready', v_payload);
    ELSIF v_count OPERATOR(pg_catalog.>) 1 THEN
        -- One aggregate, no sort by vt, for the common batch: every row has the same
        -- vt (pgmq.send_batch gives them one). Other statements: one event per vt.
        SELECT pg_catalog.min(vt) AS vt, pg_catalog.max(vt) AS last_vt, pg_catalog.min(enqueued_at) AS enqueued_at,
               pg_catalog.array_agg(msg_id ORDER BY msg_id) AS ids
        INTO v_all
        FROM new_rows;
        IF v_all.vt OPERATOR(pg_catalog.=) v_all.last_vt THEN
            v_ready_at := pg_catalog.to_char(v_all.vt AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"');
            v_enqueued_at := pg_catalog.to_char(v_all.enqueued_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"');
            v_delay := least(greatest(pg_catalog.round(extract(epoch FROM v_all.vt OPERATOR(pg_catalog.-) pg_catalog.clock_timestamp())), 0), 2147483647)::integer;
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
                PERFORM pg_catalog.pg_notify(TG_ARGV[2], v_payload);
                PERFORM pg_catalog.pg_notify('pgmq_message_ready', v_payload);
            ELSE
                -- Too many ids for one event: split them. Bytes left for ids per event are
                -- the limit, less the event without ids, less room for message_count's
                -- digits (10) and for the one id a chunk may overshoot by (21).
                v_budget := 7769 OPERATOR(pg_catalog.-) (pg_catalog.octet_length(v_payload) OPERATOR(pg_catalog.-) pg_catalog.octet_length(pg_catalog.to_json(v_all.ids)::pg_catalog.text) OPERATOR(pg_catalog.+) 2);
                FOR v_chunk IN
                    SELECT pg_catalog.array_agg(id ORDER BY ord) AS ids, pg_catalog.count(*) AS n
                    FROM (
                        SELECT id, ord, pg_catalog.sum(pg_catalog.octet_length(id::pg_catalog.text) OPERATOR(pg_catalog.+) 1) OVER (ORDER BY ord) AS cum
                        FROM pg_catalog.unnest(v_all.ids) WITH ORDINALITY AS u(id, ord)
                    ) AS numbered
                    GROUP BY (cum OPERATOR(pg_catalog.-) 1) OPERATOR(pg_catalog./) v_budget
                    ORDER BY (cum OPERATOR(pg_catalog.-) 1) OPERATOR(pg_catalog./) v_budget
                LOOP
                    v_payload := pg_catalog.json_build_object(
                        'event_type', 'batch_ready',
                        'msg_ids', pg_catalog.to_json(v_chunk.ids),
                        'queue_name', TG_ARGV[0],
                        'namespace', TG_ARGV[1],
                        'message_count', v_chunk.n,
                        'ready_at', v_ready_at,
                        'enqueued_at', v_enqueued_at,
                        'delay_seconds', v_delay,
                        'metadata', pg_catalog.json_build_object('source', 'trigger')
                    )::pg_catalog.text;
                    PERFORM pg_catalog.pg_notify(TG_ARGV[2], v_payload);
                    PERFORM pg_catalog.pg_notify('pgmq_message_ready', v_payload);
                END LOOP;
            END IF;
        ELSE
            FOR r IN
                SELECT vt, pg_catalog.min(enqueued_at) AS enqueued_at, pg_catalog.array_agg(msg_id ORDER BY msg_id) AS ids
                FROM new_rows GROUP BY vt ORDER BY vt
            LOOP
                v_ready_at := pg_catalog.to_char(r.vt AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"');
                v_enqueued_at := pg_catalog.to_char(r.enqueued_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"');
                v_delay := least(greatest(pg_catalog.round(extract(epoch FROM r.vt OPERATOR(pg_catalog.-) pg_catalog.clock_timestamp())), 0), 2147483647)::integer;
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
                    PERFORM pg_catalog.pg_notify(TG_ARGV[2], v_payload);
                    PERFORM pg_catalog.pg_notify('pgmq_message_ready', v_payload);
                ELSE
                    -- Too many ids for one event: split them. Bytes left for ids per event are
                    -- the limit, less the event without ids, less room for message_count's
                    -- digits (10) and for the one id a chunk may overshoot by (21).
                    v_budget := 7769 OPERATOR(pg_catalog.-) (pg_catalog.octet_length(v_payload) OPERATOR(pg_catalog.-) pg_catalog.octet_length(pg_catalog.to_json(r.ids)::pg_catalog.text) OPERATOR(pg_catalog.+) 2);
                    FOR v_chunk IN
                        SELECT pg_catalog.array_agg(id ORDER BY ord) AS ids, pg_catalog.count(*) AS n
                        FROM (
                            SELECT id, ord, pg_catalog.sum(pg_catalog.octet_length(id::pg_catalog.text) OPERATOR(pg_catalog.+) 1) OVER (ORDER BY ord) AS cum
                            FROM pg_catalog.unnest(r.ids) WITH ORDINALITY AS u(id, ord)
                        ) AS numbered
                        GROUP BY (cum OPERATOR(pg_catalog.-) 1) OPERATOR(pg_catalog./) v_budget
                        ORDER BY (cum OPERATOR(pg_catalog.-) 1) OPERATOR(pg_catalog./) v_budget
                    LOOP
                        v_payload := pg_catalog.json_build_object(
                            'event_type', 'batch_ready',
                            'msg_ids', pg_catalog.to_json(v_chunk.ids),
                            'queue_name', TG_ARGV[0],
                            'namespace', TG_ARGV[1],
                            'message_count', v_chunk.n,
                            'ready_at', v_ready_at,
                            'enqueued_at', v_enqueued_at,
                            'delay_seconds', v_delay,
                            'metadata', pg_catalog.json_build_object('source', 'trigger')
                        )::pg_catalog.text;
                        PERFORM pg_catalog.pg_notify(TG_ARGV[2], v_payload);
                        PERFORM pg_catalog.pg_notify('pgmq_message_ready', v_payload);
                    END LOOP;
                END IF;
            END LOOP;
        END IF;
    END IF;
    RETURN NULL;
END
$pgmq_codegen$;
