import GodwitJobs
import GodwitQueue
import Testing

@Suite("Batched job files and the batch-size controller")
struct BatchedJobDefinitionTests {
    @Test func parsesEveryDirective() throws {
        let text = """
            -- godwit:batched
            -- name: fill titles
            -- table: public.media
            -- key: id
            -- batch-size: 500
            -- target-batch-ms: 100
            -- pause-ms: 20
            -- min-batch-size: 50
            -- max-batch-size: 5000
            -- lock-timeout: 1500ms
            -- statement-timeout: 1min
            -- max-attempts: 7
            -- priority: 3
            -- a plain comment is fine too

            UPDATE media SET title = filename
            WHERE id BETWEEN $1 AND $2;
            """
        let definition = try BatchedJobDefinition.parse(text, file: "jobs/fill.sql")
        #expect(definition.name == "fill titles")
        #expect(definition.table == "public.media")
        #expect(definition.key == "id")
        #expect(definition.statement == "UPDATE media SET title = filename\nWHERE id BETWEEN $1 AND $2")
        #expect(definition.statementLine == 16)
        #expect(definition.batchSize == 500)
        #expect(definition.targetBatchMs == 100)
        #expect(definition.pauseMs == 20)
        #expect(definition.minBatchSize == 50)
        #expect(definition.maxBatchSize == 5000)
        #expect(definition.lockTimeoutMs == 1500)
        #expect(definition.statementTimeoutMs == 60_000)
        #expect(definition.maxAttempts == 7)
        #expect(definition.priority == 3)
    }

    @Test func defaultsAndNameFromTheFile() throws {
        let definition = try BatchedJobDefinition.parse(
            "-- godwit:batched\r\n-- table: t\r\n-- key: k\r\nUPDATE t SET a = 1 WHERE k BETWEEN $1 AND $2;\r\n",
            file: "jobs/backfill_things.sql")
        #expect(definition.name == "backfill_things")
        #expect(definition.batchSize == 1000)
        #expect(definition.targetBatchMs == 200)
        #expect(definition.lockTimeoutMs == 2000)
        #expect(definition.statementLine == 4)
    }

    @Test(arguments: [
        ("-- table: t\n-- key: k\nUPDATE t SET a = 1 WHERE k BETWEEN $1 AND $2", "x.sql:1: a batched job starts with"),
        (
            "-- godwit:batched\n-- key: k\nUPDATE t SET a = 1 WHERE k BETWEEN $1 AND $2",
            "x.sql:1: missing directive `-- table: NAME`"
        ),
        (
            "-- godwit:batched\n-- table: t\nUPDATE t SET a = 1 WHERE k BETWEEN $1 AND $2",
            "x.sql:1: missing directive `-- key: COLUMN`"
        ),
        (
            "-- godwit:batched\n-- table: t\n-- key: k\n-- batch-sise: 5\nUPDATE t SET a = 1 WHERE k BETWEEN $1 AND $2",
            "x.sql:4: unknown directive `batch-sise`"
        ),
        (
            "-- godwit:batched\n-- table: t\n-- key: k\n-- batch-size: many\nUPDATE t SET a = 1 WHERE k BETWEEN $1 AND $2",
            "x.sql:4: `batch-size` must be a whole number, not `many`"
        ),
        (
            "-- godwit:batched\n-- table: t\n-- key: k\n-- lock-timeout: soon\nUPDATE t SET a = 1 WHERE k BETWEEN $1 AND $2",
            "x.sql:4: `lock-timeout` must be a duration"
        ),
        (
            "-- godwit:batched\n-- table: t\n-- key: a, b\nUPDATE t SET a = 1 WHERE k BETWEEN $1 AND $2",
            "x.sql:3: composite keys are not supported"
        ),
        (
            "-- godwit:batched\n-- table: t\n-- key: k\n\nUPDATE t SET a = 1 WHERE k >= $1",
            "x.sql:5: the statement must use $2"
        ),
        ("-- godwit:batched\n-- table: t\n-- key: k\n", "x.sql:4: the file has no statement"),
        (
            "-- godwit:batched\n-- table: t\n-- table: u\n-- key: k\nSELECT $1, $2",
            "x.sql:3: directive `table` given twice"
        ),
    ])
    func badDefinitionsNameTheLine(text: String, expected: String) {
        let error = #expect(throws: BatchedJobError.self) {
            try BatchedJobDefinition.parse(text, file: "x.sql")
        }
        #expect(error?.description.hasPrefix(expected) == true, "\(error?.description ?? "")")
    }

    @Test func sampleJobsParse() throws {
        for file in ["jobs/backfill_media_title.sql", "jobs/backfill_media_dimensions.sql"] {
            let text = try String(contentsOfFile: file, encoding: .utf8)
            let definition = try BatchedJobDefinition.parse(text, file: file)
            #expect(definition.table == "media")
        }
    }

    // MARK: Batch size

    @Test func growsByAtMostTwentyPercentABatch() {
        var controller = BatchSizeController(initial: 1000, target: .milliseconds(200), minimum: 10, maximum: 100_000)
        controller.record(rows: 1000, duration: .milliseconds(10))  // 20x too fast
        #expect(controller.size == 1200)
        controller.record(rows: 1200, duration: .milliseconds(12))
        #expect(controller.size == 1440)
    }

    @Test func shrinksInProportionAtOnce() {
        var controller = BatchSizeController(initial: 1000, target: .milliseconds(200), minimum: 10, maximum: 100_000)
        controller.record(rows: 1000, duration: .milliseconds(800))  // 4x too slow
        #expect(controller.size == 250)
    }

    @Test func smoothsOneOutlier() {
        var controller = BatchSizeController(initial: 1000, target: .milliseconds(100), minimum: 10, maximum: 100_000)
        for _ in 0..<10 { controller.record(rows: controller.size, duration: .milliseconds(100)) }
        #expect(controller.size == 1000)
        // One batch ten times slower moves the size far less than tenfold.
        controller.record(rows: 1000, duration: .milliseconds(1000))
        #expect(controller.size > 250 && controller.size < 1000)
    }

    @Test func staysWithinBoundsAndHalvesAfterATimeout() {
        var controller = BatchSizeController(initial: 100, target: .milliseconds(100), minimum: 50, maximum: 110)
        controller.record(rows: 100, duration: .milliseconds(1))
        #expect(controller.size == 110)
        controller.record(rows: 110, duration: .seconds(100))
        #expect(controller.size == 50)
        controller.shrinkAfterTimeout()
        #expect(controller.size == 50)
        var other = BatchSizeController(initial: 1000, target: .milliseconds(100), minimum: 1, maximum: 10_000)
        other.shrinkAfterTimeout()
        #expect(other.size == 500)
    }
}
