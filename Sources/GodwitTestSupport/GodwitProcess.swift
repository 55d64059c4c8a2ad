import Foundation

/// Runs the real `godwit` executable, for tests that must see what a person sees: exit
/// status, stdout and stderr, and several processes racing each other.
public enum GodwitProcess {
    public struct Output: Sendable {
        public var status: Int32
        public var stdout: String
        public var stderr: String
        /// The process's id, for what it names after itself (a scratch database, say).
        public var pid: Int32
    }

    /// The built executable: `GODWIT_BIN`, or `godwit` beside the test bundle in `.build/<config>/`.
    public static var executable: String {
        if let path = ProcessInfo.processInfo.environment["GODWIT_BIN"], !path.isEmpty { return path }
        var directory = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
        // The test runner may live inside `GodwitPackageTests.xctest/...`.
        while directory.path != "/" {
            let candidate = directory.appendingPathComponent("godwit").path
            if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
            directory.deleteLastPathComponent()
        }
        return ".build/debug/godwit"
    }

    /// Starts `godwit` with `arguments`; the environment is this process's plus `environment`
    /// (a nil value removes a variable), and `PGPASSFILE` the test roles' password file unless
    /// `environment` says otherwise.
    public static func start(
        _ arguments: [String], environment: [String: String?] = [:], directory: String? = nil
    ) throws -> RunningProcess {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        var env = ProcessInfo.processInfo.environment
        env.removeValue(forKey: "DATABASE_URL")
        env["PGPASSFILE"] = TestPasswordFile.path
        for (key, value) in environment { env[key] = value }
        process.environment = env
        if let directory { process.currentDirectoryURL = URL(fileURLWithPath: directory) }
        let outURL = FileManager.default.temporaryDirectory.appendingPathComponent("godwit-out-\(UUID().uuidString)")
        let errURL = FileManager.default.temporaryDirectory.appendingPathComponent("godwit-err-\(UUID().uuidString)")
        _ = FileManager.default.createFile(atPath: outURL.path, contents: nil)
        _ = FileManager.default.createFile(atPath: errURL.path, contents: nil)
        process.standardOutput = try FileHandle(forWritingTo: outURL)
        process.standardError = try FileHandle(forWritingTo: errURL)
        process.standardInput = FileHandle.nullDevice
        let running = RunningProcess(process: process, stdoutURL: outURL, stderrURL: errURL)
        try process.run()
        return running
    }

    /// Runs `godwit` to completion.
    public static func run(
        _ arguments: [String], environment: [String: String?] = [:], directory: String? = nil
    ) async throws -> Output {
        try await start(arguments, environment: environment, directory: directory).wait()
    }
}

/// A started `godwit` process.
public final class RunningProcess: Sendable {
    private let process: Process
    private let stdoutURL: URL
    private let stderrURL: URL

    init(process: Process, stdoutURL: URL, stderrURL: URL) {
        self.process = process
        self.stdoutURL = stdoutURL
        self.stderrURL = stderrURL
    }

    public var pid: Int32 { process.processIdentifier }

    public func signal(_ signal: Int32) { kill(process.processIdentifier, signal) }

    /// Waits for the exit without blocking a thread of the cooperative pool.
    public func wait() async throws -> GodwitProcess.Output {
        let process = self.process
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            DispatchQueue.global().async {
                process.waitUntilExit()
                continuation.resume()
            }
        }
        defer {
            try? FileManager.default.removeItem(at: stdoutURL)
            try? FileManager.default.removeItem(at: stderrURL)
        }
        return GodwitProcess.Output(
            status: process.terminationStatus,
            stdout: (try? String(contentsOf: stdoutURL, encoding: .utf8)) ?? "",
            stderr: (try? String(contentsOf: stderrURL, encoding: .utf8)) ?? "",
            pid: process.processIdentifier)
    }

    /// What the process has written to stdout so far.
    public var currentStdout: String { (try? String(contentsOf: stdoutURL, encoding: .utf8)) ?? "" }

    /// What the process has written to stderr so far.
    public var currentStderr: String { (try? String(contentsOf: stderrURL, encoding: .utf8)) ?? "" }

    public var isRunning: Bool { process.isRunning }
}

/// A directory under the system's temporary folder, for migration files and the like.
public struct TemporaryDirectory: Sendable {
    public let path: String

    public init(prefix: String = "godwit") throws {
        path =
            FileManager.default.temporaryDirectory
            .appendingPathComponent("\(prefix)-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }

    /// Writes `contents` (UTF-8) to `name` inside the directory and returns its path.
    @discardableResult
    public func write(_ name: String, _ contents: String) throws -> String {
        try write(name, bytes: Array(contents.utf8))
    }

    @discardableResult
    public func write(_ name: String, bytes: [UInt8]) throws -> String {
        let file = (path as NSString).appendingPathComponent(name)
        let parent = (file as NSString).deletingLastPathComponent
        try FileManager.default.createDirectory(atPath: parent, withIntermediateDirectories: true)
        guard FileManager.default.createFile(atPath: file, contents: Data(bytes)) else {
            throw TestSetupError(message: "cannot write \(file)")
        }
        return file
    }

    /// Writes an executable shell script `name` (`#!/bin/sh` and `script`), as a stand-in for
    /// pg_dump, pg_restore or psql under `GODWIT_PG_BIN`, where godwit looks for them first.
    @discardableResult
    public func writeProgram(_ name: String, _ script: String) throws -> String {
        let file = try write(name, "#!/bin/sh\n" + script)
        try FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: file)
        return file
    }

    public func remove(_ name: String) throws {
        try FileManager.default.removeItem(atPath: (path as NSString).appendingPathComponent(name))
    }

    public func delete() {
        try? FileManager.default.removeItem(atPath: path)
    }
}
