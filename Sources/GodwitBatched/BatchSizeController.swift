/// Steers the batch size toward a target duration.
///
/// It keeps a smoothed measure of the time a row takes (an exponentially weighted average of
/// recent batches, so one slow batch does not swing it), and sizes the next batch to take the
/// target time at that pace: growing by at most 1.2x a batch, so that a sudden jump cannot
/// overshoot into a long lock, and shrinking in proportion at once, within the bounds.
public struct BatchSizeController: Sendable, Equatable {
    public private(set) var size: Int
    public let target: Duration
    public let minimum: Int
    public let maximum: Int
    /// Smoothed milliseconds a row; nil before the first batch.
    public private(set) var msPerRow: Double?

    /// Weight of the newest batch in the average.
    static let smoothing = 0.3
    static let maxGrowth = 1.2

    public init(initial: Int, target: Duration, minimum: Int, maximum: Int) {
        self.minimum = max(1, minimum)
        self.maximum = max(self.minimum, maximum)
        self.size = min(max(initial, self.minimum), self.maximum)
        self.target = target
    }

    /// Records a batch of `rows` rows that took `duration`, and picks the next size.
    public mutating func record(rows: Int, duration: Duration) {
        guard rows > 0 else { return }
        let sample = max(duration.milliseconds, 0.001) / Double(rows)
        let smoothed = msPerRow.map { Self.smoothing * sample + (1 - Self.smoothing) * $0 } ?? sample
        msPerRow = smoothed
        let ideal = target.milliseconds / smoothed
        let next = min(ideal, Double(size) * Self.maxGrowth)
        size = min(max(Int(next.rounded()), minimum), maximum)
    }

    /// After a timeout: halve the size (the row pace says nothing about a lock wait).
    public mutating func shrinkAfterTimeout() {
        size = max(minimum, size / 2)
    }
}
