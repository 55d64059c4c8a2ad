import Foundation
import GodwitPostgres
import GodwitQueue

/// Every later step's SQL, generated at start and stored in `change_records.statements`, so
/// that the worker, complete and abort never regenerate it (the keys are the shared contract's).
public struct ChangeStatements: Sendable, Equatable, Codable {
    /// An index the worker builds concurrently.
    public struct Index: Sendable, Equatable, Codable {
        public var name: String
        public var create: String
    }

    /// A unique constraint: its index built concurrently, then attached as the constraint.
    public struct Unique: Sendable, Equatable, Codable {
        public var name: String
        public var create: String
        public var attach: String
    }

    /// The qualified, quoted table (`"public"."media"`).
    public var table: String
    /// The quoted key column.
    public var key: String
    /// Boolean SQL over the table's bare columns, true when a row's two sides disagree;
    /// `false` when nothing syncs.
    public var disagrees: String
    public var indexes: [Index]
    public var uniques: [Unique]
    /// `ALTER TABLE t VALIDATE CONSTRAINT c`, for the NOT NULL checks, checks and foreign keys.
    public var validate: [String]
    /// Complete's one transaction, in order.
    public var complete: [String]
    /// Abort's one transaction, `IF EXISTS` throughout, so that it works at any phase.
    public var abort: [String]
    /// The folded migration: the change's end state as one plain migration.
    public var migration: String
    /// The columns complete drops (the reader sampler watches these).
    public var dropped: [String]
    /// The backfill's statement (`ChangeSQL.backfill`), which the reader sampler tells apart
    /// as Godwit's own; nil when nothing syncs, and in records made before it was stored.
    public var backfill: String? = nil
}

extension ChangeStatements {
    /// The statements `start` stored for change `name` in `schema`'s `change_records`; nil
    /// when there is no such change.
    public static func stored(for name: String, schema: QueueSchema, on connection: Connection) async throws
        -> ChangeStatements?
    {
        guard
            let text = try await connection.query(
                "SELECT statements::text AS s FROM \(schema.qualified("change_records")) WHERE name = $1", [name]
            ).first?.string("s")
        else { return nil }
        return try JSONDecoder().decode(ChangeStatements.self, from: Data(text.utf8))
    }
}
