import GodwitPostgres

/// A fleet run as the dashboard and `/metrics` list it: the run, whether its process is gone,
/// and how many of its targets stand in each state.
public struct FleetRunOverview: Sendable, Equatable {
    public var run: FleetRun
    /// Targets by state; a state no target is in is absent.
    public var counts: [FleetTargetState: Int]

    public init(run: FleetRun, counts: [FleetTargetState: Int]) {
        self.run = run
        self.counts = counts
    }

    public var total: Int { counts.values.reduce(0, +) }
    public func count(_ state: FleetTargetState) -> Int { counts[state] ?? 0 }
}

extension FleetRecords {
    /// The newest `limit` runs (or run `id` alone), newest first, each with its targets counted
    /// by state; none when the part is not installed.
    ///
    /// Read only, in one statement: a run is interrupted when it is `running` and no session
    /// holds its advisory lock, read from `pg_locks` rather than by taking the lock (as
    /// `isLive` does), so that a dashboard's read changes nothing.
    public func overview(limit: Int = 50, run id: Int64? = nil, on connection: Connection) async throws
        -> [FleetRunOverview]
    {
        guard try await isInstalled(on: connection) else { return [] }
        let states = FleetTargetState.allCases
        let counts = states.map {
            "pg_catalog.count(*) FILTER (WHERE t.state = \(quoteLiteral($0.rawValue))) AS \(quoteIdentifier("n_" + $0.rawValue))"
        }.joined(separator: ", ")
        // An advisory lock on two int4 keys shows in pg_locks as classid = the first key's
        // bits as an oid, objid = the second's, objsubid = 2.
        let result = try await connection.query(
            """
            SELECT \(Self.runColumns("r")),
                r.state = 'running' AND NOT EXISTS (
                    SELECT 1 FROM pg_catalog.pg_locks l
                    WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 2
                      AND l.database = (SELECT d.oid FROM pg_catalog.pg_database d
                                        WHERE d.datname = pg_catalog.current_database())
                      AND l.classid = ((pg_catalog.hashtext($2)::pg_catalog.int8 + 4294967296) % 4294967296)::pg_catalog.oid
                      AND l.objid = (r.id % 2147483648)::pg_catalog.oid) AS interrupted,
                c.*
            FROM (SELECT * FROM \(runs) WHERE $3::pg_catalog.int8 IS NULL OR id = $3::pg_catalog.int8
                  ORDER BY started_at DESC, id DESC LIMIT $1) r
            CROSS JOIN LATERAL (SELECT \(counts) FROM \(targets) t WHERE t.run_id = r.id) c
            ORDER BY r.started_at DESC, r.id DESC
            """, [limit, lockName, id])
        return try result.rows.map { row in
            var run = try Self.run(from: row)
            run.isInterrupted = try row.bool("interrupted")
            var counts: [FleetTargetState: Int] = [:]
            for state in states {
                let n = try row.int("n_" + state.rawValue)
                if n > 0 { counts[state] = n }
            }
            return FleetRunOverview(run: run, counts: counts)
        }
    }
}
