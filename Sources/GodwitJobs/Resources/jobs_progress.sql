-- A batched job's progress: its row beside the job's, each batch's history, and the progress
-- view of every job, a parallel job's summed over its shards.
--
-- One of the jobs part's files (owner `jobs`), which install together in one transaction in
-- the order `SchemaPart.jobs` names them. @schema@ stands for the schema's quoted name; the
-- installer substitutes it.

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
