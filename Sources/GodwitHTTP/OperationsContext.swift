import Hummingbird

/// The request context of the operations surface: Hummingbird's core storage, plus who is
/// asking (for the log line of every control).
public struct OperationsContext: RequestContext {
    public var coreContext: CoreRequestContextStorage
    /// The peer's address as text, or `unknown`.
    public let remoteAddress: String

    public init(source: ApplicationRequestContextSource) {
        self.coreContext = .init(source: source)
        self.remoteAddress = source.channel.remoteAddress.map { "\($0)" } ?? "unknown"
    }
}
