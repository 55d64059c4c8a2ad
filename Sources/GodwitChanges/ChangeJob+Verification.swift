import GodwitPostgres
import GodwitQueue

extension ChangeJob.Run {
    /// How many keys a failed verification names.
    static let keysShown = 5

    /// The verification: a pass over the table, in chunks, counting the rows whose two sides
    /// disagree (`statements.disagrees`).
    ///
    /// A table is read in its physical order, a range of its blocks a chunk (a TID range scan:
    /// each block read once, in order, and the dead versions the backfill left behind skipped
    /// on the page, where a walk of the key's index would fetch each of them); a partitioned
    /// table in key order, the next rows after the cursor read from the key's index (`Pass`).
    /// Either way a chunk is one statement, aggregated as it streams (rows read, rows that
    /// disagree, where it ended), nothing kept or sorted. It starts near the backfill's batch
    /// size and is steered towards `chunkTarget` a chunk (`nextChunk`), so a large table costs
    /// a few statements and checkpoints, not one per batch. A block pass reads up to the
    /// table's size as it is when it gets there, so rows appended meanwhile are read too; a row
    /// written after its block (or key) was read went through the sync trigger.
    ///
    /// After each chunk, the rows read, the rows that disagree and the cursor go into the
    /// change's row together (one statement), so a worker killed mid-pass resumes after the
    /// last chunk recorded with its counts, and a chunk read twice is counted once. Between
    /// chunks the job takes its checkpoint (pause, cancel, shutdown). The pass reads; it never
    /// locks more than a SELECT does.
    ///
    /// At the end: zero disagreeing rows records `verified_at`. Otherwise the job fails with
    /// the count and the first keys, and the cursor goes back to the start, so that the job,
    /// retried once the rows are fixed, verifies the whole table again.
    func verify(on session: Connection) async throws {
        let pass = Pass(record: record, statements: statements)
        var chunk = pass.firstChunk(batchSize: record.batchSize ?? job.defaultVerifyChunk)
        var cursor = record.verifyCursor
        var rows = cursor == nil ? 0 : record.verifiedRows
        var disagreeing = cursor == nil ? 0 : record.disagreeingRows
        let clock = ContinuousClock()
        while true {
            try context.checkpoint()
            let started = clock.now
            guard let (query, parameters) = try await pass.chunk(after: cursor, size: chunk, on: session) else { break }
            let result = try await session.query(query, parameters)
            let took = clock.now - started
            guard let row = result.first else { break }
            let read = try row.int64("read")
            let bad = try row.int64("disagreeing")
            guard let next = pass.cursor(after: row, chunkedFrom: cursor, size: chunk) else { break }
            // Fenced by the cursor this chunk started from: a chunk is counted once.
            try await updateRecord(
                "verified_rows = $1, disagreeing_rows = $2, verify_cursor = $3",
                [rows + read, disagreeing + bad, next, cursor],
                condition: "c.verify_cursor IS NOT DISTINCT FROM $4::text AND c.verified_at IS NULL")
            rows += read
            disagreeing += bad
            cursor = next
            if pass.isLast(read: read, size: chunk) { break }
            chunk = Self.nextChunk(after: chunk, took: took, growth: pass.growth)
        }
        if disagreeing > 0 {
            let keys = try await firstDisagreeingKeys(on: session)
            // Counts stay for `status`; the cursor restarts, so a retry reads the table again.
            try await updateRecord(
                "verified_rows = $1, disagreeing_rows = $2, verify_cursor = NULL", [rows, disagreeing])
            let shown = keys.map { Self.oneLine(String($0.prefix(40))) }.joined(separator: ", ")
            throw JobFailure(
                "change \(name): \(disagreeing) of \(rows) rows disagree between the old and new columns (first keys: \(shown)); it stays verifying: fix those rows, then retry job \(context.job.id)"
            )
        }
        try await updateRecord(
            "verified_rows = $1, disagreeing_rows = 0, verified_at = now(), error = NULL", [rows])
        context.logger.notice(
            "change \(name): every row agrees", metadata: ["change": "\(name)", "rows": "\(rows)"])
    }

    /// How a verification walks its table: by blocks (a table) or by key (a partitioned table,
    /// whose partitions' block numbers overlap; and a pass an older Godwit began by key).
    struct Pass {
        let record: ChangeJob.Record
        let statements: ChangeStatements
        /// Cursors of a block pass: `block:N`, the first block not yet read.
        static let blockPrefix = "block:"

        init(record: ChangeJob.Record, statements: ChangeStatements) {
            self.record = record
            self.statements = statements
        }

        /// How much a chunk may grow at a step: a key chunk 8 times, a block chunk twice, since
        /// blocks are not alike (the first blocks of a table just backfilled hold the dead
        /// versions, read in no time, and the live rows come after them).
        var growth: Double { byBlocks ? 2 : 8 }

        var byBlocks: Bool {
            record.relationKind == "r" && (record.verifyCursor.map { $0.hasPrefix(Self.blockPrefix) } ?? true)
        }

