-- Godwit's queue: tables, view, functions and privileges, installed in one schema.
--
-- @schema@ stands for the schema's quoted name and @channel@ for the NOTIFY channel as a string
-- literal; QueueSchema substitutes both. The whole file runs in one transaction.
--
-- Rights. Nothing here is open to PUBLIC. The role that installs the schema (the worker's) owns
-- everything. Other roles get one of three sets of rights from the owner, through
-- grant_read(role), grant_enqueue(role) and grant_control(role) below. Every job records the
-- role that inserted it (enqueued_by, stamped by a trigger, so the inserting session cannot
-- choose it), and the worker runs the job with that role's rights, never its own.

CREATE TYPE @schema@.job_state AS ENUM ('queued', 'running', 'paused', 'succeeded', 'failed', 'cancelled');

-- The queue. Rows change state a few times in their life; what changes often (progress) lives
-- in job_progress, and no index covers heartbeat_at, so heartbeats are HOT updates.
CREATE TABLE @schema@.jobs (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    kind          text NOT NULL,
    name          text NOT NULL,
    payload       jsonb NOT NULL DEFAULT '{}'::jsonb,
    state         @schema@.job_state NOT NULL DEFAULT 'queued',
    priority      integer NOT NULL DEFAULT 0,
    run_at        timestamptz NOT NULL DEFAULT now(),
    attempts      integer NOT NULL DEFAULT 0,
    max_attempts  integer NOT NULL DEFAULT 10 CHECK (max_attempts > 0),
    last_error    text,
    worker_id     text,
    lease_token   bigint NOT NULL DEFAULT 0,
    heartbeat_at  timestamptz,
    control       text CHECK (control IN ('pause', 'cancel')),
    result        jsonb,
    enqueued_by   name NOT NULL DEFAULT current_user,
    created_at    timestamptz NOT NULL DEFAULT now(),
    started_at    timestamptz,
    finished_at   timestamptz
);
COMMENT ON COLUMN @schema@.jobs.lease_token IS
    'Grows with every claim; every write a worker makes for a job is fenced by state = running and this token.';
COMMENT ON COLUMN @schema@.jobs.control IS
    'A pause or cancel requested while the job runs; the worker acts on it at the next checkpoint.';
COMMENT ON COLUMN @schema@.jobs.enqueued_by IS
    'The role that inserted the job (current_user at insert, stamped by a trigger); the job runs with its rights.';

-- Serves the claim query: queued jobs by priority, then due time.
CREATE INDEX jobs_claim_idx ON @schema@.jobs (priority DESC, run_at, id) WHERE state = 'queued';
-- Serves lease rescue and heartbeats.
CREATE INDEX jobs_running_idx ON @schema@.jobs (id) WHERE state = 'running';
-- Serves the clean-up of finished jobs.
CREATE INDEX jobs_finished_idx ON @schema@.jobs (finished_at) WHERE finished_at IS NOT NULL;

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
    updated_at       timestamptz NOT NULL DEFAULT now()
) WITH (fillfactor = 70);

-- Whoever inserts a job, however (a function, a plain INSERT), the job carries their role.
CREATE FUNCTION @schema@.stamp_enqueued_by() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $fn$
BEGIN
    NEW.enqueued_by := current_user;
    RETURN NEW;
END
$fn$;

CREATE TRIGGER jobs_stamp_enqueued_by BEFORE INSERT ON @schema@.jobs
    FOR EACH ROW EXECUTE FUNCTION @schema@.stamp_enqueued_by();

-- A batched job's progress row, made with the job: the enqueuer needs no right on job_progress.
-- Runs with the owner's rights and takes only numbers from the payload.
CREATE FUNCTION @schema@.create_job_progress() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $fn$
BEGIN
    INSERT INTO @schema@.job_progress (job_id, rows_total, batch_size)
    VALUES (NEW.id,
        CASE WHEN jsonb_typeof(NEW.payload->'rows_total') = 'number'
            THEN least((NEW.payload->>'rows_total')::numeric, 9e18)::bigint END,
        CASE WHEN jsonb_typeof(NEW.payload->'batch_size') = 'number'
            THEN least(greatest((NEW.payload->>'batch_size')::numeric, 1), 2e9)::integer END);
    RETURN NULL;
