import Foundation
import GodwitPostgres
import Logging

/// Lints migrations for changes that are unsafe on a live database: statements that hold a
/// blocking lock for long (rewrites, scans, validations, non-concurrent index builds, work
/// done under an exclusive lock) or that break the application version still running.
///
/// Three ways to lint, from most to least thorough:
///
/// - ``lint(_:databaseURL:)`` with a database: the **trace**. The migrations run in a scratch
///   database beside the target that has its schema and no data, and what PostgreSQL did
///   there (locks, relfilenode changes, constraints added validated, tables dropped) decides
///   the findings, so there are no false alarms on an index of a table created in the same
///   migration, on `varchar` widening or on a constant default. The migrations run as a role
///   made for the lint that owns the scratch database and nothing else (``TraceRole``), never
///   with the caller's rights; a migration that acts outside the database (a program, a
///   server file, `ALTER SYSTEM`, dblink, ending sessions) is not run at all, and a statement
///   the role may not run is noted and judged by its text. Needs CREATEDB and CREATEROLE (or
///   a superuser), `pg_dump` and `psql`. This is `godwit migrate lint -D URL`.
/// - ``lint(_:on:)``: the **catalog** check, cheap enough to run before every `migrate run`:
///   the rules read the statements' text, and the target's catalog says which tables exist,
///   which `CHECK (col IS NOT NULL)` are validated, and how big tables are. Nothing runs,
///   nothing is created; an existing connection is enough.
/// - ``lint(_:databaseURL:)`` without a database, or ``lintStatically(_:)``: the **static**
///   rules alone, on the text.
///
/// The target is never changed: the trace sends it catalog reads, the schema-only dump, and
/// the cluster-level statements that make and remove the scratch copy and its role (`CREATE`,
/// `ALTER` and `DROP DATABASE`, `CREATE`, `GRANT` and `DROP ROLE`), none of them in the target.
public struct MigrationLinter: Sendable {
    public let source: MigrationSource
    /// How long the first connection to the target is retried while the server is unreachable.
    public var connectTimeout: Duration?
    /// Where the trace names, at debug level, the scratch database and role it is about to
    /// create (`godwit_lint_<pid>_<random>`), so that whoever reads the log can check they are gone.
    public var logger: Logger
    /// The trace's `search_path`, as the session that will apply the migrations has it; nil
    /// takes the target's (a new session's, with the role's and database's settings).
    public var searchPath: String?
    /// Schemas the trace makes in its scratch database before the first migration, as
    /// sqlx.toml's `create-schemas` (or a fleet's schema target) makes them before migrating.
    public var createSchemas: [String] = []

    public init(
        source: MigrationSource, connectTimeout: Duration? = nil, logger: Logger = Logger(label: "godwit.lint")
    ) {
        self.source = source
        self.connectTimeout = connectTimeout
        self.logger = logger
    }

    // MARK: - Which migrations

    /// The source's migrations not yet applied to the database (not in `_sqlx_migrations`;
    /// all of them when the ledger does not exist), read with catalog queries only.
    public func pendingMigrations(on connection: Connection) async throws -> [Migration] {
        let applied = Set(try await Ledger.applied(on: connection).map(\.version))
        return source.upMigrations.filter { !applied.contains($0.version) }
    }

    /// A migration file named by path, which need not be in the source folder nor follow
    /// sqlx's naming (its version is then 0). A relative path is opened inside `base`, and
    /// named as given.
    public static func migration(atPath path: String, relativeTo base: WorkingDirectory = .process) throws -> Migration
    {
        guard let data = FileManager.default.contents(atPath: base.resolve(path)) else {
            throw MigrationError(.invalidSource, "\(path): cannot read the file")
        }
        let bytes = [UInt8](data)
        guard String(validating: bytes, as: UTF8.self) != nil else {
            throw MigrationError(.invalidSource, "\(path): the file is not valid UTF-8")
        }
        let name = (path as NSString).lastPathComponent
        let parsed = (try? MigrationSource.parseFileName(name, path: path)) ?? nil
        return Migration(
            version: parsed?.version ?? 0, description: parsed?.description ?? name, kind: parsed?.kind ?? .simple,
            contents: bytes, path: path)
    }

    // MARK: - Linting

