import Foundation
import GodwitPostgres
import GodwitQueue

/// A `ChangeDefinition` resolved against the live catalog: the table, its key, the types of
/// the columns involved, and which columns the sync trigger treats as the old side.
///
/// Resolution reads the catalog and parses SQL with the extended protocol's Parse and Describe
/// (`Connection.describe`) only: no statement of the change file is ever executed. Each
/// refusal is one `ChangeError` naming the file and the directive's line.
///
/// Names resolve with a pinned `search_path`: an unqualified `-- table:` is looked up in
/// `public`; types, expressions and referenced tables resolve through `pg_catalog, <the
/// table's schema>, pg_temp`, the path the sync function is created with, so that what was
/// checked is what runs.
public struct ChangePlan: Sendable {
    /// A live column of the table.
    public struct Column: Sendable, Equatable {
        public var name: String
        /// As `format_type` shows it (`character varying(20)`).
        public var type: String
        public var notNull: Bool
        public var generated: Bool
        /// The column's default as SQL, when evaluating it again gives the same value within the
        /// transaction (no volatile function or operator, built in or the user's; a sequence's
        /// `nextval` is one): the trigger tells an INSERT that left the column to its default
        /// from one that wrote it. Read from the default's node tree, since `pg_depend` does not
        /// record built-in functions such as `gen_random_uuid()` or `clock_timestamp()`.
        public var defaultExpression: String? = nil
        /// The column's default as SQL, whatever it calls: what a moved default is put back as.
        public var storedDefault: String? = nil
    }

    /// A `drop-column` with an expression: the old-side column new writers keep right.
    public struct SyncedDrop: Sendable, Equatable {
        public var name: String
        public var type: String
        public var expression: String
    }

    /// A foreign key with its referenced table resolved and quoted.
    public struct ResolvedForeignKey: Sendable, Equatable {
        public var column: String
        public var referencedTable: String
        public var referencedColumn: String
    }

    public var definition: ChangeDefinition
    public var file: String
    /// The table's schema and name, unquoted.
    public var schemaName: String
    public var tableName: String
    public var tableOID: Int64
    /// The single-column key the backfill and the verification walk.
    public var key: String
    /// The table's live columns, in their order.
    public var columns: [Column]
    /// The drop-columns with an expression, with their live types.
    public var syncedDrops: [SyncedDrop]
    /// The columns the sync trigger watches as the old side: those the add expressions read,
    /// then the synced drops, in the table's order.
    public var oldSide: [String]
    /// Every column the change writes (adds, drops, constrains) and every one it reads.
    public var writes: [String]
    public var reads: [String]
    public var foreignKeys: [ResolvedForeignKey]

    /// `"public"."media"`.
    public var qualifiedTable: String { quoteIdentifier(schemaName) + "." + quoteIdentifier(tableName) }
    public var names: ChangeNames { ChangeNames(change: definition.name, table: tableName) }
    /// The synced drops whose default cannot be evaluated again to tell an INSERT that left the
    /// column to it from one that wrote it (a volatile function, a sequence). Start moves each
    /// such default into the sync trigger for the change's life (`DROP DEFAULT`, and the trigger
    /// applies it to an INSERT that writes neither side), and abort puts it back.
    public var movedDefaults: [Column] {
        let dropped = Set(syncedDrops.map(\.name))
        return columns.filter { dropped.contains($0.name) && $0.storedDefault != nil && $0.defaultExpression == nil }
    }

    /// Whether the change keeps two sides in step (it adds a column): a trigger and a backfill.
    public var syncs: Bool { !definition.addedColumns.isEmpty }

    /// The key types a batched job walks (as `batched_target_of_table` accepts them).
    static let keyTypes: Set<String> = [
        "smallint", "integer", "bigint", "uuid", "text", "character varying", "timestamp with time zone",
    ]

