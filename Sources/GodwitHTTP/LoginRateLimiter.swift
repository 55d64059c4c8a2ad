import Synchronization

/// A token bucket per client address for `POST /login`: `burst` attempts at once, then one
/// every `interval`. A guessing client gets 429 while its bucket is empty.
///
/// At most `maximumClients` addresses are remembered; full buckets are forgotten first. When
/// that many addresses all have attempts in flight, a new address is refused until some refill
/// (a minute at the defaults): failing closed keeps a guesser with many addresses from
/// resetting everyone's count.
final class LoginRateLimiter: Sendable {
    private struct Bucket {
        var tokens: Double
        var updated: ContinuousClock.Instant
    }

    let burst: Int
    let interval: Duration
    let maximumClients: Int
    private let buckets = Mutex<[String: Bucket]>([:])

    init(burst: Int, interval: Duration, maximumClients: Int = 4096) {
        self.burst = max(burst, 1)
        self.interval = interval
        self.maximumClients = maximumClients
    }

    /// Takes an attempt for `client` at `now`; false when it has none left.
    func attempt(_ client: String, now: ContinuousClock.Instant = .now) -> Bool {
        buckets.withLock { buckets in
            func refilled(_ bucket: Bucket) -> Double {
                guard interval > .zero else { return Double(burst) }
                return min(Double(burst), bucket.tokens + (now - bucket.updated) / interval)
            }
            if buckets[client] == nil, buckets.count >= maximumClients {
                buckets = buckets.filter { refilled($0.value) < Double(burst) }
                guard buckets.count < maximumClients else { return false }
            }
            var bucket =
                buckets[client].map { Bucket(tokens: refilled($0), updated: now) }
                ?? Bucket(tokens: Double(burst), updated: now)
            guard bucket.tokens >= 1 else {
                buckets[client] = bucket
                return false
            }
            bucket.tokens -= 1
            buckets[client] = bucket
            return true
        }
    }

    /// Whole seconds until `client` has an attempt again, for `Retry-After`.
    func secondsUntilNextAttempt(_ client: String, now: ContinuousClock.Instant = .now) -> Int {
        buckets.withLock { buckets in
            guard let bucket = buckets[client], interval > .zero else { return 0 }
            let tokens = bucket.tokens + (now - bucket.updated) / interval
            guard tokens < 1 else { return 0 }
            return Int(((1 - tokens) * (interval / .seconds(1))).rounded(.up))
        }
    }
}
