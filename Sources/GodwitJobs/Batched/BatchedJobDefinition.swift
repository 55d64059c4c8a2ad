import Foundation
import GodwitPostgres
import GodwitQueue

/// A batched data migration as written in a `jobs/*.sql` file:
///
/// ```sql
/// -- godwit:batched
/// -- table: media
/// -- key: id
/// -- batch-size: 1000
/// -- target-batch-ms: 200
/// UPDATE media SET title = metadata->>'title'
/// WHERE id BETWEEN $1 AND $2 AND title IS NULL;
/// ```
///
/// `-- name: value` directives at the top, then one statement in which `$1` and `$2` are the
/// first and last key of a batch, inclusive (sent as text, typed by the statement's context).
public struct BatchedJobDefinition: Sendable, Equatable {
    public var name: String
    public var table: String
    public var key: String
    public var statement: String
    public var batchSize = 1000
    public var targetBatchMs = 200
    public var pauseMs = 0
    public var minBatchSize = 10
    public var maxBatchSize = 50_000
    public var lockTimeoutMs = 2000
    public var statementTimeoutMs = 10_000
    public var maxAttempts = 5
    public var priority = 0
    /// The longest another session may wait on a batch's locks before batches shrink; 0 steers
    /// by duration alone.
    public var maxLockWaitMs = 10
    /// A query of the enqueuer's: the job holds while it returns false or fails.
    public var healthQuery: String?
    /// Shards to split the key range into at enqueue, each a job any worker may claim (1: one
    /// job, no split).
    public var parallel = 1
    /// The 1-based line where the statement starts in the file.
    public var statementLine = 1

    public static let marker = "-- godwit:batched"

    /// Parses the text of `file` (used in messages and for the default name).
    public static func parse(_ text: String, file: String) throws -> BatchedJobDefinition {
        func fail(_ line: Int, _ message: String) -> BatchedJobError {
            BatchedJobError(.definition, file: file, line: line, message)
        }
        var body = text
        if body.hasPrefix("\u{FEFF}") { body.removeFirst() }
        // "\r\n" is one Character in Swift, so split on newline characters, not on "\n".
        let lines = body.split(omittingEmptySubsequences: false, whereSeparator: \.isNewline).map(String.init)
        guard lines.first?.trimmingCharacters(in: .whitespaces) == marker else {
            throw fail(1, "a batched job starts with the line `\(marker)`")
        }
        var directives: [String: (value: String, line: Int)] = [:]
        var index = 1
        while index < lines.count {
            let line = lines[index].trimmingCharacters(in: .whitespaces)
            if line.isEmpty {
                index += 1
                continue
            }
            guard line.hasPrefix("--") else { break }
            let content = line.dropFirst(2).trimmingCharacters(in: .whitespaces)
            if let colon = content.firstIndex(of: ":") {
                let name = content[..<colon].trimmingCharacters(in: .whitespaces).lowercased()
                let value = content[content.index(after: colon)...].trimmingCharacters(in: .whitespaces)
                if name.allSatisfy({ $0.isLetter || $0 == "-" }) && !name.isEmpty {
                    guard Self.knownDirectives.contains(name) else {
                        throw fail(
                            index + 1,
                            "unknown directive `\(name)` (known: \(Self.knownDirectives.sorted().joined(separator: ", ")))"
                        )
                    }
                    guard directives[name] == nil else { throw fail(index + 1, "directive `\(name)` given twice") }
                    directives[name] = (value, index + 1)
                }
            }
            index += 1
        }
        var statement = lines[index...].joined(separator: "\n").trimmingCharacters(in: .whitespacesAndNewlines)
        while statement.hasSuffix(";") {
            statement.removeLast()
            statement = statement.trimmingCharacters(in: .whitespacesAndNewlines)
        }
        guard !statement.isEmpty else { throw fail(lines.count, "the file has no statement after its directives") }
        guard let table = directives["table"]?.value, !table.isEmpty else {
            throw fail(1, "missing directive `-- table: NAME`")
        }
        guard let key = directives["key"]?.value, !key.isEmpty else {
            throw fail(1, "missing directive `-- key: COLUMN`")
        }
        if key.contains(",") || key.contains("(") {
            throw fail(directives["key"]!.line, "composite keys are not supported: `key` names one unique column")
        }
        for parameter in ["$1", "$2"] where !statement.contains(parameter) {
            throw fail(
                index + 1,
                "the statement must use \(parameter) (\(parameter == "$1" ? "first" : "last") key of the batch)")
        }
        let defaultName = ((file as NSString).lastPathComponent as NSString).deletingPathExtension
        var definition = BatchedJobDefinition(
            name: directives["name"]?.value ?? defaultName, table: table, key: key, statement: statement)
        definition.statementLine = index + 1
        func integer(_ name: String, _ keyPath: WritableKeyPath<BatchedJobDefinition, Int>, duration: Bool = false)
            throws
        {
            guard let (value, line) = directives[name] else { return }
            guard let parsed = duration ? Self.milliseconds(value) : Int(value), parsed >= 0 else {
                throw fail(
                    line,
                    "`\(name)` must be \(duration ? "a duration such as 500ms, 2s or 1min" : "a whole number"), not `\(value)`"
                )
            }
            definition[keyPath: keyPath] = parsed
        }
        try integer("batch-size", \.batchSize)
        try integer("target-batch-ms", \.targetBatchMs)
        try integer("pause-ms", \.pauseMs)
        try integer("min-batch-size", \.minBatchSize)
        try integer("max-batch-size", \.maxBatchSize)
        try integer("lock-timeout", \.lockTimeoutMs, duration: true)
        try integer("statement-timeout", \.statementTimeoutMs, duration: true)
        try integer("max-attempts", \.maxAttempts)
        try integer("priority", \.priority)
        try integer("max-lock-wait-ms", \.maxLockWaitMs)
        if let (value, line) = directives["parallel"] {
            guard let shards = Int(value), (1...Self.maxParallel).contains(shards) else {
                throw fail(
                    line, "`parallel` must be a whole number of shards from 1 to \(Self.maxParallel), not `\(value)`")
            }
            definition.parallel = shards
        }
        if let (value, line) = directives["health-query"] {
            guard !value.isEmpty, !value.contains(";") else {
                throw fail(line, "`health-query` must be one query, on the directive's line, with no \";\" in it")
            }
            definition.healthQuery = value
        }
        if directives["min-batch-size"] == nil {
            definition.minBatchSize = min(definition.minBatchSize, definition.batchSize)
        }
        if directives["max-batch-size"] == nil {
            definition.maxBatchSize = max(definition.maxBatchSize, definition.batchSize)
        }
        return definition
    }

