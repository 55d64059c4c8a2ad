import GodwitPostgres
import Testing

@testable import GodwitQueue

@Suite("Backoff")
struct BackoffTests {
    @Test func growsExponentiallyWithJitterAndACap() {
        let backoff = Backoff(base: .seconds(1), max: .seconds(60))
        #expect(backoff.delay(afterAttempt: 1, random: 1) == .seconds(1))
        #expect(backoff.delay(afterAttempt: 1, random: 0) == .milliseconds(500))
        #expect(backoff.delay(afterAttempt: 4, random: 1) == .seconds(8))
        #expect(backoff.delay(afterAttempt: 30, random: 1) == .seconds(60))
        #expect(backoff.delay(afterAttempt: 1000, random: 0.5) == .seconds(45))
    }

    @Test(arguments: [
        ("40001", true), ("40P01", true), ("55P03", true), ("57014", true), ("57P01", true),
        ("42601", false), ("42P01", false), ("42703", false), ("42501", false), ("23505", false),
    ])
    func classifiesServerErrors(sqlState: String, transient: Bool) {
        #expect(
            PostgresError(code: .server, message: "x", sqlState: SQLState(rawValue: sqlState)).isTransient == transient)
    }
}
