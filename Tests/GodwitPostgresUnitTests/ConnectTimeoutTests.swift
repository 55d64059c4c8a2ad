import GodwitPostgres
import Testing

/// `connect_timeout` and `PGCONNECT_TIMEOUT` as libpq reads them, which Godwit must do itself
/// since libpq applies neither to a connect that does not block.
@Suite("Connect timeouts from the connection string")
struct ConnectTimeoutTests {
    @Test(arguments: [
        ("10", Duration?.some(.seconds(10))), (" 7 ", .seconds(7)), ("+3", .seconds(3)),
        // libpq's least is 2 s; zero or less waits as long as it takes.
        ("1", .seconds(2)), ("0", nil), ("-5", nil),
    ])
    func valuesAsLibpqReadsThem(value: String, bound: Duration?) throws {
        #expect(try SessionOptions.connectTimeout(libpq: value, from: "PGCONNECT_TIMEOUT") == bound)
    }

    @Test(arguments: ["abc", "10s", "2.5", "", "++3", "99999999999"])
    func whatLibpqRefusesIsRefusedInOneLine(value: String) {
        #expect {
            try SessionOptions.connectTimeout(libpq: value, from: "connection option \"connect_timeout\"")
        } throws: { error in
            (error as? PostgresError)?.message
                == "invalid integer value \"\(value)\" for connection option \"connect_timeout\""
        }
    }

    @Test func theConnectionStringWinsOverTheSessionOptions() throws {
        var options = SessionOptions()
        options.connectTimeout = .seconds(3600)
        #expect(try options.connectBound(conninfo: "postgres://h/db?connect_timeout=3") == .seconds(3))
        #expect(try options.connectBound(conninfo: "host=h dbname=db connect_timeout=0") == nil)
        #expect(try options.connectBound(conninfo: "postgres://h/db") == .seconds(3600))
        #expect(try options.connectBound(conninfo: "host=h connect_timeout=''") == .seconds(3600))
        #expect(throws: PostgresError.self) { try options.connectBound(conninfo: "postgres://h/db?connect_timeout=x") }
    }
}
