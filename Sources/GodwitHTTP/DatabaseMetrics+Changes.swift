import GodwitChanges
import GodwitPostgres
import Prometheus

extension DatabaseMetrics {
    /// `godwit_changes{phase}` for every phase, 0 included (0 throughout where no change was
    /// ever started), and per change in flight the rows its verification found disagreeing and
    /// its backfill's progress. Read through `ChangeStatus`.
    func changes(_ connection: Connection, into registry: PrometheusCollectorRegistry) async throws {
        let status = ChangeStatus(schema: store.schema)
        let counts = try await status.countsByPhase(on: connection)
        for phase in ChangePhase.allCases {
            registry.makeGauge(
                named: "godwit_changes", labels: [("phase", phase.rawValue)],
                help: "Zero-downtime column changes by phase (planned is never stored, so always 0)."
            ).set(to: Double(counts[phase] ?? 0))
        }
        // Changes in flight are few by construction: each holds a trigger on a live table.
        for change in try await status.list(on: connection) where change.knownPhase?.isInFlight == true {
            let labels = [("change", change.name)]
            if let disagreeing = change.disagreeingRows {
                registry.makeGauge(
                    named: "godwit_change_disagreeing_rows", labels: labels,
                    help: "Rows whose two sides disagree, as a change in flight's last verification found."
                ).set(to: Double(disagreeing))
            }
            registry.makeGauge(
                named: "godwit_change_rows_done", labels: labels,
                help: "Rows a change in flight's backfill has done."
            ).set(to: Double(change.rowsDone))
            if let total = change.rowsTotal {
                registry.makeGauge(
                    named: "godwit_change_rows_expected", labels: labels,
                    help: "Rows a change in flight's backfill expects to cover."
                ).set(to: Double(total))
            }
            registry.makeGauge(
                named: "godwit_change_ready", labels: labels,
                help: "1 when a change in flight is ready and nothing blocks complete, else 0."
            ).set(to: change.ready ? 1 : 0)
        }
    }
}
