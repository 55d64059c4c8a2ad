import Foundation
import GodwitPostgres

/// Picks each batch's size: as small as costs no throughput while the application is there to be
/// harmed, as large as `target-batch-ms` allows while nobody else uses the table, and smaller at
/// once after a batch made someone wait.
///
/// It keeps two smoothed measures (exponentially weighted averages of recent batches, so one slow
/// batch does not swing them): the time a row takes inside the batch, and the time a batch costs
/// whatever its size (round trips, the checkpoint, the commit). From them:
///
/// - **The ceiling** is the size that takes `target-batch-ms`: the user's limit on how long a
///   batch holds its rows.
/// - **The knee** is the smallest size whose fixed cost stays under `overheadShare` of the batch
///   (49x the fixed cost over the time a row takes). Below it, batches lose throughput; above it
///   they gain almost none, yet every extra row is one more row an application update may wait on.
/// - While other sessions use the table (the runner sees their locks at each batch's end, or
///   someone waited), the size steers to the knee, never above the ceiling. While nobody does, it
///   climbs to the ceiling: larger batches commit less often and there is no one to make wait.
///
/// Growth is at most 1.2x a batch, so a sudden jump cannot overshoot into a long lock; a smaller
/// ideal is taken at once. The harm a batch does decides first: when a session waited on the
/// batch's locks longer than `maxLockWait`, the next batch is smaller at once, in proportion to
/// how far over the limit the wait went (at least halved, at most to a quarter), and the size
/// that did it is remembered. Growing back is quick (1.2x) up to half that size and slow above it
/// (1.01x a batch): an application's waits on a backfill are chance meetings, more frequent the
/// larger the batch, so the size settles where they are rare instead of bouncing off the size
/// that hurt. The memory lasts for `harmMemory` batches without harm (or until nobody else uses
/// the table), so that a backfill that has left a hot range grows back. A batch that gave up
/// waiting for another session's lock is halved the same way.
public struct BatchSizeController: Sendable, Equatable {
    public private(set) var size: Int
    /// `target-batch-ms`: the longest a batch should take, the ceiling of its size.
    public let target: Duration
    public let minimum: Int
    public let maximum: Int
    /// The longest another session may wait on a batch's locks; nil steers by duration alone.
    public let maxLockWait: Duration?
    /// Smoothed milliseconds a row inside a batch; nil before the first batch.
    public private(set) var msPerRow: Double?
    /// Smoothed milliseconds a batch costs whatever its size; nil before it is measured.
    public private(set) var overheadMs: Double?
    /// The latest size that made a session wait too long (or gave up waiting for a lock), while
    /// others use the table.
    public private(set) var harmfulSize: Int?
    /// Batches without harm since the last.
    public private(set) var harmlessBatches = 0
    /// Why `size` is what it is.
    public private(set) var reason: Reason = .initial

    /// Why the controller chose the size, for `godwit.progress.size_reason` and the job page.
    public enum Reason: Sendable, Equatable {
        /// The job's `batch-size`, before any batch has run.
        case initial
        /// Nobody else uses the table: growing toward the ceiling, or at it.
        case alone
        /// Others use the table: at the knee, or growing toward it.
        case shared
        /// Growing slowly: above half a size that made a session wait too long.
        case cautious
        /// A session waited `waited` on the last batch, over `maxLockWait`.
        case harm(waited: Duration)
        /// The last attempt gave up waiting `bound` for another session's lock.
        case lockTimeout(bound: Duration)
        /// At the minimum size, the next attempt waits up to `bound` for another session's lock.
        case waitingAtMinimum(bound: Duration)
        /// The last attempt failed with a retryable error (statement timeout, deadlock, ...).
        case failed
    }

    /// Weight of the newest batch in the averages.
    static let smoothing = 0.3
    static let maxGrowth = 1.2
    /// Growth above half the latest size that hurt.
    static let cautiousGrowth = 1.01
    /// Batches without harm after which the size that hurt is forgotten.
    static let harmMemory = 50
    /// The share of a batch's time its fixed cost may take at the knee.
    public static let overheadShare = 0.02

    public init(initial: Int, target: Duration, minimum: Int, maximum: Int, maxLockWait: Duration? = nil) {
        self.minimum = max(1, minimum)
        self.maximum = max(self.minimum, maximum)
        self.size = min(max(initial, self.minimum), self.maximum)
        self.target = target
        self.maxLockWait = maxLockWait
    }

    /// The size whose fixed cost is `overheadShare` of the batch; nil until both are measured.
    public var knee: Int? {
        guard let msPerRow, let overheadMs else { return nil }
        return clamp(max(overheadMs, 0.05) * (1 - Self.overheadShare) / Self.overheadShare / msPerRow)
    }

    /// The size that takes `target` at the measured pace; nil before the first batch.
    public var ceiling: Int? {
        msPerRow.map { clamp(target.milliseconds / $0) }
    }

