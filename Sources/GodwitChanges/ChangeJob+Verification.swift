import GodwitPostgres
import GodwitQueue

extension ChangeJob.Run {
    /// How many keys a failed verification names.
    static let keysShown = 5

    /// The verification: a keyset pass over the key, in chunks, counting the rows whose two
    /// sides disagree (`statements.disagrees`).
    ///
    /// A chunk is one statement: the next `chunk` rows after the cursor in key order, read from
    /// the key's index, aggregated as they stream (rows read, rows that disagree, the greatest
    /// key), nothing kept or sorted. It starts at the backfill's batch size and is steered
    /// towards `chunkTarget` a chunk (`nextChunk`), so a large table costs a few statements and
    /// checkpoints, not one per batch.
    ///
    /// After each chunk, the rows read, the rows that disagree and the last key go into the
    /// change's row together (one statement), so a worker killed mid-pass resumes after the
    /// last chunk recorded with its counts, and a chunk read twice is counted once. Between
    /// chunks the job takes its checkpoint (pause, cancel, shutdown). The pass reads; it never
    /// locks more than a SELECT does.
    ///
    /// At the end: zero disagreeing rows records `verified_at`. Otherwise the job fails with
    /// the count and the first keys, and the cursor goes back to the start, so that the job,
    /// retried once the rows are fixed, verifies the whole table again.
    func verify(on session: Connection) async throws {
        var chunk = max(1, record.batchSize ?? job.defaultVerifyChunk)
        var cursor = record.verifyCursor
        var rows = cursor == nil ? 0 : record.verifiedRows
        var disagreeing = cursor == nil ? 0 : record.disagreeingRows
        let clock = ContinuousClock()
        while true {
            try context.checkpoint()
            let started = clock.now
            let result: QueryResult
            if let cursor {
                result = try await session.query(chunkQuery(after: true, limit: chunk), [cursor])
            } else {
                result = try await session.query(chunkQuery(after: false, limit: chunk))
            }
            let took = clock.now - started
            guard let row = result.first, let last = row["last"] else { break }
            let read = try row.int64("read")
            let bad = try row.int64("disagreeing")
            // Fenced by the cursor this chunk started from: a chunk is counted once.
            try await updateRecord(
                "verified_rows = $1, disagreeing_rows = $2, verify_cursor = $3",
                [rows + read, disagreeing + bad, last, cursor],
                condition: "c.verify_cursor IS NOT DISTINCT FROM $4::text AND c.verified_at IS NULL")
            rows += read
            disagreeing += bad
            cursor = last
            if read < chunk { break }
            chunk = Self.nextChunk(after: chunk, took: took)
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

    /// How long a verification chunk should take: long enough that statements and checkpoints
    /// are few, short enough that a pause or shutdown is seen soon.
    static let chunkTarget: Duration = .milliseconds(250)
    /// The most rows a verification chunk reads: a chunk streams, so this bounds no memory,
    /// only how far one chunk may run before `chunkTarget` steers it back.
    static let maxChunk = 2_000_000

    /// The next chunk's size after one of `chunk` rows took `took`: scaled towards the target
    /// in proportion (a chunk that took a tenth of it grows tenfold), by at most 8 times up and
    /// half down, within 1 and `maxChunk`. Fast chunks grow in few steps (a 1,000,000-row table
    /// from a 5,000-row start in four chunks, not ten), so the pass costs few statements and
    /// checkpoints; a slow one shrinks at once.
    static func nextChunk(after chunk: Int, took: Duration) -> Int {
        let ratio = chunkTarget / max(took, .microseconds(1))
        let factor = min(8, max(0.5, ratio))
        guard factor > 1.25 || factor < 0.8 else { return chunk }
        return min(maxChunk, max(1, Int((Double(chunk) * factor).rounded())))
    }

    /// One chunk: the first `limit` rows in key order (after the cursor, `$1`, when `after`),
    /// their count, how many disagree, and the greatest key as text. The greatest key is
    /// `max` in the key column's own collation, as the key's index orders it; a uuid, which
    /// has no `max`, by its text in "C" order, which is its order.
    func chunkQuery(after: Bool, limit: Int) -> String {
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
