import Foundation
import GodwitTestSupport
import Hummingbird
import HummingbirdTesting
import Testing

@testable import GodwitHTTP

@Suite("Loopback addresses, the token file, methods and error pages")
struct SecurityTests {
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

    @Test(
        "godwit serve: --http-token-file refuses an open file in one line naming it; --help warns that --http-token shows in /proc"
    )
    func tokenFileProcess() async throws {
        let folder = try TemporaryDirectory(prefix: "godwit-token-process")
        defer { folder.delete() }
        let path = try folder.write("token", Self.token + "\n")
        chmod(path, 0o644)
        let output = try await GodwitProcess.run([
            "serve", "-D", "postgres://nobody@127.0.0.1:1/none", "--http", "0.0.0.0:8433", "--http-token-file", path,
        ])
        #expect(output.status != 0)
        let lines = output.stderr.split(separator: "\n").filter { !$0.hasPrefix("Usage") && !$0.isEmpty }
        #expect(lines.first?.contains(path) == true && lines.first?.contains("chmod 600") == true, "\(output.stderr)")
        let help = try await GodwitProcess.run(["serve", "--help"])
        let text = help.stdout.split(whereSeparator: \.isWhitespace).joined(separator: " ")
        #expect(text.contains("--http-token-file"), "\(help.stdout)")
        #expect(text.contains("/proc"), "\(help.stdout)")
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
}