    /// Records a batch of `rows` rows that took `duration` inside the database and `overhead`
    /// more around it (round trips, checkpoint, commit), during which the longest wait of another
    /// session on its locks was `longestLockWait`; `shared` says whether other sessions use the
    /// table. Picks the next size.
    public mutating func record(
        rows: Int, duration: Duration, overhead: Duration? = nil, longestLockWait: Duration = .zero,
        shared: Bool = false
    ) {
        guard rows > 0 else { return }
        let sample = max(duration.milliseconds, 0.001) / Double(rows)
        msPerRow = Self.smooth(msPerRow, sample)
        if let overhead { overheadMs = Self.smooth(overheadMs, max(overhead.milliseconds, 0)) }
        if let limit = maxLockWait, longestLockWait > limit {
            let factor = min(0.5, max(0.25, limit.milliseconds / longestLockWait.milliseconds))
            cut(by: factor, because: .harm(waited: longestLockWait))
            return
        }
        let ceiling = target.milliseconds / msPerRow!
        var ideal = ceiling
        reason = .alone
        if shared || longestLockWait > .zero {
            ideal = min(ceiling, knee.map(Double.init) ?? ceiling)
            reason = .shared
        } else {
            harmfulSize = nil  // nobody else there: nobody to harm
        }
        harmlessBatches += 1
        if harmlessBatches >= Self.harmMemory { harmfulSize = nil }
        var growth = Self.maxGrowth
        if let harmful = harmfulSize, Double(size) * Self.maxGrowth > Double(harmful) / 2, ideal > Double(size) {
            growth = Self.cautiousGrowth
            reason = .cautious
        }
        size = clamp(min(ideal, max(Double(size) * growth, Double(size + 1))))
    }

    /// After a batch gave up waiting `bound` for another session's lock while holding its own
    /// rows: halve the size, and remember the size the batch had at its first such failure as
    /// harmful. Returns false, changing nothing, when the
    /// size is already the minimum.
    public mutating func shrinkAfterLockTimeout(bound: Duration) -> Bool {
        guard size > minimum else { return false }
        switch reason {
        case .lockTimeout, .waitingAtMinimum:
            // The same batch again: the size that hurt is the one it started at, not this one.
            size = clamp(Double(size) * 0.5)
            reason = .lockTimeout(bound: bound)
        default:
            cut(by: 0.5, because: .lockTimeout(bound: bound))
        }
        return true
    }

    /// At the minimum size after a lock timeout, the next attempt waits up to `bound`.
    public mutating func waitLonger(bound: Duration) {
        reason = .waitingAtMinimum(bound: bound)
    }

    /// After a statement timeout, deadlock or serialization failure: halve the size (the row
    /// pace says nothing about them).
    public mutating func shrinkAfterTimeout() {
        size = max(minimum, size / 2)
        reason = .failed
    }

    /// The reason in words, with the numbers behind it, for `size_reason` and the job page.
    public var explanation: String {
        let rows = size == 1 ? "1 row" : "\(Self.grouped(size)) rows"
        let pace = msPerRow.map { "\(Self.micros($0)) a row" }
        switch reason {
        case .initial:
            return "\(rows): the job's batch-size, before the first batch"
        case .alone:
            let limit = "the \(target.millisecondsDescription) target-batch-ms ceiling"
            let at =
                size >= maximum
                ? "at max-batch-size, under \(limit)"
                : (ceiling.map { size >= $0 } ?? false)
                    ? "at \(limit)" : "growing toward \(limit)"
            return "\(rows): nobody else is using the table; \(at)\(pace.map { " (\($0))" } ?? "")"
        case .shared:
            let share = "\(Int(Self.overheadShare * 100))%"
            var why = "other sessions are using the table; "
            if let ceiling, size >= ceiling, (knee ?? .max) >= ceiling {
                why += "held at the \(target.millisecondsDescription) target-batch-ms ceiling"
            } else if let knee, let overheadMs, size >= knee || size >= maximum {
                why +=
                    "the smallest size whose fixed cost (\(Duration.milliseconds(overheadMs).millisecondsDescription) a batch) stays under \(share) of the batch"
            } else {
                why += "growing toward the size whose fixed cost stays under \(share) of the batch"
            }
            return "\(rows): \(why)\(pace.map { " (\($0))" } ?? "")"
        case .cautious:
            return "\(rows): growing slowly (1.01x a batch): a session last waited too long on a batch of "
                + "\(Self.grouped(harmfulSize ?? size)) rows"
        case .harm(let waited):
            let limit = maxLockWait.map { " (max-lock-wait-ms \($0.millisecondsDescription))" } ?? ""
            return "\(rows): a session waited \(waited.millisecondsDescription) on the last batch\(limit); cut at once"
        case .lockTimeout(let bound):
            return "\(rows): the last attempt gave up after waiting \(bound.millisecondsDescription) for another "
                + "session's lock while holding its own rows; halved"
        case .waitingAtMinimum(let bound):
            return
                "\(rows): at min-batch-size, waiting up to \(bound.millisecondsDescription) for another session's lock "
                + "(twice as long after each timeout, up to lock-timeout)"
        case .failed:
            return "\(rows): the last attempt failed (statement timeout, deadlock or serialization failure); halved"
        }
    }

    private mutating func cut(by factor: Double, because why: Reason) {
        harmfulSize = size
        harmlessBatches = 0
        size = clamp(Double(size) * factor)
        reason = why
    }

    private static func smooth(_ average: Double?, _ sample: Double) -> Double {
        average.map { smoothing * sample + (1 - smoothing) * $0 } ?? sample
    }

    private func clamp(_ value: Double) -> Int {
        guard value.isFinite else { return value > 0 ? maximum : minimum }
        return min(max(Int(value.rounded()), minimum), maximum)
    }

    static func grouped(_ n: Int) -> String {
        let digits = String(n)
        var out = ""
        for (index, digit) in digits.enumerated() {
            if index > 0, (digits.count - index) % 3 == 0 { out += "," }
            out.append(digit)
        }
        return out
    }

    static func micros(_ msValue: Double) -> String {
        let us = msValue * 1000
        return us >= 10 ? "\(Int(us.rounded())) µs" : String(format: "%.1f µs", us)
    }
}
