-- pgmq-codegen 0.1.0: rollback of PGMQ notifications
-- config fingerprint 649480900ca1b1e4; mode trigger; schema pgmq_notify
-- queue_naming_pattern (?P<namespace>\w+)_queue; channels_prefix (none)
-- Any role that can connect can LISTEN to these channels and read their payloads;
-- set include_payload = "never" when the database is shared between tenants.

-- Message triggers on every queue table, whoever attached them.
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
        EXECUTE pg_catalog.format('DROP TRIGGER IF EXISTS %I ON pgmq.%I', 'pgmq_notify_on_insert_v1', r.relname);
    END LOOP;
END
$pgmq_codegen$;

DO $pgmq_codegen$
BEGIN
    IF pg_catalog.to_regclass('pgmq.meta') IS NOT NULL THEN
        EXECUTE pg_catalog.format('DROP TRIGGER IF EXISTS %I ON pgmq.meta', 'pgmq_notify_on_queue_created_v1');
    END IF;
END
$pgmq_codegen$;

DROP FUNCTION IF EXISTS "pgmq_notify".extract_namespace_v1(text);

DROP FUNCTION IF EXISTS "pgmq_notify".namespace_channel_v1(text);

DROP FUNCTION IF EXISTS "pgmq_notify".announce_message_v1(text, text, text, bigint, timestamptz, jsonb, jsonb, text);

DROP FUNCTION IF EXISTS "pgmq_notify".announce_batch_v1(text, text, text, bigint[], timestamptz, text);

DROP FUNCTION IF EXISTS "pgmq_notify".on_message_insert_v1();

DROP FUNCTION IF EXISTS "pgmq_notify".attach_v1(text);

DROP FUNCTION IF EXISTS "pgmq_notify".coalesce_gate_v1(text);

DROP FUNCTION IF EXISTS "pgmq_notify".on_queue_created_v1();

DROP FUNCTION IF EXISTS "pgmq_notify".read_specific_batch_v1(text, bigint[], integer);

DROP FUNCTION IF EXISTS "pgmq_notify".read_specific_v1(text, bigint, integer);

DROP FUNCTION IF EXISTS "pgmq_notify".delete_specific_v1(text, bigint);

DROP FUNCTION IF EXISTS "pgmq_notify".extend_vt_v1(text, bigint, integer);

DROP FUNCTION IF EXISTS "pgmq_notify".send_with_notify(text, jsonb, jsonb, timestamptz);

DROP FUNCTION IF EXISTS "pgmq_notify".send_with_notify(text, jsonb);

DROP FUNCTION IF EXISTS "pgmq_notify".send_with_notify(text, jsonb, jsonb);

DROP FUNCTION IF EXISTS "pgmq_notify".send_with_notify(text, jsonb, integer);

DROP FUNCTION IF EXISTS "pgmq_notify".send_with_notify(text, jsonb, timestamptz);

DROP FUNCTION IF EXISTS "pgmq_notify".send_with_notify(text, jsonb, jsonb, integer);

DROP FUNCTION IF EXISTS "pgmq_notify".send_batch_with_notify(text, jsonb[], jsonb[], timestamptz);

DROP FUNCTION IF EXISTS "pgmq_notify".send_batch_with_notify(text, jsonb[]);

DROP FUNCTION IF EXISTS "pgmq_notify".send_batch_with_notify(text, jsonb[], jsonb[]);

DROP FUNCTION IF EXISTS "pgmq_notify".send_batch_with_notify(text, jsonb[], integer);

DROP FUNCTION IF EXISTS "pgmq_notify".send_batch_with_notify(text, jsonb[], timestamptz);

DROP FUNCTION IF EXISTS "pgmq_notify".send_batch_with_notify(text, jsonb[], jsonb[], integer);

-- Sequences that coalescing keeps per queue.
DO $pgmq_codegen$
DECLARE
    r record;
BEGIN
    FOR r IN
        SELECT c.relname FROM pg_catalog.pg_class AS c
        JOIN pg_catalog.pg_namespace AS ns ON ns.oid = c.relnamespace
        WHERE c.relkind = 'S' AND ns.nspname = 'pgmq_notify'
    LOOP
        EXECUTE pg_catalog.format('DROP SEQUENCE IF EXISTS %I.%I', 'pgmq_notify', r.relname);
    END LOOP;
END
$pgmq_codegen$;

DROP SCHEMA IF EXISTS "pgmq_notify";
