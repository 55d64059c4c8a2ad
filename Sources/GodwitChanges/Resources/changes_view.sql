-- What `SELECT * FROM godwit.changes` shows: one row a change, with whether complete would
-- pass and, if not, why.
--
-- One of the changes part's files (owner `changes`), which install together in one transaction
-- in the order `SchemaPart.changes` names them. @schema@ stands for the schema's quoted name;
-- the installer substitutes it.

-- A duration as change_blockers words it: `42 s`, `12 min`, `3 h 5 min`.
CREATE FUNCTION @schema@.change_duration_text(span interval)
RETURNS text
LANGUAGE sql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $fn$
    SELECT CASE
        WHEN s < 90 THEN round(s)::bigint || ' s'
        WHEN s < 90 * 60 THEN round(s / 60)::bigint || ' min'
        ELSE (round(s / 60)::bigint / 60) || ' h ' || (round(s / 60)::bigint % 60) || ' min'
    END
    FROM (SELECT greatest(extract(epoch FROM span), 0) AS s) AS d
$fn$;

-- What stands between a change and complete, one line a reason, empty when complete would
-- pass; quiet_for is `complete --quiet-for` (the view uses the default, 15 minutes).
--
-- The reasons: the phase; the backfill job not succeeded; the verification not run, or rows
-- whose sides disagree; an index not built or invalid, a unique constraint not attached; a
-- constraint not validated; and the reader evidence (`ReaderSampler`) for every column the
-- change drops: pg_stat_statements unavailable, no sample yet, samples stopped, a window
-- shorter than quiet_for, a read within quiet_for and by whom. A `--without-reader-check`
-- waiver (reader_check_waiver) skips the reader reasons, and only those.
CREATE FUNCTION @schema@.change_blockers(change_name text, quiet_for interval DEFAULT interval '15 minutes')
RETURNS text[]
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $fn$
DECLARE
    c record;
    item record;
    reader record;
    sampling record;
    reasons text[] := '{}';
    valid boolean;
    checked_at timestamptz;
