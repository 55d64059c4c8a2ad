import Foundation
import GodwitMigrations
import GodwitPostgres

/// The `changes/*.sql` file that replaces a statement `migrate lint` found breaking the running
/// application or blocking the table (`rename-column`, `column-type-rewrite`, `drop-column`,
/// `set-not-null`): the same end state, reached by `godwit change start` and `complete` without
/// downtime. What `migrate lint --write-changes DIR` writes, one file a finding.
///
/// - A rename `RENAME COLUMN a TO b` becomes `add-column: b TYPE = a` and `drop-column: a = b`.
///   The statement does not say the type: it is the column's type in the target database
///   (`format_type`, read by `columnType`), the schema the change will run against. Without a
///   database, or for a column the target does not have yet, the file says `TYPE_OF_a`, which
///   `change plan` refuses until it is replaced, and says so in a comment.
/// - A type change `ALTER COLUMN c TYPE t [USING e]` becomes `add-column: c_new t = e` (or
///   `(c)::t`) and `drop-column: c = c_new`: the new type lives under a new name, which the
///   application moves to, and the old column is kept right from it (cast back to its type by
///   the change's trigger) until complete drops it.
/// - `DROP COLUMN c` becomes `drop-column: c`; `SET NOT NULL` on c becomes `not-null: c`.
///
/// Comment lines in the file never start with a word and a colon, which would read as a
/// directive.
public enum LintChangeFile {
    /// The change's name and file stem: `rename_media_title`, `retype_media_size_bytes`,
    /// `drop_media_legacy`, `not_null_media_caption`, from the finding alone.
    public static func name(for finding: LintFinding) -> String? {
        guard let change = finding.columnChange, let table = finding.table else { return nil }
        let verb: String
        switch change {
        case .rename: verb = "rename"
        case .typeChange: verb = "retype"
        case .drop: verb = "drop"
        case .setNotNull: verb = "not_null"
        }
        let bareTable = table.split(separator: ".").last.map(String.init) ?? table
        let slug = "\(verb)_\(bareTable)_\(change.column)".lowercased().map {
            $0.isLetter || $0.isNumber ? $0 : "_"
        }
        return String(slug)
    }

    /// The change file for `finding`, named `name` (its `-- name:`), or nil for a finding no
    /// change replaces. `columnType` is the renamed column's type in the target, when known.
    public static func text(for finding: LintFinding, name: String, columnType: String? = nil) -> String? {
        guard let change = finding.columnChange, let table = finding.table else { return nil }
        var lines = [ChangeDefinition.marker, "-- name: \(name)", "-- table: \(table)"]
        var notes: [String] = []
        let statement = "the statement at \(finding.file) line \(finding.line) (\(finding.rule))"
        switch change {
        case .rename(let column, let target):
            let type = columnType ?? "TYPE_OF_\(column)"
            lines.append("-- add-column: \(identifier(target)) \(type) = \(identifier(column))")
            lines.append("-- drop-column: \(identifier(column)) = \(identifier(target))")
            if columnType == nil {
                notes.append(
                    "Replace TYPE_OF_\(column) with the type of \(column), which migrate lint could not read (no database given, or the target has no such column yet)."
                )
            } else {
                notes.append("The type is that of \(column) in the database migrate lint read; check it.")
            }
            notes.append(
                "Deploy the version that reads and writes \(target) once godwit change status says ready.")
        case .typeChange(let column, let type, let using):
            let added = identifier(column + "_new")
            lines.append("-- add-column: \(added) \(type) = \(using ?? "(\(identifier(column)))::\(type)")")
            lines.append("-- drop-column: \(identifier(column)) = \(added)")
            notes.append(
                "The new type lives in a new column, \(column)_new (rename it in this file as you like), which the application moves to."
            )
            notes.append(
                "Check the two expressions, the old column from the new one above all, which must hold every value old readers expect."
            )
            notes.append(
                "Deploy the version that reads and writes the new column once godwit change status says ready.")
        case .drop(let column):
            lines.append("-- drop-column: \(identifier(column))")
            notes.append(
                "Deploy an application version that no longer reads or writes \(column) first; complete waits until no statement has named it for --quiet-for."
            )
        case .setNotNull(let column):
            lines.append("-- not-null: \(identifier(column))")
            notes.append(
                "The NOT NULL is checked by a CHECK constraint validated online; rows with NULL in \(column) make that validation fail, so fill them first."
            )
        }
        lines.append("--")
        lines.append("-- Written by godwit migrate lint in place of \(statement).")
        lines.append(
            "-- Remove that statement from its migration, then run godwit change plan and godwit change start on this file,"
        )
        lines.append("-- and godwit change complete once godwit change status shows nothing blocking it.")
        for note in notes { lines.append("-- \(note)") }
        return lines.joined(separator: "\n") + "\n"
    }

    /// The type of `column` of `table` in the database `connection` is on, as `format_type`
    /// writes it (`character varying(200)`), or nil when there is no such column.
    public static func columnType(table: String, column: String, on connection: Connection) async throws -> String? {
        try await connection.query(
            """
            SELECT pg_catalog.format_type(atttypid, atttypmod) AS type FROM pg_catalog.pg_attribute
            WHERE attrelid = pg_catalog.to_regclass($1) AND attname = $2 AND attnum > 0 AND NOT attisdropped
            """, [table, column]
        ).first?["type"]
    }

    /// `name` as a change file writes it: bare when PostgreSQL would read it back unchanged,
    /// quoted otherwise.
    static func identifier(_ name: String) -> String {
        let simple =
            name.first.map { $0 == "_" || ($0.isLetter && $0.isLowercase && $0.isASCII) } == true
            && name.allSatisfy {
                ($0.isLetter && $0.isLowercase && $0.isASCII) || ($0.isNumber && $0.isASCII) || $0 == "_"
            }
        return simple ? name : quoteIdentifier(name)
    }
}
