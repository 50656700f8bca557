-- pgmq-codegen 0.1.0: rollback of PGMQ notifications
-- config fingerprint 6206a729a3523500; mode trigger; schema pgmq_notify
-- queue_naming_pattern (?P<namespace>\w+)_queue; channels_prefix (none)
-- Any role that can connect can LISTEN to these channels and read their payloads;
-- set include_payload = "never" when the database is shared between tenants.

-- Fail before changing anything when this role cannot drop a trigger it must.
DO $pgmq_codegen$
DECLARE
    v_tables text;
BEGIN
    SELECT string_agg(pg_catalog.format('%s (owner %s)', c.oid::regclass, pg_catalog.pg_get_userbyid(c.relowner)), ', ' ORDER BY c.relname)
    INTO v_tables
    FROM pg_catalog.pg_class AS c
    WHERE c.oid IN (
            SELECT t.tgrelid FROM pg_catalog.pg_trigger AS t
            WHERE t.tgname IN ('pgmq_notify_on_insert_v1', 'pgmq_notify_on_queue_created_v1', 'pgmq_notify_on_queue_dropped_v1'))
      AND NOT pg_catalog.pg_has_role(current_user, c.relowner, 'USAGE');
    IF v_tables IS NOT NULL THEN
        RAISE EXCEPTION 'pgmq-codegen: role % does not own %', current_user, v_tables
            USING HINT = 'Triggers can only be dropped by a table''s owner: run this rollback as that role, or GRANT the owning role to ' || current_user || '.';
    END IF;
END
$pgmq_codegen$;

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
        EXECUTE pg_catalog.format('DROP TRIGGER %I ON pgmq.%I', 'pgmq_notify_on_insert_v1', r.relname);
    END LOOP;
END
$pgmq_codegen$;

DO $pgmq_codegen$
DECLARE
    v_name text;
BEGIN
    FOREACH v_name IN ARRAY ARRAY['pgmq_notify_on_queue_created_v1', 'pgmq_notify_on_queue_dropped_v1'] LOOP
        IF EXISTS (SELECT 1 FROM pg_catalog.pg_trigger WHERE tgrelid = pg_catalog.to_regclass('pgmq.meta') AND tgname = v_name) THEN
            EXECUTE pg_catalog.format('DROP TRIGGER %I ON pgmq.meta', v_name);
        END IF;
    END LOOP;
END
$pgmq_codegen$;

DO $pgmq_codegen$
DECLARE
    v_signature text;
BEGIN
    FOREACH v_signature IN ARRAY ARRAY[
        '"pgmq_notify".extract_namespace_v1(text)',
        '"pgmq_notify".namespace_channel_v1(text)',
        '"pgmq_notify".announce_message_v1(text, text, text, bigint, timestamptz, jsonb, jsonb, text)',
        '"pgmq_notify".announce_batch_v1(text, text, text, bigint[], timestamptz, text)',
        '"pgmq_notify".on_message_insert_v1()',
        '"pgmq_notify".attach_v1(text)',
        '"pgmq_notify".coalesce_gate_v1(text)',
        '"pgmq_notify".coalesce_sequence_v1(text)',
        '"pgmq_notify".on_queue_created_v1()',
        '"pgmq_notify".on_queue_dropped_v1()',
        '"pgmq_notify".read_specific_batch_v1(text, bigint[], integer)',
        '"pgmq_notify".read_specific_v1(text, bigint, integer)',
        '"pgmq_notify".delete_specific_v1(text, bigint)',
        '"pgmq_notify".extend_vt_v1(text, bigint, integer)',
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
        EXECUTE pg_catalog.format('DROP SEQUENCE %I.%I', 'pgmq_notify', r.relname);
    END LOOP;
END
$pgmq_codegen$;

DO $pgmq_codegen$
BEGIN
    IF pg_catalog.to_regnamespace('pgmq_notify') IS NOT NULL THEN
        DROP SCHEMA "pgmq_notify";
    END IF;
END
$pgmq_codegen$;
