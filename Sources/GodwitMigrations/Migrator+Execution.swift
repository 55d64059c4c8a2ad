import GodwitPostgres

/// One migration's execution: its SQL, the ledger write that goes with it, and what an
/// interrupted or failed `-- no-transaction` file leaves recorded.
extension Migrator {
    /// Runs one migration, an up or a down, and writes the ledger: an up's row inserted, a
    /// down's removed. In one transaction with the ledger write, under the lock timeout and its
    /// retries (`beforeRetry` between them), unless the file opts out with `-- no-transaction`:
    /// then statement by statement, an up recorded as started before its first statement and
    /// marked done after its last. Returns how long it took.
    func execute(
        _ migration: Migration, on connection: Connection, beforeRetry: () throws -> Void = {}
    ) async throws -> Duration {
        let isUp = migration.kind != .down
        let clock = ContinuousClock()
        let started = clock.now
        let elapsed: Duration
        if migration.noTransaction {
            if isUp { try await recordStarted(migration, on: connection) }
            let builds = try await runStatementByStatement(migration, on: connection, recordedAsStarted: isUp)
            let ran = clock.now - started
            let finish: @Sendable () async throws -> Void = {
                try await self.refuseInvalidIndexes(builds, of: migration, on: connection)
                try await self.recording(migration, outsideTransaction: true) {
                    if isUp {
                        try await self.ledger.markApplied(
                            version: migration.version, executionTime: ran.nanoseconds, on: connection)
                    } else {
                        try await self.ledger.delete(version: migration.version, on: connection)
                    }
                }
            }
            if isUp {
                // Every statement ran: checking the builds and marking the row done are finished
                // even if the task was cancelled meanwhile, lest a complete migration stay dirty.
                try await ignoringCancellation(timeout: .seconds(30), finish)
                elapsed = ran
            } else {
                try await finish()
                elapsed = clock.now - started
            }
        } else {
            try await retryingLockTimeouts(migration, beforeRetry: beforeRetry) { watch in
                try await inTransaction(migration, on: connection, watch: watch) {
                    try await recording(migration, outsideTransaction: false) {
                        if isUp {
                            try await ledger.insert(migration, success: true, executionTime: -1, on: connection)
                        } else {
                            try await ledger.delete(version: migration.version, on: connection)
                        }
                    }
                }
            }
            elapsed = clock.now - started
            // As sqlx: the time is recorded after the commit, so it covers the whole transaction.
            if isUp {
                try await ledger.setExecutionTime(elapsed.nanoseconds, version: migration.version, on: connection)
            }
        }
        logger.info(
            "\(isUp ? "applied" : "reverted") migration",
            metadata: ["version": "\(migration.version)", "duration": "\(elapsed.rustDebugDescription)"])
        return elapsed
    }

    /// Runs `record` (the ledger write after a migration's SQL), turning a failure (a
    /// read-only database, a ledger the role may not write) into an error naming the migration
    /// and saying whether its SQL was rolled back with it.
    private func recording(
        _ migration: Migration, outsideTransaction: Bool, _ record: () async throws -> Void
    ) async throws {
        do {
            try await record()
        } catch let error as PostgresError {
            let verb = migration.kind == .down ? "revert of migration" : "migration"
            let write = migration.kind == .down ? "removing its row from" : "recording it in"
            let message =
                !outsideTransaction
                ? "\(verb) \(migration.version) (\(migration.path)) was rolled back: \(write) \(ledger.table) failed: \(error)"
                : migration.kind == .down
                    ? "\(verb) \(migration.version) (\(migration.path)) ran outside a transaction, but \(write) \(ledger.table) failed, so its changes stay without the ledger knowing: check the schema before running it again: \(error)"
                    : "\(verb) \(migration.version) (\(migration.path)) ran outside a transaction, but marking it done in \(ledger.table) failed, so it stays recorded as partially applied: \(clearDirtyAdvice(version: migration.version)): \(error)"
            throw MigrationError(.execution, message, version: migration.version, underlying: error)
        }
    }

