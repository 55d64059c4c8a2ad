import Foundation
import GodwitJobs
import GodwitPostgres
import GodwitQueue
import GodwitTestSupport
import Testing

@testable import GodwitHTTP

/// The backfill governor's state on a batched job's page: the size it chose and why, the
/// settings it steers by, its recent batches and a chart of their sizes (issue 20). Until the
/// worker writes `size_reason`, the tests set it as the queue's owner.
@Suite("The dashboard's governor section: size, reason, settings, recent batches, chart")
struct GovernorSectionTests {
    /// A reason that would run a script if it were not escaped.
    static let reason =
        "a session waited 42 ms on batch 17 (limit 15 ms): cut to a quarter <script>alert(1)</script> & more"

    @Test(
        "A batched job shows its governor: the reason escaped, the settings, the newest 20 batches with a failed one, the chart of the last 100"
    )
    func governorOfABatchedJob() async throws {
        try await withOperations { database, _, client in
            let id = try await enqueueBackfill(database, parallel: 1)
            // 130 batches: sizes 10, 20, ... 1300; batch 120 failed (a lock timeout), batch 119
            // made two sessions wait, the longest 42 ms.
            try await sql(
                database,
                "UPDATE godwit.job_progress SET batch_size = 1200, size_reason = \(quoteLiteral(Self.reason)) WHERE job_id = \(id)",
                """
                INSERT INTO godwit.batches (job_id, seq, attempt, rows, rows_changed, batch_size, duration_ms, error,
                    lock_waiters, lock_wait_ms)
                SELECT \(id), g, 1, 10 * g, 7 * g, 10 * g, 2 * g,
                    CASE WHEN g = 120 THEN 'canceling statement due to lock timeout <b>' END,
                    CASE WHEN g = 119 THEN 2 ELSE 0 END, CASE WHEN g = 119 THEN 42 ELSE 0 END
                FROM generate_series(1, 130) g
                """)
            for path in ["/jobs/\(id)", "/fragments/jobs/\(id)"] {
                try await client.execute(uri: path, method: .get) { response in
                    let page = response.text
                    #expect(response.status == .ok)
                    let governor = try #require(section(page, "Governor"), "\(path)")
                    #expect(governor.contains("<dt>Batch size</dt><dd>1200 rows</dd>"), "\(governor)")
                    #expect(
                        governor.contains(
                            "<dt>Why</dt><dd><span class=\"reason\">a session waited 42 ms on batch 17 (limit 15 ms): cut to a "
                                + "quarter &lt;script&gt;alert(1)&lt;/script&gt; &amp; more</span></dd>"), "\(governor)"
                    )
                    #expect(!page.contains("<script>alert"), "the reason is escaped")
                    for (setting, value) in [
                        ("target-batch-ms", "250 ms"), ("max-lock-wait-ms", "15 ms"), ("min-batch-size", "50 rows"),
                        ("max-batch-size", "4000 rows"), ("lock-timeout", "2000 ms"),
                    ] {
                        #expect(governor.contains("<dt>\(setting)</dt><dd>\(value) <small"), "\(setting)")
                    }
                    #expect(governor.contains("the ceiling on a batch&#39;s duration"))

                    // The table: batches 130 down to 111, the failed one marked with its error.
                    let rows = governor.components(separatedBy: "<tr data-batch=\"").dropFirst()
                        .map { $0.components(separatedBy: "</tr>")[0] }
                    #expect(
                        rows.compactMap { Int($0.prefix { $0 != "\"" }) } == Array((111...130).reversed()), "\(rows)")
                    let failed = try #require(rows.first { $0.hasPrefix("120\"") })
                    #expect(failed.contains("class=\"failed\""), "\(failed)")
                    #expect(failed.contains("canceling statement due to lock timeout &lt;b&gt;"), "\(failed)")
                    let waited = try #require(rows.first { $0.hasPrefix("119\"") })
                    #expect(
                        waited.contains(
                            "<td class=\"num\">1190</td><td class=\"num\">238 ms</td><td class=\"opt num\">833</td><td class=\"opt num\">2</td><td class=\"num\">42 ms</td>"
                        ),
                        "\(waited)")
                    #expect(!waited.contains("class=\"failed\""))

                    // The chart: the last 100 batches (31 to 130), the failure marked where it was.
                    #expect(governor.contains("<svg class=\"chart governor\""))
                    #expect(governor.contains("batch size, rows, over the last 100 batches</text>"))
                    #expect(
                        governor.contains("text-anchor=\"start\">31</text>")
                            && governor.contains("text-anchor=\"end\">130</text>"))
                    #expect(
                        governor.components(separatedBy: "<circle class=\"fail mark\" cx=").count - 1 == 1,
                        "one failed attempt")
                    #expect(governor.contains("<title>batch 120 failed at 1200 rows</title>"))
                    #expect(governor.contains(">failed attempt</text>"), "the legend explains the mark")
                    #expect(governor.contains("<title>batch 119, 1190 rows: made 2 wait, longest 42 ms</title>"))
                    #expect(governor.contains("<title>min-batch-size 50</title>"), "the lower bound is drawn")
                    #expect(!governor.contains("max-batch-size 4000</title>"), "4000 is above the axis (0 to 1500)")
                    #expect(!page.contains("NULL"))
                }
            }
        }
    }

    @Test(
        "Without a reason or batches yet the section says so, never NULL; a reader sees no settings; other kinds have no section"
    )
    func governorBeforeTheFirstBatch() async throws {
        try await withRoles(["govread"]) { roles in
            let reader = roles[0]
            try await withTestDatabase(prefix: "godwit_http_governor") { database in
                let admin = try await database.connect()
                try await QueueSchema.withJobs().install(on: admin)
                try await admin.query("SELECT godwit.grant_read($1::regrole)", [reader.name])
                await admin.close()
                let id = try await enqueueBackfill(database, parallel: 1)
                let other = try await enqueue(database, kind: .noop, name: "not batched")
                // Whitespace is no reason either.
                try await sql(database, "UPDATE godwit.job_progress SET size_reason = ' ' WHERE job_id = \(id)")
                for url in [database.url, try reader.url(database)] {
                    try await withOperations(database, url: url) { client in
                        try await client.execute(uri: "/jobs/\(id)", method: .get) { response in
                            let page = response.text
                            let governor = try #require(section(page, "Governor"), "\(url)")
                            #expect(
                                governor.contains(
                                    "<dt>Batch size</dt><dd>100 rows <small class=\"detail\">to start with</small></dd>"
                                ))
                            #expect(!governor.contains("<dt>Why</dt>"), "\(governor)")
                            #expect(governor.contains("No batches recorded."))
                            #expect(!governor.contains("<svg"))
                            #expect(!page.contains("NULL"))
                            if url == database.url {
                                #expect(
                                    governor.contains("<dt>target-batch-ms</dt><dd>250 ms"),
                                    "the owner sees the settings")
                            } else {
                                #expect(!governor.contains("<dt>target-batch-ms</dt>"), "a reader does not")
                                #expect(
                                    governor.contains(
                                        "<dt>Settings</dt><dd><span class=\"empty\">not shown, with the payload"))
                            }
                        }
                        try await client.execute(uri: "/jobs/\(other)", method: .get) { response in
                            #expect(response.status == .ok)
                            #expect(section(response.text, "Governor") == nil)
                        }
                    }
                }
            }
        }
    }

    @Test("A parallel job lists each shard's reason beside its batch size; each shard's page has its governor")
    func governorOfShards() async throws {
        try await withOperations { database, _, client in
            let parent = try await enqueueBackfill(database, parallel: 2)
            let connection = try await database.connect()
            let shards = try await connection.query(
                "SELECT id FROM godwit.jobs WHERE parent_id = $1 ORDER BY id", [parent]
            )
            .rows.map { try $0.int64("id") }
            await connection.close()
            try #require(shards.count == 2)
            try await sql(
                database,
                "UPDATE godwit.job_progress SET batch_size = 400, size_reason = 'shard one <i>climbing</i>' WHERE job_id = \(shards[0])",
                "UPDATE godwit.job_progress SET batch_size = 100, size_reason = 'shard two cut' WHERE job_id = \(shards[1])"
            )
            try await client.execute(uri: "/jobs/\(parent)", method: .get) { response in
                let page = response.text
                #expect(section(page, "Governor") == nil, "the parent runs no batch")
                #expect(page.contains("<th>Batch size</th><th>Why this size</th>"))
                #expect(
                    page.contains(
                        "<td class=\"num\">400</td><td class=\"reason\">shard one &lt;i&gt;climbing&lt;/i&gt;</td>"),
                    "\(page)")
                #expect(page.contains("<td class=\"num\">100</td><td class=\"reason\">shard two cut</td>"))
            }
            try await client.execute(uri: "/jobs/\(shards[1])", method: .get) { response in
                let governor = try #require(section(response.text, "Governor"))
                #expect(
                    governor.contains(
                        "<dt>Batch size</dt><dd>100 rows <small class=\"detail\">to start with</small></dd>"))
                #expect(governor.contains("<span class=\"reason\">shard two cut</span>"))
                #expect(
                    governor.contains("<dt>max-batch-size</dt><dd>4000 rows"), "a shard carries its parent's settings")
            }
        }
    }

    @Test("The chart draws one point a batch, the bounds within its axis, and marks each failed attempt")
    func chartMarks() {
        let batches = (1...10).map { i in
            BatchRow(
                seq: Int64(i), rows: 100, batchSize: 100 * i, durationMS: 5,
                error: i == 4 || i == 9 ? "lock timeout" : nil,
                lockWaiters: i == 5 ? 3 : 0, lockWaitMS: i == 5 ? 12 : 0)
        }
        let svg = GovernorChart(batches: batches, minBatchSize: 100, maxBatchSize: 5000).svg
        #expect(svg.components(separatedBy: "<circle class=\"fail mark\" cx=").count - 1 == 2)
        #expect(svg.components(separatedBy: "<circle class=\"wait mark\" cx=").count - 1 == 1)
        let path = svg.components(separatedBy: "<path class=\"size\" d=\"").dropFirst().first
        #expect(path?.prefix { $0 != "\"" }.split(separator: " ").count == 10)
        #expect(svg.contains("<title>min-batch-size 100</title>"))
        #expect(!svg.contains("max-batch-size"), "5000 is beyond an axis that ends at 1000")
        #expect(svg.contains("text-anchor=\"end\">1k</text>"), "the axis's top")
        let one = GovernorChart(batches: [batches[0]], minBatchSize: nil, maxBatchSize: nil).svg
        #expect(one.contains("text-anchor=\"middle\">1</text>"), "a single batch is labelled once")
    }

    @Test(
        "Durations and waits read in tenths below 10 ms, whole milliseconds above",
        arguments: [
            (0.44, "0.4 ms"), (8.46, "8.5 ms"), (10, "10 ms"), (238.2, "238 ms"),
        ] as [(Double, String)])
    func milliseconds(value: Double, expected: String) {
        #expect(Duration.milliseconds(value).millisecondsDescription == expected)
    }

    // MARK: Helpers

    /// The HTML of the `<h2>` section named `title`, up to the next `<h2>`; nil without it.
    func section(_ page: String, _ title: String) -> String? {
        guard let start = page.range(of: "<h2>\(title)</h2>") else { return nil }
        let rest = page[start.upperBound...]
        return String(rest[..<(rest.range(of: "<h2>")?.lowerBound ?? rest.endIndex)])
    }

    /// A batched job over a small table, enqueued by the owner with governor settings of its own
    /// (target-batch-ms 250, max-lock-wait-ms 15, min-batch-size 50, max-batch-size 4000), split
    /// into `parallel` shards when more than one.
    func enqueueBackfill(_ database: TestDatabase, parallel: Int) async throws -> Int64 {
        let connection = try await database.connect()
        do {
            try await connection.query("CREATE TABLE items (id bigint PRIMARY KEY, n int NOT NULL DEFAULT 0)")
            try await connection.query("INSERT INTO items (id) SELECT generate_series(1, 5000)")
            let id = try #require(
                try await connection.query(
                    """
                    SELECT godwit.enqueue_batched('backfill items', 'items', 'id',
                        'UPDATE items SET n = n + 1 WHERE id BETWEEN $1 AND $2', batch_size => 100,
                        target_batch_ms => 250, min_batch_size => 50, max_batch_size => 4000, max_lock_wait_ms => 15,
                        parallel => $1) AS id
                    """, [parallel]
                ).first?.int64("id"))
            await connection.close()
            return id
        } catch {
            await connection.close()
            throw error
        }
    }

    /// `text` as an SQL string literal (test data only).
    func quoteLiteral(_ text: String) -> String { "'" + text.replacingOccurrences(of: "'", with: "''") + "'" }
}
