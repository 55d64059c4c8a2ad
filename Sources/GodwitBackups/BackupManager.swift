#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif
import Crypto
import Foundation
import GodwitPostgres

/// A backup that cannot be taken, verified or restored. The message names the file.
public struct BackupError: Error, CustomStringConvertible, Sendable {
    public var message: String

    public init(_ message: String) {
        self.message = message
    }

    public var description: String { message }
}

/// A verified `pg_dump` of the database, as recorded in `<schema>.backups`.
public struct Backup: Sendable, Codable, Equatable {
    public var file: String
    public var sizeBytes: Int64
    public var sha256: String
    public var database: String
    /// How many entries `pg_restore --list` found in the dump.
    public var entries: Int
    public var createdAt: String

    enum CodingKeys: String, CodingKey {
        case file, sha256, database, entries
        case sizeBytes = "size_bytes"
        case createdAt = "created_at"
    }
}

/// Takes, verifies, lists and restores backups: `pg_dump --format=custom` into a folder
/// (files mode 0600), checked with `pg_restore --list`, recorded with size and SHA-256.
///
/// Godwit's own schema is left out of the dump: restoring must not rewind the job queue.
public struct BackupManager: Sendable {
    public var directory: String
    /// The schema of Godwit's own tables, unquoted: backups are recorded in `<schema>.backups`,
    /// and the schema is left out of every dump.
    public var schema: String

    public init(directory: String, schema: String = "godwit") {
        self.directory = directory
        self.schema = schema
    }

    /// `<schema>.backups`, quoted.
    var table: String { "\(quoteIdentifier(schema)).backups" }

