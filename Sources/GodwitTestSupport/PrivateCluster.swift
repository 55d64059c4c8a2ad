import Foundation

/// A PostgreSQL cluster of a test's own, for tests that must stop or restart the server
/// without disturbing the tests that share the main one.
public final class PrivateCluster: Sendable {
    public let directory: String
    public let port: Int
    /// Where the server runs when it is not on this host's loopback.
    public let network: NetworkNamespace?

    /// `initdb` and `pg_ctl` run as the `postgres` OS user when we are root (initdb refuses root).
    /// With `network`, the server runs inside that namespace and listens on its address only.
    /// `settings` are added to `postgresql.conf` as written (`archive_mode = on`).
    public init(network: NetworkNamespace? = nil, settings: [String] = []) async throws {
        self.network = network
        directory =
            FileManager.default.temporaryDirectory.appendingPathComponent("godwit-cluster-\(UUID().uuidString)").path
        // Below the kernel's ephemeral range (32768 and up), where a client socket could take the
        // port while the server is down.
        port = Int.random(in: 20_000...32_000)
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        if getuid() == 0 {
            try await Self.shell(["chown", "postgres:", directory])
            try await Self.shell(["chmod", "755", directory])
        }
        try await asOwner([
            Self.bin("initdb"), "-D", "\(directory)/data", "-U", "postgres", "--auth=trust", "-E", "UTF8",
        ])
        let conf = """
            listen_addresses = '\(network?.serverAddress ?? "127.0.0.1")'
            port = \(port)
            unix_socket_directories = '\(directory)'
            fsync = off
            """ + settings.map { "\n" + $0 }.joined()
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: "\(directory)/data/postgresql.conf"))
        try handle.seekToEnd()
        try handle.write(contentsOf: Data(("\n" + conf + "\n").utf8))
        try handle.close()
        if let network {
            let hba = try FileHandle(forWritingTo: URL(fileURLWithPath: "\(directory)/data/pg_hba.conf"))
            try hba.seekToEnd()
            try hba.write(contentsOf: Data("\nhost all all \(network.clientAddress)/32 trust\n".utf8))
            try hba.close()
        }
        try await start()
    }

    /// The server's log file.
    public var serverLog: String { "\(directory)/server.log" }

    public var url: String { "postgres://postgres@\(network?.serverAddress ?? "127.0.0.1"):\(port)/postgres" }

    public func start() async throws {
        try await asOwner([
            Self.bin("pg_ctl"), "-D", "\(directory)/data", "-l", "\(directory)/server.log", "-w", "start",
        ])
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
        let owned = getuid() == 0 ? ["runuser", "-u", "postgres", "--"] + command : command
        try await Self.shell(network.map { ["ip", "netns", "exec", $0.name] + owned } ?? owned)
    }

    static func bin(_ tool: String) -> String {
        for dir in ["/usr/lib/postgresql/15/bin", "/usr/lib/postgresql/16/bin", "/usr/lib/postgresql/17/bin"] {
            let path = "\(dir)/\(tool)"
            if FileManager.default.isExecutableFile(atPath: path) { return path }
        }
        return tool
    }

    /// Runs a command to completion. posix_spawn and waitpid rather than Foundation's
    /// Process: `pg_ctl start` leaves a daemon behind, and Process then never notices the exit.
    ///
    /// The command gets no descriptor of this process but its standard ones (all others are
    /// closed in the child before it runs). A daemon it leaves behind would otherwise keep,
    /// for its whole life, what was open here at the moment: among them the socket by which
    /// Foundation's Process learns that a program started at the same moment has ended (its
    /// end of a socket pair, which it watches for the end of the stream). That program's end
    /// was then never seen: `waitUntilExit()` waited forever, and `ClientProgram`'s one look
    /// at `pg_config` with it, so every test that runs pg_dump or psql hung (once in ten runs).
    @discardableResult
    public static func shell(_ command: [String]) async throws -> Int32 {
        let status = await withCheckedContinuation { (continuation: CheckedContinuation<Int32, Never>) in
            DispatchQueue.global().async {
                var pid: pid_t = 0
                var actions = posix_spawn_file_actions_t()
                posix_spawn_file_actions_init(&actions)
                posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
                posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0)
                posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0)
                closeInheritedDescriptors(&actions)
                defer { posix_spawn_file_actions_destroy(&actions) }
                let argv = command.map { strdup($0) } + [nil]
                defer { for pointer in argv { free(pointer) } }
                guard posix_spawnp(&pid, command[0], &actions, nil, argv, environ) == 0 else {
                    continuation.resume(returning: -1)
                    return
                }
                var status: Int32 = 0
                while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
                continuation.resume(returning: (status >> 8) & 0xff)
            }
        }
        guard status == 0 else {
            throw TestSetupError(message: "\(command.joined(separator: " ")) exited with \(status)")
        }
        return status
    }
}

/// Adds to `actions` the closing of every descriptor from 3 up: glibc's
/// `posix_spawn_file_actions_addclosefrom_np` (2.34 on; Swift's Glibc module does not declare
/// it), else one close for each descriptor open now.
private func closeInheritedDescriptors(_ actions: inout posix_spawn_file_actions_t) {
    typealias AddCloseFrom = @convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>, Int32) -> Int32
    if let symbol = dlsym(nil, "posix_spawn_file_actions_addclosefrom_np") {
        _ = unsafeBitCast(symbol, to: AddCloseFrom.self)(&actions, 3)
        return
    }
    let listed = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd")) ?? []
    // The listing's own descriptor is closed by now: only those still open.
    for descriptor in listed.compactMap({ Int32($0) }) where descriptor >= 3 && fcntl(descriptor, F_GETFD) != -1 {
        posix_spawn_file_actions_addclose(&actions, descriptor)
    }
}
