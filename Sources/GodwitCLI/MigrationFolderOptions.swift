import ArgumentParser
import GodwitMigrations

/// `--source` and `--config`: where the migrations are and which sqlx.toml to read, for the
/// `migrate` subcommands, `worker` (its `--migrate`, and the dashboard's migrations page) and
/// `serve` (the dashboard's migrations page).
///
/// The defaults are the same for all of them, as sqlx-cli 0.9 has them: the config is
/// `--config`, else `sqlx.toml` in the current directory when there is one; the folder is
/// `--source`, else the config's `migrations-dir`, else `migrations`. Relative paths are the
/// console's working directory's (`Console.directory`).
struct MigrationFolderOptions: ParsableArguments {
    @Option(
        name: .customLong("source"),
        help: "The folder that holds the migrations (default: sqlx.toml's migrations-dir, else migrations).")
    var sourceFlag: String?

    @Option(
        name: .customLong("config"),
        help: ArgumentHelp(
            "The sqlx.toml to read (default: sqlx.toml in the current directory, when there is one).",
            valueName: "file"))
    var configFile: String?

    /// sqlx.toml's settings (the defaults without a file); a file that cannot be read throws.
    /// Its warnings (an unknown section) are the caller's to print.
    func resolvedConfig() throws -> MigrationConfig {
        try MigrationConfig.resolve(configPath: configFile, directory: Console.current.directory.path)
    }

    /// The folder under `config`: `--source`, else its `migrations-dir`, else `migrations`.
    func directory(in config: MigrationConfig) -> String {
        config.migrationsDirectory(flag: sourceFlag)
    }
}
