import Foundation
import GodwitPostgres
import Logging

/// Proves that every reversible migration's down undoes its up.
///
/// In a scratch database (from `template0` with the encoding and locale of the database
/// given, dropped afterwards even on failure) it applies the migrations one by one. After each
/// up it snapshots the schema, runs the down, checks the schema equals the one before the up,
/// and applies the up again (which must work, and must give the same schema as the first time).
///
/// It compares schema only, never data: the scratch database holds no rows, so a down that
/// loses what its up moved passes as long as the schema comes back.
public struct MigrationVerifier: Sendable {
    public let source: MigrationSource
    /// sqlx.toml's settings: the ledger's `table-name` (left out of the snapshots) and the
    /// `create-schemas` made in the scratch database before anything runs.
    public let config: MigrationConfig
    /// Where the scratch database's name (`godwit_verify_<pid>_<random>`) is logged at debug
    /// level before it is created, so that whoever reads the log can check it is gone.
    public let logger: Logger

    public init(
        source: MigrationSource, config: MigrationConfig = .default, logger: Logger = Logger(label: "godwit.verify")
    ) {
        self.source = source
        self.config = config
        self.logger = logger
    }

    /// What verification found for one migration.
    public struct Step: Sendable {
        public enum Outcome: Sendable, Equatable {
            /// Down restored the schema, and the up re-applied to the same schema.
            case reversible
            /// A simple migration: applied, nothing to check.
            case irreversible
        }

        public var version: Int64
        public var description: String
        public var outcome: Outcome
    }

    /// A migration whose down does not undo its up, with a readable difference.
    public struct Failure: Error, CustomStringConvertible, Sendable {
        public var version: Int64
        public var migrationDescription: String
        public var problem: String
        /// Lines of the difference: `-` what the schema had before the up and lacks after the
        /// down, `+` what the down left that was not there before.
        public var difference: [String]

        public var description: String {
            var text = "migration \(version) (\(migrationDescription)): \(problem)"
            if !difference.isEmpty { text += "\n" + difference.joined(separator: "\n") }
            return text
        }
    }

    /// Runs the verification against a scratch database on the server of `serverURL`.
    /// `onStep` reports each migration as it passes.
    @discardableResult
    public func verify(serverURL: String, onStep: (Step) -> Void = { _ in }) async throws -> [Step] {
        let admin = try await Connection.connect(serverURL)
        // Named after the process, so a scratch database left by a killed run can be traced.
        let scratch = "godwit_verify_\(getpid())_\(UInt32.random(in: 0...UInt32.max))"
        logger.debug("scratch database", metadata: ["name": "\(scratch)"])
        do {
            try await Self.createScratch(scratch, likeCurrentDatabaseOf: admin)
        } catch {
            await admin.close()
            throw error
        }
        do {
            let steps = try await verify(in: try Self.url(serverURL, database: scratch), onStep: onStep)
            try await admin.execute("DROP DATABASE \(quoteIdentifier(scratch)) WITH (FORCE)")
            await admin.close()
            return steps
        } catch {
            _ = try? await admin.execute("DROP DATABASE IF EXISTS \(quoteIdentifier(scratch)) WITH (FORCE)")
            await admin.close()
            throw error
        }
    }

    private func verify(in url: String, onStep: (Step) -> Void) async throws -> [Step] {
        try await Connection.withConnection(url) { connection in
            try await verify(in: url, on: connection, onStep: onStep)
        }
    }