    /// Runs the file's whole script and `record` between BEGIN and COMMIT, under the lock
    /// timeout (`SET LOCAL`, so a `SET lock_timeout` in the file wins, and nothing outlives
    /// the transaction; sent with the BEGIN).
    private func inTransaction(
        _ migration: Migration, on connection: Connection, watch: LockWatch?, record: () async throws -> Void
    ) async throws {
        let begin = lockPolicy.lockTimeoutSetting.map { "BEGIN; SET LOCAL lock_timeout = '\($0)'" } ?? "BEGIN"
        try await connection.withTransaction(begin: begin) { connection in
            do {
                try await watching(connection, watch) { try await connection.execute(migration.sql) }
            } catch let error as PostgresError {
                let statements = SQLSplitter.split(migration.sql)
                let location =
                    error.position.map {
                        SourceLocation.lineAndColumn(in: migration.sql, characterPosition: $0)
                    }
                    ?? error.statementIndex.flatMap { index in
                        index < statements.count ? (statements[index].startLine, statements[index].startColumn) : nil
                    }
                throw executionError(migration, error, location: location)
            }
            try await record()
        }
    }

    /// Records a `-- no-transaction` up migration as started, a `success = false` row committed
    /// before its first statement, so that however it stops (a statement that fails, a
    /// cancelled task, the process killed, the server restarted) neither Godwit nor sqlx (its
    /// `Dirty` check) runs anything more, nor its first statements a second time, until a
    /// person has looked. `Ledger.markApplied` sets it done after the last statement.
    private func recordStarted(_ migration: Migration, on connection: Connection) async throws {
        do {
            try await ledger.insert(migration, success: false, executionTime: -1, on: connection)
        } catch let error as PostgresError {
            throw MigrationError(
                .execution,
                "migration \(migration.version) (\(migration.path)) was not run: recording it as started in \(ledger.table) failed: \(error)",
                version: migration.version, underlying: error)
        }
    }

    /// What a person does about a row with `success = false`: by hand, since neither
    /// `migrate repair` (checksums only) nor a rerun can know which statements ran.
    func clearDirtyAdvice(version: Int64) -> String {
        "check which of its statements ran and finish or undo the rest by hand, then DELETE FROM \(ledger.table) WHERE version = \(version) to run it again (or UPDATE \(ledger.table) SET success = true WHERE version = \(version) if it is now complete)"
    }

    /// Runs each statement on its own, outside any transaction, as `CREATE INDEX
    /// CONCURRENTLY` requires. For an up migration (`recordedAsStarted`), the ledger already
    /// has its `success = false` row: it is removed again only when the file stopped before
    /// anything of it ran (and a build that stopped left nothing behind); otherwise it stays,
    /// and the error says how to clear it.
    ///
    /// Under the lock timeout (set for the session, and put back afterwards unless the file
    /// set its own), only a statement that timed out is tried again. A concurrent index build
    /// first drops an invalid index of its name left by an earlier build that did not finish,
    /// and after a failure, or when the task is cancelled during it (a worker's shutdown, a
    /// cancelled job), drops what it left itself. Returns the index builds, each with the
    /// invalid indexes its table had before it, for `refuseInvalidIndexes`.
    private func runStatementByStatement(
        _ migration: Migration, on connection: Connection, recordedAsStarted: Bool
    ) async throws -> [(ConcurrentIndexBuild, Set<UInt32>)] {
        let statements = SQLSplitter.split(migration.sql)
        /// How many statements have completed.
        var ran = 0
        /// A build that stopped may have left an invalid index that could not be dropped.
        var leftSomething = false
        do {
            let sessionTimeout = try await setSessionLockTimeout(on: connection)
            return try await ensuring {
                var builds: [(ConcurrentIndexBuild, Set<UInt32>)] = []
                for (index, statement) in statements.enumerated() {
                    let build = ConcurrentIndexBuild(statement.text)
                    var before = Set<UInt32>()
                    var buildStarted = false
                    do {
                        if let build {
                            try await dropLeftoverOfSameName(build, migration, statement, on: connection)
                            before = try await build.invalidIndexes(on: connection)
                        }
                        try await retryingLockTimeouts(migration, statement: statement) { watch in
                            do {
                                buildStarted = build != nil
                                try await watching(connection, watch) { try await connection.execute(statement.text) }
                            } catch let error as PostgresError {
                                if let build {
                                    do {
                                        try await dropWhatAFailedBuildLeft(
                                            build, before: before, migration, on: connection)
                                    } catch {
                                        leftSomething = true
                                        throw error
                                    }
                                }
                                throw error
                            }
                        }
                        if let build { builds.append((build, before)) }
                        ran = index + 1
                    } catch is CancellationError {
                        if let build, buildStarted {
                            // The cancelled build left an INVALID index: dropped as a failed
                            // build's is, though this task is cancelled.
                            let invalidBefore = before
                            let dropped: Void? = try? await ignoringCancellation(timeout: .seconds(30)) {
                                try await self.dropWhatAFailedBuildLeft(
                                    build, before: invalidBefore, migration, on: connection)
                            }
                            leftSomething = dropped == nil
                        }
                        let state =
                            !recordedAsStarted
                            ? "after \(index) had run outside a transaction"
                            : index == 0 && !leftSomething
                                ? "before anything of it had run"
                                : "after \(index) had run outside a transaction: it stays recorded as partially applied, so the next run stops on it until a person has looked"
                        logger.warning(
                            "migration \(migration.version) was interrupted at statement \(index + 1) of \(statements.count) (\(migration.path):\(statement.startLine)), \(state)",
                            metadata: ["version": "\(migration.version)"])
                        throw CancellationError()
                    } catch let error as PostgresError {
                        let location =
                            error.position.map { statement.location(ofCharacterPosition: $0) }
                            ?? (statement.startLine, statement.startColumn)
                        var mapped = executionError(migration, error, location: location)
                        if index > 0 {
                            mapped.message +=
                                "; \(index) of \(statements.count) statements had already run outside a transaction"
                        }
                        throw mapped
                    }
                }
                return builds
            } finally: {
                await restoreSessionLockTimeout(sessionTimeout, on: connection)
            }
        } catch {
            guard recordedAsStarted else { throw error }
            if ran == 0, !leftSomething, await forgetStarted(migration, on: connection) { throw error }
            guard var mapped = error as? MigrationError else { throw error }
            mapped.message +=
                "\(ran == 0 ? "; " : ", ")so the migration is recorded as partially applied (success = false in \(ledger.table)): \(clearDirtyAdvice(version: migration.version))"
            throw mapped
        }
    }

