import Foundation
import GodwitJobs
import GodwitPostgres

/// A zero-downtime column change as written in a `changes/*.sql` file: directives only, in
/// plain SQL comments, as a job file's are.
///
/// ```sql
/// -- godwit:change
/// -- table: media
/// -- add-column: caption text = title
/// -- drop-column: title = caption
/// -- not-null: caption
/// -- index: caption
/// ```
///
/// Column names are read as PostgreSQL reads identifiers: folded to lower case unless
/// double-quoted. Expressions and types are kept as written; `godwit change plan` checks them
/// against the live schema. The batched-job directives (`batch-size`, `max-lock-wait-ms`,
/// `health-query`, `parallel`, ...) are kept for the backfill, whose definition checks their
/// values.
public struct ChangeDefinition: Sendable, Equatable {
    /// A column the change adds, computed from the row's old columns so old writers keep it right.
    public struct AddedColumn: Sendable, Equatable {
        public var name: String
        public var type: String
        public var expression: String
        public var line: Int
    }

    /// A column the change drops at complete; its expression computes it from the new columns
    /// so new writers keep it right for old readers (none for a column no one writes any more).
    public struct DroppedColumn: Sendable, Equatable {
        public var name: String
        public var expression: String?
        public var line: Int
    }

    /// A CHECK constraint, added NOT VALID at start and validated after the backfill.
    public struct Check: Sendable, Equatable {
        public var name: String
        public var expression: String
        public var line: Int
    }

    /// A foreign key from one column, added NOT VALID at start and validated after the backfill.
    public struct ForeignKey: Sendable, Equatable {
        public var column: String
        /// The referenced table as written (it may be schema-qualified).
        public var referencedTable: String
        public var referencedColumn: String
        public var line: Int
    }

    /// Columns for a `not-null`, `unique` or `index` directive.
    public struct Columns: Sendable, Equatable {
        public var names: [String]
        public var line: Int
    }

    /// A batched-job directive for the backfill, kept as written.
    public struct BackfillSetting: Sendable, Equatable {
        public var value: String
        public var line: Int
    }

    public var name: String
    /// The table as written (it may be schema-qualified), and the line that names it.
    public var table: String
    public var tableLine: Int
    public var addedColumns: [AddedColumn] = []
    public var droppedColumns: [DroppedColumn] = []
    public var notNull: [Columns] = []
    public var checks: [Check] = []
    public var foreignKeys: [ForeignKey] = []
    public var uniques: [Columns] = []
    public var indexes: [Columns] = []
    /// The backfill's batched-job directives, by name.
    public var backfill: [String: BackfillSetting] = [:]

    public static let marker = "-- godwit:change"

    /// The directives that describe the change; each may be given more than once.
    static let changeDirectives: Set<String> = [
        "add-column", "drop-column", "not-null", "check", "foreign-key", "unique", "index",
    ]

    /// The batched-job directives a change's backfill takes (its table and key are the change's).
    public static let backfillDirectives = BatchedJobDefinition.knownDirectives.subtracting(["name", "table", "key"])

    /// Parses the text of `file` (used in messages and for the default name). Validation reads
    /// the text alone: nothing here touches a database.
    public static func parse(_ text: String, file: String) throws -> ChangeDefinition {
        func fail(_ line: Int, _ message: String) -> ChangeDefinitionError {
            ChangeDefinitionError(file: file, line: line, message: message)
        }
        var body = text
        if body.hasPrefix("\u{FEFF}") { body.removeFirst() }
        let lines = body.split(omittingEmptySubsequences: false, whereSeparator: \.isNewline).map(String.init)
        guard lines.first?.trimmingCharacters(in: .whitespaces) == marker else {
            throw fail(1, "a change file starts with the line `\(marker)`")
        }
        var single: [String: BackfillSetting] = [:]
        var repeated: [(name: String, value: String, line: Int)] = []
        for (offset, raw) in lines.enumerated().dropFirst() {
            let number = offset + 1
            let line = raw.trimmingCharacters(in: .whitespaces)
            if line.isEmpty { continue }
            guard line.hasPrefix("--") else {
                throw fail(number, "a change file holds `-- name: value` directives only, not SQL")
            }
            let content = line.dropFirst(2).trimmingCharacters(in: .whitespaces)
            guard let colon = content.firstIndex(of: ":") else { continue }
            let name = content[..<colon].trimmingCharacters(in: .whitespaces).lowercased()
            guard !name.isEmpty, name.allSatisfy({ $0.isLetter || $0 == "-" }) else { continue }
            let value = content[content.index(after: colon)...].trimmingCharacters(in: .whitespaces)
            guard !value.isEmpty else { throw fail(number, "directive `\(name)` has no value") }
            if changeDirectives.contains(name) {
                repeated.append((name, value, number))
            } else if name == "name" || name == "table" || backfillDirectives.contains(name) {
                guard single[name] == nil else { throw fail(number, "directive `\(name)` given twice") }
                single[name] = BackfillSetting(value: value, line: number)
            } else {
                let known = (changeDirectives.union(backfillDirectives).union(["name", "table"])).sorted()
                throw fail(number, "unknown directive `\(name)` (known: \(known.joined(separator: ", ")))")
            }
        }
        guard let table = single["table"] else { throw fail(1, "missing directive `-- table: NAME`") }
        let defaultName = ((file as NSString).lastPathComponent as NSString).deletingPathExtension
        var definition = ChangeDefinition(
            name: single["name"]?.value ?? defaultName, table: table.value, tableLine: table.line)
        for key in backfillDirectives { definition.backfill[key] = single[key] }
        for (name, value, line) in repeated {
            try definition.add(directive: name, value: value, line: line, fail: fail)
        }
        guard !repeated.isEmpty else {
            throw fail(
                1, "the file changes nothing: give at least one of \(changeDirectives.sorted().joined(separator: ", "))"
            )
        }
        try definition.checkColumns(fail: fail)
        return definition
    }

