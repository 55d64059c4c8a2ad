import GodwitFleet
import Testing

/// Targets files: what a line may hold, and every line that cannot be a target refused with its
/// line before anything runs.
@Suite("Fleet targets")
struct FleetTargetsTests {
    @Test func readsURLsQuotedStringsSchemasAndComments() throws {
        let text = """
            # tenants on two servers
            alpha postgres://app@db1:5432/alpha
            beta  "host=db2 port=5433 dbname=beta user='app x'"   # a key=value string
            gamma 'host=db2 dbname=shared' schema=tenant_gamma

            delta postgres://app@db1/shared schema=t_delta
            """
        let fleet = try FleetTargets.parse(text, file: "targets.txt")
        #expect(fleet.origin == "targets.txt")
        #expect(fleet.targets.map(\.name) == ["alpha", "beta", "gamma", "delta"])
        #expect(fleet.targets.map(\.line) == [2, 3, 4, 6])
        #expect(fleet.targets[1].connection == "host=db2 port=5433 dbname=beta user='app x'")
        #expect(fleet.targets.map(\.schema) == [nil, nil, "tenant_gamma", "t_delta"])
        #expect(fleet.targets[2].ledgerTable == "tenant_gamma._sqlx_migrations")
        #expect(fleet.targets[0].ledgerTable == "_sqlx_migrations")
    }

    @Test func escapesInsideQuotes() throws {
        let fleet = try FleetTargets.parse(#"a "host=h password='p\"q\\\\c' dbname=d""#, file: "t")
        #expect(fleet.targets[0].connection == #"host=h password='p"q\\c' dbname=d"#)
    }

    @Test(arguments: [
        ("a postgres://h/a\nb postgres://h/b\na postgres://h/c", 3, "duplicate target name a (first on line 1)"),
        ("a\n", 1, "target a has no connection string"),
        ("a mysql://h/a", 1, "not a PostgreSQL connection string"),
        ("a postgres://h/a schema=Tenant", 1, "schema Tenant is not an identifier"),
        ("a postgres://h/a schema=1x", 1, "schema 1x is not an identifier"),
        ("a postgres://h/a schema=pg_x", 1, "schema pg_x is not an identifier"),
        ("a postgres://h/a schema=\"x y\"", 1, "is not an identifier"),
        ("a postgres://h/a schema=x schema=y", 1, "schema= given twice"),
        ("a host=h dbname=d", 1, "quote a key=value connection string"),
        ("a postgres://h/a extra", 1, "unexpected extra"),
        ("-a postgres://h/a", 1, "-a is not a target name"),
        ("\n\na \"host=h", 3, "a quoted connection string is not closed"),
        ("a \"junk=1\"", 1, "target a: invalid connection string"),
    ])
    func refusesABadLineNamingIt(text: String, line: Int, message: String) {
        do {
            _ = try FleetTargets.parse(text, file: "fleet.txt")
            Issue.record("accepted \(text)")
        } catch let error as FleetError {
            #expect(error.code == .badTargets)
            #expect(error.line == line)
            #expect(error.description.hasPrefix("fleet.txt:\(line): "), "\(error)")
            #expect(error.description.contains(message), "\(error)")
            #expect(!error.description.contains("\n"))
        } catch {
            Issue.record("unexpected \(error)")
        }
    }

    @Test(arguments: ["", "# only a comment\n\n   \n"])
    func refusesAnEmptyFleet(text: String) {
        #expect(throws: FleetError.self) { try FleetTargets.parse(text, file: "f") }
        do { _ = try FleetTargets.parse(text, file: "f") } catch {
            #expect("\(error)" == "f: no targets: the fleet is empty")
        }
    }

    @Test func anErrorNeverRepeatsAPassword() {
        do {
            _ = try FleetTargets.parse("a \"junk=1 password=s3cret-pw\"", file: "f")
            Issue.record("accepted")
        } catch {
            #expect(!"\(error)".contains("s3cret-pw"), "\(error)")
        }
        let target = FleetTarget(name: "a", connection: "postgres://u:s3cret-pw@h/d")
        #expect(!target.redactedConnection.contains("s3cret-pw"))
    }

    @Test func rowsOfAQueryAreCheckedLikeLines() throws {
        let fleet = try FleetTargets.fromRows([("a", "postgres://h/a", nil), ("b", "postgres://h/a", "tenant_b")])
        #expect(fleet.targets.map(\.schema) == [nil, "tenant_b"])
        #expect(throws: FleetError.self) { try FleetTargets.fromRows([("a", nil, nil)]) }
        #expect(throws: FleetError.self) { try FleetTargets.fromRows([("a", "postgres://h/a", "Bad")]) }
        #expect(throws: FleetError.self) {
            try FleetTargets.fromRows([("a", "postgres://h/a", nil), ("a", "postgres://h/b", nil)])
        }
        #expect(throws: FleetError.self) { try FleetTargets.fromRows([]) }
    }

    @Test func targetsInOneDatabaseShareTheirKey() {
        let a = FleetTarget(name: "a", connection: "postgres://u@db1:5433/shared", schema: "t_a")
        let b = FleetTarget(name: "b", connection: "host=db1 port=5433 dbname=shared user=u", schema: "t_b")
        let c = FleetTarget(name: "c", connection: "postgres://u@db1:5433/other")
        #expect(a.databaseKey == b.databaseKey)
        #expect(a.databaseKey != c.databaseKey)
    }
}
