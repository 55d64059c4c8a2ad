import Foundation
import GodwitTestSupport
import Testing

@testable import GodwitHTTP

/// The rules behind the server's defences, without a server: which Host names pass, which
/// addresses count as loopback, the login cookie's lifetime, the login rate limit, the token file.
@Suite("Host names, loopback addresses, login cookies, the login rate limit and the token file")
struct SecurityRuleTests {
    static let token = "a-long-enough-token-0123456789"

    @Test("Host names: loopback literals and localhost only, no name that merely starts with 127.")
    func hostPolicy() {
        let policy = HostPolicy(allowedNames: ["dash.internal", "[::5]"])
        for allowed in [
            "localhost", "localhost:1", "127.0.0.1", "127.255.255.254:65535", "[::1]", "[0:0:0:0:0:0:0:1]:80",
            "dash.internal", "DASH.internal:8432", "[::5]:1",
        ] {
            #expect(policy.allows(authority: allowed), "\(allowed)")
        }
        for refused in [
            nil, "", ":80", "127.1", "127.0.0.1.", "127.0.0.1:", "127.0.0.1:8a", "127.0.0.1:1:2",
            "127.attacker.example",
            "localhost.", "localhost.attacker.example", "::1", "[::1", "[::1]x", "[::2]", "[::ffff:127.0.0.1]",
            "128.0.0.1",
            "0.0.0.0", "127.0.0.1\u{0}.attacker.example", "dash.internal.evil", "xdash.internal",
        ] as [String?] {
            #expect(!policy.allows(authority: refused), "\(refused ?? "nil")")
        }
    }

    @Test("--http 127.attacker.example needs a token: only 127/8 and ::1 literals and localhost count as loopback")
    func bindsLoopback() throws {
        for open in [
            "127.attacker.example", "127.0.0.1.nip.io", "localhost.attacker.example", "127.1", "::2", "0.0.0.0",
            "::ffff:127.0.0.1",
        ] {
            var configuration = OperationsConfiguration(databaseURL: "postgres://localhost/x")
            configuration.host = open
            #expect(!configuration.bindsLoopback, "\(open)")
            #expect(throws: OperationsError.self, "\(open)") { try configuration.validate() }
        }
        for loopback in ["127.0.0.1:1", "127.0.0.2:1", "localhost:1", "[::1]:1", "[0::1]:1", ":1"] {
            var configuration = OperationsConfiguration(databaseURL: "postgres://localhost/x")
            try configuration.setAddress(loopback)
            #expect(configuration.bindsLoopback, "\(loopback)")
            #expect(throws: Never.self, "\(loopback)") { try configuration.validate() }
        }
        var named = OperationsConfiguration(databaseURL: "postgres://localhost/x")
        named.allowedHosts = ["dash.internal:8432"]
        #expect(throws: OperationsError.self, "a port in an allowed host name") { try named.validate() }
    }

    @Test("Login cookies expire, and are this process's only")
    func loginExpiry() {
        let keys = SessionKeys()
        let now = Date()
        let value = keys.loginCookie(now: now)
        #expect(keys.isValidLogin(value, now: now))
        #expect(keys.isValidLogin(value, now: now.addingTimeInterval(Double(SessionKeys.loginLifetime) - 60)))
        #expect(!keys.isValidLogin(value, now: now.addingTimeInterval(Double(SessionKeys.loginLifetime) + 1)))
        #expect(!SessionKeys().isValidLogin(value, now: now))
        #expect(!keys.isValidLogin(keys.csrfToken(forSession: SessionKeys.newSessionID()), now: now))
    }

    @Test("The token bucket: a burst, then one attempt an interval, per address; a full table refuses new addresses")
    func tokenBucket() {
        let limiter = LoginRateLimiter(burst: 2, interval: .seconds(10), maximumClients: 2)
        let start = ContinuousClock.now
        #expect(limiter.attempt("a", now: start))
        #expect(limiter.attempt("a", now: start))
        #expect(!limiter.attempt("a", now: start + .seconds(5)))
        #expect(limiter.secondsUntilNextAttempt("a", now: start + .seconds(5)) == 5)
        #expect(limiter.attempt("a", now: start + .seconds(10)))
        #expect(!limiter.attempt("a", now: start + .seconds(11)))
        #expect(limiter.attempt("b", now: start + .seconds(11)))
        #expect(
            !limiter.attempt("c", now: start + .seconds(11)), "two addresses with attempts in flight fill the table")
        #expect(limiter.attempt("c", now: start + .seconds(100)), "full buckets are forgotten")
    }

    @Test("--http-token-file: the token from a file only its owner can read; any other file is refused naming it")
    func tokenFile() throws {
        let folder = try TemporaryDirectory(prefix: "godwit-token")
        defer { folder.delete() }
        let path = try folder.write("token", Self.token + "\n")
        chmod(path, 0o600)
        #expect(try OperationsConfiguration.token(fromFile: path) == Self.token)
        for mode in [0o644, 0o640, 0o604, 0o620] as [mode_t] {
            chmod(path, mode)
            let error = #expect(throws: OperationsError.self) { try OperationsConfiguration.token(fromFile: path) }
            let text = error.map { "\($0)" } ?? ""
            #expect(text.contains(path) && text.contains("chmod 600") && !text.contains("\n"), "\(text)")
        }
        let empty = try folder.write("empty", "\n")
        chmod(empty, 0o600)
        #expect(throws: OperationsError.self) { try OperationsConfiguration.token(fromFile: empty) }
        let missing = #expect(throws: OperationsError.self) {
            try OperationsConfiguration.token(fromFile: folder.path + "/missing")
        }
        #expect(missing.map { "\($0)" }?.contains(folder.path + "/missing") == true)
    }
}
