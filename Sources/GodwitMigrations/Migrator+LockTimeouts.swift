import GodwitPostgres

/// Lock timeouts: a statement that times out waiting for a lock is tried again, with backoff,
/// and the error names who held the lock (`LockTimeoutPolicy`, `LockWatch`).
extension Migrator {
    /// Runs `attempt` until it does not fail on a lock timeout, at most `retries + 1` times,
    /// with backoff between tries; each retry is logged with who held the lock.
    @discardableResult
    func retryingLockTimeouts<T>(
        _ migration: Migration, statement: SQLStatement? = nil, beforeRetry: () throws -> Void = {},
        _ attempt: (LockWatch?) async throws -> T
    ) async throws -> T {
        guard let lockTimeout = lockPolicy.lockTimeout else { return try await attempt(nil) }
        let clock = ContinuousClock()
        let started = clock.now
        let watch = LockWatch(lockTimeout: lockTimeout)
        return try await ensuring {
            var tries = 0
            while true {
                tries += 1
                do {
                    return try await attempt(watch)
                } catch {
                    guard let server = Self.lockTimeoutError(error) else { throw error }
                    let seen = watch.lastSeen
                    let what = seen?.target ?? "what it needed"
                    let verb = migration.kind == .down ? "revert of migration" : "migration"
                    var place = migration.path
                    if let statement { place += ":\(statement.startLine)" }
                    guard tries <= lockPolicy.retries else {
                        let holders = seen.map { ": \($0.holdersDescription)" } ?? ": \(server.message)"
                        throw MigrationError(
                            .lockTimeout,
                            "\(verb) \(migration.version) could not lock \(what) after \(tries) tries in \((clock.now - started).roundedDescription)\(holders) (\(place); nothing of it was left applied"
                                + (statement != nil ? " beyond the statements before this one)" : ")"),
                            version: migration.version, underlying: server)
                    }
                    let delay = lockPolicy.backoff.delay(afterAttempt: tries)
                    logger.warning(
                        "\(verb) \(migration.version) could not lock \(what) within \(lockTimeout.roundedDescription); trying again in \(delay.roundedDescription) (retry \(tries) of \(lockPolicy.retries)): \(seen?.holdersDescription ?? server.message)",
                        metadata: ["version": "\(migration.version)", "file": "\(place)"])
                    try await Task.sleep(for: delay)
                    try beforeRetry()
                }
            }
        } finally: {
            await watch.close()
        }
    }

    /// The server's lock-timeout error inside `error`, if that is what it is.
    private static func lockTimeoutError(_ error: any Error) -> PostgresError? {
        if let error = error as? PostgresError { return LockTimeoutPolicy.isLockTimeout(error) ? error : nil }
        if let error = error as? MigrationError, let underlying = error.underlying, error.code == .execution {
            return LockTimeoutPolicy.isLockTimeout(underlying) ? underlying : nil
        }
        return nil
    }

    @discardableResult
    func watching<T>(_ connection: Connection, _ watch: LockWatch?, _ body: () async throws -> T) async throws -> T {
        guard let watch else { return try await body() }
        return try await watch.during(connection, body)
    }

    /// Sets the session's `lock_timeout` for a no-transaction file; returns the value to put
    /// back and ours as the server shows it.
    func setSessionLockTimeout(on connection: Connection) async throws -> (previous: String, ours: String)? {
        guard let setting = lockPolicy.lockTimeoutSetting else { return nil }
        let previous = try await connection.query("SELECT pg_catalog.current_setting('lock_timeout') AS v").first?
            .string("v")
        let ours = try await connection.query("SELECT pg_catalog.set_config('lock_timeout', $1, false) AS v", [setting])
            .first?.string("v")
        guard let previous, let ours else { return nil }
        return (previous, ours)
    }

    /// Puts the session's `lock_timeout` back, unless the file set its own (which stays, as
    /// any other setting a file makes does).
    func restoreSessionLockTimeout(_ saved: (previous: String, ours: String)?, on connection: Connection) async {
        guard let saved, await connection.isOpen, await connection.transactionStatus == .idle else { return }
        _ = try? await connection.query(
            """
            SELECT pg_catalog.set_config('lock_timeout', $1, false)
            WHERE pg_catalog.current_setting('lock_timeout') = $2
            """, [saved.previous, saved.ours])
    }
}
