import GodwitPostgres

/// What a job does, as the `kind` column stores it: the name a `JobHandler` serves.
///
/// Kinds are an open set (any handler registers its own, and a table may hold a kind no worker
/// here runs), so this is a struct around the name with the kinds Godwit ships as static members,
/// not an enum. They are named here, in the queue, rather than beside their handlers in
/// GodwitJobs, so that every reader (the dashboard and the metrics, which do not link the
/// handlers) spells them one way; a handler of another kind names it in an extension, as the
/// tests' `SleepJob` does.
public struct JobKind: RawRepresentable, Hashable, Comparable, Sendable, Codable, CustomStringConvertible {
    /// The name, as stored.
    public let rawValue: String

    public init(rawValue: String) { self.rawValue = rawValue }

    public init(_ rawValue: String) { self.rawValue = rawValue }

    /// The name, as stored and shown.
    public var description: String { rawValue }

    public static func < (lhs: JobKind, rhs: JobKind) -> Bool { lhs.rawValue < rhs.rawValue }

    public init(from decoder: any Decoder) throws {
        rawValue = try decoder.singleValueContainer().decode(String.self)
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(rawValue)
    }

    /// Does nothing: for benchmarks and smoke tests (`NoopJob`).
    public static let noop = JobKind("noop")
    /// An SQL script run in the enqueuer's session (`SQLJob`).
    public static let sql = JobKind("sql")
    /// Pending migrations applied by a worker (`MigrateJob`).
    public static let migrate = JobKind("migrate")
    /// A batched data migration, or one shard of a parallel one (`BatchedJob`).
    public static let batched = JobKind("batched")
    /// The parent of a batched data migration split into shards (`enqueue_batched` with
    /// `parallel`); no worker runs it: its shards, of kind `batched`, do the work.
    public static let batchedParallel = JobKind("batched_parallel")
    /// The steps of a zero-downtime column change after its backfill: verification, index
    /// builds, validation (GodwitChanges' `ChangeJob`).
    public static let change = JobKind("change")

    /// The kinds the `godwit` worker runs, and the parallel parent its shards report to: the
    /// labels of the metrics and the dashboard's kind filter.
    public static let shipped: [JobKind] = [.noop, .sql, .batched, .batchedParallel, .migrate, .change]
}

extension JobKind: PostgresParameter {
    public var postgresText: String? { rawValue }
}
