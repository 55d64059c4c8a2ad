import Foundation
import GodwitPostgres
import GodwitTestSupport
import Synchronization
import Testing

@Suite("A server that vanishes from the network mid-query")
struct DeadServerTests {
    /// A server whose machine dies sends nothing more, not even a reset: without keepalives
    /// and `tcp_user_timeout` a query waits for its result until the kernel's two-hour default.
    /// The session's options must turn that into an error within their bound.
    @Test(.enabled(if: NetworkNamespace.isSupported, "needs root and ip netns"))
    func aQueryToAServerThatStoppedAnsweringFailsWithinTheKeepaliveBound() async throws {
        let network = try await NetworkNamespace()
        let cluster: PrivateCluster
        do {
            cluster = try await PrivateCluster(network: network)
        } catch {
            await network.destroy()
            throw error
        }
        do {
            try await queryFailsAfterTheCut(cluster, network)
        } catch {
            await cluster.destroy()
            await network.destroy()
            throw error
        }
        await cluster.destroy()
        await network.destroy()
    }

    private func queryFailsAfterTheCut(_ cluster: PrivateCluster, _ network: NetworkNamespace) async throws {
        var options = SessionOptions()
        options.keepalivesIdle = .seconds(1)
        options.keepalivesInterval = .seconds(1)
        options.keepalivesCount = 2
        options.tcpUserTimeout = .seconds(3)
        let conn = try await Connection.connect(cluster.url, options: options)
        let watcher = try await Connection.connect(cluster.url)
        let pid = await conn.backendPID
        let query = Task { try await conn.query("SELECT pg_sleep(3600)") }
        #expect(
            try await eventually {
                try await watcher.query(
                    "SELECT 1 FROM pg_stat_activity WHERE pid = $1 AND query LIKE 'SELECT pg_sleep%'", [pid]
                ).first != nil
            })
        try await network.dropReplies()
        // The server's answer (after an hour) could never arrive: only the keepalive or user
        // timeout (3 s) can end this wait. Raced against 120 s so that a hang fails the test
        // instead of hanging it (the losing wait is left behind; the cluster's destruction ends it).
        let outcome = await FirstOf.race(
            {
                do {
                    _ = try await query.value
                    return "the query returned"
                } catch {
                    return "\(error)"
                }
            },
            {
                try? await Task.sleep(for: .seconds(120))
                return "still waiting after 120 s"
            })
        if outcome.hasPrefix("still waiting") {
            // The connection's thread is still inside poll(): nothing more can be asked of it.
            Issue.record("a query to a server that stopped answering was still waiting after 120 s")
            return
        }
        #expect(outcome != "the query returned")
        #expect(await !conn.isOpen || outcome.contains("timed out") || outcome.contains("lost"), "\(outcome)")
        await conn.close()
        await watcher.close()
    }
}

/// The first of two results; the other task is left running.
private final class FirstOf: Sendable {
    private let continuation: Mutex<CheckedContinuation<String, Never>?>

    private init(_ continuation: CheckedContinuation<String, Never>) {
        self.continuation = Mutex(continuation)
    }

    private func finish(_ value: String) {
        continuation.withLock { $0.take() }?.resume(returning: value)
    }

    static func race(
        _ first: @escaping @Sendable () async -> String, _ second: @escaping @Sendable () async -> String
    ) async -> String {
        await withCheckedContinuation { continuation in
            let once = FirstOf(continuation)
            Task { once.finish(await first()) }
            Task { once.finish(await second()) }
        }
    }
}
