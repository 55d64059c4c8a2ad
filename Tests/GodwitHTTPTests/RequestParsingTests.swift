import Foundation
import GodwitTestSupport
import Hummingbird
import HummingbirdTesting
import Testing

@testable import GodwitHTTP

/// Forms, query strings and cookies are read without ever trapping (Foundation's
/// `URLComponents.percentEncodedQuery` used to stop the process on `%zz`), and malformed ones
/// are answered 400.
@Suite("Malformed forms, query strings and cookies")
struct RequestParsingTests {
    /// Bytes a browser never leaves raw in a form or query, and shapes that are not a form.
    static let hostileForms: [[UInt8]] = [
        Array("%zz".utf8), Array("token=%zz".utf8), Array("token=%".utf8), Array("token=%4".utf8),
        Array("token=a b".utf8), Array("token=a#b".utf8), Array("token=<b>".utf8), Array("token=\"x\"".utf8),
        [0x74, 0x3D, 0xFF, 0xFE], Array("token=é".utf8), Array("token=%C3%28".utf8), Array("token=%00".utf8),
        Array("token=a\tb".utf8), Array("token=a\r\nb".utf8), Array("=x".utf8), Array("a=1&a=2".utf8),
        Array((0..<65).map { "f\($0)=1" }.joined(separator: "&").utf8),
    ]