END
$fn$;

CREATE TRIGGER jobs_create_progress AFTER INSERT ON @schema@.jobs
    FOR EACH ROW WHEN (NEW.kind = 'batched')
    EXECUTE FUNCTION @schema@.create_job_progress();

CREATE FUNCTION @schema@.notify_jobs() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $fn$
BEGIN
    PERFORM pg_notify(TG_ARGV[0], '');
    RETURN NULL;
END
$fn$;

-- Every insert or requeue wakes the workers, in the same transaction, so a plain INSERT from
-- psql works too. Identical notifications in one transaction fold into one.
CREATE TRIGGER jobs_notify AFTER INSERT OR UPDATE OF state, run_at ON @schema@.jobs
    FOR EACH ROW WHEN (NEW.state = 'queued')
    EXECUTE FUNCTION @schema@.notify_jobs(@channel@);

-- Runs with the caller's rights: the job is theirs.
CREATE FUNCTION @schema@.enqueue(
    kind text, name text, payload jsonb DEFAULT '{}'::jsonb, priority integer DEFAULT 0,
    run_at timestamptz DEFAULT now(), max_attempts integer DEFAULT 10
) RETURNS bigint
LANGUAGE sql SET search_path = pg_catalog, pg_temp AS $fn$
    INSERT INTO @schema@.jobs (kind, name, payload, priority, run_at, max_attempts)
    VALUES (kind, name, payload, priority, run_at, max_attempts)
    RETURNING id
$fn$;

-- The controls run with the owner's rights, so a controller needs no right on the table; they
-- change a job's state only, never what it runs or as whom.
CREATE FUNCTION @schema@.pause(job_id bigint) RETURNS boolean
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $fn$
BEGIN
    UPDATE @schema@.jobs SET state = 'paused' WHERE id = job_id AND state = 'queued';
    IF FOUND THEN RETURN true; END IF;
    UPDATE @schema@.jobs SET control = 'pause' WHERE id = job_id AND state = 'running' AND control IS NULL;
    RETURN FOUND;
END
$fn$;

CREATE FUNCTION @schema@.resume(job_id bigint) RETURNS boolean
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $fn$
BEGIN
    UPDATE @schema@.jobs SET state = 'queued', run_at = now() WHERE id = job_id AND state = 'paused';
    IF FOUND THEN RETURN true; END IF;
    UPDATE @schema@.jobs SET control = NULL WHERE id = job_id AND state = 'running' AND control = 'pause';
    RETURN FOUND;
END
$fn$;

CREATE FUNCTION @schema@.cancel(job_id bigint) RETURNS boolean
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $fn$
BEGIN
    UPDATE @schema@.jobs SET state = 'cancelled', finished_at = now(), control = NULL
    WHERE id = job_id AND state IN ('queued', 'paused');
    IF FOUND THEN RETURN true; END IF;
    UPDATE @schema@.jobs SET control = 'cancel'
    WHERE id = job_id AND state = 'running' AND control IS DISTINCT FROM 'cancel';
    RETURN FOUND;
END
$fn$;

CREATE FUNCTION @schema@.retry(job_id bigint) RETURNS boolean
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $fn$
BEGIN
    UPDATE @schema@.jobs
    SET state = 'queued', run_at = now(), attempts = 0, finished_at = NULL, control = NULL
    WHERE id = job_id AND state IN ('failed', 'cancelled');
    RETURN FOUND;
END
$fn$;

CREATE TABLE @schema@.backups (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    file          text NOT NULL,
    size_bytes    bigint NOT NULL,
    sha256        text NOT NULL,
    database_name text NOT NULL,
    job_id        bigint REFERENCES @schema@.jobs (id) ON DELETE SET NULL,
    verified_at   timestamptz NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now()
);

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
    finished_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX batches_job_seq_idx ON @schema@.batches (job_id, seq);

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
    p.batches_done, p.cursor
