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
        try await connection.withTransaction { conn in
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
    ///
    /// Step 1 is `Resources/queue_schema.sql`, step 2 `Resources/queue_schema_2.sql` (the
    /// backfill governor), step 3 `Resources/queue_schema_3.sql` (jobs in their enqueuer's own
    /// session: the fence, checkpoint and success functions), step 4
    /// `Resources/queue_schema_4.sql` (the workers, each attempt's error, why a backup was taken),
    /// step 5 `Resources/queue_schema_5.sql` (why the governor chose a batch's size).
    /// They are embedded in the binary at build time (one file to deploy), with the schema's
    /// quoted name and the channel substituted.
    private var steps: [String] {
        [PackageResources.queue_schema_sql, PackageResources.queue_schema_2_sql, PackageResources.queue_schema_3_sql,
         PackageResources.queue_schema_4_sql, PackageResources.queue_schema_5_sql].map(QueueSchema.template)
            .map {
                $0.replacingOccurrences(of: "@schema@", with: quoted)
                    .replacingOccurrences(of: "@channel@", with: quoteLiteral(channel))
            }
    }

    private static func template(_ bytes: [UInt8]) -> String { String(decoding: bytes, as: UTF8.self) }
}
