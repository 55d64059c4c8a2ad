import Foundation
import GodwitPostgres

/// The tables a batched job's statement writes, read from its plan, and the check that they are
/// exactly its `-- table:`.
///
/// A batch's statement is planned, never run: `EXPLAIN (VERBOSE, FORMAT JSON)` without
/// `ANALYZE`, in the enqueuer's session, with both keys sent as NULL. Every table the statement
/// writes is a `ModifyTable` node of the plan, after the rewriter has done its work: an
/// auto-updatable view shows as its base table, a rule that writes elsewhere (`DO INSTEAD`) as
/// the table it writes, a writable CTE as a node of its own. So:
///
/// - an `UPDATE` (or `DELETE`, `MERGE`) of the table, directly, through a CTE or through an
///   updatable view, is accepted;
/// - one that writes another table, or a view whose `INSTEAD OF` trigger does the writing
///   (what the trigger writes cannot be seen), is refused, naming both;
/// - one that writes the table *and* another (a writable CTE that records the changed keys in an
///   audit table, as `migrate lint --write-jobs` keeps it, a rule `DO ALSO`) is accepted with a
///   warning naming the other tables: those writes commit with each batch and its checkpoint, so
///   they too happen once a batch, but the job's progress, checkpoint and restore guard know
///   only its own table;
/// - one that writes nothing visible (a `SELECT` of a function that writes) is refused: which
///   table it changes cannot be told without running it.
///
/// Triggers on the table itself are not in the plan; what they write is the table's business.
enum WriteTargets {
    /// Throws a `BatchedJobError` at the statement's `line` of `file` unless the
    /// statement writes `relation` (the `-- table:` line's `table`, as `batched_target` resolved
    /// it). Returns a warning (`file:line: ...`) when it writes other tables as well.
    static func check(
        statement: String, table: String, relation: String, file: String, line: Int, on connection: Connection
    ) async throws -> String? {
        func refuse(_ message: String) -> BatchedJobError {
            BatchedJobError(.refused, file: file, line: line, message)
        }
        let plan: String
        do {
            plan =
                try await connection.query(
                    "EXPLAIN (VERBOSE, FORMAT JSON) \(statement)", [String?.none, String?.none]
                ).first?.string("QUERY PLAN") ?? "[]"
        } catch let error as PostgresError where error.code == .server {
            throw refuse("cannot tell which table the statement writes: planning it failed: \(error.message)")
        }
        var written: [String] = []
        for target in try targets(inPlan: plan) {
            let name = try await connection.query(
                "SELECT pg_catalog.format('%I.%I', $1::text, $2::text) AS name", [target.schema, target.name]
            ).first!.string("name")
            if !written.contains(name) { written.append(name) }
        }
        let named = "\(relation) (`-- table: \(table)`)"
        guard !written.isEmpty else {
            throw refuse(
                "the statement writes no table that its plan shows; a batched job updates its table \(named) in the statement itself"
            )
        }
        let others = written.filter { $0 != relation }
        guard !others.isEmpty else { return nil }
        if written.contains(relation) {
            return
                "\(file):\(line): the statement writes \(others.joined(separator: ", ")) as well as its table \(named): "
                + "those writes commit with each batch, but the job's progress and checkpoint know only its table"
        }
        throw refuse("the statement writes \(others.joined(separator: ", ")), not its table \(named)")
    }

    /// The (schema, table) of every `ModifyTable` node in an `EXPLAIN (VERBOSE, FORMAT JSON)`
    /// plan, in the order found.
    static func targets(inPlan json: String) throws -> [(schema: String, name: String)] {
        let parsed = try JSONSerialization.jsonObject(with: Data(json.utf8))
        var found: [(schema: String, name: String)] = []
        func walk(_ value: Any) {
            if let array = value as? [Any] {
                array.forEach(walk)
            } else if let node = value as? [String: Any] {
                if node["Node Type"] as? String == "ModifyTable", let name = node["Relation Name"] as? String {
                    found.append((node["Schema"] as? String ?? "", name))
                }
                node.values.forEach(walk)
            }
        }
        walk(parsed)
        return found
    }
}