FROM @schema@.jobs j LEFT JOIN @schema@.job_progress p ON p.job_id = j.id;

-- What a batched job runs over, checked against the catalog: the table, its key column, the
-- key's type and that the key is unique and NOT NULL. The worker calls it again before every
-- attempt, with the enqueuer's rights, so a hand-inserted payload is checked as thoroughly as
-- one from enqueue_batched. Returns the names quoted for SQL, taken from the catalog. The
-- table name resolves through caller_search_path (by default the caller's own).
CREATE FUNCTION @schema@.batched_target(table_name text, key_column text,
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

-- Validates a batched data migration against the live database and enqueues it, with the
-- caller's rights. Everything is checked before anything is written, so a bad definition
-- leaves no job, and nothing of the statement is run: it is parsed (PREPARE) but never
-- executed, and a statement text with a `;` in it is refused first, so the PREPARE can hold
-- exactly one statement. Table names resolve through the caller's search_path, which is
-- recorded with the job so that the worker runs the statement as it was checked.
-- max_attempts bounds the retries of one batch; the job itself may be attempted up to 100
-- times (each crash of a worker costs one), since every attempt resumes where the last one
-- committed.
CREATE FUNCTION @schema@.enqueue_batched(
    name text, table_name text, key_column text, statement text,
    batch_size integer DEFAULT 1000, target_batch_ms integer DEFAULT 200, pause_ms integer DEFAULT 0,
    min_batch_size integer DEFAULT 10, max_batch_size integer DEFAULT 50000,
    lock_timeout_ms integer DEFAULT 2000, statement_timeout_ms integer DEFAULT 10000,
    max_attempts integer DEFAULT 5, priority integer DEFAULT 0,
    caller_search_path text DEFAULT current_setting('search_path')
) RETURNS bigint
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $fn$
DECLARE
    target record;
    parameters integer;
    estimate bigint;
    body text := btrim(statement, E' \t\r\n;');
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
    IF target_batch_ms < 1 OR pause_ms < 0 OR lock_timeout_ms < 0 OR statement_timeout_ms < 0 OR max_attempts < 1 THEN
        RAISE EXCEPTION 'target-batch-ms and max-attempts must be positive, and pauses and timeouts not negative'
            USING ERRCODE = '22023';
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
        'max_attempts', max_attempts), priority, greatest(max_attempts, 100))
    RETURNING id INTO new_id;
    RETURN new_id;
END
$fn$;

-- The three sets of rights, granted by the owner: SELECT @schema@.grant_enqueue('app').
CREATE FUNCTION @schema@.grant_read(grantee regrole) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $fn$
BEGIN
    EXECUTE format('GRANT USAGE ON SCHEMA @schema@ TO %s', grantee);
    EXECUTE format('GRANT SELECT ON @schema@.jobs, @schema@.job_progress, @schema@.progress, @schema@.batches,
        @schema@.backups, @schema@.schema_version TO %s', grantee);
END
$fn$;

CREATE FUNCTION @schema@.grant_enqueue(grantee regrole) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $fn$
BEGIN
    PERFORM @schema@.grant_read(grantee);
    EXECUTE format('GRANT INSERT (kind, name, payload, priority, run_at, max_attempts) ON @schema@.jobs TO %s', grantee);
    EXECUTE format('GRANT EXECUTE ON FUNCTION @schema@.enqueue(text, text, jsonb, integer, timestamptz, integer),
        @schema@.enqueue_batched(text, text, text, text, integer, integer, integer, integer, integer, integer, integer,
            integer, integer, text),
        @schema@.batched_target(text, text, text) TO %s', grantee);
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

-- Functions are executable by PUBLIC unless revoked; nothing in this schema is.
REVOKE ALL ON ALL FUNCTIONS IN SCHEMA @schema@ FROM PUBLIC;
REVOKE ALL ON ALL TABLES IN SCHEMA @schema@ FROM PUBLIC;
REVOKE ALL ON SCHEMA @schema@ FROM PUBLIC;
