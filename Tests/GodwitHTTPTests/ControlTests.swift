import Foundation
import GodwitHTTP
import GodwitJobs
import GodwitMigrations
import GodwitQueue
import GodwitTestSupport
import Hummingbird
import HummingbirdTesting
import Logging
import Testing

@Suite("Controls, CSRF, read-only and the token")
struct ControlTests {
    /// The session cookie a page sets, and the CSRF token the page's forms carry for it.
    private func session(_ client: any TestClientProtocol) async throws -> (cookie: String, form: String) {
        try await csrfSession(client)
    }

    @Test("Pause, resume, cancel and retry through POST with the session's token call the SQL functions")
    func controls() async throws {
        try await withOperations { database, _, client in
            let id = try await enqueue(database, name: "controlled")
            let (cookie, form) = try await session(client)
            #expect(cookie != form, "the form's token is not the cookie")
            var headers = formHeaders
            headers[.cookie] = "godwit_session=\(cookie)"
            for (action, state) in [
                ("pause", "paused"), ("resume", "queued"), ("cancel", "cancelled"), ("retry", "queued"),
            ] {
                try await client.execute(
                    uri: "/jobs/\(id)/\(action)", method: .post, headers: headers,
                    body: formBody([("csrf", form), ("next", "/")] + (action == "cancel" ? [("confirm", "yes")] : []))
                ) { response in
                    #expect(response.status == .seeOther)
                    #expect(response.headers[.location] == "/")
                }
                #expect(try await jobState(id, database).state == state, "after \(action)")
            }
            // A running job gets the request, acted on at its next checkpoint.
            let connection = try await database.connect()
            try await connection.query("UPDATE godwit.jobs SET state = 'running' WHERE id = $1", [id])
            await connection.close()
            try await client.execute(
                uri: "/jobs/\(id)/pause", method: .post, headers: headers,
                body: formBody([("csrf", form), ("next", "https://evil.example/")])
            ) { response in
                #expect(response.headers[.location] == "/jobs/\(id)", "only our own pages are redirected to")
            }
            #expect(try await jobState(id, database) == ("running", "pause"))
        }
    }

