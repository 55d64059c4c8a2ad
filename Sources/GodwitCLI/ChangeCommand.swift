import ArgumentParser
import Foundation
import GodwitChanges
import GodwitPostgres

/// `godwit change`: zero-downtime column changes (expand/contract) from a `changes/*.sql` file.
/// Each subcommand takes -D/DATABASE_URL and --schema; start and abort take the lock options
/// of `migrate run`. Other subcommands join the list in their own files.
struct ChangeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "change",
        abstract: "Change columns without downtime: plan, start (expand), status, complete (contract), abort.",
        subcommands: [Plan.self, Start.self, ChangeStatusCommand.self, Complete.self, Abort.self])

    /// `change plan FILE`: the phases as SQL, checked against the live schema; runs nothing.
    struct Plan: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Print every phase of a change as the SQL it would send; runs nothing.",
            discussion: """
                The file is checked against the live schema by reading the catalog and parsing \
                (PREPARE) only: unknown columns, bad types, expressions that do not type-check, \
                a table without a usable key and a change overlapping one in flight are refused \
                with file and line. An unqualified table is looked up in the public schema.
                """)

        @OptionGroup var connection: ConnectionOptions
        @OptionGroup var queueOptions: QueueOptions
        @OptionGroup var lockOptions: LockOptions
        @Argument(help: "The change file (changes/NAME.sql).") var file: String

        func run() async throws {
            try await withCLIErrors {
                let text = try readChangeFile(file)
                let manager = ChangeManager(schemaName: queueOptions.schema, lockPolicy: lockOptions.policy)
                let plan = try await connection.withQueueConnection(logger: makeLogger(queueOptions.logLevel)) {
                    try await manager.plan(text: text, file: file, on: $0)
                }
                output(plan.hasSuffix("\n") ? String(plan.dropLast()) : plan)
            }
        }
    }

    /// `change start FILE`: expand, in one transaction; prints the change's name.
    struct Start: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Start a change (expand): new columns, sync trigger, NOT VALID constraints, backfill.",
            discussion: """
                One transaction under lock_timeout with retries adds the new columns (nullable, \
                no default), the sync trigger and the NOT VALID constraints, records the change, \
                and enqueues its backfill (a batched job, as this login) and its finish job for \
                a worker. Prints the change's name.
                """)

        @OptionGroup var connection: ConnectionOptions
        @OptionGroup var queueOptions: QueueOptions
        @OptionGroup var lockOptions: LockOptions
        @Argument(help: "The change file (changes/NAME.sql).") var file: String

        func run() async throws {
            try await withCLIErrors {
                let text = try readChangeFile(file)
                let manager = ChangeManager(schemaName: queueOptions.schema, lockPolicy: lockOptions.policy)
                let started = try await connection.withConnection(logger: makeLogger(queueOptions.logLevel)) {
                    try await manager.start(text: text, file: file, on: $0, retrying: printWarning, warn: printWarning)
                }
                output(started.name)
            }
        }
    }

    /// `change abort NAME`: cancels the jobs and undoes start, in one transaction.
    struct Abort: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Abort a change before complete: cancel its jobs, drop what start added.",
            discussion: """
                One transaction under lock_timeout with retries cancels the backfill and finish \
                jobs and drops the trigger, its function, the change's constraints and indexes \
                and the new columns. The old application never notices.
                """)

        @OptionGroup var connection: ConnectionOptions
        @OptionGroup var queueOptions: QueueOptions
        @OptionGroup var lockOptions: LockOptions
        @Argument(help: "The change's name.") var name: String

        func run() async throws {
            try await withCLIErrors {
                let manager = ChangeManager(schemaName: queueOptions.schema, lockPolicy: lockOptions.policy)
                try await connection.withQueueConnection(logger: makeLogger(queueOptions.logLevel)) {
                    try await manager.abort(name: name, on: $0, retrying: printWarning)
                }
                output("change \(name) aborted")
            }
        }
    }
}

/// The text of a change file, or one line saying it cannot be read.
private func readChangeFile(_ file: String) throws -> String {
    guard let text = try? String(contentsOfFile: Console.current.opened(file), encoding: .utf8) else {
        throw CLIError("\(file): cannot read the file")
    }
    return text
}
