import Foundation
import GodwitPostgres

/// Something a statement does outside the database it runs in, which no rollback undoes: a
/// program or a file on the database server, the server's configuration, another database,
/// other sessions.
///
/// Read from the tokens, and from the bodies of `DO` blocks and of functions and procedures
/// (and the strings inside them, for `EXECUTE '...'`), a few levels deep. Lexical only: SQL
/// built at run time (`EXECUTE 'CO' || 'PY ...'`) is not seen; the trace's restricted role is
/// what stops that.
struct OutsideEffect: Sendable, Equatable {
    enum Kind: Sendable, Equatable {
        /// `COPY ... TO PROGRAM` / `FROM PROGRAM`.
        case program
        /// `COPY ... TO 'file'` / `FROM 'file'`, `lo_import`, `lo_export`, `pg_read_file`, ...
        case serverFile
        /// `ALTER SYSTEM`, `pg_reload_conf()`.
        case serverConfiguration
        /// `dblink*()` calls, `CREATE EXTENSION dblink` / `postgres_fdw`.
        case remoteConnection
        /// `pg_terminate_backend()`, `pg_cancel_backend()`.
        case signal
    }

    var kind: Kind
    /// What the statement does, in words, for the finding's message.
    var what: String

    var rule: LintRule {
        switch kind {
        case .program: .copyProgram
        case .serverFile: .serverFile
        case .serverConfiguration: .alterSystem
        case .remoteConnection: .remoteConnection
        case .signal: .signalBackend
        }
    }

    /// Server-side functions that read (false) or write (true) a file of the server's.
    static let fileFunctions: [String: Bool] = [
        "lo_import": false, "lo_export": true, "pg_read_file": false, "pg_read_binary_file": false,
        "pg_file_write": true, "pg_file_rename": true, "pg_file_unlink": true,
    ]
    static let signalFunctions: Set<String> = ["pg_terminate_backend", "pg_cancel_backend"]
    /// Extensions whose functions or foreign tables open connections to other servers.
    static let remoteExtensions: Set<String> = ["dblink", "postgres_fdw"]

    /// The effects of a statement's tokens. The strings of a `DO` block or of `CREATE FUNCTION`
    /// / `CREATE PROCEDURE` are bodies, read as SQL too, and so are the strings inside those
    /// (`level` counts how deep), down to three levels.
    static func find(in tokens: [SQLToken], level: Int = 0) -> [OutsideEffect] {
        var found: [OutsideEffect] = []
        for part in tokens.split(whereSeparator: { $0.isSymbol(";") }) {
            found += inStatement(Array(part))
        }
        let words = tokens.prefix(4).map { $0.keyword ?? "" }
        // CREATE [OR REPLACE] what
        let created = words.first == "CREATE" ? words.dropFirst().drop { $0 == "OR" || $0 == "REPLACE" }.first : nil
        let hasBody = level > 0 || words.first == "DO" || created == "FUNCTION" || created == "PROCEDURE"
        if hasBody, level < 3 {
            for token in tokens where token.kind == .string {
                found += find(in: SQLTokenizer.tokens(contents(of: token.text)), level: level + 1)
            }
        }
        return found
    }

    /// One statement's tokens (no `;`).
    private static func inStatement(_ t: [SQLToken]) -> [OutsideEffect] {
        var found: [OutsideEffect] = []
        func add(_ kind: Kind, _ what: String) { found.append(OutsideEffect(kind: kind, what: what)) }
        func word(_ i: Int) -> String { i < t.count ? t[i].keyword ?? "" : "" }
        // The TO or FROM of COPY is the first at COPY's own depth: not one inside its query.
        if let copy = t.firstIndex(where: { $0.isKeyword("COPY") }),
            let direction = t[(copy + 1)...].firstIndex(where: {
                $0.depth == t[copy].depth && ($0.isKeyword("TO") || $0.isKeyword("FROM"))
            }),
            direction + 1 < t.count
        {
            let to = t[direction].isKeyword("TO")
            let way = to ? "TO" : "FROM"
            if t[direction + 1].isKeyword("PROGRAM") {
                add(
                    .program,
                    "COPY ... \(way) PROGRAM runs a command on the database server's operating system, as the user PostgreSQL runs as"
                )
            } else if t[direction + 1].kind == .string {
                add(.serverFile, "COPY ... \(way) a file name \(to ? "writes" : "reads") a file on the database server")
            }
        }
        for i in t.indices where word(i) == "ALTER" && word(i + 1) == "SYSTEM" {
            add(
                .serverConfiguration,
                "ALTER SYSTEM changes the configuration of the whole server (postgresql.auto.conf), for every database")
        }
        if word(0) == "CREATE", word(1) == "EXTENSION" {
            var i = 2
            if word(i) == "IF", word(i + 1) == "NOT", word(i + 2) == "EXISTS" { i += 3 }
            if i < t.count, let name = t[i].identifier, remoteExtensions.contains(name) {
                add(
                    .remoteConnection,
                    "CREATE EXTENSION \(name) lets SQL open connections from the database server to other databases and servers"
                )
            }
        }
        // Function calls: a name, maybe schema-qualified, right before `(`.
        for i in t.indices.dropLast() where t[i + 1].isSymbol("(") {
            guard let name = t[i].identifier else { continue }
            if let writes = fileFunctions[name] {
                add(.serverFile, "\(name) \(writes ? "writes" : "reads") a file on the database server")
            } else if name == "pg_reload_conf" {
                add(
                    .serverConfiguration,
                    "pg_reload_conf() reloads the configuration of the whole server, for every database")
            } else if name.hasPrefix("dblink") {
                add(
                    .remoteConnection,
                    "\(name) opens a connection from the database server to another database, where what it does commits by itself"
                )
            } else if signalFunctions.contains(name) {
                add(.signal, "\(name) ends or interrupts other sessions on the server (the application's)")
            }
        }
        return found
    }

    /// The text inside a string token: `'it''s'`, `E'it\'s'`, `$body$ ... $body$`.
    static func contents(of token: String) -> String {
        if token.hasPrefix("$") {
            guard let tagEnd = token.dropFirst().firstIndex(of: "$") else { return token }
            let tag = token[...tagEnd]
            var body = token[token.index(after: tagEnd)...]
            if body.hasSuffix(tag) { body = body.dropLast(tag.count) }
            return String(body)
        }
        var body = Substring(token)
        let escapes = body.first == "E" || body.first == "e"
        if escapes { body = body.dropFirst() }
        if body.first == "'" { body = body.dropFirst() }
        if body.last == "'" { body = body.dropLast() }
        var text = body.replacingOccurrences(of: "''", with: "'")
        if escapes { text = text.replacingOccurrences(of: "\\'", with: "'") }
        return text
    }
}
