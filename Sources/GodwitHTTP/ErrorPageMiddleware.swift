import Hummingbird

/// Renders an `HTTPError` from a dashboard path (a page, a fragment, a control, the login) as an
/// HTML page, status and headers kept, where Hummingbird would answer JSON. `/health` and
/// `/metrics` keep Hummingbird's JSON.
struct ErrorPageMiddleware: RouterMiddleware {
    typealias Context = OperationsContext
    let readOnly: Bool

    static func isDashboard(_ path: String) -> Bool {
        !(path == "/metrics" || path == "/health" || path.hasPrefix("/health/"))
    }

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws
        -> Response
    {
        do {
            return try await next(request, context)
        } catch let error as HTTPError where Self.isDashboard(request.uri.path) {
            let nonce = randomToken()
            let pages = DashboardPages(csrf: "", readOnly: readOnly, nonce: nonce)
            let message = error.body ?? error.status.reasonPhrase
            var response = OperationsServer.html(pages.errorPage(status: error.status, message: message), nonce: nonce)
            response.status = error.status
            for field in error.headers where field.name != .contentType { response.headers.append(field) }
            return response
        }
    }
}
