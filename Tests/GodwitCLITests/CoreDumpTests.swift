import Foundation
import GodwitTestSupport
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// A `godwit` process holds the database password: it must not dump core unless asked.
@Suite("godwit core dumps")
struct CoreDumpTests {
    /// Runs `body` with the id of a `godwit job list` connected to a server that accepts the
    /// connection and never answers: godwit is past its startup then, and waits.
    ///
    /// `command` runs under `/bin/sh -c`, with `"$@"` the godwit command line.
    func withConnectedGodwit<T>(
        allowingDumps: Bool, _ command: String, _ body: (Int32) throws -> T
    ) async throws -> T {
        let server = try LoopbackListener()
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/bin/sh")
        process.arguments = [
            "-c", command, "sh", GodwitProcess.executable, "job", "list",
            // Retrying for an hour: godwit gives up on one silent server after 10 s, and a test
            // starved of threads that long (the full suite runs commands in-process) would
            // otherwise find it gone. It reconnects, and is terminated below.
            "-D", "postgres://nobody@127.0.0.1:\(server.port)/db", "--connect-timeout", "3600",
        ]
        var environment = ProcessInfo.processInfo.environment
        environment["GODWIT_ALLOW_CORE_DUMPS"] = allowingDumps ? "1" : nil
        process.environment = environment
        process.standardOutput = FileHandle.nullDevice
        let errors = try TemporaryDirectory(prefix: "core-dump-stderr")
        defer { errors.delete() }
        let errorFile = try errors.write("stderr", "")
        process.standardError = try FileHandle(forWritingTo: URL(fileURLWithPath: errorFile))
        try process.run()
        defer {
            process.terminate()
            process.waitUntilExit()
        }
        let connected = await eventually { server.acceptIfWaiting() || !process.isRunning }
        try #require(
            connected && process.isRunning,
            "godwit never connected: \((try? String(contentsOfFile: errorFile, encoding: .utf8)) ?? "")")
        return try body(process.processIdentifier)
    }

    /// The soft and hard core size limits of a godwit started with the soft limit raised as
    /// far as it goes (so that a limit of 0 is godwit's own doing).
    func coreLimits(allowingDumps: Bool) async throws -> (soft: String, hard: String) {
        try await withConnectedGodwit(allowingDumps: allowingDumps, #"ulimit -S -c "$(ulimit -H -c)" && exec "$@""#) {
            let limits = try String(contentsOfFile: "/proc/\($0)/limits", encoding: .utf8)
            let line = try #require(limits.split(separator: "\n").first { $0.hasPrefix("Max core file size") })
            let fields = line.dropFirst("Max core file size".count).split(separator: " ")
            try #require(fields.count >= 2, "\(line)")
            return (String(fields[0]), String(fields[1]))
        }
    }

    @Test func godwitLimitsItsCoreFilesToNothing() async throws {
        let limits = try await coreLimits(allowingDumps: false)
        #expect(limits.soft == "0" && limits.hard == "0", "\(limits)")
    }

    /// The control: the limit the process starts with is not 0, so the test above sees
    /// godwit's doing, and `GODWIT_ALLOW_CORE_DUMPS=1` leaves it.
    @Test func godwitAllowCoreDumpsKeepsTheLimit() async throws {
        let limits = try await coreLimits(allowingDumps: true)
        #expect(limits.soft != "0", "the hard core size limit here is 0: nothing to observe")
        #expect(limits.soft == limits.hard, "\(limits)")
    }

    /// The kernel makes the `/proc/PID` files of a process that is not dumpable root's. Root
    /// owns every process's files alike, so as root godwit runs as `nobody` here.
    @Test(arguments: [false, true])
    func godwitIsNotDumpable(allowingDumps: Bool) async throws {
        let asRoot = getuid() == 0
        let user = asRoot ? uid_t(65534) : getuid()
        if asRoot { try #require(FileManager.default.isExecutableFile(atPath: "/usr/bin/setpriv")) }
        let command =
            asRoot ? #"exec /usr/bin/setpriv --reuid=65534 --regid=65534 --clear-groups "$@""# : #"exec "$@""#
        let owner = try await withConnectedGodwit(allowingDumps: allowingDumps, command) {
            try FileManager.default.attributesOfItem(atPath: "/proc/\($0)/environ")[.ownerAccountID] as? Int
        }
        #expect(owner == (allowingDumps ? Int(user) : 0))
    }
}
