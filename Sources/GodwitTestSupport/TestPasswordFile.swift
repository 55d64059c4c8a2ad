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

    /// `url` with libpq's `passfile` setting naming `file` (this file by default), for a worker
    /// run in this process (`GodwitCommand`), whose libpq reads the test process's environment
    /// and not a `PGPASSFILE` of its own. A worker's sessions as a job's enqueuer keep its
    /// connection string's settings but the user and password, so it finds the enqueuer's
    /// password in `file` as a process given `PGPASSFILE=file` would.
    public static func url(_ url: String, file: String = path) throws -> String {
        guard var components = URLComponents(string: url) else {
            throw TestSetupError(message: "a worker's URL does not parse")
        }
        components.queryItems = (components.queryItems ?? []) + [URLQueryItem(name: "passfile", value: file)]
        guard let url = components.string else { throw TestSetupError(message: "cannot add passfile to a URL") }
        return url
    }

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
