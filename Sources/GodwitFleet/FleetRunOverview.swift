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
    /// The newest `limit` runs (or run `id` alone, or those of `command`), newest first, each
    /// with its targets counted by state; none when the part is not installed.
    ///
    /// Read only, in one statement: a run is interrupted when it is `running` and no session
    /// holds its advisory lock, read from `pg_locks` rather than by taking the lock (as
    /// `isLive` does), so that a dashboard's read changes nothing.
    public func overview(
        limit: Int = 50, run id: Int64? = nil, command: String? = nil, on connection: Connection
    ) async throws -> [FleetRunOverview] {
        guard try await isInstalled(on: connection) else { return [] }
        let states = FleetTargetState.allCases
        let counts = states.map {
            "pg_catalog.count(*) FILTER (WHERE t.state = \(quoteLiteral($0.rawValue))) AS \(quoteIdentifier("n_" + $0.rawValue))"
        }.joined(separator: ", ")
        let result = try await connection.query(
            """
            SELECT \(Self.runColumns("r")), \(Self.interrupted(run: "r", lockName: "$2")) AS interrupted, c.*
            FROM (SELECT * FROM \(runs)
                  WHERE ($3::pg_catalog.int8 IS NULL OR id = $3::pg_catalog.int8) AND ($4::text IS NULL OR command = $4)
                  ORDER BY started_at DESC, id DESC LIMIT $1) r
            CROSS JOIN LATERAL (SELECT \(counts) FROM \(targets) t WHERE t.run_id = r.id) c
            ORDER BY r.started_at DESC, r.id DESC
            """, [limit, lockName, id, command])
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

    /// Every run recorded, counted by its shown state (`interrupted` for a running run whose
    /// process is gone, as `overview` reads it): one pass over `fleet_runs`, none over the
    /// targets. Empty when the part is not installed.
    public func runsByShownState(on connection: Connection) async throws -> [String: Int] {
        guard try await isInstalled(on: connection) else { return [:] }
        let result = try await connection.query(
            """
            SELECT CASE WHEN \(Self.interrupted(run: "r", lockName: "$1")) THEN 'interrupted' ELSE r.state END AS shown,
                pg_catalog.count(*) AS n
            FROM \(runs) r GROUP BY 1
            """, [lockName])
        var counts: [String: Int] = [:]
        for row in result.rows { counts[try row.string("shown")] = try row.int("n") }
        return counts
    }

    /// Whether the run aliased `run` is interrupted: `running`, and no session holds its
    /// advisory lock (named by the parameter `lockName`). An advisory lock on two int4 keys
    /// shows in pg_locks as classid = the first key's bits as an oid, objid = the second's,
    /// objsubid = 2.
    static func interrupted(run: String, lockName: String) -> String {
        """
        (\(run).state = 'running' AND NOT EXISTS (
            SELECT 1 FROM pg_catalog.pg_locks l
            WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 2
              AND l.database = (SELECT d.oid FROM pg_catalog.pg_database d
                                WHERE d.datname = pg_catalog.current_database())
              AND l.classid = ((pg_catalog.hashtext(\(lockName))::pg_catalog.int8 + 4294967296) % 4294967296)::pg_catalog.oid
              AND l.objid = (\(run).id % 2147483648)::pg_catalog.oid))
        """
    }
}
