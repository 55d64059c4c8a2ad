import Synchronization
import Testing

@testable import GodwitQueue

@Suite("Wake-ups and batched completions")
struct SignalTests {
    @Test func aWakeBeforeTheWaitIsRemembered() async {
        let wake = WakeSignal()
        wake.wake()
        #expect(await wake.wait(timeout: .seconds(30)), "the wait timed out: the wake-up was lost")
    }

    @Test func aWaitEndsAtTheTimeoutOrAWake() async throws {
        let wake = WakeSignal()
        let clock = ContinuousClock()
        let started = clock.now
        #expect(await wake.wait(timeout: .milliseconds(50)) == false)
        #expect(clock.now - started >= .milliseconds(50))
        // Woken, not timed out, however late the waiter gets to run on a loaded machine.
        let waiter = Task { await wake.wait(timeout: .seconds(300)) }
        try await Task.sleep(for: .milliseconds(50))
        wake.wake()
        #expect(await waiter.value, "the wait timed out instead of being woken")
        // Cancelling a waiting task ends the wait too, as not woken.
        let cancelled = Task { await wake.wait(timeout: .seconds(300)) }
        cancelled.cancel()
        #expect(await cancelled.value == false)
    }

    @Test func completionsQueuedDuringAWriteGoOutTogether() async throws {
        let batch = CompletionBatch()
        let writes = Mutex<[[Int64]]>([])
        let flusher = Task {
            await batch.flushLoop { entries in
                writes.withLock { $0.append(entries.map(\.job.id)) }
                try? await Task.sleep(for: .milliseconds(100))
                return Set(entries.map(\.job.id).filter { $0 != 3 })
            }
        }
        func job(_ id: Int64) -> ClaimedJob {
            ClaimedJob(
                id: id, kind: .noop, name: "n", payload: "{}", attempt: 1, maxAttempts: 1, leaseToken: 1,
                enqueuedBy: "x")
        }
        let results = await withTaskGroup(of: (Int64, Bool).self) { group in
            group.addTask { (1, await batch.submit(job(1), result: nil)) }
            try? await Task.sleep(for: .milliseconds(20))
            for id: Int64 in 2...5 { group.addTask { (id, await batch.submit(job(id), result: nil)) } }
            var results: [Int64: Bool] = [:]
            for await (id, recorded) in group { results[id] = recorded }
            return results
        }
        #expect(results == [1: true, 2: true, 3: false, 4: true, 5: true])
        // The first write carried job 1 alone; the four that queued behind it went in one more.
        let seen = writes.withLock { $0 }
        #expect(seen.first == [1])
        #expect(seen.count == 2)
        #expect(Set(seen.last ?? []) == [2, 3, 4, 5])
        flusher.cancel()
        await flusher.value
        // After the loop ends, nothing is accepted.
        #expect(await batch.submit(job(6), result: nil) == false)
    }
}
