-- Parallel jobs: a parent's state derived from its shards'.
--
-- One of the jobs part's files (owner `jobs`), which install together in one transaction in
-- the order `SchemaPart.jobs` names them. @schema@ stands for the schema's quoted name; the
-- installer substitutes it.

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
