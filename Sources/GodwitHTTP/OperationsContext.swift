import Hummingbird

/// The request context of the operations surface: Hummingbird's core storage, plus who is
/// asking (for the log line of every control, and the login rate limit).
public struct OperationsContext: RequestContext {
    public var coreContext: CoreRequestContextStorage
    /// The peer's address as text, or `unknown`.
    public let remoteAddress: String
    /// The peer's IP address without its port (what the login rate limit counts by), or `unknown`.
    public let clientAddress: String

    public init(source: ApplicationRequestContextSource) {
        self.coreContext = .init(source: source)
        let address = source.channel.remoteAddress
        self.remoteAddress = address.map { "\($0)" } ?? "unknown"
        self.clientAddress = address?.ipAddress ?? "unknown"
    }
}
