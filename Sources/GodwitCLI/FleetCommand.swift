import ArgumentParser

/// `godwit fleet`: one migrations folder or one batched job over many databases and tenant
/// schemas.
struct FleetCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "fleet",
        abstract: "Run migrations and batched jobs over a fleet of databases and tenant schemas.",
        subcommands: [FleetEnqueue.self])
}
