import ArgumentParser

@main
struct Godwit: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "godwit",
        abstract: "Change a live PostgreSQL database safely: sqlx-compatible schema migrations.",
        discussion: """
            Godwit reads the same migrations/ folder and writes the same _sqlx_migrations ledger as \
            sqlx, so a Rust service running sqlx::migrate! and Godwit agree on every byte.
            """,
        version: "0.1.0",
        subcommands: [Migrate.self, WorkerCommand.self, JobCommand.self, BackupCommand.self]
    )
}