    private func verify(in url: String, on connection: Connection, onStep: (Step) -> Void) async throws -> [Step] {
        var migrator = Migrator(source: source, config: config)
        migrator.logger.logLevel = .warning
        // Made before the first snapshot, as they are before the ledger: not a migration's doing.
        try await Ledger.createSchemas(config.createSchemas, on: connection)
        var steps: [Step] = []
        for migration in source.upMigrations {
            let before = try await SchemaSnapshot.take(url, ledger: config.tableName)
            try await migrator.run(on: connection, targetVersion: migration.version)
            guard source.down(for: migration.version) != nil else {
                let step = Step(version: migration.version, description: migration.description, outcome: .irreversible)
                steps.append(step)
                onStep(step)
                continue
            }
            let afterUp = try await SchemaSnapshot.take(url, ledger: config.tableName)
            do {
                try await migrator.revert(on: connection)
            } catch let error as MigrationError {
                throw Failure(
                    version: migration.version, migrationDescription: migration.description,
                    problem: "the down failed: \(error.message)", difference: [])
            }
            let afterDown = try await SchemaSnapshot.take(url, ledger: config.tableName)
            let undone = before.difference(
                to: afterDown, removed: "missing after the down", added: "left behind by the down")
            guard undone.isEmpty else {
                throw Failure(
                    version: migration.version, migrationDescription: migration.description,
                    problem: "the down does not restore the schema", difference: undone)
            }
            do {
                try await migrator.run(on: connection, targetVersion: migration.version)
            } catch let error as MigrationError {
                throw Failure(
                    version: migration.version, migrationDescription: migration.description,
                    problem: "the up does not run again after its down: \(error.message)", difference: [])
            }
            let again = afterUp.difference(
                to: try await SchemaSnapshot.take(url, ledger: config.tableName), removed: "missing the second time",
                added: "new the second time")
            guard again.isEmpty else {
                throw Failure(
                    version: migration.version, migrationDescription: migration.description,
                    problem: "the up gives a different schema the second time", difference: again)
            }
            let step = Step(version: migration.version, description: migration.description, outcome: .reversible)
            steps.append(step)
            onStep(step)
        }
        return steps
    }

    /// Creates the scratch database from `template0` with the encoding, collation, character
    /// classification and locale provider of the connection's database, so that what the
    /// migrations do (an ICU collation, a nondeterministic one, text in a given encoding) works
    /// there as it does in the database verified.
    static func createScratch(_ name: String, likeCurrentDatabaseOf connection: Connection) async throws {
        // Through to_jsonb, so the columns that only some versions have read as NULL elsewhere:
        // datlocprovider and daticulocale (15, 16), datlocale (17, for the ICU and builtin
        // providers).
        let row = try await connection.query(
            """
            SELECT pg_encoding_to_char(d.encoding) AS encoding, d.datcollate, d.datctype,
                   to_jsonb(d) ->> 'datlocprovider' AS provider,
                   coalesce(to_jsonb(d) ->> 'datlocale', to_jsonb(d) ->> 'daticulocale') AS locale
            FROM pg_database d WHERE d.datname = current_database()
            """
        ).first
        var options = ["TEMPLATE template0"]
        if let row {
            options.append("ENCODING \(quoteLiteral(try row.string("encoding")))")
            options.append("LC_COLLATE \(quoteLiteral(try row.string("datcollate")))")
            options.append("LC_CTYPE \(quoteLiteral(try row.string("datctype")))")
            let locale = row["locale"]
            switch row["provider"] {
            case "i":
                options.append("LOCALE_PROVIDER icu")
                if let locale { options.append("ICU_LOCALE \(quoteLiteral(locale))") }
            case "b":
                options.append("LOCALE_PROVIDER builtin")
                if let locale { options.append("BUILTIN_LOCALE \(quoteLiteral(locale))") }
            case "c":
                options.append("LOCALE_PROVIDER libc")
            default:
                break
            }
        }
        do {
            try await connection.execute("CREATE DATABASE \(quoteIdentifier(name)) \(options.joined(separator: " "))")
        } catch let error as PostgresError where error.sqlState == .insufficientPrivilege {
            let role = (try? await connection.query("SELECT current_user AS role").first?.string("role")) ?? "..."
            throw MigrationError(
                .execution,
                "migrate verify needs a scratch database beside the one given, and role \(quoteIdentifier(role)) may not create one: it needs the CREATEDB privilege (ALTER ROLE \(quoteIdentifier(role)) CREATEDB), or run verify as a role that has it; the server said: \(error)",
                underlying: error)
        } catch let error as PostgresError {
            throw MigrationError(
                .execution, "cannot create the scratch database for migrate verify: \(error)", underlying: error)
        }
    }