    /// Traces `migrations` against the target at `databaseURL` (see the type's
    /// documentation), or applies the static rules when `databaseURL` is nil.
    public func lint(_ migrations: [Migration], databaseURL: String?) async throws -> LintReport {
        guard let databaseURL else { return try await lintByText(try prepare(migrations), catalog: nil) }
        let files = try prepare(migrations)
        return try await Connection.withConnection(databaseURL, retryingFor: connectTimeout) { target in
            var report = try await trace(files, targetURL: databaseURL, target: target)
            try await addSizes(to: &report, from: target)
            return report
        }
    }

    /// The cheap pre-run check: static rules informed by the target's catalog, on an
    /// existing connection. Sends only catalog SELECTs; creates nothing and runs nothing.
    public func lint(_ migrations: [Migration], on connection: Connection) async throws -> LintReport {
        var report = try await lintByText(try prepare(migrations), catalog: connection)
        try await addSizes(to: &report, from: connection)
        return report
    }

    /// The static rules alone: the statements' text, nothing else.
    public func lintStatically(_ migrations: [Migration]) async throws -> LintReport {
        try await lintByText(try prepare(migrations), catalog: nil)
    }

    // MARK: - Implementation

    private struct PreparedFile {
        var migration: Migration
        var statements: [(statement: SQLStatement, shape: StatementShape)]
        var allows: [Int: AllowComment]
        var lines: [Substring]
        var inTransaction: Bool { !migration.noTransaction }
    }

    private func prepare(_ migrations: [Migration]) throws -> [PreparedFile] {
        try migrations.map { migration in
            let text = migration.sql
            return PreparedFile(
                migration: migration, statements: SQLSplitter.split(text).map { ($0, StatementShape($0.text)) },
                allows: try AllowComment.parse(text, path: migration.path), lines: AllowComment.lines(text))
        }
    }

    /// Follows one of the file's own transaction statements (`BEGIN`, `COMMIT`, ...), which is
    /// never sent anywhere: adds the finding when it ends the migration's transaction early,
    /// and in the trace a note for a savepoint statement the trace leaves out. Returns what it
    /// changed, so that the caller knows which locks are still held.
    private func follow(
        _ control: TransactionControl, at position: Int, in file: PreparedFile, transaction: inout FileTransaction,
        traced: Bool, report: inout LintReport
    ) -> FileTransaction.Change {
        let statement = file.statements[position].statement
        let endsMigrationTransaction =
            transaction.runsInMigrationTransaction && transaction.ended == nil && control.endsTransaction
        let change = transaction.apply(control, line: statement.startLine)
        if endsMigrationTransaction {
            let following = file.statements[(position + 1)...].filter { $0.shape.transactionControl == nil }.count
            if let finding = LintRules.endedTransaction(
                control, path: file.migration.path, statement: statement, following: following)
            {
                sort([finding], of: statement, in: file, into: &report)
            }
        }
        if traced, control == .savepoint || control == .twoPhase {
            report.notes.append(
                LintReport.Note(
                    file: file.migration.path, line: statement.startLine,
                    message:
                        "not run in the scratch database, where the migrations run in one transaction of the lint's own that is never committed; a ROLLBACK TO it would make is not followed"
                ))
        }
        return change
    }

    /// Splits a statement's findings into those an allow comment accepts and the rest.
    private func sort(
        _ found: [LintFinding], of statement: SQLStatement, in file: PreparedFile, into report: inout LintReport
    ) {
        let allows = AllowComment.applying(to: statement.startLine, in: file.lines, allows: file.allows)
        for var finding in found {
            if let allow = allows.first(where: { $0.rule.id == finding.rule }) {
                finding.reason = allow.reason
                report.allowed.append(finding)
            } else {
                report.findings.append(finding)
            }
        }
    }

    /// Lists the allow comments of `files` that accepted no finding.
    private func noteUnusedAllows(_ files: [PreparedFile], in report: inout LintReport) {
        for file in files {
            var used: Set<Int> = []
            for allowed in report.allowed where allowed.file == file.migration.path {
                for allow in AllowComment.applying(to: allowed.line, in: file.lines, allows: file.allows)
                where allow.rule.id == allowed.rule {
                    used.insert(allow.line)
                }
            }
            for (line, allow) in file.allows.sorted(by: { $0.key < $1.key }) where !used.contains(line) {
                report.unusedAllows.append(
                    LintReport.UnusedAllow(file: file.migration.path, line: line, rule: allow.rule.id))
            }
        }
    }

