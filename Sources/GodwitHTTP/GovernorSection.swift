import Foundation
import GodwitPostgres
import GodwitQueue

/// The backfill governor's state on a batched job's page (and a shard's): the batch size it
/// chose and why, the settings it steers by, and its recent batches as a table and a chart.
extension DashboardPages {
    /// The settings the governor steers by, as the payload holds them (`enqueue_batched`'s
    /// names) and as a job file writes them, with what each means to it.
    static let governorSettings: [(key: String, directive: String, unit: String, meaning: String)] = [
        ("target_batch_ms", "target-batch-ms", " ms", "the ceiling on a batch's duration"),
        (
            "max_lock_wait_ms", "max-lock-wait-ms", " ms",
            "the longest a batch makes another session wait (0 turns the governor off)"
        ),
        ("min_batch_size", "min-batch-size", " rows", "the smallest batch"),
        ("max_batch_size", "max-batch-size", " rows", "the largest batch"),
        (
            "lock_timeout_ms", "lock-timeout", " ms",
            "the longest a batch at min-batch-size waits for another session's lock"
        ),
    ]

    /// How many batches the table lists, newest first, and how many the chart draws.
    static let governorTableBatches = 20
    static let governorChartBatches = 100

    /// The "Governor" section of a batched job: the current size and the worker's reason (left
    /// out while there is none, never shown as "NULL"), the settings from the payload (or why
    /// they are not shown), the lock waits its batches caused, the newest batches and a chart of
    /// their sizes. `batches` are the job's newest, oldest first, as `OperationsStore` reads them.
    func governorSection(_ job: JobRecord, batches: [BatchRow], payload: JobPayload) -> String {
        // Before the first batch, job_progress holds the size the job starts with.
        let starting = batches.isEmpty ? " <small class=\"detail\">to start with</small>" : ""
        var facts: [(String, String)] = [
            ("Batch size", job.batchSize.map { "\($0) rows\(starting)" } ?? "<span class=\"empty\">none yet</span>")
        ]
        if let reason = job.sizeReason, !reason.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty {
            facts.append(("Why", "<span class=\"reason\">\(HTML.escape(String(reason.prefix(1000))))</span>"))
        }
        if let fields = payload.fields {
            let values = Dictionary(fields.map { ($0.key, $0.value) }, uniquingKeysWith: { first, _ in first })
            for setting in Self.governorSettings {
                guard let value = values[setting.key] else { continue }
                facts.append(
                    (
                        setting.directive,
                        "\(HTML.escape(value))\(setting.unit) <small class=\"detail\">\(HTML.escape(setting.meaning))</small>"
                    ))
            }
        } else {
            facts.append(("Settings", "<span class=\"empty\">not shown, with the payload (see above)</span>"))
        }
        facts.append(("Lock waits caused", Self.lockWaits(job.lockWaits, longestMS: job.lockWaitMSMax)))
        let dl =
            "<dl class=\"settings governor\">"
            + facts.map { "<dt>\(HTML.escape($0.0))</dt><dd>\($0.1)</dd>" }.joined() + "</dl>"
        guard !batches.isEmpty else {
            return "<h2>Governor</h2>\(dl)<p class=\"empty\">No batches recorded.</p>"
        }
        let bounds = payload.fields.map { fields in
            let values = Dictionary(fields.map { ($0.key, $0.value) }, uniquingKeysWith: { first, _ in first })
            return (
                min: values["min_batch_size"].flatMap { Int($0) }, max: values["max_batch_size"].flatMap { Int($0) }
            )
        }
        let chart = GovernorChart(
            batches: Array(batches.suffix(Self.governorChartBatches)), minBatchSize: bounds?.min,
            maxBatchSize: bounds?.max)
        return """
            <h2>Governor</h2>\(dl)
            \(chart.svg)
            \(recentBatchesTable(Array(batches.suffix(Self.governorTableBatches).reversed())))
            """
    }

    /// The newest batches, newest first: size, duration, rows changed, the sessions made to wait
    /// and the longest wait, and a failed attempt's error. On a phone the rows changed and the
    /// count of waiters hide (`opt`), so the table fits the screen.
    func recentBatchesTable(_ batches: [BatchRow]) -> String {
        let rows = batches.map { b in
            let wait = b.lockWaiters == 0 ? "" : Duration.milliseconds(b.lockWaitMS).millisecondsDescription
            let error =
                b.error.map {
                    "<span class=\"error\" title=\"\(HTML.escape(String($0.prefix(1000))))\">\(HTML.escape(String($0.prefix(300))))</span>"
                } ?? ""
            return """
                <tr data-batch="\(b.seq)"\(b.error == nil ? "" : " class=\"failed\"")><td class="num">\(b.seq)</td>\
                <td class="num">\(b.batchSize)</td><td class="num">\(Duration.milliseconds(b.durationMS).millisecondsDescription)</td>\
                <td class="opt num">\(b.error == nil ? String(b.rowsChanged) : "")</td>\
                <td class="opt num">\(b.lockWaiters == 0 ? "" : String(b.lockWaiters))</td><td class="num">\(wait)</td>\
                <td>\(error)</td></tr>
                """
        }.joined()
        return """
            <div class="scroll"><table class="batches"><caption>The last \(batches.count) batches, newest first</caption>\
            <thead><tr><th class="num">Batch</th><th class="num">Size</th><th class="num">Took</th>\
            <th class="opt num">Rows changed</th><th class="opt num" title="Sessions that waited on its locks">Waiters</th>\
            <th class="num">Longest wait</th><th class="c-error">Error</th></tr></thead><tbody>\(rows)</tbody></table></div>
            """
    }
}