    private mutating func add(
        directive: String, value: String, line: Int, fail: (Int, String) -> ChangeDefinitionError
    ) throws {
        switch directive {
        case "add-column":
            guard let (left, expression) = ChangeSyntax.splitAtEquals(value), !expression.isEmpty,
                let (name, type) = ChangeSyntax.leadingIdentifier(left), !type.isEmpty
            else {
                throw fail(line, "`add-column` is `NAME TYPE = EXPRESSION` (the expression over the old columns)")
            }
            addedColumns.append(AddedColumn(name: name, type: type, expression: expression, line: line))
        case "drop-column":
            let split = ChangeSyntax.splitAtEquals(value)
            let expression = split?.right
            guard let (name, rest) = ChangeSyntax.leadingIdentifier(split?.left ?? value), rest.isEmpty,
                expression?.isEmpty != true
            else {
                throw fail(line, "`drop-column` is `NAME` or `NAME = EXPRESSION` (the expression over the new columns)")
            }
            droppedColumns.append(DroppedColumn(name: name, expression: expression, line: line))
        case "not-null", "unique", "index":
            guard let names = ChangeSyntax.identifierList(value) else {
                throw fail(
                    line,
                    "`\(directive)` is a column name\(directive == "not-null" ? "" : " or a comma-separated list")")
            }
            if directive == "not-null" {
                guard names.count == 1 else { throw fail(line, "`not-null` names one column") }
                notNull.append(Columns(names: names, line: line))
            } else if directive == "unique" {
                uniques.append(Columns(names: names, line: line))
            } else {
                indexes.append(Columns(names: names, line: line))
            }
        case "check":
            guard let (name, expression) = ChangeSyntax.leadingIdentifier(value), !expression.isEmpty else {
                throw fail(line, "`check` is `NAME EXPRESSION`")
            }
            checks.append(Check(name: name, expression: expression, line: line))
        default:  // foreign-key
            guard let key = ChangeSyntax.foreignKey(value) else {
                throw fail(line, "`foreign-key` is `COLUMN REFERENCES TABLE (COLUMN)`")
            }
            foreignKeys.append(
                ForeignKey(column: key.column, referencedTable: key.table, referencedColumn: key.referenced, line: line)
            )
        }
    }

    /// A column is added once, dropped once, and never both.
    private func checkColumns(fail: (Int, String) -> ChangeDefinitionError) throws {
        var added: [String: Int] = [:]
        for column in addedColumns {
            if let first = added[column.name] {
                throw fail(column.line, "column \(column.name) is added twice (first on line \(first))")
            }
            added[column.name] = column.line
        }
        var dropped: [String: Int] = [:]
        for column in droppedColumns {
            if let first = dropped[column.name] {
                throw fail(column.line, "column \(column.name) is dropped twice (first on line \(first))")
            }
            if let addedAt = added[column.name] {
                throw fail(column.line, "column \(column.name) is added on line \(addedAt) and dropped here")
            }
            dropped[column.name] = column.line
        }
        let lists = notNull + uniques + indexes
        let constrained = lists.flatMap { list in list.names.map { ($0, list.line) } }
        for (column, line) in constrained + foreignKeys.map({ ($0.column, $0.line) }) {
            if let droppedAt = dropped[column] {
                throw fail(
                    line,
                    "column \(column) is dropped by this change (line \(droppedAt)): constrain a column that stays")
            }
        }
    }
}

/// A change file that is not one: the file, the line, and what is wrong there.
public struct ChangeDefinitionError: GodwitError {
    public var code: String { "change-definition" }
    public var file: String
    public var line: Int
    public var message: String

    public var description: String { "\(file):\(line): \(message)" }
}
