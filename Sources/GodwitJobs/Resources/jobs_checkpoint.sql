-- A batch's fence and checkpoint, which commit with the batch, and resuming a new job
-- from an old one's checkpoint.
--
-- One of the jobs part's files (owner `jobs`), which install together in one transaction in
-- the order `SchemaPart.jobs` names them. @schema@ stands for the schema's quoted name; the
-- installer substitutes it.

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
