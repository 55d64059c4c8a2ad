import GodwitChanges
import GodwitPostgres
import GodwitTestSupport
import Testing

/// How the finish job's verification walks the table: a table by its blocks (a TID range scan
/// a chunk, the cursor `block:N`), a partitioned table by its key (partitions' block numbers
/// overlap). Both count every row once and find the rows that disagree.
@Suite("The verification's pass", .serialized)
struct ChangeVerificationPassTests {
    static let rename = """
        -- godwit:change
        -- table: events
        -- add-column: caption text = title
        -- drop-column: title = caption
        -- batch-size: 40
        """

    /// Starts the rename on `events`, lets a worker take it to ready (or to a failed finish
    /// job), and returns the change's row.
    static func run(_ db: TestDatabase, _ conn: Connection, wrong: [Int] = []) async throws -> PostgresRow {
        let started = try await ChangeTests.manager().start(
            text: Self.rename, file: "changes/rename_events.sql", on: conn)
        if !wrong.isEmpty {
            // Rows the backfill fills, then set apart with the trigger off (as a bypassing writer would).
            try await ChangeTests.backfillEvents(conn)
            try await conn.execute("ALTER TABLE events DISABLE TRIGGER USER")
            try await conn.execute(
                "UPDATE events SET caption = 'wrong' WHERE id IN (\(wrong.map(String.init).joined(separator: ",")))")
            try await conn.execute("ALTER TABLE events ENABLE TRIGGER USER")
        }
        let worker = changeWorker(db.url)
        let done = try await eventually(timeout: .seconds(120)) {
            let finish = try await jobRow(started.finishJob, conn).string("state")
            return finish == "succeeded" || finish == "failed"
        }
        let output = await worker.stop()
        #expect(done, "\(output.stderr.suffix(3000))")
        return try #require(try await changeRecord(conn, "rename_events"))
    }

    @Test func aTableIsReadByItsBlocksAndEveryRowCountedOnce() async throws {
        try await withChangesDatabase { db, conn in
            try await conn.execute(
                """
                CREATE TABLE events (id bigint PRIMARY KEY, title text);
                INSERT INTO events SELECT g, 'title ' || g FROM generate_series(1, 3000) g;
                """)
            let record = try await Self.run(db, conn)
            #expect(try record.string("phase") == "ready")
            #expect(try record.int("verified_rows") == 3000)
            #expect(try record.string("verify_cursor").hasPrefix("block:"))
        }
    }

    @Test func aTablesDisagreeingRowsAreFoundByBlocks() async throws {
        try await withChangesDatabase { db, conn in
            try await conn.execute(
                """
                CREATE TABLE events (id bigint PRIMARY KEY, title text);
                INSERT INTO events SELECT g, 'title ' || g FROM generate_series(1, 3000) g;
                """)
            let record = try await Self.run(db, conn, wrong: [5, 1500, 2999])
            #expect(try record.string("phase") == "verifying")
            #expect(try record.int("disagreeing_rows") == 3)
            #expect(try record.int("verified_rows") == 3000)
            #expect(try record.string("error").contains("first keys: 5, 1500, 2999"))
        }
    }

    @Test func aPartitionedTableIsReadByItsKey() async throws {
        try await withChangesDatabase { db, conn in
            try await conn.execute(
                """
                CREATE TABLE events (id bigint PRIMARY KEY, title text) PARTITION BY RANGE (id);
                CREATE TABLE events_low PARTITION OF events FOR VALUES FROM (1) TO (1501);
                CREATE TABLE events_high PARTITION OF events FOR VALUES FROM (1501) TO (3001);
                INSERT INTO events SELECT g, 'title ' || g FROM generate_series(1, 3000) g;
                """)
            let record = try await Self.run(db, conn, wrong: [7, 2000])
            #expect(try record.int("disagreeing_rows") == 2)
            #expect(try record.int("verified_rows") == 3000)
            #expect(try record.string("error").contains("first keys: 7, 2000"))
        }
    }
}

extension ChangeTests {
    /// The backfill of `rename_events`, run as its batched job would, in one go.
    static func backfillEvents(_ conn: Connection) async throws {
        try await backfill("rename_events", on: conn, batch: 500, table: "events")
    }
}