    /// Dumps the database, verifies the dump and records it. Throws (and keeps no file) when
    /// the dump or its verification fails: no verified backup, no migration.
    public func create(databaseURL: String, jobID: Int64? = nil, on connection: Connection) async throws -> Backup {
        try FileManager.default.createDirectory(
            atPath: directory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        let path = try newFilePath()
        // The file exists with mode 0600 before pg_dump writes into it, so no other user can
        // ever read the data.
        guard FileManager.default.createFile(atPath: path, contents: nil, attributes: [.posixPermissions: 0o600]) else {
            throw BackupError("cannot create backup file \(path)")
        }
        let (conninfo, environment) = try ClientProgram.connectionArguments(for: databaseURL)
        let dump = try await ClientProgram.run(
            "pg_dump",
            ["--format=custom", "--file=\(path)", "--exclude-schema=\(schema)", "--dbname=\(conninfo)"],
            environment: environment)
        guard dump.status == 0 else {
            try? FileManager.default.removeItem(atPath: path)
            throw BackupError("backup failed: pg_dump exited with \(dump.status): \(firstLine(dump.stderr))")
        }
        let verified: Backup
        do {
            verified = try await verify(file: path)
        } catch {
            try? FileManager.default.removeItem(atPath: path)
            throw error
        }
        let database = try await connection.query("SELECT current_database() AS db").first?.string("db") ?? ""
        let row = try await connection.query(
            """
            INSERT INTO \(table) (file, size_bytes, sha256, database_name, job_id, verified_at)
            VALUES ($1, $2, $3, $4, $5, now()) RETURNING created_at::text AS created_at
            """, [path, verified.sizeBytes, verified.sha256, database, jobID])
        var backup = verified
        backup.database = database
        backup.createdAt = try row.first?.string("created_at") ?? ""
        return backup
    }

    /// Checks that `file` is a readable custom-format dump with at least one entry.
    public func verify(file: String) async throws -> Backup {
        guard FileManager.default.fileExists(atPath: file) else { throw BackupError("no backup file \(file)") }
        let list = try await ClientProgram.run("pg_restore", ["--list", file])
        guard list.status == 0 else {
            throw BackupError("backup \(file) failed verification: pg_restore --list: \(firstLine(list.stderr))")
        }
        // An empty database makes a valid dump with no entries, so what is checked is that
        // pg_restore reads the whole table of contents of a custom-format archive.
        guard list.stdout.contains("Format: CUSTOM") else {
            throw BackupError("backup \(file) failed verification: not a custom-format pg_dump archive")
        }
        let entries = list.stdout.split(separator: "\n").filter { !$0.hasPrefix(";") && !$0.isEmpty }.count
        let (size, digest) = try Self.sizeAndSHA256(of: file)
        return Backup(file: file, sizeBytes: size, sha256: digest, database: "", entries: entries, createdAt: "")
    }

    /// What restoring `file` would replace: the tables and other objects in the dump.
    public func contents(of file: String) async throws -> [String] {
        let list = try await ClientProgram.run("pg_restore", ["--list", file])
        guard list.status == 0 else { throw BackupError("cannot read backup \(file): \(firstLine(list.stderr))") }
        // Lines look like: "215; 1259 16390 TABLE public media postgres".
        return list.stdout.split(separator: "\n").compactMap { line in
            guard !line.hasPrefix(";"), let semicolon = line.firstIndex(of: ";") else { return nil }
            let words = line[line.index(after: semicolon)...].split(separator: " ").dropFirst(2)
            guard let kind = words.first, kind == "TABLE" || kind == "TYPE" || kind == "FUNCTION" || kind == "VIEW"
            else { return nil }
            return words.dropLast().joined(separator: " ")
        }
    }

    /// The schemas a restore replaces: every schema of the application's, that is all but the
    /// system's and Godwit's own.
    public func schemasToReplace(on connection: Connection) async throws -> [String] {
        try await connection.query(
            """
            SELECT nspname FROM pg_namespace
            WHERE nspname NOT IN ('pg_catalog', 'information_schema', $1)
              AND nspname NOT LIKE 'pg\\_toast%' AND nspname NOT LIKE 'pg\\_temp\\_%'
            ORDER BY nspname
            """, [schema]
        ).rows.map { try $0.string("nspname") }
    }

    /// Makes the database what `file` holds: in one transaction, the application's schemas are
    /// dropped and re-created from the dump, so objects made after the backup go too. Godwit's
    /// own schema is left alone. Nothing changes if any step fails.
    public func restore(file: String, databaseURL: String) async throws {
        _ = try await verify(file: file)
        let connection = try await Connection.connect(databaseURL)
        let schemas = try await schemasToReplace(on: connection)
        await connection.close()
        let temporary = FileManager.default.temporaryDirectory
        let script = temporary.appendingPathComponent("godwit-restore-\(UUID().uuidString).sql").path
        let prelude = temporary.appendingPathComponent("godwit-restore-\(UUID().uuidString)-prelude.sql").path
        defer {
            try? FileManager.default.removeItem(atPath: script)
            try? FileManager.default.removeItem(atPath: prelude)
        }
        let render = try await ClientProgram.run("pg_restore", ["--no-owner", "--file=\(script)", file])
        guard render.status == 0 else {
            throw BackupError("cannot read backup \(file) (nothing was changed): \(firstLine(render.stderr))")
        }
        let createsPublic = (try? String(contentsOfFile: script, encoding: .utf8))?.contains("CREATE SCHEMA public;") ?? false
        var statements = schemas.map { "DROP SCHEMA IF EXISTS \(quoteIdentifier($0)) CASCADE;" }
        if !createsPublic {
            // pg_dump leaves out the standard public schema; re-create it as initdb makes it.
            statements += ["CREATE SCHEMA public AUTHORIZATION pg_database_owner;", "GRANT USAGE ON SCHEMA public TO PUBLIC;"]
        }
        guard FileManager.default.createFile(atPath: prelude, contents: Data(statements.joined(separator: "\n").utf8)) else {
            throw BackupError("cannot write \(prelude)")
        }
        let (conninfo, environment) = try ClientProgram.connectionArguments(for: databaseURL)
        let restore = try await ClientProgram.run(
            "psql",
            ["-X", "-q", "--single-transaction", "-v", "ON_ERROR_STOP=1", "--dbname=\(conninfo)", "-f", prelude, "-f", script],
            environment: environment)
        guard restore.status == 0 else {
            throw BackupError("restore of \(file) failed (nothing was changed): \(firstLine(restore.stderr))")
        }
    }

    /// Recorded backups, newest first.
    public func list(on connection: Connection) async throws -> [Backup] {
        try await connection.query(
            """
            SELECT file, size_bytes, sha256, database_name, created_at::text AS created_at
            FROM \(table) ORDER BY id DESC
            """
        ).rows.map { row in
            Backup(
                file: try row.string("file"), sizeBytes: try row.int64("size_bytes"), sha256: try row.string("sha256"),
                database: try row.string("database_name"), entries: 0, createdAt: try row.string("created_at"))
        }
    }

    private func newFilePath() throws -> String {
        let stem = "backup-\(utcFileStamp(Date()))"
        var path = (directory as NSString).appendingPathComponent("\(stem).dump")
        var counter = 2
        while FileManager.default.fileExists(atPath: path) {
            path = (directory as NSString).appendingPathComponent("\(stem)-\(counter).dump")
            counter += 1
        }
        return path
    }

    static func sizeAndSHA256(of file: String) throws -> (Int64, String) {
        guard let handle = FileHandle(forReadingAtPath: file) else { throw BackupError("cannot read \(file)") }
        defer { try? handle.close() }
        var hasher = SHA256()
        var size: Int64 = 0
        while let chunk = try handle.read(upToCount: 1 << 20), !chunk.isEmpty {
            hasher.update(data: chunk)
            size += Int64(chunk.count)
        }
        return (size, hasher.finalize().hexEncoded)
    }
}

/// `date` in UTC as `YYYYmmdd-HHMMSS`, with the C library rather than `DateFormatter`, which
/// would load ICU's data for a fixed, locale-free pattern.
private func utcFileStamp(_ date: Date) -> String {
    var seconds = time_t(date.timeIntervalSince1970.rounded(.down))
    var parts = tm()
    gmtime_r(&seconds, &parts)
    var buffer = [CChar](repeating: 0, count: 32)
    let count = strftime(&buffer, buffer.count, "%Y%m%d-%H%M%S", &parts)
    return String(decoding: buffer.prefix(count).map { UInt8(bitPattern: $0) }, as: UTF8.self)
}

private func firstLine(_ text: String) -> String {
    text.split(separator: "\n").first.map(String.init) ?? "(no message)"
}
