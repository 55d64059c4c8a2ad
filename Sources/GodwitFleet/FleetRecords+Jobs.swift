import GodwitPostgres

/// What `fleet enqueue` records beyond a migrate run: each target's job.
extension FleetRecords {
    /// Records the job a `fleet enqueue` put in `name`'s queue.
    public func setJob(run: Int64, name: String, jobID: Int64, on connection: Connection) async throws {
        try await connection.query(
            "UPDATE \(targets) SET job_id = $3 WHERE run_id = $1 AND name = $2", [run, name, jobID])
    }
}
