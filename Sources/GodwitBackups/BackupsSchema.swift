import GodwitPostgres

extension SchemaPart {
    /// The backups' part (owner `backups`): the `backups` table, which needs no other part.
    /// `Resources/backups_schema.sql`, embedded at build time and decoded once.
    public static let backups = SchemaPart(
        owner: "backups", install: SchemaPart.template(PackageResources.backups_schema_sql))
}

extension BackupManager {
    /// Installs or upgrades the backups' part of `schema`, and nothing else: where backups are
    /// recorded. Safe to call from many processes at once.
    public func installSchema(on connection: Connection) async throws {
        try await SchemaInstaller(schema: schema, parts: [.backups]).install(on: connection)
    }
}
