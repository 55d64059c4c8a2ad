-- What a batched job runs over, checked against the catalog, and enqueue_batched, which
-- checks a whole definition and enqueues it (split into shards with parallel above 1).
--
-- One of the jobs part's files (owner `jobs`), which install together in one transaction in
-- the order `SchemaPart.jobs` names them. @schema@ stands for the schema's quoted name; the
-- installer substitutes it.

-- What a batched job runs over, checked against the catalog: the table, its key column, the
-- key's type and that the key is unique and NOT NULL. The worker calls it again before every
-- attempt, with the enqueuer's rights, so a hand-inserted payload is checked as thoroughly as
-- one from enqueue_batched. Returns the names quoted for SQL, taken from the catalog. The
-- table name resolves through caller_search_path (by default the caller's own).
CREATE FUNCTION @schema@.batched_target_of_table(table_name text, key_column text,
    caller_search_path text DEFAULT current_setting('search_path'),
    OUT relation text, OUT key_sql text, OUT key_type text, OUT estimated_rows bigint)
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $fn$
DECLARE
    rel regclass;
    key_attnum smallint;
    key_typid oid;
    key_notnull boolean;
BEGIN
    PERFORM set_config('search_path', caller_search_path, true);
    rel := pg_catalog.to_regclass(table_name);
    PERFORM pg_catalog.set_config('search_path', 'pg_catalog, pg_temp', true);
    IF rel IS NULL THEN
        RAISE EXCEPTION 'table "%" does not exist', table_name USING ERRCODE = '42P01';
    END IF;
    SELECT a.attnum, a.atttypid, a.attnotnull INTO key_attnum, key_typid, key_notnull
    FROM pg_attribute a WHERE a.attrelid = rel AND a.attname = key_column AND a.attnum > 0 AND NOT a.attisdropped;
    IF key_attnum IS NULL THEN
        RAISE EXCEPTION 'table % has no column "%"', table_name, key_column USING ERRCODE = '42703';
    END IF;
    IF key_typid NOT IN ('smallint'::regtype, 'integer'::regtype, 'bigint'::regtype, 'uuid'::regtype,
                         'text'::regtype, 'character varying'::regtype, 'timestamp with time zone'::regtype) THEN
        RAISE EXCEPTION 'key column "%" of % has type %, which batching does not support (smallint, integer, bigint, uuid, text, varchar, timestamptz)',
            key_column, table_name, key_typid::regtype USING ERRCODE = '0A000';
    END IF;
    IF NOT EXISTS (
        SELECT 1 FROM pg_index i
        WHERE i.indrelid = rel AND i.indisunique AND i.indisvalid AND i.indpred IS NULL
          AND i.indexprs IS NULL AND i.indnkeyatts = 1 AND i.indkey[0] = key_attnum
    ) THEN
        RAISE EXCEPTION 'key column "%" of % is not unique: batching needs a primary key or a unique index on that column alone',
            key_column, table_name USING ERRCODE = '42P10';
    END IF;
    IF NOT key_notnull THEN
        RAISE EXCEPTION 'key column "%" of % allows NULL: rows with a NULL key would never be batched; make it NOT NULL (a primary key is)',
            key_column, table_name USING ERRCODE = '42P10';
    END IF;
    SELECT format('%I.%I', n.nspname, c.relname), c.reltuples::bigint INTO relation, estimated_rows
    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = rel;
    key_sql := quote_ident(key_column);
    key_type := format_type(key_typid, NULL);
END
$fn$;

-- A batched job's relation must be a table: a view, materialized view or foreign table is
-- refused as such, before the key checks of batched_target_of_table.
CREATE FUNCTION @schema@.batched_target(table_name text, key_column text,
    caller_search_path text DEFAULT current_setting('search_path'),
    OUT relation text, OUT key_sql text, OUT key_type text, OUT estimated_rows bigint)
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $fn$
DECLARE
    kind "char";
BEGIN
    PERFORM set_config('search_path', caller_search_path, true);
    SELECT c.relkind INTO kind FROM pg_class c WHERE c.oid = pg_catalog.to_regclass(table_name);
    PERFORM pg_catalog.set_config('search_path', 'pg_catalog, pg_temp', true);
    IF kind IS NOT NULL AND kind NOT IN ('r', 'p') THEN
        RAISE EXCEPTION '% is a %, not a table: a batched job updates a table''s rows in the order of its key', table_name,
            CASE kind WHEN 'v' THEN 'view' WHEN 'm' THEN 'materialized view' WHEN 'f' THEN 'foreign table'
                WHEN 'S' THEN 'sequence' ELSE 'relation of another kind' END
            USING ERRCODE = '42809';
    END IF;
    SELECT t.relation, t.key_sql, t.key_type, t.estimated_rows INTO relation, key_sql, key_type, estimated_rows
    FROM @schema@.batched_target_of_table(table_name, key_column, caller_search_path) t;
END
$fn$;

-- Validates a batched data migration against the live database and enqueues it, with the
-- caller's rights. Everything is checked before anything is written, so a bad definition
-- leaves no job, and nothing of the statement is run: it is parsed (PREPARE) but never
-- executed, and a statement text with a `;` in it is refused first, so the PREPARE can hold
-- exactly one statement. Table names resolve through the caller's search_path, which is
-- recorded with the job so that the worker runs the statement as it was checked.
-- max_attempts bounds the retries of one batch; the job itself may be attempted up to 100
-- times (each crash of a worker costs one), since every attempt resumes where the last one
-- committed. With parallel above 1, the job is split into shards at enqueue (below).
CREATE FUNCTION @schema@.enqueue_batched(
    name text, table_name text, key_column text, statement text,
    batch_size integer DEFAULT 1000, target_batch_ms integer DEFAULT 200, pause_ms integer DEFAULT 0,
    min_batch_size integer DEFAULT 10, max_batch_size integer DEFAULT 50000,
    lock_timeout_ms integer DEFAULT 2000, statement_timeout_ms integer DEFAULT 10000,
    max_attempts integer DEFAULT 5, priority integer DEFAULT 0,
    caller_search_path text DEFAULT current_setting('search_path'),
    max_lock_wait_ms integer DEFAULT 10, health_query text DEFAULT NULL, parallel integer DEFAULT 1
) RETURNS bigint
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp SET DateStyle = 'ISO, MDY' AS $fn$
DECLARE
    settings jsonb;
    points text[];
    fractions double precision[];
    sample_percent double precision;
    shards integer;
    shard_total bigint;
    target record;
    parameters integer;
    estimate bigint;
    body text := btrim(statement, E' \t\r\n;');
    health text := nullif(btrim(health_query, E' \t\r\n;'), '');
    new_id bigint;
BEGIN
    IF strpos(body, ';') > 0 THEN
        RAISE EXCEPTION 'the statement must be one statement with no ";" in it (write chr(59) for a semicolon inside a string)'
            USING ERRCODE = '42601';
    END IF;
    IF batch_size < 1 OR min_batch_size < 1 OR max_batch_size < min_batch_size
       OR batch_size NOT BETWEEN min_batch_size AND max_batch_size THEN
        RAISE EXCEPTION 'batch sizes must satisfy 1 <= min-batch-size (%) <= batch-size (%) <= max-batch-size (%)',
            min_batch_size, batch_size, max_batch_size USING ERRCODE = '22023';
    END IF;
    IF target_batch_ms < 1 OR pause_ms < 0 OR lock_timeout_ms < 0 OR statement_timeout_ms < 0 OR max_attempts < 1
       OR max_lock_wait_ms < 0 THEN
        RAISE EXCEPTION 'target-batch-ms and max-attempts must be positive, and pauses, timeouts and max-lock-wait-ms not negative'
            USING ERRCODE = '22023';
    END IF;
    IF strpos(health, ';') > 0 THEN
        RAISE EXCEPTION 'the health query must be one query with no ";" in it' USING ERRCODE = '42601';
    END IF;
    IF parallel IS NULL OR parallel NOT BETWEEN 1 AND 256 THEN
        RAISE EXCEPTION 'parallel must be from 1 to 256 (the number of shards), not %', parallel USING ERRCODE = '22023';
    END IF;
    SELECT * INTO target FROM @schema@.batched_target(table_name, key_column, caller_search_path);
    -- Parse the statement as the caller would; set_config(..., true) ends with this function.
    PERFORM set_config('search_path', caller_search_path, true);
    IF EXISTS (SELECT 1 FROM pg_catalog.pg_prepared_statements p WHERE p.name = 'godwit_batched_check') THEN
        DEALLOCATE godwit_batched_check;
    END IF;
    -- Parses and analyses the statement against the live schema without running it.
    EXECUTE 'PREPARE godwit_batched_check AS ' || body;
    SELECT pg_catalog.cardinality(p.parameter_types) INTO parameters
    FROM pg_catalog.pg_prepared_statements p WHERE p.name = 'godwit_batched_check';
    DEALLOCATE godwit_batched_check;
    IF health IS NOT NULL THEN
        -- One column that reads as a boolean, parsed and never run; as a scalar subquery, a
        -- query returning more than one column does not parse.
        IF EXISTS (SELECT 1 FROM pg_catalog.pg_prepared_statements p WHERE p.name = 'godwit_health_check') THEN
            DEALLOCATE godwit_health_check;
        END IF;
        EXECUTE 'PREPARE godwit_health_check AS SELECT (' || health || ')::boolean';
        DEALLOCATE godwit_health_check;
    END IF;
    PERFORM pg_catalog.set_config('search_path', 'pg_catalog, pg_temp', true);
    IF parameters <> 2 THEN
        RAISE EXCEPTION 'the statement must use $1 and $2 (the first and last key of each batch) and no other parameter; it uses %',
            parameters USING ERRCODE = '42P02';
    END IF;
    estimate := target.estimated_rows;
    IF estimate < 0 THEN
        EXECUTE format('SELECT count(*) FROM %s', target.relation) INTO estimate;
    END IF;
    settings := jsonb_build_object(
        'table', target.relation, 'key', key_column, 'statement', body, 'search_path', caller_search_path,
        'rows_total', estimate, 'batch_size', batch_size, 'target_batch_ms', target_batch_ms, 'pause_ms', pause_ms,
        'min_batch_size', min_batch_size, 'max_batch_size', max_batch_size,
        'lock_timeout_ms', lock_timeout_ms, 'statement_timeout_ms', statement_timeout_ms,
        'max_attempts', max_attempts, 'max_lock_wait_ms', max_lock_wait_ms, 'health_query', health);
    IF parallel = 1 THEN
        INSERT INTO @schema@.jobs (kind, name, payload, priority, max_attempts)
        VALUES ('batched', name, settings, priority, greatest(max_attempts, 100))
        RETURNING id INTO new_id;
        RETURN new_id;
    END IF;
    -- The split points: the keys at 1/N, 2/N, ... of a sample of about 10,000 rows in key order
    -- (the key's own ordering and collation, as the batches walk it), read with the caller's
    -- rights. BERNOULLI, not SYSTEM: a table stored in key order (a serial key) would give a
    -- SYSTEM sample of a hundred-odd runs of neighbouring keys and shards several percent
    -- apart; BERNOULLI's rows are independent, at the cost of one sequential scan at enqueue. Distinct, so a tiny table makes fewer shards, never overlapping ones. As text in
    -- ISO form (the function's DateStyle), which the worker reads back whatever its settings.
    SELECT array_agg(k::double precision / parallel ORDER BY k) INTO fractions FROM generate_series(1, parallel - 1) k;
    sample_percent := least(100, 100.0 * 10000 / greatest(estimate, 1));
    LOOP
        EXECUTE format(
            'SELECT coalesce(array_agg(p::text ORDER BY p), ''{}'') FROM (SELECT DISTINCT p FROM
                (SELECT percentile_disc($1) WITHIN GROUP (ORDER BY %1$s) AS a FROM %2$s TABLESAMPLE BERNOULLI ($2)) s,
                unnest(s.a) AS p WHERE p IS NOT NULL) d', target.key_sql, target.relation)
            INTO points USING fractions, sample_percent;
        -- A stale estimate can make a sample of almost nothing: then read the whole table.
        EXIT WHEN cardinality(points) > 0 OR sample_percent >= 100;
        sample_percent := 100;
    END LOOP;
    shards := cardinality(points) + 1;
    INSERT INTO @schema@.jobs (kind, name, payload, priority, max_attempts)
    VALUES ('batched_parallel', name, settings || jsonb_build_object('parallel', parallel, 'splits', to_jsonb(points)),
        priority, greatest(max_attempts, 100))
    RETURNING id INTO new_id;
    -- Shard i covers the keys after split point i-1 (its first checkpoint) up to and including
    -- split point i; the first has no lower bound and the last no upper one, so rows added
    -- beyond either end are done too. Each shard's rows_total is its share of the estimate.
    FOR i IN 1..shards LOOP
        shard_total := CASE WHEN i < shards THEN round(estimate::numeric / shards)::bigint
            ELSE estimate - (shards - 1) * round(estimate::numeric / shards)::bigint END;
        INSERT INTO @schema@.jobs (kind, name, payload, priority, max_attempts, parent_id)
        VALUES ('batched', format('%s [shard %s/%s]', name, i, shards),
            settings || jsonb_build_object('rows_total', greatest(shard_total, 0), 'shard', i, 'shards', shards,
                'lower', points[i - 1], 'upper', points[i]),
            priority, greatest(max_attempts, 100), new_id);
    END LOOP;
    RETURN new_id;
END
$fn$;
