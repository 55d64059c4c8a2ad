/// What the trace saw one statement do in the scratch database, relations by oid there.
///
/// "Pre-existing" means the relation was in the target before any migration being linted
/// ran: relations created earlier in the same file or in an earlier pending migration are
/// not, so an index on a table created in the same migration raises nothing.
struct TraceObservation: Sendable {
    struct NewConstraint: Sendable {
        var table: Int64
        /// `pg_constraint.contype`: c, f, u, p, x.
        var type: String
        var validated: Bool
        /// The index behind a unique, primary key or exclusion constraint was built by this
        /// statement (not attached with `USING INDEX`).
        var builtIndex: Bool
    }

    /// Whether the statement ran at all (statements that cannot run where the file would put
    /// them, and VACUUM and CLUSTER, are judged by their text alone).
    var executed = true
    /// The statement's table, resolved before it ran; nil when it names none or none resolves.
    var tableOID: Int64?
    /// The strongest lock the statement took on each pre-existing relation.
    var acquired: [Int64: LockMode] = [:]
    /// Pre-existing tables the transaction held in ACCESS EXCLUSIVE before the statement.
    var heldExclusive: [Int64] = []
    /// Pre-existing tables and materialized views whose relfilenode changed.
    var rewritten: [Int64] = []
    /// Pre-existing tables that are gone.
    var dropped: [Int64] = []
    var newConstraints: [NewConstraint] = []
    /// SET NOT NULL needed no scan: PostgreSQL said existing constraints prove it, or a
    /// validated CHECK (col IS NOT NULL) was there before.
    var notNullProven = false
    /// Display names (`media`, `billing.invoices`) and `%I.%I` names of relations seen.
    var names: [Int64: String] = [:]
    var qualifiedNames: [Int64: String] = [:]
    /// The single-column primary key of the statement's table, for `--write-jobs`.
    var batchKey: String?
}
