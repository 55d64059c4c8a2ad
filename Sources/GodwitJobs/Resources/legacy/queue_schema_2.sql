-- Step 2: the backfill governor. A batch records the sessions it made wait on its locks and
-- for how long; batched jobs take max_lock_wait_ms (the wait the batch size is steered by) and
-- an optional health query of the enqueuer's, which holds the job while it is false or fails.
-- And one backfill over many workers: `parallel` splits a batched job at enqueue into shards,
-- each an ordinary batched job over a contiguous key range, under a parent job that is never
-- claimed and whose state is derived from its shards (see the end of this file).

-- A shard's parent: a job of kind batched_parallel. Shards go with their parent.
ALTER TABLE @schema@.jobs ADD COLUMN parent_id bigint REFERENCES @schema@.jobs (id) ON DELETE CASCADE;
COMMENT ON COLUMN @schema@.jobs.parent_id IS
    'The parallel job (kind batched_parallel) this batched job is a shard of; its state is derived from its shards.';
CREATE INDEX jobs_parent_idx ON @schema@.jobs (parent_id) WHERE parent_id IS NOT NULL;

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
    p.lock_waits, p.lock_wait_ms_max, p.lock_wait_ms_total,
    j.parent_id
FROM @schema@.jobs j
-- A parallel job's progress is the sum of its shards'; its rate the sum of the running shards'.
LEFT JOIN LATERAL (
    SELECT own.rows_done, own.rows_changed, own.rows_total, own.batches_done, own.rows_per_second, own.batch_size,
        own.hold_reason, own.cursor, own.lock_waits, own.lock_wait_ms_max, own.lock_wait_ms_total
    FROM @schema@.job_progress own WHERE own.job_id = j.id AND j.kind <> 'batched_parallel'
    UNION ALL
    SELECT sum(sp.rows_done)::bigint, sum(sp.rows_changed)::bigint, sum(sp.rows_total)::bigint,
        sum(sp.batches_done)::bigint, sum(sp.rows_per_second) FILTER (WHERE s.state = 'running'),
        sum(sp.batch_size) FILTER (WHERE s.state = 'running')::integer,
        string_agg(DISTINCT sp.hold_reason, '; '), NULL::text, sum(sp.lock_waits)::bigint,
        max(sp.lock_wait_ms_max), sum(sp.lock_wait_ms_total)
    FROM @schema@.jobs s JOIN @schema@.job_progress sp ON sp.job_id = s.id
    WHERE s.parent_id = j.id AND j.kind = 'batched_parallel'
    HAVING j.kind = 'batched_parallel'
) p ON true;

