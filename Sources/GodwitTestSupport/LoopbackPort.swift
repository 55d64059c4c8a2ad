#if canImport(Glibc)
    import Glibc
#endif

/// Binds `fd` to a port on 127.0.0.1 that the kernel picks, and returns the port; nil when
/// the bind fails.
func bindToLoopbackPort(_ fd: Int32) -> Int? {
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    address.sin_port = 0
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    let bound = withUnsafeMutablePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
            bind(fd, $0, length) == 0 && getsockname(fd, $0, &length) == 0
        }
    }
    return bound ? Int(UInt16(bigEndian: address.sin_port)) : nil
}

/// A TCP port on 127.0.0.1 that nothing listened on a moment ago, for a server a test starts:
/// below the kernel's ephemeral range (32768 and up), so that no client socket takes it before
/// the server binds it.
public func freeLoopbackPort() throws -> Int {
    for _ in 0..<1000 {
        let port = Int.random(in: 20_000..<32_000)
        if try isFreeLoopbackPort(port) { return port }
    }
    throw TestSetupError(message: "cannot bind a port between 20000 and 32000 on 127.0.0.1")
}

/// Whether `port` on 127.0.0.1 can be bound right now.
public func isFreeLoopbackPort(_ port: Int) throws -> Bool {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    guard fd >= 0 else { throw TestSetupError(message: "socket() failed") }
    defer { close(fd) }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    address.sin_port = UInt16(port).bigEndian
    let bound = withUnsafePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
            bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0
        }
    }
    return bound
}
