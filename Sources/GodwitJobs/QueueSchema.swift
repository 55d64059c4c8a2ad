import GodwitPostgres

/// Godwit's own tables, view and functions, installed and upgraded in one schema (`godwit` by
/// default), never in the application's `_sqlx_migrations`.
///
/// Each step runs once, in order, recorded in `<schema>.schema_version`. Installing takes a
/// transaction-level advisory lock, so several workers starting at once install exactly once.
public struct QueueSchema: Sendable {
    /// The schema's name, unquoted.
    public let name: String

    public init(name: String = "godwit") {
        self.name = name
    }

    /// The schema name quoted for SQL.
    public var quoted: String { quoteIdentifier(name) }

    /// The channel that workers LISTEN on and the insert trigger NOTIFYs.
    public var channel: String { name == "godwit" ? "godwit_jobs" : "\(name)_jobs" }

    /// `<schema>.<object>`, quoted.
    public func qualified(_ object: String) -> String { "\(quoted).\(quoteIdentifier(object))" }

    /// The newest version this build knows.
    public var latestVersion: Int { steps.count }

    /// Installs or upgrades the schema. Safe to call from many processes at once.
    public func install(on connection: Connection) async throws {
        try await connection.transaction { conn in
            try await conn.query("SELECT pg_advisory_xact_lock(hashtext($1))", ["godwit-schema:\(name)"])
            try await conn.execute("CREATE SCHEMA IF NOT EXISTS \(quoted)")
            try await conn.execute(
                """
                CREATE TABLE IF NOT EXISTS \(qualified("schema_version")) (
                    version integer PRIMARY KEY,
                    installed_at timestamptz NOT NULL DEFAULT now()
                )
                """)
            let current =
                try await conn.query("SELECT coalesce(max(version), 0) AS v FROM \(qualified("schema_version"))")
                .first?.int("v") ?? 0
            guard current <= steps.count else {
                throw PostgresError(
                    code: .client,
                    message:
                        "schema \(name) is at version \(current), newer than this godwit knows (\(steps.count)): upgrade godwit"
                )
            }
            for (index, step) in steps.enumerated() where index + 1 > current {
                try await conn.execute(step)
                try await conn.query("INSERT INTO \(qualified("schema_version")) (version) VALUES ($1)", [index + 1])
            }
        }
    }

    /// The installed version, 0 when not installed.
    public func installedVersion(on connection: Connection) async throws -> Int {
        let present = try await connection.query(
            "SELECT to_regclass($1) IS NOT NULL AS p", ["\(quoted).schema_version"]
        ).first?.bool("p") ?? false
        guard present else { return 0 }
        return try await connection.query("SELECT coalesce(max(version), 0) AS v FROM \(qualified("schema_version"))")
            .first?.int("v") ?? 0
    }

