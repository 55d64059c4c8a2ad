import Foundation

/// A PostgreSQL cluster of a test's own, for tests that must stop or restart the server
/// without disturbing the tests that share the main one.
public final class PrivateCluster: Sendable {
    public let directory: String
    public let port: Int

    /// `initdb` and `pg_ctl` run as the `postgres` OS user when we are root (initdb refuses root).
    public init() async throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("godwit-cluster-\(UUID().uuidString)").path
        port = Int.random(in: 20_000...60_000)
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        if getuid() == 0 {
            try await Self.shell(["chown", "postgres:", directory])
            try await Self.shell(["chmod", "755", directory])
        }
        try await asOwner([Self.bin("initdb"), "-D", "\(directory)/data", "-U", "postgres", "--auth=trust", "-E", "UTF8"])
        let conf = """
            listen_addresses = '127.0.0.1'
            port = \(port)
            unix_socket_directories = '\(directory)'
            fsync = off
            """
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: "\(directory)/data/postgresql.conf"))
        try handle.seekToEnd()
        try handle.write(contentsOf: Data(("\n" + conf + "\n").utf8))
        try handle.close()
        try await start()
    }

    public var url: String { "postgres://postgres@127.0.0.1:\(port)/postgres" }

    public func start() async throws {
        try await asOwner([Self.bin("pg_ctl"), "-D", "\(directory)/data", "-l", "\(directory)/server.log", "-w", "start"])
    }

    public func stop(mode: String = "fast") async throws {
        try await asOwner([Self.bin("pg_ctl"), "-D", "\(directory)/data", "-m", mode, "-w", "stop"])
    }

    /// Stops the server, removes its files.
    public func destroy() async {
        try? await stop(mode: "immediate")
        try? FileManager.default.removeItem(atPath: directory)
    }

    private func asOwner(_ command: [String]) async throws {
        try await Self.shell(getuid() == 0 ? ["runuser", "-u", "postgres", "--"] + command : command)
    }

    static func bin(_ tool: String) -> String {
        for dir in ["/usr/lib/postgresql/15/bin", "/usr/lib/postgresql/16/bin", "/usr/lib/postgresql/17/bin"] {
            let path = "\(dir)/\(tool)"
            if FileManager.default.isExecutableFile(atPath: path) { return path }
        }
        return tool
    }

    @discardableResult
    static func shell(_ command: [String]) async throws -> Int32 {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = command
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            DispatchQueue.global().async {
                process.waitUntilExit()
                continuation.resume()
            }
        }
        guard process.terminationStatus == 0 else {
            throw TestSetupError(message: "\(command.joined(separator: " ")) exited with \(process.terminationStatus)")
        }
        return process.terminationStatus
    }
}
