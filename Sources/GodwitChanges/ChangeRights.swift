import GodwitPostgres
import GodwitQueue

/// Who may run a change command: the schema's owner, or a role granted `grant_change`
/// (`Resources/changes_rights.sql`); and for complete and abort, which run the SQL the change's
/// starter recorded, only a login that is a member of the starter's role.
enum ChangeRights {
    /// Throws when the login running `command` on change `name` is not a member of the role
    /// that started it: complete and abort run `statements`, which the starter wrote (a granted
    /// role can write any), so they run only in sessions that could act as the starter, as a
    /// job's SQL runs only in its enqueuer's. Row security refuses such a session's writes too;
    /// this says so in one line before anything runs, whoever the login is (the schema's owner
    /// included, who bypasses row security). Does nothing when there is no such change (the
    /// command's own lookup says so).
    static func checkStarter(
        of name: String, command: String, schema: QueueSchema, on connection: Connection
    ) async throws {
        guard
            let row = try await connection.query(
                """
                SELECT c.started_by, session_user::text AS login,
                       EXISTS (SELECT 1 FROM pg_catalog.pg_roles r
                               WHERE r.rolname = c.started_by
                                 AND pg_catalog.pg_has_role(session_user, r.oid, 'MEMBER')) AS member
                FROM \(schema.qualified("change_records")) c WHERE c.name = $1
                """, [name]
            ).first
        else { return }
        guard try !row.bool("member") else { return }
        let starter = try row.string("started_by")
        throw ChangeError(
            .notPermitted,
            "change \(name) was started by role \(starter), and role \(try row.string("login")) is not a member of it: only \(starter) or a member of it may \(command) the change (it runs the SQL \(starter)'s start recorded); nothing was applied"
        )
    }

    /// The line for PostgreSQL's refusal (SQLSTATE 42501) of Godwit's objects to the role
    /// running `action` ("start changes"): who it is and the grant that lets it, as the
    /// dashboard names `grant_control`.
    static func missing(
        _ error: PostgresError, action: String, schema: QueueSchema, on connection: Connection
    ) async -> String {
        var role: String?
        if let row = try? await connection.query("SELECT current_user::text AS r").first { role = row["r"] }
        let grantee = role ?? "ROLE"
        return
            "role \(role ?? "of this session") may not \(action) in schema \(schema.quoted): the schema's owner can allow it with SELECT \(schema.quoted).grant_change(\(quoteLiteral(grantee))); the server said: \(error.message)"
    }

    /// Whether `error` is PostgreSQL refusing a right (SQLSTATE 42501), row security's
    /// refusal of a row included.
    static func isRefusal(_ error: any Error) -> Bool {
        (error as? PostgresError)?.sqlState == .insufficientPrivilege
    }
}
