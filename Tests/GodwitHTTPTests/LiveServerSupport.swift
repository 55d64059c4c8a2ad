import Foundation
import GodwitHTTP
import GodwitJobs
import GodwitQueue
import GodwitTestSupport
import Hummingbird
import HummingbirdTesting
import Logging
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// Runs `body` against `OperationsServer.application()` itself, served over TCP on 127.0.0.1 (so
/// the HTTP parser, the idle timeout and the `Host` header are the real ones), with the queue
/// schema installed in a fresh database. The port is picked below 32768, away from the kernel's
/// ephemeral range; one that turns out taken is replaced by another.
func withLiveServer<T: Sendable>(
    configure: (inout OperationsConfiguration) -> Void = { _ in },
    _ body: @escaping @Sendable (_ port: Int, TestDatabase) async throws -> T
) async throws -> T {
    try await withTestDatabase(prefix: "godwit_http_live") { database in
        let connection = try await database.connect()
        try await QueueSchema.withJobs().install(on: connection)
        await connection.close()
        var lastError: (any Error)?
        for _ in 0..<10 {
            var configuration = OperationsConfiguration(databaseURL: database.url)
            configuration.healthTimeout = .seconds(30)
            configuration.metricsReadInterval = .zero
            configure(&configuration)
            configuration.host = "127.0.0.1"
            configuration.port = Int.random(in: 20000..<32000)
            let server = OperationsServer(configuration: configuration, logger: Logger(label: "test"))
            let port = configuration.port
            let started = AsyncStream<Void>.makeStream()
            let didStart = Mutex(false)
            let app = server.application {
                didStart.withLock { $0 = true }
                started.continuation.yield()
                started.continuation.finish()
            }
            let outcome: T?
            do {
                outcome = try await withThrowingTaskGroup(of: T?.self) { group in
                    group.addTask {
                        try await app.runService(gracefulShutdownSignals: [])
                        return nil
                    }
                    group.addTask {
                        var running = started.stream.makeAsyncIterator()
                        guard await running.next() != nil else { return nil }
                        return try await body(port, database)
                    }
                    defer { group.cancelAll() }
                    return try await group.next() ?? nil
                }
            } catch  where !didStart.withLock({ $0 }) {
                // The port was taken: try another.
                lastError = error
                await server.pool.close()
                continue
            } catch {
                await server.pool.close()
                throw error
            }
            await server.pool.close()
            guard let outcome else { throw TestSetupError(message: "the server stopped before the test ran") }
            return outcome
        }
        throw lastError ?? TestSetupError(message: "no free port for the server")
    }
}

/// A request to 127.0.0.1:`port` on a fresh connection, with `Host: authority` (none when nil).
/// Its timeout bounds a failing test, not a measure: a loaded machine running the suite in
/// parallel took over 30 s to answer a `/metrics` that reads the database.
func send(
    _ port: Int, _ path: String, method: HTTPRequest.Method = .get, authority: String? = "127.0.0.1",
    headers: HTTPFields = [:], body: ByteBuffer? = nil
) async throws -> FetchedResponse {
    try await TestClient.withClient(host: "127.0.0.1", port: port, configuration: .init(timeout: .seconds(120))) {
        client in
        let response = try await client.execute(
            TestClient.Request(path, method: method, authority: authority, headers: headers, body: body))
        return FetchedResponse(
            status: response.status, text: response.body.map { String(buffer: $0) } ?? "",
            headers: response.head.headerFields)
    }
}

/// Writes `bytes` to a new connection to 127.0.0.1:`port`, then reads until the server closes
/// the connection; nil when it has not closed it within `limit` (a bound for a failing test,
/// not a measure). Runs on a thread of its own: the socket calls block.
func rawExchange(_ port: Int, _ bytes: [UInt8], limit: Int = 60) async -> (text: String, closed: Bool) {
    await withCheckedContinuation { continuation in
        Thread {
            continuation.resume(returning: blockingExchange(port, bytes, limit: limit))
        }.start()
    }
}

private func blockingExchange(_ port: Int, _ bytes: [UInt8], limit: Int) -> (text: String, closed: Bool) {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    guard fd >= 0 else { return ("socket() failed", false) }
    defer { close(fd) }
    var timeout = timeval(tv_sec: limit, tv_usec: 0)
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    address.sin_port = UInt16(port).bigEndian
    let connected = withUnsafePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
            connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0
        }
    }
    guard connected else { return ("connect() failed", false) }
    var sent = 0
    while sent < bytes.count {
        let n = bytes[sent...].withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        guard n > 0 else { break }
        sent += n
    }
    var received: [UInt8] = []
    var buffer = [UInt8](repeating: 0, count: 4096)
    while true {
        let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
        if n > 0 {
            received += buffer[..<n]
        } else {
            // 0: the server closed; -1 with ECONNRESET: it reset; -1 with EAGAIN: the limit passed.
            let closed = n == 0 || errno == ECONNRESET
            return (String(decoding: received, as: UTF8.self), closed)
        }
    }
}