    /// Resolves `definition` (read from `file`) on `connection`, which must be inside a
    /// transaction: the resolution pins `search_path` with `SET LOCAL` and wraps every parse
    /// that may fail in a savepoint. `schema` is where `change_records` lives (checked for
    /// a change of the same name and for in-flight changes on overlapping columns, when it is
    /// installed).
    public static func resolve(
        _ definition: ChangeDefinition, file: String, schema: QueueSchema, on connection: Connection
    ) async throws -> ChangePlan {
        var resolver = Resolver(definition: definition, file: file, connection: connection)
        return try await resolver.resolve(schema: schema)
    }
}

/// The steps of `ChangePlan.resolve`, each refusing with the line of the directive concerned.
private struct Resolver {
    let definition: ChangeDefinition
    let file: String
    let connection: Connection

    func refuse(_ line: Int, _ message: String) -> ChangeError {
        ChangeError(.refused, file: file, line: line, message)
    }

    mutating func resolve(schema: QueueSchema) async throws -> ChangePlan {
        try await connection.query("SELECT pg_catalog.set_config('search_path', 'pg_catalog, pg_temp', true)")
        try await checkName(schema: schema)
        let (schemaName, tableName, oid) = try await table(definition.table, line: definition.tableLine)
        try await connection.query(
            "SELECT pg_catalog.set_config('search_path', $1, true)",
            ["pg_catalog, \(quoteIdentifier(schemaName)), pg_temp"])
        let qualified = quoteIdentifier(schemaName) + "." + quoteIdentifier(tableName)
        let alias = quoteIdentifier(tableName)
        var columns = try await connection.query(
            """
            SELECT a.attname::text AS name, pg_catalog.format_type(a.atttypid, a.atttypmod) AS type,
                   a.attnotnull AS not_null, a.attgenerated <> '' AS generated,
                   CASE WHEN a.attgenerated = '' AND NOT EXISTS (
                       SELECT 1
                       FROM pg_catalog.regexp_matches(d.adbin::text, ':(funcid|opno) ([0-9]+)', 'g') AS m(parts)
                       LEFT JOIN pg_catalog.pg_operator o ON m.parts[1] = 'opno' AND o.oid = m.parts[2]::oid
                       JOIN pg_catalog.pg_proc p
                           ON p.oid = CASE WHEN m.parts[1] = 'opno' THEN o.oprcode::oid ELSE m.parts[2]::oid END
                       WHERE p.provolatile = 'v')
                   THEN pg_catalog.pg_get_expr(d.adbin, d.adrelid) END AS default_sql
            FROM pg_catalog.pg_attribute a
            LEFT JOIN pg_catalog.pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
            WHERE a.attrelid = $1::oid AND a.attnum > 0 AND NOT a.attisdropped
            ORDER BY a.attnum
            """, [oid]
        ).rows.map {
            ChangePlan.Column(
                name: try $0.string("name"), type: try $0.string("type"), notNull: try $0.bool("not_null"),
                generated: try $0.bool("generated"),
                defaultExpression: $0["default_sql"])
        }
        // Every default as SQL with every name qualified (read with pg_catalog alone on the
        // path): what abort puts back, in whatever session it runs.
        try await connection.query("SELECT pg_catalog.set_config('search_path', 'pg_catalog', true)")
        let storedDefaults = try await connection.query(
            """
            SELECT a.attname::text AS name, pg_catalog.pg_get_expr(d.adbin, d.adrelid) AS stored_default
            FROM pg_catalog.pg_attribute a
            JOIN pg_catalog.pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
            WHERE a.attrelid = $1::oid AND a.attnum > 0 AND NOT a.attisdropped AND a.attgenerated = ''
            """, [oid]
        ).rows.reduce(into: [String: String]()) { $0[$1["name"] ?? ""] = $1["stored_default"] }
        try await connection.query(
            "SELECT pg_catalog.set_config('search_path', $1, true)",
            ["pg_catalog, \(quoteIdentifier(schemaName)), pg_temp"])
        for index in columns.indices { columns[index].storedDefault = storedDefaults[columns[index].name] }
        let byName = Dictionary(columns.map { ($0.name, $0) }, uniquingKeysWith: { first, _ in first })
        let key = try await self.key(oid: oid, columns: byName, table: qualified)

        // Added columns: new, a type that parses, an expression over the old columns that casts to it.
        var reads: Set<String> = []
        var addReads: Set<String> = []
        for added in definition.addedColumns {
            guard byName[added.name] == nil else {
                throw refuse(added.line, "column \(added.name) already exists in \(qualified)")
            }
            try checkFragment(added.type, what: "the type of \(added.name)", line: added.line)
            try checkFragment(added.expression, what: "the expression of \(added.name)", line: added.line)
            if let error = try await describeError("SELECT NULL::\(added.type)") {
                throw refuse(added.line, "type `\(added.type)` of \(added.name) does not parse: \(error)")
            }
            let source = "\(qualified) AS \(alias)"
            if let error = try await describeError(
                "SELECT (\(added.expression))::\(added.type) FROM \(source)", columns: 1)
            {
                throw refuse(
                    added.line,
                    "the expression of \(added.name) does not type-check over the columns of \(qualified) as \(added.type): \(error)"
                )
            }
            let used = try await columnsRead(
                by: "(\(added.expression))::\(added.type)", among: columns.map(\.name), extra: [], alias: alias,
                table: qualified)
            for name in used where byName[name]?.generated == true {
                throw refuse(
                    added.line,
                    "column \(name) is generated: it cannot be a side the trigger writes; change the columns it is generated from"
                )
            }
            addReads.formUnion(used)
        }
        reads.formUnion(addReads)

        // Dropped columns: they exist; an expression over the new columns casts to the column's type.
        let extra = definition.addedColumns.map { (name: $0.name, type: $0.type) }
        var syncedDrops: [ChangePlan.SyncedDrop] = []
        for dropped in definition.droppedColumns {
            guard let column = byName[dropped.name] else {
                throw refuse(dropped.line, "column \(dropped.name) does not exist in \(qualified)")
            }
            if dropped.name == key {
                throw refuse(dropped.line, "column \(dropped.name) is the table's key: the change cannot drop it")
            }
            guard let expression = dropped.expression else { continue }
            if column.generated {
                throw refuse(
                    dropped.line,
                    "column \(dropped.name) is generated: it cannot be a side the trigger writes; drop it without an expression"
                )
            }
            try checkFragment(expression, what: "the expression of \(dropped.name)", line: dropped.line)
            let source = extendedSource(columns: columns.map(\.name), extra: extra, alias: alias, table: qualified)
            if let error = try await describeError(
                "SELECT (\(expression))::\(column.type) FROM \(source)", columns: 1)
            {
                throw refuse(
                    dropped.line,
                    "the expression of \(dropped.name) does not type-check over the new columns as \(column.type): \(error)"
                )
            }
            reads.formUnion(
                try await columnsRead(
                    by: "(\(expression))::\(column.type)", among: columns.map(\.name), extra: extra, alias: alias,
                    table: qualified))
            syncedDrops.append(.init(name: dropped.name, type: column.type, expression: expression))
        }

        // Constrained columns exist, now or once added.
        let addedNames = Set(definition.addedColumns.map(\.name))
        func exists(_ name: String) -> Bool { byName[name] != nil || addedNames.contains(name) }
        for list in definition.notNull + definition.uniques + definition.indexes {
            for name in list.names where !exists(name) {
                throw refuse(list.line, "column \(name) does not exist in \(qualified), nor does the change add it")
            }
        }
        for list in definition.notNull {
            if byName[list.names[0]]?.notNull == true {
                throw refuse(list.line, "column \(list.names[0]) of \(qualified) is already NOT NULL")
            }
        }
        for check in definition.checks {
            try checkFragment(check.expression, what: "check \(check.name)", line: check.line)
            let source = extendedSource(columns: columns.map(\.name), extra: extra, alias: alias, table: qualified)
            if let error = try await describeError("SELECT (\(check.expression))::boolean FROM \(source)", columns: 1) {
                throw refuse(
                    check.line, "check \(check.name) does not type-check as a boolean over \(qualified): \(error)")
            }
            reads.formUnion(
                try await columnsRead(
                    by: "(\(check.expression))::boolean", among: columns.map(\.name), extra: extra, alias: alias,
                    table: qualified))
        }
        var foreignKeys: [ChangePlan.ResolvedForeignKey] = []
        for foreignKey in definition.foreignKeys {
            guard exists(foreignKey.column) else {
                throw refuse(
                    foreignKey.line,
                    "column \(foreignKey.column) does not exist in \(qualified), nor does the change add it")
            }
            let (refSchema, refTable, refOID) = try await table(
                foreignKey.referencedTable, line: foreignKey.line, defaultSchema: schemaName)
            let referenced = quoteIdentifier(refSchema) + "." + quoteIdentifier(refTable)
            let unique = try await connection.query(
                """
                SELECT EXISTS (
                    SELECT 1 FROM pg_catalog.pg_attribute a
                    WHERE a.attrelid = $1::oid AND a.attname = $2 AND a.attnum > 0 AND NOT a.attisdropped) AS found,
                  EXISTS (
                    SELECT 1 FROM pg_catalog.pg_index i JOIN pg_catalog.pg_attribute a
                        ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0]
                    WHERE i.indrelid = $1::oid AND i.indisunique AND i.indisvalid AND i.indpred IS NULL
                      AND i.indexprs IS NULL AND i.indnkeyatts = 1 AND a.attname = $2) AS is_unique
                """, [refOID, foreignKey.referencedColumn]
            ).first!
            guard try unique.bool("found") else {
                throw refuse(foreignKey.line, "column \(foreignKey.referencedColumn) does not exist in \(referenced)")
            }
            guard try unique.bool("is_unique") else {
                throw refuse(
                    foreignKey.line,
                    "column \(foreignKey.referencedColumn) of \(referenced) is not unique: a foreign key references a primary key or a unique column"
                )
            }
            foreignKeys.append(
                .init(
                    column: foreignKey.column, referencedTable: referenced,
                    referencedColumn: foreignKey.referencedColumn))
        }
        try await checkNamesAreFree(schemaName: schemaName, oid: oid, table: qualified, tableName: tableName)

        // The old side: the columns the add expressions read, then the synced drops, in table order.
        let syncedNames = Set(syncedDrops.map(\.name))
        let oldSide = columns.map(\.name).filter { addReads.contains($0) || syncedNames.contains($0) }
        var writes = definition.addedColumns.map(\.name) + definition.droppedColumns.map(\.name)
        writes += (definition.notNull + definition.uniques + definition.indexes).flatMap(\.names)
        writes += definition.foreignKeys.map(\.column)
        reads.formUnion(writes)
        reads.formUnion(oldSide)
        let plan = ChangePlan(
            definition: definition, file: file, schemaName: schemaName, tableName: tableName, tableOID: oid, key: key,
            columns: columns, syncedDrops: syncedDrops, oldSide: oldSide, writes: ordered(writes),
            reads: ordered(Array(reads)), foreignKeys: foreignKeys)
        try await checkOtherChanges(plan, schema: schema)
        return plan
    }

