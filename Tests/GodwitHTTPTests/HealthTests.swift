import Foundation
import GodwitHTTP
import GodwitQueue
import GodwitTestSupport
import HummingbirdTesting
import Testing

@Suite("GET /health")
struct HealthTests {
    private func json(_ response: TestResponse) throws -> [String: Any] {
        try #require(JSONSerialization.jsonObject(with: Data(response.text.utf8)) as? [String: Any])
    }

    @Test("200 with the schema version, the worker's id, state and running jobs")
    func healthy() async throws {
        let status = WorkerStatus(state: .running, runningJobs: 3, workerID: "host:1:ab")
        try await withOperations(workerStatus: { status }) { _, _, client in
            for path in ["/health", "/health/ready"] {
                try await client.execute(uri: path, method: .get) { response in
                    #expect(response.status == .ok)
                    let body = try json(response)
                    #expect(body["status"] as? String == "ok")
                    #expect(body["database"] as? String == "reachable")
                    #expect(body["schema_version"] as? Int == QueueSchema().latestVersion)
                    #expect(body["worker_id"] as? String == "host:1:ab")
                    #expect(body["state"] as? String == "running")
                    #expect(body["running_jobs"] as? Int == 3)
                }
            }
            try await client.execute(uri: "/health/live", method: .get) { response in
                #expect(response.status == .ok)
                let body = try json(response)
                #expect(body["worker"] as? String == "running")
            }
        }
    }

    @Test(
        "/health/ready answers 503 while the worker starts or drains; /health and /health/live stay 200",
        arguments: [
            WorkerStatus.State.starting, .draining, .stopped,
        ])
    func notReady(state: WorkerStatus.State) async throws {
        let status = WorkerStatus(state: state, runningJobs: 1, workerID: "host:1:ab")
        try await withOperations(workerStatus: { status }) { _, _, client in
            try await client.execute(uri: "/health/ready", method: .get) { response in
                #expect(response.status == .serviceUnavailable)
                let body = try json(response)
                #expect(body["status"] as? String == "unavailable")
                #expect(body["database"] as? String == "reachable")
                #expect(body["state"] as? String == state.rawValue)
                #expect((body["reason"] as? String)?.hasPrefix(state.rawValue) == true)
            }
            for path in ["/health", "/health/live"] {
                try await client.execute(uri: path, method: .get) { response in #expect(response.status == .ok) }
            }
        }
    }

    @Test("503 when the queue schema is not installed")
    func schemaMissing() async throws {
        try await withOperations(install: false) { _, _, client in
            try await client.execute(uri: "/health", method: .get) { response in
                #expect(response.status == .serviceUnavailable)
                let body = try json(response)
                #expect(body["status"] as? String == "unavailable")
                #expect((body["reason"] as? String)?.contains("not installed") == true)
            }
        }
    }

    @Test("503 when the schema is newer than this build")
    func schemaTooNew() async throws {
        try await withOperations { database, _, client in
            let connection = try await database.connect()
            try await connection.query("INSERT INTO godwit.schema_version (owner, version) VALUES ('queue', 999)")
            await connection.close()
            try await client.execute(uri: "/health", method: .get) { response in
                #expect(response.status == .serviceUnavailable)
                let body = try json(response)
                #expect((body["reason"] as? String)?.contains("newer than this godwit knows") == true)
            }
        }
    }

    @Test("503 naming the failure, without the password, when the database is gone")
    func databaseGone() async throws {
        try await withOperations(configure: { configuration in
            // A port nothing listens on: the database went away.
            configuration.databaseURL = "postgres://godwit:s3cret-pw@127.0.0.1:1/gone"
        }) { _, _, client in
            try await client.execute(uri: "/health", method: .get) { response in
                #expect(response.status == .serviceUnavailable)
                let body = try json(response)
                #expect(body["database"] as? String == "unreachable")
                #expect((body["reason"] as? String)?.contains("cannot be reached") == true)
                #expect(!response.text.contains("s3cret-pw"))
            }
            // /metrics still answers, saying the database is down.
            try await client.execute(uri: "/metrics", method: .get) { response in
                #expect(response.status == .ok)
                #expect(response.text.contains("godwit_database_up 0"))
            }
        }
    }

    @Test("/health/ready of a draining worker whose database is gone says both, the worker's state first")
    func drainingAndDatabaseGone() async throws {
        let status = WorkerStatus(state: .draining, runningJobs: 1, workerID: "host:1:ab")
        try await withOperations(
            configure: { configuration in
                configuration.databaseURL = "postgres://godwit:s3cret-pw@127.0.0.1:1/gone"
            }, workerStatus: { status }
        ) { _, _, client in
            try await client.execute(uri: "/health/ready", method: .get) { response in
                #expect(response.status == .serviceUnavailable)
                let body = try json(response)
                #expect(body["database"] as? String == "unreachable")
                let reason = body["reason"] as? String ?? ""
                #expect(reason.hasPrefix("draining: taking no new jobs; "), "\(reason)")
                #expect(reason.contains("cannot be reached"), "\(reason)")
                #expect(!response.text.contains("s3cret-pw"))
            }
        }
    }

    @Test("A hung database gets a 503 after the probe's bound")
    func databaseHangs() async throws {
        let silent = try SilentServer()
        defer { withExtendedLifetime(silent) {} }
        try await withOperations(configure: { configuration in
            configuration.databaseURL = "postgres://postgres@127.0.0.1:\(silent.port)/postgres"
            configuration.healthTimeout = .milliseconds(300)
        }) { _, _, client in
            // The probe's connect waits up to 5 s on the silent server; the request only 300 ms.
            try await client.execute(uri: "/health", method: .get) { response in
                #expect(response.status == .serviceUnavailable)
                let body = try json(response)
                #expect((body["reason"] as? String)?.contains("did not answer within 300 ms") == true)
            }
            // Asked again, it waits on the same probe, which still hangs (or has given up).
            try await client.execute(uri: "/health", method: .get) { response in
                #expect(response.status == .serviceUnavailable)
            }
        }
    }

    @Test("Requests that give up on a hung probe share it: one connection, not one a request")
    func aHungProbeIsShared() async throws {
        let listener = try LoopbackListener()
        // The probe waits an hour to connect (so that it still hangs however slow the machine);
        // every request below gives up after 200 ms.
        let probe = HealthProbe(
            databaseURL: "postgres://postgres@127.0.0.1:\(listener.port)/postgres", schema: QueueSchema(),
            timeout: .milliseconds(200), cacheDuration: .seconds(1), connectTimeout: .seconds(3600))
        let first = await probe.check()
        #expect(!first.healthy && first.reason?.contains("did not answer within 200 ms") == true, "\(first)")
        let readings = await withTaskGroup(of: HealthReading.self) { group in
            for _ in 0..<4 { group.addTask { await probe.check() } }
            return await group.reduce(into: []) { $0.append($1) }
        }
        #expect(readings.allSatisfy { !$0.healthy }, "\(readings)")
        #expect(listener.acceptIfWaiting(), "the probe never connected")
        #expect(!listener.acceptIfWaiting(), "a second probe connected while the first still hung")
    }
}
