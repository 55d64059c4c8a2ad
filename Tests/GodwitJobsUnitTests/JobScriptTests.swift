import GodwitJobs
import GodwitPostgres
import Testing

/// What the worker reads in an sql job's text before running it, without a database.
@Suite("Reading a job's SQL text")
struct JobScriptTests {
    @Test(arguments: [
        ("COMMIT", true), ("commit and chain", true), ("END", true), ("ABORT", true), ("ROLLBACK", true),
        ("rollback prepared 'x'", true), ("COMMIT PREPARED 'x'", true), ("PREPARE TRANSACTION 'x'", true),
        ("BEGIN", true), ("START TRANSACTION", true), ("/* c */ -- c\n  Commit", true),
        ("ROLLBACK TO SAVEPOINT a", false), ("rollback to a", false), ("SAVEPOINT a", false), ("RELEASE a", false),
        ("SET TRANSACTION ISOLATION LEVEL SERIALIZABLE", false), ("SELECT 'COMMIT'", false),
        ("UPDATE t SET x = 1", false),
        ("PREPARE q AS SELECT 1", false),
    ])
    func aScriptMayNotEndTheTransactionThatRecordsItsSuccess(statement: String, ends: Bool) {
        #expect(JobScript.endsTransaction(statement) == ends, "\(statement)")
    }

    @Test func topLevelStatementsAreKnownByTheirLeadingWords() {
        #expect(JobScript.mustRunAtTopLevel("-- tidy\nVACUUM (ANALYZE) t"))
        #expect(JobScript.mustRunAtTopLevel("create unique index concurrently i on t (x)"))
        #expect(!JobScript.mustRunAtTopLevel("CREATE INDEX i ON t (x)"))
        #expect(dollarQuote("a $godwit$ b") == "$godwit1$a $godwit$ b$godwit1$")
    }
}
