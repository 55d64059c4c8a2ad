import Foundation
import GodwitPostgres

/// Writes the `jobs/*.sql` file that replaces a whole-table UPDATE found by `migrate lint`: the
/// same UPDATE, run by the worker in keyset batches of the table's key.
///
/// Only the text is made here, in the format `GodwitJobs`'s `BatchedJobDefinition` reads
/// (`-- godwit:batched`, `-- name:`/`-- table:`/`-- key:` directives, one statement using `$1`
/// and `$2`); this library does not depend on that one, so the tests that parse the result
/// live where both are visible.
public enum BatchedJobFile {
    /// The key used when the table's single-column primary key is unknown (no database, or
    /// the key is composite); the file says so.
    public static let assumedKey = "id"

    /// The file name for the finding: `lint_<migration file stem>_line<N>.sql`.
    public static func fileName(for finding: LintFinding) -> String {
        let stem = ((finding.file as NSString).lastPathComponent as NSString).deletingPathExtension
            .replacingOccurrences(of: ".up", with: "")
        return "lint_\(stem)_line\(finding.line).sql"
    }

    /// The job file for a `whole-table-update` finding, or nil for any other finding.
    public static func text(for finding: LintFinding) -> String? {
        guard finding.rule == LintRule.wholeTableUpdate.id, let sql = finding.sql, let table = finding.table else {
            return nil
        }
        let key = finding.batchKey ?? assumedKey
        let stem = ((finding.file as NSString).lastPathComponent as NSString).deletingPathExtension
        var lines = [
            "-- godwit:batched",
            "-- name: \(stem) line \(finding.line) in batches",
            "-- table: \(table)",
            "-- key: \(key)",
            "-- batch-size: 1000",
            "-- target-batch-ms: 200",
            "-- Written by godwit migrate lint for the UPDATE without WHERE at \(finding.file) line \(finding.line).",
            "-- Remove that UPDATE from the migration and enqueue this file with godwit job enqueue.",
            "-- Add a condition that skips rows already done, so that a retried batch changes nothing twice.",
        ]
        if finding.batchKey == nil {
            lines.append(
                "-- The key column \(assumedKey) is assumed (no database was given, or the table has no single-column primary key), check it."
            )
        }
        let column = key.allSatisfy({ $0.isLowercase || $0.isNumber || $0 == "_" }) ? key : quoteIdentifier(key)
        let batch = "WHERE \(column) BETWEEN $1 AND $2"
        var scalars = Array(sql.unicodeScalars)
        if let offset = finding.batchWhereOffset, offset <= scalars.count {
            // Before RETURNING, or inside the WITH query that runs the UPDATE.
            scalars.insert(contentsOf: (batch + "\n").unicodeScalars, at: offset)
        } else {
            scalars.append(contentsOf: ("\n" + batch).unicodeScalars)
        }
        var statement = String.UnicodeScalarView()
        statement.append(contentsOf: scalars)
        if SQLTokenizer.tokens(sql).first?.isKeyword("WITH") == true {
            lines.append("-- The UPDATE runs inside WITH: the rows a batch reports are those of the outer statement.")
        }
        lines.append(String(statement) + ";")
        return lines.joined(separator: "\n") + "\n"
    }
}
