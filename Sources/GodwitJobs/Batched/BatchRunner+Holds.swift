import Foundation
import GodwitPostgres
import GodwitQueue

/// When an attempt holds back: the server's state and the health queries, checked between
/// batches.
extension BatchRunner {
    /// Holds (state stays running) while a standby lags, autovacuum works on the table, WAL
    /// archiving falls behind, or a health query (the operator's `--health-query`, the job's
    /// `health-query`) is false or fails, showing why in `godwit.progress`. Returns true when
    /// it held.
    mutating func holdIfNeeded() async throws -> Bool {
        // Looked at most once a second while not holding: the checks cost round trips.
        if holding == nil, let lastHoldCheck, clock.now - lastHoldCheck < throttle.holdCheckInterval { return false }
        lastHoldCheck = clock.now
        let reason = try await holdReason()
        if reason != holding {
            try await context.pool.withConnection { [progress, context] connection in
                try await progress.setHoldReason(reason, job: context.job.id, on: connection)
            }
            if let reason {
                context.logger.notice(
                    "batched job holding", metadata: ["job": "\(context.job.id)", "reason": "\(reason)"])
            } else {
                context.logger.notice("batched job goes on", metadata: ["job": "\(context.job.id)"])
            }
            holding = reason
        }
        guard reason != nil else { return false }
        try await sleepCheckingInterruptions(throttle.holdCheckInterval)
        return true
    }

    /// Why the job should hold now, or nil. The server's state and the operator's health query
    /// are read over the worker's own connections; the job's health query in the enqueuer's
    /// session, with its rights.
    private func holdReason() async throws -> String? {
        let row = try await context.pool.withConnection { [statement] connection in
            try await connection.query(
                """
                SELECT
                    (SELECT coalesce(max(extract(epoch FROM greatest(write_lag, flush_lag, replay_lag))), 0)
                     FROM pg_catalog.pg_stat_replication)::float8 AS lag,
                    EXISTS (SELECT 1 FROM pg_catalog.pg_stat_progress_vacuum v JOIN pg_catalog.pg_stat_activity a ON a.pid = v.pid
                            WHERE v.relid = $1::pg_catalog.oid AND a.backend_type = 'autovacuum worker') AS vacuuming,
                    \(Self.archiveBacklogSQL) AS archive_backlog
                """, [statement.relationOID]
            ).first!
        }
        let lag = try row.double("lag")
        if lag > throttle.maxReplicationLag.seconds {
            return String(format: "replication lag %.1f s is above %.1f s", lag, throttle.maxReplicationLag.seconds)
        }
        if throttle.holdDuringAutovacuum, try row.bool("vacuuming") {
            return "autovacuum is working on \(payload.table)"
        }
        if let limit = throttle.maxArchiveBacklog, let backlog = row["archive_backlog"].flatMap({ Int($0) }),
            backlog > limit
        {
            return "WAL archiving is \(backlog) segments behind (more than \(limit))"
        }
        if let query = throttle.healthQuery {
            let unhealthy = try await context.pool.withConnection { connection in
                try await healthProblem(query, who: "the worker's health query", on: connection)
            }
            if let unhealthy { return unhealthy }
        }
        if let query = statement.healthQuery,
            let unhealthy = try await healthProblem(query, who: "the job's health query", on: session)
        {
            return unhealthy
        }
        return nil
    }

    /// Runs a health check under a statement timeout; a description of what is wrong when it
    /// is not true.
    private func healthProblem(_ query: String, who: String, on connection: Connection) async throws -> String? {
        let result: [QueryResult]
        do {
            result = try await connection.execute(
                """
                BEGIN;
                SET LOCAL statement_timeout = \(Int(throttle.healthQueryTimeout.milliseconds));
                SELECT (\(query))::boolean AS healthy;
                COMMIT
                """
            )
        } catch let error as PostgresError where error.code == .server {
            await connection.cleanup("ROLLBACK")
            return "\(who) failed: \(error.message)"
        }
        let row = result.count > 2 ? result[2].first : nil
        switch row?["healthy"] {
        case "t": return nil
        case "f": return "\(who) returned false"
        default: return "\(who) returned NULL"
        }
    }

    /// WAL segments completed but not yet archived: from the last archived segment's name and
    /// the current WAL position. NULL when archiving is off, on a standby, or nothing has been
    /// archived yet.
    static let archiveBacklogSQL = """
        (SELECT CASE WHEN pg_catalog.current_setting('archive_mode') <> 'off' AND NOT pg_catalog.pg_is_in_recovery()
                       AND a.last_archived_wal ~ '^[0-9A-F]{24}$'
                  THEN pg_catalog.floor(pg_catalog.pg_wal_lsn_diff(pg_catalog.pg_current_wal_lsn(), '0/0')::numeric / s.size)
                       - (('x' || substr(a.last_archived_wal, 9, 8))::bit(32)::bigint::numeric * (4294967296 / s.size)
                          + ('x' || substr(a.last_archived_wal, 17, 8))::bit(32)::bigint + 1)
             END::bigint
         FROM pg_catalog.pg_stat_archiver a,
              (SELECT setting::numeric AS size FROM pg_catalog.pg_settings WHERE name = 'wal_segment_size') s)
        """

    func sleepCheckingInterruptions(_ duration: Duration) async throws {
        let deadline = clock.now + duration
        while clock.now < deadline {
            try context.checkpoint()
            try await Task.sleep(for: min(.milliseconds(50), deadline - clock.now))
        }
    }
}
