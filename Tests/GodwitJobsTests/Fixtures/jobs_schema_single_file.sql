-- The jobs part of Godwit's schema (owner `jobs`): what runs on the queue and keeps state of
-- its own there. Batched jobs (their progress, each batch's history, the progress view, the
-- checks and the enqueue of a batched job, parallel jobs' shards, the fence and checkpoint of a
-- batch, resuming from another job's checkpoint), the link from a backup to the migrate job
-- that took it, and the three sets of rights, which cover every owner's objects. It requires
-- the queue's part and the backups' part, installed before it. A new install, at the version
-- the jobs' SchemaPart names; later changes are upgrade steps of their own.
--
-- @schema@ stands for the schema's quoted name; the installer substitutes it, and runs this file
-- in the transaction that records it.

-- A batched job's progress: what changes with every batch, apart from the jobs row, so that
-- heartbeats stay HOT updates there.
CREATE TABLE @schema@.job_progress (
    job_id           bigint PRIMARY KEY REFERENCES @schema@.jobs (id) ON DELETE CASCADE,
    rows_done        bigint NOT NULL DEFAULT 0,
    rows_changed     bigint NOT NULL DEFAULT 0,
    rows_total       bigint,
    batches_done     bigint NOT NULL DEFAULT 0,
    rows_per_second  double precision,
    batch_size       integer,
    hold_reason      text,
    cursor           text,
    updated_at       timestamptz NOT NULL DEFAULT now(),
    lock_waits       bigint NOT NULL DEFAULT 0,
    lock_wait_ms_max double precision NOT NULL DEFAULT 0,
    lock_wait_ms_total double precision NOT NULL DEFAULT 0,
    size_reason      text
) WITH (fillfactor = 70);
COMMENT ON COLUMN @schema@.job_progress.lock_waits IS
    'Sessions that waited on a lock held by one of the job''s batches, counted at the batch''s end.';
COMMENT ON COLUMN @schema@.job_progress.size_reason IS
    'Why the governor chose batch_size, in words; NULL before the first batch and before schema step 5.';

-- A batched job's progress row, made with the job: the enqueuer needs no right on job_progress.
-- Runs with the owner's rights and takes only numbers from the payload. A shard's first
-- checkpoint is its lower bound.
CREATE FUNCTION @schema@.create_job_progress() RETURNS trigger
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

CREATE TRIGGER jobs_create_progress AFTER INSERT ON @schema@.jobs
    FOR EACH ROW WHEN (NEW.kind = 'batched')
    EXECUTE FUNCTION @schema@.create_job_progress();

-- One row a committed or failed batch; the worker keeps the newest few thousand a job.
CREATE TABLE @schema@.batches (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    job_id        bigint NOT NULL REFERENCES @schema@.jobs (id) ON DELETE CASCADE,
    seq           bigint NOT NULL,
    attempt       integer NOT NULL,
    first_key     text,
    last_key      text,
    rows          integer NOT NULL,
    rows_changed  bigint NOT NULL,
    batch_size    integer NOT NULL,
    duration_ms   double precision NOT NULL,
    error         text,
    finished_at   timestamptz NOT NULL DEFAULT now(),
    lock_waiters  integer NOT NULL DEFAULT 0,
    lock_wait_ms  double precision NOT NULL DEFAULT 0
);
CREATE INDEX batches_job_seq_idx ON @schema@.batches (job_id, seq);
COMMENT ON COLUMN @schema@.batches.lock_wait_ms IS
    'The longest wait of a session blocked by this batch, read just before the batch committed.';

-- Every job with its progress, a parallel job's summed over its shards, and whether its worker
-- was last seen longer ago than stale_after().
CREATE VIEW @schema@.progress AS
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
    j.parent_id,
    seen.worker_seen_at,
    coalesce(seen.worker_seen_at < now() - @schema@.stale_after(), false) AS stale,
    p.size_reason
FROM @schema@.jobs j
-- A parallel job's progress is the sum of its shards'; its rate the sum of the running shards'.
LEFT JOIN LATERAL (
    SELECT own.rows_done, own.rows_changed, own.rows_total, own.batches_done, own.rows_per_second, own.batch_size,
        own.hold_reason, own.cursor, own.lock_waits, own.lock_wait_ms_max, own.lock_wait_ms_total,
        own.size_reason
    FROM @schema@.job_progress own WHERE own.job_id = j.id AND j.kind <> 'batched_parallel'
    UNION ALL
    SELECT sum(sp.rows_done)::bigint, sum(sp.rows_changed)::bigint, sum(sp.rows_total)::bigint,
        sum(sp.batches_done)::bigint, sum(sp.rows_per_second) FILTER (WHERE s.state = 'running'),
        sum(sp.batch_size) FILTER (WHERE s.state = 'running')::integer,
        string_agg(DISTINCT sp.hold_reason, '; '), NULL::text, sum(sp.lock_waits)::bigint,
        max(sp.lock_wait_ms_max), sum(sp.lock_wait_ms_total),
        string_agg(DISTINCT sp.size_reason, '; ') FILTER (WHERE s.state = 'running')
    FROM @schema@.jobs s JOIN @schema@.job_progress sp ON sp.job_id = s.id
    WHERE s.parent_id = j.id AND j.kind = 'batched_parallel'
    HAVING j.kind = 'batched_parallel'
) p ON true
-- The oldest sign of life among the job's running workers: the worker's own heartbeat when it
-- has a row in workers (and has not stopped), else the job's heartbeat.
LEFT JOIN LATERAL (
    SELECT min(CASE WHEN w.stopped_at IS NULL THEN greatest(w.heartbeat_at, r.heartbeat_at) ELSE r.heartbeat_at END)
        AS worker_seen_at
    FROM @schema@.jobs r LEFT JOIN @schema@.workers w ON w.id = r.worker_id
    WHERE j.state = 'running' AND r.state = 'running' AND (r.id = j.id OR r.parent_id = j.id)
) seen ON true;

-- What a batched job runs over, checked against the catalog: the table, its key column, the
-- key's type and that the key is unique and NOT NULL. The worker calls it again before every
-- attempt, with the enqueuer's rights, so a hand-inserted payload is checked as thoroughly as
-- one from enqueue_batched. Returns the names quoted for SQL, taken from the catalog. The
-- table name resolves through caller_search_path (by default the caller's own).
CREATE FUNCTION @schema@.batched_target_of_table(table_name text, key_column text,
    caller_search_path text DEFAULT current_setting('search_path'),
    OUT relation text, OUT key_sql text, OUT key_type text, OUT estimated_rows bigint)
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $fn$
DECLARE
    rel regclass;
    key_attnum smallint;
    key_typid oid;
    key_notnull boolean;
BEGIN
    PERFORM set_config('search_path', caller_search_path, true);
    rel := pg_catalog.to_regclass(table_name);
    PERFORM pg_catalog.set_config('search_path', 'pg_catalog, pg_temp', true);
    IF rel IS NULL THEN
        RAISE EXCEPTION 'table "%" does not exist', table_name USING ERRCODE = '42P01';
    END IF;
    SELECT a.attnum, a.atttypid, a.attnotnull INTO key_attnum, key_typid, key_notnull
    FROM pg_attribute a WHERE a.attrelid = rel AND a.attname = key_column AND a.attnum > 0 AND NOT a.attisdropped;
    IF key_attnum IS NULL THEN
        RAISE EXCEPTION 'table % has no column "%"', table_name, key_column USING ERRCODE = '42703';
    END IF;
    IF key_typid NOT IN ('smallint'::regtype, 'integer'::regtype, 'bigint'::regtype, 'uuid'::regtype,
                         'text'::regtype, 'character varying'::regtype, 'timestamp with time zone'::regtype) THEN
        RAISE EXCEPTION 'key column "%" of % has type %, which batching does not support (smallint, integer, bigint, uuid, text, varchar, timestamptz)',
            key_column, table_name, key_typid::regtype USING ERRCODE = '0A000';
    END IF;
    IF NOT EXISTS (
        SELECT 1 FROM pg_index i
        WHERE i.indrelid = rel AND i.indisunique AND i.indisvalid AND i.indpred IS NULL
          AND i.indexprs IS NULL AND i.indnkeyatts = 1 AND i.indkey[0] = key_attnum
    ) THEN
        RAISE EXCEPTION 'key column "%" of % is not unique: batching needs a primary key or a unique index on that column alone',
            key_column, table_name USING ERRCODE = '42P10';
    END IF;
    IF NOT key_notnull THEN
        RAISE EXCEPTION 'key column "%" of % allows NULL: rows with a NULL key would never be batched; make it NOT NULL (a primary key is)',
            key_column, table_name USING ERRCODE = '42P10';
    END IF;
    SELECT format('%I.%I', n.nspname, c.relname), c.reltuples::bigint INTO relation, estimated_rows
    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = rel;
    key_sql := quote_ident(key_column);
    key_type := format_type(key_typid, NULL);
END
$fn$;

-- A batched job's relation must be a table: a view, materialized view or foreign table is
-- refused as such, before the key checks of batched_target_of_table.
CREATE FUNCTION @schema@.batched_target(table_name text, key_column text,
    caller_search_path text DEFAULT current_setting('search_path'),
    OUT relation text, OUT key_sql text, OUT key_type text, OUT estimated_rows bigint)
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $fn$
DECLARE
    kind "char";
BEGIN
    PERFORM set_config('search_path', caller_search_path, true);
    SELECT c.relkind INTO kind FROM pg_class c WHERE c.oid = pg_catalog.to_regclass(table_name);
    PERFORM pg_catalog.set_config('search_path', 'pg_catalog, pg_temp', true);
    IF kind IS NOT NULL AND kind NOT IN ('r', 'p') THEN
        RAISE EXCEPTION '% is a %, not a table: a batched job updates a table''s rows in the order of its key', table_name,
            CASE kind WHEN 'v' THEN 'view' WHEN 'm' THEN 'materialized view' WHEN 'f' THEN 'foreign table'
                WHEN 'S' THEN 'sequence' ELSE 'relation of another kind' END
            USING ERRCODE = '42809';
    END IF;
    SELECT t.relation, t.key_sql, t.key_type, t.estimated_rows INTO relation, key_sql, key_type, estimated_rows
    FROM @schema@.batched_target_of_table(table_name, key_column, caller_search_path) t;
END
$fn$;

-- Validates a batched data migration against the live database and enqueues it, with the
-- caller's rights. Everything is checked before anything is written, so a bad definition
-- leaves no job, and nothing of the statement is run: it is parsed (PREPARE) but never
-- executed, and a statement text with a `;` in it is refused first, so the PREPARE can hold
-- exactly one statement. Table names resolve through the caller's search_path, which is
-- recorded with the job so that the worker runs the statement as it was checked.
-- max_attempts bounds the retries of one batch; the job itself may be attempted up to 100
-- times (each crash of a worker costs one), since every attempt resumes where the last one
-- committed. With parallel above 1, the job is split into shards at enqueue (below).
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

-- Parallel jobs. A parent (kind batched_parallel) is never claimed; its state is derived from its
-- shards'. A shard is a batched job with parent_id set, its first checkpoint the shard's lower
-- bound (payload.lower, exclusive) and its batches bounded by payload.upper (inclusive).
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

-- The fence of one batch: locks the job's row FOR KEY SHARE until the batch's transaction ends,
-- so that no rescue (FOR UPDATE SKIP LOCKED) can take the job while a batch is in flight, and
-- says whether to go on. Returns NULL to go on, 'pause' or 'cancel' when someone asked (a shard
-- whose sibling failed reads that as a pause), and 'lost' when the lease is no longer the
-- caller's.
CREATE FUNCTION @schema@.batch_fence(job_id bigint, lease bigint) RETURNS text
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $fn$
DECLARE
    j record;
BEGIN
    SELECT s.control, s.parent_id INTO j FROM @schema@.jobs s
    WHERE s.id = job_id AND s.enqueued_by = session_user AND s.lease_token = lease AND s.state = 'running'
    FOR KEY SHARE;
    IF NOT FOUND THEN
        IF NOT EXISTS (SELECT 1 FROM @schema@.jobs s WHERE s.id = job_id AND s.enqueued_by = session_user) THEN
            RAISE EXCEPTION 'job % is not a job of role %', job_id, session_user USING ERRCODE = '42501';
        END IF;
        RETURN 'lost';
    END IF;
    IF j.control IS NOT NULL THEN
        RETURN j.control;
    END IF;
    IF j.parent_id IS NOT NULL AND EXISTS (
        SELECT 1 FROM @schema@.jobs s WHERE s.parent_id = j.parent_id AND s.state = 'failed') THEN
        RETURN 'pause';
    END IF;
    RETURN NULL;
END
$fn$;

-- A batch's checkpoint, in the batch's own transaction after its statement: the cursor, the
-- counts and one row of history. Returns the batch's sequence number, or NULL for an empty
-- batch (the end), which records nothing. Fails (and so rolls the batch back) when the lease is
-- no longer the caller's.
CREATE FUNCTION @schema@.batch_checkpoint(
    job_id bigint, lease bigint, attempt integer, size integer, first_key text, last_key text, n integer,
    changed bigint, ms double precision, waiters integer, longest_wait_ms double precision,
    total_wait_ms double precision, recent_rows bigint, recent_seconds double precision
) RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $fn$
DECLARE
    seq bigint;
BEGIN
    PERFORM 1 FROM @schema@.jobs s
    WHERE s.id = job_id AND s.enqueued_by = session_user AND s.lease_token = lease AND s.state = 'running';
    IF NOT FOUND THEN
        RAISE EXCEPTION 'job %: the lease is no longer this session''s', job_id USING ERRCODE = 'GW001';
    END IF;
    IF n IS NULL OR n <= 0 THEN
        RETURN NULL;
    END IF;
    UPDATE @schema@.job_progress p SET cursor = last_key, rows_done = p.rows_done + n,
        rows_changed = p.rows_changed + greatest(changed, 0), batches_done = p.batches_done + 1, batch_size = size,
        rows_per_second = (recent_rows + n) / nullif(recent_seconds + ms / 1000, 0), hold_reason = NULL,
        lock_waits = p.lock_waits + greatest(waiters, 0),
        lock_wait_ms_total = p.lock_wait_ms_total + greatest(total_wait_ms, 0),
        lock_wait_ms_max = greatest(p.lock_wait_ms_max, longest_wait_ms), updated_at = now()
    WHERE p.job_id = batch_checkpoint.job_id
    RETURNING p.batches_done INTO seq;
    IF seq IS NULL THEN
        RAISE EXCEPTION 'job % has no progress row', job_id USING ERRCODE = 'GW001';
    END IF;
    INSERT INTO @schema@.batches (job_id, seq, attempt, first_key, last_key, rows, rows_changed, batch_size,
        duration_ms, lock_waiters, lock_wait_ms)
    VALUES (job_id, seq, attempt, first_key, last_key, n, greatest(changed, 0), size, ms, greatest(waiters, 0),
        greatest(longest_wait_ms, 0));
    RETURN seq;
END
$fn$;

-- `godwit job enqueue FILE --resume-from OLD`: the new batched job (enqueued in this same
-- transaction by the calling login) continues from OLD's checkpoint. OLD must be a batched job
-- (not a parallel job or one of its shards) that failed or was cancelled, so that nothing runs
-- it any more; a paused job is cancelled first, by whoever may. Both must walk the same table
-- by the same key. The new job's progress starts at OLD's cursor (the last committed key) and
-- rows done; its payload records `resumes`, and OLD's result `resumed_by`, after which OLD may
-- not be retried (it would update the keys the new job updates). The caller must be allowed to
-- restart OLD (may_restart). Returns OLD's cursor, NULL when it had committed no batch.
CREATE FUNCTION @schema@.resume_batched_from(new_job bigint, old_job bigint) RETURNS text
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $fn$
DECLARE
    o record;
    n record;
    old_target record;
    new_target record;
BEGIN
    SELECT j.id, j.kind, j.state, j.parent_id, j.payload, j.result, p.cursor, p.rows_done INTO o
    FROM @schema@.jobs j LEFT JOIN @schema@.job_progress p ON p.job_id = j.id
    WHERE j.id = old_job FOR UPDATE OF j;
    IF NOT FOUND THEN
        RAISE EXCEPTION '--resume-from %: no such job', old_job USING ERRCODE = '22023';
    END IF;
    IF o.kind = 'batched_parallel' THEN
        RAISE EXCEPTION '--resume-from %: job % is a parallel job, whose shards stopped at different keys; resuming one is not supported: enqueue the fix without --resume-from, or run each range again',
            old_job, old_job USING ERRCODE = '0A000';
    END IF;
    IF o.kind <> 'batched' THEN
        RAISE EXCEPTION '--resume-from %: job % is a % job, not a batched one', old_job, old_job, o.kind USING ERRCODE = '22023';
    END IF;
    IF o.parent_id IS NOT NULL THEN
        RAISE EXCEPTION '--resume-from %: job % is a shard of parallel job %; resuming a shard is not supported',
            old_job, old_job, o.parent_id USING ERRCODE = '0A000';
    END IF;
    IF o.state NOT IN ('failed', 'cancelled') THEN
        RAISE EXCEPTION '--resume-from %: job % is %; only a failed or cancelled job can be resumed from (cancel it first: godwit job cancel %)',
            old_job, old_job, o.state, old_job USING ERRCODE = '55000';
    END IF;
    IF o.result ? 'resumed_by' THEN
        RAISE EXCEPTION '--resume-from %: job % was already resumed by job %; resume from that one', old_job, old_job,
            o.result->>'resumed_by' USING ERRCODE = '55000';
    END IF;
    IF NOT @schema@.may_restart(old_job) THEN
        RAISE EXCEPTION '--resume-from %: job % was enqueued by another role: resuming it needs membership in that role, or the queue owner''s',
            old_job, old_job USING ERRCODE = '42501';
    END IF;
    SELECT j.id, j.kind, j.state, j.attempts, j.parent_id, j.payload, j.enqueued_by, p.batches_done, p.cursor INTO n
    FROM @schema@.jobs j LEFT JOIN @schema@.job_progress p ON p.job_id = j.id
    WHERE j.id = new_job FOR UPDATE OF j;
    IF NOT FOUND OR n.kind <> 'batched' OR n.parent_id IS NOT NULL OR n.state <> 'queued' OR n.attempts <> 0
       OR n.enqueued_by <> session_user OR coalesce(n.batches_done, 0) <> 0 OR n.cursor IS NOT NULL THEN
        RAISE EXCEPTION 'job % is not a batched job this login has just enqueued', new_job USING ERRCODE = '22023';
    END IF;
    -- Same table and key, compared as the catalog resolves them (the payload's table is
    -- schema-qualified; the key as the definition wrote it).
    SELECT t.relation, t.key_sql INTO old_target
    FROM @schema@.batched_target(o.payload->>'table', o.payload->>'key', 'pg_catalog') t;
    SELECT t.relation, t.key_sql INTO new_target
    FROM @schema@.batched_target(n.payload->>'table', n.payload->>'key', 'pg_catalog') t;
    IF old_target.relation::regclass <> new_target.relation::regclass THEN
        RAISE EXCEPTION '--resume-from %: job % updates table %, this file table %; a job resumes only on the same table',
            old_job, old_job, old_target.relation, new_target.relation USING ERRCODE = '22023';
    END IF;
    IF old_target.key_sql <> new_target.key_sql THEN
        RAISE EXCEPTION '--resume-from %: job % walks key %, this file key %; a job resumes only by the same key',
            old_job, old_job, old_target.key_sql, new_target.key_sql USING ERRCODE = '22023';
    END IF;
    UPDATE @schema@.job_progress SET cursor = o.cursor, rows_done = coalesce(o.rows_done, 0), updated_at = now()
    WHERE job_id = new_job;
    UPDATE @schema@.jobs SET payload = payload || jsonb_build_object('resumes', old_job, 'resumed_cursor', o.cursor)
    WHERE id = new_job;
    UPDATE @schema@.jobs SET result = coalesce(result, '{}'::jsonb) || jsonb_build_object('resumed_by', new_job)
    WHERE id = old_job;
    RETURN o.cursor;
END
$fn$;

-- The backup a migrate job took names the job (backup create's own have none), and goes on
-- naming it until the job is deleted.
ALTER TABLE @schema@.backups ADD CONSTRAINT backups_job_id_fkey
    FOREIGN KEY (job_id) REFERENCES @schema@.jobs (id) ON DELETE SET NULL;

-- Where backups are on the worker's host is for controllers and the owner, like a job's result.
CREATE VIEW @schema@.backup_files WITH (security_barrier) AS
SELECT b.id, b.file FROM @schema@.backups b
WHERE pg_catalog.has_function_privilege(current_user, '@schema@.retry(bigint)', 'EXECUTE');
REVOKE ALL ON @schema@.backup_files FROM PUBLIC;

-- The three sets of rights, granted by the owner: SELECT @schema@.grant_enqueue('app'). They
-- cover every owner's objects, so they are defined here, by the part installed last.
CREATE FUNCTION @schema@.grant_read(grantee regrole) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $fn$
BEGIN
    EXECUTE format('GRANT USAGE ON SCHEMA @schema@ TO %s', grantee);
    EXECUTE format('GRANT SELECT (id, kind, name, state, priority, run_at, attempts, max_attempts, last_error, worker_id,
        lease_token, heartbeat_at, control, enqueued_by, created_at, started_at, finished_at, parent_id) ON @schema@.jobs TO %s',
        grantee);
    EXECUTE format('GRANT SELECT (id, size_bytes, sha256, database_name, job_id, verified_at, created_at, reason)
        ON @schema@.backups TO %s', grantee);
    EXECUTE format('GRANT SELECT (id, job_id, attempt, worker_id, error, at) ON @schema@.job_errors TO %s', grantee);
    EXECUTE format('GRANT EXECUTE ON FUNCTION @schema@.stale_after() TO %s', grantee);
    EXECUTE format('GRANT SELECT ON @schema@.job_progress, @schema@.progress, @schema@.batches, @schema@.schema_version,
        @schema@.job_details, @schema@.backup_files, @schema@.workers TO %s', grantee);
END
$fn$;

CREATE FUNCTION @schema@.grant_enqueue(grantee regrole) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $fn$
BEGIN
    PERFORM @schema@.grant_read(grantee);
    EXECUTE format('GRANT INSERT (kind, name, payload, priority, run_at, max_attempts, parent_id) ON @schema@.jobs TO %s', grantee);
    EXECUTE format('GRANT EXECUTE ON FUNCTION @schema@.enqueue(text, text, jsonb, integer, timestamptz, integer),
        @schema@.enqueue_batched(text, text, text, text, integer, integer, integer, integer, integer, integer, integer,
            integer, integer, text, integer, text, integer),
        @schema@.batched_target(text, text, text), @schema@.batched_target_of_table(text, text, text),
        @schema@.batch_fence(bigint, bigint),
        @schema@.batch_checkpoint(bigint, bigint, integer, integer, text, text, integer, bigint, double precision, integer,
            double precision, double precision, bigint, double precision),
        @schema@.job_succeeded(bigint, bigint, jsonb), @schema@.resume_batched_from(bigint, bigint) TO %s', grantee);
END
$fn$;

CREATE FUNCTION @schema@.grant_control(grantee regrole) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $fn$
BEGIN
    PERFORM @schema@.grant_read(grantee);
    EXECUTE format('GRANT EXECUTE ON FUNCTION @schema@.pause(bigint), @schema@.resume(bigint), @schema@.cancel(bigint),
        @schema@.retry(bigint) TO %s', grantee);
END
$fn$;

-- Functions are executable by PUBLIC unless revoked; nothing in this part is.
REVOKE ALL ON ALL FUNCTIONS IN SCHEMA @schema@ FROM PUBLIC;
REVOKE ALL ON @schema@.job_progress, @schema@.batches, @schema@.progress FROM PUBLIC;
