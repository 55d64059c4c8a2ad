/// Exponential backoff with full jitter, for retrying failed attempts.
///
/// Attempt n waits a random time in [base * 2^(n-1) / 2, base * 2^(n-1)], capped at `max`:
/// spread out, so that jobs failing together do not come back together.
public struct Backoff: Sendable {
    public var base: Duration
    public var max: Duration

    public init(base: Duration = .seconds(1), max: Duration = .seconds(300)) {
        self.base = base
        self.max = max
    }

    public func delay(afterAttempt attempt: Int, random: Double = Double.random(in: 0...1)) -> Duration {
        let exponent = Swift.min(Swift.max(attempt - 1, 0), 30)
        let ceiling = Swift.min(base * (1 << exponent), max)
        return ceiling * (0.5 + 0.5 * random)
    }
}