    /// Every directive a job file may give.
    public static let knownDirectives: Set<String> = [
        "name", "table", "key", "batch-size", "target-batch-ms", "pause-ms", "min-batch-size", "max-batch-size",
        "lock-timeout", "statement-timeout", "max-attempts", "priority", "max-lock-wait-ms", "health-query",
        "parallel",
    ]

    /// The most shards a job may be split into (as `enqueue_batched` checks).
    public static let maxParallel = 256

    /// `500ms`, `2s`, `1min`, or a bare number of milliseconds.
    static func milliseconds(_ text: String) -> Int? {
        let value = text.lowercased().replacingOccurrences(of: " ", with: "")
        for (suffix, factor) in [("ms", 1), ("min", 60_000), ("s", 1000)] where value.hasSuffix(suffix) {
            return Int(value.dropLast(suffix.count)).map { $0 * factor }
        }
        return Int(value)
    }

    /// Checks the definition against the live database and enqueues it, returning the job's id.
    ///
    /// Nothing of the statement runs: it must be one statement (a second one is refused with
    /// its line), and it is parsed and analysed with the extended protocol's Parse and Describe,
    /// which accept exactly one statement and execute nothing, so that a syntax error is
    /// reported at its line in the file. The table it writes is read from its plan (`EXPLAIN`
    /// without `ANALYZE`, see `WriteTargets`) and must be the `-- table:` line's.
    ///
    /// - Parameter resumingFrom: a failed or cancelled batched job whose checkpoint the new job
    ///   continues from (`--resume-from`): the new job's first batch starts after the old one's
    ///   last committed key. The new job is enqueued and takes over the checkpoint in one
    ///   transaction (`<schema>.resume_batched_from`), so a refusal leaves no job behind.
    /// - Parameter warn: told what is accepted but worth a look (`file:line: ...`): a statement
    ///   that writes other tables besides its own.
    public func enqueue(
        file: String, schema: QueueSchema, resumingFrom oldJob: Int64? = nil, on connection: Connection,
        warn: (String) -> Void = { _ in }
    ) async throws -> Int64 {
        if oldJob != nil && parallel > 1 {
            throw BatchedJobError(
                .definition, file: file,
                "--resume-from continues one job from one key: a parallel job (`parallel: \(parallel)`) cannot resume")
        }
        let statements = SQLSplitter.split(statement)
        if statements.count > 1 {
            throw BatchedJobError(
                .definition, file: file, line: statementLine + statements[1].startLine - 1,
                "a batched job holds exactly one statement; a second one starts here")
        }
        if statement.contains(";") {
            throw BatchedJobError(
                .definition, file: file,
                line: statementLine + (statement.prefix { $0 != ";" }.filter { $0 == "\n" }.count),
                "the statement may not contain \";\" (write chr(59) for a semicolon inside a string)")
        }
        let parameters: Int
        do {
            parameters = try await connection.describe(statement).parameterTypes.count
        } catch let error as PostgresError {
            var line = statementLine
            if let position = error.position {
                line += statement.unicodeScalars.prefix(max(position - 1, 0)).filter { $0 == "\n" }.count
            }
            throw BatchedJobError(.refused, file: file, line: line, error.description)
        }
        do {
            if let relation = try await connection.query(
                "SELECT relation FROM \(schema.qualified("batched_target"))($1, $2)", [table, key]
            ).first?.string("relation") {
                try await KeyCollation.check(statement: statement, key: key, relation: relation, on: connection)
                // With other than $1 and $2 it cannot be planned with two keys: enqueue_batched
                // refuses it below, saying so.
                if parameters == 2,
                    let warning = try await WriteTargets.check(
                        statement: statement, table: table, relation: relation, file: file, line: statementLine,
                        on: connection)
                {
                    warn(warning)
                }
            }
        } catch let mismatch as KeyCollation.Mismatch {
            throw BatchedJobError(.refused, file: file, line: statementLine + mismatch.line - 1, mismatch.message)
        } catch let error as PostgresError where error.code == .server {
            throw BatchedJobError(.refused, file: file, error.message)
        }
        let enqueueSQL = """
            SELECT \(schema.qualified("enqueue_batched"))($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13,
                max_lock_wait_ms => $14, health_query => $15, parallel => $16) AS id
            """
        let arguments: [any PostgresParameter] = [
            name, table, key, statement, batchSize, targetBatchMs, pauseMs, minBatchSize, maxBatchSize,
            lockTimeoutMs, statementTimeoutMs, maxAttempts, priority, maxLockWaitMs, healthQuery, parallel,
        ]
        do {
            guard let oldJob else {
                return try await connection.query(enqueueSQL, arguments).first!.int64("id")
            }
            let resumeSQL = "SELECT \(schema.qualified("resume_batched_from"))($1, $2) AS cursor"
            return try await connection.withTransaction { conn in
                let id = try await conn.query(enqueueSQL, arguments).first!.int64("id")
                try await conn.query(resumeSQL, [id, oldJob])
                return id
            }
        } catch let error as PostgresError {
            throw BatchedJobError(.refused, file: file, error.message)
        }
    }
}

/// A batched job that cannot be enqueued, naming its file, and the line where one is known.
public struct BatchedJobError: GodwitError {
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        public let description: String
        private init(_ description: String) { self.description = description }

        /// The file's text is not a batched job (a directive, the statement's shape).
        public static let definition = Code("definition")
        /// The database will not take it: the statement does not parse or plan, the table or
        /// key is not what the file says, a collation differs, or `enqueue_batched` refused it.
        public static let refused = Code("refused")
    }

    public var code: Code
    public var file: String
    /// The 1-based line of the file concerned; nil when the database's answer names no place
    /// in the file (a table that does not exist, a job that cannot be resumed).
    public var line: Int?
    public var message: String

    public init(_ code: Code, file: String, line: Int? = nil, _ message: String) {
        self.code = code
        self.file = file
        self.line = line
        self.message = message
    }

    public var description: String { line.map { "\(file):\($0): \(message)" } ?? "\(file): \(message)" }
}
