import GodwitPostgres

/// A fleet's targets, read and checked before anything runs: from a targets file, or from the
/// rows of a query on the control database.
///
/// A targets file holds one target a line, `NAME CONNECTION [schema=NAME]`, where CONNECTION
/// is a `postgres://` URL written bare, or any connection string (a `key=value` one with
/// spaces) in double or single quotes, with `\` escaping the quote and itself inside. `#`
/// starts a comment outside quotes; blank lines are skipped. Every line that cannot be a target
/// is refused with its line: a duplicate name, a connection string libpq cannot parse, a schema
/// that is not a plain identifier, anything else on the line. An empty fleet is refused too.
public struct FleetTargets: Sendable, Equatable {
    public var targets: [FleetTarget]
    /// The file they were read from, or `--targets-query`.
    public var origin: String

    public init(_ targets: [FleetTarget], origin: String) {
        self.targets = targets
        self.origin = origin
    }

    /// Target names: a letter or digit, then letters, digits, `.`, `_` and `-`; at most 63 bytes,
    /// so that a name is safe on a terminal, in a log line and as a file name.
    static func isValidName(_ name: String) -> Bool {
        guard let first = name.unicodeScalars.first, name.utf8.count <= 63 else { return false }
        func plain(_ c: Unicode.Scalar) -> Bool {
            ("a"..."z").contains(c) || ("A"..."Z").contains(c) || ("0"..."9").contains(c)
        }
        return plain(first) && name.unicodeScalars.allSatisfy { plain($0) || $0 == "." || $0 == "_" || $0 == "-" }
    }

    /// Schema names: lowercase letters, digits and `_`, not starting with a digit, at most 63
    /// bytes, and not `pg_`-prefixed: an identifier that means the same quoted or not, so the
    /// ledger's `<schema>._sqlx_migrations` and `search_path` agree with what the files write.
    static func isValidSchema(_ name: String) -> Bool {
        guard let first = name.unicodeScalars.first, name.utf8.count <= 63, !name.hasPrefix("pg_") else {
            return false
        }
        func lower(_ c: Unicode.Scalar) -> Bool { ("a"..."z").contains(c) || c == "_" }
        return lower(first) && name.unicodeScalars.allSatisfy { lower($0) || ("0"..."9").contains($0) }
    }