    /// Whether `change_records` exists (plan does not install it).
    private func recordsInstalled(_ schema: QueueSchema) async throws -> Bool {
        try await connection.query(
            "SELECT pg_catalog.to_regclass($1) IS NOT NULL AS installed", [schema.qualified("change_records")]
        ).first!.bool("installed")
    }

    /// No change of the same name exists, in any phase (the name stays with its record).
    private func checkName(schema: QueueSchema) async throws {
        guard try await recordsInstalled(schema) else { return }
        if let row = try await connection.query(
            "SELECT phase FROM \(schema.qualified("change_records")) WHERE name = $1", [definition.name]
        ).first {
            throw refuse(
                1,
                "a change named \(definition.name) already exists (phase \(try row.string("phase"))): name this one otherwise"
            )
        }
    }

    /// Distinct names, sorted, so the record reads the same every time.
    private func ordered(_ names: [String]) -> [String] { Array(Set(names)).sorted() }

    /// The table a directive names: `name` or `schema.name` as SQL reads it (quoted or
    /// folded); unqualified, in `defaultSchema`. A table or partitioned table.
    private func table(_ written: String, line: Int, defaultSchema: String = "public") async throws -> (
        String, String, Int64
    ) {
        let parts: [String]
        do {
            try await connection.query("SAVEPOINT godwit_change_ident")
            let row = try await connection.query("SELECT pg_catalog.parse_ident($1)::text[] AS parts", [written]).first
            try await connection.query("RELEASE SAVEPOINT godwit_change_ident")
            parts = PostgresArray.texts(try row?.string("parts") ?? "{}")
        } catch let error as PostgresError where error.sqlState != .lockNotAvailable {
            try await connection.query("ROLLBACK TO SAVEPOINT godwit_change_ident")
            throw refuse(line, "`\(written)` is not a table name: \(error.message)")
        }
        let (schemaName, tableName): (String, String)
        switch parts.count {
        case 1: (schemaName, tableName) = (defaultSchema, parts[0])
        case 2: (schemaName, tableName) = (parts[0], parts[1])
        default: throw refuse(line, "`\(written)` is not a table name: give `table` or `schema.table`")
        }
        let shown = quoteIdentifier(schemaName) + "." + quoteIdentifier(tableName)
        guard
            let row = try await connection.query(
                """
                SELECT c.oid::bigint AS oid, c.relkind::text AS kind
                FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
                WHERE n.nspname = $1 AND c.relname = $2
                """, [schemaName, tableName]
            ).first
        else { throw refuse(line, "table \(shown) does not exist") }
        guard ["r", "p"].contains(try row.string("kind")) else {
            throw refuse(line, "\(shown) is not a table")
        }
        return (schemaName, tableName, try row.int64("oid"))
    }

