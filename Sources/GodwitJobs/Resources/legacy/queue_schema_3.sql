-- Step 3: jobs run in sessions that log in as their enqueuer.
--
-- A job's SQL (an sql job's script, a batch, a health query) runs over a connection whose
-- session_user is the role that enqueued it, never in the worker's own session. Whatever that
-- SQL does, at whatever moment PostgreSQL runs it (a deferred trigger at COMMIT, a domain check
-- at parse time), it has the enqueuer's rights and no more.
--
-- What must still commit together with the job's work (a batch's fence and checkpoint, an sql
-- job's success) goes through the functions below. They run with the queue owner's rights, and
-- each acts only on a running job whose enqueuer is the calling session's login and whose lease
-- token matches: an enqueuer that calls them by hand can touch its own running job and nothing
-- else. Their search_path is pinned, so every name and operator in them resolves in pg_catalog
-- (pg_temp is never searched for functions or operators, and is named last for relations).

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

-- An sql job's success, recorded inside the script's own transaction: the script and its success
-- commit together or not at all, so a crash between them cannot run the script twice.
CREATE FUNCTION @schema@.job_succeeded(job_id bigint, lease bigint, job_result jsonb) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $fn$
BEGIN
    UPDATE @schema@.jobs s SET state = 'succeeded', result = job_result, finished_at = now(), heartbeat_at = NULL,
        control = NULL
    WHERE s.id = job_id AND s.enqueued_by = session_user AND s.lease_token = lease AND s.state = 'running';
    IF NOT FOUND THEN
        RAISE EXCEPTION 'job %: the lease is no longer this session''s', job_id USING ERRCODE = 'GW001';
    END IF;
END
$fn$;

-- Resuming or retrying a job makes it run again, with its enqueuer's rights: so only a login
-- that could act as the enqueuer (a member of its role) or as the queue's owner may do it.
-- Pause and cancel stay open to every controller. session_user, not current_user: inside these
-- functions current_user is the owner; the login is who is asking, and a login that is a
-- member of the enqueuer's role could run the job's SQL as that role anyway.
CREATE FUNCTION @schema@.may_restart(job_id bigint) RETURNS boolean
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $fn$
    SELECT pg_has_role(session_user, current_user, 'MEMBER')
        OR NOT EXISTS (SELECT 1 FROM @schema@.jobs j WHERE j.id = job_id)
        OR EXISTS (SELECT 1 FROM @schema@.jobs j JOIN pg_roles r ON r.rolname = j.enqueued_by
                   WHERE j.id = job_id AND pg_has_role(session_user, r.oid, 'MEMBER'))
$fn$;

-- resume and retry keep their bodies under new names, callable by the owner only, and the
-- functions of the old names check may_restart first. The controllers that could call the old
-- ones may call the new ones, and nothing else.
CREATE TEMP TABLE godwit_controllers ON COMMIT DROP AS
SELECT DISTINCT (a.item).grantee AS oid
FROM (SELECT pg_catalog.aclexplode(p.proacl) AS item, p.proowner FROM pg_catalog.pg_proc p
      WHERE p.oid IN ('@schema@.resume(bigint)'::pg_catalog.regprocedure, '@schema@.retry(bigint)'::pg_catalog.regprocedure)) a
WHERE (a.item).privilege_type = 'EXECUTE' AND (a.item).grantee <> 0 AND (a.item).grantee <> a.proowner;
ALTER FUNCTION @schema@.resume(bigint) RENAME TO resume_any;
ALTER FUNCTION @schema@.retry(bigint) RENAME TO retry_any;

CREATE FUNCTION @schema@.resume(job_id bigint) RETURNS boolean
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $fn$
BEGIN
    IF NOT @schema@.may_restart(job_id) THEN
        RAISE EXCEPTION 'job % was enqueued by another role: resuming it needs membership in that role, or the queue owner''s',
            job_id USING ERRCODE = '42501';
    END IF;
    RETURN @schema@.resume_any(job_id);
END
$fn$;

CREATE FUNCTION @schema@.retry(job_id bigint) RETURNS boolean
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $fn$
BEGIN
    IF NOT @schema@.may_restart(job_id) THEN
        RAISE EXCEPTION 'job % was enqueued by another role: retrying it needs membership in that role, or the queue owner''s',
            job_id USING ERRCODE = '42501';
    END IF;
    RETURN @schema@.retry_any(job_id);
END
$fn$;

REVOKE ALL ON FUNCTION @schema@.resume(bigint), @schema@.retry(bigint) FROM PUBLIC;
DO $do$
DECLARE r record;
BEGIN
    FOR r IN SELECT oid FROM godwit_controllers LOOP
        EXECUTE format('REVOKE ALL ON FUNCTION @schema@.resume_any(bigint), @schema@.retry_any(bigint) FROM %s', r.oid::regrole);
        EXECUTE format('GRANT EXECUTE ON FUNCTION @schema@.resume(bigint), @schema@.retry(bigint) TO %s', r.oid::regrole);
    END LOOP;
END
$do$;
REVOKE ALL ON FUNCTION @schema@.resume_any(bigint), @schema@.retry_any(bigint) FROM PUBLIC;

-- What only the enqueuer, the controllers and the owner may read: a job's payload (an sql
-- script, migration files, which may hold a CREATE ROLE ... PASSWORD), its result (backup
-- paths) and the server's DETAIL of its last error, which may quote rows of tables a reader
-- cannot SELECT ("Failing row contains (...)"). last_error keeps the message without it.
ALTER TABLE @schema@.jobs ADD COLUMN last_error_detail text;
COMMENT ON COLUMN @schema@.jobs.last_error_detail IS
    'The server''s DETAIL of last_error, kept apart since it may quote row values; readers cannot see it.';