    /// Removes the `success = false` row of a no-transaction migration of which nothing ran,
    /// even from a cancelled task; false when it could not (the row then stays, and the next
    /// run stops on it: the safe side).
    private func forgetStarted(_ migration: Migration, on connection: Connection) async -> Bool {
        let removed: Void? = try? await ignoringCancellation(timeout: .seconds(10)) {
            guard await connection.isOpen, await connection.transactionStatus == .idle else {
                throw CancellationError()
            }
            try await self.ledger.delete(version: migration.version, on: connection)
        }
        return removed != nil
    }

    private func executionError(
        _ migration: Migration, _ error: PostgresError, location: (line: Int, column: Int)?
    ) -> MigrationError {
        var place = migration.path
        if let location { place += ":\(location.line):\(location.column)" }
        let verb = migration.kind == .down ? "revert of migration" : "migration"
        return MigrationError(
            .execution, "\(verb) \(migration.version) failed at \(place): \(error)", version: migration.version,
            underlying: error)
    }
}

/// Runs `body` to its end even when the calling task has been cancelled, for what a
/// cancelled migration still owes (dropping the invalid index its build left, the ledger row
/// of a file of which nothing ran, marking done a file whose every statement ran); after
/// `timeout` `body` is cancelled, which cancels its statement on the server, and this throws
/// `CancellationError`. Otherwise returns what `body` returns, or throws what it throws.
///
/// Swift 6.3 has no cancellation shield: a task that is not a child inherits no cancellation,
/// and it is awaited here, so it outlives nothing (as the worker records an outcome).
private func ignoringCancellation<T: Sendable>(
    timeout: Duration, _ body: @escaping @Sendable () async throws -> T
) async throws -> T {
    try await Task {
        try await withThrowingTaskGroup(of: T?.self) { group in
            group.addTask { try await body() }
            group.addTask {
                try? await Task.sleep(for: timeout)
                return nil
            }
            let first = try await group.next() ?? nil
            group.cancelAll()
            guard let first else { throw CancellationError() }
            return first
        }
    }.value
}

/// Runs `body`, then `cleanup`, whether `body` returned or threw: an async `defer`.
func ensuring<T>(_ body: () async throws -> T, finally cleanup: () async -> Void) async throws -> T {
    let value: T
    do {
        value = try await body()
    } catch {
        await cleanup()
        throw error
    }
    await cleanup()
    return value
}
