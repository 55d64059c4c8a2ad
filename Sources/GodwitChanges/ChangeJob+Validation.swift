import GodwitMigrations
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

    /// Runs `sql` in a transaction of its own under the policy's `lock_timeout`, tried again
    /// with backoff on each lock timeout (`LockTimeoutPolicy.runTransaction`, the machinery of
    /// `migrate run`, each retry logged with who held the lock); once the retries are spent the
    /// job fails as transient (the worker retries it later) naming the change, what it was
    /// doing and the lock's holder.
    func withLockRetries(_ what: String, _ sql: String, on session: Connection) async throws {
        try context.checkpoint()
        do {
            try await job.lockPolicy.runTransaction(
                on: session,
                retrying: { line in
                    context.logger.warning("change \(name): to \(what), \(line)", metadata: ["change": "\(name)"])
                }
            ) { conn in
                _ = try await conn.query(sql)
            }
        } catch let exhausted as LockTimeoutPolicy.Exhausted {
            throw JobFailure(
                "change \(name): to \(what), \(exhausted.message); the job will try again", transient: true)
        }
    }
}
