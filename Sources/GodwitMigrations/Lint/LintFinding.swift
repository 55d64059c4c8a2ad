import Foundation
import GodwitPostgres

/// A table-level lock mode, strongest last, with what it blocks said in words.
public enum LockMode: String, Sendable, CaseIterable, Comparable, Codable {
    case accessShare = "ACCESS SHARE"
    case rowShare = "ROW SHARE"
    case rowExclusive = "ROW EXCLUSIVE"
    case shareUpdateExclusive = "SHARE UPDATE EXCLUSIVE"
    case share = "SHARE"
    case shareRowExclusive = "SHARE ROW EXCLUSIVE"
    case exclusive = "EXCLUSIVE"
    case accessExclusive = "ACCESS EXCLUSIVE"

    /// The mode as `pg_locks.mode` names it (`AccessExclusiveLock`).
    public init?(pgLocksMode: String) {
        guard let mode = LockMode.allCases.first(where: { $0.pgLocksName == pgLocksMode }) else { return nil }
        self = mode
    }

    var pgLocksName: String {
        rawValue.split(separator: " ").map { $0.prefix(1) + $0.dropFirst().lowercased() }.joined() + "Lock"
    }

    /// What the application cannot do while the lock is held (PostgreSQL's conflict table, in
    /// the terms of what an application does).
    public var blocks: String {
        switch self {
        case .accessExclusive: "reads and writes"
        case .exclusive: "writes and row locks (plain reads go on)"
        case .shareRowExclusive, .share: "writes"
        case .shareUpdateExclusive: "other DDL and VACUUM only"
        case .rowExclusive: "DDL and index builds (the rows it changes stay locked against other writers)"
        case .rowShare: "EXCLUSIVE and ACCESS EXCLUSIVE locks only"
        case .accessShare: "ACCESS EXCLUSIVE locks only"
        }
    }

    private var strength: Int { LockMode.allCases.firstIndex(of: self)! }
    public static func < (lhs: LockMode, rhs: LockMode) -> Bool { lhs.strength < rhs.strength }
}

/// One thing `migrate lint` found in one statement.
public struct LintFinding: Sendable, Equatable, Codable {
    public var rule: String
    public var file: String
    /// 1-based line where the statement starts.
    public var line: Int
    /// The statement's first line.
    public var statement: String
    /// The table concerned, as the statement names it (or as the catalog does).
    public var table: String?
    public var lock: String?
    /// What the lock blocks, in words.
    public var blocks: String?
    /// Whether the table (or index) is rewritten.
    public var rewrite: Bool
    /// `reltuples` of the table in the target database, when a database was given and the
    /// table has been analysed.
    public var estimatedRows: Int64?
    /// `pg_total_relation_size` of the table in the target database.
    public var bytes: Int64?
    public var message: String
    public var recipe: String
    /// For allowed findings: the reason the allow comment gives.
    public var reason: String?
    /// The table's single-column key, for a batched job (`--write-jobs`); not printed.
    public var batchKey: String?
    /// The whole statement, for `--write-jobs`; not printed.
    public var sql: String?
    /// Where in `sql` (Unicode scalars) the batch's `WHERE` goes; nil for the end.
    public var batchWhereOffset: Int?
    /// A name that resolves to the table in the target, for its size.
    var sizeName: String?
    /// What the statement does to a column, for the four findings a `godwit change` replaces
    /// (`rename-column`, `column-type-rewrite`, `drop-column`, `set-not-null`), so that
    /// `--write-changes` can write the change file; not printed.
    public var columnChange: ColumnChange?

    /// A column change read from a statement, as `--write-changes` turns it into a change file.
    public enum ColumnChange: Sendable, Equatable {
        /// `RENAME COLUMN column TO target`.
        case rename(column: String, to: String)
        /// `ALTER COLUMN column TYPE type [USING expression]`.
        case typeChange(column: String, type: String, using: String?)
        /// `DROP COLUMN column`.
        case drop(column: String)
        /// `ALTER COLUMN column SET NOT NULL`.
        case setNotNull(column: String)

