/// Steers the batch size toward a target duration, and away from the lock waits it causes.
///
/// It keeps a smoothed measure of the time a row takes (an exponentially weighted average of
/// recent batches, so one slow batch does not swing it), and sizes the next batch to take the
/// target time at that pace, growing by at most 1.2x a batch, so that a sudden jump cannot
/// overshoot into a long lock.
///
/// The harm a batch does decides first: when a session waited on the batch's locks longer than
/// `maxLockWait`, the next batch is smaller at once, in proportion to how far over the limit the
/// wait went (at least halved, at most to a quarter), and the size that did it is remembered;
/// growing back toward it goes slowly (1.05x a batch), so the controller settles just below the
/// size that hurts instead of bouncing off it. On a table no one else touches nothing waits,
/// and the size climbs to the target duration as before.
public struct BatchSizeController: Sendable, Equatable {
    public private(set) var size: Int
    public let target: Duration
    public let minimum: Int
    public let maximum: Int
    /// The longest another session may wait on a batch's locks; nil steers by duration alone.
    public let maxLockWait: Duration?
    /// Smoothed milliseconds a row; nil before the first batch.
    public private(set) var msPerRow: Double?
    /// The smallest size that made a session wait too long, until the size grows past it
    /// without harm.
    public private(set) var harmfulSize: Int?

    /// Weight of the newest batch in the average.
    static let smoothing = 0.3
    static let maxGrowth = 1.2
    /// Growth when the next size would come within reach of a size that hurt.
    static let cautiousGrowth = 1.05

    public init(initial: Int, target: Duration, minimum: Int, maximum: Int, maxLockWait: Duration? = nil) {
        self.minimum = max(1, minimum)
        self.maximum = max(self.minimum, maximum)
        self.size = min(max(initial, self.minimum), self.maximum)
        self.target = target
        self.maxLockWait = maxLockWait
    }

    /// Records a batch of `rows` rows that took `duration`, during which the longest wait of
    /// another session on its locks was `longestLockWait`, and picks the next size.
    public mutating func record(rows: Int, duration: Duration, longestLockWait: Duration = .zero) {
        guard rows > 0 else { return }
        let sample = max(duration.milliseconds, 0.001) / Double(rows)
        let smoothed = msPerRow.map { Self.smoothing * sample + (1 - Self.smoothing) * $0 } ?? sample
        msPerRow = smoothed
        if let limit = maxLockWait, longestLockWait > limit {
            let factor = min(0.5, max(0.25, limit.milliseconds / longestLockWait.milliseconds))
            harmfulSize = min(harmfulSize ?? size, size)
            size = clamp(Double(size) * factor)
            return
        }
        let ideal = target.milliseconds / smoothed
        var growth = Self.maxGrowth
        if let harmful = harmfulSize {
            if size >= harmful {
                harmfulSize = nil  // grown past it without harm: that was a passing load
            } else if Double(size) * Self.maxGrowth >= Double(harmful) * 0.8 {
                growth = Self.cautiousGrowth
            }
        }
        size = clamp(min(ideal, Double(size) * growth))
    }

    /// After a timeout: halve the size (the row pace says nothing about a lock wait).
    public mutating func shrinkAfterTimeout() {
        size = max(minimum, size / 2)
    }

    private func clamp(_ value: Double) -> Int {
        min(max(Int(value.rounded()), minimum), maximum)
    }
}
