import Foundation
import GodwitChanges
import GodwitMigrations
import GodwitPostgres
import GodwitQueue
import GodwitTestSupport
import Synchronization
import Testing

/// What the change tests share: a `media` table, a change started from its text, the
/// backfill run as the batched job would run it, and the rows whose sides disagree.
enum ChangeTests {
    /// A short lock timeout and quick retries, so a test that meets a lock moves on soon.
    static let quickLocks = LockTimeoutPolicy(
        lockTimeout: .milliseconds(300), retries: 1000,
        backoff: Backoff(base: .milliseconds(20), max: .milliseconds(200)))

    static func manager() -> ChangeManager { ChangeManager(lockPolicy: quickLocks) }

    /// `media` with `rows` rows: id, title, size_bytes, full_name, views, slug, owner_id, legacy;
    /// and `owners` (1...10) for the foreign keys.
    static func createMedia(on conn: Connection, rows: Int = 200) async throws {
        try await conn.execute(
            """
            CREATE TABLE owners (id bigint PRIMARY KEY);
            INSERT INTO owners SELECT g FROM generate_series(1, 10) g;
            CREATE TABLE media (
                id bigserial PRIMARY KEY,
                title text,
                size_bytes bigint,
                full_name text,
                views integer NOT NULL DEFAULT 0,
                slug text,
                owner_id bigint,
                legacy text
            );
            INSERT INTO media (title, size_bytes, full_name, views, slug, owner_id, legacy)
            SELECT 'title ' || g, g * 1024, 'First' || g || ' Last' || g, g, 'slug-' || g, 1 + g % 10, 'x'
            FROM generate_series(1, \(rows)) g;
            """)
    }

    /// Writes `body` as `changes/NAME.sql`'s text and starts it.
    static func start(_ name: String, _ body: String, on conn: Connection) async throws -> ChangeManager.Started {
        try await manager().start(text: "-- godwit:change\n" + body, file: "changes/\(name).sql", on: conn)
    }

    /// Writes `-- godwit:change` and `body` as `NAME.sql` in a folder of its own, runs `run`
    /// with the file's path (what a command is given), and removes the folder.
    static func withChangeFile<T>(
        _ name: String, _ body: String, _ run: (String) async throws -> T
    ) async throws -> T {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("godwit-change-\(UUID())")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let file = folder.appendingPathComponent("\(name).sql").path
        try ("-- godwit:change\n" + body).write(toFile: file, atomically: true, encoding: .utf8)
        return try await run(file)
    }

    /// The change's `statements` as stored by start.
    static func statements(_ name: String, on conn: Connection) async throws -> ChangeStatements {
        try #require(try await ChangeStatements.stored(for: name, schema: QueueSchema.withChanges(), on: conn))
    }

    /// The backfill as its batched job runs it: its statement over consecutive key ranges.
    static func backfill(_ name: String, on conn: Connection, batch: Int64 = 50, table: String = "media") async throws {
        let statement = try await conn.query(
            """
            SELECT j.payload->>'statement' AS statement FROM godwit.change_records c
            JOIN godwit.jobs j ON j.id = c.backfill_job_id WHERE c.name = $1
            """, [name]
        ).first!.string("statement")
        let maxID = try await conn.query("SELECT coalesce(max(id), 0) AS m FROM \(table)").first!.int64("m")
        var low: Int64 = 0
        while low <= maxID {
            try await conn.query(statement, [low, low + batch - 1])
            low += batch
        }
    }

    /// How many rows of media the change's `disagrees` finds.
    static func disagreeing(_ name: String, on conn: Connection) async throws -> Int {
        let statements = try await statements(name, on: conn)
        return try await conn.query("SELECT count(*) AS n FROM \(statements.table) WHERE \(statements.disagrees)")
            .first!.int("n")
    }

