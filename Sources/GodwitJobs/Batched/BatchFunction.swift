import GodwitPostgres
import GodwitQueue

/// `pg_temp.godwit_batch(after_key, batch_size, job_id, lease)`: one batch of a job, as a
/// plpgsql function made for it in the enqueuer's session (`BatchStatement.prepare`).
///
/// Its body, in the order it runs: the `fence` (stop unless the lease is this attempt's and no
/// one asked the job to stop), the `keyRange` of the next batch, the `statement` over that
/// range, one `lockLook` just before the batch commits, and the `outputs`. Names in it come
/// from the catalog, quoted by the server (`<schema>.batched_target`); the statement and a
/// shard's bound travel as dollar-quoted literals. It runs with the search_path recorded at
/// enqueue (`SET search_path FROM CURRENT`).
struct BatchFunction {
    let schema: QueueSchema
    /// The table, schema-qualified and quoted.
    let relation: String
    let relationOID: Int64
    /// The key column, quoted, and its type.
    let keySQL: String
    let keyType: String
    /// The types the statement's `$1` and `$2` were parsed as.
    let firstType: String
    let lastType: String
    /// A shard's upper bound (inclusive), as text.
    let upper: String?
    /// The enqueuer's statement, with `$1` and `$2` for the batch's first and last key.
    let statement: String

    /// The `CREATE FUNCTION` that makes it.
    var definition: String {
        """
        CREATE FUNCTION pg_temp.godwit_batch(after_key pg_catalog.text, batch_size integer, job_id bigint, lease bigint,
            OUT control pg_catalog.text, OUT first_key pg_catalog.text, OUT last_key pg_catalog.text, OUT n integer, OUT changed bigint,
            OUT ms double precision, OUT waiters integer, OUT longest_wait_ms double precision,
            OUT total_wait_ms double precision, OUT shared boolean)
        LANGUAGE plpgsql SET search_path FROM CURRENT AS \(dollarQuote(body))
        """
    }

    /// The function's body. A column of the table may be named like one of the function's
    /// parameters (a key named job_id or n): in its queries a bare name is the column, and the
    /// parameters are named with the function's name.
    var body: String {
        """
        #variable_conflict use_column
        DECLARE
            lo \(keyType);
            hi \(keyType);
            started timestamptz := clock_timestamp();
        BEGIN
        \(fence)
        \(keyRange)
        \(runStatement)
        \(lockLook)
        \(outputs)
        END
        """
    }

    /// The fence first: the batch runs only while the lease is this attempt's and no one asked
    /// the job to stop (`<schema>.batch_fence`); otherwise `control` says why, and nothing runs.
    var fence: String {
        """
            control := \(schema.qualified("batch_fence"))(job_id, lease);
            IF control IS NOT NULL THEN
                RETURN;
            END IF;
        """
    }

    /// Sets `lo`, `hi` and `n`: the next batch's first and last key after `after_key`, and its
    /// row count (0 at the end).
    var keyRange: String {
        """
            IF after_key IS NULL THEN
        \(bounds(after: nil))
            ELSE
        \(bounds(after: "\(keySQL) > godwit_batch.after_key::\(keyType)"))
            END IF;
        """
    }

    /// A shard's batches stop at its upper bound, in the bounds query itself, so no batch of
    /// one shard reaches into the next. The bound travels as a dollar-quoted literal cast by the
    /// server, like the statement.
    var upperCondition: String? {
        upper.map { "\(keySQL) <= \(dollarQuote($0))::\(keyType)" }
    }

    /// The batch's first key and its batch_size-th, read from the key's index without sorting
    /// or keeping the keys between them; only the table's last batch, shorter than batch_size,
    /// reads its last key and counts its rows.
    func bounds(after: String?) -> String {
        let conditions = [after, upperCondition].compactMap { $0 }
        let filter = conditions.isEmpty ? "" : "WHERE " + conditions.joined(separator: " AND ")
        return """
                    SELECT (SELECT \(keySQL) FROM \(relation) \(filter) ORDER BY \(keySQL) LIMIT 1),
                        (SELECT \(keySQL) FROM \(relation) \(filter) ORDER BY \(keySQL) OFFSET godwit_batch.batch_size - 1 LIMIT 1)
                    INTO lo, hi;
                    IF hi IS NOT NULL THEN
                        n := godwit_batch.batch_size;
                    ELSIF lo IS NULL THEN
                        n := 0;
                    ELSE
                        SELECT (SELECT \(keySQL) FROM \(relation) \(filter) ORDER BY \(keySQL) DESC LIMIT 1),
                            (SELECT pg_catalog.count(*)::integer FROM (SELECT FROM \(relation) \(filter) LIMIT godwit_batch.batch_size) r)
                        INTO hi, n;
                    END IF;
            """
    }

    /// Runs the enqueuer's statement over `lo..hi`, as a literal, and counts the rows it
    /// changed.
    var runStatement: String {
        """
            changed := 0;
            IF n > 0 THEN
                EXECUTE \(dollarQuote(statement)) USING lo::\(firstType), hi::\(lastType);
                GET DIAGNOSTICS changed = ROW_COUNT;
            END IF;
        """
    }

    /// One look at the lock table, just before the batch commits. The sessions waiting on this
    /// batch's locks: each has waited since it hit a lock the batch holds and waits until the
    /// COMMIT, so this reads every such wait at (almost) its full length. And whether another
    /// session holds the table in a mode that writes or locks rows (an application that this
    /// batch's row locks could make wait).
    var lockLook: String {
        """
            WITH l AS MATERIALIZED (
                SELECT l.pid, l.locktype, l.database, l.relation, l.mode, l.granted, l.waitstart
                FROM pg_catalog.pg_locks l),
            w AS (
                SELECT l.pid, pg_catalog.max(extract(epoch FROM pg_catalog.clock_timestamp() - l.waitstart) * 1000) AS ms
                FROM l
                WHERE NOT l.granted AND l.waitstart IS NOT NULL
                  AND pg_catalog.pg_backend_pid() = ANY (pg_catalog.pg_blocking_pids(l.pid))
                GROUP BY l.pid)
            SELECT (SELECT pg_catalog.count(*)::integer FROM w), (SELECT coalesce(pg_catalog.max(w.ms), 0) FROM w),
                (SELECT coalesce(pg_catalog.sum(w.ms), 0) FROM w),
                EXISTS (SELECT FROM l WHERE l.locktype = 'relation' AND l.relation = \(relationOID)::pg_catalog.oid
                        AND l.database = (SELECT d.oid FROM pg_catalog.pg_database d
                                          WHERE d.datname = pg_catalog.current_database())
                        AND l.pid <> pg_catalog.pg_backend_pid() AND l.granted
                        AND l.mode IN ('RowShareLock', 'RowExclusiveLock'))
            INTO waiters, longest_wait_ms, total_wait_ms, shared;
        """
    }

    /// The batch's keys as text, and how long it took.
    var outputs: String {
        """
            first_key := lo::text;
            last_key := hi::text;
            ms := extract(epoch FROM clock_timestamp() - started) * 1000;
        """
    }
}