    /// Reads a targets file's text. `file` names it in errors.
    public static func parse(_ text: String, file: String) throws -> FleetTargets {
        var targets: [FleetTarget] = []
        var seen: [String: Int] = [:]
        for (index, rawLine) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let number = index + 1
            let fields = try fieldsOf(line: String(rawLine), file: file, number: number)
            guard !fields.isEmpty else { continue }
            guard fields.count >= 2 else {
                throw FleetError(
                    .badTargets, file: file, line: number,
                    "target \(fields[0]) has no connection string (expected NAME URL [schema=NAME])")
            }
            let target = try makeTarget(
                name: fields[0], connection: fields[1], options: Array(fields.dropFirst(2)), file: file, line: number)
            if let first = seen[target.name] {
                throw FleetError(
                    .badTargets, file: file, line: number,
                    "duplicate target name \(target.name) (first on line \(first))")
            }
            seen[target.name] = number
            targets.append(target)
        }
        guard !targets.isEmpty else { throw FleetError(.badTargets, file: file, "no targets: the fleet is empty") }
        return FleetTargets(targets, origin: file)
    }

    /// Reads targets from `rows` of `(name, connection, schema?)`, as `--targets-query`
    /// returns them; `origin` names the query in errors, and a row's number stands for its line.
    public static func fromRows(_ rows: [(String?, String?, String?)], origin: String = "--targets-query") throws
        -> FleetTargets
    {
        var targets: [FleetTarget] = []
        var seen: [String: Int] = [:]
        for (index, row) in rows.enumerated() {
            let number = index + 1
            guard let name = row.0, let connection = row.1 else {
                throw FleetError(
                    .badTargets, file: origin, line: number, "row \(number) has a NULL name or connection string")
            }
            let target = try makeTarget(
                name: name, connection: connection, options: row.2.map { ["schema=\($0)"] } ?? [], file: origin,
                line: number)
            if let first = seen[target.name] {
                throw FleetError(
                    .badTargets, file: origin, line: number,
                    "duplicate target name \(target.name) (first in row \(first))")
            }
            seen[target.name] = number
            targets.append(target)
        }
        guard !targets.isEmpty else {
            throw FleetError(.badTargets, file: origin, "no targets: the query returned no row")
        }
        return FleetTargets(targets, origin: origin)
    }

    /// Runs `query` on the control database (read only) and reads its rows: the first column is
    /// the name, the second the connection string, an optional third the schema.
    public static func query(_ query: String, on connection: Connection) async throws -> FleetTargets {
        // Read only: the query names targets and changes nothing on the control database.
        let result = try await connection.withTransaction { conn in
            try await conn.execute("SET TRANSACTION READ ONLY")
            return try await conn.query(query)
        }
        guard (2...3).contains(result.columns.count) else {
            throw FleetError(
                .badTargets, file: "--targets-query",
                "the query returns \(result.columns.count) columns; expected name, url[, schema]")
        }
        let rows = result.rows.map { row in (row[0], row[1], result.columns.count == 3 ? row[2] : nil) }
        return try fromRows(rows)
    }

    private static func makeTarget(name: String, connection: String, options: [String], file: String, line: Int)
        throws -> FleetTarget
    {
        guard isValidName(name) else {
            throw FleetError(
                .badTargets, file: file, line: line,
                "\(name) is not a target name: use letters, digits, '.', '_' and '-', starting with a letter or digit (at most 63 bytes)"
            )
        }
        do {
            try ConnectionString.validate(connection)
            guard !connection.allSatisfy(\.isWhitespace) else {
                throw PostgresError(code: .client, message: "the connection string is empty")
            }
        } catch let error as PostgresError {
            throw FleetError(.badTargets, file: file, line: line, "target \(name): \(error.message)")
        }
        var schema: String?
        for option in options {
            guard option.hasPrefix("schema=") else {
                let hint =
                    option.contains("=")
                    ? "; quote a key=value connection string (\"host=... dbname=...\")"
                    : " (expected NAME URL [schema=NAME])"
                throw FleetError(
                    .badTargets, file: file, line: line, "target \(name): unexpected \(option.prefix(40))\(hint)")
            }
            guard schema == nil else {
                throw FleetError(.badTargets, file: file, line: line, "target \(name): schema= given twice")
            }
            let value = String(option.dropFirst("schema=".count))
            guard isValidSchema(value) else {
                throw FleetError(
                    .badTargets, file: file, line: line,
                    "target \(name): schema \(value) is not an identifier: use lowercase letters, digits and '_', not starting with a digit or pg_ (at most 63 bytes)"
                )
            }
            schema = value
        }
        return FleetTarget(name: name, connection: connection, schema: schema, line: line)
    }

    /// The fields of one line: bare words split on whitespace, quoted strings (`"..."` or
    /// `'...'`, with `\` escaping the quote and itself) kept whole, a `#` outside quotes ending
    /// the line.
    static func fieldsOf(line: String, file: String, number: Int) throws -> [String] {
        var fields: [String] = []
        var current = ""
        var inField = false
        var quote: Character?
        var escaped = false
        for character in line {
            if let open = quote {
                if escaped {
                    current.append(character)
                    escaped = false
                } else if character == "\\" {
                    escaped = true
                } else if character == open {
                    quote = nil
                } else {
                    current.append(character)
                }
                continue
            }
            if character == "#" { break }
            if character.isWhitespace {
                if inField { fields.append(current) }
                current = ""
                inField = false
            } else if (character == "\"" || character == "'") && !inField {
                quote = character
                inField = true
            } else {
                current.append(character)
                inField = true
            }
        }
        if quote != nil {
            throw FleetError(.badTargets, file: file, line: number, "a quoted connection string is not closed")
        }
        if inField { fields.append(current) }
        return fields
    }
}
