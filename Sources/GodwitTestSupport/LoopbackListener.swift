import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// A TCP port on 127.0.0.1 that accepts connections and never answers, and tells when a client
/// has connected: for a test that must know a process got as far as connecting (past its
/// startup) before it looks at the process.
public final class LoopbackListener: Sendable {
    public let port: Int
    private let fd: Int32
    private let connections = Mutex<[Int32]>([])

    public init() throws {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        self.fd = fd
        guard let port = bindToLoopbackPort(fd), listen(fd, 16) == 0 else {
            close(fd)
            throw TestSetupError(message: "cannot listen")
        }
        _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
        self.port = port
    }

    /// Accepts a waiting connection, if there is one, and keeps it open (and silent); never
    /// waits. Poll it with `eventually`.
    public func acceptIfWaiting() -> Bool {
        let connection = accept(fd, nil, nil)
        guard connection >= 0 else { return false }
        connections.withLock { $0.append(connection) }
        return true
    }

    deinit {
        for connection in connections.withLock({ $0 }) { close(connection) }
        close(fd)
    }
}
