import Foundation
import GodwitTestSupport
import Hummingbird
import HummingbirdTesting
import Testing

@testable import GodwitHTTP

@Suite("DNS rebinding, origins, CSRF by cookie tossing, the login cookie and its rate limit")
struct SecurityTests {
    static let token = "a-long-enough-token-0123456789"

    @Test(
        "Without a token only loopback literals, localhost and the allowed names are answered (421 otherwise); with one, any Host"
    )
    func dnsRebinding() async throws {
        try await withLiveServer(configure: { $0.allowedHosts = ["Dash.Internal"] }) { port, _ in
            for host in [
                "127.0.0.1", "127.0.0.1:\(port)", "127.9.8.7:\(port)", "localhost", "LocalHost:\(port)",
                "[::1]:\(port)", "dash.internal:\(port)",
            ] {
                let response = try await send(port, "/health/live", authority: host)
                #expect(response.status == .ok, "\(host): \(response.text)")
            }
            for host in [
                "attacker.example", "attacker.example:\(port)", "127.0.0.1.attacker.example:\(port)",
                "127.attacker.example",
                "localhost.:\(port)", "localhost.attacker.example", "[::2]:\(port)", "0.0.0.0:\(port)",
                "dash.internal.evil",
                "127.0.0.1:x", "",
            ] {
                let response = try await send(port, "/", authority: host)
                #expect(response.status == .misdirectedRequest, "\(host)")
                #expect(response.text.contains("--http-allowed-host"), "\(host): \(response.text)")
                #expect(!response.text.contains("<html"), "no page content for \(host)")
            }
            let none = try await send(port, "/health/live", authority: nil)
            #expect(none.status == .misdirectedRequest, "a request without Host")
            let twice = try await send(
                port, "/health/live", authority: "127.0.0.1", headers: [RequestGuard.hostField: "attacker.example"])
            #expect(twice.status == .badRequest)
        }
        try await withLiveServer(configure: { $0.token = Self.token }) { port, _ async throws in
            let bearer: HTTPFields = [.authorization: "Bearer \(Self.token)"]
            #expect(try await send(port, "/health/live", authority: "dash.example.com", headers: bearer).status == .ok)
            #expect(try await send(port, "/health/live", authority: "dash.example.com").status == .unauthorized)
        }
    }

    @Test(
        "Every POST: an Origin other than our own, or Sec-Fetch-Site cross-site or same-site, is refused even with the right CSRF token"
    )
    func postOrigins() async throws {
        try await withOperations { database, _, client in
            let id = try await enqueue(database, name: "origin")
            let (cookie, form) = try await csrfSession(client)
            var headers = formHeaders
            headers[.cookie] = "godwit_session=\(cookie)"
            let refused: [(origin: String?, site: String?)] = [
                ("http://attacker.example", nil), ("null", nil), ("http://localhost.attacker.example", nil),
                ("http://localhost:8432", nil), ("ftp://localhost", nil), (nil, "cross-site"), (nil, "same-site"),
                ("http://localhost", "cross-site"), ("http://localhost", "same-site"), ("http://localhost", "bogus"),
            ]
            for (origin, site) in refused {
                var attempt = headers
                if let origin { attempt[.origin] = origin }
                if let site { attempt[RequestGuard.secFetchSite] = site }
                try await client.execute(
                    uri: "/jobs/\(id)/pause", method: .post, headers: attempt, body: formBody([("csrf", form)])
                ) {
                    response in
                    #expect(response.status == .forbidden, "\(origin ?? "-") \(site ?? "-")")
                    #expect(response.text.hasPrefix("refused: "), "one line says why: \(response.text)")
                }
                try await client.execute(
                    uri: "/login", method: .post, headers: attempt, body: formBody([("token", "x")])
                ) { response in
                    #expect(response.status == .forbidden, "login: \(origin ?? "-") \(site ?? "-")")
                }
            }
            #expect(try await jobState(id, database).state == "queued")
            // The router's requests come to Host: localhost. Our own page, over http or behind a TLS proxy.
            let accepted: [(origin: String?, site: String?, action: String)] = [
                ("http://localhost", "same-origin", "pause"), ("https://localhost", nil, "resume"),
                ("http://LOCALHOST:80", "none", "pause"), (nil, nil, "resume"),
            ]
            for (origin, site, action) in accepted {
                var attempt = headers
                if let origin { attempt[.origin] = origin }
                if let site { attempt[RequestGuard.secFetchSite] = site }
                try await client.execute(
                    uri: "/jobs/\(id)/\(action)", method: .post, headers: attempt, body: formBody([("csrf", form)])
                ) {
                    response in
                    #expect(response.status == .seeOther, "\(origin ?? "-") \(site ?? "-")")
                }
            }
            #expect(try await jobState(id, database).state == "queued")
        }
    }

