import ArgumentParser

/// `godwit fleet`: one migrations folder, or one batched job, over many databases and tenant
/// schemas, recorded on the control database (`-D`).
struct FleetCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "fleet",
        abstract: "Migrate a fleet of databases and tenant schemas, with canaries, bounded parallelism and resume.",
        discussion: """
            A targets file holds one target a line: NAME URL [schema=NAME], # for comments. A URL is a \
            postgres:// URL or a quoted key=value string; passwords come from .pgpass, PGPASSWORD or the \
            URL, and are never printed nor stored. Every run is recorded in the control database's \
            fleet_runs and fleet_targets (-D, schema --schema).

            Example: godwit fleet migrate -D $CONTROL_URL --targets tenants.txt --canary 2 --parallel 8
            """,
        subcommands: [Migrate.self, Status.self, Resume.self, Check.self, FleetEnqueue.self]
    )
}
