import GodwitPostgres

/// Running a job's SQL with the rights of the role that enqueued it, never the worker's.
///
/// `SET ROLE` alone is not enough: SQL that runs after it could say `RESET ROLE` (or call
/// `set_config('role', ...)`) and be the worker again. So the job's SQL runs inside a
/// temporary `SECURITY DEFINER` function *owned by the enqueuer*: inside it `current_user` is
/// the enqueuer and PostgreSQL refuses every change of role ("cannot set parameter role within
/// security-definer function"). The function lives in the worker session's `pg_temp`, which the
/// session's reset (`DISCARD ALL`) drops again.
///
/// The few statements that cannot run inside a function (`VACUUM`, `CREATE INDEX
/// CONCURRENTLY`, ...) run at the top level after `SET ROLE`, but only alone: one statement,
/// sent with the extended protocol, which refuses a second. They run user code only in
/// PostgreSQL's security-restricted mode (index expressions as the table's owner), where a
/// change of role is refused too, and so is leaving code behind for COMMIT.
///
/// A sandbox function can leave code behind for COMMIT, which runs after it has returned, as
/// whoever is current then and free to change role: so every sandbox function ends with
/// `commitGuard`.
public enum EnqueuerRole {
    /// Takes the enqueuer's role for the session, or fails the job naming the role.
    public static func assume(for job: ClaimedJob, on connection: Connection) async throws {
        do {
            try await connection.execute("SET ROLE \(quoteIdentifier(job.enqueuedBy))")
        } catch let error as PostgresError where error.code == .server {
            let worker = (try? await connection.query("SELECT session_user::text AS u").first?.string("u")) ?? "?"
            throw JobFailure(
                "job \(job.id) was enqueued by role \(job.enqueuedBy), which this worker (role \(worker)) cannot take "
                    + "(\(error.message)): jobs run with their enqueuer's rights, so grant it with "
                    + "GRANT \(quoteIdentifier(job.enqueuedBy)) TO \(quoteIdentifier(worker))")
        }
    }

    /// Statements that must run at the top level, outside any function or transaction block.
    public static let topLevelOnly: [[String]] = [
        ["VACUUM"], ["ANALYZE"], ["ANALYSE"], ["CLUSTER"], ["REINDEX"],
        ["CREATE", "INDEX", "CONCURRENTLY"], ["CREATE", "UNIQUE", "INDEX", "CONCURRENTLY"],
        ["DROP", "INDEX", "CONCURRENTLY"], ["REFRESH", "MATERIALIZED", "VIEW"],
    ]

    /// Whether `statement` (one statement) starts with the words of a top-level-only command.
    public static func mustRunAtTopLevel(_ statement: String) -> Bool {
        let words = leadingWords(statement, count: 4)
        return topLevelOnly.contains { prefix in words.count >= prefix.count && Array(words.prefix(prefix.count)) == prefix }
    }

    /// The first `count` words of a statement, upper-cased, after comments and whitespace.
    public static func leadingWords(_ statement: String, count: Int) -> [String] {
        var text = Substring(statement)
        var words: [String] = []
        while words.count < count {
            text = text.drop { $0.isWhitespace }
            if text.hasPrefix("--") {
                text = text.drop { $0 != "\n" }
                continue
            }
            if text.hasPrefix("/*") {
                guard let end = text.range(of: "*/") else { break }
                text = text[end.upperBound...]
                continue
            }
            let word = text.prefix { $0.isLetter || $0 == "_" }
            guard !word.isEmpty else { break }
            words.append(word.uppercased())
            text = text.dropFirst(word.count)
        }
        return words
    }

    /// A dollar-quoted literal of `body` whose tag does not occur in it.
    public static func dollarQuoted(_ body: String) -> String {
        var tag = "godwit"
        var counter = 0
        while body.contains("$\(tag)$") {
            counter += 1
            tag = "godwit\(counter)"
        }
        return "$\(tag)$\(body)$\(tag)$"
    }

    /// The last block of every sandbox function: leaves no code of the job's for COMMIT.
    ///
    /// At COMMIT PostgreSQL fires deferred triggers, re-checks deferred constraints and runs
    /// cursors WITH HOLD to their end. That would happen after the sandbox function has
    /// returned, with the session's role (the enqueuer's after `SET ROLE`, the worker's during a
    /// batch's checkpoint), where `RESET ROLE` is allowed again and gives the worker's own
    /// rights. So the guard fires what is pending now, inside the sandbox (`SET CONSTRAINTS ALL
    /// IMMEDIATE` runs the deferred triggers and re-checks at once, as the enqueuer, where a
    /// change of role is refused), and fails the job if it left a holdable cursor open. Every
    /// name is schema-qualified and every operator spelled out: the job's SQL may have changed
    /// `search_path`.
    public static let commitGuard = """
            BEGIN
                SET CONSTRAINTS ALL IMMEDIATE;
                IF EXISTS (SELECT FROM pg_catalog.pg_cursors c WHERE c.is_holdable) THEN
                    RAISE EXCEPTION 'the job left a cursor WITH HOLD open, which PostgreSQL would run at COMMIT, outside the job''s rights: close it before the job ends'
                        USING ERRCODE = '42501';
                END IF;
            END;
        """

    /// Creates `pg_temp.godwit_run_sql(text)`, owned by the current role (call `assume` first):
    /// it runs a script of statements and returns the row count of the last.
    public static func createScriptRunner(on connection: Connection) async throws {
        try await connection.execute(
            """
            CREATE FUNCTION pg_temp.godwit_run_sql(script pg_catalog.text) RETURNS bigint
            LANGUAGE plpgsql SECURITY DEFINER AS $godwit$
            DECLARE affected bigint;
            BEGIN
                EXECUTE script;
                GET DIAGNOSTICS affected = ROW_COUNT;
            \(commitGuard)
                RETURN affected;
            END
            $godwit$
            """)
    }
}
