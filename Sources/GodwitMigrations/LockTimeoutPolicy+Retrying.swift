import GodwitPostgres

/// The lock-timeout machinery `migrate run` uses, for DDL that is not a migration file (the
/// `change` commands): one transaction tried again, with backoff, each time it fails on a lock
/// timeout, and an error that names who held the lock once the retries are spent.
extension LockTimeoutPolicy {
    /// What ran out of retries: the lock it waited for and who held it, as last seen. Callers
    /// usually put it in their own words (naming the change), from `message`.
    public struct Exhausted: GodwitError {
        public var code: String { "lock-timeout" }
        /// `could not lock table public.media after 4 tries in 9s: pid 42 (...) holds it`.
        public var message: String
        public var underlying: PostgresError

        public var description: String { message }
    }

    /// Runs `transaction` in BEGIN ... COMMIT on `connection` with `SET LOCAL lock_timeout` as
    /// the policy says, and runs it again (a new transaction) each time it fails on a lock
    /// timeout, `retries` times, waiting with backoff in between. `retrying` hears of each retry
    /// in one line (who held the lock). Any other error, or the last timeout (as `Exhausted`),
    /// is thrown after the rollback: nothing of a failed try stays.
    public func runTransaction<T>(
        on connection: Connection, retrying: (String) -> Void = { _ in },
        _ transaction: (Connection) async throws -> T
    ) async throws -> T {
        let watch = lockTimeout.map { LockWatch(lockTimeout: $0) }
        let clock = ContinuousClock()
        let started = clock.now
        var tries = 0
        func tryingAgain() async throws -> T {
            while true {
                tries += 1
                do {
                    return try await connection.withTransaction { conn in
                        if let setting = lockTimeoutSetting {
                            try await conn.query("SELECT pg_catalog.set_config('lock_timeout', $1, true)", [setting])
                        }
                        guard let watch else { return try await transaction(conn) }
                        return try await watch.during(conn) { try await transaction(conn) }
                    }
                } catch let error as PostgresError where Self.isLockTimeout(error) && lockTimeout != nil {
                    let seen = watch?.lastSeen
                    let what = seen?.target ?? "what it needed"
                    guard tries <= retries else {
                        let holders = seen.map { ": \($0.holdersDescription)" } ?? ": \(error.message)"
                        throw Exhausted(
                            message:
                                "could not lock \(what) after \(tries) tries in \((clock.now - started).roundedDescription)\(holders)",
                            underlying: error)
                    }
                    let delay = backoff.delay(afterAttempt: tries)
                    retrying(
                        "could not lock \(what) within \(lockTimeout!.roundedDescription); trying again in \(delay.roundedDescription) (retry \(tries) of \(retries)): \(seen?.holdersDescription ?? error.message)"
                    )
                    try await Task.sleep(for: delay)
                }
            }
        }
        do {
            let value = try await tryingAgain()
            await watch?.close()
            return value
        } catch {
            await watch?.close()
            throw error
        }
    }
}
