import Foundation
import GodwitMigrations
import GodwitPostgres

/// How `fleet migrate` runs its targets, as `fleet_runs.options` records it (snake_case JSON),
/// so that `fleet resume` runs the rest the same way.
public struct FleetMigrateOptions: Sendable, Equatable, Codable {
    /// What a failure does to the targets not started yet.
    public enum OnError: String, Sendable, Codable, CaseIterable {
        /// Start no new target; those not started are `skipped`.
        case stop
        /// Run every target.
        case `continue`
    }

    /// The first `canary` targets run one by one before the rest; any failure among them stops
    /// the run. 0 runs no canary.
    public var canary: Int
    /// At most this many targets at once (each on its own connection).
    public var parallel: Int
    public var onError: OnError
    /// Every migration's `lock_timeout` in milliseconds; nil turns it off.
    public var lockTimeoutMs: Int64?
    /// How many times a migration that timed out on a lock is tried again.
    public var lockRetries: Int
    /// Refuse a target's run when lint's trace flags a pending statement (`migrate run --strict`).
    public var strict: Bool
    /// How long one attempt to connect to a target may take, in seconds.
    public var connectTimeoutSeconds: Double
    /// The migrations folder, absolute: what resume reads again.
    public var sourcePath: String
    /// The sqlx.toml read with it (absolute), nil for none: its table-name, create-schemas
    /// and ignored-chars apply to database targets (a schema target's ledger is its schema's).
    public var configPath: String?

    public init(
        canary: Int = 1, parallel: Int = 4, onError: OnError = .stop, lockTimeoutMs: Int64? = 2000,
        lockRetries: Int = 30, strict: Bool = false, connectTimeoutSeconds: Double = 10, sourcePath: String,
        configPath: String? = nil
    ) {
        self.canary = canary
        self.parallel = parallel
        self.onError = onError
        self.lockTimeoutMs = lockTimeoutMs
        self.lockRetries = lockRetries
        self.strict = strict
        self.connectTimeoutSeconds = connectTimeoutSeconds
        self.sourcePath = sourcePath
        self.configPath = configPath
    }

    enum CodingKeys: String, CodingKey {
        case canary, parallel, strict
        case onError = "on_error"
        case lockTimeoutMs = "lock_timeout_ms"
        case lockRetries = "lock_retries"
        case connectTimeoutSeconds = "connect_timeout_s"
        case sourcePath = "source_path"
        case configPath = "config"
    }

    /// The migrations' lock policy: `lock_timeout` and retries, with the default backoff.
    public var lockPolicy: LockTimeoutPolicy {
        LockTimeoutPolicy(lockTimeout: lockTimeoutMs.map { .milliseconds($0) }, retries: lockRetries)
    }

    /// The session options a target's connection opens with: `connectTimeoutSeconds` for one
    /// attempt (no retry: a target that is down fails alone, at once), and the keepalives and
    /// `tcp_user_timeout` of `SessionOptions`, which end a session whose server stopped answering.
    public var sessionOptions: SessionOptions {
        var options = SessionOptions()
        options.applicationName = "godwit fleet"
        options.connectTimeout = .milliseconds(Int64((connectTimeoutSeconds * 1000).rounded()))
        return options
    }

    /// Refuses options that cannot work with a fleet of `targetCount` targets, before anything
    /// runs: `--parallel` below 1, a negative canary or one larger than the fleet, negative
    /// retries, a connect timeout that is not positive.
    public func validate(targetCount: Int) throws {
        guard parallel >= 1 else {
            throw FleetError(.badOptions, "--parallel \(parallel): at least 1 target must run at a time")
        }
        guard canary >= 0 else { throw FleetError(.badOptions, "--canary \(canary): must be 0 or more") }
        guard canary <= targetCount else {
            throw FleetError(
                .badOptions,
                "--canary \(canary) is larger than the fleet (\(targetCount) target\(targetCount == 1 ? "" : "s"))")
        }
        guard lockRetries >= 0 else { throw FleetError(.badOptions, "--lock-retries must be 0 or more") }
        guard connectTimeoutSeconds > 0, connectTimeoutSeconds.isFinite else {
            throw FleetError(.badOptions, "--connect-timeout must be more than 0 seconds")
        }
    }

    /// The options as `fleet_runs.options` holds them.
    public func jsonText() throws -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return String(decoding: try encoder.encode(self), as: UTF8.self)
    }

    /// Reads `fleet_runs.options` of a migrate run.
    public static func from(jsonText: String) throws -> FleetMigrateOptions {
        try JSONDecoder().decode(FleetMigrateOptions.self, from: Data(jsonText.utf8))
    }
}
