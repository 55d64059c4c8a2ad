import Foundation
import GodwitJobs
import GodwitPostgres
import GodwitQueue
import GodwitTestSupport
import Hummingbird
import HummingbirdTesting
import Testing

/// The real `godwit` executable serving HTTP: the default address, `serve` stopped by SIGTERM,
/// and a worker's server outliving its jobs' wind-down after SIGTERM. What needs no process
/// (sqlx.toml, a port in use, an open address refused) is in `ServeCommandTests`.
@Suite("godwit worker --http and godwit serve, as processes")
struct HTTPProcessTests {
    @Test(
        "SIGTERM: /health/ready turns 503 while a running job winds down, the server answers until the worker is done, then the process exits 0"
    )
    func gracefulShutdown() async throws {
        try await withTestDatabase(prefix: "godwit_http_term") { database in
            let connection = try await database.connect()
            defer { Task { await connection.close() } }
            try await QueueSchema.withJobs().install(on: connection)
            try await connection.query("CREATE TABLE gate (n int)")
            // The job blocks on the gate the test holds, so the wind-down lasts exactly as long
            // as the test wants, whatever the machine's load.
            try await connection.query("BEGIN")
            try await connection.query("LOCK TABLE gate IN ACCESS EXCLUSIVE MODE")
            let id = try await enqueue(
                database, kind: .sql, name: "waits at the gate", payload: #"{"sql": "SELECT count(*) FROM gate"}"#)
            let port = try freeLoopbackPort()
            let worker = try GodwitProcess.start([
                "worker", "-D", database.url, "--http", "127.0.0.1:\(port)", "--shutdown-timeout", "3600",
                "--log-level", "info",
            ])
            defer { if worker.isRunning { worker.signal(SIGKILL) } }

            let running = try await eventually(timeout: .seconds(60)) {
                let health = try? await get(port, "/health")
                guard health?.json["state"] as? String == "running" else { return false }
                return try await jobState(id, database).state == "running"
            }
            #expect(running, "the worker never ran the job while serving /health: \(worker.currentStderr)")
            // Ready while running, once a probe of the database answers within its bound (800 ms,
            // which a loaded machine may take a few tries to see).
            var ready = try await get(port, "/health/ready")
            let isReady = try await eventually(timeout: .seconds(60)) {
                ready = try await get(port, "/health/ready")
                return ready.status == .ok
            }
            #expect(isReady, "/health/ready said \(ready.status) while running: \(ready.text)")

            worker.signal(SIGTERM)
            let draining = await eventually(timeout: .seconds(120)) {
                (try? await get(port, "/health/ready"))?.status == .serviceUnavailable
            }
            #expect(draining, "/health/ready never said the worker takes no new jobs")
            let readyBody = try await get(port, "/health/ready")
            #expect(readyBody.json["state"] as? String == "draining")
            #expect((readyBody.json["reason"] as? String)?.contains("taking no new jobs") == true)
            // The database is fine: /health stays 200 while draining (once a probe answers within
            // its bound, which a loaded machine may take a few tries to see).
            var health = try await get(port, "/health")
            let fine = try await eventually(timeout: .seconds(60)) {
                health = try await get(port, "/health")
                return health.status == .ok
            }
            #expect(fine, "/health said \(health.status) while draining: \(health.text)")
            #expect(health.json["running_jobs"] as? Int == 1)
            #expect(try await get(port, "/health/live").status == .ok)
            #expect(try await get(port, "/metrics").text.contains("godwit_jobs{"))
            #expect(worker.isRunning)

            try await connection.query("COMMIT")
            let output = try await worker.wait()
            #expect(output.status == 0, "\(output.stderr)")
            #expect((try await jobState(id, database).state) == "succeeded")
            await #expect(throws: (any Error).self, "the HTTP server stopped with the worker") {
                try await get(port, "/health")
            }
        }
    }

