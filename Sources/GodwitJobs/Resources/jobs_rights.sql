-- The three sets of rights, which cover every owner's objects, and what PUBLIC may not do.
--
-- One of the jobs part's files (owner `jobs`), which install together in one transaction in
-- the order `SchemaPart.jobs` names them. @schema@ stands for the schema's quoted name; the
-- installer substitutes it.

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
