import GodwitPostgres

/// The record of verified backups (`<schema>.backups`), read for the dashboard and `/metrics`.
/// Reads only the columns `grant_read` grants, and each backup's file through the
/// `<schema>.backup_files` view, which the jobs part makes (it needs the queue's controls to
/// tell who is a controller): the schema must be installed whole.
public struct BackupRecords: Sendable {
    /// The schema, unquoted.
    public let schema: String

    public init(schema: String = "godwit") {
        self.schema = schema
    }

    var table: String { "\(quoteIdentifier(schema)).backups" }
    var filesView: String { "\(quoteIdentifier(schema)).backup_files" }

    /// The newest `limit` backups, newest first.
    public func newest(limit: Int = 100, on connection: Connection) async throws -> [BackupRecord] {
        try await connection.query(
            """
            SELECT f.file, b.size_bytes, b.database_name, extract(epoch FROM now() - b.created_at)::float8 AS age,
                b.sha256, to_char(b.verified_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS') AS verified_at, b.reason
            FROM \(table) b
            LEFT JOIN \(filesView) f ON f.id = b.id
            ORDER BY b.id DESC LIMIT $1
            """, [limit]
        ).rows.map {
            BackupRecord(
                file: $0["file"], sizeBytes: try $0.int64("size_bytes"),
                databaseName: try $0.string("database_name"), ageSeconds: try $0.double("age"),
                verifiedAt: try $0.string("verified_at"), sha256: try $0.string("sha256"), reason: $0["reason"])
        }
    }

    /// How many are recorded, and the newest's age and size.
    public func summary(on connection: Connection) async throws -> BackupSummary {
        let row = try await connection.query(
            """
            SELECT count(*) AS n, extract(epoch FROM now() - max(created_at))::float8 AS age,
                (SELECT size_bytes FROM \(table) ORDER BY id DESC LIMIT 1) AS size
            FROM \(table)
            """
        ).first!
        return BackupSummary(
            count: try row.int64("n"), newestAgeSeconds: try? row.double("age"), newestSizeBytes: try? row.int64("size")
        )
    }
}
