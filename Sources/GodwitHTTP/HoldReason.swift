/// The `reason` label of `godwit_batched_held`: what kind of hold, never the hold's text.
///
/// The text can be anyone's: a failing health query's error message is written by whoever
/// enqueued the job. As a label it would make a new series for every message, so it is mapped
/// to one of a fixed set by the worker's own prefix (see `holdReason()` in GodwitJobs'
/// `BatchRunner+Holds.swift`); the full text stays on the dashboard.
enum HoldReason {
    static let categories = [
        "replication_lag", "autovacuum", "archive_backlog", "worker_health_query", "job_health_query", "other",
    ]

    /// The category of a hold reason's text; `other` for any text the worker does not write.
    static func category(_ text: String) -> String {
        let prefixes: [(String, String)] = [
            ("replication lag", "replication_lag"),
            ("autovacuum", "autovacuum"),
            ("WAL archiving", "archive_backlog"),
            ("the worker's health query", "worker_health_query"),
            ("the job's health query", "job_health_query"),
        ]
        return prefixes.first { text.hasPrefix($0.0) }?.1 ?? "other"
    }
}
