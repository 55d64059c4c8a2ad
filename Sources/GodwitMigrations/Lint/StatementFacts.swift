import GodwitPostgres

/// Everything the rules look at for one statement.
struct StatementFacts: Sendable {
    var path: String
    var statement: SQLStatement
    var shape: StatementShape
    /// The file runs inside a transaction (no `-- no-transaction`).
    var inTransaction: Bool
    /// The statement's table existed before the migrations being linted.
    var tablePreExisting: Bool
    /// The tables `DROP TABLE` names that existed before (static and catalog modes).
    var droppedPreExisting: [String] = []
    /// For SET NOT NULL: a validated `CHECK (col IS NOT NULL)` makes the scan unnecessary.
    var notNullProven: Bool
    /// Catalog mode: for each column whose type the statement changes and whose current type
    /// the catalog told, whether the change rewrites the table (string types only).
    var typeChangeRewrites: [String: Bool] = [:]
    /// A pre-existing table held in ACCESS EXCLUSIVE since an earlier statement of the same
    /// transaction.
    var exclusiveHeldOn: String?
    /// Columns of the statement's table that the migrations being linted added (they were
    /// not in the target before): dropping one breaks no running application.
    var newColumns: Set<String> = []
    var trace: TraceObservation?
    /// The trace tried the statement in a transaction and PostgreSQL refused (SQLSTATE 25001).
    var failsInTransaction = false
    /// `%I.%I` (trace) or as written (static), to look the size up in the target.
    var sizeName: String?
    var batchKey: String?

    var firstLine: String {
        String(statement.text.split(omittingEmptySubsequences: false, whereSeparator: \.isNewline).first ?? "")
    }

    var tableName: String? {
        if let trace, let oid = trace.tableOID, let name = trace.names[oid] { return name }
        return shape.table?.written
    }
}
