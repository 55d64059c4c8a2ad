import Foundation
import GodwitPostgres
import GodwitTestSupport
import Testing

@Suite("Connection strings at a server")
struct ConnectionStringServerTests {
    /// `Connection.connect` on the same strings. Scrubbing only the password libpq parses would
    /// let libpq's parse errors and the pieces of a password libpq splits off (as a host or
    /// port) through; `Connection.connect` validates the string first and scrubs every message
    /// with all of its secrets.
    @Test func connectErrorsNeverLeakOnceValidatedAndScrubbed() async throws {
        let cases = SecretFuzzCase.generate(count: 120, seed: 0xC0_4EC7, host: try TestDatabase.serverAddress)
        let errors = try await withThrowingTaskGroup(of: (SecretFuzzCase, String?, String).self) { group in
            var results: [(SecretFuzzCase, String?, String)] = []
            var pending = cases[...]
            func next() {
                guard let fuzz = pending.popFirst() else { return }
                group.addTask {
                    var validation: String?
                    do { try ConnectionString.validate(fuzz.conninfo) } catch { validation = "\(error)" }
                    do {
                        let connection = try await Connection.connect(fuzz.conninfo)
                        await connection.close()
                        return (fuzz, validation, "")
                    } catch {
                        return (fuzz, validation, "\(error)")
                    }
                }
            }
            for _ in 0..<8 { next() }
            while let result = try await group.next() {
                results.append(result)
                next()
            }
            return results
        }
        var rawLeaks: [String] = []
        for (fuzz, validation, raw) in errors {
            #expect(!raw.isEmpty, "\(fuzz) connected")
            if let validation {
                #expect(fuzz.leak(in: validation) == nil, "validate: \(fuzz) -> \(validation)")
            }
            let scrubbed = ConnectionString.scrub(raw, conninfo: fuzz.conninfo)
            #expect(fuzz.leak(in: scrubbed) == nil, "scrubbed connect error: \(fuzz) -> \(scrubbed)")
            if fuzz.leak(in: raw) != nil { rawLeaks.append("\(fuzz) -> \(raw)") }
        }
        #expect(rawLeaks.count == 0, "for example \(rawLeaks.prefix(3))")
    }
}
