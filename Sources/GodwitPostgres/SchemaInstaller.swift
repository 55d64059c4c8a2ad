/// Installs and upgrades owners' parts of Godwit's schema (`SchemaPart`), recording each
/// owner's version in `<schema>.schema_version`.
///
/// `schema_version` has a row per owner and version it reached: `(owner, version)` is its key.
/// One table for every owner, rather than one per owner, so that what a schema holds is one
/// query (`SELECT owner, max(version) ... GROUP BY owner`) and a reader granted `grant_read`
/// sees all of it. Installing takes a transaction-level advisory lock on the schema's name, the
/// one godwit took before owners, so several workers starting at once, of this version or an
/// older one, install exactly once; and everything one call installs commits together or not
/// at all.
///
/// Before owners, one sequence of five steps installed every owner's objects, recorded as
/// versions 1 to 5 with no owner. Such a schema at step 5 holds exactly what the three parts'
/// version 1 make, so it is recognised and recorded at those versions without running
/// anything; its steps' rows stay, as owner `legacy`. A schema at an earlier step is taken to
/// step 5 by the steps themselves (`legacySteps`, as released), then converted; an installer
/// without them (one installing the backups' part alone) refuses it.
public struct SchemaInstaller: Sendable {
    /// The schema's name, unquoted.
    public let schema: String
    /// The parts to install or upgrade, in order: a part's `requires` come before it, or are
    /// installed already.
    public let parts: [SchemaPart]
    /// What the templates' other placeholders stand for (`@channel@` -> `'godwit_jobs'`).
    public let variables: [String: String]
    /// The steps from before owners (templates), oldest first: all `legacyLastStep` of them, or
    /// none.
    public let legacySteps: [String]

    public init(schema: String, parts: [SchemaPart], variables: [String: String] = [:], legacySteps: [String] = []) {
        self.schema = schema
        self.parts = parts
        self.variables = variables
        self.legacySteps = legacySteps
    }

    /// The last step of the sequence before owners, and what it holds in owners' versions.
    static let legacyLastStep = 5
    static let legacyVersions = ["queue": 1, "backups": 1, "jobs": 1]
    /// The owner that `schema_version`'s rows from before owners are recorded under.
    static let legacyOwner = "legacy"

    var quoted: String { quoteIdentifier(schema) }
    var versionTable: String { "\(quoted).schema_version" }

    /// Installs the parts that are missing and upgrades the ones that are older, in one
    /// transaction. Safe to call from many processes at once; does nothing (and substitutes no
    /// template) when every part is current.
    public func install(on connection: Connection) async throws {
        try await connection.withTransaction { conn in
            try await conn.query("SELECT pg_advisory_xact_lock(hashtext($1))", ["godwit-schema:\(schema)"])
            try await conn.execute("CREATE SCHEMA IF NOT EXISTS \(quoted)")
            var installed = try await prepareVersions(on: conn)
            for part in parts {
                for required in part.requires where installed[required] == nil {
                    throw PostgresError(
                        code: .client,
                        message:
                            "schema \(schema): the \(part.owner) objects need the \(required) objects, which are not installed: install \(required) first (godwit worker installs every part)"
                    )
                }
                let current = installed[part.owner] ?? 0
                guard current <= part.latestVersion else {
                    throw PostgresError(
                        code: .client,
                        message:
                            "schema \(schema) holds the \(part.owner) objects at version \(current), newer than this godwit knows (\(part.latestVersion)): upgrade godwit"
                    )
                }
                guard current < part.latestVersion else { continue }
                if current == 0 {
                    try await conn.execute(substituted(part.install))
                } else {
                    for version in current..<part.latestVersion {
                        try await conn.execute(substituted(part.upgrades[version - 1]))
                        if version + 1 < part.latestVersion {
                            try await record(part.owner, version + 1, on: conn)
                        }
                    }
                }
                try await record(part.owner, part.latestVersion, on: conn)
                installed[part.owner] = part.latestVersion
            }
        }
    }

    /// Each owner's installed version; empty when the schema is not installed. A schema from
    /// before owners reads as the versions its last step holds, or as nothing before that step.
    public func installedVersions(on connection: Connection) async throws -> [String: Int] {
        switch try await versionTable(on: connection) {
        case .missing:
            return [:]
        case .legacy:
            return try await legacyStep(on: connection) == Self.legacyLastStep ? Self.legacyVersions : [:]
        case .owners:
            return try await versions(on: connection)
        }
    }

