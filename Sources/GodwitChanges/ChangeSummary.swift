import Foundation
import GodwitPostgres

/// One change as `godwit.changes` shows it: where it stands, its backfill's progress, the rows
/// whose two sides disagree, and whether complete would pass (`ready`) or what blocks it.
///
/// Every key is written in JSON, `null` included, so that a script reading
/// `godwit change status --format json` sees the same shape at every phase.
public struct ChangeSummary: Sendable, Equatable, Encodable {
    public var name: String
    /// The table, schema-qualified and quoted, as the change's DDL names it.
    public var table: String
    /// The phase as stored; an unknown one (a newer Godwit's) is kept as text.
    public var phase: String
    public var rowsDone: Int64
    /// The rows the backfill expects to cover; nil until it has counted them.
    public var rowsTotal: Int64?
    /// Rows the verification found disagreeing; nil until it has run.
    public var disagreeingRows: Int64?
    /// The change is ready and nothing blocks complete.
    public var ready: Bool
    /// Why complete would refuse now, one reason an element; empty when it would pass.
    public var blockedBy: [String]
    public var file: String
    public var keyColumn: String
    /// The backfill job's id and state, while it exists.
    public var backfillJobID: Int64?
    public var backfillState: String?
    public var finishJobID: Int64?
    public var verifiedRows: Int64
    public var verifiedAt: String?
    public var indexesBuiltAt: String?
    public var validatedAt: String?
    /// The last error of the steps after the backfill, in one line.
    public var error: String?
    /// Why complete went ahead without the reader evidence (`--without-reader-check`).
    public var readerCheckWaiver: String?
    /// The migration `complete --write-migration` recorded.
    public var migrationVersion: Int64?
    public var startedBy: String
    public var startedAt: String
    public var readyAt: String?
    public var completedAt: String?
    public var abortedAt: String?

    /// The phase as `ChangePhase`, nil for one this version does not know.
    public var knownPhase: ChangePhase? { ChangePhase(rawValue: phase) }

    /// The backfill's progress in percent (100 once it has succeeded), nil before it has counted.
    public var percent: Double? {
        if backfillState == "succeeded" { return 100 }
        guard let total = rowsTotal, total > 0 else { return nil }
        return min(100, max(0, Double(rowsDone) * 100 / Double(total)))
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: JSONKey.self)
        try encodeFields(into: &container)
    }

    /// The summary's keys into `container`, which `ChangeDetails` shares to keep them at the top.
    func encodeFields(into container: inout KeyedEncodingContainer<JSONKey>) throws {
        try container.encode(name, forKey: "name")
        try container.encode(table, forKey: "table")
        try container.encode(phase, forKey: "phase")
        try container.encode(rowsDone, forKey: "rows_done")
        try container.encode(rowsTotal, forKey: "rows_total")
        try container.encode(disagreeingRows, forKey: "disagreeing_rows")
        try container.encode(ready, forKey: "ready")
        try container.encode(blockedBy, forKey: "blocked_by")
        try container.encode(file, forKey: "file")
        try container.encode(keyColumn, forKey: "key_column")
        try container.encode(backfillJobID, forKey: "backfill_job_id")
        try container.encode(backfillState, forKey: "backfill_state")
        try container.encode(finishJobID, forKey: "finish_job_id")
        try container.encode(verifiedRows, forKey: "verified_rows")
        try container.encode(verifiedAt, forKey: "verified_at")
        try container.encode(indexesBuiltAt, forKey: "indexes_built_at")
        try container.encode(validatedAt, forKey: "validated_at")
        try container.encode(error, forKey: "error")
        try container.encode(readerCheckWaiver, forKey: "reader_check_waiver")
        try container.encode(migrationVersion, forKey: "migration_version")
        try container.encode(startedBy, forKey: "started_by")
        try container.encode(startedAt, forKey: "started_at")
        try container.encode(readyAt, forKey: "ready_at")
        try container.encode(completedAt, forKey: "completed_at")
        try container.encode(abortedAt, forKey: "aborted_at")
    }

    init(row: PostgresRow) throws {
        name = try row.string("name")
        table = try row.string("table")
        phase = try row.string("phase")
        rowsDone = try row.int64("rows_done")
        rowsTotal = row["rows_total"].flatMap { Int64($0) }
        disagreeingRows = row["disagreeing_rows"].flatMap { Int64($0) }
        ready = try row.bool("ready")
        blockedBy = try JSONDecoder().decode([String].self, from: Data((row["blocked_by"] ?? "[]").utf8))
        file = try row.string("file")
        keyColumn = try row.string("key_column")
        backfillJobID = row["backfill_job_id"].flatMap { Int64($0) }
        backfillState = row["backfill_state"]
        finishJobID = row["finish_job_id"].flatMap { Int64($0) }
        verifiedRows = try row.int64("verified_rows")
        verifiedAt = row["verified_at"]
        indexesBuiltAt = row["indexes_built_at"]
        validatedAt = row["validated_at"]
        error = row["error"]
        readerCheckWaiver = row["reader_check_waiver"]
        migrationVersion = row["migration_version"].flatMap { Int64($0) }
        startedBy = try row.string("started_by")
        startedAt = try row.string("started_at")
        readyAt = row["ready_at"]
        completedAt = row["completed_at"]
        abortedAt = row["aborted_at"]
    }
}

/// A JSON key given as text, so that a summary and its details share one object.
struct JSONKey: CodingKey, ExpressibleByStringLiteral {
    var stringValue: String
    var intValue: Int? { nil }
    init(stringValue: String) { self.stringValue = stringValue }
    init?(intValue: Int) { nil }
    init(stringLiteral value: String) { stringValue = value }
}