    /// Whether each relation named (as written in a statement) exists, in one catalog query.
    private static func existing(_ names: [String], on catalog: Connection) async throws -> [String: Bool] {
        guard !names.isEmpty else { return [:] }
        let result = try await catalog.query(
            """
            SELECT n AS name, pg_catalog.to_regclass(n) IS NOT NULL AS present
            FROM pg_catalog.unnest($1::pg_catalog.text[]) AS n
            """, [PostgresArray.literal(names)])
        var found: [String: Bool] = [:]
        for row in result.rows { found[try row.string("name")] = try row.bool("present") }
        return found
    }

    private func lintByText(_ files: [PreparedFile], catalog: Connection?) async throws -> LintReport {
        var report = LintReport(mode: catalog == nil ? .static : .catalog, findings: [], allowed: [])
        var created: Set<String> = []
        /// `table.column` with a validated `CHECK (col IS NOT NULL)` from these migrations.
        var notNullChecks: Set<String> = []
        /// `table.constraint` to its column, for each NOT VALID `CHECK (col IS NOT NULL)` they add.
        var notValidChecks: [String: String] = [:]
        /// By table, the constraints they validate (for those the catalog has NOT VALID).
        var validatedNames: [String: Set<String>] = [:]
        /// `table.column` for each column they add.
        var addedColumns: Set<String> = []
        /// `table.column` to the type a statement linted so far changed it to (catalog mode).
        var changedTypes: [String: String] = [:]
        // Which of the relations the files name exist before they run, asked of the catalog
        // once for all of them.
        var present: [String: Bool] = [:]
        if let catalog {
            var names: [String] = []
            for file in files {
                for (_, shape) in file.statements {
                    if let table = shape.table { names.append(table.written) }
                    if case .dropTable(let dropped) = shape.command { names += dropped.map(\.written) }
                }
            }
            present = try await Self.existing(Array(Set(names)), on: catalog)
        }
        func preExisting(_ name: RelationName) async throws -> Bool {
            if created.contains(name.key) { return false }
            guard let catalog else { return true }
            if let known = present[name.written] { return known }
            return try await Self.existing([name.written], on: catalog)[name.written] ?? false
        }
        for file in files {
            var exclusiveHeld: String?
            var transaction = FileTransaction(runsInMigrationTransaction: file.inTransaction)
            for (position, (statement, shape)) in file.statements.enumerated() {
                if let control = shape.transactionControl {
                    let change = follow(
                        control, at: position, in: file, transaction: &transaction, traced: false, report: &report)
                    if change != .none { exclusiveHeld = nil }
                    continue
                }
                let tablePreExisting = if let table = shape.table { try await preExisting(table) } else { false }
                var facts = StatementFacts(
                    path: file.migration.path, statement: statement, shape: shape, inTransaction: transaction.open,
                    tablePreExisting: tablePreExisting, notNullProven: false, exclusiveHeldOn: exclusiveHeld,
                    sizeName: shape.table?.written)
                let setNotNull = shape.alterActions.compactMap { action -> String? in
                    if case .setNotNull(let column) = action { return column }
                    return nil
                }
                if let table = shape.table, !setNotNull.isEmpty {
                    let unproven = setNotNull.filter { !notNullChecks.contains("\(table.key).\($0)") }
                    facts.notNullProven = unproven.isEmpty
                    if !facts.notNullProven, let catalog {
                        // A check the catalog has NOT VALID counts once these migrations validated it.
                        facts.notNullProven = try await MigrationTrace.hasValidatedNotNullChecks(
                            table: table.written, columns: unproven, on: catalog, byOID: false,
                            validatedNames: (validatedNames[table.key] ?? []).sorted())
                    }
                }
                if let table = shape.table, tablePreExisting {
                    // A column these migrations added (and the target did not already have, as
                    // ADD COLUMN IF NOT EXISTS allows) is no running application's.
                    for case .dropColumn(let column) in shape.alterActions
                    where addedColumns.contains("\(table.key).\(column)") {
                        if let catalog,
                            try await MigrationTrace.hasColumn(table: table.written, column: column, on: catalog)
                        {
                            continue
                        }
                        facts.newColumns.insert(column)
                    }
                }
                if let catalog, let table = shape.table, tablePreExisting {
                    for case .alterType(let column, let type, let using) in shape.alterActions {
                        // The type an earlier statement of these migrations gave it, else the catalog's.
                        let current: String? =
                            if let changed = changedTypes["\(table.key).\(column)"] {
                                changed
                            } else {
                                try await catalog.query(
                                    """
                                    SELECT format_type(atttypid, atttypmod) AS type FROM pg_catalog.pg_attribute
                                    WHERE attrelid = to_regclass($1) AND attname = $2 AND attnum > 0 AND NOT attisdropped
                                    """, [table.written, column]
                                ).first?["type"]
                            }
                        changedTypes["\(table.key).\(column)"] = type
                        if using == nil, let current,
                            let rewrites = LintRules.stringTypeChangeRewrites(from: current, to: type)
                        {
                            facts.typeChangeRewrites[column] = rewrites
                        }
                    }
                }
                if case .dropTable(let names) = shape.command {
                    for name in names where try await preExisting(name) {
                        facts.droppedPreExisting.append(name.written)
                    }
                }
                if let catalog, case .update(hasWhere: false) = shape.command, let table = shape.table {
                    facts.batchKey = try await MigrationTrace.singleColumnKey(
                        of: table.written, byOID: false, on: catalog)
                }
                sort(LintRules.evaluate(facts), of: statement, in: file, into: &report)

                if case .createTable = shape.command, let table = shape.table { created.insert(table.key) }
                if let table = shape.table {
                    for column in shape.notNullCheckColumns { notNullChecks.insert("\(table.key).\(column)") }
                    for check in shape.notValidNotNullChecks {
                        notValidChecks["\(table.key).\(check.name)"] = check.column
                    }
                    for name in shape.validatedConstraints {
                        if let column = notValidChecks.removeValue(forKey: "\(table.key).\(name)") {
                            notNullChecks.insert("\(table.key).\(column)")
                        }
                        validatedNames[table.key, default: []].insert(name)
                    }
                    for case .addColumn(let column, _, _, _) in shape.alterActions {
                        addedColumns.insert("\(table.key).\(column)")
                    }
                    if transaction.open, exclusiveHeld == nil, tablePreExisting, LintRules.takesAccessExclusive(shape) {
                        exclusiveHeld = table.written
                    }
                }
            }
        }
        noteUnusedAllows(files, in: &report)
        return report
    }