    /// `template` with `@schema@` and the variables replaced.
    func substituted(_ template: String) -> String {
        var sql = template.replacingOccurrences(of: "@schema@", with: quoted)
        for (name, value) in variables {
            sql = sql.replacingOccurrences(of: name, with: value)
        }
        return sql
    }

    private enum VersionTable { case missing, legacy, owners }

    private func versionTable(on connection: Connection) async throws -> VersionTable {
        let row = try await connection.query(
            """
            SELECT to_regclass($1) IS NOT NULL AS present,
                EXISTS (SELECT 1 FROM pg_catalog.pg_attribute a
                        WHERE a.attrelid = to_regclass($1) AND a.attname = 'owner' AND NOT a.attisdropped) AS owned
            """, [versionTable]
        ).first
        guard try row?.bool("present") == true else { return .missing }
        return try row?.bool("owned") == true ? .owners : .legacy
    }

    private func legacyStep(on connection: Connection) async throws -> Int {
        try await connection.query("SELECT coalesce(max(version), 0) AS v FROM \(versionTable)").first?.int("v") ?? 0
    }

    private func versions(on connection: Connection) async throws -> [String: Int] {
        var versions: [String: Int] = [:]
        for row in try await connection.query(
            "SELECT owner, max(version) AS v FROM \(versionTable) WHERE owner <> $1 GROUP BY owner", [Self.legacyOwner]
        ).rows {
            versions[try row.string("owner")] = try row.int("v")
        }
        return versions
    }

    /// Makes `schema_version` what this godwit reads, and returns each owner's version: a new
    /// table in a new schema, or the table from before owners given its `owner` column and
    /// key, with its step 5 recorded as the owners' versions.
    private func prepareVersions(on conn: Connection) async throws -> [String: Int] {
        switch try await versionTable(on: conn) {
        case .owners:
            return try await versions(on: conn)
        case .missing:
            try await conn.execute(
                """
                CREATE TABLE \(versionTable) (
                    version       integer NOT NULL,
                    installed_at  timestamptz NOT NULL DEFAULT now(),
                    owner         text NOT NULL,
                    PRIMARY KEY (owner, version)
                );
                \(versionTableComment)
                REVOKE ALL ON \(versionTable) FROM PUBLIC;
                REVOKE ALL ON SCHEMA \(quoted) FROM PUBLIC;
                """)
            return [:]
        case .legacy:
            let step = try await legacyStep(on: conn)
            if step < Self.legacyLastStep && legacySteps.count == Self.legacyLastStep {
                // As the godwit of that time took it on: each step, then its row.
                for index in step..<Self.legacyLastStep {
                    try await conn.execute(substituted(legacySteps[index]))
                    try await conn.query("INSERT INTO \(versionTable) (version) VALUES ($1)", [index + 1])
                }
            } else if step != Self.legacyLastStep {
                throw PostgresError(
                    code: .client,
                    message:
                        "schema \(schema) is at step \(step) of the steps godwit took before its parts had owners; this command upgrades from step \(Self.legacyLastStep) only: run godwit worker --drain (which installs every part) once first"
                )
            }
            // The same columns, in the same order, and the same key as a new table's.
            try await conn.execute(
                """
                ALTER TABLE \(versionTable) ADD COLUMN owner text;
                UPDATE \(versionTable) SET owner = \(quoteLiteral(Self.legacyOwner));
                ALTER TABLE \(versionTable) ALTER COLUMN owner SET NOT NULL,
                    DROP CONSTRAINT schema_version_pkey, ADD PRIMARY KEY (owner, version);
                \(versionTableComment)
                """)
            for (owner, version) in Self.legacyVersions.sorted(by: { $0.key < $1.key }) {
                try await record(owner, version, on: conn)
            }
            return Self.legacyVersions
        }
    }

    private var versionTableComment: String {
        "COMMENT ON TABLE \(versionTable) IS 'The versions each owner''s part of this schema reached (queue, backups, jobs, changes); owner legacy: the steps before owners.';"
    }

    private func record(_ owner: String, _ version: Int, on conn: Connection) async throws {
        try await conn.query("INSERT INTO \(versionTable) (owner, version) VALUES ($1, $2)", [owner, version])
    }
}
