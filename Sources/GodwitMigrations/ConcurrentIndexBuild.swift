import GodwitPostgres

/// A `CREATE INDEX CONCURRENTLY` or `REINDEX ... CONCURRENTLY` statement of a
/// `-- no-transaction` file, read as far as Godwit needs: which index, on which table.
///
/// Such a build that fails or is interrupted leaves an INVALID index behind, which PostgreSQL
/// keeps up to date on every write but never uses, and which makes a rerun of `CREATE INDEX
/// CONCURRENTLY IF NOT EXISTS` skip the build and report success. Godwit drops what a failed
/// build left and, before a build, an invalid index of the same name on the same table; and
/// after the migration it checks that what was built is valid.
struct ConcurrentIndexBuild: Equatable, Sendable {
    enum Target: Equatable, Sendable {
        /// `CREATE INDEX CONCURRENTLY [name] ON table`; the name is nil when PostgreSQL picks it.
        case create(index: String?, table: [String])
        /// `REINDEX INDEX CONCURRENTLY name`.
        case reindexIndex([String])
        /// `REINDEX TABLE CONCURRENTLY name`.
        case reindexTable([String])
    }

    var target: Target

    /// What `to_regclass` finds the table or index by (each part quoted).
    static func regclassText(_ parts: [String]) -> String { parts.map(quoteIdentifier).joined(separator: ".") }

    /// Nil for every statement that is not a concurrent index build.
    init?(_ statement: String) {
        var words = HeadTokens(statement).prefix(24).makeIterator()
        func next() -> HeadTokens.Token? { words.next() }
        func name(startingWith first: HeadTokens.Token?) -> [String]? {
            guard case .identifier(let part)? = first else { return nil }
            var parts = [part]
            var copy = words
            while case .symbol(".")? = copy.next(), case .identifier(let more)? = copy.next() {
                parts.append(more)
                _ = words.next()
                _ = words.next()
                copy = words
            }
            return parts
        }
        switch next() {
        case .identifier("create")?:
            var token = next()
            if token == .identifier("unique") { token = next() }
            guard token == .identifier("index"), next() == .identifier("concurrently") else { return nil }
            token = next()
            if token == .identifier("if") {
                guard next() == .identifier("not"), next() == .identifier("exists") else { return nil }
                token = next()
            }
            var index: String?
            if token != .identifier("on") {
                guard case .identifier(let named)? = token else { return nil }
                index = named
                token = next()
            }
            guard token == .identifier("on") else { return nil }
            token = next()
            if token == .identifier("only") { token = next() }
            guard let table = name(startingWith: token) else { return nil }
            target = .create(index: index, table: table)
        case .identifier("reindex")?:
            var token = next()
            if token == .symbol("(") {
                while let inside = next(), inside != .symbol(")") {}
                token = next()
            }
            let kind = token
            guard kind == .identifier("index") || kind == .identifier("table"),
                next() == .identifier("concurrently"), let named = name(startingWith: next())
            else { return nil }
            target = kind == .identifier("index") ? .reindexIndex(named) : .reindexTable(named)
        default:
            return nil
        }
    }

    // MARK: Catalog

    /// The invalid indexes on this build's table, by OID.
    func invalidIndexes(on connection: Connection) async throws -> Set<UInt32> {
        let sql: String
        let parameter: String
        switch target {
        case .create(_, let table), .reindexTable(let table):
            sql =
                "SELECT indexrelid::oid AS oid FROM pg_catalog.pg_index WHERE indrelid = pg_catalog.to_regclass($1) AND NOT indisvalid"
            parameter = Self.regclassText(table)
        case .reindexIndex(let index):
            sql = """
                SELECT i.indexrelid::oid AS oid FROM pg_catalog.pg_index i
                WHERE i.indrelid = (SELECT indrelid FROM pg_catalog.pg_index WHERE indexrelid = pg_catalog.to_regclass($1))
                  AND NOT i.indisvalid
                """
            parameter = Self.regclassText(index)
        }
        return Set(try await connection.query(sql, [parameter]).rows.map { UInt32(try $0.int64("oid")) })
    }

    /// An invalid index of the name this statement creates, on its table: left by an earlier
    /// build that did not finish.
    func leftoverOfSameName(on connection: Connection) async throws -> UInt32? {
        guard case .create(let index?, let table) = target else { return nil }
        return try await connection.query(
            """
            SELECT i.indexrelid::oid AS oid FROM pg_catalog.pg_index i
            JOIN pg_catalog.pg_class c ON c.oid = i.indexrelid
            WHERE i.indrelid = pg_catalog.to_regclass($1) AND c.relname = $2 AND NOT i.indisvalid
            """, [Self.regclassText(table), index]
        ).first.map { UInt32(try $0.int64("oid")) }
    }

    /// The index this statement names, when it exists and is not valid (on whichever table of
    /// the schema: `IF NOT EXISTS` skips over another table's); for an unnamed build,
    /// any invalid index on the table that is not in `before`.
    func invalidAfterwards(before: Set<UInt32>, on connection: Connection) async throws -> [String] {
        var oids: [UInt32]
        switch target {
        case .create(let index?, let table):
            oids = try await connection.query(
                """
                SELECT i.indexrelid::oid AS oid FROM pg_catalog.pg_index i
                JOIN pg_catalog.pg_class c ON c.oid = i.indexrelid
                WHERE c.relname = $2 AND NOT i.indisvalid
                  AND c.relnamespace = (SELECT relnamespace FROM pg_catalog.pg_class WHERE oid = pg_catalog.to_regclass($1))
                """, [Self.regclassText(table), index]
            ).rows.map { UInt32(try $0.int64("oid")) }
        default:
            oids = Array(try await invalidIndexes(on: connection).subtracting(before))
        }
        return try await Self.names(oids, on: connection)
    }

    static func names(_ oids: [UInt32], on connection: Connection) async throws -> [String] {
        guard !oids.isEmpty else { return [] }
        return try await connection.query(
            "SELECT oid::regclass::text AS name FROM pg_catalog.pg_class WHERE oid = ANY ($1::oid[]) ORDER BY 1",
            [PostgresArray.literal(oids.map(String.init))]
        ).rows.map { try $0.string("name") }
    }
}

/// The first words of a statement, from `SQLTokenizer`: names folded as PostgreSQL folds
/// them, every other token a symbol.
struct HeadTokens: Sequence, IteratorProtocol {
    enum Token: Equatable {
        /// A keyword or identifier: unquoted ones lowercased, quoted ones as written.
        case identifier(String)
        /// Any other token (a string, a number, a symbol), by its first character.
        case symbol(Character)
    }

    private var tokens: IndexingIterator<ArraySlice<SQLToken>>

    init(_ text: String) {
        tokens = SQLTokenizer.tokens(text).prefix(24).makeIterator()
    }

    mutating func next() -> Token? {
        guard let token = tokens.next() else { return nil }
        if let name = token.identifier { return .identifier(name) }
        return .symbol(token.text.first ?? " ")
    }
}