    /// The trace's role may not run the statement.
    private static let insufficientPrivilege = SQLState.insufficientPrivilege
    /// Something the statement names does not exist (a table, column, object, function or
    /// schema), as happens when an earlier statement that would have made it was not run.
    private static let undefinedObject: Set<SQLState> = [
        .undefinedTable, .undefinedColumn, .undefinedObject, .undefinedFunction, .invalidSchemaName,
    ]
    /// "cannot run inside a transaction block".
    private static let activeTransaction = SQLState.activeSqlTransaction

    private func trace(_ files: [PreparedFile], targetURL: String, target: Connection) async throws -> LintReport {
        try await MigrationTrace.withScratch(
            targetURL: targetURL, target: target, searchPath: searchPath, createSchemas: createSchemas, logger: logger
        ) { trace in
            var report = LintReport(mode: .trace, findings: [], allowed: [])
            let connection = trace.connection
            /// Whether something was left out of the scratch database (a file not run, a
            /// statement refused): a later statement may miss what it would have made.
            var leftOut = false
            try await connection.execute("BEGIN")
            do {
                for file in files {
                    // A migration that acts outside the database is not run at all, not even its
                    // other statements: what it would do is judged by its text.
                    let outside = Set(file.statements.flatMap { $0.shape.outsideEffects.map(\.rule.id) })
                    if !outside.isEmpty {
                        report.notes.append(
                            LintReport.Note(
                                file: file.migration.path, line: file.statements.first?.statement.startLine ?? 1,
                                message:
                                    "not run in the scratch database, since it acts outside the database (\(outside.sorted().joined(separator: ", "))): its statements are judged by their text"
                            ))
                        var exclusiveHeld: String?
                        var transaction = FileTransaction(runsInMigrationTransaction: file.inTransaction)
                        for (position, (statement, shape)) in file.statements.enumerated() {
                            if let control = shape.transactionControl {
                                let change = follow(
                                    control, at: position, in: file, transaction: &transaction, traced: false,
                                    report: &report)
                                if change != .none { exclusiveHeld = nil }
                                continue
                            }
                            let facts = try await textFacts(
                                statement, shape, in: file, inTransaction: transaction.open, trace: trace,
                                exclusiveHeldOn: exclusiveHeld)
                            sort(LintRules.evaluate(facts), of: statement, in: file, into: &report)
                            if transaction.open, exclusiveHeld == nil, facts.tablePreExisting,
                                LintRules.takesAccessExclusive(shape)
                            {
                                exclusiveHeld = shape.table?.written
                            }
                        }
                        leftOut = true
                        continue
                    }
                    var baseline = file.inTransaction ? try await trace.locks() : nil
                    // Pre-existing tables this migration has taken ACCESS EXCLUSIVE on. pg_locks
                    // cannot show a lock an earlier migration of the same (rolled-back)
                    // transaction already holds, so a statement that by its text takes it on
                    // such a table counts as taking it.
                    var heldInMigration: [Int64] = []
                    var transaction = FileTransaction(runsInMigrationTransaction: file.inTransaction)
                    for (position, (statement, shape)) in file.statements.enumerated() {
                        if let control = shape.transactionControl {
                            // Never sent: the scratch database's one transaction is never
                            // committed. Locks the file's transaction took are released here.
                            switch follow(
                                control, at: position, in: file, transaction: &transaction, traced: true,
                                report: &report)
                            {
                            case .none: break
                            case .opened, .restarted:
                                baseline = try await trace.locks()
                                heldInMigration = []
                            case .closed:
                                baseline = nil
                                heldInMigration = []
                            }
                            continue
                        }
                        var observation: TraceObservation
                        var failsInTransaction = false
                        var notRun: String?
                        let sql = shape.needsNoTransaction ? shape.withoutConcurrently(statement.text) : statement.text
                        var judgedByText = sql == nil
                        if case .vacuum = shape.command { judgedByText = true }
                        if case .cluster = shape.command { judgedByText = true }
                        if judgedByText {
                            observation = try await trace.resolveOnly(shape)
                        } else {
                            /// The trace's own savepoint statements; a failure names the statement.
                            func savepoint(_ sql: String) async throws {
                                do {
                                    try await connection.execute(sql)
                                } catch let error as PostgresError {
                                    throw MigrationError(
                                        .execution,
                                        "\(file.migration.path):\(statement.startLine): migrate lint's trace could not \(sql) after this statement: \(error.message)",
                                        underlying: error)
                                }
                            }
                            try await savepoint("SAVEPOINT godwit_lint")
                            do {
                                observation = try await trace.observe(
                                    statement, sql: sql ?? statement.text, shape: shape, path: file.migration.path,
                                    baseline: baseline)
                                try await savepoint("RELEASE SAVEPOINT godwit_lint")
                            } catch let error as MigrationError
                                where error.underlying?.sqlState == Self.activeTransaction
                            {
                                // "cannot run inside a transaction block": PostgreSQL says so itself.
                                try await savepoint("ROLLBACK TO SAVEPOINT godwit_lint")
                                try await savepoint("RELEASE SAVEPOINT godwit_lint")
                                observation = try await trace.resolveOnly(shape)
                                failsInTransaction = true
                            } catch let error as MigrationError
                                where error.underlying?.sqlState == Self.insufficientPrivilege
                                || leftOut && (error.underlying?.sqlState).map(Self.undefinedObject.contains) == true
                            {
                                try await savepoint("ROLLBACK TO SAVEPOINT godwit_lint")
                                try await savepoint("RELEASE SAVEPOINT godwit_lint")
                                observation = try await trace.resolveOnly(shape)
                                let why = error.underlying.map(\.message) ?? error.message
                                notRun =
                                    error.underlying?.sqlState == Self.insufficientPrivilege
                                    ? "not run in the scratch database, where the migrations run as a role that owns that database and nothing else: \(why); judged by its text"
                                    : "failed in the scratch database, where something an earlier statement would have made is missing: \(why); judged by its text"
                            }
                        }
                        let tableOID = observation.tableOID
                        var facts: StatementFacts
                        if let notRun {
                            report.notes.append(
                                LintReport.Note(file: file.migration.path, line: statement.startLine, message: notRun))
                            leftOut = true
                            facts = try await textFacts(
                                statement, shape, in: file, inTransaction: transaction.open, trace: trace,
                                exclusiveHeldOn: heldInMigration.first.flatMap { trace.preExisting[$0]?.name })
                        } else {
                            facts = StatementFacts(
                                path: file.migration.path, statement: statement, shape: shape,
                                inTransaction: transaction.open,
                                tablePreExisting: tableOID.map { trace.preExisting[$0] != nil } ?? false,
                                notNullProven: observation.notNullProven,
                                exclusiveHeldOn: (observation.heldExclusive + heldInMigration).first.flatMap {
                                    trace.preExisting[$0]?.name
                                },
                                trace: observation, sizeName: tableOID.flatMap { observation.qualifiedNames[$0] },
                                batchKey: observation.batchKey)
                            facts.failsInTransaction = failsInTransaction
                            if let oid = tableOID, let table = trace.preExisting[oid] {
                                // A column the target does not have was added by these migrations.
                                for case .dropColumn(let column) in shape.alterActions {
                                    if try await !MigrationTrace.hasColumn(
                                        table: table.qualified, column: column, on: target)
                                    {
                                        facts.newColumns.insert(column)
                                    }
                                }
                            }
                        }
                        sort(LintRules.evaluate(facts), of: statement, in: file, into: &report)
                        if let baseline, observation.executed, notRun == nil {
                            let tables = observation.acquired.filter { oid, mode in
                                mode == .accessExclusive
                                    && ["r", "p", "m"].contains(trace.preExisting[oid]?.kind ?? "")
                            }.map(\.key)
                            heldInMigration += tables.filter { !heldInMigration.contains($0) }
                            if let oid = tableOID, trace.preExisting[oid] != nil, baseline[oid] == .accessExclusive,
                                LintRules.takesAccessExclusive(shape), !heldInMigration.contains(oid)
                            {
                                heldInMigration.append(oid)
                            }
                        }
                    }
                }
            } catch {
                await connection.cleanup("ROLLBACK")
                throw error
            }
            await connection.cleanup("ROLLBACK")
            noteUnusedAllows(files, in: &report)
            return report
        }
    }

