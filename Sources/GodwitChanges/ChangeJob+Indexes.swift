import GodwitPostgres
import GodwitQueue

extension ChangeJob.Run {
    /// Builds every index and unique index concurrently, attaches each unique index as its
    /// constraint, and records `indexes_built_at`.
    ///
    /// The builds run outside any transaction (as `CREATE INDEX CONCURRENTLY` must), with no
    /// statement or lock timeout: a concurrent build waits for older transactions, and is not
    /// in the application's way meanwhile. Attaching takes a brief lock on the table, under
    /// the lock timeout with retries.
    func buildIndexes(on session: Connection) async throws {
        try await session.query(
            """
            SELECT pg_catalog.set_config('statement_timeout', '0', false),
                   pg_catalog.set_config('lock_timeout', '0', false)
            """)
        for index in statements.indexes {
            try await ensureIndex(index.name, create: index.create, on: session)
        }
        for unique in statements.uniques {
            try await ensureIndex(unique.name, create: unique.create, on: session)
            let attached = try await session.query(
                """
                SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_constraint WHERE conrelid = $1::oid AND conname = $2) AS a
                """, [record.tableOID, unique.name]
            ).first?.bool("a")
            if attached != true {
                try await withLockRetries("attach the unique index \(unique.name)", unique.attach, on: session)
            }
        }
        try context.checkpoint()
        try await updateRecord("indexes_built_at = now()")
        if !statements.indexes.isEmpty || !statements.uniques.isEmpty {
            context.logger.notice("change \(name): indexes built", metadata: ["change": "\(name)"])
        }
    }

    /// Makes sure index `name` exists, valid, on the change's table: a valid one is kept; an
    /// INVALID one (a build that died) is dropped concurrently and built again, after waiting
    /// for a build of it still under way (the session of a killed worker, which runs on until
    /// its statement ends); a missing one is built with `create`. A build that fails drops
    /// what it left, so no invalid index stays behind.
    func ensureIndex(_ index: String, create: String, on session: Connection) async throws {
        let qualified = "\(quoteIdentifier(record.tableSchema ?? "")).\(quoteIdentifier(index))"
        var builds = 0
        var waited = false
        while true {
            try context.checkpoint()
            let found = try await session.query(
                """
                SELECT i.indisvalid AS valid, i.indrelid = $2::oid AS on_table,
                       EXISTS (SELECT 1 FROM pg_catalog.pg_stat_progress_create_index p
                               WHERE p.index_relid = c.oid AND p.pid <> pg_catalog.pg_backend_pid()) AS building
                FROM pg_catalog.pg_class c JOIN pg_catalog.pg_index i ON i.indexrelid = c.oid
                WHERE c.relname = $1
                  AND c.relnamespace = (SELECT t.relnamespace FROM pg_catalog.pg_class t WHERE t.oid = $2::oid)
                """, [index, record.tableOID]
            ).first
            guard let found else {
                // Two builds that each end with no index means the statement does not make the
                // index it names: stop rather than loop.
                guard builds < 2 else {
                    throw JobFailure(
                        "change \(name): building index \(index) left no index of that name on \(statements.table)")
                }
                builds += 1
                context.logger.info("change \(name): building index \(index)", metadata: ["change": "\(name)"])
                do {
                    try await session.query(create)
                } catch {
                    await dropIfInvalid(index, qualified: qualified, on: session)
                    throw error
                }
                continue
            }
            guard try found.bool("on_table") else {
                throw JobFailure(
                    "change \(name): an index named \(index) already exists in the table's schema, on another table")
            }
            if try found.bool("valid") { return }
            if try found.bool("building") {
                if !waited {
                    context.logger.notice(
                        "change \(name): index \(index) is being built by another session; waiting for it",
                        metadata: ["change": "\(name)"])
                    waited = true
                }
                try await Task.sleep(for: .seconds(1))
                continue
            }
            context.logger.notice(
                "change \(name): dropping index \(index), left INVALID by a build that did not finish, to build it again",
                metadata: ["change": "\(name)"])
            try await session.query("DROP INDEX CONCURRENTLY IF EXISTS \(qualified)")
        }
    }

    /// Drops `index` when it is there and INVALID (what a failed concurrent build leaves);
    /// a failure to drop is logged, since the build's own error is the one to report.
    private func dropIfInvalid(_ index: String, qualified: String, on session: Connection) async {
        do {
            let invalid = try await session.query(
                """
                SELECT NOT i.indisvalid AS invalid
                FROM pg_catalog.pg_class c JOIN pg_catalog.pg_index i ON i.indexrelid = c.oid
                WHERE c.relname = $1 AND i.indrelid = $2::oid
                """, [index, record.tableOID]
            ).first?.bool("invalid")
            if invalid == true { try await session.query("DROP INDEX CONCURRENTLY IF EXISTS \(qualified)") }
        } catch {
            context.logger.warning(
                "change \(name): could not drop the INVALID index \(index) a failed build left; the next attempt drops it",
                metadata: ["change": "\(name)", "error": "\(error)"])
        }
    }
}