UPDATE @schema@.batches SET error = regexp_replace(error, '; detail: .*$', '') WHERE error LIKE '%; detail: %';
UPDATE @schema@.jobs SET last_error_detail = substring(last_error FROM '; detail: (.*)$'),
    last_error = regexp_replace(last_error, '; detail: .*$', '')
WHERE last_error LIKE '%; detail: %';

-- A reader's view of those: rows of the jobs whose enqueuer it is a member of, and every row
-- for a controller or the owner. current_user is the reader's role here (a view changes only
-- whose rights read the table), and security_barrier keeps a reader's own functions from seeing
-- rows before the filter has run.
CREATE VIEW @schema@.job_details WITH (security_barrier) AS
SELECT j.id, j.payload, j.result, j.last_error_detail
FROM @schema@.jobs j
WHERE pg_catalog.has_function_privilege(current_user, '@schema@.retry(bigint)', 'EXECUTE')
   OR EXISTS (SELECT 1 FROM pg_catalog.pg_roles r
              WHERE r.rolname = j.enqueued_by AND pg_catalog.pg_has_role(current_user, r.oid, 'MEMBER'));
REVOKE ALL ON @schema@.job_details FROM PUBLIC;

-- Where backups are on the worker's host is for controllers and the owner, like a job's result.
CREATE VIEW @schema@.backup_files WITH (security_barrier) AS
SELECT b.id, b.file FROM @schema@.backups b
WHERE pg_catalog.has_function_privilege(current_user, '@schema@.retry(bigint)', 'EXECUTE');
REVOKE ALL ON @schema@.backup_files FROM PUBLIC;

CREATE OR REPLACE FUNCTION @schema@.grant_read(grantee regrole) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $fn$
BEGIN
    EXECUTE format('GRANT USAGE ON SCHEMA @schema@ TO %s', grantee);
    EXECUTE format('GRANT SELECT (id, kind, name, state, priority, run_at, attempts, max_attempts, last_error, worker_id,
        lease_token, heartbeat_at, control, enqueued_by, created_at, started_at, finished_at, parent_id) ON @schema@.jobs TO %s',
        grantee);
    EXECUTE format('GRANT SELECT (id, size_bytes, sha256, database_name, job_id, verified_at, created_at)
        ON @schema@.backups TO %s', grantee);
    EXECUTE format('GRANT SELECT ON @schema@.job_progress, @schema@.progress, @schema@.batches, @schema@.schema_version,
        @schema@.job_details, @schema@.backup_files TO %s', grantee);
END
$fn$;

-- Roles that could read every column before this step (of jobs and backups) read the allowed
-- ones from now on.
DO $do$
DECLARE r record;
BEGIN
    FOR r IN
        SELECT DISTINCT (a.item).grantee AS oid
        FROM (SELECT pg_catalog.aclexplode(c.relacl) AS item, c.relowner FROM pg_catalog.pg_class c
              WHERE c.oid = '@schema@.jobs'::pg_catalog.regclass) a
        WHERE (a.item).privilege_type = 'SELECT' AND (a.item).grantee <> 0 AND (a.item).grantee <> a.relowner
    LOOP
        EXECUTE format('REVOKE SELECT ON @schema@.jobs, @schema@.backups FROM %s', r.oid::regrole);
        PERFORM @schema@.grant_read(r.oid::regrole);
    END LOOP;
END
$do$;

-- A batched job's relation must be a table: a view, materialized view or foreign table is
-- refused as such, before the key checks (which called a view's key "not unique"). The checks
-- themselves keep their body under a new name.
ALTER FUNCTION @schema@.batched_target(text, text, text) RENAME TO batched_target_of_table;
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
REVOKE ALL ON FUNCTION @schema@.batched_target(text, text, text) FROM PUBLIC;

CREATE OR REPLACE FUNCTION @schema@.grant_enqueue(grantee regrole) RETURNS void
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
        @schema@.job_succeeded(bigint, bigint, jsonb) TO %s', grantee);
END
$fn$;

REVOKE ALL ON FUNCTION @schema@.batch_fence(bigint, bigint),
    @schema@.batch_checkpoint(bigint, bigint, integer, integer, text, text, integer, bigint, double precision, integer,
        double precision, double precision, bigint, double precision),
    @schema@.job_succeeded(bigint, bigint, jsonb), @schema@.may_restart(bigint) FROM PUBLIC;

-- The roles that could enqueue before this step get the new functions too.
DO $do$
DECLARE r record;
BEGIN
    FOR r IN
        SELECT DISTINCT (a.item).grantee AS oid
        FROM (SELECT pg_catalog.aclexplode(p.proacl) AS item, p.proowner FROM pg_catalog.pg_proc p
              WHERE p.oid = '@schema@.enqueue(text, text, jsonb, integer, timestamptz, integer)'::pg_catalog.regprocedure) a
        WHERE (a.item).privilege_type = 'EXECUTE' AND (a.item).grantee <> 0 AND (a.item).grantee <> a.proowner
    LOOP
        EXECUTE format('GRANT EXECUTE ON FUNCTION @schema@.batch_fence(bigint, bigint),
            @schema@.batched_target(text, text, text),
            @schema@.batch_checkpoint(bigint, bigint, integer, integer, text, text, integer, bigint, double precision, integer,
                double precision, double precision, bigint, double precision),
            @schema@.job_succeeded(bigint, bigint, jsonb) TO %s', r.oid::regrole);
    END LOOP;
END
$do$;