    /// The facts of a statement the trace did not run, from its text, with the scratch
    /// database's catalog (as the statements before it left it) saying which tables are the
    /// target's, which `CHECK (col IS NOT NULL)` are validated, and the table's key: what the
    /// catalog check reads from the target.
    private func textFacts(
        _ statement: SQLStatement, _ shape: StatementShape, in file: PreparedFile, inTransaction: Bool,
        trace: MigrationTrace, exclusiveHeldOn: String?
    ) async throws -> StatementFacts {
        func preExisting(_ name: RelationName) async throws -> MigrationTrace.Relation? {
            let row = try await trace.connection.query("SELECT to_regclass($1)::int8 AS oid", [name.written]).first
            return row?["oid"].flatMap { Int64($0) }.flatMap { trace.preExisting[$0] }
        }
        let table = if let name = shape.table { try await preExisting(name) } else { nil as MigrationTrace.Relation? }
        var facts = StatementFacts(
            path: file.migration.path, statement: statement, shape: shape, inTransaction: inTransaction,
            tablePreExisting: table != nil, notNullProven: false, exclusiveHeldOn: exclusiveHeldOn,
            sizeName: table?.qualified ?? shape.table?.written)
        if case .dropTable(let names) = shape.command {
            for name in names {
                if let dropped = try await preExisting(name) { facts.droppedPreExisting.append(dropped.name) }
            }
        }
        guard let table else { return facts }
        let setNotNull = shape.alterActions.compactMap { action -> String? in
            if case .setNotNull(let column) = action { return column }
            return nil
        }
        if !setNotNull.isEmpty {
            facts.notNullProven = try await MigrationTrace.hasValidatedNotNullChecks(
                table: table.qualified, columns: setNotNull, on: trace.connection, byOID: false)
        }
        if case .update(hasWhere: false) = shape.command {
            facts.batchKey = try await MigrationTrace.singleColumnKey(
                of: table.qualified, byOID: false, on: trace.connection)
        }
        return facts
    }

    /// Fills in `estimated_rows` (`reltuples`, when the table has been analysed) and `bytes`
    /// (`pg_total_relation_size`) from the target's catalog.
    private func addSizes(to report: inout LintReport, from target: Connection) async throws {
        var sizes: [String: (rows: Int64?, bytes: Int64?)] = [:]
        func fill(_ finding: inout LintFinding) async throws {
            guard let name = finding.sizeName else { return }
            if sizes[name] == nil {
                let row = try await target.query(
                    """
                    SELECT CASE WHEN c.reltuples < 0 THEN NULL ELSE c.reltuples::int8 END AS rows,
                           pg_total_relation_size(c.oid)::int8 AS bytes
                    FROM pg_class c WHERE c.oid = to_regclass($1) AND c.relkind IN ('r', 'p', 'm')
                    """, [name]
                ).first
                sizes[name] = (row?["rows"].flatMap { Int64($0) }, row?["bytes"].flatMap { Int64($0) })
            }
            finding.estimatedRows = sizes[name]?.rows
            finding.bytes = sizes[name]?.bytes
        }
        for index in report.findings.indices { try await fill(&report.findings[index]) }
        for index in report.allowed.indices { try await fill(&report.allowed[index]) }
    }
}
