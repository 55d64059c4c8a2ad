import Foundation
import GodwitJobs
import GodwitPostgres
import GodwitQueue
import GodwitTestSupport
import Hummingbird
import HummingbirdTesting
import Logging
import Testing

@testable import GodwitHTTP

/// Runs `body` against the operations router of `database`, logged in to the database as `url`
/// (another role than the owner, to test what it may see and do).
func withOperations<T: Sendable>(
    _ database: TestDatabase, url: String, _ body: @Sendable (any TestClientProtocol) async throws -> T
) async throws -> T {
    var configuration = OperationsConfiguration(databaseURL: url)
    configuration.healthTimeout = .seconds(30)
    configuration.metricsReadInterval = .zero
    let server = OperationsServer(configuration: configuration, logger: Logger(label: "test"))
    do {
        let value = try await Application(router: server.router()).test(.router) { client in try await body(client) }
        await server.pool.close()
        return value
    } catch {
        await server.pool.close()
        throw error
    }
}

/// Runs SQL as the database's owner.
func sql(_ database: TestDatabase, _ statements: String...) async throws {
    let connection = try await database.connect()
    do {
        for statement in statements { try await connection.execute(statement) }
        await connection.close()
    } catch {
        await connection.close()
        throw error
    }
}

/// The rows of the jobs table on a page, each the text between `<tr data-job=` and `</tr>`.
func jobRows(_ page: String) -> [String] {
    page.components(separatedBy: "<tr data-job=").dropFirst().map { $0.components(separatedBy: "</tr>")[0] }
}

/// The job ids in the list, in order.
func jobIDs(_ page: String) -> [Int64] {
    page.components(separatedBy: "<tr data-job=\"").dropFirst().compactMap { Int64($0.prefix { $0 != "\"" }) }
}

