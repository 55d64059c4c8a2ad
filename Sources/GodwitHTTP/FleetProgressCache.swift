import GodwitFleet
import Synchronization

/// The backfill progress of an enqueue run's targets, shared by the requests that come within
/// a short interval of a read. A run's page refreshes every 2 s in every open tab, and each
/// read opens a session on every target: without this, one tab on a run of 500 targets opened
/// 250 sessions a second across the fleet.
///
/// A target's job that succeeded or was cancelled cannot change, and is not read again. Reads
/// of one run share one trip to the targets, and a bounded number of runs are kept.
final class FleetProgressCache: Sendable {
    typealias Jobs = [(target: FleetTarget, jobID: Int64)]
    typealias Reader = @Sendable (Jobs) async -> [FleetBackfillProgress]

    private struct Run {
        var progress: [String: FleetBackfillProgress] = [:]
        var readAt: ContinuousClock.Instant?
        var took: Duration = .zero
        var inFlight: Task<[String: FleetBackfillProgress], Never>?
        var usedAt: ContinuousClock.Instant
    }

    private enum Lookup {
        case fresh([String: FleetBackfillProgress])
        case wait(Task<[String: FleetBackfillProgress], Never>)
    }

    /// How many runs are kept; the least recently shown goes first.
    static let runsKept = 16
    /// A read that took long is reused for this many times as long, so that reading the fleet
    /// never keeps the dashboard busy more than a fraction of the time.
    static let reuseFactor = 4

    private let minimumInterval: Duration
    private let reader: Reader
    private let runs = Mutex<[Int64: Run]>([:])
    private let clock = ContinuousClock()

    init(minimumInterval: Duration, reader: @escaping Reader) {
        self.minimumInterval = minimumInterval
        self.reader = reader
    }

    /// Each target's progress for `jobs` of run `id`, by target name: read now, or reused.
    func progress(run id: Int64, jobs: Jobs) async -> [String: FleetBackfillProgress] {
        let now = clock.now
        let lookup: Lookup = runs.withLock { runs in
            var run = runs[id] ?? Run(usedAt: now)
            run.usedAt = now
            let covered = jobs.allSatisfy { run.progress[$0.target.name]?.jobID == $0.jobID }
            if covered, minimumInterval > .zero, let at = run.readAt,
                now - at < max(minimumInterval, run.took * Self.reuseFactor)
            {
                runs[id] = run
                return .fresh(run.progress)
            }
            if let inFlight = run.inFlight {
                runs[id] = run
                return .wait(inFlight)
            }
            let known = run.progress
            let read = Task { await self.read(run: id, jobs: jobs, known: known) }
            run.inFlight = read
            runs[id] = run
            Self.evict(&runs, keeping: id)
            return .wait(read)
        }
        let progress: [String: FleetBackfillProgress]
        switch lookup {
        case .fresh(let cached): progress = cached
        case .wait(let task): progress = await task.value
        }
        let wanted = Dictionary(jobs.map { ($0.target.name, $0.jobID) }, uniquingKeysWith: { first, _ in first })
        return progress.filter { name, read in wanted[name] == read.jobID }
    }

    /// Reads every job of `jobs` but those `known` to have ended for good.
    private func read(
        run id: Int64, jobs: Jobs, known: [String: FleetBackfillProgress]
    ) async -> [String: FleetBackfillProgress] {
        let start = clock.now
        let unsettled = jobs.filter { job in
            guard let read = known[job.target.name], read.jobID == job.jobID else { return true }
            return !Self.hasEnded(read)
        }
        var progress = known
        for read in await reader(unsettled) { progress[read.target] = read }
        let end = clock.now
        runs.withLock { runs in
            guard var run = runs[id] else { return }
            run.inFlight = nil
            run.progress = progress
            run.readAt = end
            run.took = end - start
            runs[id] = run
        }
        return progress
    }

    /// A job that succeeded or was cancelled stays so; a failed one may be retried.
    static func hasEnded(_ progress: FleetBackfillProgress) -> Bool {
        progress.state == "succeeded" || progress.state == "cancelled"
    }

    /// Drops the least recently shown runs beyond `runsKept`, never `id` nor a run being read.
    private static func evict(_ runs: inout [Int64: Run], keeping id: Int64) {
        while runs.count > runsKept {
            guard
                let oldest = runs.filter({ $0.key != id && $0.value.inFlight == nil })
                    .min(by: { $0.value.usedAt < $1.value.usedAt })?.key
            else { return }
            runs.removeValue(forKey: oldest)
        }
    }
}
