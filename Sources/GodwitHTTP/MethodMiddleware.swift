import Hummingbird

/// Answers 405 with `Allow` (an HTML page on the dashboard's paths) for a path that exists under another method; Hummingbird's router
/// answers 404 to both. The paths are the router's own (`OperationsServer.endpoints`), `:name`
/// standing for one segment.
struct MethodMiddleware: RouterMiddleware {
    typealias Context = OperationsContext
    private let routes: [(segments: [Substring], methods: [HTTPRequest.Method])]

    init(_ endpoints: [(path: String, method: HTTPRequest.Method)]) {
        var routes: [(segments: [Substring], methods: [HTTPRequest.Method])] = []
        for endpoint in endpoints {
            let segments = endpoint.path.split(separator: "/")
            if let index = routes.firstIndex(where: { $0.segments == segments }) {
                routes[index].methods.append(endpoint.method)
            } else {
                routes.append((segments, [endpoint.method]))
            }
        }
        self.routes = routes
    }

    /// The methods `path` answers to (GET with HEAD), or nil when no route matches it.
    func allowed(_ path: String) -> [HTTPRequest.Method]? {
        let segments = path.split(separator: "/")
        let matching = routes.filter { route in
            route.segments.count == segments.count
                && zip(route.segments, segments).allSatisfy { pattern, segment in
                    pattern.hasPrefix(":") || pattern == segment
                }
        }
        guard !matching.isEmpty else { return nil }
        var methods: [HTTPRequest.Method] = []
        for method in matching.flatMap(\.methods) where !methods.contains(method) {
            methods.append(method)
            if method == .get && !methods.contains(.head) { methods.append(.head) }
        }
        return methods
    }

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws
        -> Response
    {
        if let methods = allowed(request.uri.path), !methods.contains(request.method) {
            // Thrown, so that `ErrorPageMiddleware` answers a dashboard path with an HTML page;
            // /health and /metrics get Hummingbird's JSON.
            let allow = methods.map(\.rawValue).joined(separator: ", ")
            throw HTTPError(
                .methodNotAllowed, headers: [.allow: allow],
                message: "\(request.uri.path) answers \(allow) only")
        }
        return try await next(request, context)
    }
}