    @Test("Hostile forms are refused; well-formed ones are decoded (+ is a space, %XX a byte)")
    func hostileForms() throws {
        for bytes in Self.hostileForms {
            #expect(throws: MalformedRequest.self, "\(bytes)") { try URLEncodedForm.parse(bytes) }
        }
        #expect(
            try URLEncodedForm.parse("a=b&c=%20d+e&empty=&bare&&x=%C3%A9%2B") == [
                "a": "b", "c": " d e", "empty": "", "bare": "", "x": "é+",
            ])
        #expect(try URLEncodedForm.parse("") == [:])
        #expect(try URLEncodedForm.parse("next=%2Fjobs%2F1&csrf=ab=cd") == ["next": "/jobs/1", "csrf": "ab=cd"])
    }

    @Test(
        "Fuzz, 20 000 seeded cases: the form parser never traps, refuses every raw byte a browser encodes, and what it accepts round-trips"
    )
    func fuzzForms() throws {
        var random = SplitMix64(seed: 0x6F_726D_5F66_757A)
        let interesting: [UInt8] =
            Array("%&=+#; \"<>azAZ09-._~!$'()*,/:?@[]\\^`{|}".utf8) + [0, 9, 10, 13, 0x7F, 0x80, 0xC3, 0xA9, 0xFF]
        for index in 0..<20_000 {
            var bytes: [UInt8] = []
            switch index % 3 {
            case 0:  // any bytes at all
                bytes = (0..<Int.random(in: 0..<40, using: &random)).map { _ in
                    UInt8.random(in: 0...255, using: &random)
                }
            case 1:  // the bytes that matter to the parser, densely
                bytes = (0..<Int.random(in: 0..<40, using: &random)).map { _ in
                    interesting.randomElement(using: &random)!
                }
            default:  // a well-formed form with a hostile byte or two spliced in
                bytes = Array(Self.encode(Self.randomFields(&random)).utf8)
                for _ in 0..<Int.random(in: 0...2, using: &random) where !bytes.isEmpty {
                    bytes.insert(
                        interesting.randomElement(using: &random)!, at: Int.random(in: 0...bytes.count, using: &random))
                }
            }
            let rawForbidden = bytes.contains { $0 < 0x21 || $0 > 0x7E || [0x22, 0x23, 0x3C, 0x3E].contains($0) }
            do {
                let fields = try URLEncodedForm.parse(bytes)
                #expect(!rawForbidden, "accepted a raw byte a browser encodes: \(bytes)")
                #expect(fields.allSatisfy { !$0.key.isEmpty && !$0.key.contains("\0") && !$0.value.contains("\0") })
                #expect(try URLEncodedForm.parse(Self.encode(fields)) == fields, "\(bytes)")
            } catch {
                // Refused, as it may be; not trapping is the point.
            }
        }
        // Every form a browser could send from fields of any text parses back to those fields.
        for _ in 0..<2_000 {
            let fields = Self.randomFields(&random)
            #expect(try URLEncodedForm.parse(Self.encode(fields)) == fields)
        }
    }

    @Test(
        "Fuzz, 10 000 seeded Cookie headers: never traps; one of our cookies sent twice is refused, once is read back")
    func fuzzCookies() throws {
        var random = SplitMix64(seed: 0x636F_6F6B_6965)
        let names = ["godwit_session", "godwit_login", "other", "godwit_session2", "Godwit_Session"]
        let junk = ["", " ", ";", "=", "\"", "garbage", "a=b=c", "=", "\u{0}", "é", "%zz", "\t"]
        for _ in 0..<10_000 {
            var pairs: [(String, String)] = []
            var pieces: [String] = []
            for _ in 0..<Int.random(in: 0..<6, using: &random) {
                if Bool.random(using: &random) {
                    let name = names.randomElement(using: &random)!
                    let value = randomToken()
                    pairs.append((name, value))
                    pieces.append(Bool.random(using: &random) ? "\(name)=\(value)" : " \(name)=\"\(value)\" ")
                } else {
                    // Anything without an = is someone else's and skipped.
                    pieces.append(junk.randomElement(using: &random)!.replacingOccurrences(of: "=", with: ""))
                }
            }
            let headers = Bool.random(using: &random) ? [pieces.joined(separator: ";")] : pieces.map { $0 + ";" }
            let cookies = RequestCookies(headers: headers)
            for name in ["godwit_session", "godwit_login"] {
                let sent = pairs.filter { $0.0 == name }
                if sent.count > 1 {
                    #expect(throws: MalformedRequest.self, "\(headers)") { try cookies.single(name) }
                } else {
                    #expect(try cookies.single(name) == sent.first?.1, "\(headers)")
                }
            }
            // Random text of any kind: read without trapping.
            let text = String(
                decoding: (0..<Int.random(in: 0..<30, using: &random)).map { _ in
                    UInt8.random(in: 0...255, using: &random)
                }, as: UTF8.self)
            _ = try? RequestCookies(headers: [text]).single("godwit_session")
        }
    }

    @Test(
        "Fuzz through the router, 300 seeded requests: hostile query strings, form bodies and cookies get a 4xx or a page, never a 5xx or a trap"
    )
    func fuzzRouter() async throws {
        var random = SplitMix64(seed: 0x726F_7574_6572)
        let pieces = [
            "state=", "kind=", "q=", "%zz", "%", "%4", "%C3%28", "%00", "+", "&", "=", "#", "é", "\u{0}", "queued",
            "a b", "<b>", "%25", "csrf=", "next=%2F",
        ]
        func junk() -> String {
            (0..<Int.random(in: 0..<8, using: &random)).map { _ in pieces.randomElement(using: &random)! }.joined()
        }
        var cases: [(uri: String, method: HTTPRequest.Method, headers: HTTPFields, body: String)] = []
        for _ in 0..<100 { cases.append(("/fragments/jobs?" + junk(), .get, [:], "")) }
        for _ in 0..<100 { cases.append(("/jobs/1/pause", .post, formHeaders, junk())) }
        for _ in 0..<100 { cases.append(("/", .get, [.cookie: "godwit_session=" + junk() + ";" + junk()], "")) }
        let requests = cases
        try await withOperations { database, _, client in
            let id = try await enqueue(database, name: "fuzzed")
            for request in requests {
                try await client.execute(
                    uri: request.uri, method: request.method, headers: request.headers,
                    body: ByteBuffer(string: request.body)
                ) { response in
                    #expect(
                        response.status.code < 500,
                        "\(request.method) \(request.uri) \(request.headers) \(request.body)")
                }
            }
            #expect(try await jobState(id, database).state == "queued")
            try await client.execute(uri: "/fragments/jobs?q=%zz", method: .get) { response in
                #expect(response.status == .badRequest)
                #expect(response.text.contains("query string is malformed"))
            }
        }
    }

    @Test("A form is application/x-www-form-urlencoded or 415; a malformed one is 400")
    func formContentType() async throws {
        try await withOperations { database, _, client in
            let id = try await enqueue(database, name: "typed")
            let (cookie, form) = try await csrfSession(client)
            let body = formBody([("csrf", form)])
            for contentType in [nil, "text/plain", "application/json", "multipart/form-data; boundary=x"] {
                var headers: HTTPFields = [.cookie: "godwit_session=\(cookie)"]
                if let contentType { headers[.contentType] = contentType }
                try await client.execute(uri: "/jobs/\(id)/pause", method: .post, headers: headers, body: body) {
                    response in
                    #expect(response.status == .unsupportedMediaType, "\(contentType ?? "none")")
                }
            }
            var headers: HTTPFields = [.cookie: "godwit_session=\(cookie)"]
            headers[.contentType] = "application/x-www-form-urlencoded"
            try await client.execute(
                uri: "/jobs/\(id)/pause", method: .post, headers: headers,
                body: ByteBuffer(string: "csrf=\(form)&next=%zz")
            ) { response in
                #expect(response.status == .badRequest)
                #expect(response.text.contains("the form is malformed"))
            }
            #expect(try await jobState(id, database).state == "queued")
            headers[.contentType] = "Application/X-WWW-Form-URLEncoded; charset=UTF-8"
            try await client.execute(uri: "/jobs/\(id)/pause", method: .post, headers: headers, body: body) {
                response in
                #expect(response.status == .seeOther)
            }
            #expect(try await jobState(id, database).state == "paused")
        }
    }

    @Test(
        "Over TCP: bad percent-encoding, raw spaces, # and non-ASCII bytes in POST /login answer 400 before authentication, and the server answers afterwards"
    )
    func malformedLoginOverTCP() async throws {
        let token = "a-long-enough-token-0123456789"
        try await withLiveServer(configure: {
            $0.token = token
            $0.loginBurst = 100
        }) { port, _ in
            let form: HTTPFields = [.contentType: "application/x-www-form-urlencoded"]
            for body in Self.hostileForms {
                let response = try await send(
                    port, "/login", method: .post, headers: form, body: ByteBuffer(bytes: body))
                #expect(response.status == .badRequest, "\(body): \(response.text)")
                #expect(
                    try await send(port, "/health/live", headers: [.authorization: "Bearer \(token)"]).status == .ok)
            }
            let plain = try await send(
                port, "/login", method: .post, headers: [.contentType: "text/plain"],
                body: ByteBuffer(string: "token=\(token)"))
            #expect(plain.status == .unsupportedMediaType)
            let bearer: HTTPFields = [.authorization: "Bearer \(token)"]
            #expect(try await send(port, "/?q=%zz", headers: bearer).status == .badRequest)
            #expect(try await send(port, "/fragments/jobs?state=%E9", headers: bearer).status == .badRequest)
            var twice = bearer
            twice[.cookie] = "godwit_session=\(randomToken()); godwit_session=\(randomToken())"
            let duplicate = try await send(port, "/", headers: twice)
            #expect(duplicate.status == .badRequest)
            #expect(duplicate.text.contains("2 godwit_session cookies"))
            // A request line with raw bytes the HTTP parser itself refuses.
            let raw = await rawExchange(port, Array("GET /?q=\u{7F}%zz é HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".utf8))
            #expect(raw.text.hasPrefix("HTTP/1.1 4"), "\(raw.text)")
            let login = try await send(port, "/login", method: .post, headers: form, body: formBody([("token", token)]))
            #expect(login.status == .seeOther, "the server still answers, and logs in")
        }
    }

    @Test(
        "Over TCP: a request head that never completes is cut off at the idle timeout; a form body that never completes gets 408"
    )
    func timeouts() async throws {
        try await withLiveServer(configure: {
            $0.token = "a-long-enough-token-0123456789"
            $0.idleTimeout = .seconds(1)
        }) { port, _ in
            let partialHead = await rawExchange(
                port, Array("GET /health/live HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ".utf8))
            #expect(partialHead.closed, "the server never closed a connection whose head did not come")
        }
        try await withLiveServer(configure: {
            $0.token = "a-long-enough-token-0123456789"
            $0.idleTimeout = .seconds(120)
            $0.formTimeout = .seconds(1)
        }) { port, _ in
            let head =
                "POST /login HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/x-www-form-urlencoded\r\n"
                + "Content-Length: 100\r\n\r\ntoken=abc"
            let partialBody = await rawExchange(port, Array(head.utf8))
            #expect(partialBody.text.hasPrefix("HTTP/1.1 408"), "\(partialBody.text)")
        }
    }

    @Test("The connection cap is Hummingbird's: at most maximumConnections open, then new ones wait")
    func connectionCap() async throws {
        var configuration = OperationsConfiguration(databaseURL: "postgres://127.0.0.1:1/none")
        configuration.maximumConnections = 3
        let server = OperationsServer(configuration: configuration, logger: .init(label: "test"))
        var delegate = try #require(server.serverConfiguration().availableConnectionsDelegate)
        for _ in 0..<3 {
            #expect(delegate.isAcceptingNewConnections())
            delegate.connectionOpened()
        }
        #expect(!delegate.isAcceptingNewConnections())
        delegate.connectionClosed()
        #expect(delegate.isAcceptingNewConnections())
        await server.pool.close()
    }

    // MARK: Helpers

    /// Fields of random text: ASCII, the form's own delimiters, non-ASCII, emoji.
    static func randomFields(_ random: inout SplitMix64) -> [String: String] {
        let alphabet = Array("ab Z9-_.~%&=+#;/?é漢🦤\"<>\t")
        func text(_ minimum: Int) -> String {
            String(
                (0..<Int.random(in: minimum..<8, using: &random)).map { _ in alphabet.randomElement(using: &random)! })
        }
        var fields: [String: String] = [:]
        for _ in 0..<Int.random(in: 0..<5, using: &random) { fields[text(1)] = text(0) }
        return fields
    }

    /// As a browser encodes a form: everything but letters, digits and `*-._` as %XX, spaces as +.
    static func encode(_ fields: [String: String]) -> String {
        func escape(_ text: String) -> String {
            text.utf8.map { byte in
                switch byte {
                case UInt8(ascii: " "): "+"
                case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
                    UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "*"), UInt8(ascii: "-"), UInt8(ascii: "."),
                    UInt8(ascii: "_"):
                    String(UnicodeScalar(byte))
                default: String(format: "%%%02X", byte)
                }
            }.joined()
        }
        return fields.map { "\(escape($0.key))=\(escape($0.value))" }.joined(separator: "&")
    }
}
