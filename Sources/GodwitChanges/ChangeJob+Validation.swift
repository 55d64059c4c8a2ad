import GodwitPostgres
import GodwitQueue

extension ChangeJob.Run {
    /// Validates every constraint start added `NOT VALID` (the NOT NULL checks, checks and
    /// foreign keys), each under the lock timeout with retries, and records `validated_at`.
    /// Validating a constraint already valid does nothing, so a rerun repeats none of the
    /// scans that finished.
    func validateConstraints(on session: Connection) async throws {
        for statement in statements.validate {
            try await withLockRetries("validate a constraint", statement, on: session)
        }
        try context.checkpoint()
        try await updateRecord("validated_at = now()")
        if !statements.validate.isEmpty {
            context.logger.notice("change \(name): constraints validated", metadata: ["change": "\(name)"])
        }
    }

    /// Runs `sql` in a transaction of its own under the policy's `lock_timeout`; a lock timeout
    /// rolls it back, waits (backoff with jitter, the job's checkpoint taken) and tries again,
    /// up to the policy's retries, after which the job fails as transient (the worker retries
    /// it later) naming the change and what it was doing.
    func withLockRetries(_ what: String, _ sql: String, on session: Connection) async throws {
        let policy = job.lockPolicy
        guard let lockTimeout = policy.lockTimeout else {
            try await session.query(sql)
            return
        }
        let setting = "\(max(1, Int64(lockTimeout.milliseconds.rounded(.up))))ms"
        var tries = 0
        while true {
            tries += 1
            try context.checkpoint()
            do {
                try await session.withTransaction { conn in
                    try await conn.query("SELECT pg_catalog.set_config('lock_timeout', $1, true)", [setting])
                    try await conn.query(sql)
                }
                return
            } catch let error as PostgresError where error.sqlState == .lockNotAvailable {
                guard tries <= policy.retries else {
                    throw JobFailure(
                        "change \(name): could not lock \(statements.table) to \(what) in \(tries) tries of \(lockTimeout.roundedDescription) each; the job will try again",
                        transient: true)
                }
                let delay = policy.backoff.delay(afterAttempt: tries)
                context.logger.warning(
                    "change \(name): could not lock \(statements.table) to \(what) within \(lockTimeout.roundedDescription); trying again in \(delay.roundedDescription) (retry \(tries) of \(policy.retries))",
                    metadata: ["change": "\(name)"])
                try await Task.sleep(for: delay)
            }
        }
    }
}
