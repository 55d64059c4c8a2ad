import Foundation
import Synchronization

/// A password file (`.pgpass` format) for this test process, holding a line for every role
/// `withRoles` makes: a `godwit` process started by a test gets it as `PGPASSFILE`, so a worker
/// logs in as a job's enqueuer the default way (its own URL with the user replaced, the password
/// from the file), as an operator's `.pgpass` would let it.
public enum TestPasswordFile {
    private static let lock = Mutex(false)

    /// The file's path; made (empty, mode 600) on first use.
    public static let path: String = {
        let path = FileManager.default.temporaryDirectory
            .appendingPathComponent("godwit-test-pgpass-\(ProcessInfo.processInfo.processIdentifier)").path
        _ = FileManager.default.createFile(atPath: path, contents: nil, attributes: [.posixPermissions: 0o600])
        return path
    }()

    /// Adds a line for `role` with `password`, for any host, port and database.
    public static func add(role: String, password: String) {
        func escaped(_ text: String) -> String {
            text.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: ":", with: "\\:")
        }
        lock.withLock { _ in
            guard let handle = FileHandle(forWritingAtPath: path) else { return }
            handle.seekToEndOfFile()
            handle.write(Data("*:*:*:\(escaped(role)):\(escaped(password))\n".utf8))
            try? handle.close()
        }
    }
}