    @Test(
        "Served as a role with grant_read only: pages and /metrics work, the ledger and the controls are refused with what to grant"
    )
    func leastPrivilegeRole() async throws {
        try await withRoles(["dash"]) { roles in
            let dash = roles[0]
            try await withTestDatabase(prefix: "godwit_http_role") { database in
                let admin = try await database.connect()
                try await QueueSchema.withJobs().install(on: admin)
                try await admin.query("SELECT godwit.grant_read($1::regrole)", [dash.name])
                let folder = try TemporaryDirectory(prefix: "godwit-http-role")
                try folder.write("1_first.sql", "CREATE TABLE first (id bigint PRIMARY KEY);\n")
                try folder.write("2_second.sql", "CREATE TABLE second (id bigint PRIMARY KEY);\n")
                _ = try await Migrator(directory: folder.path).run(on: admin, targetVersion: 1)
                let id = try await JobQueue().enqueue(kind: .noop, name: "watched", on: admin)
                try await admin.execute(
                    """
                    INSERT INTO godwit.backups (file, size_bytes, sha256, database_name, verified_at)
                    VALUES ('/srv/secret-place/app-1.dump', 1024, 'abcdef0123456789', 'app', now())
                    """)
                await admin.close()

                var configuration = OperationsConfiguration(databaseURL: try dash.url(database))
                configuration.healthTimeout = .seconds(30)
                configuration.metricsReadInterval = .zero
                configuration.migrationsDirectory = folder.path
                let server = OperationsServer(configuration: configuration, logger: Logger(label: "test"))
                do {
                    try await Application(router: server.router()).test(.router) { client in
                        try await client.execute(uri: "/metrics", method: .get) { response in
                            let text = response.text
                            #expect(text.contains("godwit_database_up 1.0"), "the queue was read: \(text.suffix(600))")
                            #expect(text.contains(#"godwit_jobs{state="queued",kind="noop"} 1.0"#))
                            #expect(!text.contains("godwit_migrations_applied"), "the ledger is not readable")
                        }
                        // Where backups are is for controllers and the owner.
                        try await client.execute(uri: "/backups", method: .get) { response in
                            #expect(response.status == .ok)
                            #expect(!response.text.contains("app-1.dump"), "\(response.text)")
                            #expect(response.text.contains("hidden: needs grant_control"))
                            #expect(response.text.contains("abcdef012345"))
                        }
                        try await client.execute(uri: "/migrations", method: .get) { response in
                            #expect(response.status == .ok)
                            #expect(response.text.contains("cannot read the migrations ledger"), "\(response.text)")
                            #expect(
                                response.text.contains("GRANT SELECT ON _sqlx_migrations TO &quot;\(dash.name)&quot;"))
                            #expect(!response.text.contains(dash.password))
                        }
                        let (cookie, form) = try await session(client)
                        var headers = formHeaders
                        headers[.cookie] = "godwit_session=\(cookie)"
                        try await client.execute(
                            uri: "/jobs/\(id)/pause", method: .post, headers: headers, body: formBody([("csrf", form)])
                        ) { response in
                            #expect(response.status == .forbidden)
                            #expect(response.text.contains("grant_control"), "\(response.text)")
                            #expect(response.text.contains(dash.name))
                            #expect(!response.text.contains(dash.password))
                        }
                    }
                } catch {
                    await server.pool.close()
                    throw error
                }
                await server.pool.close()
                #expect(try await jobState(id, database).state == "queued")
            }
        }
    }

    @Test("A POST without the token, with a wrong one, or a GET changes nothing")
    func csrfRefused() async throws {
        try await withOperations { database, _, client in
            let id = try await enqueue(database, name: "victim")
            let (cookie, _) = try await session(client)
            var withCookie = formHeaders
            withCookie[.cookie] = "godwit_session=\(cookie)"
            // A cross-site form: the browser sends no SameSite=Strict cookie, the attacker knows no token.
            let attempts: [(HTTPFields, [(String, String)])] = [
                (formHeaders, []),
                (formHeaders, [("csrf", cookie)]),
                (withCookie, []),
                (withCookie, [("csrf", String(repeating: "0", count: 32))]),
            ]
            for (headers, fields) in attempts {
                try await client.execute(
                    uri: "/jobs/\(id)/pause", method: .post, headers: headers, body: formBody(fields)
                ) { response in
                    #expect(response.status == .forbidden)
                }
            }
            try await client.execute(uri: "/jobs/\(id)/pause", method: .get) { response in
                #expect(response.status.code >= 400 && response.status.code < 500)
            }
            #expect(try await jobState(id, database).state == "queued")
            try await client.execute(
                uri: "/jobs/\(id)/explode", method: .post, headers: withCookie, body: formBody([("csrf", cookie)])
            ) { response in
                #expect(response.status == .notFound)
            }
            try await client.execute(
                uri: "/jobs/\(id)/pause", method: .post, headers: withCookie,
                body: ByteBuffer(string: "csrf=" + String(repeating: "a", count: 20000))
            ) { response in
                #expect(response.status == .contentTooLarge)
            }
        }
    }

    @Test("--read-only shows no controls and refuses their POSTs")
    func readOnly() async throws {
        try await withOperations(configure: { $0.readOnly = true }) { database, _, client in
            let id = try await enqueue(database, name: "look_dont_touch")
            let cookie = try await client.execute(uri: "/", method: .get) { response in
                #expect(response.text.contains("look_dont_touch"))
                #expect(!response.text.contains("data-action="))
                #expect(!response.text.contains(#"method="post""#))
                return try #require(response.cookie("godwit_session"))
            }
            try await client.execute(uri: "/jobs/\(id)", method: .get) { response in
                #expect(!response.text.contains("data-action="))
            }
            var headers = formHeaders
            headers[.cookie] = "godwit_session=\(cookie)"
            try await client.execute(
                uri: "/jobs/\(id)/pause", method: .post, headers: headers, body: formBody([("csrf", cookie)])
            ) { response in
                #expect(response.status == .forbidden)
            }
            #expect(try await jobState(id, database).state == "queued")
        }
    }

    @Test("With a token, every request needs it as a bearer token or the login cookie")
    func token() async throws {
        let token = "a-long-enough-token-0123456789"
        try await withOperations(configure: { $0.token = token }) { _, _, client in
            for path in ["/", "/health", "/metrics", "/jobs/1", "/fragments/jobs"] {
                try await client.execute(uri: path, method: .get) { response in
                    #expect(response.status == .unauthorized, "\(path)")
                }
                try await client.execute(uri: path, method: .get, headers: [.authorization: "Bearer wrong"]) {
                    response in
                    #expect(response.status == .unauthorized, "\(path)")
                }
            }
            try await client.execute(uri: "/", method: .get, headers: [.accept: "text/html"]) { response in
                #expect(response.status == .seeOther)
                #expect(response.headers[.location] == "/login")
            }
            try await client.execute(uri: "/health", method: .get, headers: [.authorization: "Bearer \(token)"]) {
                response in
                #expect(response.status == .ok)
            }
            try await client.execute(uri: "/metrics", method: .get, headers: [.authorization: "Bearer \(token)"]) {
                response in
                #expect(response.status == .ok)
            }
            try await client.execute(
                uri: "/login", method: .post, headers: formHeaders, body: formBody([("token", "nope")])
            ) {
                response in
                #expect(response.status == .unauthorized)
                #expect(response.cookie("godwit_login") == nil)
            }
            let login = try await client.execute(
                uri: "/login", method: .post, headers: formHeaders, body: formBody([("token", token)])
            ) { response in
                #expect(response.status == .seeOther)
                return try #require(response.cookie("godwit_login"))
            }
            #expect(!login.contains(token), "the cookie does not hold the token")
            try await client.execute(uri: "/", method: .get, headers: [.cookie: "godwit_login=\(login)"]) { response in
                #expect(response.status == .ok)
                #expect(!response.text.contains(token))
            }
        }
    }

    @Test("A non-loopback address is refused without a token")
    func nonLoopback() throws {
        var configuration = OperationsConfiguration(databaseURL: "postgres://localhost/x")
        try configuration.setAddress("0.0.0.0:9000")
        #expect(configuration.host == "0.0.0.0" && configuration.port == 9000)
        #expect(throws: OperationsError.self) { try configuration.validate() }
        configuration.token = "short"
        #expect(throws: OperationsError.self) { try configuration.validate() }
        configuration.token = "a-long-enough-token-0123456789"
        try configuration.validate()
        for loopback in ["127.0.0.1:1", ":8432", "8432", "localhost:80", "[::1]:8432"] {
            var local = OperationsConfiguration(databaseURL: "postgres://localhost/x")
            try local.setAddress(loopback)
            try local.validate()
        }
        for bad in ["127.0.0.1:notaport", "[::1", "host:70000"] {
            var local = OperationsConfiguration(databaseURL: "postgres://localhost/x")
            #expect(throws: (any Error).self) { try local.setAddress(bad) }
        }
    }
}
