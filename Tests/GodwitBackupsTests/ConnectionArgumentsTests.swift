import Foundation
import GodwitBackups
import GodwitPostgres
import GodwitTestSupport
import Testing

@Suite("Connection arguments for client programs")
struct ConnectionArgumentsTests {
    @Test(arguments: [
        "o'neil", #"back\slash"#, #"both\'mixed'\"#, "with space", "", "''", #"\\"#, "trailing\\", "naïve 🐦",
    ])
    func libpqReadsBackEveryValue(_ value: String) throws {
        let url = "host=db.example port=5433 user=app dbname=\(ClientProgram.conninfoQuoted(value))"
        let (conninfo, _) = try ClientProgram.connectionArguments(for: url)
        let options = try ConnectionString.options(conninfo)
        #expect(options["dbname"] == value, "conninfo: \(conninfo)")
        #expect(options["host"] == "db.example")
        #expect(options["port"] == "5433")
    }

    @Test func thePasswordTravelsOnlyInPGPASSWORD() throws {
        let secret = #"s3cr'et\pa ss"#
        let url =
            "postgres://app:\(secret.addingPercentEncoding(withAllowedCharacters: .alphanumerics)!)@db.example/o%27neil"
        let (conninfo, environment) = try ClientProgram.connectionArguments(for: url)
        #expect(!conninfo.contains("s3cr"))
        #expect(!conninfo.contains("password"))
        #expect(environment["PGPASSWORD"] == secret)
        #expect(try ConnectionString.options(conninfo)["dbname"] == "o'neil")
    }

    @Test(arguments: ["o'neil", #"back\slash"#])
    func aDatabaseWithAQuoteOrABackslashInItsNameIsBackedUpAndRestored(_ stem: String) async throws {
        let name = "\(stem) \(UInt32.random(in: 0...UInt32.max))"
        let dir = try TemporaryDirectory()
        defer { dir.delete() }
        try await withDatabase(named: name) { url in
            let conn = try await Connection.connect(url)
            try await BackupManager(directory: "/tmp").installSchema(on: conn)
            try await conn.execute("CREATE TABLE t (id int); INSERT INTO t SELECT generate_series(1, 100);")
            let manager = BackupManager(directory: dir.path)
            let backup = try await manager.create(databaseURL: url, reason: BackupReason.byHand, on: conn)
            #expect(backup.database == name)
            #expect(backup.entries >= 2)
            try await conn.execute("DELETE FROM t")
            await conn.close()
            try await manager.restore(file: backup.file, databaseURL: url)
            let fresh = try await Connection.connect(url)
            #expect(try await fresh.query("SELECT count(*) AS n FROM t").first?.int("n") == 100)
            await fresh.close()
        }
    }
}

/// Runs `body` with the URL of a fresh database called `name`, dropped afterwards.
func withDatabase(named name: String, _ body: (String) async throws -> Void) async throws {
    let server = try TestDatabase.serverURL
    let admin = try await Connection.connect(server)
    try await admin.execute("CREATE DATABASE \(quoteIdentifier(name)) TEMPLATE template0")
    let outcome: Result<Void, any Error>
    do {
        try await body(try TestDatabase.url(server, database: name))
        outcome = .success(())
    } catch {
        outcome = .failure(error)
    }
    try await admin.execute("DROP DATABASE IF EXISTS \(quoteIdentifier(name)) WITH (FORCE)")
    await admin.close()
    try outcome.get()
}
