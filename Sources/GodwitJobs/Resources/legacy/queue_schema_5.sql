-- Step 5: the backfill governor shows its reasoning.

-- Why the batch size is what it is, in words, written by the worker when the reason changes
-- ("nobody else uses the table: climbing toward target-batch-ms", "a session waited 42 ms on the
-- last batch (limit 10 ms): cut to a quarter", ...). NULL before the first batch, and for jobs run
-- by a worker older than this step.
ALTER TABLE @schema@.job_progress ADD COLUMN size_reason text;
COMMENT ON COLUMN @schema@.job_progress.size_reason IS
    'Why the governor chose batch_size, in words; NULL before the first batch and before schema step 5.';

-- progress gains size_reason at its end (a parallel job's: its running shards', distinct).
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
