import GodwitPostgres
import Logging

/// What happened to one migration during `run` or `revert`.
public struct MigrationEvent: Sendable, Equatable {
    public enum Action: String, Sendable {
        /// Applied (up) or reverted (down) just now.
        case applied = "Applied"
        /// Would run, in a dry run.
        case canApply = "Can apply"
        /// Left out by `--target-version`.
        case skipped = "Skipped"
        /// Recorded as applied by `baseline`, without running it.
        case baselined = "Baselined"
    }

    public var action: Action
    public var version: Int64
    public var description: String
    public var kind: Migration.Kind
    public var duration: Duration
    /// In a dry run, what would be sent for it.
    public var plan: MigrationPlan?

    /// sqlx's line: `Applied 20240101000000/migrate create media (12.3ms)`.
    public var line: String {
        "\(action.rawValue) \(version)/\(kind.label) \(description) (\(duration.rustDebugDescription))"
    }
}
