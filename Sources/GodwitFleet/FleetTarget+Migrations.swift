import GodwitMigrations
import GodwitPostgres

extension FleetTarget {
    /// sqlx.toml's settings (`base`) as they apply to this target: a schema target's ledger is
    /// `<schema>._sqlx_migrations` and its schema the one created before it; a database target
    /// keeps the file's.
    public func migrationConfig(base: MigrationConfig) -> MigrationConfig {
        var config = base
        if let schema {
            config.tableName = ledgerTable
            config.createSchemas = [schema]
        }
        return config
    }

    /// The `search_path` a schema target's migration session starts with: its schema, then
    /// `public` (where extensions and objects shared by the tenants usually live), so that the
    /// files' unqualified names create and find the tenant's objects first. Nil for a database
    /// target, whose session keeps its login's (as `migrate run`).
    public var migrationSearchPath: String? {
        schema.map { "\(quoteIdentifier($0)), public" }
    }
}
