-- What `SELECT * FROM godwit.changes` shows: one row a change, with whether complete would
-- pass and, if not, why.
--
-- One of the changes part's files (owner `changes`), which install together in one transaction
-- in the order `SchemaPart.changes` names them. @schema@ stands for the schema's quoted name;
-- the installer substitutes it.

-- What stands between a change and complete, one reason an element, empty when complete would
-- pass; quiet_for is `complete --quiet-for` (the view uses the default, 15 minutes).
CREATE FUNCTION @schema@.change_blockers(change_name text, quiet_for interval DEFAULT interval '15 minutes')
RETURNS text[]
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $fn$
    SELECT CASE
        WHEN c.phase IN ('completed', 'aborted') THEN ARRAY['the change is ' || c.phase]
        WHEN c.phase = 'backfilling' THEN ARRAY['the backfill has not finished']
        WHEN c.phase = 'verifying' THEN ARRAY['verification, index builds and validation have not finished']
        ELSE ARRAY[]::text[]
    END
    FROM @schema@.change_records c WHERE c.name = change_name
$fn$;

-- The issue's keys first (name, table, phase, rows_done, rows_total, disagreeing_rows, ready,
-- blocked_by), then what `godwit change status`, the dashboard and /metrics show of one change:
-- its file, key, the steps after the backfill, the reader evidence per dropped column (a JSON
-- array: column, last_seen_at, window_started_at, sampled_at, application_names) and whether
-- the worker could sample pg_stat_statements at all. Never the statements' texts
-- (change_reader_statements), which may quote the application's values.
CREATE VIEW @schema@.changes AS
SELECT c.name,
       c.table_name AS "table",
       c.phase,
       coalesce(p.rows_done, 0) AS rows_done,
       coalesce(p.rows_total, c.rows_total) AS rows_total,
       c.disagreeing_rows,
       c.phase = 'ready' AND cardinality(b.blockers) = 0 AS ready,
       b.blockers AS blocked_by,
       c.table_oid,
       c.key_column,
       c.file,
       c.source,
       c.backfill_job_id,
       p.state AS backfill_state,
       c.finish_job_id,
       c.verified_rows,
       c.verified_at,
       c.indexes_built_at,
       c.validated_at,
       c.error,
       c.reader_check_waiver,
       c.migration_version,
       r.readers,
       s.available AS reader_sampling,
       s.unavailable_reason AS reader_sampling_unavailable,
       s.sampled_at AS reader_sampled_at,
       c.started_by,
       c.started_at,
       c.ready_at,
       c.completed_at,
       c.aborted_at,
       c.updated_at
FROM @schema@.change_records c
LEFT JOIN @schema@.progress p ON p.id = c.backfill_job_id
CROSS JOIN LATERAL (SELECT @schema@.change_blockers(c.name) AS blockers) b
CROSS JOIN LATERAL (
    SELECT coalesce(jsonb_agg(jsonb_build_object(
               'column', cr.column_name, 'last_seen_at', cr.last_seen_at,
               'window_started_at', cr.window_started_at, 'sampled_at', cr.sampled_at,
               'application_names', to_jsonb(cr.application_names))
           ORDER BY cr.column_name), '[]'::jsonb) AS readers
    FROM @schema@.change_readers cr WHERE cr.change_name = c.name
) r
LEFT JOIN @schema@.change_sampling s ON true;

REVOKE ALL ON @schema@.change_records, @schema@.change_readers, @schema@.change_reader_statements,
    @schema@.change_sampling FROM PUBLIC;
-- The view, like the function it calls, reads with the owner's rights, and says nothing a
-- database's DDL does not: whoever may use the schema (grant_read's grantees) may read it.
GRANT SELECT ON @schema@.changes TO PUBLIC;
GRANT EXECUTE ON FUNCTION @schema@.change_blockers(text, interval) TO PUBLIC;
