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

CREATE VIEW @schema@.changes AS
SELECT c.name,
       c.table_name AS "table",
       c.phase,
       coalesce(p.rows_done, 0) AS rows_done,
       coalesce(p.rows_total, c.rows_total) AS rows_total,
       c.disagreeing_rows,
       c.phase = 'ready' AND cardinality(b.blockers) = 0 AS ready,
       b.blockers AS blocked_by,
       c.backfill_job_id,
       c.finish_job_id,
       c.verified_rows,
       c.verified_at,
       c.indexes_built_at,
       c.validated_at,
       c.error,
       c.started_by,
       c.started_at,
       c.ready_at,
       c.completed_at,
       c.aborted_at
FROM @schema@.change_records c
LEFT JOIN @schema@.progress p ON p.id = c.backfill_job_id
CROSS JOIN LATERAL (SELECT @schema@.change_blockers(c.name) AS blockers) b;

REVOKE ALL ON @schema@.change_records, @schema@.change_readers, @schema@.change_reader_statements,
    @schema@.change_sampling FROM PUBLIC;
-- The view, like the function it calls, reads with the owner's rights, and says nothing a
-- database's DDL does not: whoever may use the schema (grant_read's grantees) may read it.
GRANT SELECT ON @schema@.changes TO PUBLIC;
GRANT EXECUTE ON FUNCTION @schema@.change_blockers(text, interval) TO PUBLIC;