BEGIN
    SELECT * INTO c FROM @schema@.change_records r WHERE r.name = change_blockers.change_name;
    IF NOT FOUND THEN
        RETURN ARRAY[format('there is no change named %s', change_blockers.change_name)];
    END IF;
    IF c.phase IN ('completed', 'aborted') THEN
        RETURN ARRAY[format('the change is %s', c.phase)];
    END IF;
    IF c.phase <> 'ready' THEN
        reasons := reasons || format('the change is %s, not ready', c.phase);
    END IF;

    -- The backfill.
    IF c.backfill_job_id IS NOT NULL THEN
        SELECT j.id, j.state::text AS state, j.last_error INTO item
        FROM @schema@.jobs j WHERE j.id = c.backfill_job_id;
        IF FOUND AND item.state <> 'succeeded' THEN
            reasons := reasons || format('the backfill (job %s) is %s, not succeeded%s', item.id, item.state,
                CASE WHEN item.last_error IS NOT NULL THEN ': ' || item.last_error ELSE '' END);
        END IF;
    END IF;

    -- The verification.
    IF c.verified_at IS NULL THEN
        reasons := reasons || 'the verification has not run (the worker runs it once the backfill has succeeded)'::text;
    ELSIF coalesce(c.disagreeing_rows, 0) > 0 THEN
        reasons := reasons || format('the verification read %s rows whose two sides disagree', c.disagreeing_rows);
    END IF;

    -- Indexes built concurrently, and unique constraints attached to theirs.
    FOR item IN
        SELECT i->>'name' AS name, k.kind
        FROM (VALUES ('indexes', 'index'), ('uniques', 'unique')) AS k(key, kind),
             jsonb_array_elements(coalesce(c.statements->k.key, '[]')) AS i
    LOOP
        SELECT x.indisvalid INTO valid
        FROM pg_index x JOIN pg_class ic ON ic.oid = x.indexrelid
        WHERE x.indrelid = c.table_oid AND ic.relname = item.name;
        IF NOT FOUND THEN
            reasons := reasons || format('index %s is not built', item.name);
        ELSIF NOT valid THEN
            reasons := reasons || format('index %s is invalid (its build failed)', item.name);
        ELSIF item.kind = 'unique' AND NOT EXISTS (
            SELECT FROM pg_constraint con WHERE con.conrelid = c.table_oid AND con.conname = item.name AND con.contype = 'u'
        ) THEN
            reasons := reasons || format('unique constraint %s is not attached to its index', item.name);
        END IF;
    END LOOP;

    -- Constraints added NOT VALID at start (those a validate statement names).
    FOR item IN
        SELECT con.conname FROM pg_constraint con
        WHERE con.conrelid = c.table_oid AND NOT con.convalidated
          AND EXISTS (
              SELECT FROM jsonb_array_elements_text(coalesce(c.statements->'validate', '[]')) AS v(sql)
              WHERE right(v.sql, length(quote_ident(con.conname))) = quote_ident(con.conname)
                 OR right(v.sql, length(con.conname) + 2) = '"' || replace(con.conname, '"', '""') || '"')
        ORDER BY con.conname
    LOOP
        reasons := reasons || format('constraint %s is not validated', item.conname);
    END LOOP;

    -- The reader evidence, for each column complete drops, as of now: the clock, not the
    -- transaction's start, since complete samples in its own transaction just before.
    checked_at := clock_timestamp();
    IF c.reader_check_waiver IS NOT NULL
        OR jsonb_typeof(c.statements->'dropped') IS DISTINCT FROM 'array'
        OR jsonb_array_length(c.statements->'dropped') = 0 THEN
        RETURN reasons;
    END IF;
    SELECT * INTO sampling FROM @schema@.change_sampling;
    IF FOUND AND NOT sampling.available THEN
        RETURN reasons || format('%s; or complete with --without-reader-check "REASON"',
            coalesce(sampling.unavailable_reason, 'pg_stat_statements is unavailable'));
    END IF;
    FOR item IN SELECT d.name FROM jsonb_array_elements_text(c.statements->'dropped') AS d(name) LOOP
        SELECT * INTO reader FROM @schema@.change_readers cr
        WHERE cr.change_name = c.name AND cr.column_name = item.name;
        IF NOT FOUND OR reader.sampled_at IS NULL THEN
            reasons := reasons || format(
                'the readers of column %s have not been sampled yet (a running worker samples them every 5 s)',
                item.name);
            CONTINUE;
        END IF;
        IF reader.sampled_at < checked_at - interval '30 seconds' THEN
            reasons := reasons || format(
                'the readers of column %s were last sampled %s ago: is a worker running? (one samples every 5 s)',
                item.name, @schema@.change_duration_text(checked_at - reader.sampled_at));
        ELSIF reader.window_started_at IS NULL OR checked_at - reader.window_started_at < quiet_for THEN
            reasons := reasons || format(
                'the readers of column %s have been watched for %s, less than --quiet-for %s (the watch started at %s)',
                item.name, @schema@.change_duration_text(checked_at - coalesce(reader.window_started_at, checked_at)),
                @schema@.change_duration_text(quiet_for), coalesce(reader.window_reason, 'the first sample'));
        END IF;
        IF reader.last_seen_at IS NOT NULL AND reader.last_seen_at > checked_at - quiet_for THEN
            reasons := reasons || format('column %s was read %s ago by %s', item.name,
                @schema@.change_duration_text(checked_at - reader.last_seen_at),
                CASE WHEN cardinality(reader.application_names) = 0 THEN 'a session no sample caught running it'
                     ELSE array_to_string(reader.application_names, ', ') END);
        END IF;
    END LOOP;
    RETURN reasons;
END
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
GRANT EXECUTE ON FUNCTION @schema@.change_duration_text(interval) TO PUBLIC;