        /// About the backfill's batch size in rows: as many blocks as hold it at 100 rows a
        /// block, or that many rows.
        func firstChunk(batchSize: Int) -> Int { byBlocks ? max(1, batchSize / 100) : max(1, batchSize) }

        /// The next chunk's statement and parameters, nil when a block pass has read every block.
        func chunk(after cursor: String?, size: Int, on session: Connection) async throws -> (
            String, [any PostgresParameter]
        )? {
            let disagrees = "(\(statements.disagrees)) IS NOT FALSE"
            guard byBlocks else {
                return (
                    ChangeJob.Run.keyChunkQuery(
                        record: record, statements: statements, after: cursor != nil, limit: size),
                    cursor.map { [$0] } ?? []
                )
            }
            let first = Int64(cursor.map { $0.dropFirst(Self.blockPrefix.count) }.flatMap { Int64($0) } ?? 0)
            let blocks =
                try await session.query(
                    "SELECT pg_catalog.pg_relation_size($1::pg_catalog.oid) / pg_catalog.current_setting('block_size')::pg_catalog.int8 AS n",
                    [record.tableOID]
                ).first?.int64("n") ?? 0
            guard first < blocks else { return nil }
            let last = min(first + Int64(size), Int64(UInt32.max))
            return (
                """
                SELECT count(*) AS read, count(*) FILTER (WHERE \(disagrees)) AS disagreeing
                FROM \(statements.table)
                WHERE ctid >= $1::pg_catalog.tid AND ctid < $2::pg_catalog.tid
                """,
                ["(\(first),0)", "(\(last),0)"]
            )
        }

        /// Where the pass stands after a chunk: the block after it, or the chunk's greatest key;
        /// nil when a key chunk read nothing (the end).
        func cursor(after row: PostgresRow, chunkedFrom cursor: String?, size: Int) -> String? {
            guard byBlocks else { return row["last"] }
            let first = cursor.map { $0.dropFirst(Self.blockPrefix.count) }.flatMap { Int64($0) } ?? 0
            return Self.blockPrefix + String(min(first + Int64(size), Int64(UInt32.max)))
        }

        /// A key chunk that read fewer rows than asked was the last; a block pass ends when its
        /// cursor passes the table's size (`chunk` returns nil).
        func isLast(read: Int64, size: Int) -> Bool { byBlocks ? false : read < Int64(size) }
    }

    /// How long a verification chunk should take: long enough that statements and checkpoints
    /// are few, short enough that a pause or shutdown is seen soon.
    static let chunkTarget: Duration = .milliseconds(250)
    /// The most rows a verification chunk reads: a chunk streams, so this bounds no memory,
    /// only how far one chunk may run before `chunkTarget` steers it back.
    static let maxChunk = 2_000_000

    /// The next chunk's size after one of `chunk` rows (or blocks) took `took`: scaled towards
    /// the target in proportion (a chunk that took a tenth of it grows tenfold), by at most
    /// `growth` times up and half down, within 1 and `maxChunk`. Fast chunks grow in few steps (a 1,000,000-row table
    /// from a 5,000-row start in four chunks, not ten), so the pass costs few statements and
    /// checkpoints; a slow one shrinks at once.
    static func nextChunk(after chunk: Int, took: Duration, growth: Double = 8) -> Int {
        let ratio = chunkTarget / max(took, .microseconds(1))
        let factor = min(growth, max(0.5, ratio))
        guard factor > 1.25 || factor < 0.8 else { return chunk }
        return min(maxChunk, max(1, Int((Double(chunk) * factor).rounded())))
    }

    /// One key chunk: the first `limit` rows in key order (after the cursor, `$1`, when
    /// `after`), their count, how many disagree, and the greatest key as text. The greatest key
    /// is `max` in the key column's own collation, as the key's index orders it; a uuid, which
    /// has no `max`, by its text in "C" order, which is its order.
    static func keyChunkQuery(record: ChangeJob.Record, statements: ChangeStatements, after: Bool, limit: Int)
        -> String
    {
        let key = "c.godwit_key"
        let last = record.keyType == "uuid" ? "max(\(key)::text COLLATE \"C\")" : "max(\(key))::text"
        let filter = after ? "WHERE \(statements.key) > $1 " : ""
        return """
            SELECT count(*) AS read, count(*) FILTER (WHERE c.godwit_disagrees) AS disagreeing, \(last) AS last
            FROM (SELECT \(statements.key) AS godwit_key, (\(statements.disagrees)) IS NOT FALSE AS godwit_disagrees
                  FROM \(statements.table) \(filter)ORDER BY \(statements.key) LIMIT \(limit)) c
            """
    }

    /// The first keys, in key order, of rows that disagree now.
    private func firstDisagreeingKeys(on session: Connection) async throws -> [String] {
        try await session.query(
            """
            SELECT \(statements.key)::text AS k FROM \(statements.table)
            WHERE (\(statements.disagrees)) IS NOT FALSE ORDER BY \(statements.key) LIMIT \(Self.keysShown)
            """
        ).rows.map { try $0.string("k") }
    }
}