        /// The column the statement changes.
        public var column: String {
            switch self {
            case .rename(let column, _), .typeChange(let column, _, _), .drop(let column), .setNotNull(let column):
                column
            }
        }
    }

    enum CodingKeys: String, CodingKey {
        case rule, file, line, statement, table, lock, blocks, rewrite, message, recipe, reason
        case estimatedRows = "estimated_rows"
        case bytes
    }

    public init(
        rule: LintRule, file: String, line: Int, statement: String, table: String? = nil, lock: LockMode? = nil,
        rewrite: Bool = false, message: String
    ) {
        self.rule = rule.id
        self.file = file
        self.line = line
        self.statement = statement
        self.table = table
        self.lock = lock?.rawValue
        self.blocks = lock?.blocks
        self.rewrite = rewrite
        self.message = message
        self.recipe = rule.recipe
    }

    /// Every key is written, `null` included, so the JSON shape never varies.
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(rule, forKey: .rule)
        try container.encode(file, forKey: .file)
        try container.encode(line, forKey: .line)
        try container.encode(statement, forKey: .statement)
        try container.encode(table, forKey: .table)
        try container.encode(lock, forKey: .lock)
        try container.encode(blocks, forKey: .blocks)
        try container.encode(rewrite, forKey: .rewrite)
        try container.encode(estimatedRows, forKey: .estimatedRows)
        try container.encode(bytes, forKey: .bytes)
        try container.encode(message, forKey: .message)
        try container.encode(recipe, forKey: .recipe)
        if let reason { try container.encode(reason, forKey: .reason) }
    }

    public var lintRule: LintRule? { LintRule(id: rule) }

    /// `file:line: rule: message` (with the lock), then the statement, rewrite and size, then the fix.
    public var text: String {
        var lines = ["\(file):\(line): \(rule): \(message)", "  statement: \(statement)"]
        // The message already says the lock and what it blocks.
        var facts = ["rewrite: \(rewrite ? "yes" : "no")"]
        if let estimatedRows { facts.append("~\(estimatedRows) rows") }
        if let bytes { facts.append(ByteSize.description(bytes)) }
        lines.append("  " + facts.joined(separator: "; "))
        lines.append("  fix: \(recipe)")
        return lines.joined(separator: "\n")
    }
}

/// What a lint found, and how.
public struct LintReport: Sendable, Equatable {
    public enum Mode: String, Sendable, Codable {
        /// The migrations ran in a scratch copy of the target's schema and what PostgreSQL did
        /// (locks, rewrites, validations) decided the findings.
        case trace
        /// Statement text only (no database given).
        case `static`
        /// Statement text, with the target's catalog saying which tables exist and how big
        /// they are (the cheap pre-run check; nothing runs).
        case catalog
    }

    public var mode: Mode
    /// Findings no allow comment accepted: any of them makes `lint` exit 1.
    public var findings: [LintFinding]
    /// Findings an allow comment accepted, each with its reason.
    public var allowed: [LintFinding]
    /// Allow comments that accepted nothing (misplaced, or stale since the statement changed):
    /// reported so that they can be removed, without failing the lint.
    public var unusedAllows: [UnusedAllow] = []

    /// What the trace did not run, and why: a migration that acts outside the database, or a
    /// statement the trace's restricted role may not run. Such statements are judged by their
    /// text. Notes do not fail the lint.
    public var notes: [Note] = []

    /// A `-- godwit:allow RULE reason` comment that accepted no finding.
    public struct UnusedAllow: Sendable, Equatable {
        public var file: String
        public var line: Int
        public var rule: String
    }

    /// Something to know about how a statement was judged, which is not a finding.
    public struct Note: Sendable, Equatable, Codable {
        public var file: String
        /// 1-based line of the statement (of the migration's first statement for a whole file).
        public var line: Int
        public var message: String

        /// `file:line: message`.
        public var text: String { "\(file):\(line): \(message)" }
    }

    public init(mode: Mode, findings: [LintFinding], allowed: [LintFinding]) {
        self.mode = mode
        self.findings = findings
        self.allowed = allowed
    }
}
