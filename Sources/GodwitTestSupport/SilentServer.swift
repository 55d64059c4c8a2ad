#if canImport(Glibc)
    import Glibc
#endif

/// A TCP port on 127.0.0.1 that accepts connections (the kernel completes the handshake) but
/// never says anything: a server that hangs.
public final class SilentServer: Sendable {
    public let port: Int
    private let fd: Int32

    public init() throws {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        self.fd = fd
        guard let port = bindToLoopbackPort(fd), listen(fd, 16) == 0 else {
            close(fd)
            throw TestSetupError(message: "cannot listen")
        }
        self.port = port
    }

    deinit { close(fd) }
}
