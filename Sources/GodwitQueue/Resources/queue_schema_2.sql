-- Step 2: the backfill governor. A batch records the sessions it made wait on its locks and
-- for how long; batched jobs take max_lock_wait_ms (the wait the batch size is steered by) and
-- an optional health query of the enqueuer's, which holds the job while it is false or fails.

ALTER TABLE @schema@.job_progress
    ADD COLUMN lock_waits bigint NOT NULL DEFAULT 0,
    ADD COLUMN lock_wait_ms_max double precision NOT NULL DEFAULT 0,
    ADD COLUMN lock_wait_ms_total double precision NOT NULL DEFAULT 0;
COMMENT ON COLUMN @schema@.job_progress.lock_waits IS
    'Sessions that waited on a lock held by one of the job''s batches, counted at the batch''s end.';

ALTER TABLE @schema@.batches
    ADD COLUMN lock_waiters integer NOT NULL DEFAULT 0,
    ADD COLUMN lock_wait_ms double precision NOT NULL DEFAULT 0;
COMMENT ON COLUMN @schema@.batches.lock_wait_ms IS
    'The longest wait of a session blocked by this batch, read just before the batch committed.';

CREATE OR REPLACE VIEW @schema@.progress AS
SELECT j.id, j.name, j.kind, j.state,
    CASE
        WHEN j.state = 'succeeded' THEN 100::numeric
        WHEN p.rows_total > 0 THEN least(100, greatest(0, round(100.0 * p.rows_done / p.rows_total, 1)))
        ELSE 0::numeric
    END AS percent,
    p.rows_done, p.rows_total,
    round(p.rows_per_second::numeric, 1) AS rows_per_second,
    CASE
        WHEN j.state = 'running' AND p.rows_per_second > 0 AND p.rows_total > p.rows_done
        THEN make_interval(secs => round((p.rows_total - p.rows_done) / p.rows_per_second))
    END AS eta,
    j.attempts, j.last_error, j.worker_id, j.heartbeat_at, j.created_at, j.started_at, j.finished_at,
    p.batch_size, p.hold_reason, p.rows_changed,
    p.batches_done, p.cursor,
    p.lock_waits, p.lock_wait_ms_max, p.lock_wait_ms_total
FROM @schema@.jobs j LEFT JOIN @schema@.job_progress p ON p.job_id = j.id;

-- enqueue_batched gains max_lock_wait_ms and health_query. Its signature changes, so the old one
-- is dropped; the roles that could call it may call the new one.
CREATE TEMP TABLE godwit_enqueuers ON COMMIT DROP AS
SELECT DISTINCT (a.item).grantee AS oid
FROM (SELECT pg_catalog.aclexplode(p.proacl) AS item, p.proowner FROM pg_catalog.pg_proc p
      WHERE p.oid = '@schema@.enqueue_batched(text, text, text, text, integer, integer, integer, integer, integer, integer, integer, integer, integer, text)'::pg_catalog.regprocedure) a
WHERE (a.item).privilege_type = 'EXECUTE' AND (a.item).grantee <> 0 AND (a.item).grantee <> a.proowner;
DROP FUNCTION @schema@.enqueue_batched(text, text, text, text, integer, integer, integer, integer, integer, integer, integer, integer, integer, text);

CREATE FUNCTION @schema@.enqueue_batched(
    name text, table_name text, key_column text, statement text,
    batch_size integer DEFAULT 1000, target_batch_ms integer DEFAULT 200, pause_ms integer DEFAULT 0,
    min_batch_size integer DEFAULT 10, max_batch_size integer DEFAULT 50000,
    lock_timeout_ms integer DEFAULT 2000, statement_timeout_ms integer DEFAULT 10000,
    max_attempts integer DEFAULT 5, priority integer DEFAULT 0,
    caller_search_path text DEFAULT current_setting('search_path'),
    max_lock_wait_ms integer DEFAULT 10, health_query text DEFAULT NULL
) RETURNS bigint
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $fn$
DECLARE
    target record;
    parameters integer;
    estimate bigint;
    body text := btrim(statement, E' \t\r\n;');
    health text := nullif(btrim(health_query, E' \t\r\n;'), '');
    new_id bigint;
