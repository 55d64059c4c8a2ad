import Foundation
import GodwitPostgres
import GodwitQueue

/// Reads where changes stand, for `godwit change status`, the dashboard and `/metrics`: through
/// the `changes` view (which whoever may read the schema may read) and the catalog, never the
/// tables behind the view. Every name is qualified, so a session's search_path changes nothing.
public struct ChangeStatus: Sendable {
    public let schema: QueueSchema

    public init(schema: QueueSchema) {
        self.schema = schema
    }

    private var view: String { schema.qualified("changes") }

    /// Whether the changes' part is installed: a dashboard or a scrape against a database where
    /// no change was ever started shows none, rather than failing.
    public func isInstalled(on connection: Connection) async throws -> Bool {
        try await connection.query(
            "SELECT pg_catalog.to_regclass($1) IS NOT NULL AS present", [view]
        ).first?.bool("present") ?? false
    }

    /// The view's columns, timestamps as ISO 8601 text and arrays as JSON.
    private var columns: String {
        """
        c.name, c."table", c.phase, c.rows_done, c.rows_total, c.disagreeing_rows, c.ready,
            pg_catalog.array_to_json(c.blocked_by)::text AS blocked_by, c.file, c.key_column,
            c.backfill_job_id, c.backfill_state, c.finish_job_id, c.verified_rows,
            pg_catalog.to_json(c.verified_at)#>>'{}' AS verified_at,
            pg_catalog.to_json(c.indexes_built_at)#>>'{}' AS indexes_built_at,
            pg_catalog.to_json(c.validated_at)#>>'{}' AS validated_at,
            c.error, c.reader_check_waiver, c.migration_version, c.started_by::text AS started_by,
            pg_catalog.to_json(c.started_at)#>>'{}' AS started_at,
            pg_catalog.to_json(c.ready_at)#>>'{}' AS ready_at,
            pg_catalog.to_json(c.completed_at)#>>'{}' AS completed_at,
            pg_catalog.to_json(c.aborted_at)#>>'{}' AS aborted_at
        """
    }

    /// Every change, those in flight first, then the newest; none when the part is not
    /// installed. At most `limit`.
    public func list(limit: Int = 500, on connection: Connection) async throws -> [ChangeSummary] {
        guard try await isInstalled(on: connection) else { return [] }
        return try await connection.query(
            """
            SELECT \(columns) FROM \(view) c
            ORDER BY c.phase IN ('completed', 'aborted'), c.started_at DESC, c.name LIMIT $1
            """, [limit]
        ).rows.map(ChangeSummary.init)
    }

    /// One change's summary, or nil when there is none by that name.
    public func summary(of name: String, on connection: Connection) async throws -> ChangeSummary? {
        guard try await isInstalled(on: connection) else { return nil }
        return try await connection.query("SELECT \(columns) FROM \(view) c WHERE c.name = $1", [name]).rows
            .map(ChangeSummary.init).first
    }

    /// One change in full, or nil when there is none by that name.
    public func details(of name: String, on connection: Connection) async throws -> ChangeDetails? {
        guard try await isInstalled(on: connection) else { return nil }
        guard
            let row = try await connection.query(
                """
                SELECT \(columns), c.source, c.table_oid, c.readers::text AS readers,
                    c.reader_sampling, c.reader_sampling_unavailable,
                    pg_catalog.to_json(c.reader_sampled_at)#>>'{}' AS reader_sampled_at
                FROM \(view) c WHERE c.name = $1
                """, [name]
            ).first
        else { return nil }
        let summary = try ChangeSummary(row: row)
        let source = try row.string("source")
        let sampled = try JSONDecoder().decode([ReaderEvidence].self, from: Data((row["readers"] ?? "[]").utf8))
        var details = ChangeDetails(
            summary: summary, source: source, droppedColumns: [], objects: [], readers: [],
            readerSampling: row["reader_sampling"].map { $0 == "t" },
            readerSamplingUnavailable: row["reader_sampling_unavailable"],
            readerSampledAt: row["reader_sampled_at"])
        let definition: ChangeDefinition
        do {
            definition = try ChangeDefinition.parse(source, file: summary.file)
        } catch {
            details.definitionError = "\(error)"
            details.readers = sampled
            return details
        }
        let dropped = definition.droppedColumns.map(\.name)
        details.droppedColumns = dropped
        // A column complete drops that no sample has seen yet is listed too, with no evidence.
        details.readers =
            dropped.map { column in sampled.first { $0.column == column } ?? ReaderEvidence(column: column) }
            + sampled.filter { !dropped.contains($0.column) }
        let tableOID = try row.string("table_oid")
        details.objects = try await objects(of: definition, change: summary.name, tableOID: tableOID, on: connection)
        return details
    }

