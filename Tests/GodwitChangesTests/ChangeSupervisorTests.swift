import GodwitChanges
import GodwitPostgres
import GodwitQueue
import GodwitTestSupport
import Testing

/// The supervisor's one look (`ChangeSupervisor.advance`), called directly: what it moves,
/// what it records, and that several at once move a change once.
@Suite("The change supervisor")
struct ChangeSupervisorTests {
    let supervisor = ChangeSupervisor(schema: .withChanges())

    @Test func releasesTheFinishJobOnceTheBackfillSucceededEvenWithFourLookingAtOnce() async throws {
        try await withChangesDatabase { db, conn in
            let change = try await RenameChange.start(on: conn)
            // A backfill still queued: nothing moves.
            #expect(try await supervisor.advance(on: conn) == ChangeSupervisor.Report())
            #expect(try await changePhase(conn) == "backfilling")
            try await conn.query(
                "UPDATE godwit.jobs SET state = 'succeeded', finished_at = now() WHERE id = $1", [change.backfillJob])
            let listener = try await db.connect()
            try await listener.listen("godwit_jobs")
            _ = try await listener.notifications(timeout: .zero)
            let reports = try await withThrowingTaskGroup(of: ChangeSupervisor.Report.self) { group in
                for _ in 0..<4 {
                    group.addTask {
                        let mine = try await db.connect()
                        let report = try await supervisor.advance(on: mine)
                        await mine.close()
                        return report
                    }
                }
                return try await group.reduce(into: []) { $0.append($1) }
            }
            let advanced = reports.flatMap(\.advanced)
            #expect(advanced.count == 1, "one of four looks moves the change")
            #expect(advanced.first?.change == RenameChange.name)
            #expect(advanced.first?.finishJob == change.finishJob)
            #expect(try await changePhase(conn) == "verifying")
            let due = try await conn.query(
                "SELECT run_at <= now() AS due, state::text AS s FROM godwit.jobs WHERE id = $1", [change.finishJob]
            ).first
            #expect(try due?.bool("due") == true)
            #expect(try due?.string("s") == "queued")
            // The new run_at woke the workers.
            var woken = false
            for _ in 0..<20 where !woken {
                woken = !(try await listener.notifications(timeout: .milliseconds(500)).isEmpty)
            }
            #expect(woken, "no NOTIFY on the jobs channel")
            await listener.close()
            // A later look finds nothing more to do.
            #expect(try await supervisor.advance(on: conn) == ChangeSupervisor.Report())
        }
    }

    @Test func aFailedBackfillLeavesThePhaseAndRecordsWhyOnceUntilItIsRetried() async throws {
        try await withChangesDatabase { _, conn in
            let change = try await RenameChange.start(on: conn)
            try await conn.query(
                """
                UPDATE godwit.jobs SET state = 'failed', finished_at = now(), last_error = E'batch 3 failed:\\nboom'
                WHERE id = $1
                """, [change.backfillJob])
            let report = try await supervisor.advance(on: conn)
            #expect(report.advanced.isEmpty)
            #expect(report.stalled.count == 1)
            let record = try #require(try await changeRecord(conn))
            #expect(try record.string("phase") == "backfilling")
            let error = try record.string("error")
            #expect(error.contains("job \(change.backfillJob)") && error.contains("failed"), "\(error)")
            #expect(error.contains("batch 3 failed: boom"), "one line: \(error)")
            #expect(!error.contains("\n"))
            let finishDue = try await conn.query(
                "SELECT run_at = 'infinity' AS never FROM godwit.jobs WHERE id = $1", [change.finishJob]
            ).first?.bool("never")
            #expect(finishDue == true, "the finish job stays held")
            // Recorded once: the next look changes nothing.
            #expect(try await supervisor.advance(on: conn).stalled.isEmpty)
            // Retried: the reason goes.
            try await conn.query("SELECT godwit.retry($1)", [change.backfillJob])
            _ = try await supervisor.advance(on: conn)
            #expect(try await changeRecord(conn)?["error"] == nil)
            #expect(try await changePhase(conn) == "backfilling")
        }
    }
}
