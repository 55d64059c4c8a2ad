import GodwitPostgres
import GodwitQueue

extension ChangeJob.Run {
    /// How many keys a failed verification names.
    static let keysShown = 5

    /// The verification: a keyset pass over the key, in chunks, counting the rows whose two
    /// sides disagree (`statements.disagrees`).
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
        let chunk = max(1, record.batchSize ?? job.defaultVerifyChunk)
        var cursor = record.verifyCursor
        var rows = cursor == nil ? 0 : record.verifiedRows
        var disagreeing = cursor == nil ? 0 : record.disagreeingRows
        let select = """
            SELECT \(statements.key) AS godwit_key, (\(statements.disagrees)) IS NOT FALSE AS godwit_disagrees
            FROM \(statements.table)
            """
        let order = "ORDER BY \(statements.key) LIMIT \(chunk)"
        while true {
            try context.checkpoint()
            // The last key in the key's own order: `c.godwit_key`, qualified, is the column,
            // where a bare name would sort by the text of the output column of that name.
            let summary = """
                WITH chunk AS MATERIALIZED (%@)
                SELECT (SELECT count(*) FROM chunk) AS read,
                       (SELECT count(*) FROM chunk WHERE godwit_disagrees) AS disagreeing,
                       (SELECT c.godwit_key::text FROM chunk c ORDER BY c.godwit_key DESC LIMIT 1) AS last
                """
            let result: QueryResult
            if let cursor {
                result = try await session.query(
                    summary.replacingOccurrences(of: "%@", with: "\(select) WHERE \(statements.key) > $1 \(order)"),
                    [cursor])
            } else {
                result = try await session.query(summary.replacingOccurrences(of: "%@", with: "\(select) \(order)"))
            }
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
