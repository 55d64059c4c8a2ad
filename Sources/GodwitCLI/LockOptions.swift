import ArgumentParser
import Foundation
import GodwitMigrations
import GodwitPostgres

/// `--lock-timeout` and `--lock-retries`, for every command that applies migrations.
struct LockOptions: ParsableArguments {
    @Option(
        help: ArgumentHelp(
            "Take every lock under this lock_timeout (2s, 500ms, 1m; 0 turns it off).",
            discussion:
                "On a timeout the migration rolls back, waits, and tries again: it never queues the application behind it."
        ),
        transform: DurationArgument.parse)
    var lockTimeout: Duration = .seconds(2)

    // Unconditional: otherwise `--lock-retries -1` reads -1 as a flag and reports a missing
    // value, where validate() says what is wrong with it.
    @Option(parsing: .unconditional, help: "How many times to try again after a lock timeout before giving up.")
    var lockRetries: Int = 30

    func validate() throws {
        guard lockRetries >= 0 else { throw ValidationError("--lock-retries must be 0 or more") }
    }

    var policy: LockTimeoutPolicy {
        LockTimeoutPolicy(lockTimeout: lockTimeout, retries: lockRetries)
    }
}

/// A duration as people write one: `2s`, `500ms`, `1.5s`, `2m`, `1h`; a bare number is seconds.
enum DurationArgument {
    static func parse(_ text: String) throws -> Duration {
        let trimmed = text.trimmingCharacters(in: .whitespaces).lowercased()
        let units: [(String, Double)] = [("ms", 0.001), ("s", 1), ("min", 60), ("m", 60), ("h", 3600)]
        var number = Substring(trimmed)
        var scale = 1.0
        for (suffix, factor) in units where trimmed.hasSuffix(suffix) {
            number = trimmed.dropLast(suffix.count)
            scale = factor
            break
        }
        guard let value = Double(number), value >= 0, value.isFinite else {
            throw ValidationError("'\(text)' is not a duration: write it like 2s, 500ms or 1m (0 turns it off)")
        }
        return .milliseconds(Int64((value * scale * 1000).rounded()))
    }
}