    /// The key: the single-column primary key, or else a unique NOT NULL column (the first by
    /// index name), of a type a batched job walks.
    private func key(oid: Int64, columns: [String: ChangePlan.Column], table: String) async throws -> String {
        let candidates = try await connection.query(
            """
            SELECT a.attname::text AS name, a.atttypid::regtype::text AS type, i.indisprimary AS primary
            FROM pg_catalog.pg_index i
            JOIN pg_catalog.pg_class ic ON ic.oid = i.indexrelid
            JOIN pg_catalog.pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0]
            WHERE i.indrelid = $1::oid AND i.indisunique AND i.indisvalid AND i.indpred IS NULL
              AND i.indexprs IS NULL AND i.indnkeyatts = 1 AND a.attnotnull
            ORDER BY i.indisprimary DESC, ic.relname
            """, [oid]
        ).rows.map { (name: try $0.string("name"), type: try $0.string("type")) }
        guard let key = candidates.first(where: { ChangePlan.keyTypes.contains($0.type) }) else {
            let why =
                candidates.isEmpty
                ? "no single-column primary key and no unique NOT NULL column"
                : "its unique columns have types a batched backfill cannot walk (\(candidates.map { "\($0.name) \($0.type)" }.joined(separator: ", ")))"
            throw refuse(
                definition.tableLine,
                "table \(table) has no usable key for the backfill: \(why) (supported: \(ChangePlan.keyTypes.sorted().joined(separator: ", ")))"
            )
        }
        return key.name
    }

