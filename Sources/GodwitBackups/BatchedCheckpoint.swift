import GodwitPostgres

/// A batched job that has a checkpoint (or is running) on a table in a schema a restore
/// replaces.
///
/// Godwit's schema is not in a backup, so a restore rewinds the table but not the job's
/// checkpoint: resuming or retrying the job afterwards continues after keys the restore brought
/// back unprocessed, and it "succeeds" with those rows untouched. A job that goes on by itself
/// (running, or queued with a checkpoint) makes a restore refuse; every other one is reported
/// after the restore, to be rerun from the start.
public struct BatchedCheckpoint: Sendable, Equatable, CustomStringConvertible {
    public var id: Int64
    public var name: String
    /// The job's state: `running`, `queued`, `paused`, `failed`, `cancelled` or `succeeded`.
    public var state: String
    /// The job's table as its payload names it (schema-qualified, quoted as needed).
    public var table: String
    public var batchesDone: Int64
    public var rowsDone: Int64
    /// The last key of the last committed batch, where the job would resume.
    public var cursor: String?
    /// For a shard of a parallel job: the parallel job's id, name and state, which is what a
    /// person cancels and enqueues again.
    public var parent: Parent?

    public struct Parent: Sendable, Equatable, Hashable {
        public var id: Int64
        public var name: String
        public var state: String

        public init(id: Int64, name: String, state: String) {
            self.id = id
            self.name = name
            self.state = state
        }
    }

    public init(
        id: Int64, name: String, state: String, table: String, batchesDone: Int64, rowsDone: Int64, cursor: String?,
        parent: Parent? = nil
    ) {
        self.id = id
        self.name = name
        self.state = state
        self.table = table
        self.batchesDone = batchesDone
        self.rowsDone = rowsDone
        self.cursor = cursor
        self.parent = parent
    }

    /// Whether the job goes on without anyone asking: it is running, or queued with a
    /// checkpoint (a worker claims it and resumes there). A restore refuses while one exists.
    public var continuesByItself: Bool { state == "running" || (state == "queued" && hasCheckpoint) }

    var hasCheckpoint: Bool { batchesDone > 0 || cursor != nil }

    /// `job 12 (backfill_titles, running)`.
    public var label: String { "job \(id) (\(name), \(state))" }

    /// `job 12 (backfill_titles, paused) on public.items: 40 batches, 4000 rows done, checkpoint at key 4000`.
    public var description: String {
        "\(label) on \(table): \(batchesDone) batches, \(rowsDone) rows done"
            + (cursor.map { ", checkpoint at key \($0)" } ?? "")
    }
}

/// What a restore did to the job queue.
public struct RestoreOutcome: Sendable, Equatable {
    /// The batched jobs the restore paused before it began (`pauseJobs`), as they were after.
    public var paused: [BatchedCheckpoint]
    /// Every batched job on the replaced schemas with a checkpoint, whatever its state: the
    /// checkpoint describes the data as it was before the restore, so resuming or retrying the
    /// job would skip rows. Each is to be rerun from the start.
    public var staleCheckpoints: [BatchedCheckpoint]
}
