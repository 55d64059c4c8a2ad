import Foundation
import GodwitPostgres

/// Runs PostgreSQL's client programs (`pg_dump`, `pg_restore`) without blocking Swift's
/// cooperative pool, and without putting a password on their command line (where `ps` would
/// show it): the password travels in `PGPASSWORD`.
public enum ClientProgram {
    public struct Output: Sendable {
        public var status: Int32
        public var stdout: String
        public var stderr: String

        /// The first line of stderr, for one-line error messages.
        public var firstErrorLine: String {
            stderr.split(separator: "\n").first.map(String.init) ?? "(no message)"
        }
    }

    /// A client program could not be started.
    public struct LaunchError: Error, CustomStringConvertible, Sendable {
        public var description: String
    }

    /// The tool's path: `GODWIT_PG_BIN`, then `pg_config --bindir` (the real binaries, not
    /// Debian's wrappers), then the PATH.
    public static func path(of tool: String) -> String {
        let environment = ProcessInfo.processInfo.environment
        var candidates: [String] = []
        if let dir = environment["GODWIT_PG_BIN"], !dir.isEmpty { candidates.append(dir) }
        if let dir = pgConfigBindir() { candidates.append(dir) }
        candidates += (environment["PATH"] ?? "/usr/bin").split(separator: ":").map(String.init)
        for dir in candidates {
            let candidate = (dir as NSString).appendingPathComponent(tool)
            if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
        }
        return tool
    }

    private static func pgConfigBindir() -> String? {
        for pgConfig in ["/usr/bin/pg_config", "/usr/local/bin/pg_config"]
        where FileManager.default.isExecutableFile(atPath: pgConfig) {
            let process = Process()
            process.executableURL = URL(fileURLWithPath: pgConfig)
            process.arguments = ["--bindir"]
            let pipe = Pipe()
            process.standardOutput = pipe
            process.standardError = FileHandle.nullDevice
            guard (try? process.run()) != nil else { continue }
            let data = pipe.fileHandleForReading.readDataToEndOfFile()
            process.waitUntilExit()
            let dir = String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
            if !dir.isEmpty { return dir }
        }
        return nil
    }

    /// libpq connection arguments for a tool: the conninfo without its password, and the
    /// environment that carries the password.
    public static func connectionArguments(for databaseURL: String) throws -> (conninfo: String, environment: [String: String]) {
        var options = try ConnectionString.options(databaseURL)
        var environment = ProcessInfo.processInfo.environment
        if let password = options.removeValue(forKey: "password") { environment["PGPASSWORD"] = password }
        let conninfo = options.sorted { $0.key < $1.key }
            .map { "\($0.key)=\(quoteLiteral($0.value).replacingOccurrences(of: "\\", with: "\\\\"))" }
            .joined(separator: " ")
        return (conninfo, environment)
    }

    public static func run(
        _ tool: String, _ arguments: [String], environment: [String: String]? = nil
    ) async throws -> Output {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: path(of: tool))
        process.arguments = arguments
        if let environment { process.environment = environment }
        let temporary = FileManager.default.temporaryDirectory
        let outURL = temporary.appendingPathComponent("godwit-\(tool)-\(UUID().uuidString).out")
        let errURL = temporary.appendingPathComponent("godwit-\(tool)-\(UUID().uuidString).err")
        _ = FileManager.default.createFile(atPath: outURL.path, contents: nil)
        _ = FileManager.default.createFile(atPath: errURL.path, contents: nil)
        defer {
            try? FileManager.default.removeItem(at: outURL)
            try? FileManager.default.removeItem(at: errURL)
        }
        process.standardOutput = try FileHandle(forWritingTo: outURL)
        process.standardError = try FileHandle(forWritingTo: errURL)
        process.standardInput = FileHandle.nullDevice
        do {
            try process.run()
        } catch {
            throw LaunchError(description: "cannot run \(tool) (\(path(of: tool))): \(error.localizedDescription)")
        }
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            DispatchQueue.global().async {
                process.waitUntilExit()
                continuation.resume()
            }
        }
        return Output(
            status: process.terminationStatus,
            stdout: (try? String(contentsOf: outURL, encoding: .utf8)) ?? "",
            stderr: (try? String(contentsOf: errURL, encoding: .utf8)) ?? "")
    }
}
