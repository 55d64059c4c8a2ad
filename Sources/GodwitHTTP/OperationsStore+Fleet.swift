import GodwitFleet
import GodwitPostgres

/// The fleet pages' reads, through `FleetRecords` (the fleets' part, where a fleet command
/// recorded its runs in this database: the control database).
extension OperationsStore {
    /// What the fleet page shows: the newest runs with their targets by state, nothing when no
    /// fleet command recorded a run here, or why this login may not read them.
    enum FleetRuns: Sendable {
        case runs([FleetRunOverview])
        case notReadable
    }

    func fleetRuns(limit: Int = 50) async throws -> FleetRuns {
        do {
            return .runs(
                try await pool.withConnection {
                    try await FleetRecords(schema: schema.name).overview(limit: limit, on: $0)
                })
        } catch let error as PostgresError where error.sqlState == .insufficientPrivilege {
            return .notReadable
        }
    }

    /// One run with every target, or nil when there is none of that id (or this login may not
    /// read the fleet's records).
    func fleetRun(_ id: Int64) async throws -> (run: FleetRunOverview, targets: [FleetTargetRecord])? {
        do {
            return try await pool.withConnection { connection in
                let records = FleetRecords(schema: schema.name)
                guard let run = try await records.overview(limit: 1, run: id, on: connection).first else { return nil }
                return (run, try await records.targets(run: id, on: connection))
            }
        } catch let error as PostgresError where error.sqlState == .insufficientPrivilege {
            return nil
        }
    }
}