    @Test("--http with no address serves on 127.0.0.1:8432, also when another option follows it")
    func defaultAddress() async throws {
        try await withTestDatabase(prefix: "godwit_http_default") { database in
            // The port is fixed: another program on the machine may hold it for a while (no test
            // of this suite does). Wait for it, rather than fail on a clash this test is not about.
            let free = try await eventually(timeout: .seconds(120), every: .milliseconds(500)) {
                try isFreeLoopbackPort(8432)
            }
            try #require(free, "127.0.0.1:8432 stayed in use by another program")
            let worker = try GodwitProcess.start(["worker", "--http", "-D", database.url, "--log-level", "info"])
            defer { if worker.isRunning { worker.signal(SIGKILL) } }
            let answered = await eventually(timeout: .seconds(60)) {
                (try? await get(8432, "/health"))?.json["state"] as? String == "running"
            }
            #expect(answered, "nothing answered on 127.0.0.1:8432: \(worker.currentStderr)")
            worker.signal(SIGTERM)
            let output = try await worker.wait()
            #expect(output.status == 0, "\(output.stderr)")
            #expect(output.stderr.contains("127.0.0.1:8432"), "the log names the address: \(output.stderr)")
        }
    }

    @Test("godwit serve: pages, /metrics and /health from a process that runs no job; SIGTERM stops it")
    func serve() async throws {
        try await withTestDatabase(prefix: "godwit_http_serve") { database in
            let connection = try await database.connect()
            defer { Task { await connection.close() } }
            try await QueueSchema.withJobs().install(on: connection)
            let id = try await JobQueue().enqueue(kind: .noop, name: "left <b>alone</b>", on: connection)
            let folder = try TemporaryDirectory(prefix: "godwit-serve")
            try folder.write("1_first.sql", "CREATE TABLE first (id bigint PRIMARY KEY);\n")
            let port = try freeLoopbackPort()
            let server = try GodwitProcess.start([
                "serve", "-D", database.url, "--http", "127.0.0.1:\(port)", "--source", folder.path, "--read-only",
            ])
            defer { if server.isRunning { server.signal(SIGKILL) } }
            let answered = await eventually(timeout: .seconds(60)) { (try? await get(port, "/health")) != nil }
            #expect(answered, "godwit serve never answered: \(server.currentStderr)")

            let health = try await get(port, "/health")
            #expect(health.status == .ok)
            #expect(health.json["state"] as? String == "serving")
            let page = try await get(port, "/")
            #expect(page.text.contains("left &lt;b&gt;alone&lt;/b&gt;"))
            #expect(!page.text.contains("<form method=\"post\" action=\"/jobs/"), "--read-only shows no controls")
            let migrations = try await get(port, "/migrations")
            #expect(migrations.text.contains("first") && migrations.text.contains("pending"))
            let metrics = try await get(port, "/metrics").text
            #expect(metrics.contains(#"godwit_jobs{state="queued",kind="noop"} 1"#), "\(metrics.prefix(2000))")
            #expect(metrics.contains("godwit_migrations_pending 1"))
            // No worker runs in this process: the job is where it was put.
            #expect((try await jobState(id, database).state) == "queued")

            server.signal(SIGTERM)
            let output = try await server.wait()
            #expect(output.status == 0, "\(output.stderr)")
        }
    }
}

// MARK: - Helpers

/// A response read fully, with its body as text and, for JSON, as a dictionary.
struct FetchedResponse {
    var status: HTTPResponse.Status
    var text: String
    var headers: HTTPFields = [:]
    var json: [String: Any] {
        (try? JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any]) ?? [:]
    }
}

/// GET `path` from 127.0.0.1:`port` on a fresh connection, as a browser would (with `Host`);
/// throws when nothing listens.
func get(_ port: Int, _ path: String) async throws -> FetchedResponse {
    try await send(port, path, authority: "127.0.0.1:\(port)")
}