    /// Refuses what would end an expression or type early and run as SQL of its own: `;`,
    /// comments, and a `)` that closes more than it opened.
    private func checkFragment(_ text: String, what: String, line: Int) throws {
        var depth = 0
        var quote: Character?
        var previous: Character?
        for character in text {
            defer { previous = character }
            if let open = quote {
                if character == open { quote = nil }
                continue
            }
            switch character {
            case "'", "\"": quote = character
            case "(": depth += 1
            case ")":
                depth -= 1
                if depth < 0 { throw refuse(line, "\(what) closes a parenthesis it did not open") }
            case ";": throw refuse(line, "\(what) may not contain `;`")
            case "-" where previous == "-", "*" where previous == "/":
                throw refuse(line, "\(what) may not contain a comment")
            default: break
            }
        }
        if quote != nil { throw refuse(line, "\(what) has an unterminated quote") }
        if depth != 0 { throw refuse(line, "\(what) leaves a parenthesis open") }
    }

    /// The server's message when `sql` does not parse and analyse, nil when it does; parsed
    /// inside a savepoint, never executed. With `columns`, also refuses another column count.
    private func describeError(_ sql: String, columns: Int? = nil) async throws -> String? {
        try await connection.query("SAVEPOINT godwit_change_describe")
        do {
            let description = try await connection.describe(sql)
            try await connection.query("RELEASE SAVEPOINT godwit_change_describe")
            if let columns, description.columns.count != columns {
                return "it is \(description.columns.count) values, not one"
            }
            return nil
        } catch let error as PostgresError where error.sqlState != .lockNotAvailable {
            // A lock timeout is not the expression's fault: it fails the try, which is retried.
            try await connection.query("ROLLBACK TO SAVEPOINT godwit_change_describe")
            return error.message
        }
    }

