import Foundation
import GodwitHTTP
import GodwitJobs
import GodwitPostgres
import GodwitQueue
import GodwitTestSupport
import Hummingbird
import HummingbirdTesting
import Logging
import Testing

/// Runs `body` against the operations router of a fresh database with the queue schema
/// installed; the server's pool is closed afterwards.
func withOperations<T: Sendable>(
    install: Bool = true, configure: (inout OperationsConfiguration) -> Void = { _ in },
    workerStatus: @escaping @Sendable () -> WorkerStatus? = { nil },
    _ body: @Sendable (TestDatabase, OperationsServer, any TestClientProtocol) async throws -> T
) async throws -> T {
    try await withTestDatabase(prefix: "godwit_http") { database in
        if install {
            let connection = try await database.connect()
            try await QueueSchema.withJobs().install(on: connection)
            await connection.close()
        }
        var configuration = OperationsConfiguration(databaseURL: database.url)
        // A loaded test machine may take longer than the production bound to connect; the
        // bound itself is tested with a server that never answers.
        configuration.healthTimeout = .seconds(30)
        // Every scrape reads the database afresh unless a test says otherwise.
        configuration.metricsReadInterval = .zero
        configure(&configuration)
        let server = OperationsServer(
            configuration: configuration, logger: Logger(label: "test"), workerStatus: workerStatus)
        let app = Application(router: server.router())
        do {
            let value = try await app.test(.router) { client in try await body(database, server, client) }
            await server.pool.close()
            return value
        } catch {
            await server.pool.close()
            throw error
        }
    }
}

extension TestResponse {
    var text: String { body.getString(at: body.readerIndex, length: body.readableBytes) ?? "" }

    /// The value of cookie `name` from Set-Cookie.
    func cookie(_ name: String) -> String? {
        for field in headers where field.name == .setCookie {
            let pair = field.value.split(separator: ";").first.map(String.init) ?? ""
            if pair.hasPrefix("\(name)=") { return String(pair.dropFirst(name.count + 1)) }
        }
        return nil
    }
}

/// A form body, percent-encoded.
func formBody(_ fields: [(String, String)]) -> ByteBuffer {
    var allowed = CharacterSet.alphanumerics
    allowed.insert(charactersIn: "-._~")
    let text = fields.map { "\($0.0)=\($0.1.addingPercentEncoding(withAllowedCharacters: allowed) ?? "")" }
        .joined(separator: "&")
    return ByteBuffer(string: text)
}

let formHeaders: HTTPFields = [.contentType: "application/x-www-form-urlencoded"]

func jobState(_ id: Int64, _ database: TestDatabase) async throws -> (state: String, control: String?) {
    let connection = try await database.connect()
    let row = try await connection.query("SELECT state::text AS state, control FROM godwit.jobs WHERE id = $1", [id])
        .first!
    await connection.close()
    return (try row.string("state"), row["control"])
}

@discardableResult
func enqueue(_ database: TestDatabase, kind: JobKind = .noop, name: String, payload: String = "{}") async throws
    -> Int64
{
    let connection = try await database.connect()
    let id = try await JobQueue().enqueue(kind: kind, name: name, payload: payload, on: connection)
    await connection.close()
    return id
}

/// The session cookie a page sets and the CSRF token its forms carry (a job with controls must
/// be on the page).
func csrfSession(_ client: any TestClientProtocol, path: String = "/") async throws -> (cookie: String, form: String) {
    try await client.execute(uri: path, method: .get) { response in
        let cookie = try #require(response.cookie("godwit_session"))
        let page = response.text
        let marker = #"name="csrf" value=""#
        let start = try #require(page.range(of: marker)).upperBound
        return (cookie, String(page[start...].prefix { $0 != "\"" }))
    }
}

extension TestResponse {
    /// The whole Set-Cookie line of cookie `name`, attributes included.
    func setCookieLine(_ name: String) -> String? {
        headers[values: .setCookie].first { $0.hasPrefix("\(name)=") }
    }
}
