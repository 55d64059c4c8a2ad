import GodwitFleet
import GodwitTestSupport
import Synchronization
import Testing

@testable import GodwitHTTP

/// What `FleetProgressCache` asks of the targets: each read's jobs, and what each job answers.
final class ProgressReads: Sendable {
    private let reads = Mutex<[[String]]>([])
    private let states = Mutex<[String: String]>([:])
    private let held = Mutex(false)

    var count: Int { reads.withLock { $0.count } }
    func targets(ofRead index: Int) -> [String] { reads.withLock { $0[index] } }
    func set(_ target: String, _ state: String) { states.withLock { $0[target] = state } }
    func hold(_ on: Bool) { held.withLock { $0 = on } }

    func read(_ jobs: FleetProgressCache.Jobs) async -> [FleetBackfillProgress] {
        reads.withLock { $0.append(jobs.map(\.target.name)) }
        while held.withLock({ $0 }) { try? await Task.sleep(for: .milliseconds(5)) }
        return jobs.map { job in
            var progress = FleetBackfillProgress(target: job.target.name, jobID: job.jobID)
            progress.state = states.withLock { $0[job.target.name] } ?? "running"
            return progress
        }
    }

    func cache(interval: Duration) -> FleetProgressCache {
        FleetProgressCache(minimumInterval: interval) { await self.read($0) }
    }
}

@Suite("The fleet run page's progress reads")
struct FleetProgressCacheTests {
    static func jobs(_ ids: [String: Int64]) -> FleetProgressCache.Jobs {
        ids.sorted { $0.key < $1.key }.map {
            (target: FleetTarget(name: $0.key, connection: "postgres://h/\($0.key)"), jobID: $0.value)
        }
    }

    @Test func requestsWithinTheIntervalShareOneRead() async {
        let reads = ProgressReads()
        let cache = reads.cache(interval: .seconds(3600))
        let jobs = Self.jobs(["a": 1, "b": 2])
        for _ in 0..<3 {
            let progress = await cache.progress(run: 1, jobs: jobs)
            #expect(progress.mapValues(\.state) == ["a": "running", "b": "running"])
        }
        #expect(reads.count == 1)
        // Another run is read on its own.
        _ = await cache.progress(run: 2, jobs: jobs)
        #expect(reads.count == 2)
    }

    @Test func aRequestDuringAReadWaitsForIt() async {
        let reads = ProgressReads()
        let cache = reads.cache(interval: .zero)
        let jobs = Self.jobs(["a": 1])
        reads.hold(true)
        let first = Task { await cache.progress(run: 1, jobs: jobs) }
        #expect(await eventually(timeout: .seconds(20), every: .milliseconds(5)) { reads.count == 1 })
        let second = Task { await cache.progress(run: 1, jobs: jobs) }
        // Were the second request to read for itself, its read would start here.
        #expect(!(await eventually(timeout: .seconds(1), every: .milliseconds(5)) { reads.count == 2 }))
        reads.hold(false)
        #expect(await first.value["a"]?.state == "running")
        #expect(await second.value["a"]?.state == "running")
        #expect(reads.count == 1)
    }

    @Test func aJobThatEndedForGoodIsNotReadAgain() async {
        let reads = ProgressReads()
        let cache = reads.cache(interval: .zero)
        reads.set("done", "succeeded")
        reads.set("gone", "cancelled")
        reads.set("broken", "failed")
        let jobs = Self.jobs(["done": 1, "gone": 2, "broken": 3, "busy": 4])
        _ = await cache.progress(run: 1, jobs: jobs)
        let again = await cache.progress(run: 1, jobs: jobs)
        #expect(reads.targets(ofRead: 1) == ["broken", "busy"], "a failed job may be retried: it is read again")
        #expect(
            again.mapValues(\.state) == [
                "done": "succeeded", "gone": "cancelled", "broken": "failed", "busy": "running",
            ])
        // A target given another job (a resume enqueued it again) is read again, and the old
        // job's progress is never shown for the new one.
        let resumed = Self.jobs(["done": 9, "gone": 2, "broken": 3, "busy": 4])
        reads.hold(true)
        let reading = Task { await cache.progress(run: 1, jobs: resumed) }
        #expect(await eventually(timeout: .seconds(20), every: .milliseconds(5)) { reads.count == 3 })
        #expect(reads.targets(ofRead: 2) == ["broken", "busy", "done"])
        reads.hold(false)
        #expect(await reading.value["done"]?.jobID == 9)
    }

    @Test func theLeastRecentlyShownRunsGo() async {
        let reads = ProgressReads()
        let cache = reads.cache(interval: .seconds(3600))
        let jobs = Self.jobs(["a": 1])
        for run in 1...Int64(FleetProgressCache.runsKept) { _ = await cache.progress(run: run, jobs: jobs) }
        _ = await cache.progress(run: 1, jobs: jobs)
        #expect(reads.count == FleetProgressCache.runsKept, "every run kept so far")
        _ = await cache.progress(run: 100, jobs: jobs)
        _ = await cache.progress(run: 1, jobs: jobs)
        #expect(reads.count == FleetProgressCache.runsKept + 1, "run 1 was shown most recently: it stays")
        _ = await cache.progress(run: 2, jobs: jobs)
        #expect(reads.count == FleetProgressCache.runsKept + 2, "run 2 was the least recently shown: it went")
    }
}
