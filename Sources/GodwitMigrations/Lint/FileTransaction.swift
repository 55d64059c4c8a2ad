/// Where a migration file's statements stand with respect to transactions, statement by
/// statement, as `migrate run` (and sqlx) send the file; the lint follows it instead of
/// sending the file's own transaction statements (see `TransactionControl`).
///
/// A file without `-- no-transaction` is sent as one query inside the migration's transaction:
/// its `BEGIN` changes nothing, and its first `COMMIT` or `ROLLBACK` ends that transaction, after
/// which the rest of the file runs in an implicit transaction of its own, to the end of the
/// file (so `CONCURRENTLY` still cannot run there, and locks taken there last to the end). A
/// `-- no-transaction` file is sent statement by statement: its `BEGIN` opens a transaction,
/// its `COMMIT` or `ROLLBACK` closes it.
struct FileTransaction {
    /// What a transaction statement did.
    enum Change: Equatable {
        case none
        /// A transaction began: locks taken from here last until it ends.
        case opened
        /// The transaction ended, and with it every lock taken in it.
        case closed
        /// The transaction ended and another began at once (the rest of a file sent as one
        /// query, or `AND CHAIN`): the locks taken so far are released.
        case restarted
    }

    /// The file runs inside the migration's transaction (no `-- no-transaction`).
    let runsInMigrationTransaction: Bool
    /// Whether a statement here runs inside a transaction block, explicit or implicit.
    private(set) var open: Bool
    /// The file's own statement that ended the migration's transaction, if one did.
    private(set) var ended: (line: Int, control: TransactionControl)?

    init(runsInMigrationTransaction: Bool) {
        self.runsInMigrationTransaction = runsInMigrationTransaction
        open = runsInMigrationTransaction
    }

    /// Follows one transaction statement of the file, at `line`.
    mutating func apply(_ control: TransactionControl, line: Int) -> Change {
        if runsInMigrationTransaction {
            guard control.endsTransaction else { return .none }
            if ended == nil { ended = (line, control) }
            return .restarted
        }
        switch control {
        case .begin:
            guard !open else { return .none }
            open = true
            return .opened
        case .commit, .rollback, .twoPhase:
            guard open else { return .none }
            open = control.chains
            return control.chains ? .restarted : .closed
        case .savepoint:
            return .none
        }
    }
}
