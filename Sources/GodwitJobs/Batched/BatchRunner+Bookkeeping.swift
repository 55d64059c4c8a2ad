import Foundation
import GodwitPostgres
import GodwitQueue
import Logging

/// The attempt's bookkeeping over the worker's own connections: failed batches in the history,
/// the size reason on the progress row, the history trimmed, and the progress log line.
extension BatchRunner {
    /// Records a failed attempt at the next batch in `<schema>.batches`.
    func recordFailedBatch(_ failure: BatchFailure, attempt: Int) async throws {
        let (job, seq, size) = (context.job.id, batchesDone + 1, controller.size)
        try await context.pool.withConnection { [history] connection in
            try await history.recordFailure(
                job: job, seq: seq, attempt: attempt, first: failure.first, last: failure.last, size: size,
                duration: failure.duration, error: failure.error.summary, on: connection)
        }
    }

    /// Writes why the next batch has its size to `job_progress.size_reason`, when it changed: at
    /// once when `force`d (after a failed attempt), else at most once a second.
    mutating func writeSizeReason(force: Bool = false) async throws {
        // Checked before the text is made: this runs after every batch.
        if !force, let written = writtenReason, clock.now - written.at < .seconds(1) { return }
        let text = controller.explanation
        if writtenReason?.text == text { return }
        writtenReason = (text, clock.now)
        try await context.pool.withConnection { [progress, context] connection in
            try await progress.setSizeReason(text, job: context.job.id, on: connection)
        }
    }

    /// Keeps the newest `batchHistory` batches of the job.
    func trimHistory() async throws {
        let through = batchesDone - Int64(throttle.batchHistory)
        try await context.pool.withConnection { [history, context] connection in
            try await history.trim(job: context.job.id, through: through, on: connection)
        }
    }

    func logProgress(first: String, last: String, rows: Int, duration: Duration) {
        let rowsPerSecond =
            recent.isEmpty ? 0 : Double(recent.map(\.rows).reduce(0, +)) / recent.map(\.seconds).reduce(0, +)
        var metadata: Logger.Metadata = [
            "job": "\(context.job.id)", "batch": "\(batchesDone)", "keys": "\(first)..\(last)", "rows": "\(rows)",
            "rows_per_second": "\(Int(rowsPerSecond))", "batch_size": "\(controller.size)",
            "batch_ms": "\(Int(duration.milliseconds))",
        ]
        if let rowsTotal, rowsTotal > 0 {
            metadata["percent"] = "\(String(format: "%.1f", min(100, 100 * Double(rowsDone) / Double(rowsTotal))))"
            if rowsPerSecond > 0, rowsTotal > rowsDone {
                metadata["eta_seconds"] = "\(Int(Double(rowsTotal - rowsDone) / rowsPerSecond))"
            }
        }
        context.logger.info("batched job progress", metadata: metadata)
    }
}