    /// `(SELECT "a", "b", NULL::TYPE AS "new" FROM t) AS "alias"`: the table as it is once
    /// the change has added its columns, without the column `omitting`.
    private func extendedSource(
        columns: [String], extra: [(name: String, type: String)], alias: String, table: String,
        omitting: String? = nil
    ) -> String {
        var items = columns.filter { $0 != omitting }.map(quoteIdentifier)
        items += extra.filter { $0.name != omitting }.map { "NULL::\($0.type) AS \(quoteIdentifier($0.name))" }
        let list = items.isEmpty ? "" : items.joined(separator: ", ")
        return "(SELECT \(list) FROM \(table)) AS \(alias)"
    }

    /// The columns an expression reads: those whose absence makes it fail to parse. Only the
    /// columns whose name occurs in its text are tried.
    private func columnsRead(
        by expression: String, among columns: [String], extra: [(name: String, type: String)], alias: String,
        table: String
    ) async throws -> Set<String> {
        let text = expression.lowercased()
        var used: Set<String> = []
        for name in columns + extra.map(\.name) where text.contains(name.lowercased()) {
            let source = extendedSource(columns: columns, extra: extra, alias: alias, table: table, omitting: name)
            if try await describeError("SELECT \(expression) FROM \(source)") != nil { used.insert(name) }
        }
        return used
    }

