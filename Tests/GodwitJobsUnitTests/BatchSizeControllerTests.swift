import Testing

@testable import GodwitJobs

/// The backfill governor's controller alone: durations and waits given, no clock, no database.
@Suite("The batch-size controller")
struct BatchSizeControllerTests {
    func controller(limit: Int? = 10, initial: Int = 1000) -> BatchSizeController {
        BatchSizeController(
            initial: initial, target: .milliseconds(200), minimum: 10, maximum: 50_000,
            maxLockWait: limit.map(Duration.milliseconds))
    }

    @Test func aWaitOverTheLimitShrinksAtOnceAndNoneLetsItGrow() {
        var c = controller()
        c.record(rows: 1000, duration: .milliseconds(20))
        #expect(c.size == 1200, "no one waited and the batch was quick: it grows by 1.2x")
        c.record(rows: 1200, duration: .milliseconds(24), longestLockWait: .milliseconds(40))
        #expect(c.size == 300, "a 40 ms wait against a 10 ms limit: a quarter")
        c.record(rows: 300, duration: .milliseconds(6), longestLockWait: .milliseconds(15))
        #expect(c.size == 150, "over the limit by little: still halved at once")
        #expect(c.harmfulSize == 300)
        c.record(rows: 150, duration: .milliseconds(3), longestLockWait: .milliseconds(9))
        #expect(c.size == 152, "a wait under the limit is no harm; at half the size that hurt, it grows by 1.01x")
    }

    @Test func afterHarmItGrowsBackQuicklyToHalfTheSizeThatHurtThenSlowlyWhileOthersAreThere() {
        var c = controller(initial: 4000)
        c.record(rows: 4000, duration: .milliseconds(40), longestLockWait: .milliseconds(40))
        #expect(c.size == 1000)
        #expect(c.harmfulSize == 4000)
        var sizes: [Int] = []
        for _ in 0..<5 {
            c.record(rows: c.size, duration: .milliseconds(Int64(c.size / 100)), shared: true)
            sizes.append(c.size)
        }
        // 1.2x up to half of 4000, then 1.01x.
        #expect(sizes == [1200, 1440, 1728, 1745, 1762])
        #expect(c.reason == .cautious)
        #expect(
            c.explanation
                == "1,762 rows: growing slowly (1.01x a batch): a session last waited too long on a batch of 4,000 rows"
        )
        // Fifty batches without harm: the size that hurt is forgotten, back to 1.2x.
        var after = c
        for _ in 0..<45 {
            after.record(rows: after.size, duration: .milliseconds(Int64(after.size / 100)), shared: true)
        }
        #expect(after.harmfulSize == nil)
        #expect(after.reason == .shared)
        // Nobody else there any more: nobody to harm, back to 1.2x.
        c.record(rows: c.size, duration: .milliseconds(Int64(c.size / 100)), shared: false)
        #expect(c.harmfulSize == nil)
        #expect(c.size == 2114)
    }

    @Test func aOneRowBatchStillGrows() {
        var c = BatchSizeController(
            initial: 1, target: .milliseconds(200), minimum: 1, maximum: 100, maxLockWait: .milliseconds(10))
        c.record(rows: 1, duration: .milliseconds(1))
        #expect(c.size == 2, "1.2 rows would round back to 1")
    }

    @Test func onATableNoOneTouchesItClimbsToTheTargetDuration() {
        var c = controller(initial: 100)
        for _ in 0..<60 { c.record(rows: c.size, duration: .microseconds(Int64(c.size) * 10)) }
        // 10 µs a row and a 200 ms target: 20,000 rows.
        #expect(c.size == 20_000)
        var off = controller(limit: nil, initial: 1000)
        off.record(rows: 1000, duration: .milliseconds(10), longestLockWait: .seconds(5))
        #expect(off.size == 1200, "with no limit, waits do not steer")
    }

    /// 1 ms a batch whatever its size, 10 µs a row: the knee (fixed cost 2% of the batch) is
    /// 1 * 0.98 / 0.02 / 0.01 = 4,900 rows, the 200 ms ceiling 20,000.
    func paced(_ c: inout BatchSizeController, batches: Int, overhead: Duration = .milliseconds(1), shared: Bool) {
        for _ in 0..<batches {
            c.record(rows: c.size, duration: .microseconds(Int64(c.size) * 10), overhead: overhead, shared: shared)
        }
    }

    @Test func whileOthersUseTheTableItSettlesAtTheKneeAndAloneItClimbsToTheCeiling() {
        var shared = controller()
        paced(&shared, batches: 40, shared: true)
        #expect(shared.knee == 4900)
        #expect(shared.size == 4900)
        #expect(shared.reason == .shared)
        #expect(shared.explanation.hasPrefix("4,900 rows: other sessions are using the table; the smallest size"))
        var alone = controller()
        paced(&alone, batches: 40, shared: false)
        #expect(alone.size == 20_000)
        #expect(
            alone.explanation.hasPrefix(
                "20,000 rows: nobody else is using the table; at the 200 ms target-batch-ms ceiling"))
        // Someone arrives: down to the knee at once, not step by step.
        paced(&alone, batches: 1, shared: true)
        #expect(alone.size == 4900)
        // They leave: back up at 1.2x a batch.
        paced(&alone, batches: 1, shared: false)
        #expect(alone.size == 5880)
    }

    @Test func aKneeAboveTheCeilingIsHeldAtTheCeiling() {
        var c = controller()
        // 10 ms a batch whatever its size: the knee would be 49,000 rows, 490 ms.
        paced(&c, batches: 40, overhead: .milliseconds(10), shared: true)
        #expect(c.size == 20_000)
        #expect(c.explanation.contains("held at the 200 ms target-batch-ms ceiling"))
    }

    @Test func aLockTimeoutHalvesTheSizeDownToTheMinimumAndIsRemembered() {
        var c = controller(initial: 80)
        let first = c.shrinkAfterLockTimeout(bound: .milliseconds(10))
        #expect(first)
        #expect(c.size == 40)
        #expect(c.harmfulSize == 80)
        #expect(
            c.explanation
                == "40 rows: the last attempt gave up after waiting 10 ms for another session's lock while holding its own rows; halved"
        )
        _ = c.shrinkAfterLockTimeout(bound: .milliseconds(10))
        _ = c.shrinkAfterLockTimeout(bound: .milliseconds(10))
        #expect(c.size == 10)
        #expect(c.harmfulSize == 80, "the same batch failing again: the size that hurt is the one it started at")
        let atMinimum = c.shrinkAfterLockTimeout(bound: .milliseconds(10))
        #expect(!atMinimum, "at the minimum: nothing left to halve")
        #expect(c.size == 10)
    }
}
