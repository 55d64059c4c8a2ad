/// Where a change stands, as `change_records.phase` stores it.
///
/// `start` moves a change through `expanding` inside its one transaction, so others first see
/// it `backfilling`. The worker takes it to `verifying` when the backfill has succeeded, and to
/// `ready` once verification read zero disagreeing rows, the indexes are built and the
/// constraints validated. `complete` takes a ready change through `completing` to
/// `completed`; `abort` takes any change before that to `aborted`. `planned` is never stored:
/// it is what `status` says of a file not started.
public enum ChangePhase: String, Sendable, Codable, CaseIterable {
    case planned, expanding, backfilling, verifying, ready, completing, completed, aborted

    /// Whether the change still holds its columns and trigger: neither completed nor aborted.
    public var isInFlight: Bool { self != .planned && self != .completed && self != .aborted }
}
