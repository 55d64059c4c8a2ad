import Foundation
import GodwitMigrations
import GodwitTestSupport
import Testing

/// `sqlx.toml`'s `[migrate]` table, parsed as sqlx 0.9 parses it.
@Suite("sqlx.toml")
struct MigrationConfigTests {
    /// The settings of sqlx's multi-tenant example (`accounts/sqlx.toml`), whose `[macros]`
    /// tables are sqlx's business and are left alone.
    @Test func readsTheMultiTenantExamplesSettings() throws {
        let config = try MigrationConfig.parse(
            """
            [migrate]
            create-schemas = ["accounts"]
            table-name = "accounts._sqlx_migrations"

            [macros.table-overrides.'accounts.account']
            'account_id' = "crate::AccountId"
            """, path: "accounts/sqlx.toml")
        #expect(config.createSchemas == ["accounts"])
        #expect(config.tableName == "accounts._sqlx_migrations")
        #expect(config.migrationsDir == nil)
        #expect(config.ignoredChars.isEmpty)
    }

    @Test func readsEveryMigrateSetting() throws {
        let config = try MigrationConfig.parse(
            #"""
            [migrate]
            migrations-dir = "src/migrations"
            ignored-chars = [" ", "\t", "\r", "\n", "\uFEFF"]
            create-schemas = ["b", "a", "b"]
            table-name = '"Tenant".ledger'

            [migrate.defaults]
            migration-type = "reversible"
            migration-versioning = "sequential"
            """#, path: "sqlx.toml")
        #expect(config.migrationsDir == "src/migrations")
        #expect(config.ignoredChars == [" ", "\t", "\r", "\n", "\u{FEFF}"])
        #expect(config.createSchemas == ["a", "b"])
        #expect(config.tableName == #""Tenant".ledger"#)
        #expect(config.defaultMigrationType == .reversible)
        #expect(config.defaultVersioning == .sequential)
        #expect(config.migrationsDirectory(flag: nil) == "src/migrations")
        #expect(config.migrationsDirectory(flag: "other") == "other")
        #expect(MigrationConfig.default.migrationsDirectory(flag: nil) == "migrations")
        #expect(MigrationConfig.default.tableName == "_sqlx_migrations")
    }

    @Test(arguments: [
        ("[migrate]\ntable_name = \"x\"\n", "sqlx.toml:2: unknown key `migrate.table_name`"),
        ("[migrate]\n\ntable-name = \"x; DROP TABLE users\"\n", "sqlx.toml:3: `table-name` must be a table name"),
        ("[migrate]\ncreate-schemas = [\"a b\"]\n", "sqlx.toml:2: `create-schemas` holds"),
        ("[migrate]\nignored-chars = [\"\\r\\n\"]\n", "sqlx.toml:2: `ignored-chars` holds"),
        ("[migrate]\ntable-name = \"a.b.c\"\n", "sqlx.toml:2: `table-name` must be a table name"),
        ("[migrate.defaults]\nmigration-type = \"both\"\n", "sqlx.toml:2: `migration-type` must be"),
        ("[migrate]\ntable-name = \n", "sqlx.toml:2: "),
    ])
    func aBadSettingIsAnErrorNamingFileAndLine(text: String, prefix: String) throws {
        let error = try #require(throws: MigrationError.self) { try MigrationConfig.parse(text, path: "sqlx.toml") }
        #expect(error.code == .invalidConfig)
        #expect(error.message.hasPrefix(prefix), "\(error.message)")
    }

    @Test func theFileComesFromConfigThenTheCurrentDirectoryThenDefaults() throws {
        let dir = try TemporaryDirectory()
        defer { dir.delete() }
        #expect(try MigrationConfig.resolve(configPath: nil, directory: dir.path) == .default)
        try dir.write("sqlx.toml", "[migrate]\ntable-name = \"here\"\n")
        let other = try dir.write("other.toml", "[migrate]\ntable-name = \"there\"\n")
        #expect(try MigrationConfig.resolve(configPath: nil, directory: dir.path).tableName == "here")
        #expect(try MigrationConfig.resolve(configPath: other, directory: dir.path).tableName == "there")
        let missing = try #require(throws: MigrationError.self) {
            try MigrationConfig.resolve(configPath: dir.path + "/nope.toml", directory: dir.path)
        }
        #expect(missing.message == "\(dir.path)/nope.toml: no such config file (given with --config)")
    }

    /// The working directory's file and a relative `--config` are opened in it, and named as
    /// the person knows them: `sqlx.toml`, and the path as given.
    @Test func aRelativeConfigIsOpenedInTheWorkingDirectoryAndNamedAsGiven() throws {
        let dir = try TemporaryDirectory()
        defer { dir.delete() }
        try dir.write("sqlx.toml", "[migrat]\n")
        try dir.write("sub/other.toml", "[migrate]\ntable-name = \"there\"\n[nope]\n")
        let implicit = try MigrationConfig.resolve(configPath: nil, directory: dir.path)
        #expect(implicit.path == "sqlx.toml")
        #expect(
            implicit.warnings.first?.hasPrefix("sqlx.toml:1: unknown section `migrat`") == true, "\(implicit.warnings)")
        let given = try MigrationConfig.resolve(configPath: "sub/other.toml", directory: dir.path)
        #expect(given.tableName == "there" && given.path == "sub/other.toml")
        #expect(
            given.warnings.first?.hasPrefix("sub/other.toml:3: unknown section `nope`") == true, "\(given.warnings)")
        let missing = try #require(throws: MigrationError.self) {
            try MigrationConfig.resolve(configPath: "sub/nope.toml", directory: dir.path)
        }
        #expect(missing.message == "sub/nope.toml: no such config file (given with --config)")
    }
}
