import Hummingbird
import Logging

/// The first look at every request, before any route or the token: one `Host` only; without a
/// token, a `Host` that `HostPolicy` allows (against DNS rebinding, 421); for a POST, an
/// `Origin` and `Sec-Fetch-Site` that say it came from our own pages (403).
struct RequestGuard: RouterMiddleware {
    typealias Context = OperationsContext
    /// Nil when a token is set: then a rebinding page has neither the token nor our cookies.
    let hostPolicy: HostPolicy?
    let logger: Logger

    static let hostField = HTTPFields.Element.Name("Host")!
    static let secFetchSite = HTTPFields.Element.Name("Sec-Fetch-Site")!

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws
        -> Response
    {
        // HTTP/1 puts the first Host in the authority and leaves any other among the fields.
        if request.headers[Self.hostField] != nil {
            return Self.refuse(.badRequest, "refused: more than one Host header")
        }
        if let hostPolicy, !hostPolicy.allows(authority: request.head.authority) {
            logger.warning(
                "request refused: Host is not a loopback address or an allowed name",
                metadata: ["remote": "\(context.remoteAddress)", "host": "\(request.head.authority ?? "none")"])
            return Self.refuse(
                .misdirectedRequest,
                "refused: without a token this server answers only to localhost, 127.0.0.1 and [::1] "
                    + "(or a name given with --http-allowed-host)")
        }
        if request.method == .post,
            let reason = OriginCheck.refusal(
                origin: request.headers[.origin], fetchSite: request.headers[Self.secFetchSite],
                authority: request.head.authority)
        {
            logger.warning(
                "POST refused: not sent from this server's own pages",
                metadata: ["remote": "\(context.remoteAddress)", "path": "\(request.uri.path)", "reason": "\(reason)"])
            return Self.refuse(.forbidden, reason)
        }
        return try await next(request, context)
    }

    static func refuse(_ status: HTTPResponse.Status, _ reason: String) -> Response {
        Response(
            status: status,
            headers: [.contentType: "text/plain; charset=utf-8", .cacheControl: "no-store"],
            body: .init(byteBuffer: ByteBuffer(string: reason + "\n")))
    }
}