    @Test(
        "Cookie tossing: a session cookie someone else chose gets them no token; two session cookies, or a malformed one, are refused"
    )
    func cookieTossing() async throws {
        try await withOperations { database, _, client in
            let id = try await enqueue(database, name: "tossed")
            let (cookie, form) = try await csrfSession(client)
            let chosen = String(repeating: "ab", count: 16)
            let attempts: [(cookies: String, csrf: String)] = [
                // The old double-submit: the form's token is whatever the cookie says.
                ("godwit_session=\(chosen); godwit_csrf=\(chosen)", chosen),
                // Our own token, for another session than the cookie's.
                ("godwit_session=\(chosen)", form),
                // A token made for the attacker's session, sent with the victim's cookie: the HMAC
                // ties it to one session.
                ("godwit_session=\(cookie)", String(form.reversed())),
                ("godwit_session=\(cookie.uppercased())", form),
                ("godwit_session=zz", form), ("godwit_session=", form), ("", form),
            ]
            for (cookies, csrf) in attempts {
                var headers = formHeaders
                if !cookies.isEmpty { headers[.cookie] = cookies }
                try await client.execute(
                    uri: "/jobs/\(id)/pause", method: .post, headers: headers, body: formBody([("csrf", csrf)])
                ) {
                    response in
                    #expect(response.status == .forbidden, "\(cookies) csrf=\(csrf)")
                }
            }
            var twice = formHeaders
            twice[.cookie] = "godwit_session=\(cookie); godwit_session=\(chosen)"
            try await client.execute(
                uri: "/jobs/\(id)/pause", method: .post, headers: twice, body: formBody([("csrf", form)])
            ) { response in
                #expect(response.status == .badRequest)
                #expect(response.text.contains("2 godwit_session cookies"))
            }
            try await client.execute(
                uri: "/", method: .get, headers: [.cookie: "godwit_session=\(chosen); godwit_session=\(cookie)"]
            ) {
                response in
                #expect(response.status == .badRequest)
            }
            #expect(try await jobState(id, database).state == "queued")
            // A malformed session cookie is replaced by a page, not trusted.
            try await client.execute(uri: "/", method: .get, headers: [.cookie: "godwit_session=<script>"]) {
                response in
                let fresh = try #require(response.cookie("godwit_session"))
                #expect(SessionKeys.isSessionID(fresh))
                #expect(response.setCookieLine("godwit_session")?.contains("SameSite=Strict") == true)
                #expect(response.setCookieLine("godwit_session")?.contains("HttpOnly") == true)
            }
            // Someone else's cookies on this host name do not matter.
            var headers = formHeaders
            headers[.cookie] = "jupyter=\"a;b\"; godwit_session=\(cookie); junk; =x; other=%zz"
            try await client.execute(
                uri: "/jobs/\(id)/pause", method: .post, headers: headers, body: formBody([("csrf", form)])
            ) {
                response in
                #expect(response.status == .seeOther)
            }
            #expect(try await jobState(id, database).state == "paused")
        }
    }

