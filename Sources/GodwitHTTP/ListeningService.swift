import Foundation
import ServiceLifecycle
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// The HTTP application as a service that says it serves only once it does, and turns a
/// failure to bind into one line naming the address.
///
/// Hummingbird's bind error reads `bind(descriptor:ptr:bytes:): Address already in use (errno:
/// 98)`, a system call's name where a person wants the address and the reason; and a caller
/// that logs "serving HTTP" before running the application announces a server that never was.
struct ListeningService<App: Service>: Service {
    let application: App
    let listening: ListeningFlag
    let host: String
    let port: Int

    func run() async throws {
        do {
            try await application.run()
        } catch  where !listening.value {
            throw OperationsError.cannotListen(host: host, port: port, error)
        }
    }
}

/// Set once the server has bound its address: shared by its start-up callback and its service.
final class ListeningFlag: Sendable {
    private let flag = Mutex<Bool>(false)
    var value: Bool { flag.withLock { $0 } }
    func set() { flag.withLock { $0 = true } }
}

extension OperationsError {
    /// `cannot listen on HOST:PORT: address already in use`: the reason is the system's
    /// (strerror) for the errno the error carries, else the error's own description.
    static func cannotListen(host: String, port: Int, _ error: any Error) -> OperationsError {
        let address = host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)"
        let text = String(describing: error)
        var reason = text
        if let range = text.range(of: "(errno: "), let end = text[range.upperBound...].firstIndex(of: ")"),
            let code = Int32(text[range.upperBound..<end])
        {
            let system = String(cString: strerror(code))
            reason = system.prefix(1).lowercased() + system.dropFirst()
        }
        return OperationsError("cannot listen on \(address): \(reason)")
    }
}

extension OperationsServer {
    /// The application as a service, for a `ServiceGroup`: `onListening` runs once the address
    /// is bound (say "serving HTTP" there, not before), and a failure to bind throws
    /// `OperationsError` with one line, `cannot listen on HOST:PORT: REASON`.
    public func service(onListening: @escaping @Sendable () async -> Void = {}) -> some Service {
        let listening = ListeningFlag()
        return ListeningService(
            application: application(onServerRunning: {
                listening.set()
                await onListening()
            }), listening: listening, host: configuration.host, port: configuration.port)
    }
}
