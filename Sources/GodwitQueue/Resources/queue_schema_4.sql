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