    @Test(
        "The login cookie: a salted, expiring HMAC value with Max-Age, HttpOnly, SameSite=Strict; Secure behind TLS; another process's is refused"
    )
    func loginCookie() async throws {
        let other = try await withOperations(configure: { $0.token = Self.token }) { _, _, client in
            try await Self.login(client)
        }
        try await withOperations(configure: { $0.token = Self.token }) { _, _, client in
            let first = try await client.execute(
                uri: "/login", method: .post, headers: formHeaders, body: formBody([("token", Self.token)])
            ) {
                response in
                let line = try #require(response.setCookieLine("godwit_login"))
                for attribute in ["Max-Age=43200", "HttpOnly", "SameSite=Strict", "Path=/"] {
                    #expect(line.contains(attribute), "\(line)")
                }
                #expect(!line.contains("Secure"), "served over plain http: \(line)")
                return try #require(response.cookie("godwit_login"))
            }
            let second = try await Self.login(client)
            #expect(first != second, "each login has its own nonce")
            #expect(!first.contains(Self.token))
            for value in [first, second] {
                try await client.execute(uri: "/", method: .get, headers: [.cookie: "godwit_login=\(value)"]) {
                    response in
                    #expect(response.status == .ok)
                }
            }
            let parts = first.split(separator: "-").map(String.init)
            try #require(parts.count == 3, "EXPIRY-NONCE-MAC: \(first)")
            let expiry = try #require(Int(parts[0]))
            let forged = [
                "\(expiry + 86400)-\(parts[1])-\(parts[2])", "\(parts[0])-\(parts[1])-\(String(parts[2].reversed()))",
                other, "x",
            ]
            for value in forged {
                try await client.execute(uri: "/metrics", method: .get, headers: [.cookie: "godwit_login=\(value)"]) {
                    response in
                    #expect(response.status == .unauthorized, "\(value)")
                }
            }
            try await client.execute(
                uri: "/login", method: .post, headers: formHeaders + [Self.forwardedProto: "https"],
                body: formBody([("token", Self.token)])
            ) { response in
                #expect(response.setCookieLine("godwit_login")?.contains("Secure") == true)
            }
        }
        try await withOperations(configure: {
            $0.token = Self.token
            $0.behindTLS = true
        }) { database, _, client in
            try await enqueue(database, name: "behind a proxy")
            try await client.execute(
                uri: "/login", method: .post, headers: formHeaders, body: formBody([("token", Self.token)])
            ) { response in
                #expect(response.setCookieLine("godwit_login")?.contains("Secure") == true)
            }
            try await client.execute(uri: "/", method: .get, headers: [.authorization: "Bearer \(Self.token)"]) {
                response in
                #expect(response.setCookieLine("godwit_session")?.contains("Secure") == true)
            }
        }
    }

    @Test("POST /login: a few attempts at once per address, then 429 with Retry-After, even with the right token")
    func loginRateLimit() async throws {
        try await withOperations(configure: {
            $0.token = Self.token
            $0.loginBurst = 3
            $0.loginInterval = .seconds(3600)
        }) { _, _, client in
            for _ in 0..<3 {
                try await client.execute(
                    uri: "/login", method: .post, headers: formHeaders, body: formBody([("token", "wrong")])
                ) {
                    response in
                    #expect(response.status == .unauthorized)
                }
            }
            for token in ["wrong", Self.token] {
                try await client.execute(
                    uri: "/login", method: .post, headers: formHeaders, body: formBody([("token", token)])
                ) {
                    response in
                    #expect(response.status == .tooManyRequests)
                    #expect(Int(response.headers[.retryAfter] ?? "") ?? 0 > 0)
                    #expect(response.cookie("godwit_login") == nil)
                }
            }
        }
    }