    /// The app schema (`public`) as `pg_dump --schema-only` prints it, less its `\restrict`
    /// lines (a random key each run).
    static func schemaDump(of database: TestDatabase) async throws -> String {
        let (conninfo, environment) = try ClientProgram.connectionArguments(for: database.url)
        let dump = try await ClientProgram.run(
            "pg_dump", ["--schema-only", "--schema=public", "--dbname=\(conninfo)"], environment: environment)
        guard dump.succeeded else { throw TestSetupError(message: "pg_dump failed: \(dump.stderr)") }
        return dump.stdout.split(separator: "\n", omittingEmptySubsequences: false)
            .filter { !$0.hasPrefix("\\restrict") && !$0.hasPrefix("\\unrestrict") }.joined(separator: "\n")
    }

    /// The SQLSTATE and message of what `body` threw, nil when it did not throw.
    static func serverError(_ body: () async throws -> Void) async -> PostgresError? {
        do {
            try await body()
            return nil
        } catch let error as PostgresError {
            return error
        } catch {
            Issue.record("not a server error: \(error)")
            return nil
        }
    }
}

/// One application version: its own session, writing only the columns it knows, in a mix of
/// INSERTs, single-column UPDATEs and ORM-style saves of every column it knows (read first,
/// written back whole, possibly stale by then). It never writes NULL, so a NULL found after
/// the backfill is the trigger's.
struct AppVersion: Sendable {
    /// The columns this version knows, besides id, and a value for each for a given number.
    var columns: [String]
    var value: @Sendable (_ column: String, _ n: Int) -> String

    /// `rounds` writes of each kind, interleaved; returns how many statements it ran.
    func write(on conn: Connection, rounds: Int, seed: Int) async throws -> Int {
        var statements = 0
        let list = columns.joined(separator: ", ")
        for round in 0..<rounds {
            // Every value written is distinct: INSERTs, UPDATEs and saves take their own numbers.
            let step = seed * 10_000 + round
            let n = step * 4
            // INSERT with only this version's columns.
            let placeholders = columns.indices.map { "$\($0 + 1)" }.joined(separator: ", ")
            try await conn.query(
                "INSERT INTO media (\(list)) VALUES (\(placeholders))", columns.map { value($0, n) })
            // UPDATE of one column on some row.
            let id = Int64(1 + (step * 7919) % 150)
            try await conn.query(
                "UPDATE media SET \(columns[0]) = $1 WHERE id = $2", [value(columns[0], n + 1), id])
            // ORM save: read the row, yield to the other version, write every known column back.
            let other = Int64(1 + (step * 104_729 + seed) % 150)
            // Only a row whose known columns are all set: a version that read NULL (a row the
            // backfill has not reached, which a new version deployed after ready never sees)
            // would write NULL back, and rightly erase the other side too.
            let known = columns.map { "\($0) IS NOT NULL" }.joined(separator: " AND ")
            if let row = try await conn.query("SELECT \(list) FROM media WHERE id = $1 AND \(known)", [other]).first {
                await Task.yield()
                var values: [any PostgresParameter] = columns.map { row[$0] }
                if round % 2 == 0 { values[0] = value(columns[0], n + 2) }
                let sets = columns.indices.map { "\(columns[$0]) = $\($0 + 1)" }.joined(separator: ", ")
                try await conn.query(
                    "UPDATE media SET \(sets) WHERE id = $\(columns.count + 1)", values + [other])
            }
            statements += 3
        }
        return statements
    }
}

/// Runs the old and the new version at once, each on its own connection.
func writeConcurrently(
    _ database: TestDatabase, old: AppVersion, new: AppVersion, rounds: Int = 60
) async throws {
    let oldConn = try await database.connect()
    let newConn = try await database.connect()
    async let oldWrites = old.write(on: oldConn, rounds: rounds, seed: 1)
    async let newWrites = new.write(on: newConn, rounds: rounds, seed: 2)
    let a: Result<Int, any Error>
    let b: Result<Int, any Error>
    do { a = .success(try await oldWrites) } catch { a = .failure(error) }
    do { b = .success(try await newWrites) } catch { b = .failure(error) }
    await oldConn.close()
    await newConn.close()
    let (oldCount, newCount) = (try a.get(), try b.get())
    #expect(oldCount == rounds * 3 && newCount == rounds * 3)
}

/// A count shared with a closure that may run on another task.
final class Counter: Sendable {
    private let value = Mutex(0)
    func add() { value.withLock { $0 += 1 } }
    var count: Int { value.withLock { $0 } }
}
