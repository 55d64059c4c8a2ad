import GodwitPostgres

/// What `godwit migrate check`, the deploy gate, found: the database passes when it has every
/// migration of the source and none was modified since it was applied.
public struct DeployCheck: Sendable, Equatable {
    /// One reason the gate fails, for one migration.
    public struct Reason: Sendable, Equatable {
        public enum Kind: String, Sendable {
            /// In the source, not applied.
            case pending
            /// Applied, and its file changed since.
            case modified
            /// Its ledger row has `success = false`: a run stopped part-way.
            case partiallyApplied
            /// Applied, and no file for it in the source.
            case missingFromSource
        }

        public var kind: Kind
        public var status: MigrationStatus
        /// The line a person reads, naming the migration and its file (or the folder it is
        /// missing from).
        public var text: String
    }

    /// Every migration of the source and the ledger, in version order.
    public var statuses: [MigrationStatus]
    /// Why the gate fails, in version order; empty when it passes.
    public var reasons: [Reason]

    /// True when nothing is pending, modified, partially applied or (unless ignored) missing.
    public var passed: Bool { reasons.isEmpty }
}

extension Migrator {
    /// The deploy gate: fails on a pending migration, an applied file modified since, a
    /// partially applied migration and (unless `ignoreMissing`) an applied migration missing
    /// from the source. A lone `.down.sql` keeps its version present, as it does for `run`.
    /// Reads only: takes no lock and creates nothing.
    public func deployCheck(on connection: Connection, ignoreMissing: Bool = false) async throws -> DeployCheck {
        let statuses = try await status(on: connection)
        let reasons = statuses.compactMap { status -> DeployCheck.Reason? in
            let name = "\(status.version)/\(status.description)"
            let path = status.path ?? ""
            switch status.state {
            case .installed, .downOnly: return nil
            case .pending: return DeployCheck.Reason(kind: .pending, status: status, text: "pending: \(name) (\(path))")
            case .modified:
                return DeployCheck.Reason(
                    kind: .modified, status: status, text: "modified since it was applied: \(name) (\(path))")
            case .failed:
                return DeployCheck.Reason(kind: .partiallyApplied, status: status, text: "partially applied: \(name)")
            case .missingFromSource:
                guard !ignoreMissing else { return nil }
                return DeployCheck.Reason(
                    kind: .missingFromSource, status: status,
                    text: "applied but missing from \(source.directory): \(name)")
            }
        }
        return DeployCheck(statuses: statuses, reasons: reasons)
    }
}
