import Foundation
import GodwitTestSupport
import Testing

@testable import GodwitPostgres

/// What `Connection.finishAll()` does before the process exits, on this test's connections only
/// (the process is shared with every other test): a connection released is closed and its
/// thread joined; one still referenced is closed.
@Suite("Connection threads at exit")
struct ConnectionThreadsTests {
    @Test func finishJoinsReleasedConnectionsAndClosesOpenOnes() async throws {
        try await withTestDatabase(prefix: "godwit_threads") { db in
            var released: Connection? = try await Connection.connect(db.url)
            let kept = try await Connection.connect(db.url)
            let executor = try #require(released?.executor)
            let ids: Set<Int> = [try #require(released?.registration), kept.registration]
            #expect(try await released?.query("SELECT 1 AS one").first?.int("one") == 1)
            #expect(!executor.isJoined)
            released = nil
            await ConnectionThreads.finishAll(only: ids)
            // Joined: the thread has ended, its clean-up included, before finishAll returned.
            #expect(executor.hasEnded)
            #expect(executor.isJoined)
            #expect(await kept.isOpen == false, "the connection still referenced is closed")
            await #expect(throws: PostgresError.self) { try await kept.query("SELECT 1") }
        }
    }

    /// A long-running process does not collect ended threads: each new connection joins them.
    @Test func endedThreadsAreJoinedWhenTheNextConnectionStarts() async throws {
        try await withTestDatabase(prefix: "godwit_threads") { db in
            var released: Connection? = try await Connection.connect(db.url)
            let executor = try #require(released?.executor)
            released = nil
            let ended = await eventually(timeout: .seconds(60)) { executor.hasEnded }
            #expect(ended, "the released connection's thread never ended")
            let next = try await Connection.connect(db.url)
            #expect(executor.isJoined)
            await next.close()
        }
    }
}