BEGIN
    IF strpos(body, ';') > 0 THEN
        RAISE EXCEPTION 'the statement must be one statement with no ";" in it (write chr(59) for a semicolon inside a string)'
            USING ERRCODE = '42601';
    END IF;
    IF batch_size < 1 OR min_batch_size < 1 OR max_batch_size < min_batch_size
       OR batch_size NOT BETWEEN min_batch_size AND max_batch_size THEN
        RAISE EXCEPTION 'batch sizes must satisfy 1 <= min-batch-size (%) <= batch-size (%) <= max-batch-size (%)',
            min_batch_size, batch_size, max_batch_size USING ERRCODE = '22023';
    END IF;
    IF target_batch_ms < 1 OR pause_ms < 0 OR lock_timeout_ms < 0 OR statement_timeout_ms < 0 OR max_attempts < 1
       OR max_lock_wait_ms < 0 THEN
        RAISE EXCEPTION 'target-batch-ms and max-attempts must be positive, and pauses, timeouts and max-lock-wait-ms not negative'
            USING ERRCODE = '22023';
    END IF;
    IF strpos(health, ';') > 0 THEN
        RAISE EXCEPTION 'the health query must be one query with no ";" in it' USING ERRCODE = '42601';
    END IF;
    SELECT * INTO target FROM @schema@.batched_target(table_name, key_column, caller_search_path);
    -- Parse the statement as the caller would; set_config(..., true) ends with this function.
    PERFORM set_config('search_path', caller_search_path, true);
    IF EXISTS (SELECT 1 FROM pg_catalog.pg_prepared_statements p WHERE p.name = 'godwit_batched_check') THEN
        DEALLOCATE godwit_batched_check;
    END IF;
    -- Parses and analyses the statement against the live schema without running it.
    EXECUTE 'PREPARE godwit_batched_check AS ' || body;
    SELECT pg_catalog.cardinality(p.parameter_types) INTO parameters
    FROM pg_catalog.pg_prepared_statements p WHERE p.name = 'godwit_batched_check';
    DEALLOCATE godwit_batched_check;
    IF health IS NOT NULL THEN
        -- One column that reads as a boolean, parsed and never run; as a scalar subquery, a
        -- query returning more than one column does not parse.
        IF EXISTS (SELECT 1 FROM pg_catalog.pg_prepared_statements p WHERE p.name = 'godwit_health_check') THEN
            DEALLOCATE godwit_health_check;
        END IF;
        EXECUTE 'PREPARE godwit_health_check AS SELECT (' || health || ')::boolean';
        DEALLOCATE godwit_health_check;
    END IF;
    PERFORM pg_catalog.set_config('search_path', 'pg_catalog, pg_temp', true);
    IF parameters <> 2 THEN
        RAISE EXCEPTION 'the statement must use $1 and $2 (the first and last key of each batch) and no other parameter; it uses %',
            parameters USING ERRCODE = '42P02';
    END IF;
    estimate := target.estimated_rows;
    IF estimate < 0 THEN
        EXECUTE format('SELECT count(*) FROM %s', target.relation) INTO estimate;
    END IF;
    INSERT INTO @schema@.jobs (kind, name, payload, priority, max_attempts)
    VALUES ('batched', name, jsonb_build_object(
        'table', target.relation, 'key', key_column, 'statement', body, 'search_path', caller_search_path,
        'rows_total', estimate, 'batch_size', batch_size, 'target_batch_ms', target_batch_ms, 'pause_ms', pause_ms,
        'min_batch_size', min_batch_size, 'max_batch_size', max_batch_size,
        'lock_timeout_ms', lock_timeout_ms, 'statement_timeout_ms', statement_timeout_ms,
        'max_attempts', max_attempts, 'max_lock_wait_ms', max_lock_wait_ms, 'health_query', health),
        priority, greatest(max_attempts, 100))
    RETURNING id INTO new_id;
    RETURN new_id;
END
$fn$;

CREATE OR REPLACE FUNCTION @schema@.grant_enqueue(grantee regrole) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $fn$
BEGIN
    PERFORM @schema@.grant_read(grantee);
    EXECUTE format('GRANT INSERT (kind, name, payload, priority, run_at, max_attempts) ON @schema@.jobs TO %s', grantee);
    EXECUTE format('GRANT EXECUTE ON FUNCTION @schema@.enqueue(text, text, jsonb, integer, timestamptz, integer),
        @schema@.enqueue_batched(text, text, text, text, integer, integer, integer, integer, integer, integer, integer,
            integer, integer, text, integer, text),
        @schema@.batched_target(text, text, text) TO %s', grantee);
END
$fn$;

DO $do$
DECLARE r record;
BEGIN
    FOR r IN SELECT oid FROM godwit_enqueuers LOOP
        EXECUTE format('GRANT EXECUTE ON FUNCTION @schema@.enqueue_batched(text, text, text, text, integer, integer, integer, integer, integer, integer, integer, integer, integer, text, integer, text) TO %s', r.oid::regrole);
    END LOOP;
END
$do$;
REVOKE ALL ON FUNCTION @schema@.enqueue_batched(text, text, text, text, integer, integer, integer, integer, integer, integer, integer, integer, integer, text, integer, text) FROM PUBLIC;