    static func url(_ server: String, database: String) throws -> String {
        if var components = URLComponents(string: server), components.scheme?.hasPrefix("postgres") == true {
            components.path = "/" + database
            if let url = components.string { return url }
        }
        // A key=value conninfo: a later dbname wins.
        return server + " dbname=\(ClientProgram.conninfoQuoted(database))"
    }
}

/// The schema of a database as `pg_dump --schema-only` prints it, keyed by object.
///
/// pg_dump heads every object with `-- Name: ...; Type: ...; Schema: ...`, which makes a stable
/// key; the statements under it are the value. The ledger table is left out: it is what
/// verification drives, not what it checks.
struct SchemaSnapshot: Equatable {
    var objects: [String: String]

    /// `ledger` is the ledger table as sqlx.toml's `table-name` writes it (a pg_dump pattern
    /// reads a name, qualified or quoted, the same way).
    static func take(_ url: String, ledger: String = MigrationConfig.defaultTableName) async throws -> SchemaSnapshot {
        let (conninfo, environment) = try ClientProgram.connectionArguments(for: url)
        let dump = try await ClientProgram.run(
            "pg_dump",
            ["--schema-only", "--no-owner", "--exclude-table=\(ledger)", "--dbname=\(conninfo)"],
            environment: environment)
        guard dump.status == 0 else {
            throw MigrationError(.execution, "pg_dump --schema-only failed: \(dump.firstErrorLine)")
        }
        return SchemaSnapshot(dump: dump.stdout)
    }

    init(dump: String) {
        var objects: [String: String] = [:]
        var key: String?
        var body: [String] = []
        func flush() {
            if let key, !body.isEmpty { objects[key, default: ""] += body.joined(separator: "\n") }
            body.removeAll()
        }
        for line in dump.split(separator: "\n", omittingEmptySubsequences: false) {
            if line.hasPrefix("-- Name: ") {
                flush()
                // "-- Name: media; Type: TABLE; Schema: public; Owner: -" without the owner.
                key = line.dropFirst(3).components(separatedBy: "; Owner:").first
                continue
            }
            // Comments, blank lines, and the random \restrict keys newer pg_dump versions print.
            if line.hasPrefix("--") || line.isEmpty || line.hasPrefix("\\restrict") || line.hasPrefix("\\unrestrict") {
                continue
            }
            if key == nil { continue }  // the SET preamble
            // Column lists differ by a trailing comma when a column is added; compare without it.
            var normalized = line.trimmingCharacters(in: .whitespaces)
            if normalized.hasSuffix(",") { normalized.removeLast() }
            body.append(normalized)
        }
        flush()
        self.objects = objects
    }

    /// What differs from `self` (before) to `other` (after), as `-`/`+` lines.
    func difference(to other: SchemaSnapshot, removed: String, added: String) -> [String] {
        var lines: [String] = []
        for key in Set(objects.keys).union(other.objects.keys).sorted() {
            let old = objects[key]
            let new = other.objects[key]
            if old == new { continue }
            switch (old, new) {
            case (let old?, nil):
                lines.append("- \(removed): \(key)")
                lines += old.split(separator: "\n").prefix(8).map { "-     \($0)" }
            case (nil, let new?):
                lines.append("+ \(added): \(key)")
                lines += new.split(separator: "\n").prefix(8).map { "+     \($0)" }
            case (let old?, let new?):
                lines.append("~ changed: \(key)")
                let oldLines = old.split(separator: "\n").map(String.init)
                let newLines = new.split(separator: "\n").map(String.init)
                lines += oldLines.filter { !newLines.contains($0) }.map { "-     \($0)" }
                lines += newLines.filter { !oldLines.contains($0) }.map { "+     \($0)" }
            default:
                break
            }
        }
        return lines
    }
}
