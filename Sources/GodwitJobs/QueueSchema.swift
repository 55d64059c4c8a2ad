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
                p.batch_size, p.hold_reason
            FROM \(s).jobs j LEFT JOIN \(s).job_progress p ON p.job_id = j.id;

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
            """
        ]
    }
}