@Suite("The dashboard: counts, times, stale jobs, workers, job details, bulk retry, confirm, pages")
struct DashboardFeatureTests {
    @Test("Counts by state and of stale jobs head the list, each a link to the list filtered by it")
    func countsByState() async throws {
        try await withOperations { database, _, client in
            try await sql(
                database,
                """
                INSERT INTO godwit.jobs (kind, name, state) VALUES ('noop', 'q1', 'queued'), ('noop', 'q2', 'queued'),
                    ('noop', 'f1', 'failed'), ('noop', 's1', 'succeeded'), ('noop', 's2', 'succeeded'),
                    ('noop', 's3', 'succeeded'), ('noop', 'c1', 'cancelled'), ('noop', 'p1', 'paused')
                """,
                // 'alive' beats an hour ahead, so that no slow run of the test sees it go stale.
                "INSERT INTO godwit.workers (id, heartbeat_at) VALUES ('gone', now() - interval '5 minutes'), ('alive', now() + interval '1 hour')",
                """
                INSERT INTO godwit.jobs (kind, name, state, worker_id, heartbeat_at, started_at)
                VALUES ('noop', 'r_stale', 'running', 'gone', now() - interval '5 minutes', now() - interval '10 minutes'),
                    ('noop', 'r_fresh', 'running', 'alive', now() + interval '1 hour', now())
                """)
            for path in ["/", "/fragments/counts"] {
                try await client.execute(uri: path, method: .get) { response in
                    let page = response.text
                    for (state, count) in [
                        ("queued", 2), ("running", 2), ("paused", 1), ("succeeded", 3), ("failed", 1), ("cancelled", 1),
                        ("stale", 1),
                    ] {
                        #expect(page.contains("data-state=\"\(state)\""), "\(path) \(state)")
                        #expect(page.contains("><b>\(count)</b> \(state)</a>"), "\(path): \(count) \(state)")
                    }
                    #expect(page.contains("<b>10</b> all"), "\(path)")
                    #expect(page.contains("href=\"/?state=failed\""))
                }
            }
            try await client.execute(uri: "/?state=failed", method: .get) { response in
                #expect(
                    response.text.contains(
                        "class=\"count failed\" data-state=\"failed\" href=\"/?state=failed\" aria-current=\"true\""))
                #expect(
                    response.text.contains("data-live=\"/fragments/counts?state=failed\""),
                    "the live counts keep the filter")
            }
        }
    }

    @Test("A running job whose worker has not been seen for stale_after() is marked stale in the list and on its page")
    func staleMarker() async throws {
        try await withOperations { database, _, client in
            try await sql(
                database,
                // 'alive' beats an hour ahead, so that no slow run of the test sees it go stale.
                "INSERT INTO godwit.workers (id, heartbeat_at) VALUES ('gone', now() - interval '1 minute'), ('alive', now() + interval '1 hour')",
                """
                INSERT INTO godwit.jobs (kind, name, state, worker_id, heartbeat_at, started_at)
                VALUES ('noop', 'orphaned', 'running', 'gone', now() - interval '1 minute', now() - interval '2 minutes'),
                    ('noop', 'healthy', 'running', 'alive', now() + interval '1 hour', now() - interval '2 minutes')
                """)
            let ids = try await idsByName(database)
            try await client.execute(uri: "/", method: .get) { response in
                let rows = Dictionary(uniqueKeysWithValues: zip(jobIDs(response.text), jobRows(response.text)))
                let stale = try #require(rows[ids["orphaned"]!])
                let fresh = try #require(rows[ids["healthy"]!])
                #expect(stale.contains("class=\"stale\""))
                #expect(stale.contains("data-stale=\"true\""))
                #expect(Self.seenMinutesAgo(stale, "its worker"), "\(stale)")
                #expect(!fresh.contains("data-stale"), "\(fresh)")
            }
            for path in ["/jobs/\(ids["orphaned"]!)", "/fragments/jobs/\(ids["orphaned"]!)"] {
                try await client.execute(uri: path, method: .get) { response in
                    #expect(response.text.contains("data-stale=\"true\""), "\(path)")
                    #expect(Self.seenMinutesAgo(response.text, "Its worker"), "\(path)")
                }
            }
            try await client.execute(uri: "/jobs/\(ids["healthy"]!)", method: .get) { response in
                #expect(!response.text.contains("data-stale"))
                #expect(response.text.contains("alive <small>seen in "), "the worker and when it was seen")
            }
        }
    }

    /// Whether `text` says `subject` was last seen a minute or a few ago: the worker's heartbeat
    /// is a minute old when the test writes it, and a loaded machine may take a while to render.
    static func seenMinutesAgo(_ text: String, _ subject: String) -> Bool {
        (1...5).contains { text.contains("\(subject) was last seen \($0) min ago") }
    }

    @Test("The list shows relative times and durations, with the UTC time in a title")
    func relativeTimes() async throws {
        try await withOperations { database, _, client in
            try await sql(
                database,
                """
                INSERT INTO godwit.jobs (kind, name, state, created_at, started_at, finished_at)
                VALUES ('noop', 'long_one', 'succeeded', now() - interval '3 hours', now() - interval '2 hours 10 minutes 30 seconds',
                    now() - interval '5 minutes'),
                    ('noop', 'new_one', 'queued', now() - interval '3 minutes 1 second', NULL, NULL)
                """)
            let connection = try await database.connect()
            let created = try #require(
                try await connection.query(
                    "SELECT to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS') AS t FROM godwit.jobs WHERE name = 'new_one'"
                ).first?.string("t"))
            await connection.close()
            try await client.execute(uri: "/", method: .get) { response in
                let page = response.text
                #expect(page.contains("title=\"\(created) UTC\">3 min ago</time>"), "\(page)")
                #expect(page.contains(">ran 2 h 5 min</span>"))
                #expect(page.contains(">3 h ago</time>"))
            }
        }
    }

    @Test(
        "Ages and durations in words",
        arguments: [
            (0.25, "250 ms", "just now"), (42, "42 s", "42 s ago"), (185, "3 min 5 s", "3 min ago"),
            (1500, "25 min", "25 min ago"), (7530, "2 h 5 min", "2 h ago"), (7200, "2 h", "2 h ago"),
            (90000, "1 d 1 h", "1 d ago"),
        ] as [(Double, String, String)])
    func words(seconds: Double, duration: String, ago: String) {
        #expect(RelativeTime.duration(seconds) == duration)
        #expect(RelativeTime.ago(seconds) == ago)
    }

    @Test(
        "The owner sees what a job does: kind, table, key, statement, cursor; and each attempt's error with its detail")
    func whatItDoesForTheOwner() async throws {
        try await withOperations { database, _, client in
            let id = try await enqueueBackfill(database)
            try await addErrors(database, job: id)
            for path in ["/jobs/\(id)", "/fragments/jobs/\(id)"] {
                try await client.execute(uri: path, method: .get) { response in
                    let page = response.text
                    #expect(page.contains("<h2>What it does</h2>"), "\(path)")
                    #expect(page.contains("<dt>Kind</dt><dd><code>batched</code></dd>"))
                    #expect(page.contains("<dt>Table</dt><dd><code>public.items</code></dd>"), "\(page)")
                    #expect(page.contains("<dt>Key</dt><dd><code>id</code></dd>"))
                    #expect(
                        page.contains(
                            "UPDATE items SET n = n + 1 WHERE id BETWEEN $1 AND $2 AND note &lt;&gt; &#39;x&#39;"))
                    #expect(page.contains("<dt>Cursor</dt><dd><code>4242</code>"))
                    #expect(!page.contains("data-payload=\"hidden\""))
                    #expect(page.contains("<h2>Errors by attempt</h2>"))
                    #expect(page.contains("deadlock &lt;detected&gt;"))
                    #expect(page.contains("detail: Failing row contains (7, secret)"), "the owner may see the detail")
                    #expect(page.contains("worker-a"))
                }
            }
        }
    }

    @Test("A reader without the payload's rights sees that it may not, and the errors without their detail")
    func whatItDoesForAReader() async throws {
        try await withRoles(["dashread"]) { roles in
            let reader = roles[0]
            try await withTestDatabase(prefix: "godwit_http_payload") { database in
                let admin = try await database.connect()
                try await QueueSchema.withJobs().install(on: admin)
                try await admin.query("SELECT godwit.grant_read($1::regrole)", [reader.name])
                await admin.close()
                let id = try await enqueueBackfill(database)
                try await addErrors(database, job: id)
                try await withOperations(database, url: try reader.url(database)) { client in
                    try await client.execute(uri: "/jobs/\(id)", method: .get) { response in
                        let page = response.text
                        #expect(response.status == .ok)
                        #expect(page.contains("<dt>Kind</dt><dd><code>batched</code></dd>"))
                        #expect(page.contains("<dt>Cursor</dt><dd><code>4242</code>"), "the checkpoint is for readers")
                        #expect(page.contains("data-payload=\"hidden\""), "\(page)")
                        #expect(page.contains("<code>\(reader.name)</code>"), "names the role")
                        #expect(!page.contains("UPDATE items"), "no statement")
                        #expect(!page.contains("<dt>Table</dt>"))
                        #expect(page.contains("deadlock &lt;detected&gt;"), "the error is for readers")
                        #expect(!page.contains("Failing row contains"), "its detail is not")
                        #expect(!page.contains(reader.password))
                    }
                }
            }
        }
    }

    @Test("Served as an enqueuer: the payload of its own job is shown, the owner's job's is not")
    func payloadOfAnEnqueuersOwnJob() async throws {
        try await withRoles(["dashenq"]) { roles in
            let enqueuer = roles[0]
            try await withTestDatabase(prefix: "godwit_http_enqueuer") { database in
                let admin = try await database.connect()
                try await QueueSchema.withJobs().install(on: admin)
                try await admin.query("SELECT godwit.grant_enqueue($1::regrole)", [enqueuer.name])
                let owners = try await JobQueue().enqueue(
                    kind: .noop, name: "the owner's", payload: #"{"note": "owner-secret"}"#, on: admin)
                await admin.close()
                let asEnqueuer = try await enqueuer.connect(database)
                let own = try await JobQueue().enqueue(
                    kind: .noop, name: "its own", payload: #"{"note": "enqueuer-visible"}"#, on: asEnqueuer)
                await asEnqueuer.close()
                try await withOperations(database, url: try enqueuer.url(database)) { client in
                    try await client.execute(uri: "/jobs/\(own)", method: .get) { response in
                        #expect(response.text.contains("enqueuer-visible"), "\(response.text)")
                        #expect(!response.text.contains("data-payload=\"hidden\""))
                    }
                    try await client.execute(uri: "/jobs/\(owners)", method: .get) { response in
                        #expect(!response.text.contains("owner-secret"))
                        #expect(response.text.contains("data-payload=\"hidden\""))
                    }
                }
            }
        }
    }

    @Test("The workers page lists each worker with its host, pid, version, start, last heartbeat and status")
    func workersPage() async throws {
        try await withOperations { database, _, client in
            try await sql(
                database,
                """
                INSERT INTO godwit.workers (id, host, pid, version, concurrency, started_at, heartbeat_at, stopped_at) VALUES
                    ('w-live', 'app-1', 4242, '0.9.0', 4, now() - interval '2 hours', now() + interval '1 hour', NULL),
                    ('w-gone', 'app-2', 77, '0.8.1', 2, now() - interval '1 day', now() - interval '10 minutes', NULL),
                    ('w-done', 'app-<3>', 5, '0.8.1', 1, now() - interval '3 days', now() - interval '2 days', now() - interval '2 days')
                """,
                "INSERT INTO godwit.jobs (kind, name, state, worker_id, heartbeat_at) VALUES ('noop', 'on_live', 'running', 'w-live', now())"
            )
            for path in ["/workers", "/fragments/workers"] {
                try await client.execute(uri: path, method: .get) { response in
                    let page = response.text
                    #expect(response.status == .ok)
                    let rows = page.components(separatedBy: "<tr data-worker=").dropFirst().map {
                        $0.components(separatedBy: "</tr>")[0]
                    }
                    #expect(rows.count == 3, "\(path)")
                    let live = try #require(rows.first { $0.hasPrefix("\"w-live\"") })
                    #expect(live.contains("data-status=\"running\""))
                    #expect(live.contains("app-1") && live.contains(">4242<") && live.contains("0.9.0"))
                    #expect(live.contains(">1 / 4<"), "running jobs over its concurrency")
                    // It beats an hour ahead, so that no slow run of the test sees it go stale.
                    #expect(live.contains(">in ") && live.contains(">2 h ago</time>"))
                    let gone = try #require(rows.first { $0.hasPrefix("\"w-gone\"") })
                    #expect(gone.contains("data-status=\"stale\""))
                    #expect(gone.contains(">10 min ago</time>"))
                    let done = try #require(rows.first { $0.hasPrefix("\"w-done\"") })
                    #expect(done.contains("data-status=\"stopped\""))
                    #expect(done.contains("app-&lt;3&gt;"))
                    #expect(rows.first?.hasPrefix("\"w-live\"") == true, "live workers first")
                }
            }
            try await client.execute(uri: "/", method: .get) { response in
                #expect(response.text.contains("<a href=\"/workers\">Workers</a>"))
            }
        }
    }

    @Test(
        "Cancel asks first: the first POST answers a confirmation page and cancels nothing; the confirmed one cancels")
    func cancelConfirmation() async throws {
        try await withOperations { database, _, client in
            let id = try await enqueue(database, name: "keep <me>")
            let (cookie, form) = try await csrfSession(client)
            var headers = formHeaders
            headers[.cookie] = "godwit_session=\(cookie)"
            try await client.execute(
                uri: "/jobs/\(id)/cancel", method: .post, headers: headers,
                body: formBody([("csrf", form), ("next", "/")])
            ) { response in
                #expect(response.status == .ok)
                let page = response.text
                #expect(page.contains("Cancel job #\(id)?"))
                #expect(page.contains("keep &lt;me&gt;"))
                #expect(page.contains("<input type=\"hidden\" name=\"confirm\" value=\"yes\">"))
                #expect(page.contains("<a class=\"button\" href=\"/\">Keep it</a>"))
            }
            #expect(try await jobState(id, database).state == "queued", "the first POST alone cancels nothing")
            // The confirmation is a control like any other: without the token it changes nothing.
            try await client.execute(
                uri: "/jobs/\(id)/cancel", method: .post, headers: headers, body: formBody([("confirm", "yes")])
            ) { response in
                #expect(response.status == .forbidden)
            }
            #expect(try await jobState(id, database).state == "queued")
            try await client.execute(
                uri: "/jobs/\(id)/cancel", method: .post, headers: headers,
                body: formBody([("csrf", form), ("next", "/"), ("confirm", "yes")])
            ) { response in
                #expect(response.status == .seeOther)
                #expect(response.headers[.location] == "/")
            }
            #expect(try await jobState(id, database).state == "cancelled")
        }
    }

    @Test("Retry all failed: one POST with the CSRF token retries every failed job; without the token nothing")
    func retryAllFailed() async throws {
        try await withOperations { database, _, client in
            let a = try await enqueue(database, name: "fails_a")
            let b = try await enqueue(database, name: "fails_b")
            let done = try await enqueue(database, name: "succeeded_c")
            let connection = try await database.connect()
            try await connection.query(
                "UPDATE godwit.jobs SET state = 'failed', last_error = 'boom' WHERE id IN ($1, $2)", [a, b])
            try await connection.query("UPDATE godwit.jobs SET state = 'succeeded' WHERE id = $1", [done])
            await connection.close()
            let (cookie, form) = try await csrfSession(client)
            try await client.execute(uri: "/", method: .get) { response in
                #expect(response.text.contains("<form method=\"post\" action=\"/failed/retry\""))
            }
            var headers = formHeaders
            headers[.cookie] = "godwit_session=\(cookie)"
            try await client.execute(
                uri: "/failed/retry", method: .post, headers: headers, body: formBody([("csrf", "wrong")])
            ) { response in
                #expect(response.status == .forbidden)
            }
            #expect(try await jobState(a, database).state == "failed")
            try await client.execute(uri: "/failed/retry", method: .get) { response in
                #expect(response.status == .methodNotAllowed)
            }
            try await client.execute(
                uri: "/failed/retry", method: .post, headers: headers, body: formBody([("csrf", form)])
            ) {
                response in
                #expect(response.status == .seeOther)
                #expect(response.headers[.location] == "/?retried=2&refused=0")
            }
            #expect(try await jobState(a, database).state == "queued")
            #expect(try await jobState(b, database).state == "queued")
            #expect(try await jobState(done, database).state == "succeeded")
            try await client.execute(uri: "/?retried=2&refused=0", method: .get) { response in
                #expect(response.text.contains("Retried 2 failed jobs."))
            }
        }
    }

    @Test("Retry all failed retries only the jobs the session may retry: a controller's own, not another role's")
    func retryAllFailedAsAController() async throws {
        try await withRoles(["dashctl"]) { roles in
            let controller = roles[0]
            try await withTestDatabase(prefix: "godwit_http_retry") { database in
                let admin = try await database.connect()
                try await QueueSchema.withJobs().install(on: admin)
                try await admin.query("SELECT godwit.grant_enqueue($1::regrole)", [controller.name])
                try await admin.query("SELECT godwit.grant_control($1::regrole)", [controller.name])
                let owners = try await JobQueue().enqueue(kind: .noop, name: "the owner's", on: admin)
                let asController = try await controller.connect(database)
                let own = try await JobQueue().enqueue(kind: .noop, name: "the controller's", on: asController)
                await asController.close()
                try await admin.query("UPDATE godwit.jobs SET state = 'failed' WHERE id IN ($1, $2)", [owners, own])
                await admin.close()
                try await withOperations(database, url: try controller.url(database)) { client in
                    let (cookie, form) = try await csrfSession(client)
                    var headers = formHeaders
                    headers[.cookie] = "godwit_session=\(cookie)"
                    try await client.execute(
                        uri: "/failed/retry", method: .post, headers: headers, body: formBody([("csrf", form)])
                    ) { response in
                        #expect(response.status == .seeOther)
                        #expect(response.headers[.location] == "/?retried=1&refused=1")
                    }
                    try await client.execute(uri: "/?retried=1&refused=1", method: .get) { response in
                        #expect(
                            response.text.contains("1 other was left failed: this server&#39;s role may not retry it"))
                    }
                }
                #expect(try await jobState(own, database).state == "queued")
                #expect(try await jobState(owners, database).state == "failed")
            }
        }
    }

    @Test("--read-only shows no Retry all failed and refuses its POST; the failed job stays failed")
    func retryAllFailedReadOnly() async throws {
        try await withOperations(configure: { $0.readOnly = true }) { database, _, client in
            let id = try await enqueue(database, name: "fails")
            try await sql(database, "UPDATE godwit.jobs SET state = 'failed' WHERE id = \(id)")
            let cookie = try await client.execute(uri: "/", method: .get) { response in
                #expect(response.text.contains("<b>1</b> failed"))
                #expect(!response.text.contains("/failed/retry"))
                return try #require(response.cookie("godwit_session"))
            }
            var headers = formHeaders
            headers[.cookie] = "godwit_session=\(cookie)"
            try await client.execute(
                uri: "/failed/retry", method: .post, headers: headers, body: formBody([("csrf", "x")])
            ) {
                response in
                #expect(response.status == .forbidden)
                #expect(response.text.contains("read-only"))
            }
            #expect(try await jobState(id, database).state == "failed")
        }
    }

    @Test("Beyond 200 jobs the list pages by id: older and newer links, every job on exactly one page")
    func pagination() async throws {
        try await withOperations { database, _, client in
            try await sql(
                database,
                "INSERT INTO godwit.jobs (kind, name) SELECT 'noop', 'job_' || g FROM generate_series(1, 450) g")
            var seen: [Int64] = []
            var path = "/"
            var pages = 0
            while true {
                pages += 1
                let (ids, older) = try await client.execute(uri: path, method: .get) { response in
                    #expect(response.status == .ok, "\(path)")
                    let page = response.text
                    let older = page.range(of: "<a rel=\"next\" href=\"").map {
                        page[$0.upperBound...].prefix { $0 != "\"" }.replacingOccurrences(of: "&amp;", with: "&")
                    }
                    if pages > 1 { #expect(page.contains("rel=\"prev\""), "an older page links to newer ones") }
                    return (jobIDs(page), older)
                }
                #expect(ids.count <= 200)
                #expect(ids == ids.sorted(by: >), "newest first")
                seen += ids
                guard let older, pages < 10 else { break }
                path = older
            }
            #expect(pages == 3)
            #expect(seen.count == 450)
            #expect(Set(seen).count == 450, "no job twice")
            // Newer from the last page leads back to the same ids as the page before it.
            try await client.execute(uri: path, method: .get) { response in
                let page = response.text
                let newer = try #require(
                    page.range(of: "<a rel=\"prev\" href=\"").map {
                        page[$0.upperBound...].prefix { $0 != "\"" }.replacingOccurrences(of: "&amp;", with: "&")
                    })
                try await client.execute(uri: newer, method: .get) { response in
                    #expect(jobIDs(response.text) == Array(seen[200..<400]))
                }
            }
            // Filters are kept on the links, and bad positions are refused.
            try await client.execute(uri: "/?kind=noop", method: .get) { response in
                #expect(response.text.contains("href=\"/?kind=noop&amp;before="))
            }
            for bad in ["/?before=x", "/?before=-3", "/?before=5&after=2", "/fragments/jobs?after=0"] {
                try await client.execute(uri: bad, method: .get) { response in
                    #expect(response.status == .badRequest, "\(bad)")
                    #expect(response.headers[.contentType]?.hasPrefix("text/html") == true)
                }
            }
        }
    }

    @Test("The batch chart has values on its axes and a legend")
    func chartAxes() async throws {
        try await withOperations { database, _, client in
            let id = try await enqueue(database, kind: .batched, name: "chart")
            try await sql(
                database,
                """
                INSERT INTO godwit.batches (job_id, seq, attempt, rows, rows_changed, batch_size, duration_ms, error)
                SELECT \(id), g, 1, 100, 100, 100 * g, 10 * g, CASE WHEN g = 3 THEN 'lock timeout' END
                FROM generate_series(1, 5) g
                """)
            try await client.execute(uri: "/jobs/\(id)", method: .get) { response in
                let page = response.text
                #expect(page.contains("<g class=\"legend\""))
                #expect(page.contains(">batch size, rows (max 500)</text>"))
                #expect(page.contains(">duration (max 50 ms)</text>"))
                #expect(page.contains(">failed batch</text>"), "the red mark is explained")
                for tick in ["0", "200", "400", "600"] {
                    #expect(page.contains("text-anchor=\"end\">\(tick)</text>"), "size tick \(tick)")
                }
                for tick in ["0 ms", "20 ms", "40 ms", "60 ms"] {
                    #expect(page.contains(">\(tick)</text>"), "duration tick \(tick)")
                }
                #expect(
                    page.contains("text-anchor=\"start\">1</text>") && page.contains("text-anchor=\"end\">5</text>"),
                    "batch numbers")
            }
        }
    }

    @Test(
        "Chart ticks are round numbers from zero up to at least the maximum",
        arguments: [
            (500.0, [0.0, 200, 400, 600]), (50, [0, 20, 40, 60]), (1, [0, 0.25, 0.5, 0.75, 1]),
            (1000, [0, 250, 500, 750, 1000]),
            (3700, [0, 1000, 2000, 3000, 4000]),
        ] as [(Double, [Double])])
    func ticks(maximum: Double, expected: [Double]) {
        #expect(BatchChart.ticks(maximum) == expected)
    }

    @Test("Dashboard paths answer errors and wrong methods as HTML pages; /health and /metrics do not")
    func htmlErrorsAndMethods() async throws {
        try await withOperations { _, _, client in
            for (path, method, status) in [
                ("/", HTTPRequest.Method.post, HTTPResponse.Status.methodNotAllowed),
                ("/workers", .delete, .methodNotAllowed),
                ("/jobs/1/pause", .get, .methodNotAllowed), ("/failed/retry", .put, .methodNotAllowed),
                ("/jobs/0", .get, .badRequest), ("/no/such/page", .get, .notFound),
            ] {
                try await client.execute(uri: path, method: method) { response in
                    #expect(response.status == status, "\(method) \(path)")
                    #expect(response.headers[.contentType] == "text/html; charset=utf-8", "\(method) \(path)")
                    #expect(response.text.hasPrefix("<!doctype html>"), "\(method) \(path)")
                    #expect(response.text.contains("<h1>\(status.code) "), "\(method) \(path)")
                    #expect(response.headers[.contentSecurityPolicy]?.contains("default-src 'none'") == true)
                }
            }
            try await client.execute(uri: "/", method: .post) { response in
                #expect(response.headers[.allow] == "GET, HEAD")
                #expect(response.text.contains("/ answers GET, HEAD only"))
            }
            for path in ["/health", "/metrics"] {
                try await client.execute(uri: path, method: .post) { response in
                    #expect(response.status == .methodNotAllowed, "\(path)")
                    #expect(response.headers[.contentType]?.hasPrefix("text/html") != true, "\(path)")
                }
            }
        }
    }

    // MARK: Helpers

    func idsByName(_ database: TestDatabase) async throws -> [String: Int64] {
        let connection = try await database.connect()
        let rows = try await connection.query("SELECT id, name FROM godwit.jobs").rows
        await connection.close()
        var ids: [String: Int64] = [:]
        for row in rows { ids[try row.string("name")] = try row.int64("id") }
        return ids
    }

    /// A batched job over a small table, enqueued by the owner, with a checkpoint at key 4242.
    func enqueueBackfill(_ database: TestDatabase) async throws -> Int64 {
        let connection = try await database.connect()
        try await connection.query("CREATE TABLE items (id bigint PRIMARY KEY, n int NOT NULL DEFAULT 0, note text)")
        try await connection.query("INSERT INTO items (id) SELECT generate_series(1, 5000)")
        let id = try #require(
            try await connection.query(
                """
                SELECT godwit.enqueue_batched('backfill items', 'items', 'id',
                    'UPDATE items SET n = n + 1 WHERE id BETWEEN $1 AND $2 AND note <> ''x''') AS id
                """
            ).first?.int64("id"))
        try await connection.query("UPDATE godwit.job_progress SET cursor = '4242' WHERE job_id = $1", [id])
        await connection.close()
        return id
    }

    /// Two failed attempts in `job_errors`, the first with a DETAIL that quotes a row.
    func addErrors(_ database: TestDatabase, job id: Int64) async throws {
        let connection = try await database.connect()
        try await connection.query(
            """
            INSERT INTO godwit.job_errors (job_id, attempt, worker_id, error, error_detail, at) VALUES
                ($1, 1, 'worker-a', 'new row violates check constraint', 'Failing row contains (7, secret)', now() - interval '1 hour'),
                ($1, 2, 'worker-b', 'deadlock <detected>', NULL, now() - interval '5 minutes')
            """, [id])
        await connection.close()
    }
}
