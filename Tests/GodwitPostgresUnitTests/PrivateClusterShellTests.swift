import Foundation
import GodwitTestSupport
import Testing

/// The tests' own way of running `initdb`, `pg_ctl` and `ip`: what it starts must not keep
/// this process's descriptors, or a daemon left behind (a cluster's server) holds them for
/// its life, Foundation's watch on a program's end among them.
@Suite("Commands of the private clusters")
struct PrivateClusterShellTests {
    @Test func aDaemonLeftBehindKeepsNoDescriptorOfTheTests() async throws {
        // A pipe without close-on-exec: a child keeps both ends unless they are closed for it.
        var ends: [Int32] = [0, 0]
        try #require(pipe(&ends) == 0)
        defer {
            close(ends[0])
            close(ends[1])
        }
        let directory = try TemporaryDirectory()
        defer { directory.delete() }
        let pidFile = directory.path + "/pid"
        try await PrivateCluster.shell(["sh", "-c", "sleep 120 </dev/null >/dev/null 2>&1 & echo $! > \(pidFile)"])
        let text = try String(contentsOfFile: pidFile, encoding: .utf8)
        let pid = try #require(pid_t(text.trimmingCharacters(in: .whitespacesAndNewlines)))
        defer { kill(pid, SIGKILL) }
        let held = try FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/fd").sorted()
        #expect(held == ["0", "1", "2"], "the daemon holds descriptors of the tests: \(held)")
    }
}
