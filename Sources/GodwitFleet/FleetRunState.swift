/// Where a fleet run stands, as `fleet_runs.state` records it.
public enum FleetRunState: String, Sendable, Codable, CaseIterable {
    /// The fleet process is at work on it, or died while it was (`FleetRun.isInterrupted`).
    case running
    /// Every target succeeded.
    case succeeded
    /// The run ended with a target that failed, or skipped.
    case failed
}

/// Where one target of a run stands, as `fleet_targets.state` records it.
public enum FleetTargetState: String, Sendable, Codable, CaseIterable {
    /// Not started yet.
    case pending
    /// Its session is at work (or was, when the fleet process died).
    case running
    case succeeded
    /// It failed; `error` says why, in one line.
    case failed
    /// Never started: a canary failed, or a target failed under `--on-error stop`.
    case skipped

    /// Whether `fleet resume` runs it again: anything but a success.
    public var needsResume: Bool { self != .succeeded }
}