-- enqueue_batched gains max_lock_wait_ms, health_query and parallel. Its signature changes, so the
-- old one is dropped; the roles that could call it may call the new one, and may insert shards.
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
    max_lock_wait_ms integer DEFAULT 10, health_query text DEFAULT NULL, parallel integer DEFAULT 1
) RETURNS bigint
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp SET DateStyle = 'ISO, MDY' AS $fn$
DECLARE
    settings jsonb;
    points text[];
    fractions double precision[];
    sample_percent double precision;
    shards integer;
    shard_total bigint;
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
    IF parallel IS NULL OR parallel NOT BETWEEN 1 AND 256 THEN
        RAISE EXCEPTION 'parallel must be from 1 to 256 (the number of shards), not %', parallel USING ERRCODE = '22023';
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
    settings := jsonb_build_object(
        'table', target.relation, 'key', key_column, 'statement', body, 'search_path', caller_search_path,
        'rows_total', estimate, 'batch_size', batch_size, 'target_batch_ms', target_batch_ms, 'pause_ms', pause_ms,
        'min_batch_size', min_batch_size, 'max_batch_size', max_batch_size,
        'lock_timeout_ms', lock_timeout_ms, 'statement_timeout_ms', statement_timeout_ms,
        'max_attempts', max_attempts, 'max_lock_wait_ms', max_lock_wait_ms, 'health_query', health);
    IF parallel = 1 THEN
        INSERT INTO @schema@.jobs (kind, name, payload, priority, max_attempts)
        VALUES ('batched', name, settings, priority, greatest(max_attempts, 100))
        RETURNING id INTO new_id;
        RETURN new_id;
    END IF;
    -- The split points: the keys at 1/N, 2/N, ... of a sample of about 10,000 rows in key order
    -- (the key's own ordering and collation, as the batches walk it), read with the caller's
    -- rights. BERNOULLI, not SYSTEM: a table stored in key order (a serial key) would give a
    -- SYSTEM sample of a hundred-odd runs of neighbouring keys and shards several percent
    -- apart; BERNOULLI's rows are independent, at the cost of one sequential scan at enqueue. Distinct, so a tiny table makes fewer shards, never overlapping ones. As text in
    -- ISO form (the function's DateStyle), which the worker reads back whatever its settings.
    SELECT array_agg(k::double precision / parallel ORDER BY k) INTO fractions FROM generate_series(1, parallel - 1) k;
    sample_percent := least(100, 100.0 * 10000 / greatest(estimate, 1));
    LOOP
        EXECUTE format(
            'SELECT coalesce(array_agg(p::text ORDER BY p), ''{}'') FROM (SELECT DISTINCT p FROM
                (SELECT percentile_disc($1) WITHIN GROUP (ORDER BY %1$s) AS a FROM %2$s TABLESAMPLE BERNOULLI ($2)) s,
                unnest(s.a) AS p WHERE p IS NOT NULL) d', target.key_sql, target.relation)
            INTO points USING fractions, sample_percent;
        -- A stale estimate can make a sample of almost nothing: then read the whole table.
        EXIT WHEN cardinality(points) > 0 OR sample_percent >= 100;
        sample_percent := 100;
    END LOOP;
    shards := cardinality(points) + 1;
    INSERT INTO @schema@.jobs (kind, name, payload, priority, max_attempts)
    VALUES ('batched_parallel', name, settings || jsonb_build_object('parallel', parallel, 'splits', to_jsonb(points)),
        priority, greatest(max_attempts, 100))
    RETURNING id INTO new_id;
    -- Shard i covers the keys after split point i-1 (its first checkpoint) up to and including
    -- split point i; the first has no lower bound and the last no upper one, so rows added
    -- beyond either end are done too. Each shard's rows_total is its share of the estimate.
    FOR i IN 1..shards LOOP
        shard_total := CASE WHEN i < shards THEN round(estimate::numeric / shards)::bigint
            ELSE estimate - (shards - 1) * round(estimate::numeric / shards)::bigint END;
        INSERT INTO @schema@.jobs (kind, name, payload, priority, max_attempts, parent_id)
        VALUES ('batched', format('%s [shard %s/%s]', name, i, shards),
            settings || jsonb_build_object('rows_total', greatest(shard_total, 0), 'shard', i, 'shards', shards,
                'lower', points[i - 1], 'upper', points[i]),
            priority, greatest(max_attempts, 100), new_id);
    END LOOP;
    RETURN new_id;
END
$fn$;

CREATE OR REPLACE FUNCTION @schema@.grant_enqueue(grantee regrole) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $fn$
BEGIN
    PERFORM @schema@.grant_read(grantee);
    EXECUTE format('GRANT INSERT (kind, name, payload, priority, run_at, max_attempts, parent_id) ON @schema@.jobs TO %s', grantee);
    EXECUTE format('GRANT EXECUTE ON FUNCTION @schema@.enqueue(text, text, jsonb, integer, timestamptz, integer),
        @schema@.enqueue_batched(text, text, text, text, integer, integer, integer, integer, integer, integer, integer,
            integer, integer, text, integer, text, integer),
        @schema@.batched_target(text, text, text) TO %s', grantee);
END
$fn$;

DO $do$
DECLARE r record;
BEGIN
    FOR r IN SELECT oid FROM godwit_enqueuers LOOP
        EXECUTE format('GRANT INSERT (parent_id) ON @schema@.jobs TO %s', r.oid::regrole);
        EXECUTE format('GRANT EXECUTE ON FUNCTION @schema@.enqueue_batched(text, text, text, text, integer, integer, integer, integer, integer, integer, integer, integer, integer, text, integer, text, integer) TO %s', r.oid::regrole);
    END LOOP;
END
$do$;
REVOKE ALL ON FUNCTION @schema@.enqueue_batched(text, text, text, text, integer, integer, integer, integer, integer, integer, integer, integer, integer, text, integer, text, integer) FROM PUBLIC;

-- Parallel jobs. A parent (kind batched_parallel) is inserted as running and never becomes
-- queued, so no claim ever takes it and no rescue sees it (it has no heartbeat); its state is
-- derived from its shards'. A shard is a batched job with parent_id set, inserted by the same
-- role as its parent (so it runs with the same rights), its first checkpoint the shard's lower
-- bound (payload.lower, exclusive) and its batches bounded by payload.upper (inclusive).
CREATE OR REPLACE FUNCTION @schema@.stamp_enqueued_by() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $fn$
DECLARE
    parent record;
BEGIN
    NEW.enqueued_by := current_user;
    IF NEW.kind = 'batched_parallel' THEN
        NEW.state := 'running';
    END IF;
    IF NEW.parent_id IS NOT NULL THEN
        SELECT j.kind, j.enqueued_by INTO parent FROM @schema@.jobs j WHERE j.id = NEW.parent_id;
        IF parent.kind IS DISTINCT FROM 'batched_parallel' OR NEW.kind <> 'batched' OR parent.enqueued_by <> current_user THEN
            RAISE EXCEPTION 'job % is not a parallel job of yours: only batched shards of a parallel job its enqueuer made may name it as parent',
                NEW.parent_id USING ERRCODE = '42501';
        END IF;
    END IF;
    RETURN NEW;
END
$fn$;

-- A shard's first checkpoint is its lower bound.
CREATE OR REPLACE FUNCTION @schema@.create_job_progress() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $fn$
BEGIN
    INSERT INTO @schema@.job_progress (job_id, rows_total, batch_size, cursor)
    VALUES (NEW.id,
        CASE WHEN jsonb_typeof(NEW.payload->'rows_total') = 'number'
            THEN least((NEW.payload->>'rows_total')::numeric, 9e18)::bigint END,
        CASE WHEN jsonb_typeof(NEW.payload->'batch_size') = 'number'
            THEN least(greatest((NEW.payload->>'batch_size')::numeric, 1), 2e9)::integer END,
        CASE WHEN NEW.parent_id IS NOT NULL AND jsonb_typeof(NEW.payload->'lower') = 'string'
            THEN NEW.payload->>'lower' END);
    RETURN NULL;
END
$fn$;

-- Sets a parallel job's state from its shards':
--   any shard failed, none queued or running   -> failed, with the shard's key range and error
--   any shard queued or running                -> running (and, if one failed, the others are
--                                                 asked to pause at their next checkpoint)
--   otherwise any paused                       -> paused
--   otherwise any cancelled                    -> cancelled
--   otherwise (all succeeded)                  -> succeeded
--
-- Called at COMMIT of every transaction that changed a shard's state (a deferred constraint
-- trigger, below), under one transaction-level advisory lock for the whole schema. Under READ
-- COMMITTED two shards finishing at once would each see the other still running and leave the
-- parent running forever; with the lock the second waits until the first has committed, and
-- its next statement sees both. One lock for every parent rather than a row lock on each
-- (taken in whatever order a multi-row claim or rescue updated its shards) cannot deadlock,
-- and nothing is taken while it is held except SKIP LOCKED rows and the parent row, which only
-- holders of the lock update. State changes of shards are rare (claims and outcomes, not
-- batches), so the lock is not contended.
CREATE FUNCTION @schema@.derive_parallel_state(parent bigint) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $fn$
DECLARE
    c record;
    derived @schema@.job_state;
    failure text;
BEGIN
    -- One failed shard stops its siblings at their next checkpoint. Rows locked right now
    -- (being claimed or finished) are skipped: their own commit derives again, and a shard's
    -- batch fence also reads a failed sibling as a pause.
    IF EXISTS (SELECT 1 FROM @schema@.jobs s WHERE s.parent_id = parent AND s.state = 'failed') THEN
        UPDATE @schema@.jobs s
        SET state = CASE WHEN s.state = 'queued' THEN 'paused'::@schema@.job_state ELSE s.state END,
            control = CASE WHEN s.state = 'running' AND s.control IS NULL THEN 'pause' ELSE s.control END
        WHERE s.id IN (SELECT x.id FROM @schema@.jobs x
                       WHERE x.parent_id = parent AND (x.state = 'queued' OR (x.state = 'running' AND x.control IS NULL))
                       FOR NO KEY UPDATE SKIP LOCKED);
    END IF;
    SELECT count(*) AS total,
        count(*) FILTER (WHERE s.state = 'failed') AS failed,
        count(*) FILTER (WHERE s.state IN ('queued', 'running')) AS active,
        count(*) FILTER (WHERE s.state = 'paused') AS paused,
        count(*) FILTER (WHERE s.state = 'cancelled') AS cancelled,
        min(s.started_at) AS started_at
    INTO c FROM @schema@.jobs s WHERE s.parent_id = parent;
    IF c.total = 0 THEN RETURN; END IF;
    derived := CASE
        WHEN c.failed > 0 AND c.active = 0 THEN 'failed'
        WHEN c.active > 0 THEN 'running'
        WHEN c.paused > 0 THEN 'paused'
        WHEN c.cancelled > 0 THEN 'cancelled'
        ELSE 'succeeded' END;
    IF derived = 'failed' THEN
        SELECT format('shard %s of %s (keys %s) failed: %s', s.payload->>'shard', c.total,
                CASE
                    WHEN s.payload->>'lower' IS NULL AND s.payload->>'upper' IS NULL THEN 'all'
                    WHEN s.payload->>'lower' IS NULL THEN format('up to %s', s.payload->>'upper')
                    WHEN s.payload->>'upper' IS NULL THEN format('after %s', s.payload->>'lower')
                    ELSE format('after %s up to %s', s.payload->>'lower', s.payload->>'upper') END,
                coalesce(s.last_error, 'no error recorded'))
        INTO failure
        FROM @schema@.jobs s WHERE s.parent_id = parent AND s.state = 'failed' ORDER BY s.finished_at, s.id LIMIT 1;
    END IF;
    UPDATE @schema@.jobs j SET state = derived,
        started_at = coalesce(j.started_at, c.started_at),
        finished_at = CASE WHEN derived IN ('succeeded', 'failed', 'cancelled') THEN coalesce(j.finished_at, now()) END,
        last_error = coalesce(failure, j.last_error),
        result = CASE WHEN derived = 'succeeded' THEN (
            SELECT jsonb_build_object('shards', c.total, 'rows_done', sum(p.rows_done), 'rows_changed', sum(p.rows_changed),
                'batches', sum(p.batches_done))
            FROM @schema@.jobs s JOIN @schema@.job_progress p ON p.job_id = s.id WHERE s.parent_id = parent) END
    WHERE j.id = parent AND (j.state IS DISTINCT FROM derived OR j.last_error IS DISTINCT FROM coalesce(failure, j.last_error)
        OR j.started_at IS DISTINCT FROM coalesce(j.started_at, c.started_at));
END
$fn$;

CREATE FUNCTION @schema@.shard_state_changed() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $fn$
BEGIN
    PERFORM pg_catalog.pg_advisory_xact_lock(pg_catalog.hashtext('godwit-parallel:' || TG_TABLE_SCHEMA));
    PERFORM @schema@.derive_parallel_state(NEW.parent_id);
    RETURN NULL;
END
$fn$;

-- At COMMIT, so that the state is derived once the transaction's changes are all made, and
-- under the lock, after every earlier shard change has committed.
CREATE CONSTRAINT TRIGGER jobs_shard_state AFTER INSERT OR UPDATE OF state ON @schema@.jobs
    DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW WHEN (NEW.parent_id IS NOT NULL)
    EXECUTE FUNCTION @schema@.shard_state_changed();

-- The controls act on a parallel job's shards; the parent's state follows at COMMIT. The shards
-- are locked first, in id order, so two controls of one job cannot deadlock, and they wait for
-- a claim or an outcome in flight rather than skip it: each shard's change is one statement
-- that reads its current state. A control on one shard acts on that shard alone.
CREATE OR REPLACE FUNCTION @schema@.pause(job_id bigint) RETURNS boolean
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $fn$
BEGIN
    IF EXISTS (SELECT 1 FROM @schema@.jobs WHERE id = job_id AND kind = 'batched_parallel') THEN
        PERFORM 1 FROM @schema@.jobs WHERE parent_id = job_id ORDER BY id FOR NO KEY UPDATE;
        UPDATE @schema@.jobs
        SET state = CASE WHEN state = 'queued' THEN 'paused'::@schema@.job_state ELSE state END,
            control = CASE WHEN state = 'running' THEN 'pause' ELSE control END
        WHERE parent_id = job_id AND (state = 'queued' OR (state = 'running' AND control IS NULL));
        RETURN FOUND;
    END IF;
    UPDATE @schema@.jobs SET state = 'paused' WHERE id = job_id AND state = 'queued';
    IF FOUND THEN RETURN true; END IF;
    UPDATE @schema@.jobs SET control = 'pause' WHERE id = job_id AND state = 'running' AND control IS NULL;
    RETURN FOUND;
END
$fn$;

-- A parallel job with a failed shard is not resumed (its shards would pause again): retry it.
CREATE OR REPLACE FUNCTION @schema@.resume(job_id bigint) RETURNS boolean
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $fn$
BEGIN
    IF EXISTS (SELECT 1 FROM @schema@.jobs WHERE id = job_id AND kind = 'batched_parallel') THEN
        PERFORM 1 FROM @schema@.jobs WHERE parent_id = job_id ORDER BY id FOR NO KEY UPDATE;
        IF EXISTS (SELECT 1 FROM @schema@.jobs WHERE parent_id = job_id AND state = 'failed') THEN
            RETURN false;
        END IF;
        UPDATE @schema@.jobs
        SET state = CASE WHEN state = 'paused' THEN 'queued'::@schema@.job_state ELSE state END,
            run_at = CASE WHEN state = 'paused' THEN now() ELSE run_at END,
            control = CASE WHEN state = 'running' THEN NULL ELSE control END
        WHERE parent_id = job_id AND (state = 'paused' OR (state = 'running' AND control = 'pause'));
        RETURN FOUND;
    END IF;
    UPDATE @schema@.jobs SET state = 'queued', run_at = now() WHERE id = job_id AND state = 'paused';
    IF FOUND THEN RETURN true; END IF;
    UPDATE @schema@.jobs SET control = NULL WHERE id = job_id AND state = 'running' AND control = 'pause';
    RETURN FOUND;
END
$fn$;

CREATE OR REPLACE FUNCTION @schema@.cancel(job_id bigint) RETURNS boolean
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $fn$
BEGIN
    IF EXISTS (SELECT 1 FROM @schema@.jobs WHERE id = job_id AND kind = 'batched_parallel') THEN
        PERFORM 1 FROM @schema@.jobs WHERE parent_id = job_id ORDER BY id FOR NO KEY UPDATE;
        UPDATE @schema@.jobs
        SET state = CASE WHEN state IN ('queued', 'paused') THEN 'cancelled'::@schema@.job_state ELSE state END,
            finished_at = CASE WHEN state IN ('queued', 'paused') THEN now() ELSE finished_at END,
            control = CASE WHEN state = 'running' THEN 'cancel' END
        WHERE parent_id = job_id
          AND (state IN ('queued', 'paused') OR (state = 'running' AND control IS DISTINCT FROM 'cancel'));
        RETURN FOUND;
    END IF;
    UPDATE @schema@.jobs SET state = 'cancelled', finished_at = now(), control = NULL
    WHERE id = job_id AND state IN ('queued', 'paused');
    IF FOUND THEN RETURN true; END IF;
    UPDATE @schema@.jobs SET control = 'cancel'
    WHERE id = job_id AND state = 'running' AND control IS DISTINCT FROM 'cancel';
    RETURN FOUND;
END
$fn$;

-- Retrying a failed or cancelled parallel job requeues its failed, cancelled and paused shards;
-- each resumes from its own checkpoint. Succeeded shards stay done.
CREATE OR REPLACE FUNCTION @schema@.retry(job_id bigint) RETURNS boolean
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $fn$
BEGIN
    IF EXISTS (SELECT 1 FROM @schema@.jobs WHERE id = job_id AND kind = 'batched_parallel') THEN
        PERFORM 1 FROM @schema@.jobs WHERE parent_id = job_id ORDER BY id FOR NO KEY UPDATE;
        IF NOT EXISTS (SELECT 1 FROM @schema@.jobs WHERE id = job_id AND state IN ('failed', 'cancelled')) THEN
            RETURN false;
        END IF;
        UPDATE @schema@.jobs
        SET state = 'queued', run_at = now(), attempts = 0, finished_at = NULL, control = NULL
        WHERE parent_id = job_id AND state IN ('failed', 'cancelled', 'paused');
        RETURN FOUND;
    END IF;
    UPDATE @schema@.jobs
    SET state = 'queued', run_at = now(), attempts = 0, finished_at = NULL, control = NULL
    WHERE id = job_id AND state IN ('failed', 'cancelled');
    RETURN FOUND;
END
$fn$;

REVOKE ALL ON FUNCTION @schema@.derive_parallel_state(bigint), @schema@.shard_state_changed() FROM PUBLIC;
