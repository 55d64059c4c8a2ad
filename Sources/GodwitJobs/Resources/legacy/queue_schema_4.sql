-- Step 4: what a team looks at in its first week. Who is working, what went wrong on each
-- attempt, and why each backup was taken.

-- Why a backup was taken, in words a person reads in `backup list`: "before migration 3
-- (add_users)", "by hand", "before restore". NULL on backups taken before this step.
ALTER TABLE @schema@.backups ADD COLUMN reason text;
COMMENT ON COLUMN @schema@.backups.reason IS
    'Why the backup was taken: "before migration V (description)", "by hand", ...; NULL before schema step 4.';

-- The workers, one row each, written by the worker itself (the queue owner): on start, with
-- every heartbeat, and on an orderly exit. A row whose heartbeat_at is old and whose stopped_at
-- is NULL is a worker that died without saying so; its running jobs are marked stale in
-- progress until their lease expires and a rescue takes them.
CREATE TABLE @schema@.workers (
    id            text PRIMARY KEY,
    login         name NOT NULL DEFAULT session_user,
    host          text,
    pid           integer,
    version       text,
    concurrency   integer,
    started_at    timestamptz NOT NULL DEFAULT now(),
    heartbeat_at  timestamptz NOT NULL DEFAULT now(),
    stopped_at    timestamptz
);
COMMENT ON TABLE @schema@.workers IS
    'One row a worker: its heartbeat, and stopped_at once it exited in order.';

-- Each attempt's error, kept after the job has moved on: jobs.last_error holds only the newest
-- and is cleared when the job succeeds. error_detail is the server's DETAIL, which may quote row
-- values, and is not for readers (as jobs.last_error_detail).
CREATE TABLE @schema@.job_errors (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    job_id        bigint NOT NULL REFERENCES @schema@.jobs (id) ON DELETE CASCADE,
    attempt       integer NOT NULL,
    worker_id     text,
    error         text NOT NULL,
    error_detail  text,
    at            timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX job_errors_job_idx ON @schema@.job_errors (job_id, id);

-- How long a running job's worker may go unseen before the job is marked stale. A worker beats
-- every two seconds at most (a third of its lease when that is shorter), so fifteen seconds is
-- several missed beats, and shorter than the default lease: a job that looks stale is one whose
-- worker is gone, and the rescue that follows says so in its error. Readers
-- may call it: the progress view does, with their rights.
CREATE FUNCTION @schema@.stale_after() RETURNS interval
LANGUAGE sql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $fn$ SELECT interval '15 seconds' $fn$;
REVOKE ALL ON FUNCTION @schema@.stale_after() FROM PUBLIC;

CREATE OR REPLACE FUNCTION @schema@.grant_read(grantee regrole) RETURNS void
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

-- Every role that reads the queue today reads the new tables too.
DO $do$
DECLARE r record;
BEGIN
    FOR r IN
        SELECT DISTINCT (a.item).grantee AS oid
        FROM (SELECT pg_catalog.aclexplode(c.relacl) AS item, c.relowner FROM pg_catalog.pg_class c
              WHERE c.oid = '@schema@.progress'::pg_catalog.regclass) a
        WHERE (a.item).privilege_type = 'SELECT' AND (a.item).grantee <> 0 AND (a.item).grantee <> a.relowner
    LOOP
        PERFORM @schema@.grant_read(r.oid::regrole);
    END LOOP;
END
$do$;

-- progress gains two columns at its end: when the job's worker (of any running shard, for a
-- parallel job) was last seen, and whether that was longer ago than stale_after().
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
    j.parent_id,
    seen.worker_seen_at,
    coalesce(seen.worker_seen_at < now() - @schema@.stale_after(), false) AS stale
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
) p ON true
-- The oldest sign of life among the job's running workers: the worker's own heartbeat when it
-- has a row in workers (and has not stopped), else the job's heartbeat.
LEFT JOIN LATERAL (
    SELECT min(CASE WHEN w.stopped_at IS NULL THEN greatest(w.heartbeat_at, r.heartbeat_at) ELSE r.heartbeat_at END)
        AS worker_seen_at
    FROM @schema@.jobs r LEFT JOIN @schema@.workers w ON w.id = r.worker_id
    WHERE j.state = 'running' AND r.state = 'running' AND (r.id = j.id OR r.parent_id = j.id)
) seen ON true;