    /// Changes by phase, every phase present (0 when none): `/metrics`' `godwit_changes`.
    public func countsByPhase(on connection: Connection) async throws -> [ChangePhase: Int] {
        var counts = Dictionary(uniqueKeysWithValues: ChangePhase.allCases.map { ($0, 0) })
        guard try await isInstalled(on: connection) else { return counts }
        for row in try await connection.query("SELECT phase, count(*) AS n FROM \(view) GROUP BY phase").rows {
            if let phase = ChangePhase(rawValue: try row.string("phase")) { counts[phase] = try row.int("n") }
        }
        return counts
    }

    /// The indexes and constraints `definition` builds on the table, each with its state in
    /// `pg_index`, `pg_constraint` and `pg_attribute`, named as `ChangeNames` names them.
    func objects(
        of definition: ChangeDefinition, change: String, tableOID: String, on connection: Connection
    ) async throws -> [ChangeObject] {
        guard
            let table = try await connection.query(
                "SELECT relname::text AS name FROM pg_catalog.pg_class WHERE oid = $1::oid", [tableOID]
            ).first?.string("name")
        else { return [] }
        let names = ChangeNames(change: change, table: table)
        var objects: [ChangeObject] = []
        for list in definition.indexes {
            let name = names.index(list.names)
            let state = try await indexState(name, tableOID: tableOID, on: connection)
            objects.append(
                ChangeObject(kind: "index", name: name, columns: list.names, state: state, done: state == "valid"))
        }
        for list in definition.uniques {
            let name = names.unique(list.names)
            var state = try await constraintState(name, tableOID: tableOID, on: connection)
            if state == "missing" {
                let index = try await indexState(name, tableOID: tableOID, on: connection)
                state = index == "valid" ? "built, not attached" : index
            } else {
                state = "attached"
            }
            objects.append(
                ChangeObject(kind: "unique", name: name, columns: list.names, state: state, done: state == "attached"))
        }
        for check in definition.checks {
            let state = try await constraintState(check.name, tableOID: tableOID, on: connection)
            objects.append(
                ChangeObject(kind: "check", name: check.name, columns: [], state: state, done: state == "validated"))
        }
        for key in definition.foreignKeys {
            let name = names.foreignKey(key.column)
            let state = try await constraintState(name, tableOID: tableOID, on: connection)
            objects.append(
                ChangeObject(
                    kind: "foreign-key", name: name, columns: [key.column], state: state, done: state == "validated"))
        }
        for list in definition.notNull {
            let column = list.names[0]
            let name = names.notNullCheck(column)
            let notNull =
                try await connection.query(
                    """
                    SELECT attnotnull FROM pg_catalog.pg_attribute
                    WHERE attrelid = $1::oid AND attname = $2 AND attnum > 0 AND NOT attisdropped
                    """, [tableOID, column]
                ).first?.bool("attnotnull") ?? false
            let state = notNull ? "NOT NULL" : try await constraintState(name, tableOID: tableOID, on: connection)
            objects.append(
                ChangeObject(
                    kind: "not-null", name: name, columns: [column], state: state,
                    done: state == "NOT NULL" || state == "validated"))
        }
        return objects
    }

    /// `not built`, `not valid (...)` or `valid`: the table's index of that name.
    private func indexState(_ name: String, tableOID: String, on connection: Connection) async throws -> String {
        guard
            let row = try await connection.query(
                """
                SELECT i.indisvalid FROM pg_catalog.pg_index i
                JOIN pg_catalog.pg_class x ON x.oid = i.indexrelid
                WHERE i.indrelid = $1::oid AND x.relname = $2
                """, [tableOID, name]
            ).first
        else { return "not built" }
        // A concurrent build in progress and one that failed look alike in the catalog.
        return try row.bool("indisvalid") ? "valid" : "not valid (building, or a failed build)"
    }

    /// `missing`, `not valid` or `validated`: the table's constraint of that name.
    private func constraintState(_ name: String, tableOID: String, on connection: Connection) async throws -> String {
        guard
            let row = try await connection.query(
                "SELECT convalidated FROM pg_catalog.pg_constraint WHERE conrelid = $1::oid AND conname = $2",
                [tableOID, name]
            ).first
        else { return "missing" }
        return try row.bool("convalidated") ? "validated" : "not valid"
    }
}
