import GodwitChanges

/// The changes page's reads, through `ChangeStatus` (the `changes` view and the catalog).
extension OperationsStore {
    /// Every change, in flight first; none when no change was ever started here.
    func changes(limit: Int = 200) async throws -> [ChangeSummary] {
        try await pool.withConnection { try await ChangeStatus(schema: schema).list(limit: limit, on: $0) }
    }

    /// One change in full, or nil when there is none by that name.
    func change(_ name: String) async throws -> ChangeDetails? {
        try await pool.withConnection { try await ChangeStatus(schema: schema).details(of: name, on: $0) }
    }
}