-- Every attempt's error lands in job_errors, whatever path wrote it: the worker's failure and
-- retry outcomes, a rescue after an expired lease, a parallel job's failed shard, and any path
-- added later. A trigger catches them all in one place. It fires only when last_error is in an
-- UPDATE's SET list (claims and heartbeats never name it), and its WHEN clause is evaluated
-- without calling the function, so the claim, heartbeat and success paths pay nothing for it.
-- A new error is one that differs from the last, or one written as a running attempt ends (the
-- same message twice in a row is two attempts).
CREATE FUNCTION @schema@.record_job_error() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $fn$
BEGIN
    INSERT INTO @schema@.job_errors (job_id, attempt, worker_id, error, error_detail)
    VALUES (NEW.id, OLD.attempts, OLD.worker_id, NEW.last_error, NEW.last_error_detail);
    RETURN NULL;
END
$fn$;
CREATE TRIGGER jobs_record_error AFTER UPDATE OF last_error ON @schema@.jobs
FOR EACH ROW WHEN (NEW.last_error IS NOT NULL AND (NEW.last_error IS DISTINCT FROM OLD.last_error OR OLD.state = 'running'))
EXECUTE FUNCTION @schema@.record_job_error();

-- A job that succeeds has no error: last_error and its detail are cleared by whichever path
-- records the success (the worker's, an sql job's job_succeeded, a parallel job's last shard).
-- The history stays in job_errors.
CREATE FUNCTION @schema@.clear_error_on_success() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $fn$
BEGIN
    NEW.last_error := NULL;
    NEW.last_error_detail := NULL;
    RETURN NEW;
END
$fn$;
CREATE TRIGGER jobs_clear_error_on_success BEFORE UPDATE OF state ON @schema@.jobs
FOR EACH ROW WHEN (NEW.state = 'succeeded' AND (NEW.last_error IS NOT NULL OR NEW.last_error_detail IS NOT NULL))
EXECUTE FUNCTION @schema@.clear_error_on_success();

-- A trigger function's EXECUTE is checked when the trigger is created, not when it fires.
REVOKE ALL ON FUNCTION @schema@.record_job_error(), @schema@.clear_error_on_success() FROM PUBLIC;

-- Jobs that succeeded before this step lose their stale error too.
UPDATE @schema@.jobs SET last_error = NULL, last_error_detail = NULL
WHERE state = 'succeeded' AND (last_error IS NOT NULL OR last_error_detail IS NOT NULL);

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
REVOKE ALL ON FUNCTION @schema@.resume_batched_from(bigint, bigint) FROM PUBLIC;

-- A job another has resumed from is not retried: its keys are the new job's now.
CREATE OR REPLACE FUNCTION @schema@.retry(job_id bigint) RETURNS boolean
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $fn$
DECLARE
    successor text;
BEGIN
    IF NOT @schema@.may_restart(job_id) THEN
        RAISE EXCEPTION 'job % was enqueued by another role: retrying it needs membership in that role, or the queue owner''s',
            job_id USING ERRCODE = '42501';
    END IF;
    SELECT j.result->>'resumed_by' INTO successor FROM @schema@.jobs j WHERE j.id = job_id AND j.result ? 'resumed_by';
    IF successor IS NOT NULL THEN
        RAISE EXCEPTION 'job % was resumed by job %, which carries on from its checkpoint: retry that one', job_id, successor
            USING ERRCODE = '55000';
    END IF;
    RETURN @schema@.retry_any(job_id);
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
        @schema@.batched_target(text, text, text), @schema@.batched_target_of_table(text, text, text),
        @schema@.batch_fence(bigint, bigint),
        @schema@.batch_checkpoint(bigint, bigint, integer, integer, text, text, integer, bigint, double precision, integer,
            double precision, double precision, bigint, double precision),
        @schema@.job_succeeded(bigint, bigint, jsonb), @schema@.resume_batched_from(bigint, bigint) TO %s', grantee);
END
$fn$;

-- The roles that could enqueue before this step may resume from a checkpoint too.
DO $do$
DECLARE r record;
BEGIN
    FOR r IN
        SELECT DISTINCT (a.item).grantee AS oid
        FROM (SELECT pg_catalog.aclexplode(p.proacl) AS item, p.proowner FROM pg_catalog.pg_proc p
              WHERE p.oid = '@schema@.enqueue(text, text, jsonb, integer, timestamptz, integer)'::pg_catalog.regprocedure) a
        WHERE (a.item).privilege_type = 'EXECUTE' AND (a.item).grantee <> 0 AND (a.item).grantee <> a.proowner
    LOOP
        EXECUTE format('GRANT EXECUTE ON FUNCTION @schema@.resume_batched_from(bigint, bigint) TO %s', r.oid::regrole);
    END LOOP;
END
$do$;
