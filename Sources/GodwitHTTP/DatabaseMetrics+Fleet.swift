import GodwitFleet
import GodwitPostgres
import Prometheus

extension DatabaseMetrics {
    /// Where fleet runs were recorded in this database (it is their control database): the
    /// runs by state (`interrupted` for a running run whose process is gone), and the newest
    /// run of each command with its targets by state, every state written, at zero when absent.
    /// Nothing when no fleet command recorded here, or this login may not read the records.
    func fleet(_ connection: Connection, into registry: PrometheusCollectorRegistry) async throws {
        let records = FleetRecords(schema: store.schema.name)
        let byState: [String: Int]
        do {
            byState = try await records.runsByShownState(on: connection)
        } catch let error as PostgresError where error.sqlState == .insufficientPrivilege {
            return
        }
        guard !byState.isEmpty else { return }
        for state in FleetRunState.allCases.map(\.rawValue) + ["interrupted"] {
            registry.makeGauge(
                named: "godwit_fleet_runs", labels: [("state", state)],
                help: "Fleet runs recorded here, by state; interrupted: running, its process gone."
            ).set(to: Double(byState[state] ?? 0))
        }
        for command in ["migrate", "enqueue"] {
            guard let newest = try await records.overview(limit: 1, command: command, on: connection).first else {
                continue
            }
            registry.makeGauge(
                named: "godwit_fleet_last_run_id", labels: [("command", command)],
                help: "The newest fleet run of each command."
            ).set(to: Double(newest.run.id))
            for state in FleetTargetState.allCases {
                registry.makeGauge(
                    named: "godwit_fleet_last_run_targets", labels: [("command", command), ("state", state.rawValue)],
                    help: "The newest fleet run of each command: its targets by state."
                ).set(to: Double(newest.count(state)))
            }
        }
    }
}
