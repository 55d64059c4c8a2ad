import GodwitPostgres

/// Godwit's own schema (`godwit` by default) as the queue sees it: its name, the queue's
/// channel, and the parts installed with the queue. Never the application's `_sqlx_migrations`.
///
/// The schema holds the parts of three owners (`SchemaPart`): the queue's, here
/// (`Resources/queue.sql`), the backups' and the jobs'. The queue needs none of the others, but
/// what runs on it does: a worker is given the schema with the backups' and the jobs' parts as
/// `companions` (GodwitJobs' `QueueSchema.withJobs`), and installs them all at start, under one
/// advisory lock, so several workers starting at once install exactly once.
public struct QueueSchema: Sendable {
    /// The schema's name, unquoted.
    public let name: String
    /// The other owners' parts, installed after the queue's by `install(on:)`.
    public let companions: [SchemaPart]
    /// The steps from before owners, oldest first (see `init`).
    public let legacySteps: [String]

    /// - Parameter legacySteps: the steps from before owners (templates), which take a
    ///   database an older godwit left short of the last step to it before it is converted;
    ///   without them such a database is refused.
    public init(name: String = "godwit", companions: [SchemaPart] = [], legacySteps: [String] = []) {
        self.name = name
        self.companions = companions
        self.legacySteps = legacySteps
    }

    /// The schema name quoted for SQL.
    public var quoted: String { quoteIdentifier(name) }

    /// The channel that workers LISTEN on and the insert trigger NOTIFYs.
    public var channel: String { name == "godwit" ? "godwit_jobs" : "\(name)_jobs" }

    /// `<schema>.<object>`, quoted.
    public func qualified(_ object: String) -> String { "\(quoted).\(quoteIdentifier(object))" }

    /// The newest version of the queue's part this build knows.
    public var latestVersion: Int { SchemaPart.queue.latestVersion }

    /// Installs or upgrades the queue's part and the companions'. Safe to call from many
    /// processes at once.
    public func install(on connection: Connection) async throws {
        try await installer.install(on: connection)
    }

    /// The installed version of the queue's part, 0 when not installed.
    public func installedVersion(on connection: Connection) async throws -> Int {
        try await installer.installedVersions(on: connection)[SchemaPart.queue.owner] ?? 0
    }

    /// Whether every part installed with the queue is at the version this build knows.
    public func isCurrent(on connection: Connection) async throws -> Bool {
        let installed = try await installer.installedVersions(on: connection)
        return installer.parts.allSatisfy { installed[$0.owner] == $0.latestVersion }
    }

    private var installer: SchemaInstaller {
        SchemaInstaller(
            schema: name, parts: [.queue] + companions, variables: ["@channel@": quoteLiteral(channel)],
            legacySteps: legacySteps)
    }
}

extension SchemaPart {
    /// The queue's part (owner `queue`): the jobs and their controls, the workers, each
    /// attempt's error. `Resources/queue.sql`, embedded at build time (one file to deploy) and
    /// decoded once.
    public static let queue = SchemaPart(
        owner: "queue", install: SchemaPart.template(PackageResources.queue_sql))
}
