import Foundation
import GodwitPostgres
import GodwitQueue
import GodwitTestSupport
import Testing

/// A batched job's statement must write the table of its `-- table:` line, and only it; the
/// check plans the statement and never runs it.
@Suite("The table a batched statement writes", .serialized)
struct WriteTargetTests {
    static let schema = """
        CREATE TABLE items (id bigint PRIMARY KEY, counter int NOT NULL DEFAULT 0);
        CREATE TABLE others (id bigint PRIMARY KEY, counter int NOT NULL DEFAULT 0);
        INSERT INTO items (id) SELECT g FROM generate_series(1, 100) g;
        INSERT INTO others (id) SELECT g FROM generate_series(1, 100) g;
        CREATE VIEW items_view AS SELECT id, counter FROM items;
        CREATE VIEW others_view AS SELECT id, counter FROM others;
        CREATE TABLE calls (at timestamptz DEFAULT now());
        CREATE FUNCTION bump(n int) RETURNS int LANGUAGE plpgsql AS $$
            BEGIN INSERT INTO calls DEFAULT VALUES; RETURN n + 1; END $$;
        CREATE FUNCTION touch(a bigint, b bigint) RETURNS void LANGUAGE plpgsql AS $$
            BEGIN UPDATE items SET counter = counter + 1 WHERE id BETWEEN a AND b; END $$;
        """

    func file(_ dir: TemporaryDirectory, _ statement: String) throws -> String {
        try dir.write("jobs/job.sql", "-- godwit:batched\n-- table: items\n-- key: id\n\n" + statement)
    }

    @Test(arguments: [
        "UPDATE items SET counter = bump(counter) WHERE id BETWEEN $1 AND $2",
        "UPDATE items_view SET counter = bump(counter) WHERE id BETWEEN $1 AND $2",
        "WITH b AS (SELECT id FROM items WHERE id BETWEEN $1 AND $2) UPDATE items i SET counter = bump(i.counter) FROM b WHERE i.id = b.id",
        "UPDATE items i SET counter = o.counter FROM others o WHERE o.id = i.id AND i.id BETWEEN $1 AND $2",
        "DELETE FROM items WHERE id BETWEEN $1 AND $2 AND counter < bump(0)",
    ])
    func aStatementThatWritesItsTableIsAcceptedUnrun(statement: String) async throws {
        let dir = try TemporaryDirectory()
        defer { dir.delete() }
        try await withQueue { db, conn, _ in
            try await conn.execute(Self.schema)
            let output = try await GodwitCommand.run(["job", "enqueue", try file(dir, statement), "-D", db.url])
            #expect(output.status == 0, "\(output.stderr)")
            #expect(output.stderr == "", "\(output.stderr)")
            #expect(try await conn.query("SELECT count(*) AS n FROM godwit.jobs").first?.int("n") == 1)
            // Planned, never run.
            #expect(try await conn.query("SELECT count(*) AS n FROM calls").first?.int("n") == 0)
            #expect(try await conn.query("SELECT sum(counter) AS s FROM items").first?.int("s") == 0)
        }
    }

    /// Writing another table besides its own (keys of the changed rows into an audit table, as
    /// `migrate lint --write-jobs` keeps a writable CTE) is accepted, with a warning naming it.
    @Test func aStatementThatAlsoWritesAnotherTableIsAcceptedWithAWarning() async throws {
        let dir = try TemporaryDirectory()
        defer { dir.delete() }
        try await withQueue { db, conn, _ in
            try await conn.execute(Self.schema)
            let path = try file(
                dir,
                "WITH o AS (UPDATE items SET counter = bump(counter) WHERE id BETWEEN $1 AND $2 RETURNING id) "
                    + "UPDATE others SET counter = 1 WHERE id IN (SELECT id FROM o)")
            let output = try await GodwitCommand.run(["job", "enqueue", path, "-D", db.url])
            #expect(output.status == 0, "\(output.stderr)")
            #expect(
                output.stderr.hasPrefix(
                    "warning: \(path):5: the statement writes public.others as well as its table public.items"),
                "\(output.stderr)")
            #expect(output.stderr.split(separator: "\n").count == 1, "\(output.stderr)")
            #expect(try await conn.query("SELECT count(*) AS n FROM godwit.jobs").first?.int("n") == 1)
            #expect(try await conn.query("SELECT count(*) AS n FROM calls").first?.int("n") == 0)
        }
    }

    @Test(arguments: [
        (
            "UPDATE others SET counter = bump(counter) WHERE id BETWEEN $1 AND $2",
            "the statement writes public.others, not its table public.items (`-- table: items`)"
        ),
        (
            "UPDATE others_view SET counter = bump(counter) WHERE id BETWEEN $1 AND $2",
            "the statement writes public.others, not its table public.items"
        ),
        ("SELECT touch($1, $2)", "the statement writes no table that its plan shows"),
    ])
    func aStatementThatWritesAnotherTableIsRefused(statement: String, says: String) async throws {
        let dir = try TemporaryDirectory()
        defer { dir.delete() }
        try await withQueue { db, conn, _ in
            try await conn.execute(Self.schema)
            let path = try file(dir, statement)
            let output = try await GodwitCommand.run(["job", "enqueue", path, "-D", db.url])
            #expect(output.status == 1)
            #expect(output.stderr.hasPrefix("error: \(path):5: "), "\(output.stderr)")
            #expect(output.stderr.contains(says), "\(output.stderr)")
            #expect(output.stderr.split(separator: "\n").count == 1, "\(output.stderr)")
            #expect(try await conn.query("SELECT count(*) AS n FROM godwit.jobs").first?.int("n") == 0)
            #expect(try await conn.query("SELECT count(*) AS n FROM calls").first?.int("n") == 0)
            #expect(try await conn.query("SELECT sum(counter) AS s FROM others").first?.int("s") == 0)
        }
    }
}