    /// The upgrade steps, oldest first. Never edit a released step: add one.
    private var steps: [String] {
        let s = quoted
        return [
            """
            CREATE TYPE \(s).job_state AS ENUM ('queued', 'running', 'paused', 'succeeded', 'failed', 'cancelled');

            -- The queue. Rows change state a few times in their life; what changes often (progress)
            -- lives in job_progress, and no index covers heartbeat_at, so heartbeats are HOT updates.
            CREATE TABLE \(s).jobs (
                id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
                kind          text NOT NULL,
                name          text NOT NULL,
                payload       jsonb NOT NULL DEFAULT '{}'::jsonb,
                state         \(s).job_state NOT NULL DEFAULT 'queued',
                priority      integer NOT NULL DEFAULT 0,
                run_at        timestamptz NOT NULL DEFAULT now(),
                attempts      integer NOT NULL DEFAULT 0,
                max_attempts  integer NOT NULL DEFAULT 10 CHECK (max_attempts > 0),
                last_error    text,
                worker_id     text,
                lease_token   bigint NOT NULL DEFAULT 0,
                heartbeat_at  timestamptz,
                control       text CHECK (control IN ('pause', 'cancel')),
                result        jsonb,
                created_at    timestamptz NOT NULL DEFAULT now(),
                started_at    timestamptz,
                finished_at   timestamptz
            );
            COMMENT ON COLUMN \(s).jobs.lease_token IS 'Grows with every claim; every write a worker makes for a job is fenced by state = running and this token.';
            COMMENT ON COLUMN \(s).jobs.control IS 'A pause or cancel requested while the job runs; the worker acts on it at the next checkpoint.';

            -- Serves the claim query: queued jobs by priority, then due time.
            CREATE INDEX jobs_claim_idx ON \(s).jobs (priority DESC, run_at, id) WHERE state = 'queued';
            -- Serves lease rescue and heartbeats.
            CREATE INDEX jobs_running_idx ON \(s).jobs (id) WHERE state = 'running';
            -- Serves the clean-up of finished jobs.
            CREATE INDEX jobs_finished_idx ON \(s).jobs (finished_at) WHERE finished_at IS NOT NULL;

            CREATE TABLE \(s).job_progress (
                job_id           bigint PRIMARY KEY REFERENCES \(s).jobs (id) ON DELETE CASCADE,
                rows_done        bigint NOT NULL DEFAULT 0,
                rows_changed     bigint NOT NULL DEFAULT 0,
                rows_total       bigint,
                batches_done     bigint NOT NULL DEFAULT 0,
                rows_per_second  double precision,
                batch_size       integer,
                hold_reason      text,
                cursor           text,
                updated_at       timestamptz NOT NULL DEFAULT now()
            ) WITH (fillfactor = 70);

            CREATE FUNCTION \(s).notify_jobs() RETURNS trigger LANGUAGE plpgsql AS $fn$
            BEGIN
                PERFORM pg_notify(TG_ARGV[0], '');
                RETURN NULL;
            END
            $fn$;

            -- Every insert or requeue wakes the workers, in the same transaction, so a plain
            -- INSERT from psql works too. Identical notifications in one transaction fold into one.
            CREATE TRIGGER jobs_notify AFTER INSERT OR UPDATE OF state, run_at ON \(s).jobs
                FOR EACH ROW WHEN (NEW.state = 'queued')
                EXECUTE FUNCTION \(s).notify_jobs(\(quoteLiteral(channel)));

            CREATE FUNCTION \(s).enqueue(
                kind text, name text, payload jsonb DEFAULT '{}'::jsonb, priority integer DEFAULT 0,
                run_at timestamptz DEFAULT now(), max_attempts integer DEFAULT 10
            ) RETURNS bigint LANGUAGE sql AS $fn$
                INSERT INTO \(s).jobs (kind, name, payload, priority, run_at, max_attempts)
                VALUES (kind, name, payload, priority, run_at, max_attempts)
                RETURNING id
            $fn$;

            CREATE FUNCTION \(s).pause(job_id bigint) RETURNS boolean LANGUAGE plpgsql AS $fn$
            BEGIN
                UPDATE \(s).jobs SET state = 'paused' WHERE id = job_id AND state = 'queued';
                IF FOUND THEN RETURN true; END IF;
                UPDATE \(s).jobs SET control = 'pause' WHERE id = job_id AND state = 'running' AND control IS NULL;
                RETURN FOUND;
            END
            $fn$;

            CREATE FUNCTION \(s).resume(job_id bigint) RETURNS boolean LANGUAGE plpgsql AS $fn$
            BEGIN
                UPDATE \(s).jobs SET state = 'queued', run_at = now() WHERE id = job_id AND state = 'paused';
                IF FOUND THEN RETURN true; END IF;
                UPDATE \(s).jobs SET control = NULL WHERE id = job_id AND state = 'running' AND control = 'pause';
                RETURN FOUND;
            END
            $fn$;

            CREATE FUNCTION \(s).cancel(job_id bigint) RETURNS boolean LANGUAGE plpgsql AS $fn$
            BEGIN
                UPDATE \(s).jobs SET state = 'cancelled', finished_at = now(), control = NULL
                WHERE id = job_id AND state IN ('queued', 'paused');
                IF FOUND THEN RETURN true; END IF;
                UPDATE \(s).jobs SET control = 'cancel'
                WHERE id = job_id AND state = 'running' AND control IS DISTINCT FROM 'cancel';
                RETURN FOUND;
            END
            $fn$;

            CREATE FUNCTION \(s).retry(job_id bigint) RETURNS boolean LANGUAGE plpgsql AS $fn$
            BEGIN
                UPDATE \(s).jobs
                SET state = 'queued', run_at = now(), attempts = 0, finished_at = NULL, control = NULL
                WHERE id = job_id AND state IN ('failed', 'cancelled');
                RETURN FOUND;
            END
            $fn$;

            CREATE TABLE \(s).backups (
                id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
                file          text NOT NULL,
                size_bytes    bigint NOT NULL,
                sha256        text NOT NULL,
                database_name text NOT NULL,
                job_id        bigint REFERENCES \(s).jobs (id) ON DELETE SET NULL,
                verified_at   timestamptz NOT NULL,
                created_at    timestamptz NOT NULL DEFAULT now()
            );

            -- One row a committed or failed batch; the worker keeps the newest few thousand a job.
            CREATE TABLE \(s).batches (
                id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
                job_id        bigint NOT NULL REFERENCES \(s).jobs (id) ON DELETE CASCADE,
                seq           bigint NOT NULL,
                attempt       integer NOT NULL,
                first_key     text,
                last_key      text,
                rows          integer NOT NULL,
                rows_changed  bigint NOT NULL,
                batch_size    integer NOT NULL,
                duration_ms   double precision NOT NULL,
                error         text,
                finished_at   timestamptz NOT NULL DEFAULT now()
            );
            CREATE INDEX batches_job_seq_idx ON \(s).batches (job_id, seq);

            CREATE VIEW \(s).progress AS
            SELECT j.id, j.name, j.kind, j.state,
                CASE
                    WHEN j.state = 'succeeded' THEN 100::numeric
                    WHEN p.rows_total > 0 THEN least(100, greatest(0, round(100.0 * p.rows_done / p.rows_total, 1)))
                    ELSE 0::numeric
                END AS percent,
                p.rows_done, p.rows_total, round(p.rows_per_second::numeric, 1) AS rows_per_second,
                CASE
                    WHEN j.state = 'running' AND p.rows_per_second > 0 AND p.rows_total > p.rows_done
                    THEN make_interval(secs => round((p.rows_total - p.rows_done) / p.rows_per_second))
                END AS eta,
                j.attempts, j.last_error, j.worker_id, j.heartbeat_at, j.created_at, j.started_at, j.finished_at,
                p.batch_size, p.hold_reason, p.rows_changed, p.batches_done, p.cursor
            FROM \(s).jobs j LEFT JOIN \(s).job_progress p ON p.job_id = j.id;

            -- Validates a batched data migration against the live database and enqueues it.
            -- Everything is checked before anything is written, so a bad definition leaves no job.
            -- max_attempts bounds the retries of one batch; the job itself may be attempted up to
            -- 100 times (each crash of a worker costs one), since every attempt resumes where the
            -- last one committed.
            CREATE FUNCTION \(s).enqueue_batched(
                name text, table_name text, key_column text, statement text,
                batch_size integer DEFAULT 1000, target_batch_ms integer DEFAULT 200, pause_ms integer DEFAULT 0,
                min_batch_size integer DEFAULT 10, max_batch_size integer DEFAULT 50000,
                lock_timeout_ms integer DEFAULT 2000, statement_timeout_ms integer DEFAULT 10000,
                max_attempts integer DEFAULT 5, priority integer DEFAULT 0
            ) RETURNS bigint LANGUAGE plpgsql AS $fn$
            DECLARE
                rel regclass;
                key_attnum smallint;
                key_type regtype;
                parameters integer;
                estimate bigint;
                new_id bigint;
            BEGIN
                rel := to_regclass(table_name);
                IF rel IS NULL THEN
                    RAISE EXCEPTION 'table "%" does not exist', table_name USING ERRCODE = '42P01';
                END IF;
                SELECT a.attnum, a.atttypid::regtype INTO key_attnum, key_type
                FROM pg_attribute a WHERE a.attrelid = rel AND a.attname = key_column AND a.attnum > 0 AND NOT a.attisdropped;
                IF key_attnum IS NULL THEN
                    RAISE EXCEPTION 'table % has no column "%"', rel, key_column USING ERRCODE = '42703';
                END IF;
                IF key_type NOT IN ('smallint'::regtype, 'integer'::regtype, 'bigint'::regtype, 'uuid'::regtype,
                                    'text'::regtype, 'character varying'::regtype, 'timestamp with time zone'::regtype) THEN
                    RAISE EXCEPTION 'key column "%" of % has type %, which batching does not support (smallint, integer, bigint, uuid, text, varchar, timestamptz)',
                        key_column, rel, key_type USING ERRCODE = '0A000';
                END IF;
                IF NOT EXISTS (
                    SELECT 1 FROM pg_index i
                    WHERE i.indrelid = rel AND i.indisunique AND i.indisvalid AND i.indpred IS NULL
                      AND i.indexprs IS NULL AND i.indnkeyatts = 1 AND i.indkey[0] = key_attnum
                ) THEN
                    RAISE EXCEPTION 'key column "%" of % is not unique: batching needs a primary key or a unique index on that column alone',
                        key_column, rel USING ERRCODE = '42P10';
                END IF;
                IF batch_size < 1 OR min_batch_size < 1 OR max_batch_size < min_batch_size
                   OR batch_size NOT BETWEEN min_batch_size AND max_batch_size THEN
                    RAISE EXCEPTION 'batch sizes must satisfy 1 <= min-batch-size (%) <= batch-size (%) <= max-batch-size (%)',
                        min_batch_size, batch_size, max_batch_size USING ERRCODE = '22023';
                END IF;
                IF target_batch_ms < 1 OR pause_ms < 0 OR lock_timeout_ms < 0 OR statement_timeout_ms < 0 OR max_attempts < 1 THEN
                    RAISE EXCEPTION 'target-batch-ms and max-attempts must be positive, and pauses and timeouts not negative'
                        USING ERRCODE = '22023';
                END IF;
                IF EXISTS (SELECT 1 FROM pg_prepared_statements WHERE pg_prepared_statements.name = 'godwit_batched_check') THEN
                    DEALLOCATE godwit_batched_check;
                END IF;
                -- Parses and plans the statement against the live schema, as the worker will run it.
                EXECUTE format('PREPARE godwit_batched_check AS %s', statement);
                SELECT cardinality(parameter_types) INTO parameters
                FROM pg_prepared_statements WHERE pg_prepared_statements.name = 'godwit_batched_check';
                DEALLOCATE godwit_batched_check;
                IF parameters <> 2 THEN
                    RAISE EXCEPTION 'the statement must use $1 and $2 (the first and last key of each batch) and no other parameter; it uses %',
                        parameters USING ERRCODE = '42P02';
                END IF;
                SELECT c.reltuples::bigint INTO estimate FROM pg_class c WHERE c.oid = rel;
                IF estimate < 0 THEN
                    EXECUTE format('SELECT count(*) FROM %s', rel) INTO estimate;
                END IF;
                INSERT INTO \(s).jobs (kind, name, payload, priority, max_attempts)
                VALUES ('batched', name, jsonb_build_object(
                    'table', rel::text, 'key', key_column, 'key_type', key_type::text, 'statement', statement,
                    'batch_size', batch_size, 'target_batch_ms', target_batch_ms, 'pause_ms', pause_ms,
                    'min_batch_size', min_batch_size, 'max_batch_size', max_batch_size,
                    'lock_timeout_ms', lock_timeout_ms, 'statement_timeout_ms', statement_timeout_ms,
                    'max_attempts', max_attempts), priority, greatest(max_attempts, 100))
                RETURNING id INTO new_id;
                INSERT INTO \(s).job_progress (job_id, rows_total, batch_size) VALUES (new_id, estimate, batch_size);
                RETURN new_id;
            END
            $fn$;
            """
        ]
    }
}
