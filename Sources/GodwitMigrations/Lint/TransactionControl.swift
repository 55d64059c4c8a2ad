import GodwitPostgres

/// A statement of a migration file that starts or ends a transaction, or works with
/// savepoints: a file may hold its own `BEGIN; ... COMMIT;` (zero-to-production's do).
///
/// sqlx 0.8 runs a migration without `-- no-transaction` inside a transaction of its own and
/// sends the file's text as one simple query, and `migrate run` sends the same: the file's
/// `BEGIN` is then a no-op (PostgreSQL only warns that a transaction is in progress), and its
/// `COMMIT` ends sqlx's transaction early, so that what follows runs outside it (in an
/// implicit transaction of its own to the end of the file) and the ledger row is written
/// after that, on its own. In a `-- no-transaction` file, which Godwit sends statement by
/// statement, `BEGIN` opens a transaction that lasts to the file's `COMMIT`.
///
/// The lint's trace never sends these statements to the scratch database, whose one
/// transaction is never committed: it models what they do instead.
enum TransactionControl: Sendable, Equatable {
    /// `BEGIN`, `START TRANSACTION`.
    case begin
    /// `COMMIT`, `END`; `chain` for `AND CHAIN`, which opens a new transaction at once.
    case commit(chain: Bool)
    /// `ROLLBACK`, `ABORT`; `chain` as for `commit`.
    case rollback(chain: Bool)
    /// `SAVEPOINT`, `RELEASE [SAVEPOINT]`, `ROLLBACK [WORK | TRANSACTION] TO [SAVEPOINT]`.
    case savepoint
    /// `PREPARE TRANSACTION`, `COMMIT PREPARED`, `ROLLBACK PREPARED`: two-phase commit, which
    /// has no place in a migration.
    case twoPhase

    /// Nil for every other statement.
    init?(_ tokens: [SQLToken]) {
        let words = tokens.prefix(6).map { $0.keyword ?? "" }
        guard let first = words.first else { return nil }
        let chain = tokens.indices.contains { index in
            index + 1 < tokens.count && tokens[index].isKeyword("AND") && tokens[index + 1].isKeyword("CHAIN")
                && !(index > 0 && tokens[index - 1].isKeyword("NO"))
        }
        switch first {
        case "BEGIN":
            self = .begin
        case "START":
            guard words.count > 1, words[1] == "TRANSACTION" else { return nil }
            self = .begin
        case "COMMIT", "END":
            self = words.count > 1 && words[1] == "PREPARED" ? .twoPhase : .commit(chain: chain)
        case "ROLLBACK", "ABORT":
            if words.count > 1, words[1] == "PREPARED" {
                self = .twoPhase
            } else if words.dropFirst().prefix(2).contains("TO") {
                self = .savepoint
            } else {
                self = .rollback(chain: chain)
            }
        case "SAVEPOINT", "RELEASE":
            self = .savepoint
        case "PREPARE":
            guard words.count > 1, words[1] == "TRANSACTION" else { return nil }
            self = .twoPhase
        default:
            return nil
        }
    }

    /// Whether the statement ends the transaction it runs in.
    var endsTransaction: Bool {
        switch self {
        case .commit, .rollback, .twoPhase: true
        case .begin, .savepoint: false
        }
    }

    /// Whether a transaction is open after it (for `commit` and `rollback`: `AND CHAIN`).
    var chains: Bool {
        switch self {
        case .commit(let chain), .rollback(let chain): chain
        default: false
        }
    }
}
