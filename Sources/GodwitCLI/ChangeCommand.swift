import ArgumentParser

/// `godwit change`: zero-downtime column changes (expand/contract) from a `changes/*.sql` file.
/// Each subcommand lives in its own file and joins the list here.
struct ChangeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "change",
        abstract: "Change columns without downtime.",
        subcommands: [Complete.self])
}
