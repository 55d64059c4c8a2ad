import Foundation
import GodwitPostgres

/// One database, or one tenant schema in a database, that a fleet command migrates or enqueues
/// on: a line of a targets file (`NAME URL [schema=NAME]`) or a row of `--targets-query`.
public struct FleetTarget: Sendable, Hashable {
    /// The target's name, unique in its fleet: what tables, errors and `fleet_targets` show.
    public var name: String
    /// A `postgres://` URL or a `key=value` connection string. It may hold a password: print
    /// only `redactedConnection`.
    public var connection: String
    /// A schema-per-tenant target's schema: its ledger is `<schema>._sqlx_migrations`, the
    /// schema is created when missing, and the migration session's `search_path` starts with it.
    /// Nil for a database target (the ledger in the session's default schema, as sqlx).
    public var schema: String?
    /// Where it was read: the 1-based line of its targets file, or the row of its query.
    public var line: Int

    public init(name: String, connection: String, schema: String? = nil, line: Int = 0) {
        self.name = name
        self.connection = connection
        self.schema = schema
        self.line = line
    }

    /// The connection string with every password masked, for anything printed or stored.
    public var redactedConnection: String { ConnectionString.redacted(connection) }

    /// The ledger's table as sqlx.toml's `table-name` spells it: `<schema>._sqlx_migrations`
    /// for a schema target, `_sqlx_migrations` otherwise.
    public var ledgerTable: String {
        schema.map { "\($0)._sqlx_migrations" } ?? "_sqlx_migrations"
    }

    /// Which database the target lives in, as far as its connection string and libpq's
    /// environment defaults tell: host, port and database name. Targets with the same key run
    /// one after another (sqlx's advisory lock is database-wide, so running them at once would
    /// only queue them on it); different keys run in parallel. Two spellings of one server
    /// (a name and its address) make two keys: they are then serialised by the lock itself.
    public var databaseKey: String {
        let options = (try? ConnectionString.options(connection)) ?? [:]
        let environment = ProcessInfo.processInfo.environment
        func setting(_ key: String, _ variable: String) -> String? {
            if let value = options[key], !value.isEmpty { return value }
            if let value = environment[variable], !value.isEmpty { return value }
            return nil
        }
        if let service = setting("service", "PGSERVICE"), options["host"] == nil, options["dbname"] == nil {
            return "service=\(service)"
        }
        let host = setting("host", "PGHOST") ?? setting("hostaddr", "PGHOSTADDR") ?? "localhost"
        let port = setting("port", "PGPORT") ?? "5432"
        let user = setting("user", "PGUSER") ?? environment["USER"] ?? ""
        let database = setting("dbname", "PGDATABASE") ?? user
        return "\(host):\(port)/\(database)"
    }
}