    /// The names the change creates are not taken: its trigger, its function, its constraints
    /// on the table, its indexes in the schema.
    private func checkNamesAreFree(schemaName: String, oid: Int64, table: String, tableName: String) async throws {
        let names = ChangeNames(change: definition.name, table: tableName)
        var constraints: [(String, Int)] = definition.notNull.map { (names.notNullCheck($0.names[0]), $0.line) }
        constraints += definition.checks.map { ($0.name, $0.line) }
        constraints += definition.foreignKeys.map { (names.foreignKey($0.column), $0.line) }
        constraints += definition.uniques.map { (names.unique($0.names), $0.line) }
        var relations = definition.indexes.map { (names.index($0.names), $0.line) }
        relations += definition.uniques.map { (names.unique($0.names), $0.line) }
        for (name, line) in constraints {
            let taken = try await connection.query(
                "SELECT 1 FROM pg_catalog.pg_constraint WHERE conrelid = $1::oid AND conname = $2", [oid, name])
            if !taken.rows.isEmpty { throw refuse(line, "\(table) already has a constraint named \(name)") }
        }
        for (name, line) in relations {
            let taken = try await connection.query(
                """
                SELECT 1 FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
                WHERE n.nspname = $1 AND c.relname = $2
                """, [schemaName, name])
            if !taken.rows.isEmpty {
                throw refuse(line, "schema \(quoteIdentifier(schemaName)) already has a relation named \(name)")
            }
        }
        if definition.addedColumns.isEmpty { return }
        let trigger = try await connection.query(
            """
            SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_trigger WHERE tgrelid = $1::oid AND tgname = $2) OR
                   EXISTS (SELECT 1 FROM pg_catalog.pg_proc p JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace
                           WHERE n.nspname = $3 AND p.proname = $2) AS taken
            """, [oid, names.trigger, schemaName])
        if try trigger.first!.bool("taken") {
            throw refuse(1, "\(table) already has a trigger or function named \(names.trigger)")
        }
    }

    /// No in-flight change on the table touches the columns this one writes, or writes the
    /// columns this one reads.
    private func checkOtherChanges(_ plan: ChangePlan, schema: QueueSchema) async throws {
        let records = schema.qualified("change_records")
        guard try await recordsInstalled(schema) else { return }
        let others = try await connection.query(
            """
            SELECT name,
                   ARRAY(SELECT jsonb_array_elements_text(definition->'writes'))::text AS writes,
                   ARRAY(SELECT jsonb_array_elements_text(definition->'reads'))::text AS reads
            FROM \(records)
            WHERE table_oid = $1::oid AND phase NOT IN ('completed', 'aborted')
            ORDER BY name
            """, [plan.tableOID])
        let ourWrites = Set(plan.writes)
        let ourReads = Set(plan.reads)
        for row in others.rows {
            let writes = Set(PostgresArray.texts(try row.string("writes")))
            let reads = Set(PostgresArray.texts(try row.string("reads")))
            let shared = ourWrites.intersection(reads).union(ourReads.intersection(writes))
            guard let column = shared.sorted().first else { continue }
            throw refuse(
                line(of: column),
                "column \(column) is touched by change \(try row.string("name")), still in flight on \(plan.qualifiedTable): finish or abort it first"
            )
        }
    }

    /// The first directive's line that names `column`, or the table's.
    private func line(of column: String) -> Int {
        let d = definition
        var lines: [(String, Int)] = d.addedColumns.map { ($0.name, $0.line) }
        lines += d.droppedColumns.map { ($0.name, $0.line) }
        lines += (d.notNull + d.uniques + d.indexes).flatMap { list in list.names.map { ($0, list.line) } }
        lines += d.foreignKeys.map { ($0.column, $0.line) }
        for added in d.addedColumns where added.expression.lowercased().contains(column.lowercased()) {
            lines.append((column, added.line))
        }
        return lines.filter { $0.0 == column }.map(\.1).min() ?? d.tableLine
    }
}

/// Text arrays as PostgreSQL prints them (`{a,"b c"}`).
enum PostgresArray {
    static func texts(_ literal: String) -> [String] {
        var items: [String] = []
        var current = ""
        var quoted = false
        var wasQuoted = false
        var escape = false
        let inner = literal.dropFirst().dropLast()
        for character in inner {
            if escape {
                current.append(character)
                escape = false
            } else if quoted {
                if character == "\\" {
                    escape = true
                } else if character == "\"" {
                    quoted = false
                } else {
                    current.append(character)
                }
            } else if character == "\"" {
                quoted = true
                wasQuoted = true
            } else if character == "," {
                items.append(current)
                current = ""
                wasQuoted = false
            } else {
                current.append(character)
            }
        }
        if !current.isEmpty || wasQuoted || !items.isEmpty { items.append(current) }
        return items
    }
}
