import Foundation
import Testing

/// Every public error type of the libraries conforms to `GodwitError` (a code, and one line for a
/// person), so that the CLI catches them once (issue 21). Read from the declarations in `Sources/`.
@Suite("Error types")
struct ErrorTypeTests {
    /// Public errors that are not for a person to read: control flow between the queue and a
    /// job, and a report of many lines that its command prints itself.
    static let exempt: Set<String> = ["JobInterruption", "Failure"]

    @Test func everyPublicErrorIsAGodwitError() throws {
        let sources = ModuleGraphTests.root.appendingPathComponent("Sources")
        let files = try #require(FileManager.default.enumerator(atPath: sources.path))
        var checked = 0
        for case let file as String in files where file.hasSuffix(".swift") && !file.hasPrefix("GodwitTestSupport/") {
            let text = try String(contentsOf: sources.appendingPathComponent(file), encoding: .utf8)
            for line in text.split(separator: "\n") {
                guard
                    let match = line.firstMatch(
                        of: /^\s*public\s+(?:final\s+)?(?:struct|enum|class)\s+(\w+)\s*:\s*([^{]*)/)
                else { continue }
                let name = String(match.1)
                let conformances = match.2.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
                guard conformances.contains(where: { $0 == "Error" || $0.hasSuffix("Error") }) else { continue }
                checked += 1
                guard !Self.exempt.contains(name) else { continue }
                #expect(
                    conformances.contains("GodwitError"),
                    "Sources/\(file): \(name) is a public error but not a GodwitError")
            }
        }
        #expect(checked >= 10, "found \(checked) public error types")
    }
}