    @Test("Wrong methods answer 405 with Allow; unknown paths 404")
    func methods() async throws {
        try await withOperations { _, _, client in
            let cases: [(String, HTTPRequest.Method, String)] = [
                ("/jobs/1/pause", .get, "POST"), ("/jobs/1/pause", .delete, "POST"), ("/health", .post, "GET, HEAD"),
                ("/metrics", .put, "GET, HEAD"), ("/", .post, "GET, HEAD"), ("/login", .delete, "GET, HEAD, POST"),
                ("/jobs/7", .post, "GET, HEAD"), ("/fragments/jobs/7", .patch, "GET, HEAD"),
            ]
            for (path, method, allow) in cases {
                try await client.execute(uri: path, method: method) { response in
                    #expect(response.status == .methodNotAllowed, "\(method) \(path)")
                    #expect(response.headers[.allow] == allow, "\(method) \(path)")
                }
            }
            try await client.execute(uri: "/nothing/here", method: .get) { response in
                #expect(response.status == .notFound)
            }
            try await client.execute(uri: "/", method: .head) { response in
                #expect(response.status == .ok)
            }
        }
    }

    @Test("A bad or unknown id on a page answers an HTML error page with the policy, not JSON; /health stays JSON")
    func htmlErrors() async throws {
        try await withOperations { _, _, client in
            for (path, status, text) in [
                ("/jobs/abc", HTTPResponse.Status.badRequest, "a job id is a positive number"),
                ("/jobs/-1", .badRequest, "a job id is a positive number"),
                ("/jobs/99999999", .notFound, "no job 99999999"), ("/fragments/jobs/x", .badRequest, "positive number"),
                ("/?state=%3Cb%3Ebogus", .badRequest, "state must be one of"), ("/nothing", .notFound, "Not Found"),
            ] {
                try await client.execute(uri: path, method: .get) { response in
                    #expect(response.status == status, "\(path)")
                    #expect(response.headers[.contentType]?.hasPrefix("text/html") == true, "\(path)")
                    #expect(
                        response.text.contains("<!doctype html>") && response.text.contains(text),
                        "\(path): \(response.text)")
                    #expect(response.headers[.contentSecurityPolicy]?.contains("default-src 'none'") == true)
                    #expect(!response.text.contains("<b>bogus"))
                }
            }
        }
    }

    @Test(
        "godwit serve: --http-token-file refuses an open file in one line naming it; --help warns that --http-token shows in /proc"
    )
    func tokenFileProcess() async throws {
        let folder = try TemporaryDirectory(prefix: "godwit-token-process")
        defer { folder.delete() }
        let path = try folder.write("token", Self.token + "\n")
        chmod(path, 0o644)
        let output = try await GodwitCommand.run([
            "serve", "-D", "postgres://nobody@127.0.0.1:1/none", "--http", "0.0.0.0:8433", "--http-token-file", path,
        ])
        #expect(output.status != 0)
        let lines = output.stderr.split(separator: "\n").filter { !$0.hasPrefix("Usage") && !$0.isEmpty }
        #expect(lines.first?.contains(path) == true && lines.first?.contains("chmod 600") == true, "\(output.stderr)")
        let help = try await GodwitCommand.run(["serve", "--help"])
        let text = help.stdout.split(whereSeparator: \.isWhitespace).joined(separator: " ")
        #expect(text.contains("--http-token-file"), "\(help.stdout)")
        #expect(text.contains("/proc"), "\(help.stdout)")
        #expect(text.contains("--http-allowed-host"), "\(help.stdout)")
    }

    // MARK: Helpers

    static let forwardedProto = HTTPFields.Element.Name("X-Forwarded-Proto")!

    static func login(_ client: any TestClientProtocol) async throws -> String {
        try await client.execute(uri: "/login", method: .post, headers: formHeaders, body: formBody([("token", token)]))
        { response in
            try #require(response.cookie("godwit_login"))
        }
    }
}

extension HTTPFields {
    fileprivate static func + (lhs: HTTPFields, rhs: HTTPFields) -> HTTPFields {
        var fields = lhs
        fields.append(contentsOf: rhs)
        return fields
    }
}
